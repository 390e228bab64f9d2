/**
 * bytes.ts's base64url: RFC 4648 §10's vectors (in the URL-safe alphabet, unpadded), every length and byte
 * against Buffer's own `base64url` (fast-check), and `fromBase64Url` taking back exactly what
 * `toBase64Url` makes.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromBase64Url, toBase64Url } from './bytes.js';

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('toBase64Url (RFC 4648 §5, unpadded)', () => {
  it('RFC 4648 §10 vectors, without their padding', () => {
    const vectors: [string, string][] = [
      ['', ''],
      ['f', 'Zg'],
      ['fo', 'Zm8'],
      ['foo', 'Zm9v'],
      ['foob', 'Zm9vYg'],
      ['fooba', 'Zm9vYmE'],
      ['foobar', 'Zm9vYmFy'],
    ];
    for (const [text, encoded] of vectors) expect(toBase64Url(ascii(text)), text).toBe(encoded);
  });

  it('uses - and _ where base64 has + and /', () => {
    expect(toBase64Url(Uint8Array.of(0xfb, 0xff, 0xbf))).toBe('-_-_');
  });

  it('equals Buffer\'s base64url for any bytes, and fromBase64Url takes them back (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(8), (bytes, offset) => {
        // Also a view that does not start at its buffer's first byte.
        const view = new Uint8Array(offset + bytes.length).subarray(offset);
        view.set(bytes);
        const text = toBase64Url(view);
        expect(text).toBe(Buffer.from(bytes).toString('base64url'));
        expect(fromBase64Url(text)).toEqual(bytes);
      }),
      { seed: 4648, numRuns: 500 },
    );
  });
});
