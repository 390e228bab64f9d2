/**
 * kdf-node.ts against the protocol's noble key schedule: the same five keys from the committed KATs
 * (test/vectors/steve/kat.json, both suites) and from random inputs (fast-check, fixed seed); its
 * HKDF against RFC 5869 Appendix A and hkdfSync, lengths over one block included; the shared secret
 * zeroed, also when the transcript hash is refused; each output in an ArrayBuffer of its own.
 * (Whether copies survive in a running agent is test/steve/secret-wipe.test.ts's question.)
 */

import { hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { code } from '../../test/steve-codes.js';
import { hex, hkdfVectors, readVector, unhex } from '../../test/vectors/steve/vectors.js';
import { deriveSessionKeys, transcriptHash, wipeSessionKeys, type SessionKeys } from '../protocol/index.js';
import { nodeDeriveSessionKeys, nodeHkdfSha256, nodeTranscriptHash } from './kdf-node.js';

const filled = (length: number, byte: number): Uint8Array => new Uint8Array(length).fill(byte);
const NAMES = ['c2sKey', 's2cKey', 'c2sIv', 's2cIv', 'binder'] as const;

function hexKeys(keys: SessionKeys): Record<string, string> {
  return Object.fromEntries(NAMES.map((name) => [name, hex(keys[name])]));
}

describe('nodeDeriveSessionKeys (§4)', () => {
  const kat = readVector<{ vectors: { suite: string; sharedSecret: string; transcriptHash: string; keys: Record<string, string> }[] }>('kat.json');

  it.each(kat.vectors.map((v) => [v.suite, v] as const))('%s KAT: the committed keys', (_suite, v) => {
    expect(hexKeys(nodeDeriveSessionKeys(unhex(v.sharedSecret), unhex(v.transcriptHash)))).toEqual(v.keys);
  });

  it('equals the noble schedule on random inputs (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (secret, hash) => {
        expect(hexKeys(nodeDeriveSessionKeys(secret.slice(), hash))).toEqual(hexKeys(deriveSessionKeys(secret.slice(), hash)));
      }),
      { seed: 8, numRuns: 200 },
    );
  });

  it('takes the secret in a Buffer or a view into a larger array, and leaves the transcript hash alone', () => {
    const secret = filled(32, 0x5a);
    const hash = filled(32, 7);
    const want = hexKeys(deriveSessionKeys(secret.slice(), hash));
    expect(hexKeys(nodeDeriveSessionKeys(Buffer.from(secret), hash))).toEqual(want);
    const big = new Uint8Array(40);
    big.set(secret, 5);
    expect(hexKeys(nodeDeriveSessionKeys(big.subarray(5, 37), hash))).toEqual(want);
    expect(big.every((b) => b === 0)).toBe(true);
    expect(hex(hash)).toBe(hex(filled(32, 7)));
  });

  it('zeroes the shared secret; each output has an ArrayBuffer of its own, which wipeSessionKeys zeroes', () => {
    const secret = filled(32, 0xaa);
    const keys = nodeDeriveSessionKeys(secret, filled(32, 1));
    expect(secret.every((b) => b === 0)).toBe(true);
    for (const name of NAMES) {
      expect(keys[name].byteOffset, name).toBe(0);
      expect(keys[name].buffer.byteLength, name).toBe(keys[name].length);
    }
    expect(new Set(NAMES.map((name) => keys[name].buffer)).size).toBe(NAMES.length);
    expect([keys.c2sKey.length, keys.s2cKey.length, keys.c2sIv.length, keys.s2cIv.length, keys.binder.length]).toEqual([32, 32, 4, 4, 32]);
    wipeSessionKeys(keys);
    for (const name of NAMES) expect(keys[name].every((b) => b === 0), name).toBe(true);
  });

  it('refuses a bad transcript hash with STEVE_BAD_ARGUMENT and still zeroes the secret', () => {
    const secret = filled(32, 0xaa);
    expect(code(() => nodeDeriveSessionKeys(secret, filled(31, 1)))).toBe('STEVE_BAD_ARGUMENT');
    expect(secret.every((b) => b === 0)).toBe(true);
    const other = filled(32, 0xbb);
    expect(code(() => nodeDeriveSessionKeys(other, 'hash' as never))).toBe('STEVE_BAD_ARGUMENT');
    expect(other.every((b) => b === 0)).toBe(true);
  });

  it('refuses a shared secret of the wrong length or type with STEVE_KEY', () => {
    expect(code(() => nodeDeriveSessionKeys(filled(31, 1), filled(32, 1)))).toBe('STEVE_KEY');
    expect(code(() => nodeDeriveSessionKeys(filled(33, 1), filled(32, 1)))).toBe('STEVE_KEY');
    expect(code(() => nodeDeriveSessionKeys('secret' as never, filled(32, 1)))).toBe('STEVE_KEY');
  });
});

describe('nodeHkdfSha256 (RFC 5869)', () => {
  for (const v of hkdfVectors().cases) {
    it(`${v.name}: OKM`, () => {
      expect(hex(nodeHkdfSha256(unhex(v.ikm), unhex(v.salt), unhex(v.info), v.length))).toBe(v.okm);
    });
  }

  it('agrees with hkdfSync on random inputs, outputs of several blocks included (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 80 }), fc.integer({ min: 1, max: 200 }), (ikm, salt, info, length) => {
        const out = nodeHkdfSha256(ikm, salt, info, length);
        expect(hex(out)).toBe(hex(new Uint8Array(hkdfSync('sha256', ikm, salt, info, length))));
        expect(out.buffer.byteLength).toBe(length);
      }),
      { seed: 5869, numRuns: 200 },
    );
  });

  it('the longest output RFC 5869 allows (255 blocks), and no longer', () => {
    const ikm = filled(32, 3);
    expect(hex(nodeHkdfSha256(ikm, filled(0, 0), filled(3, 1), 255 * 32))).toBe(hex(new Uint8Array(hkdfSync('sha256', ikm, new Uint8Array(0), filled(3, 1), 255 * 32))));
    for (const length of [0, -1, 1.5, 255 * 32 + 1, Number.NaN]) expect(code(() => nodeHkdfSha256(ikm, filled(0, 0), filled(0, 0), length)), String(length)).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => nodeHkdfSha256('ikm' as never, filled(0, 0), filled(0, 0), 32))).toBe('STEVE_BAD_ARGUMENT');
  });
});

describe('nodeTranscriptHash (§4)', () => {
  it('equals the protocol\'s noble transcript hash for both suites (fast-check, fixed seed)', () => {
    const sizes = { X25519: [32, 32], 'XWING-DRAFT10': [1216, 1120] } as const;
    for (const suite of ['X25519', 'XWING-DRAFT10'] as const) {
      const [clientBytes, serverBytes] = sizes[suite];
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.uint8Array({ minLength: clientBytes, maxLength: clientBytes }),
          fc.uint8Array({ minLength: serverBytes, maxLength: serverBytes }),
          fc.uint8Array({ minLength: 16, maxLength: 16 }),
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          (clientNonce, clientKeyMaterial, serverKeyMaterial, sessionId, contextHash) => {
            const input = { suite, clientNonce, clientKeyMaterial, serverKeyMaterial, sessionId, contextHash };
            expect(hex(nodeTranscriptHash(input))).toBe(hex(transcriptHash(input)));
          },
        ),
        { seed: 4, numRuns: 50 },
      );
    }
  });

  it('refuses a wrong length as the protocol does', () => {
    const input = { suite: 'X25519' as const, clientNonce: new Uint8Array(32), clientKeyMaterial: new Uint8Array(31), serverKeyMaterial: new Uint8Array(32), sessionId: new Uint8Array(16), contextHash: new Uint8Array(32) };
    expect(code(() => nodeTranscriptHash(input))).toBe('STEVE_KEY');
  });
});
