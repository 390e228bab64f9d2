/**
 * The public surface of the pure STEVE v2 protocol core (specs/steve.md §1-§5, §7's replay window):
 * constants, message codecs, key exchanges, key schedule, records, the attestation binding and the
 * replay window. Everything here is browser-safe: no `node:` imports, no clock, no I/O, randomness
 * passed in. The Node server and the web client build on it; it imports neither.
 */

export {
  AAD_BYTES,
  APP_REQUEST_ENTRIES,
  APP_RESPONSE_ENTRIES,
  BINDER_BYTES,
  CLIENT_KEY_MATERIAL_BYTES,
  CONFIRMATION_SEQUENCE,
  CONTEXT_HASH_BYTES,
  DIRECTION,
  ENVELOPE_ENTRIES,
  FIRST_APPLICATION_SEQUENCE,
  IV_PREFIX_BYTES,
  KEY_BYTES,
  LABEL_BINDER,
  LABEL_C2S_IV,
  LABEL_C2S_KEY,
  LABEL_S2C_IV,
  LABEL_S2C_KEY,
  LABEL_STREAM_C2S_KEY,
  LABEL_STREAM_S2C_KEY,
  MAGIC_LENGTH,
  MAX_APPLICATION_RESPONSE_BYTES,
  MAX_CONFIRMATION_REQUEST_BYTES,
  MAX_CONFIRMATION_RESPONSE_BYTES,
  MAX_ERROR_ITEMS,
  MAX_HEADER_FIELDS,
  MAX_REQUEST_ENVELOPE_BYTES,
  MAX_SEQUENCE,
  MAX_SERVER_RESPONSE_ENVELOPE_BYTES,
  MAX_SESSION_REQUEST_BYTES,
  MAX_SESSION_RESPONSE_BYTES,
  MAX_UPSTREAM_BODY_BYTES,
  MESSAGE_TYPE,
  NONCE_BYTES,
  PROTOCOL_ID,
  RECORD_NONCE_BYTES,
  REPLAY_WINDOW_SIZE,
  SEQUENCE_BYTES,
  SERVER_KEY_MATERIAL_BYTES,
  SESSION_ID_BYTES,
  SESSION_REQUEST_ENTRIES,
  SESSION_RESPONSE_ENTRIES,
  SHARED_SECRET_BYTES,
  SUITES,
  TAG_BYTES,
  TRANSCRIPT_HASH_BYTES,
  VERSION,
  isSuite,
  magic,
  type Direction,
  type MessageType,
  type Suite,
} from './constants.js';
export { concatBytes, constantTimeEqual, joinBytes, writeU64 } from './bytes.js';
export { isSequence, sequenceFromBytes, sequenceToBytes } from './sequence.js';
/**
 * For a server, on the first chunk of a request body before it reads the rest:
 * `expectMapPrefix(chunk, SESSION_REQUEST_ENTRIES, 'session request')` on /e2p/v2/session and
 * `expectMapPrefix(chunk, ENVELOPE_ENTRIES, 'envelope')` on /e2p/v2/confirm and /e2p/v2/request throw
 * STEVE_PROTOCOL (400) for a body that cannot be the message, after reading its first byte.
 */
export { expectMapPrefix } from './fields.js';
export {
  decodeEnvelope,
  decodeSessionRequest,
  decodeSessionResponse,
  encodeEnvelope,
  encodeSessionRequest,
  encodeSessionResponse,
  type DecodeLimit,
  type Envelope,
  type SessionRequest,
  type SessionResponse,
} from './messages.js';
export {
  MAX_STATUS,
  MIN_STATUS,
  decodeAppRequest,
  decodeAppResponse,
  encodeAppRequest,
  encodeAppResponse,
  type AppRequest,
  type AppResponse,
  type JsonValue,
} from './application.js';
export { SESSION_KEY_SCHEDULE, deriveSessionKeys, hkdfSha256, transcript, transcriptHash, wipeSessionKeys, type SessionKeys, type TranscriptInput } from './kdf.js';
export {
  assertRecordSequence,
  nobleAesGcm,
  openRecord,
  recordAad,
  recordNonce,
  sealRecord,
  type Aead,
  type RecordHeader,
} from './record.js';
export { keyExchangeFor, x25519Exchange, xwingExchange, type ClientKeyPair, type KeyExchange, type RandomBytes, type ServerResponse } from './kem.js';
export { checkBindingUserData, encodeBindingUserData, type Binding } from './binding.js';
export { createReplayWindow, type ReplayWindow } from './replay.js';
export { BOOTSTRAP_PATHS, E2P_PREFIX, PUBLIC_PATHS, isBootstrapRequest, passesThrough } from './routing.js';
/** Our stream extension `stream-1` (stream.md): preamble, frames, records and their order. */
export {
  EXTENSION_NAME_RE,
  FRAME_HEADER_BYTES,
  FRAME_KIND,
  MAX_EXTENSIONS,
  MAX_STREAM_CHUNK_BYTES,
  MAX_STREAM_INDEX,
  MAX_STREAM_SEALED_BYTES,
  MAX_STREAMS_PER_SESSION,
  STREAM_AAD_BYTES,
  STREAM_EXTENSION,
  STREAM_MAGIC_LENGTH,
  STREAM_MEDIA_TYPE,
  STREAM_PATH,
  STREAM_PREAMBLE_BYTES,
  createFrameParser,
  createStreamReader,
  createStreamWriter,
  decodeStreamAbort,
  decodeStreamPreamble,
  encodeStreamAbort,
  encodeStreamPreamble,
  openStreamRecord,
  sealStreamRecord,
  sealStreamRecordPieces,
  streamAad,
  streamMagic,
  streamNonce,
  type Frame,
  type FrameKind,
  type FrameParser,
  type OpenedRecord,
  type StreamReader,
  type StreamRecordHeader,
  type StreamRecordTarget,
  type StreamWriter,
} from './stream.js';
