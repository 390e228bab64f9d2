/**
 * The checks every AES-256-GCM behind the protocol's `Aead` must pass, as `it` blocks for the caller's
 * describe: McGrew-Viega's AES-256 vectors, every single-bit change of ciphertext, tag, nonce and AAD
 * refused with null, arbitrary bytes from the wire opened to null (fast-check), offset views and empty plaintexts as noble gives them, and wrong argument types and
 * lengths refused with the codes noble's gives. steve/server/aead-node.test.ts (node:crypto) and
 * agent/aes-gcm-native.test.ts (the addon) run it.
 */

import fc from 'fast-check';
import { expect, it } from 'vitest';
import { nobleAesGcm, type Aead } from '../steve/protocol/index.js';
import { code } from './steve-codes.js';
import { gcmVectors, hex, unhex } from './vectors/steve/vectors.js';

const bytes = (length: number, seed = 1): Uint8Array => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);

export function aeadConformance(aead: Aead): void {
  it('McGrew-Viega AES-256 test cases 13-16', () => {
    for (const v of gcmVectors().cases) {
      const sealed = aead.seal(unhex(v.key), unhex(v.iv), unhex(v.aad), unhex(v.plaintext));
      expect(hex(sealed), v.name).toBe(v.ciphertext + v.tag);
      expect(hex(aead.open(unhex(v.key), unhex(v.iv), unhex(v.aad), sealed)!), v.name).toBe(v.plaintext);
    }
  });

  it('refuses every single-bit change of ciphertext, tag, nonce and AAD with null', () => {
    const key = bytes(32);
    const nonce = bytes(12, 2);
    const aad = bytes(39, 4);
    const sealed = aead.seal(key, nonce, aad, bytes(24, 9));
    for (const [name, target] of [
      ['sealed', sealed],
      ['nonce', nonce],
      ['aad', aad],
    ] as const) {
      for (let bit = 0; bit < target.length * 8; bit++) {
        const copy = target.slice();
        copy[bit >> 3]! ^= 1 << (bit & 7);
        const args = { sealed, nonce, aad, [name]: copy };
        expect(aead.open(key, args.nonce, args.aad, args.sealed), `${name} bit ${bit}`).toBeNull();
      }
    }
    expect(aead.open(bytes(32, 99), nonce, aad, sealed)).toBeNull();
    expect(aead.open(key, nonce, aad, sealed.subarray(0, 15))).toBeNull();
    expect(aead.open(key, nonce, aad, sealed.subarray(0, sealed.length - 1))).toBeNull();
  });

  it('takes offset views and empty plaintexts like noble', () => {
    const backing = bytes(200, 11);
    const key = backing.subarray(3, 35);
    const nonce = backing.subarray(40, 52);
    const aad = backing.subarray(60, 99);
    const plaintext = backing.subarray(101, 180);
    expect(hex(aead.seal(key, nonce, aad, plaintext))).toBe(hex(nobleAesGcm.seal(key, nonce, aad, plaintext)));
    const empty = aead.seal(key, nonce, new Uint8Array(0), new Uint8Array(0));
    expect(empty.length).toBe(16);
    expect(aead.open(key, nonce, new Uint8Array(0), empty)!.length).toBe(0);
  });

  it('opens arbitrary bytes from the wire to null, never a throw or a partial plaintext (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 600 }), (key, nonce, aad, sealed) => {
        expect(aead.open(key, nonce, aad, sealed)).toBeNull();
      }),
      { seed: 20_261_207, numRuns: 500 },
    );
  });

  it('refuses wrong argument types and lengths with coded errors', () => {
    const good = { key: bytes(32), nonce: bytes(12), aad: bytes(3), data: bytes(20) };
    expect(code(() => aead.seal(bytes(31), good.nonce, good.aad, good.data))).toBe('STEVE_KEY');
    expect(code(() => aead.seal(bytes(33), good.nonce, good.aad, good.data))).toBe('STEVE_KEY');
    expect(code(() => aead.seal(good.key, bytes(16), good.aad, good.data))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => aead.seal(good.key, good.nonce, 'aad' as unknown as Uint8Array, good.data))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => aead.seal(good.key, good.nonce, good.aad, null as unknown as Uint8Array))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => aead.open([...good.key] as unknown as Uint8Array, good.nonce, good.aad, good.data))).toBe('STEVE_KEY');
    expect(code(() => aead.open(good.key, good.nonce, good.aad, 'x' as unknown as Uint8Array))).toBe('STEVE_BAD_ARGUMENT');
  });
}
