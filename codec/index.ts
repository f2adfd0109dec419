// Payload codecs shared by the client, the worker and the codec server.
export {
  AesGcmPayloadCodec,
  CodecKeyError,
  codecFromEnv,
  parseCodecKeys,
  CODEC_KEYS_ENV,
  ENCRYPTED_ENCODING,
  KEY_ID_METADATA,
  type CodecKey,
} from './aes-gcm';
export { decodePayload, failureMessageOf, type RawFailure } from './decode';
