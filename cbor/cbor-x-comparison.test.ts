/**
 * Why the project decodes untrusted CBOR with its own strict decoder instead of cbor-x (the CBOR library
 * in the project's preferred set): cbor-x, as shipped, accepts inputs that a verifier must refuse. Each
 * case below is decoded by cbor-x without complaint and refused by `decodeCbor` with a code. If a
 * cbor-x release starts refusing them, this test says so and the choice can be revisited.
 */

import { decode as cborXDecode } from 'cbor-x';
import { describe, expect, it } from 'vitest';
import { decodeCbor, type DecodeOptions } from './index.js';

const hex = (text: string) => Uint8Array.from(Buffer.from(text, 'hex'));

const cases: Array<[string, string, DecodeOptions, string]> = [
  // {"a": 1, "a": 2}: cbor-x keeps the last value, so a second `nonce` could override the first.
  ['duplicate map keys', 'a2616101616102', {}, 'CBOR_DUPLICATE_KEY'],
  ['a float where an integer is expected', 'fb3ff199999999999a', {}, 'CBOR_UNSUPPORTED'],
  ['a tag (epoch date)', 'c11a514b67b0', {}, 'CBOR_UNSUPPORTED'],
  ['a non-shortest integer in a canonical profile (STEVE)', '1817', { canonical: true }, 'CBOR_NON_CANONICAL'],
  ['an indefinite-length array in a definite-only profile (STEVE)', '9fff', {}, 'CBOR_INDEFINITE_LENGTH'],
  ['undefined', 'f7', {}, 'CBOR_UNSUPPORTED'],
];

describe('cbor-x versus the strict decoder', () => {
  it.each(cases)('%s: cbor-x accepts %s, decodeCbor refuses it', (_, input, options, code) => {
    expect(() => cborXDecode(Buffer.from(hex(input)))).not.toThrow();
    expect(() => decodeCbor(hex(input), options)).toThrowError(expect.objectContaining({ code }));
  });
});
