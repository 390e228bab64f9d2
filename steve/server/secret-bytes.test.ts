/**
 * secret-bytes.ts: a drawn secret is a copy in an ArrayBuffer of its own and the bytes `random` returned
 * are zeroed, in the server's two exchanges as well; nodeRandomBytes gives bytes in an ArrayBuffer of
 * their own; broken `random` functions are STEVE_BAD_ARGUMENT.
 */

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { code } from '../../test/steve-codes.js';
import { x25519Exchange, xwingExchange } from '../protocol/index.js';
import { drawSecret, nodeRandomBytes, ownCopy } from './secret-bytes.js';
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
