// A managed-identity endpoint as App Service has one (IDENTITY_ENDPOINT, with the secret IDENTITY_HEADER checked),
// issuing unsigned JWTs of the form Entra ID issues for storage: what Azurite's basic OAuth check reads (issuer,
// audience, lifetime). In process (fakeIdentityEndpoint), or as a process of its own (`node entra-identity.js SECRET`
// prints {"endpoint"} and then one line per token request) for tests whose process blocks while a child runs.
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** An unsigned JWT of the form Entra ID issues for storage (Azurite's basic check reads issuer, audience, times). */
function storageToken(over: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const claims = {
    aud: 'https://storage.azure.com',
    iss: 'https://sts.windows.net/00000000-0000-0000-0000-000000000001/',
    iat: now - 60,
    nbf: now - 60,
    exp: now + 3600,
    oid: '00000000-0000-0000-0000-0000000000aa',
    ...over,
  };
  return `${part({ alg: 'RS256', typ: 'JWT' })}.${part(claims)}.${Buffer.from('not-verified').toString('base64url')}`;
}

/** The endpoint in this process: its URL, the requests it answered, the claims of the tokens it gives next. */
export async function fakeIdentityEndpoint(
  secret: string,
  onRequest?: (r: { resource: string | null; header?: string }) => void,
) {
  const requests: Array<{ resource: string | null; header: string | undefined }> = [];
  let claims: Record<string, unknown> = {};
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const header = req.headers['x-identity-header'] as string | undefined;
    requests.push({ resource: url.searchParams.get('resource'), header });
    onRequest?.(requests[requests.length - 1]);
    if (header !== secret) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"wrong identity header"}');
      return;
    }
    const body = {
      access_token: storageToken(claims),
      expires_on: String(Math.floor(Date.now() / 1000) + 3600),
      resource: url.searchParams.get('resource'),
      token_type: 'Bearer',
    };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/msi/token`,
    requests,
    setClaims: (c: Record<string, unknown>) => (claims = c),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** The endpoint as a process of its own: its URL, how many token requests it has answered, and a stopper. */
export async function startIdentityProcess(secret: string) {
  const child = spawn(process.execPath, [__filename, secret], { stdio: ['ignore', 'pipe', 'inherit'] });
  let requests = 0;
  let out = '';
  const endpoint = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the identity endpoint exited (${code}) before it listened`)));
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const line of lines) {
        const msg = JSON.parse(line) as { endpoint?: string };
        if (msg.endpoint) resolve(msg.endpoint);
        else requests++;
      }
    });
  });
  return {
    endpoint,
    requests: () => requests,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

if (require.main === module) {
  void fakeIdentityEndpoint(process.argv[2] ?? '', (r) => console.log(JSON.stringify(r))).then((id) =>
    console.log(JSON.stringify({ endpoint: id.endpoint })),
  );
}
