/**
 * Record sequence numbers: the envelope carries them as an 8-byte big-endian BYTE STRING, not a CBOR
 * integer (specs/steve.md §3), and the record nonce and AAD end with the same u64be (§4). We hold them as
 * JS numbers in 0..2^53-1 (MAX_SEQUENCE, ours): a decoded value above that is refused rather than rounded.
 * Pure; no state (the replay window is replay.ts).
 */

import { SteveError } from '../errors.js';
import { assertBytes, writeU64 } from './bytes.js';
import { MAX_SEQUENCE, SEQUENCE_BYTES } from './constants.js';

/** True for an integer in 0..2^53-1. */
export function isSequence(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= MAX_SEQUENCE;
}

/** 8 big-endian bytes. Throws STEVE_BAD_ARGUMENT outside 0..2^53-1. */
export function sequenceToBytes(sequence: number): Uint8Array {
  if (!isSequence(sequence)) throw new SteveError('STEVE_BAD_ARGUMENT', '"sequence" expected an integer in 0..2^53-1');
  const out = new Uint8Array(SEQUENCE_BYTES);
  writeU64(out, 0, sequence);
  return out;
}

/**
 * Reads an 8-byte big-endian sequence from the wire. Throws STEVE_PROTOCOL for another length or a
 * value above 2^53-1 (the high 11 bits must be zero).
 */
export function sequenceFromBytes(bytes: Uint8Array): number {
  assertBytes(bytes, 'sequence', SEQUENCE_BYTES, 'STEVE_PROTOCOL');
  const sequence = readSequence(bytes, 0);
  if (sequence === null) throw new SteveError('STEVE_PROTOCOL', '"sequence" above 2^53-1');
  return sequence;
}

/** The 8 big-endian bytes at `at` (the caller has checked they are there) as a sequence; null above 2^53-1. */
export function readSequence(bytes: Uint8Array, at: number): number | null {
  const high = ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
  // 2^53 - 1 has 21 bits in the high word.
  if (high > 0x1f_ffff) return null;
  const low = ((bytes[at + 4]! << 24) | (bytes[at + 5]! << 16) | (bytes[at + 6]! << 8) | bytes[at + 7]!) >>> 0;
  return high * 0x1_0000_0000 + low;
}
