/**
 * kdf.ts: HKDF-SHA256 against RFC 5869 A.1-A.3, the key schedule cross-checked against node:crypto's
 * hkdfSync and createHash on random inputs, the §4 transcript layout rebuilt field by field, and the
 * wipe of the shared secret.
 */

import { createHash, hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hex, hkdfVectors, unhex } from '../../test/vectors/steve/vectors.js';
import { deriveSessionKeys, hkdfSha256, transcript, transcriptHash, wipeSessionKeys, type TranscriptInput } from './kdf.js';
import { code } from '../../test/steve-codes.js';

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);
const filled = (length: number, byte: number): Uint8Array => new Uint8Array(length).fill(byte);

function input(suite: 'X25519' | 'XWING-DRAFT10'): TranscriptInput {
  const x = suite === 'X25519';
  return {
    suite,
    clientNonce: filled(32, 1),
    clientKeyMaterial: filled(x ? 32 : 1216, 2),
    serverKeyMaterial: filled(x ? 32 : 1120, 3),
    sessionId: filled(16, 4),
    contextHash: filled(32, 5),
  };
}


describe('HKDF-SHA256 (RFC 5869 Appendix A)', () => {
  for (const v of hkdfVectors().cases) {
    it(`${v.name}: OKM`, () => {
      expect(hex(hkdfSha256(unhex(v.ikm), unhex(v.salt), unhex(v.info), v.length))).toBe(v.okm);
    });
  }

  it('agrees with node:crypto hkdfSync on random inputs', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 80 }), fc.integer({ min: 1, max: 200 }), (ikm, salt, info, length) => {
        expect(hex(hkdfSha256(ikm, salt, info, length))).toBe(hex(new Uint8Array(hkdfSync('sha256', ikm, salt, info, length))));
      }),
      { seed: 5869, numRuns: 200 },
    );
  });
});

describe('transcript (§4)', () => {
  it.each(['X25519', 'XWING-DRAFT10'] as const)('%s: MAGIC || suite || 0x00 || nonce || client km || server km || session_id || context_hash', (suite) => {
    const i = input(suite);
    const expected = Uint8Array.from([
      ...ascii('STEVE-E2P-V2'),
      0,
      ...ascii(suite),
      0,
      ...i.clientNonce,
      ...i.clientKeyMaterial,
      ...i.serverKeyMaterial,
      ...i.sessionId,
      ...i.contextHash,
    ]);
    const bytes = transcript(i);
    expect(hex(bytes)).toBe(hex(expected));
    // 13 + 6 + 1 + 32 + 32 + 32 + 16 + 32 = 164; 13 + 13 + 1 + 32 + 1216 + 1120 + 16 + 32 = 2443.
    expect(bytes.length).toBe(suite === 'X25519' ? 164 : 2443);
    expect(hex(transcriptHash(i))).toBe(createHash('sha256').update(expected).digest('hex'));
  });

  it('refuses fields of the wrong length', () => {
    const i = input('X25519');
    expect(code(() => transcript({ ...i, clientNonce: filled(31, 1) }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => transcript({ ...i, sessionId: filled(17, 1) }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => transcript({ ...i, contextHash: filled(33, 1) }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => transcript({ ...i, clientKeyMaterial: filled(1216, 1) }))).toBe('STEVE_KEY');
    expect(code(() => transcript({ ...input('XWING-DRAFT10'), serverKeyMaterial: filled(32, 1) }))).toBe('STEVE_KEY');
    expect(code(() => transcript({ ...i, suite: 'x25519' as never }))).toBe('STEVE_BAD_ARGUMENT');
  });
});

describe('deriveSessionKeys (§4)', () => {
  const LABELS = {
    c2sKey: ['steve-e2p-v2/c2s-key', 32],
    s2cKey: ['steve-e2p-v2/s2c-key', 32],
    c2sIv: ['steve-e2p-v2/c2s-iv', 4],
    s2cIv: ['steve-e2p-v2/s2c-iv', 4],
    binder: ['steve-e2p-v2/attestation-binder', 32],
  } as const;

  it('each output is HKDF-SHA256(shared secret, salt = transcript hash, info = label), cross-checked with node:crypto', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (secret, hash) => {
        const keys = deriveSessionKeys(secret.slice(), hash);
        for (const [name, [label, length]] of Object.entries(LABELS)) {
          const want = new Uint8Array(hkdfSync('sha256', secret, hash, ascii(label), length));
          expect(hex(keys[name as keyof typeof LABELS]), name).toBe(hex(want));
        }
      }),
      { seed: 4, numRuns: 50 },
    );
  });

  it('wipes the shared secret it is given, and wipeSessionKeys zeroes every key', () => {
    const secret = filled(32, 0xaa);
    const keys = deriveSessionKeys(secret, filled(32, 1));
    expect(secret.every((b) => b === 0)).toBe(true);
    expect(keys.c2sKey.some((b) => b !== 0)).toBe(true);
    wipeSessionKeys(keys);
    for (const value of Object.values(keys)) expect(value.every((b: number) => b === 0)).toBe(true);
  });

  it('wipes the shared secret even when the transcript hash is refused', () => {
    const secret = filled(32, 0xaa);
    expect(code(() => deriveSessionKeys(secret, filled(31, 1)))).toBe('STEVE_BAD_ARGUMENT');
    expect(secret.every((b) => b === 0)).toBe(true);
  });

  it('refuses a shared secret of the wrong length with STEVE_KEY', () => {
    expect(code(() => deriveSessionKeys(filled(31, 1), filled(32, 1)))).toBe('STEVE_KEY');
    expect(code(() => deriveSessionKeys('secret' as never, filled(32, 1)))).toBe('STEVE_KEY');
  });

  it('the five outputs differ from each other', () => {
    const keys = deriveSessionKeys(filled(32, 9), filled(32, 8));
    const all = [keys.c2sKey, keys.s2cKey, keys.binder].map(hex);
    expect(new Set(all).size).toBe(3);
    expect(hex(keys.c2sIv)).not.toBe(hex(keys.s2cIv));
  });
});
