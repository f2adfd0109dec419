// Decoding a payload read straight from a history or a description (heartbeat details, activity results) the way
// the client decodes what it fetches itself: its codecs (decryption), then its payload converter.
import type { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';

export async function decodePayload(client: Client, payload: Payload): Promise<unknown> {
  const { payloadCodecs, payloadConverter } = client.options.loadedDataConverter;
  let payloads = [payload];
  for (const codec of [...payloadCodecs].reverse()) payloads = await codec.decode(payloads);
  return payloadConverter.fromPayload(payloads[0]);
}

/** A failure as read from a history or a description: its message, or its encoded (encrypted) attributes. */
export interface RawFailure {
  message?: string | null;
  encodedAttributes?: unknown;
  cause?: RawFailure | null;
}

/**
 * The failure's message, decrypted when the failure converter moved it into encoded attributes (codec keys set): the
 * message the client would show. A payload this client cannot decode leaves the placeholder ("Encoded failure").
 */
export async function failureMessageOf(client: Client, f: RawFailure): Promise<string | null> {
  if (!f.encodedAttributes) return f.message ?? null;
  try {
    const attrs = (await decodePayload(client, f.encodedAttributes as Payload)) as { message?: unknown } | null;
    return typeof attrs?.message === 'string' ? attrs.message : (f.message ?? null);
  } catch {
    return f.message ?? null;
  }
}
