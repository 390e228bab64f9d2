/**
 * The configuration measurement: canonical JSON (RFC 8785 ordering and number forms, checked against
 * examples from the RFC's section 3.2.2 / 3.2.3 where they apply), and the PCR formula SHA-384(0^48 ||
 * SHA-384(canonical)) cross-checked with node:crypto directly and with @noble/hashes.
 */

import { createHash } from 'node:crypto';
import { sha384 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';

import { bytesToHex } from '../nsm/index.js';

import { InitError } from './errors.js';
import { canonicalJson, measureConfig } from './measurement.js';

describe('canonicalJson', () => {
  it('sorts keys by UTF-16 code units at every depth and writes no whitespace', () => {
    expect(canonicalJson({ b: [3, { z: 1, a: null }], a: 'x', A: true })).toBe('{"A":true,"a":"x","b":[3,{"a":null,"z":1}]}');
    // RFC 8785 §3.2.3's example: code-unit order puts U+FB33 after U+1F600 (surrogates D83D DE00).
    expect(canonicalJson({ '\ufb33': 6, '\u20ac': 1, '\ud83d\ude00': 2, '\r': 3, '1': 4, '\u00f6': 5 })).toBe('{"\\r":3,"1":4,"ö":5,"€":1,"😀":2,"\ufb33":6}');
  });

  it('writes numbers and strings the way RFC 8785 does', () => {
    // RFC 8785 §3.2.2.3 examples.
    expect(canonicalJson([1e21, 1e-7, 0.000001, -0, 333333333.33333329, 1e30, 4.5])).toBe('[1e+21,1e-7,0.000001,0,333333333.3333333,1e+30,4.5]');
    expect(canonicalJson('\u20ac$\u000f\nA\'B"\\\\"/')).toBe('"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"');
  });

  it('drops undefined members and refuses what JSON cannot hold', () => {
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
    for (const bad of [Number.NaN, Infinity, 1n, () => 1, Symbol('x')]) {
      expect(() => canonicalJson(bad), String(bad)).toThrow(InitError);
    }
  });
});

describe('measureConfig', () => {
  it('digest = SHA-384(canonical bytes), PCR = SHA-384(0^48 || digest)', () => {
    const config = { nsm: 'device', pcr: { index: 16, lock: true }, app: { command: ['/bin/app'] } };
    const m = measureConfig(config);
    expect(m.canonical).toBe('{"app":{"command":["/bin/app"]},"nsm":"device","pcr":{"index":16,"lock":true}}');
    const digest = createHash('sha384').update(m.canonical).digest();
    expect(bytesToHex(m.digest)).toBe(digest.toString('hex'));
    expect(bytesToHex(m.pcrValue)).toBe(bytesToHex(sha384(new Uint8Array([...new Uint8Array(48), ...digest]))));
    // Fixed: a change to the canonical form would change every deployed PCR value.
    expect(bytesToHex(m.digest)).toBe('271809ef8556d6e1b5cea282f40b6b1cb5ce522b8eec3b8f28a56389527f41a1796295b6d9b55bae23e6da336a0d4d4c');
  });

  it('is independent of key order in the input', () => {
    expect(measureConfig({ a: 1, b: { d: 2, c: 3 } }).canonical).toBe(measureConfig({ b: { c: 3, d: 2 }, a: 1 }).canonical);
  });
});
