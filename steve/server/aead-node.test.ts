/**
 * aead-node.ts against McGrew-Viega's AES-256 GCM vectors and against the protocol's pure
 * `nobleAesGcm`, byte for byte both ways; `sealParts` equal to one `seal` however the plaintext is cut;
 * every tag, ciphertext, nonce and AAD change refused with null and no partial plaintext; hostile
 * arguments (wrong lengths, offset views) handled like noble.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { aeadConformance } from '../../test/aead-conformance.js';
import { hex } from '../../test/vectors/steve/vectors.js';
import { DIRECTION, createStreamWriter, nobleAesGcm } from '../protocol/index.js';
import { nodeAesGcm, sealParts } from './aead-node.js';

const bytes = (length: number, seed = 1): Uint8Array => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);

describe('nodeAesGcm', () => {
  aeadConformance(nodeAesGcm);

  it('agrees with nobleAesGcm both ways (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 300 }), (key, nonce, aad, plaintext) => {
        const ours = nodeAesGcm.seal(key, nonce, aad, plaintext);
        expect(hex(ours)).toBe(hex(nobleAesGcm.seal(key, nonce, aad, plaintext)));
        expect(hex(nobleAesGcm.open(key, nonce, aad, ours)!)).toBe(hex(plaintext));
        expect(hex(nodeAesGcm.open(key, nonce, aad, ours)!)).toBe(hex(plaintext));
      }),
      { seed: 20_251_121, numRuns: 200 },
    );
  });

  it('sealParts gives the bytes of one seal however the plaintext is cut', () => {
    const key = bytes(32);
    const nonce = bytes(12, 7);
    const aad = bytes(39, 3);
    const plaintext = bytes(1000, 5);
    const whole = nodeAesGcm.seal(key, nonce, aad, plaintext);
    for (const cuts of [[0], [1], [15, 16, 17], [100, 500, 999], [0, 0, 1000]]) {
      const pieces: Uint8Array[] = [];
      let from = 0;
      for (const cut of [...cuts, plaintext.length]) {
        pieces.push(plaintext.subarray(from, Math.max(from, cut)));
        from = Math.max(from, cut);
      }
      const { parts, tag } = sealParts(key, nonce, aad, pieces);
      const joined = Buffer.concat([...parts, tag]);
      expect(hex(joined), cuts.join(',')).toBe(hex(whole));
    }
  });
});

describe('stream frames on node:crypto (sealPrefixed, sealPieces)', () => {
  const key = new Uint8Array(32).fill(9);
  const target = { direction: DIRECTION.S2C, sessionId: new Uint8Array(16).fill(4), sequence: 3 } as const;

  it('joined, prefixed and in pieces: the same bytes as the pure AEAD writes, for every length', () => {
    for (const length of [1, 15, 16, 17, 4096, 65_535, 65_536, 65_537, 200_000]) {
      const chunk = Uint8Array.from({ length }, (_, i) => (i * 7) & 0xff);
      const writers = [nobleAesGcm, nodeAesGcm, nodeAesGcm].map((aead) => createStreamWriter(aead, key, target));
      for (const writer of writers) writer.head(Uint8Array.of(1));
      const pure = Buffer.concat(writers[0]!.data(chunk));
      expect(Buffer.concat(writers[1]!.data(chunk)).equals(pure), `joined ${length}`).toBe(true);
      expect(Buffer.concat(writers[2]!.dataPieces(chunk)).equals(pure), `pieces ${length}`).toBe(true);
      expect(writers[2]!.index).toBe(writers[0]!.index);
    }
  });
});
