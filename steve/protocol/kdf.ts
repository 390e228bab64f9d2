/**
 * The STEVE v2 key schedule (specs/steve.md §4): the transcript bytes, their SHA-256, and the five
 * HKDF-SHA256 outputs (two AES-256-GCM keys, two 4-byte IV prefixes, the 32-byte attestation binder),
 * plus the stream extension's two keys (ours, stream.md §2).
 * It consumes the shared secret: `deriveSessionKeys` zeroes the array it is given and its own PRK, as §4
 * asks ("wipe the shared secret after deriving"). Pure: no I/O, no randomness.
 */

import { extract, expand } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { SteveError } from '../errors.js';
import { assertBytes, concatBytes, utf8, wipe } from './bytes.js';
import {
  BINDER_BYTES,
  CLIENT_KEY_MATERIAL_BYTES,
  CONTEXT_HASH_BYTES,
  IV_PREFIX_BYTES,
  KEY_BYTES,
  LABEL_BINDER,
  LABEL_C2S_IV,
  LABEL_C2S_KEY,
  LABEL_S2C_IV,
  LABEL_S2C_KEY,
  LABEL_STREAM_C2S_KEY,
  LABEL_STREAM_S2C_KEY,
  NONCE_BYTES,
  SERVER_KEY_MATERIAL_BYTES,
  SESSION_ID_BYTES,
  SHARED_SECRET_BYTES,
  TRANSCRIPT_HASH_BYTES,
  isSuite,
  magic,
  type Suite,
} from './constants.js';

export interface TranscriptInput {
  suite: Suite;
  clientNonce: Uint8Array;
  clientKeyMaterial: Uint8Array;
  serverKeyMaterial: Uint8Array;
  sessionId: Uint8Array;
  contextHash: Uint8Array;
}

export interface SessionKeys {
  c2sKey: Uint8Array;
  s2cKey: Uint8Array;
  c2sIv: Uint8Array;
  s2cIv: Uint8Array;
  binder: Uint8Array;
  /** The stream extension's keys (stream.md §2). */
  streamC2sKey: Uint8Array;
  streamS2cKey: Uint8Array;
}

/**
 * transcript = MAGIC || ASCII(key_exchange) || 0x00 || client_nonce || client_key_material
 *              || server_key_material || session_id || context_hash            (§4)
 * Every field has a fixed length for its suite, so the concatenation is unambiguous.
 */
export function transcript(input: TranscriptInput): Uint8Array {
  if (!isSuite(input.suite)) throw new SteveError('STEVE_BAD_ARGUMENT', '"suite" must be X25519 or XWING-DRAFT10');
  assertBytes(input.clientNonce, 'clientNonce', NONCE_BYTES);
  assertBytes(input.clientKeyMaterial, 'clientKeyMaterial', CLIENT_KEY_MATERIAL_BYTES[input.suite], 'STEVE_KEY');
  assertBytes(input.serverKeyMaterial, 'serverKeyMaterial', SERVER_KEY_MATERIAL_BYTES[input.suite], 'STEVE_KEY');
  assertBytes(input.sessionId, 'sessionId', SESSION_ID_BYTES);
  assertBytes(input.contextHash, 'contextHash', CONTEXT_HASH_BYTES);
  return concatBytes(
    magic(),
    utf8(input.suite),
    Uint8Array.of(0),
    input.clientNonce,
    input.clientKeyMaterial,
    input.serverKeyMaterial,
    input.sessionId,
    input.contextHash,
  );
}

/** transcript_hash = SHA-256(transcript) (§4). */
export function transcriptHash(input: TranscriptInput): Uint8Array {
  return sha256(transcript(input));
}

/** HKDF-SHA256 (RFC 5869): exported for the RFC's own vectors; the schedule uses extract once, then expand per output. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  assertBytes(ikm, 'ikm');
  assertBytes(salt, 'salt');
  assertBytes(info, 'info');
  const prk = extract(sha256, ikm, salt);
  try {
    return expand(sha256, prk, info, length);
  } finally {
    wipe(prk);
  }
}

/**
 * `bytes` moved into an ArrayBuffer of their own, the source zeroed. V8 keeps a small Uint8Array's
 * bytes inside its heap and moves them out the first time native code reads them (node:crypto does,
 * on every record), leaving the old bytes behind as garbage that no wipe can reach. A key that lives
 * in its own buffer from the start is the one copy, and `wipeSessionKeys` zeroes it where it is.
 */
function ownBuffer(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(new ArrayBuffer(bytes.length));
  out.set(bytes);
  wipe(bytes);
  return out;
}

/** One output of the session key schedule. */
export interface ScheduleOutput {
  readonly name: keyof SessionKeys;
  readonly label: string;
  readonly length: number;
}

/**
 * The schedule's outputs in order: each is HKDF-SHA256(ikm = shared_secret, salt = transcript_hash,
 * info = label, length) (§4, and stream.md §2 for the last two). Every implementation of the schedule
 * (this file, steve/server/kdf-node.ts, agent/handshake-native.ts) derives from this one table.
 */
export const SESSION_KEY_SCHEDULE: readonly ScheduleOutput[] = Object.freeze(
  ([
    { name: 'c2sKey', label: LABEL_C2S_KEY, length: KEY_BYTES },
    { name: 's2cKey', label: LABEL_S2C_KEY, length: KEY_BYTES },
    { name: 'c2sIv', label: LABEL_C2S_IV, length: IV_PREFIX_BYTES },
    { name: 's2cIv', label: LABEL_S2C_IV, length: IV_PREFIX_BYTES },
    { name: 'binder', label: LABEL_BINDER, length: BINDER_BYTES },
    { name: 'streamC2sKey', label: LABEL_STREAM_C2S_KEY, length: KEY_BYTES },
    { name: 'streamS2cKey', label: LABEL_STREAM_S2C_KEY, length: KEY_BYTES },
  ] satisfies ScheduleOutput[]).map((output) => Object.freeze(output)),
);

/**
 * Each output of SESSION_KEY_SCHEDULE, from one extract (§4). Zeroes `sharedSecret` in place before
 * returning (also when it throws after the length check).
 */
export function deriveSessionKeys(sharedSecret: Uint8Array, transcriptHashBytes: Uint8Array): SessionKeys {
  assertBytes(sharedSecret, 'sharedSecret', SHARED_SECRET_BYTES, 'STEVE_KEY');
  try {
    assertBytes(transcriptHashBytes, 'transcriptHash', TRANSCRIPT_HASH_BYTES);
    const prk = extract(sha256, sharedSecret, transcriptHashBytes);
    try {
      const keys: Partial<Record<keyof SessionKeys, Uint8Array>> = {};
      for (const { name, label, length } of SESSION_KEY_SCHEDULE) keys[name] = ownBuffer(expand(sha256, prk, utf8(label), length));
      return keys as SessionKeys;
    } finally {
      wipe(prk);
    }
  } finally {
    wipe(sharedSecret);
  }
}

/** Zeroes every key of a session (when it is closed or expires). */
export function wipeSessionKeys(keys: SessionKeys): void {
  wipe(keys.c2sKey, keys.s2cKey, keys.c2sIv, keys.s2cIv, keys.binder, keys.streamC2sKey, keys.streamS2cKey);
}
