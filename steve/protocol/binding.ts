/**
 * The attestation binding (specs/steve.md §5 steps 2-3): the server asks the NSM for a document whose
 * `user_data` is the UTF-8 JSON object
 *   {"protocol":"STEVE-E2P-V2","key_exchange":<suite>,"session_id":b64u,"transcript_hash":b64u,"binder":b64u}
 * (b64u = base64url without padding), and the client checks all five fields in constant time.
 *
 * A server that speaks one of our extensions (stream.md §1: `stream-1`) appends a sixth field,
 * `"extensions":[names]`; STEVE's own clients ignore it, ours read it from here (the signed document is
 * the one place the host cannot add or remove it).
 *
 * Decision (ours): §5 gives the object byte for byte (key order, no whitespace), so the check accepts
 * only that exact form (with or without the sixth field). It parses the JSON (fatal UTF-8, exactly these five keys, text values, canonical
 * unpadded base64url of 16/32/32 bytes), requires that re-encoding the parsed fields gives the input bytes
 * (which refuses duplicate keys, whitespace, reordering and escapes that JSON.parse would let through),
 * and then compares every field with the expected values without an early exit. Any failure is
 * STEVE_BINDING. This file does not verify the document itself (nsm/ does). Pure: no I/O.
 */

import { SteveError } from '../errors.js';
import { assertBytes, constantTimeEqual, fromBase64Url, toBase64Url, utf8 } from './bytes.js';
import { BINDER_BYTES, PROTOCOL_ID, SESSION_ID_BYTES, TRANSCRIPT_HASH_BYTES, isSuite, type Suite } from './constants.js';
import { EXTENSION_NAME_RE, MAX_EXTENSIONS } from './stream.js';

export interface Binding {
  suite: Suite;
  sessionId: Uint8Array;
  transcriptHash: Uint8Array;
  binder: Uint8Array;
  /** Our extensions the server speaks (stream.md §1); absent or empty: the five-field form of §5. */
  extensions?: readonly string[];
}

/**
 * Largest valid user_data: the five-field JSON with XWING-DRAFT10 is 215 bytes, and the sixth field at
 * most 16 + 8 names of 32 characters with quotes and commas (288): 512, the NSM's own user_data cap.
 * Anything longer is refused unparsed.
 */
const MAX_USER_DATA_BYTES = 512;
const KEYS = ['protocol', 'key_exchange', 'session_id', 'transcript_hash', 'binder'] as const;
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function validExtensions(names: unknown): names is string[] {
  return (
    Array.isArray(names) &&
    names.length >= 1 &&
    names.length <= MAX_EXTENSIONS &&
    names.every((name) => typeof name === 'string' && EXTENSION_NAME_RE.test(name)) &&
    new Set(names).size === names.length
  );
}

function assertBinding(binding: Binding): void {
  if (!isSuite(binding.suite)) throw new SteveError('STEVE_BAD_ARGUMENT', '"suite" must be X25519 or XWING-DRAFT10');
  if (binding.extensions !== undefined && binding.extensions.length > 0 && !validExtensions([...binding.extensions])) {
    throw new SteveError('STEVE_BAD_ARGUMENT', `"extensions" expected 1..${MAX_EXTENSIONS} distinct names of [a-z0-9-]{1,32}`);
  }
  assertBytes(binding.sessionId, 'sessionId', SESSION_ID_BYTES);
  assertBytes(binding.transcriptHash, 'transcriptHash', TRANSCRIPT_HASH_BYTES);
  assertBytes(binding.binder, 'binder', BINDER_BYTES);
}

function render(protocol: string, suite: string, sessionId: string, transcriptHash: string, binder: string, extensions?: readonly string[]): Uint8Array {
  // JSON.stringify of an object literal keeps this insertion order and adds no whitespace.
  const fields = { protocol, key_exchange: suite, session_id: sessionId, transcript_hash: transcriptHash, binder };
  return utf8(JSON.stringify(extensions === undefined || extensions.length === 0 ? fields : { ...fields, extensions }));
}

/** The exact §5 `user_data` bytes for a session (with the `extensions` field when it has any). */
export function encodeBindingUserData(binding: Binding): Uint8Array {
  assertBinding(binding);
  return render(PROTOCOL_ID, binding.suite, toBase64Url(binding.sessionId), toBase64Url(binding.transcriptHash), toBase64Url(binding.binder), binding.extensions);
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
 * Checks that `userData` (the document's `user_data`) is exactly the binding of `expected` (whose own
 * `extensions` are not compared). Throws STEVE_BINDING otherwise; returns the extensions the server
 * listed (empty for the five-field form).
 */
export function checkBindingUserData(userData: Uint8Array, expected: Binding): readonly string[] {
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
  const hasExtensions = Object.prototype.hasOwnProperty.call(record, 'extensions');
  if (keys.length !== KEYS.length + (hasExtensions ? 1 : 0) || !KEYS.every((key) => Object.prototype.hasOwnProperty.call(record, key))) {
    fail('not exactly the five fields (and optionally "extensions")');
  }
  const extensions = hasExtensions ? record.extensions : undefined;
  if (hasExtensions && !validExtensions(extensions)) fail('"extensions" is not a list of distinct extension names');
  const [protocol, suite, sessionId, transcriptHash, binder] = KEYS.map((key) => record[key]);
  if (typeof protocol !== 'string' || typeof suite !== 'string' || typeof sessionId !== 'string' || typeof transcriptHash !== 'string' || typeof binder !== 'string') {
    fail('a field is not text');
  }
  if (!constantTimeEqual(render(protocol, suite, sessionId, transcriptHash, binder, extensions as string[] | undefined), userData)) fail('not in the exact form of specs/steve.md §5');
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
  return Object.freeze([...((extensions as string[] | undefined) ?? [])]);
}
