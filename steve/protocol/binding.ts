/**
 * The attestation binding (specs/steve.md §5 steps 2-3): the server asks the NSM for a document whose
 * `user_data` is the UTF-8 JSON object
 *   {"protocol":"STEVE-E2P-V2","key_exchange":<suite>,"session_id":b64u,"transcript_hash":b64u,"binder":b64u}
 * (b64u = base64url without padding), and the client checks all five fields in constant time.
 *
 * Decision (ours): §5 gives the object byte for byte (key order, no whitespace), so the check accepts
 * only that exact form. It parses the JSON (fatal UTF-8, exactly these five keys, text values, canonical
 * unpadded base64url of 16/32/32 bytes), requires that re-encoding the parsed fields gives the input bytes
 * (which refuses duplicate keys, whitespace, reordering and escapes that JSON.parse would let through),
 * and then compares every field with the expected values without an early exit. Any failure is
 * STEVE_BINDING. This file does not verify the document itself (nsm/ does). Pure: no I/O.
 */

import { SteveError } from '../errors.js';
import { assertBytes, constantTimeEqual, fromBase64Url, toBase64Url, utf8 } from './bytes.js';
import { BINDER_BYTES, PROTOCOL_ID, SESSION_ID_BYTES, TRANSCRIPT_HASH_BYTES, isSuite, type Suite } from './constants.js';

export interface Binding {
  suite: Suite;
  sessionId: Uint8Array;
  transcriptHash: Uint8Array;
  binder: Uint8Array;
}

/** Largest valid user_data: the JSON with XWING-DRAFT10 is 215 bytes; anything longer is refused unparsed. */
const MAX_USER_DATA_BYTES = 256;
const KEYS = ['protocol', 'key_exchange', 'session_id', 'transcript_hash', 'binder'] as const;
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function assertBinding(binding: Binding): void {
  if (!isSuite(binding.suite)) throw new SteveError('STEVE_BAD_ARGUMENT', '"suite" must be X25519 or XWING-DRAFT10');
  assertBytes(binding.sessionId, 'sessionId', SESSION_ID_BYTES);
  assertBytes(binding.transcriptHash, 'transcriptHash', TRANSCRIPT_HASH_BYTES);
  assertBytes(binding.binder, 'binder', BINDER_BYTES);
}

function render(protocol: string, suite: string, sessionId: string, transcriptHash: string, binder: string): Uint8Array {
  // JSON.stringify of an object literal keeps this insertion order and adds no whitespace.
  return utf8(JSON.stringify({ protocol, key_exchange: suite, session_id: sessionId, transcript_hash: transcriptHash, binder }));
}

/** The exact §5 `user_data` bytes for a session. */
export function encodeBindingUserData(binding: Binding): Uint8Array {
  assertBinding(binding);
  return render(PROTOCOL_ID, binding.suite, toBase64Url(binding.sessionId), toBase64Url(binding.transcriptHash), toBase64Url(binding.binder));
}

function fail(message: string, cause?: unknown): never {
  throw new SteveError('STEVE_BINDING', `user_data binding: ${message}`, cause === undefined ? undefined : { cause });
}

function decodeField(value: string, length: number, name: string): Uint8Array {
  const bytes = fromBase64Url(value);
  if (bytes === undefined || bytes.length !== length) fail(`"${name}" is not ${length} bytes of unpadded base64url`);
  return bytes;
}

/**
 * Checks that `userData` (the document's `user_data`) is exactly the binding of `expected`. Throws
 * STEVE_BINDING otherwise; returns nothing.
 */
export function checkBindingUserData(userData: Uint8Array, expected: Binding): void {
  assertBinding(expected);
  if (!(userData instanceof Uint8Array)) fail('expected bytes');
  if (userData.length > MAX_USER_DATA_BYTES) fail('too long');
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8Decoder.decode(userData));
  } catch (error) {
    fail('not UTF-8 JSON', error);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail('not a JSON object');
  const record = parsed as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length !== KEYS.length || !KEYS.every((key) => Object.prototype.hasOwnProperty.call(record, key))) fail('not exactly the five fields');
  const [protocol, suite, sessionId, transcriptHash, binder] = KEYS.map((key) => record[key]);
  if (typeof protocol !== 'string' || typeof suite !== 'string' || typeof sessionId !== 'string' || typeof transcriptHash !== 'string' || typeof binder !== 'string') {
    fail('a field is not text');
  }
  if (!constantTimeEqual(render(protocol, suite, sessionId, transcriptHash, binder), userData)) fail('not in the exact form of specs/steve.md §5');
  const fields: ReadonlyArray<readonly [Uint8Array, Uint8Array]> = [
    [utf8(protocol), utf8(PROTOCOL_ID)],
    [utf8(suite), utf8(expected.suite)],
    [decodeField(sessionId, SESSION_ID_BYTES, 'session_id'), expected.sessionId],
    [decodeField(transcriptHash, TRANSCRIPT_HASH_BYTES, 'transcript_hash'), expected.transcriptHash],
    [decodeField(binder, BINDER_BYTES, 'binder'), expected.binder],
  ];
  // Every field is compared, each without an early exit, and the results are combined without
  // branching: the time does not reveal which field differs (§5 step 3).
  let same = 1;
  for (const [got, want] of fields) same &= constantTimeEqual(got, want) ? 1 : 0;
  if (same !== 1) fail('does not match this session');
}
