/**
 * STEVE records (specs/steve.md §4): AES-256-GCM under the direction's key, with
 *   nonce (12) = iv_prefix(4) || u64be(sequence)
 *   AAD   (39) = MAGIC || message_type || direction || session_id || u64be(sequence)
 * and the sealed form ciphertext || 16-byte tag, as the envelope's `ciphertext` carries it (§3).
 *
 * The cipher sits behind the small `Aead` interface so the Node server can plug in node:crypto (the fast
 * path, STYLE.md) while this file stays pure and browser-safe; `nobleAesGcm` is the pure implementation.
 * This file does not pick sequences or remember them: nonce uniqueness is the session's job (one
 * sequence per direction per record) and replay is replay.ts.
 */

import { gcm } from '@noble/ciphers/aes.js';
import { SteveError } from '../errors.js';
import { assertBytes, writeU64 } from './bytes.js';
import {
  AAD_BYTES,
  CONFIRMATION_SEQUENCE,
  DIRECTION,
  IV_PREFIX_BYTES,
  KEY_BYTES,
  MAGIC_LENGTH,
  MESSAGE_TYPE,
  RECORD_NONCE_BYTES,
  SESSION_ID_BYTES,
  TAG_BYTES,
  magic,
  type Direction,
  type MessageType,
} from './constants.js';
import type { SessionKeys } from './kdf.js';
import { isSequence } from './sequence.js';

/** An AEAD with a 32-byte key, 12-byte nonce and 16-byte tag appended to the ciphertext. */
export interface Aead {
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** The plaintext, or null when the tag does not verify (never a partial plaintext). */
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null;
  /**
   * Optional: `prefix || seal(...)` in one new buffer. A stream frame is a 5-byte header before the
   * sealed record (stream.ts); an implementation that can write both into one allocation saves a copy of
   * every record on the hot path (node:crypto's does).
   */
  sealPrefixed?(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, prefix: Uint8Array): Uint8Array;
  /**
   * Optional: the sealed record as pieces, ciphertext then the tag, not joined: a sender that writes
   * them to a socket one after another needs no buffer of the whole record (node:crypto's has it).
   */
  sealPieces?(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array[];
}

/** Read only: copied into every AAD. */
const MAGIC = magic();

function assertAeadArguments(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array): void {
  assertBytes(key, 'key', KEY_BYTES, 'STEVE_KEY');
  assertBytes(nonce, 'nonce', RECORD_NONCE_BYTES);
  assertBytes(aad, 'aad');
}

/** AES-256-GCM on @noble/ciphers: pure JS, runs in browsers and service workers. */
export const nobleAesGcm: Aead = Object.freeze({
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    assertAeadArguments(key, nonce, aad);
    assertBytes(plaintext, 'plaintext');
    return gcm(key, nonce, aad).encrypt(plaintext);
  },
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
    assertAeadArguments(key, nonce, aad);
    assertBytes(sealed, 'sealed');
    if (sealed.length < TAG_BYTES) return null;
    try {
      return gcm(key, nonce, aad).decrypt(sealed);
    } catch {
      // noble throws on a tag mismatch; the caller only needs "did not open".
      return null;
    }
  },
});

function assertType(type: unknown): asserts type is MessageType {
  if (type !== MESSAGE_TYPE.CONFIRMATION && type !== MESSAGE_TYPE.APPLICATION) throw new SteveError('STEVE_BAD_ARGUMENT', '"type" must be 0 or 1');
}

function assertDirection(direction: unknown): asserts direction is Direction {
  if (direction !== DIRECTION.C2S && direction !== DIRECTION.S2C) throw new SteveError('STEVE_BAD_ARGUMENT', '"direction" must be 0 or 1');
}

function assertSequence(sequence: unknown): asserts sequence is number {
  if (!isSequence(sequence)) throw new SteveError('STEVE_BAD_ARGUMENT', '"sequence" expected an integer in 0..2^53-1');
}

/** iv_prefix(4) || u64be(sequence) (§4). */
export function recordNonce(ivPrefix: Uint8Array, sequence: number): Uint8Array {
  assertBytes(ivPrefix, 'ivPrefix', IV_PREFIX_BYTES, 'STEVE_KEY');
  assertSequence(sequence);
  const nonce = new Uint8Array(RECORD_NONCE_BYTES);
  nonce.set(ivPrefix, 0);
  writeU64(nonce, IV_PREFIX_BYTES, sequence);
  return nonce;
}

/** MAGIC || message_type || direction || session_id || u64be(sequence): 39 bytes (§4). */
export function recordAad(type: MessageType, direction: Direction, sessionId: Uint8Array, sequence: number): Uint8Array {
  assertType(type);
  assertDirection(direction);
  assertBytes(sessionId, 'sessionId', SESSION_ID_BYTES);
  assertSequence(sequence);
  const aad = new Uint8Array(AAD_BYTES);
  aad.set(MAGIC, 0);
  aad[MAGIC_LENGTH] = type;
  aad[MAGIC_LENGTH + 1] = direction;
  aad.set(sessionId, MAGIC_LENGTH + 2);
  writeU64(aad, MAGIC_LENGTH + 2 + SESSION_ID_BYTES, sequence);
  return aad;
}

/** Which record this is: the AAD's fields. */
export interface RecordHeader {
  type: MessageType;
  direction: Direction;
  sessionId: Uint8Array;
  sequence: number;
}

/**
 * Confirmation records use sequence 0 and application records 1 and up (§5 steps 4-6; §7: "sequence 0 is
 * only for confirmation"). A record that breaks this is malformed: STEVE_PROTOCOL, checked before any
 * cryptography so the answer does not depend on the key.
 */
export function assertRecordSequence(type: MessageType, sequence: number): void {
  assertType(type);
  assertSequence(sequence);
  const ok = type === MESSAGE_TYPE.CONFIRMATION ? sequence === CONFIRMATION_SEQUENCE : sequence > CONFIRMATION_SEQUENCE;
  if (!ok) throw new SteveError('STEVE_PROTOCOL', type === MESSAGE_TYPE.CONFIRMATION ? 'a confirmation record must use sequence 0' : 'sequence 0 is only for confirmation');
}

function directionKeys(keys: SessionKeys, direction: Direction): { key: Uint8Array; iv: Uint8Array } {
  return direction === DIRECTION.C2S ? { key: keys.c2sKey, iv: keys.c2sIv } : { key: keys.s2cKey, iv: keys.s2cIv };
}

/** Seals `plaintext` under the header's direction key; returns ciphertext || tag for the envelope. */
export function sealRecord(aead: Aead, keys: SessionKeys, header: RecordHeader, plaintext: Uint8Array): Uint8Array {
  assertRecordSequence(header.type, header.sequence);
  assertDirection(header.direction);
  const { key, iv } = directionKeys(keys, header.direction);
  return aead.seal(key, recordNonce(iv, header.sequence), recordAad(header.type, header.direction, header.sessionId, header.sequence), plaintext);
}

/** Opens a sealed record; throws STEVE_DECRYPT when it does not verify, STEVE_PROTOCOL for a bad sequence. */
export function openRecord(aead: Aead, keys: SessionKeys, header: RecordHeader, sealed: Uint8Array): Uint8Array {
  assertRecordSequence(header.type, header.sequence);
  assertDirection(header.direction);
  const { key, iv } = directionKeys(keys, header.direction);
  const plaintext = aead.open(key, recordNonce(iv, header.sequence), recordAad(header.type, header.direction, header.sessionId, header.sequence), sealed);
  if (plaintext === null) throw new SteveError('STEVE_DECRYPT', 'record did not open');
  return plaintext;
}
