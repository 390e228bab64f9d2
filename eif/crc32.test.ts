/**
 * CRC-32/ISO-HDLC: the catalogue's check value, known strings, and random inputs in random chunks against
 * node:zlib's crc32 (an independent implementation, in Node since 20.15).
 */

import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32, createCrc32 } from './index.js';

const utf8 = (text: string) => new TextEncoder().encode(text);

describe('crc32', () => {
  it('has the catalogue check value cbf43926 for "123456789", and 0 for nothing', () => {
    expect(crc32(utf8('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(utf8('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
  });

  it('node:zlib has crc32 on this Node (the cross-check below needs it)', () => {
    expect(typeof zlibCrc32).toBe('function');
  });

  it('equals zlib on random inputs, in one call and fed in random chunks', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
        const expected = zlibCrc32(bytes);
        expect(crc32(bytes)).toBe(expected);
        const points = [...new Set([0, ...cuts.map((c) => c % (bytes.length + 1)), bytes.length])].sort((a, b) => a - b);
        const running = createCrc32();
        for (let i = 1; i < points.length; i++) running.update(bytes.subarray(points[i - 1], points[i]));
        expect(running.value()).toBe(expected);
      }),
      { seed: 1403, numRuns: 1000 },
    );
  });

  it('value() does not end the computation, and offset views are read from their offset', () => {
    const running = createCrc32().update(utf8('1234'));
    expect(running.value()).toBe(zlibCrc32(utf8('1234')));
    expect(running.update(utf8('56789')).value()).toBe(0xcbf43926);
    const backing = utf8('xx123456789yy');
    expect(crc32(backing.subarray(2, 11))).toBe(0xcbf43926);
  });

  it('refuses what is not a Uint8Array', () => {
    expect(() => crc32('123456789' as unknown as Uint8Array)).toThrow(TypeError);
  });
});
