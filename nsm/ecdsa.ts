/**
 * ECDSA P-384 / SHA-384 signature checks behind one small interface, so the verifier stays pure and
 * browser-safe (noble, the default) while Node callers can pass the node:crypto implementation from
 * `ecdsa-node.ts`, which is about 20x faster here. Both accept high-S signatures: some real Nitro
 * documents carry one (specs/nsm.md §3).
 */

import { p384 } from '@noble/curves/nist.js';

export interface P384Verifier {
  /**
   * True when `signature` (DER ECDSA-Sig-Value, or `r || s` for 'p1363') signs SHA-384(`message`)
   * under `publicKey` (an uncompressed SEC1 point, 97 bytes). Never throws on bad input: false instead.
   */
  verify(signature: Uint8Array, format: 'der' | 'p1363', message: Uint8Array, publicKey: Uint8Array): boolean;
}

export const nobleP384Verifier: P384Verifier = {
  verify(signature, format, message, publicKey) {
    try {
      return p384.verify(signature, message, publicKey, {
        format: format === 'der' ? 'der' : 'compact',
        lowS: false,
        prehash: true,
      });
    } catch {
      return false;
    }
  },
};
