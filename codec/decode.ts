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
