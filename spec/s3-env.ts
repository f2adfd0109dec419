// How S3-compatible storage is reached, from environment variables: one reading for checkpoint stores and for
// datasets in S3. Pure: the caller passes the environment.

export interface S3Connection {
  endpoint: string | undefined;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string | undefined } | undefined;
}

/**
 * DURABLE_TRAIN_S3_ENDPOINT (e.g. a MinIO or SeaweedFS URL; unset: AWS), AWS_REGION (or AWS_DEFAULT_REGION, default
 * us-east-1), AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN; without them the SDK's default chain).
 */
export function s3ConnectionFromEnv(env: Record<string, string | undefined>): S3Connection {
  return {
    endpoint: env.DURABLE_TRAIN_S3_ENDPOINT || undefined,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    credentials:
      env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
        ? {
            accessKeyId: env.AWS_ACCESS_KEY_ID,
            secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
            sessionToken: env.AWS_SESSION_TOKEN || undefined,
          }
        : undefined,
  };
}
