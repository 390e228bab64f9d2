/**
 * Walks every byte of every real document (test/vectors/nitro) and corrupts it: each single-byte change
 * in the envelope, protected header, payload (certificate and cabundle included) and signature must be
 * rejected with a coded error. Uses the node:crypto signature primitive (the noble one agrees: see
 * verify.test.ts) so the ~26,000 variants per pattern fit in the test budget.
 */

import { describe, expect, it } from 'vitest';
import { loadNitroVectors } from '../test/vectors/nitro.js';
import { parseAttestationDocument } from './document.js';
import { nodeP384Verifier } from './ecdsa-node.js';
import { NsmError } from './errors.js';
import { verifyAttestationDocument } from './verify.js';

/** XOR masks: flip the lowest bit, and replace the byte with its complement. */
const MASKS = [0x01, 0xff] as const;

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

describe.each(loadNitroVectors())('every single-byte corruption of $file', (v) => {
  it('is rejected with a coded error', () => {
    const doc = parseAttestationDocument(v.bytes);
    const regions = {
      protectedHeader: [indexOf(v.bytes, doc.protectedHeader), doc.protectedHeader.length],
      certificate: [indexOf(v.bytes, doc.certificate), doc.certificate.length],
      signature: [v.bytes.length - doc.signature.length, doc.signature.length],
      payload: [indexOf(v.bytes, doc.payload), doc.payload.length],
    } as const;
    for (const [start] of Object.values(regions)) expect(start).toBeGreaterThan(0);

    const options = { atMs: v.validFromMs + 1000, allowDebug: v.debug, verifier: nodeP384Verifier };
    const copy = Uint8Array.from(v.bytes);
    const accepted: number[] = [];
    const codes = new Map<string, number>();
    for (const mask of MASKS) {
      for (let i = 0; i < copy.length; i++) {
        copy[i]! ^= mask;
        try {
          verifyAttestationDocument(copy, options);
          accepted.push(i);
        } catch (err) {
          if (!(err instanceof NsmError)) throw err;
          codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
        }
        copy[i]! ^= mask;
      }
    }
    expect(accepted).toEqual([]);
    expect([...codes.values()].reduce((a, b) => a + b, 0)).toBe(v.bytes.length * MASKS.length);
    // Corruptions inside the signed payload are caught by the signature, outside it by the shape checks.
    expect(codes.get('ATTESTATION_BAD_SIGNATURE')).toBeGreaterThan(regions.payload[1]);
    // The untouched document still verifies: the walk restored every byte.
    expect(verifyAttestationDocument(copy, options).moduleId).toBe(v.moduleId);
  });
});
