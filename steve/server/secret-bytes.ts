/**
 * Secret bytes on the server kept where a wipe reaches them (specs/steve.md §4: "wipe the shared secret
 * after deriving"). V8 keeps a Uint8Array of up to 64 bytes inside its heap and moves it out the first
 * time native code reads it, leaving the old bytes behind as unreachable garbage; its scavenger can copy
 * it too. An ArrayBuffer made by its constructor lives outside the heap from the start, so a secret
 * copied into one by JavaScript is the one copy, which node:crypto reads in place and a fill(0) clears.
 * test/steve/secret-wipe.test.ts measures what is left in a running agent.
 */

import { randomFillSync } from 'node:crypto';
import type { RandomBytes } from '../protocol/index.js';
import { SteveError } from '../errors.js';

/** `bytes` copied into an ArrayBuffer of their own; the source is left alone. */
export function ownCopy(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(new ArrayBuffer(bytes.length));
  out.set(bytes);
  return out;
}

/**
 * `random(length)` for a secret: copied into an ArrayBuffer of its own, and the bytes `random` returned
 * zeroed, so the caller's array does not keep a second copy of a key (the copy matters when `random`
 * reuses its buffer). The caller zeroes the result.
 */
export function drawSecret(random: RandomBytes, length: number): Uint8Array {
  if (typeof random !== 'function') throw new SteveError('STEVE_BAD_ARGUMENT', '"random" expected a function');
  const bytes = random(length);
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) throw new SteveError('STEVE_BAD_ARGUMENT', `"random()" expected ${length} bytes`);
  const out = ownCopy(bytes);
  bytes.fill(0);
  return out;
}

/**
 * The server's default `random`: `length` bytes from the system's CSPRNG in an ArrayBuffer of their own
 * and in no other copy (`new Uint8Array(randomBytes(n))` would leave the Buffer randomBytes filled, an
 * ephemeral key's scalar among them, unwiped beside the copy).
 */
export function nodeRandomBytes(length: number): Uint8Array {
  return randomFillSync(new Uint8Array(new ArrayBuffer(length)));
}

/** Bytes of public randomness drawn from the system at a time (`publicRandomBytes`). */
const PUBLIC_POOL_BYTES = 4096;
let publicPool = new Uint8Array(0);
let publicAt = 0;

/**
 * `length` random bytes for values that are public once made (session ids), from a pool the system's
 * CSPRNG fills 4 KiB at a time: one `randomFillSync` costs the server about as much for 16 bytes as for
 * 4 KiB (a job object per call), and a handshake draws a session id. Never for secrets: the pool holds
 * values before they are used, and nothing wipes them.
 */
export function publicRandomBytes(length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0 || length > PUBLIC_POOL_BYTES) throw new SteveError('STEVE_BAD_ARGUMENT', `"length" expected 0..${PUBLIC_POOL_BYTES}`);
  if (publicAt + length > publicPool.length) {
    publicPool = randomFillSync(new Uint8Array(PUBLIC_POOL_BYTES));
    publicAt = 0;
  }
  const out = publicPool.slice(publicAt, publicAt + length);
  publicAt += length;
  return out;
}
