/**
 * SHA-384 as the EIF code uses it: a streaming hasher chosen by the caller (node:crypto on Node for
 * speed, @noble/hashes by default so a browser computes the same PCRs), and the Nitro measurement rule
 * PCR = SHA-384(48 zero bytes || SHA-384(D)) (specs/nitro-enclave.md §2): a fresh register extended once.
 */

import { sha384 } from '@noble/hashes/sha2.js';

/** SHA-384 output, and the size of every Nitro PCR. */
export const SHA384_BYTES = 48;

export interface Sha384 {
  update(data: Uint8Array): unknown;
  digest(): Uint8Array;
}

/** Creates a fresh SHA-384 hasher. */
export type Sha384Factory = () => Sha384;

/** The browser-safe default (@noble/hashes). */
export const nobleSha384: Sha384Factory = () => sha384.create();

/** The value of a zeroed PCR after one extend with `digest`: SHA-384(48 zero bytes || digest). */
export function extendFromZero(digest: Uint8Array, hash: Sha384Factory = nobleSha384): Uint8Array {
  if (!(digest instanceof Uint8Array) || digest.length !== SHA384_BYTES) throw new TypeError(`"digest" expected ${SHA384_BYTES} bytes`);
  const h = hash();
  h.update(new Uint8Array(SHA384_BYTES));
  h.update(digest);
  return checkDigest(h.digest());
}

/** A hasher's output, checked: a factory that is not SHA-384 must not yield PCRs that look valid. */
export function checkDigest(digest: Uint8Array): Uint8Array {
  if (!(digest instanceof Uint8Array) || digest.length !== SHA384_BYTES) throw new TypeError(`the SHA-384 hasher returned ${digest instanceof Uint8Array ? digest.length : 'no'} bytes, expected ${SHA384_BYTES}`);
  // A copy as a plain Uint8Array: Node's Buffer (from node:crypto) must not leak past this module.
  return Uint8Array.from(digest);
}
