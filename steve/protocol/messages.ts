/**
 * The outer STEVE v2 messages, byte for byte as specs/steve.md §3 defines them: the session request and
 * response (`/e2p/v2/session`) and the envelope that carries every confirmation and application record
 * (`/e2p/v2/confirm`, `/e2p/v2/request`). Wire names (`client_nonce`) live only here; callers see
 * camelCase objects. Encoders emit the keys in the spec's table order with the codec's deterministic
 * CBOR (§2); decoders accept exactly the §3 keys with exact types and lengths, nothing more.
 *
 * Decisions (ours, §3 leaves them open):
 * - Every key of these three messages is required; an unknown key is STEVE_PROTOCOL.
 * - `key_exchange` naming neither suite is STEVE_SUITE; whether a known suite is the deployment's is the
 *   server's check (§1: "must equal the deployment's suite"), so the parsed suite is returned as is.
 * - Key material must have its suite's length (STEVE_PROTOCOL), checked here because the suite is known.
 * - An envelope's ciphertext must hold at least the 16-byte tag.
 * - `expires_in_seconds` is 1..2^53-1; `attestation_document` may be any byte string (the verifier judges it).
 * - Fixed-size fields are copied out of the input; `ciphertext` and `attestation_document` stay views
 *   into it, so a 32 MiB envelope is not copied. Each decoder takes a size cap (§6) checked first.
 * - Anything that does not start as a map of at most the message's number of keys is refused at its
 *   first byte, and the codec may read at most 1 + 2 x keys CBOR items (fields.ts), so a malformed
 *   body costs what it takes to see that it is one, not what it would take to build it.
 * Pure: no I/O.
 */

import { encodeCbor } from '../../cbor/index.js';
import { SteveError } from '../errors.js';
import { assertBytes, concatBytes } from './bytes.js';
import { CanonicalReader } from './canonical.js';
import {
  CLIENT_KEY_MATERIAL_BYTES,
  CONTEXT_HASH_BYTES,
  ENVELOPE_ENTRIES,
  MAX_APPLICATION_RESPONSE_BYTES,
  MAX_SESSION_REQUEST_BYTES,
  MAX_SESSION_RESPONSE_BYTES,
  NONCE_BYTES,
  SEQUENCE_BYTES,
  SERVER_KEY_MATERIAL_BYTES,
  SESSION_ID_BYTES,
  SESSION_REQUEST_ENTRIES,
  SESSION_RESPONSE_ENTRIES,
  TAG_BYTES,
  VERSION,
  isSuite,
  type Suite,
} from './constants.js';
import { decodeMap, expectBytes, expectText, expectUint, expectVersion, flatMapShape, readFields } from './fields.js';
import { readSequence, sequenceFromBytes, sequenceToBytes } from './sequence.js';

export interface SessionRequest {
  suite: Suite;
  clientNonce: Uint8Array;
  clientKeyMaterial: Uint8Array;
  contextHash: Uint8Array;
}

export interface SessionResponse {
  suite: Suite;
  sessionId: Uint8Array;
  serverKeyMaterial: Uint8Array;
  attestationDocument: Uint8Array;
  expiresInSeconds: number;
}

export interface Envelope {
  sessionId: Uint8Array;
  sequence: number;
  ciphertext: Uint8Array;
}

/** A size cap for a decoder, in bytes of the encoded message (§6). */
export interface DecodeLimit {
  maxBytes?: number;
}

// All three are flat maps (every value one item): 11, 13 and 9 CBOR items at most.
const SESSION_REQUEST_SHAPE = flatMapShape(SESSION_REQUEST_ENTRIES);
const SESSION_RESPONSE_SHAPE = flatMapShape(SESSION_RESPONSE_ENTRIES);
const ENVELOPE_SHAPE = flatMapShape(ENVELOPE_ENTRIES);

function assertSuite(value: unknown, code: 'STEVE_SUITE' | 'STEVE_BAD_ARGUMENT'): asserts value is Suite {
  if (!isSuite(value)) throw new SteveError(code, '"key_exchange" must be X25519 or XWING-DRAFT10');
}

// ---------------------------------------------------------------------------------------------------
// Session request (client -> server), §3

export function encodeSessionRequest(request: SessionRequest): Uint8Array {
  assertSuite(request.suite, 'STEVE_BAD_ARGUMENT');
  assertBytes(request.clientNonce, 'clientNonce', NONCE_BYTES);
  assertBytes(request.clientKeyMaterial, 'clientKeyMaterial', CLIENT_KEY_MATERIAL_BYTES[request.suite], 'STEVE_KEY');
  assertBytes(request.contextHash, 'contextHash', CONTEXT_HASH_BYTES);
  return encodeCbor(
    new Map<string, string | number | Uint8Array>([
      ['version', VERSION],
      ['key_exchange', request.suite],
      ['client_nonce', request.clientNonce],
      ['client_key_material', request.clientKeyMaterial],
      ['context_hash', request.contextHash],
    ]),
  );
}

/** Default cap: MAX_SESSION_REQUEST_BYTES (ours, 4 KiB). */
export function decodeSessionRequest(bytes: Uint8Array, limit: DecodeLimit = {}): SessionRequest {
  const what = 'session request';
  const map = decodeMap(bytes, what, limit.maxBytes ?? MAX_SESSION_REQUEST_BYTES, SESSION_REQUEST_SHAPE);
  const f = readFields(map, what, ['version', 'key_exchange', 'client_nonce', 'client_key_material', 'context_hash']);
  expectVersion(f.version, what);
  const suite = expectText(f.key_exchange, 'key_exchange');
  assertSuite(suite, 'STEVE_SUITE');
  return {
    suite,
    clientNonce: expectBytes(f.client_nonce, 'client_nonce', NONCE_BYTES).slice(),
    clientKeyMaterial: expectBytes(f.client_key_material, 'client_key_material', CLIENT_KEY_MATERIAL_BYTES[suite]).slice(),
    contextHash: expectBytes(f.context_hash, 'context_hash', CONTEXT_HASH_BYTES).slice(),
  };
}

// ---------------------------------------------------------------------------------------------------
// Session response (server -> client), §3

export function encodeSessionResponse(response: SessionResponse): Uint8Array {
  assertSuite(response.suite, 'STEVE_BAD_ARGUMENT');
  assertBytes(response.sessionId, 'sessionId', SESSION_ID_BYTES);
  assertBytes(response.serverKeyMaterial, 'serverKeyMaterial', SERVER_KEY_MATERIAL_BYTES[response.suite], 'STEVE_KEY');
  assertBytes(response.attestationDocument, 'attestationDocument');
  if (!Number.isSafeInteger(response.expiresInSeconds) || response.expiresInSeconds < 1) {
    throw new SteveError('STEVE_BAD_ARGUMENT', '"expiresInSeconds" expected a positive integer');
  }
  return encodeCbor(
    new Map<string, string | number | Uint8Array>([
      ['version', VERSION],
      ['key_exchange', response.suite],
      ['session_id', response.sessionId],
      ['server_key_material', response.serverKeyMaterial],
      ['attestation_document', response.attestationDocument],
      ['expires_in_seconds', response.expiresInSeconds],
    ]),
  );
}

/** Default cap: MAX_SESSION_RESPONSE_BYTES (§6, 65,536). */
export function decodeSessionResponse(bytes: Uint8Array, limit: DecodeLimit = {}): SessionResponse {
  const what = 'session response';
  const map = decodeMap(bytes, what, limit.maxBytes ?? MAX_SESSION_RESPONSE_BYTES, SESSION_RESPONSE_SHAPE);
  const f = readFields(map, what, ['version', 'key_exchange', 'session_id', 'server_key_material', 'attestation_document', 'expires_in_seconds']);
  expectVersion(f.version, what);
  const suite = expectText(f.key_exchange, 'key_exchange');
  assertSuite(suite, 'STEVE_SUITE');
  return {
    suite,
    sessionId: expectBytes(f.session_id, 'session_id', SESSION_ID_BYTES).slice(),
    serverKeyMaterial: expectBytes(f.server_key_material, 'server_key_material', SERVER_KEY_MATERIAL_BYTES[suite]).slice(),
    attestationDocument: expectBytes(f.attestation_document, 'attestation_document'),
    expiresInSeconds: expectUint(f.expires_in_seconds, 'expires_in_seconds', 1, Number.MAX_SAFE_INTEGER),
  };
}

// ---------------------------------------------------------------------------------------------------
// Envelope (both directions, confirmation and application records), §3

export function encodeEnvelope(envelope: Envelope): Uint8Array {
  assertBytes(envelope.sessionId, 'sessionId', SESSION_ID_BYTES);
  assertBytes(envelope.ciphertext, 'ciphertext');
  if (envelope.ciphertext.length < TAG_BYTES) {
    throw new SteveError('STEVE_BAD_ARGUMENT', `"ciphertext" expected at least ${TAG_BYTES} bytes, got ${envelope.ciphertext.length}`);
  }
  return encodeCbor(
    new Map<string, number | Uint8Array>([
      ['version', VERSION],
      ['session_id', envelope.sessionId],
      ['sequence', sequenceToBytes(envelope.sequence)],
      ['ciphertext', envelope.ciphertext],
    ]),
  );
}

/**
 * Default cap: MAX_APPLICATION_RESPONSE_BYTES (§6, the largest envelope anyone sends); pass the tighter
 * one that fits the endpoint (MAX_REQUEST_ENVELOPE_BYTES, MAX_CONFIRMATION_RESPONSE_BYTES, ...).
 *
 * An envelope in the exact form every STEVE v2 encoder writes (ours and the clients': the §3 key order,
 * shortest heads) is read in place, without building a CBOR map: it runs once per proxied request.
 * That form is canonical CBOR with the right keys and types, so the strict path would return the same
 * object; anything else (another key order, a bad length, a sequence over 2^53-1) goes through the
 * strict path, which decides. `decoders.test.ts` holds the two equal on random and damaged input.
 */
export function decodeEnvelope(bytes: Uint8Array, limit: DecodeLimit = {}): Envelope {
  const maxBytes = limit.maxBytes ?? MAX_APPLICATION_RESPONSE_BYTES;
  if (bytes instanceof Uint8Array && Number.isSafeInteger(maxBytes) && maxBytes >= 0 && bytes.length <= maxBytes) {
    const envelope = readCanonicalEnvelope(bytes);
    if (envelope !== null) return envelope;
  }
  return decodeEnvelopeStrict(bytes, limit);
}

/** The envelope through the strict codec and field checks only (decodeEnvelope's reference). */
export function decodeEnvelopeStrict(bytes: Uint8Array, limit: DecodeLimit = {}): Envelope {
  const what = 'envelope';
  const map = decodeMap(bytes, what, limit.maxBytes ?? MAX_APPLICATION_RESPONSE_BYTES, ENVELOPE_SHAPE);
  const f = readFields(map, what, ['version', 'session_id', 'sequence', 'ciphertext']);
  expectVersion(f.version, what);
  const ciphertext = expectBytes(f.ciphertext, 'ciphertext');
  if (ciphertext.length < TAG_BYTES) throw new SteveError('STEVE_PROTOCOL', `"ciphertext" shorter than the ${TAG_BYTES}-byte tag`);
  return {
    sessionId: expectBytes(f.session_id, 'session_id', SESSION_ID_BYTES).slice(),
    sequence: sequenceFromBytes(expectBytes(f.sequence, 'sequence', SEQUENCE_BYTES)),
    ciphertext,
  };
}

// The fixed bytes of the canonical envelope around its three values (§3 order, shortest heads).
const ENVELOPE_START = concatBytes(Uint8Array.of(0xa4), encodeCbor('version'), encodeCbor(VERSION), encodeCbor('session_id'), Uint8Array.of(0x40 | SESSION_ID_BYTES));
const ENVELOPE_SEQUENCE = concatBytes(encodeCbor('sequence'), Uint8Array.of(0x40 | SEQUENCE_BYTES));
const ENVELOPE_CIPHERTEXT = encodeCbor('ciphertext');

/** The envelope when `bytes` are exactly its canonical form with valid values, else null. */
export function readCanonicalEnvelope(bytes: Uint8Array): Envelope | null {
  const reader = new CanonicalReader(bytes);
  if (!reader.literal(ENVELOPE_START)) return null;
  const sessionId = reader.take(SESSION_ID_BYTES);
  if (sessionId === null || !reader.literal(ENVELOPE_SEQUENCE)) return null;
  const sequenceAt = reader.at;
  if (reader.take(SEQUENCE_BYTES) === null || !reader.literal(ENVELOPE_CIPHERTEXT)) return null;
  const ciphertext = reader.byteString();
  if (ciphertext === null || ciphertext.length < TAG_BYTES || !reader.done) return null;
  const sequence = readSequence(bytes, sequenceAt);
  if (sequence === null) return null;
  return { sessionId: sessionId.slice(), sequence, ciphertext };
}
