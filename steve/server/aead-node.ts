/**
 * AES-256-GCM on node:crypto (OpenSSL, AES-NI): the protocol's `Aead` interface for the server's hot
 * path (specs/steve.md §1: 32-byte key, 12-byte nonce, 16-byte tag appended), about 1.4 GiB/s here
 * against noble's tens of MiB/s (STYLE.md "Tests and speed"). `aead-node.test.ts` checks it against
 * McGrew-Viega's vectors and against `nobleAesGcm` byte for byte.
 *
 * Besides `seal`/`open` it offers `sealParts`, which encrypts a plaintext given as several pieces and
 * returns the ciphertext as pieces plus the tag: the server seals `CBOR prefix || app body` without
 * first joining them, so a 32 MiB body is not copied to be encrypted (GCM is a stream mode, so the
 * pieces give the same bytes as one call), and `sealPrefixedParts`, the server's `ServerAead` method for
 * an answer's envelope. The agent gives the server its native AES-256-GCM instead
 * (agent/aes-gcm-native.ts); this one is the server's default and the clients'. `open` never returns a
 * partial plaintext: what `update` produced is wiped when the tag does not verify. This file does not
 * pick nonces (record.ts builds them from the sequence; the session table makes each sequence unique).
 */

import { createCipheriv, createDecipheriv } from 'node:crypto';
import { AAD_BYTES, KEY_BYTES, RECORD_NONCE_BYTES, TAG_BYTES, type Aead } from '../protocol/index.js';
import { SteveError } from '../errors.js';

const ALGORITHM = 'aes-256-gcm';
const GCM_OPTIONS = Object.freeze({ authTagLength: TAG_BYTES });

/**
 * node:crypto reads an argument's bytes through its ArrayBuffer. A small Uint8Array made in JS (the
 * protocol's nonce and AAD) keeps its bytes inside V8's heap, and handing it to native code first moves
 * them out: about 1.5 us per array, measured, on every record. So the nonce and the AAD are copied
 * into these two buffers, which live outside the heap already, and those are handed over instead.
 * Sharing them is safe: every function here fills, uses and is done with them before it returns.
 */
const NONCE_SCRATCH = Buffer.alloc(RECORD_NONCE_BYTES);
const AAD_SCRATCH = Buffer.alloc(AAD_BYTES);

/**
 * `bytes` copied into `scratch` when it fits (the scratch itself, or its first bytes); otherwise `bytes`
 * itself. Also agent/aes-gcm-native.ts's, with its own scratch buffers.
 */
export function outsideHeap(bytes: Uint8Array, scratch: Buffer): Uint8Array {
  if (bytes.length > scratch.length) return bytes;
  scratch.set(bytes);
  return bytes.length === scratch.length ? scratch : scratch.subarray(0, bytes.length);
}

/** A Uint8Array argument (of `length` bytes if given), or `code` (also agent/aes-gcm-native.ts's check). */
export function assertBytes(value: unknown, name: string, length?: number, code: 'STEVE_KEY' | 'STEVE_BAD_ARGUMENT' = 'STEVE_BAD_ARGUMENT'): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new SteveError(code, `"${name}" expected Uint8Array, got ${value === null ? 'null' : typeof value}`);
  if (length !== undefined && value.length !== length) throw new SteveError(code, `"${name}" expected ${length} bytes, got ${value.length}`);
}

/** The checks every AES-256-GCM call here makes first, with the codes noble's gives (shared with agent/aes-gcm-native.ts). */
export function assertAeadArguments(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array): void {
  assertBytes(key, 'key', KEY_BYTES, 'STEVE_KEY');
  assertBytes(nonce, 'nonce', RECORD_NONCE_BYTES);
  assertBytes(aad, 'aad');
}

/**
 * What the STEVE server seals and opens with: the protocol's `Aead` with `sealPrefixed`, and an answer's
 * envelope sealed from pieces. node:crypto's (`nodeAesGcm`, the default) or the agent's native one
 * (agent/aes-gcm-native.ts), which the agent passes in.
 */
export interface ServerAead extends Aead {
  sealPrefixed(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, prefix: Uint8Array): Uint8Array;
  /**
   * `prefix || AES-256-GCM(concat(pieces)) || tag` as buffers to write in order, without joining the
   * pieces first (an answer's head and the app's body chunks, up to 32 MiB).
   */
  sealPrefixedParts(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pieces: readonly Uint8Array[], prefix: Uint8Array): Uint8Array[];
}

/** The ciphertext pieces (one per plaintext piece, same lengths) and the 16-byte tag. */
export interface SealedParts {
  parts: Uint8Array[];
  tag: Uint8Array;
}

/** Encrypts `pieces` as one plaintext (their concatenation) without joining them. */
export function sealParts(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pieces: readonly Uint8Array[]): SealedParts {
  assertAeadArguments(key, nonce, aad);
  const cipher = createCipheriv(ALGORITHM, key, outsideHeap(nonce, NONCE_SCRATCH), GCM_OPTIONS);
  if (aad.length > 0) cipher.setAAD(outsideHeap(aad, AAD_SCRATCH));
  const parts: Uint8Array[] = [];
  for (const piece of pieces) {
    assertBytes(piece, 'plaintext');
    if (piece.length > 0) parts.push(cipher.update(piece));
  }
  // GCM emits everything in update(); final() only computes the tag.
  const rest = cipher.final();
  if (rest.length > 0) parts.push(rest);
  return { parts, tag: cipher.getAuthTag() };
}

const EMPTY = new Uint8Array(0);

/** prefix || ciphertext || tag in one buffer (every byte written, so it need not be zeroed first). */
function sealJoined(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, prefix: Uint8Array): Uint8Array {
  assertBytes(plaintext, 'plaintext');
  const { parts, tag } = sealParts(key, nonce, aad, [plaintext]);
  const out = Buffer.allocUnsafe(prefix.length + plaintext.length + TAG_BYTES);
  out.set(prefix, 0);
  let at = prefix.length;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  out.set(tag, at);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** AES-256-GCM on node:crypto behind the protocol's `Aead` interface. */
export const nodeAesGcm: ServerAead = Object.freeze({
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    return sealJoined(key, nonce, aad, plaintext, EMPTY);
  },
  sealPieces(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array[] {
    assertBytes(plaintext, 'plaintext');
    const { parts, tag } = sealParts(key, nonce, aad, [plaintext]);
    parts.push(tag);
    return parts;
  },
  sealPrefixed(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, prefix: Uint8Array): Uint8Array {
    assertBytes(prefix, 'prefix');
    return sealJoined(key, nonce, aad, plaintext, prefix);
  },
  sealPrefixedParts(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pieces: readonly Uint8Array[], prefix: Uint8Array): Uint8Array[] {
    assertBytes(prefix, 'prefix');
    const { parts, tag } = sealParts(key, nonce, aad, pieces);
    return [prefix, ...parts, tag];
  },
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
    assertAeadArguments(key, nonce, aad);
    assertBytes(sealed, 'sealed');
    if (sealed.length < TAG_BYTES) return null;
    const split = sealed.length - TAG_BYTES;
    const decipher = createDecipheriv(ALGORITHM, key, outsideHeap(nonce, NONCE_SCRATCH), GCM_OPTIONS);
    decipher.setAuthTag(sealed.subarray(split));
    if (aad.length > 0) decipher.setAAD(outsideHeap(aad, AAD_SCRATCH));
    const plaintext = split > 0 ? decipher.update(sealed.subarray(0, split)) : new Uint8Array(0);
    try {
      decipher.final();
    } catch {
      // OpenSSL says "unable to authenticate data"; the caller only needs "did not open", and the
      // unauthenticated bytes must not survive.
      plaintext.fill(0);
      return null;
    }
    return plaintext;
  },
});
