/**
 * secret-bytes.ts: a drawn secret is a copy in an ArrayBuffer of its own and the bytes `random` returned
 * are zeroed, in the server's two exchanges as well; nodeRandomBytes gives bytes in an ArrayBuffer of
 * their own; broken `random` functions are STEVE_BAD_ARGUMENT; publicRandomBytes gives fresh, distinct
 * values across refills of its pool, each a copy the caller may keep.
 */

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { code } from '../../test/steve-codes.js';
import { x25519Exchange, xwingExchange } from '../protocol/index.js';
import { drawSecret, nodeRandomBytes, ownCopy, publicRandomBytes } from './secret-bytes.js';
import { nodeX25519Exchange } from './x25519-node.js';
import { nodeXwingExchange } from './xwing-node.js';

const ownsItsBuffer = (bytes: Uint8Array): boolean => bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length;

describe('drawSecret', () => {
  it('copies into an ArrayBuffer of its own and zeroes what random returned', () => {
    const source = new Uint8Array(randomBytes(32));
    const want = Buffer.from(source).toString('hex');
    const drawn = drawSecret(() => source, 32);
    expect(Buffer.from(drawn).toString('hex')).toBe(want);
    expect(ownsItsBuffer(drawn)).toBe(true);
    expect(source.every((b) => b === 0)).toBe(true);
  });

  it('refuses a random that is not a function or returns the wrong bytes', () => {
    expect(code(() => drawSecret('random' as never, 32))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => drawSecret(() => new Uint8Array(31), 32))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => drawSecret(() => [1, 2] as never, 2))).toBe('STEVE_BAD_ARGUMENT');
  });

  it('the server exchanges zero the bytes random returned (X25519 scalar, X-Wing eseed)', () => {
    const x = x25519Exchange.generateClientKeyPair((n) => new Uint8Array(randomBytes(n)));
    const scalar = new Uint8Array(randomBytes(32));
    nodeX25519Exchange.serverRespond(x.material, () => scalar);
    expect(scalar.every((b) => b === 0)).toBe(true);
    const w = xwingExchange.generateClientKeyPair((n) => new Uint8Array(randomBytes(n)));
    const eseed = new Uint8Array(randomBytes(64));
    nodeXwingExchange.serverRespond(w.material, () => eseed);
    expect(eseed.every((b) => b === 0)).toBe(true);
  });
});

describe('ownCopy and nodeRandomBytes', () => {
  it('ownCopy: the same bytes in a buffer of their own; the source untouched', () => {
    const big = Uint8Array.from({ length: 40 }, (_, i) => i);
    const copy = ownCopy(big.subarray(4, 36));
    expect([...copy]).toEqual([...big.subarray(4, 36)]);
    expect(ownsItsBuffer(copy)).toBe(true);
    expect(big[4]).toBe(4);
  });

  it('nodeRandomBytes: the length asked, in a buffer of its own, different each time', () => {
    for (const length of [1, 16, 32, 64, 65]) {
      const bytes = nodeRandomBytes(length);
      expect(bytes).toHaveLength(length);
      expect(ownsItsBuffer(bytes)).toBe(true);
    }
    expect(Buffer.from(nodeRandomBytes(32)).toString('hex')).not.toBe(Buffer.from(nodeRandomBytes(32)).toString('hex'));
  });
});

describe('publicRandomBytes (session ids)', () => {
  it('gives distinct values of the length asked, across several refills of its 4 KiB pool', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const id = publicRandomBytes(16);
      expect(id.length).toBe(16);
      seen.add(Buffer.from(id).toString('hex'));
    }
    expect(seen.size).toBe(1000);
    expect(publicRandomBytes(0).length).toBe(0);
    expect(publicRandomBytes(4096).length).toBe(4096);
  });

  it('each value is a copy: changing one changes no later value', () => {
    const first = publicRandomBytes(32);
    first.fill(0);
    const next = publicRandomBytes(32);
    expect(next.some((b) => b !== 0)).toBe(true);
    expect(first.buffer).not.toBe(next.buffer);
  });

  it('refuses lengths outside 0..4096 with STEVE_BAD_ARGUMENT', () => {
    for (const length of [-1, 4097, 1.5, Number.NaN]) expect(code(() => publicRandomBytes(length)), String(length)).toBe('STEVE_BAD_ARGUMENT');
  });
});
