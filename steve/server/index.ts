/**
 * The public surface of the Node STEVE server (specs/steve.md §2-§8): `createSteveServer` for the agent
 * to route `/e2p/*` (and v1 protected requests) to, the node:crypto primitives it runs on (AES-256-GCM
 * and X25519 behind the protocol's interfaces), and the answer table. Node-only: the browser-safe
 * surface is steve/protocol (and steve/client); nothing there imports this.
 */

// The error class, for the agent: it imports steve/ through this file and protocol/routing.ts only, so its
// start-up does not load the client and the key exchanges it does not run (issue 16, image/build-bundle.mjs).
export { SteveError, type SteveErrorCode } from '../errors.js';
export { createSteveServer, nodeHandshake, CONFIRM_PATH, REQUEST_PATH, SESSION_PATH, DEFAULT_MAX_BUFFERED_BYTES, type ServerHandshake, type SteveRoute, type SteveServer, type SteveServerOptions } from './server.js';
export { assertAeadArguments, assertBytes, nodeAesGcm, outsideHeap, sealParts, type SealedParts, type ServerAead } from './aead-node.js';
export { nodeX25519Exchange, x25519PrivateKey, x25519PublicBytes, x25519SharedSecret } from './x25519-node.js';
export { nodeXwingExchange } from './xwing-node.js';
export { nodeDeriveSessionKeys, nodeHkdfSha256, nodeTranscriptHash, withScheduleInputs } from './kdf-node.js';
// The schedule's table and the transcript's bytes, for the agent's native handshake (agent/handshake-native.ts).
export { SESSION_KEY_SCHEDULE, transcript, type KeyExchange, type SessionKeys } from '../protocol/index.js';
export { nodeRandomBytes } from './secret-bytes.js';
export { REPLY_FOR_CODE, SERVER_REPLIES, sendReply, type Reply } from './replies.js';
export { DEFAULT_MAX_PENDING_SESSIONS, DEFAULT_MAX_SESSIONS, MAX_IN_FLIGHT_PER_SESSION, PENDING_TTL_SECONDS, SESSION_LIFETIME_MS, createSessionTable, type Session, type SessionTable } from './session-table.js';
export { DEFAULT_UPSTREAM_TIMEOUT_MS } from './upstream.js';
export { V1_CREATE_PATH, V1_TOKEN_BYTES, V1_TOKEN_LIFETIME_MS } from './legacy-v1.js';
export { appResponseHead, byteStringHead, envelopeHead } from './wire.js';
export { BOOTSTRAP_REQUEST_HEADERS, appRequestHeaders, connectionTokens, isForwardingHeader, isHopByHop, type ForwardedProto } from './headers.js';
export { DEFAULT_SEND_TIMEOUT_MS, holdUntilClosed, sendPieces } from './send.js';
export { DEFAULT_STREAM_IDLE_TIMEOUT_MS, STREAM_RESERVATION_BYTES } from './stream-endpoint.js';
