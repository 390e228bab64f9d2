/**
 * The STEVE v2 key schedule (specs/steve.md §4) on node:crypto, for the server: the HKDF-SHA256
 * outputs of the protocol's `deriveSessionKeys` (noble), computed so that no copy of the shared secret
 * outlives the call (§4: "wipe the shared secret after deriving"). kdf-node.test.ts holds the two equal
 * on random inputs and on the committed KATs; test/steve/secret-wipe.test.ts scans a running agent's
 * memory for the shared secrets it set up.
 *
 * Where the bytes go (measured with that test, which reads the agent's memory):
 * - The shared secret is copied, by JavaScript, into a buffer that lives outside V8's heap from the
 *   start, and the caller's array is zeroed. Handing the caller's array to node:crypto directly would
 *   be wrong for X-Wing's: noble returns a small on-heap Uint8Array, and V8 moves such an array out of
 *   its heap on first native use, leaving the old bytes behind as unreachable garbage no wipe reaches.
 * - HKDF is written out with `createHmac` (RFC 5869 §2.2-2.3). node:crypto's `hkdfSync` would be
 *   shorter, but it wraps its input key in a KeyObject, a native copy that lives until the garbage
 *   collector frees it: with it the scan found five copies per session (one per output). An Hmac
 *   reads our buffer in place, and OpenSSL cleanses its own state when `digest()` frees it.
 * - The PRK and each HMAC output come back as Buffers node:crypto allocated outside the heap; each
 *   output is copied into an ArrayBuffer of its own (what `wipeSessionKeys` zeroes, what AES reads in
 *   place) and the Buffers are zeroed.
 *
 * Also the transcript hash (§4) on node:crypto: the protocol's noble SHA-256 took about 20 us of a
 * handshake here (and more for X-Wing's 2.4 KB transcript), node:crypto's a few.
 */

import { createHash, createHmac } from 'node:crypto';
import {
  SESSION_KEY_SCHEDULE,
  SHARED_SECRET_BYTES,
  TRANSCRIPT_HASH_BYTES,
  transcript,
  type SessionKeys,
  type TranscriptInput,
} from '../protocol/index.js';
import { SteveError } from '../errors.js';
import { assertBytes } from './aead-node.js';

const HASH = 'sha256';
/** SHA-256's output length (RFC 5869's HashLen). */
const HASH_BYTES = 32;
/** RFC 5869 §2.3: L <= 255 * HashLen. */
const MAX_OUTPUT_BYTES = 255 * HASH_BYTES;

/**
 * The shared secret and the salt while the schedule runs, outside V8's heap (an ArrayBuffer made by
 * its constructor always is, unlike a small Uint8Array or Buffer.alloc). Shared by every call: each
 * fills, uses and zeroes them before it returns, and nothing in between awaits.
 */
const SECRET_SCRATCH = new Uint8Array(new ArrayBuffer(SHARED_SECRET_BYTES));
const SALT_SCRATCH = new Uint8Array(new ArrayBuffer(TRANSCRIPT_HASH_BYTES));

/** SESSION_KEY_SCHEDULE with each label as bytes, made once. */
const OUTPUTS = SESSION_KEY_SCHEDULE.map(({ name, label, length }) => [name, Buffer.from(label, 'latin1'), length] as const);

/** HKDF-Extract(salt, IKM) = HMAC-Hash(salt, IKM) (RFC 5869 §2.2); the caller zeroes the PRK. */
function extract(salt: Uint8Array, ikm: Uint8Array): Buffer {
  return createHmac(HASH, salt).update(ikm).digest();
}

/**
 * HKDF-Expand(PRK, info, L) (RFC 5869 §2.3): T(i) = HMAC-Hash(PRK, T(i-1) || info || i), the output
 * in an ArrayBuffer of its own; every T(i) is zeroed.
 */
function expand(prk: Buffer, info: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(new ArrayBuffer(length));
  let previous: Buffer | null = null;
  try {
    for (let i = 1, at = 0; at < length; i++, at += HASH_BYTES) {
      const hmac = createHmac(HASH, prk);
      if (previous !== null) hmac.update(previous);
      const block = hmac.update(info).update(Buffer.of(i)).digest();
      previous?.fill(0);
      previous = block;
      out.set(block.subarray(0, Math.min(HASH_BYTES, length - at)), at);
    }
    return out;
  } catch (error) {
    out.fill(0);
    throw error;
  } finally {
    previous?.fill(0);
  }
}

/**
 * HKDF-SHA256 (RFC 5869) on node:crypto, the output in an ArrayBuffer of its own; v1's key (§8).
 * node:crypto reads `ikm` in place: pass bytes that live outside V8's heap (a Buffer node:crypto
 * returned, or a view of an ArrayBuffer of their own) and zero them afterwards; nothing here copies them.
 */
export function nodeHkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  assertBytes(ikm, 'ikm');
  assertBytes(salt, 'salt');
  assertBytes(info, 'info');
  if (!Number.isInteger(length) || length < 1 || length > MAX_OUTPUT_BYTES) throw new SteveError('STEVE_BAD_ARGUMENT', `"length" expected 1..${MAX_OUTPUT_BYTES}`);
  const prk = extract(salt, ikm);
  try {
    return expand(prk, info, length);
  } finally {
    prk.fill(0);
  }
}

/**
 * Runs `derive` on copies of the shared secret and the transcript hash in the scratch buffers above
 * (outside V8's heap), once both are checked: zeroes `sharedSecret` in place first (also when the hash is
 * refused), and both copies once `derive` returns or throws. `sharedSecret` may be any Uint8Array (X-Wing's
 * is a small one noble made, in the heap). Both schedules run in it: `nodeDeriveSessionKeys` here and the
 * agent's native one (agent/handshake-native.ts).
 */
export function withScheduleInputs<T>(sharedSecret: Uint8Array, transcriptHash: Uint8Array, derive: (secret: Uint8Array, salt: Uint8Array) => T): T {
  assertBytes(sharedSecret, 'sharedSecret', SHARED_SECRET_BYTES, 'STEVE_KEY');
  SECRET_SCRATCH.set(sharedSecret);
  sharedSecret.fill(0);
  try {
    assertBytes(transcriptHash, 'transcriptHash', TRANSCRIPT_HASH_BYTES);
    SALT_SCRATCH.set(transcriptHash);
    return derive(SECRET_SCRATCH, SALT_SCRATCH);
  } finally {
    SECRET_SCRATCH.fill(0);
    SALT_SCRATCH.fill(0);
  }
}

/**
 * Each output = HKDF-SHA256(ikm = shared_secret, salt = transcript_hash, info = label, length) (§4),
 * equal to the protocol's `deriveSessionKeys`. Zeroes `sharedSecret` in place (also when it throws
 * after the length check), which may be any Uint8Array: it is copied into memory outside the heap first.
 */
export function nodeDeriveSessionKeys(sharedSecret: Uint8Array, transcriptHashBytes: Uint8Array): SessionKeys {
  return withScheduleInputs(sharedSecret, transcriptHashBytes, (secret, salt) => {
    let prk: Buffer | null = null;
    const made: Uint8Array[] = [];
    try {
      prk = extract(salt, secret);
      secret.fill(0);
      const keys: Partial<Record<keyof SessionKeys, Uint8Array>> = {};
      for (const [name, info, length] of OUTPUTS) {
        const key = expand(prk, info, length);
        made.push(key);
        keys[name] = key;
      }
      made.length = 0;
      return keys as SessionKeys;
    } finally {
      prk?.fill(0);
      // Only after a throw: the outputs made so far.
      for (const key of made) key.fill(0);
    }
  });
}

/** transcript_hash = SHA-256(transcript) (§4), equal to the protocol's `transcriptHash`. */
export function nodeTranscriptHash(input: TranscriptInput): Uint8Array {
  return new Uint8Array(createHash(HASH).update(transcript(input)).digest());
}
