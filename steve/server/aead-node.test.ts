/**
 * aead-node.ts against McGrew-Viega's AES-256 GCM vectors and against the protocol's pure
 * `nobleAesGcm`, byte for byte both ways; `sealParts` equal to one `seal` however the plaintext is cut;
 * every tag, ciphertext, nonce and AAD change refused with null and no partial plaintext; hostile
 * arguments (wrong lengths, offset views) handled like noble.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { code } from '../../test/steve-codes.js';
import { gcmVectors, hex, unhex } from '../../test/vectors/steve/vectors.js';
import { DIRECTION, createStreamWriter, nobleAesGcm } from '../protocol/index.js';
import { nodeAesGcm, sealParts } from './aead-node.js';

const bytes = (length: number, seed = 1): Uint8Array => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);

describe('nodeAesGcm', () => {
  it('McGrew-Viega AES-256 test cases 13-16', () => {
    for (const v of gcmVectors().cases) {
      const sealed = nodeAesGcm.seal(unhex(v.key), unhex(v.iv), unhex(v.aad), unhex(v.plaintext));
      expect(hex(sealed), v.name).toBe(v.ciphertext + v.tag);
      expect(hex(nodeAesGcm.open(unhex(v.key), unhex(v.iv), unhex(v.aad), sealed)!), v.name).toBe(v.plaintext);
    }
  });

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

  it('refuses every single-bit change of ciphertext, tag, nonce and AAD with null', () => {
    const key = bytes(32);
    const nonce = bytes(12, 2);
    const aad = bytes(39, 4);
    const sealed = nodeAesGcm.seal(key, nonce, aad, bytes(24, 9));
    for (const [name, target] of [
      ['sealed', sealed],
      ['nonce', nonce],
      ['aad', aad],
    ] as const) {
      for (let bit = 0; bit < target.length * 8; bit++) {
        const copy = target.slice();
        copy[bit >> 3]! ^= 1 << (bit & 7);
        const args = { sealed, nonce, aad, [name]: copy };
        expect(nodeAesGcm.open(key, args.nonce, args.aad, args.sealed), `${name} bit ${bit}`).toBeNull();
      }
    }
    expect(nodeAesGcm.open(bytes(32, 99), nonce, aad, sealed)).toBeNull();
    expect(nodeAesGcm.open(key, nonce, aad, sealed.subarray(0, 15))).toBeNull();
    expect(nodeAesGcm.open(key, nonce, aad, sealed.subarray(0, sealed.length - 1))).toBeNull();
  });

  it('takes offset views and empty plaintexts like noble', () => {
    const backing = bytes(200, 11);
    const key = backing.subarray(3, 35);
    const nonce = backing.subarray(40, 52);
    const aad = backing.subarray(60, 99);
    const plaintext = backing.subarray(101, 180);
    expect(hex(nodeAesGcm.seal(key, nonce, aad, plaintext))).toBe(hex(nobleAesGcm.seal(key, nonce, aad, plaintext)));
    const empty = nodeAesGcm.seal(key, nonce, new Uint8Array(0), new Uint8Array(0));
    expect(empty.length).toBe(16);
    expect(nodeAesGcm.open(key, nonce, new Uint8Array(0), empty)).toEqual(new Uint8Array(0));
  });

  it('refuses wrong argument types and lengths with coded errors', () => {
    const good = { key: bytes(32), nonce: bytes(12), aad: bytes(3), data: bytes(20) };
    expect(code(() => nodeAesGcm.seal(bytes(31), good.nonce, good.aad, good.data))).toBe('STEVE_KEY');
    expect(code(() => nodeAesGcm.seal(bytes(33), good.nonce, good.aad, good.data))).toBe('STEVE_KEY');
    expect(code(() => nodeAesGcm.seal(good.key, bytes(16), good.aad, good.data))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => nodeAesGcm.seal(good.key, good.nonce, 'aad' as unknown as Uint8Array, good.data))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => nodeAesGcm.seal(good.key, good.nonce, good.aad, null as unknown as Uint8Array))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => nodeAesGcm.open([...good.key] as unknown as Uint8Array, good.nonce, good.aad, good.data))).toBe('STEVE_KEY');
    expect(code(() => nodeAesGcm.open(good.key, good.nonce, good.aad, 'x' as unknown as Uint8Array))).toBe('STEVE_BAD_ARGUMENT');
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
