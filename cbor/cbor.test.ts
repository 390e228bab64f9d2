/**
 * Tests for the strict CBOR codec (decode.ts, encode.ts). Decoding vectors are RFC 8949 Appendix A, split
 * into what the profile accepts (integers within ±2^53-1, strings, arrays, maps, false/true/null, and
 * indefinite arrays/maps only on request) and what it must refuse with an exact code (floats, tags,
 * undefined, other simple values, indefinite strings, integers beyond 2^53-1). The strictness rules are
 * those of specs/steve.md §2 and specs/nsm.md §3. Encoder vectors are the same RFC rows read the other way,
 * plus every shortest-form boundary. Property tests (fast-check, fixed seeds) check the round trip and that
 * hostile bytes only ever produce a coded `CborError`.
 */

import fc from 'fast-check';
import { mutate, mutationArbitrary } from '../test/mutations.js';
import { describe, expect, it } from 'vitest';
import { CborError, DEFAULT_MAX_ITEMS, decodeCbor, encodeCbor, type CborErrorCode, type CborInput, type CborValue, type DecodeOptions } from './index.js';

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

/** Every code the decoder may throw (CBOR_ENCODE is the encoder's alone). */
const DECODE_CODES: ReadonlySet<CborErrorCode> = new Set<CborErrorCode>([
  'CBOR_TRUNCATED',
  'CBOR_TRAILING_BYTES',
  'CBOR_MALFORMED',
  'CBOR_UNSUPPORTED',
  'CBOR_INDEFINITE_LENGTH',
  'CBOR_NON_CANONICAL',
  'CBOR_DUPLICATE_KEY',
  'CBOR_BAD_KEY',
  'CBOR_TOO_DEEP',
  'CBOR_TOO_MANY_ITEMS',
  'CBOR_INTEGER_RANGE',
  'CBOR_INVALID_UTF8',
]);

/** Every option combination the property tests feed the decoder. */
const OPTION_SETS: readonly DecodeOptions[] = [
  {},
  { allowIndefinite: true },
  { canonical: true },
  { allowIndefinite: true, canonical: true },
  { maxDepth: 0 },
  { maxDepth: 1, allowIndefinite: true, canonical: true },
  { maxDepth: 64, allowIndefinite: true },
  { maxItems: 1 },
  { maxItems: 7, allowIndefinite: true },
  { maxItems: Number.MAX_SAFE_INTEGER, allowIndefinite: true, canonical: true },
];

/** The code of the `CborError` `run` throws; any other outcome fails the test. */
function codeOf(run: () => unknown): CborErrorCode {
  try {
    run();
  } catch (error) {
    if (error instanceof CborError) return error.code;
    throw error;
  }
  throw new Error('expected a CborError, got a value');
}

function decodeCode(hexText: string, options?: DecodeOptions): CborErrorCode {
  return codeOf(() => decodeCbor(hex(hexText), options));
}

/** Decoding either returns or throws a CborError with a decoder code: nothing else may escape. */
function decodesOrFailsCleanly(bytes: Uint8Array, options: DecodeOptions): CborValue | CborError {
  try {
    return decodeCbor(bytes, options);
  } catch (error) {
    if (!(error instanceof CborError)) throw error;
    if (!DECODE_CODES.has(error.code)) throw new Error(`unexpected code ${error.code}`);
    if (!(error.offset >= 0 && error.offset <= bytes.length)) throw new Error(`offset ${error.offset} out of range`);
    return error;
  }
}

const map = (entries: [number | string, CborValue][]): Map<number | string, CborValue> => new Map(entries);

// RFC 8949 Appendix A rows the profile accepts, as [hex, value].
const ACCEPTED: [string, CborValue][] = [
  ['00', 0],
  ['01', 1],
  ['0a', 10],
  ['17', 23],
  ['1818', 24],
  ['1819', 25],
  ['1864', 100],
  ['1903e8', 1000],
  ['1a000f4240', 1000000],
  ['1b000000e8d4a51000', 1000000000000],
  ['1b001fffffffffffff', 9007199254740991], // not in Appendix A: the largest integer the profile keeps
  ['20', -1],
  ['29', -10],
  ['3863', -100],
  ['3903e7', -1000],
  ['3b001ffffffffffffe', -9007199254740991],
  ['40', new Uint8Array(0)],
  ['4401020304', hex('01020304')],
  ['60', ''],
  ['6161', 'a'],
  ['6449455446', 'IETF'],
  ['62225c', '"\\'],
  ['62c3bc', '\u00fc'],
  ['63e6b0b4', '\u6c34'],
  ['64f0908591', '\ud800\udd51'],
  ['80', []],
  ['83010203', [1, 2, 3]],
  ['8301820203820405', [1, [2, 3], [4, 5]]],
  ['98190102030405060708090a0b0c0d0e0f101112131415161718181819', Array.from({ length: 25 }, (_, i) => i + 1)],
  ['a0', map([])],
  ['a201020304', map([[1, 2], [3, 4]])],
  ['a26161016162820203', map([['a', 1], ['b', [2, 3]]])],
  ['826161a161626163', ['a', map([['b', 'c']])]],
  ['a56161614161626142616361436164614461656145', map([['a', 'A'], ['b', 'B'], ['c', 'C'], ['d', 'D'], ['e', 'E']])],
  ['f4', false],
  ['f5', true],
  ['f6', null],
];

// RFC 8949 Appendix A indefinite-length arrays and maps, as [hex, value].
const INDEFINITE: [string, CborValue][] = [
  ['9fff', []],
  ['9f018202039f0405ffff', [1, [2, 3], [4, 5]]],
  ['9f01820203820405ff', [1, [2, 3], [4, 5]]],
  ['83018202039f0405ff', [1, [2, 3], [4, 5]]],
  ['83019f0203ff820405', [1, [2, 3], [4, 5]]],
  ['9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff', Array.from({ length: 25 }, (_, i) => i + 1)],
  ['bf61610161629f0203ffff', map([['a', 1], ['b', [2, 3]]])],
  ['826161bf61626163ff', ['a', map([['b', 'c']])]],
  ['bf6346756ef563416d7421ff', map([['Fun', true], ['Amt', -2]])],
];

// RFC 8949 Appendix A rows the profile refuses, as [hex, code, why].
const REJECTED: [string, CborErrorCode, string][] = [
  ['1bffffffffffffffff', 'CBOR_INTEGER_RANGE', '18446744073709551615'],
  ['3bffffffffffffffff', 'CBOR_INTEGER_RANGE', '-18446744073709551616'],
  ['c249010000000000000000', 'CBOR_UNSUPPORTED', 'bignum 18446744073709551616'],
  ['c349010000000000000000', 'CBOR_UNSUPPORTED', 'bignum -18446744073709551617'],
  ['f90000', 'CBOR_UNSUPPORTED', '0.0'],
  ['f98000', 'CBOR_UNSUPPORTED', '-0.0'],
  ['f93c00', 'CBOR_UNSUPPORTED', '1.0'],
  ['fb3ff199999999999a', 'CBOR_UNSUPPORTED', '1.1'],
  ['f93e00', 'CBOR_UNSUPPORTED', '1.5'],
  ['f97bff', 'CBOR_UNSUPPORTED', '65504.0'],
  ['fa47c35000', 'CBOR_UNSUPPORTED', '100000.0'],
  ['fa7f7fffff', 'CBOR_UNSUPPORTED', '3.4028234663852886e+38'],
  ['fb7e37e43c8800759c', 'CBOR_UNSUPPORTED', '1.0e+300'],
  ['f90001', 'CBOR_UNSUPPORTED', '5.960464477539063e-8'],
  ['f9c400', 'CBOR_UNSUPPORTED', '-4.0'],
  ['fbc010666666666666', 'CBOR_UNSUPPORTED', '-4.1'],
  ['f97c00', 'CBOR_UNSUPPORTED', 'Infinity'],
  ['f97e00', 'CBOR_UNSUPPORTED', 'NaN'],
  ['f9fc00', 'CBOR_UNSUPPORTED', '-Infinity'],
  ['fa7fc00000', 'CBOR_UNSUPPORTED', 'NaN (single)'],
  ['fb7ff8000000000000', 'CBOR_UNSUPPORTED', 'NaN (double)'],
  ['f7', 'CBOR_UNSUPPORTED', 'undefined'],
  ['f0', 'CBOR_UNSUPPORTED', 'simple(16)'],
  ['f8ff', 'CBOR_UNSUPPORTED', 'simple(255)'],
  ['c074323031332d30332d32315432303a30343a30305a', 'CBOR_UNSUPPORTED', '0("2013-03-21T20:04:00Z")'],
  ['c11a514b67b0', 'CBOR_UNSUPPORTED', '1(1363896240)'],
  ['c1fb41d452d9ec200000', 'CBOR_UNSUPPORTED', '1(1363896240.5)'],
  ['d74401020304', 'CBOR_UNSUPPORTED', "23(h'01020304')"],
  ['d818456449455446', 'CBOR_UNSUPPORTED', "24(h'6449455446')"],
  ['d82076687474703a2f2f7777772e6578616d706c652e636f6d', 'CBOR_UNSUPPORTED', '32("http://www.example.com")'],
];

const INDEFINITE_STRINGS = ['5f42010243030405ff', '7f657374726561646d696e67ff'];

describe('decodeCbor: RFC 8949 Appendix A', () => {
  it.each(ACCEPTED)('decodes %s', (hexText, value) => {
    expect(decodeCbor(hex(hexText))).toEqual(value);
    // Every accepted Appendix A row is already in shortest form.
    expect(decodeCbor(hex(hexText), { canonical: true })).toEqual(value);
  });

  it('keeps map entries in wire order', () => {
    const decoded = decodeCbor(hex('a56161614161626142616361436164614461656145')) as Map<string, string>;
    expect([...decoded.keys()]).toEqual(['a', 'b', 'c', 'd', 'e']);
    const numeric = decodeCbor(hex('a203040102')) as Map<number, number>;
    expect([...numeric.entries()]).toEqual([[3, 4], [1, 2]]);
  });

  it.each(INDEFINITE)('decodes indefinite %s only with allowIndefinite', (hexText, value) => {
    expect(decodeCbor(hex(hexText), { allowIndefinite: true })).toEqual(value);
    expect(decodeCode(hexText)).toBe('CBOR_INDEFINITE_LENGTH');
    expect(decodeCode(hexText, { allowIndefinite: false, canonical: true })).toBe('CBOR_INDEFINITE_LENGTH');
  });

  it.each(REJECTED)('rejects %s with %s (%s)', (hexText, code) => {
    for (const options of OPTION_SETS) expect(decodeCode(hexText, options)).toBe(code);
  });

  it.each(INDEFINITE_STRINGS)('rejects the indefinite string %s even with allowIndefinite', (hexText) => {
    expect(decodeCode(hexText)).toBe('CBOR_UNSUPPORTED');
    expect(decodeCode(hexText, { allowIndefinite: true })).toBe('CBOR_UNSUPPORTED');
  });

  it('rejects the integers just beyond ±(2^53 - 1)', () => {
    expect(decodeCode('1b0020000000000000')).toBe('CBOR_INTEGER_RANGE'); // 2^53
    expect(decodeCode('1b7fffffffffffffff')).toBe('CBOR_INTEGER_RANGE');
    expect(decodeCode('3b0020000000000000')).toBe('CBOR_INTEGER_RANGE'); // -2^53 - 1
  });

  // Regression: the argument may be 2^53 - 1, so `-1 - value` is -2^53, which is not a safe integer. The
  // module comment promises to refuse "integers beyond ±2^53-1", and encodeCbor refuses this very value, so
  // decode -> encode throws.
  it('rejects -2^53 (3b001fffffffffffff) with CBOR_INTEGER_RANGE', () => {
    expect(decodeCode('3b001fffffffffffff')).toBe('CBOR_INTEGER_RANGE');
  });
});

describe('decodeCbor: strictness', () => {
  it('rejects duplicate text and integer keys', () => {
    expect(decodeCode('a2616101616102')).toBe('CBOR_DUPLICATE_KEY'); // {"a":1,"a":2}
    expect(decodeCode('a201020103')).toBe('CBOR_DUPLICATE_KEY'); // {1:2,1:3}
    expect(decodeCode('a220022003')).toBe('CBOR_DUPLICATE_KEY'); // {-1:2,-1:3}
    // A non-shortest spelling of the same key is still the same key.
    expect(decodeCode('a20102180103')).toBe('CBOR_DUPLICATE_KEY');
    expect(decodeCode('a261610178016102')).toBe('CBOR_DUPLICATE_KEY');
    // Duplicates deeper down are caught too.
    expect(decodeCode('81a1616181a200010002')).toBe('CBOR_DUPLICATE_KEY');
    const error = (() => {
      try {
        decodeCbor(hex('a2616101616102'));
      } catch (caught) {
        return caught as CborError;
      }
      throw new Error('no error');
    })();
    expect(error.offset).toBe(4); // the second key
  });

  it('rejects duplicate keys inside indefinite maps', () => {
    expect(decodeCode('bf616101616102ff', { allowIndefinite: true })).toBe('CBOR_DUPLICATE_KEY');
    expect(decodeCode('bf01020103ff', { allowIndefinite: true })).toBe('CBOR_DUPLICATE_KEY');
  });

  it('keeps integer 1 and text "1" apart, and 1 and -1 apart', () => {
    expect(decodeCbor(hex('a20102613103'))).toEqual(map([[1, 2], ['1', 3]]));
    expect(decodeCbor(hex('a201022003'))).toEqual(map([[1, 2], [-1, 3]]));
  });

  it.each([
    ['a14000', 'bytes'],
    ['a18000', 'array'],
    ['a1a000', 'map'],
    ['a1f400', 'false'],
    ['a1f500', 'true'],
    ['a1f600', 'null'],
  ])('rejects the map key %s (%s) with CBOR_BAD_KEY', (hexText) => {
    expect(decodeCode(hexText)).toBe('CBOR_BAD_KEY');
    expect(decodeCode(`bf${hexText.slice(2)}ff`, { allowIndefinite: true })).toBe('CBOR_BAD_KEY');
  });

  it.each(['0000', '00ff', 'a000', '8000', 'f6f6', '616161', '9fff00'])('rejects trailing bytes in %s', (hexText) => {
    expect(decodeCode(hexText, { allowIndefinite: true })).toBe('CBOR_TRAILING_BYTES');
  });

  it('rejects every strict prefix of every accepted vector with CBOR_TRUNCATED', () => {
    const all: [string, DecodeOptions][] = [
      ...ACCEPTED.map(([h]) => [h, {}] as [string, DecodeOptions]),
      ...INDEFINITE.map(([h]) => [h, { allowIndefinite: true }] as [string, DecodeOptions]),
    ];
    for (const [hexText, options] of all) {
      const bytes = hex(hexText);
      for (let length = 0; length < bytes.length; length++) {
        expect(codeOf(() => decodeCbor(bytes.subarray(0, length), options)), `${hexText} cut at ${length}`).toBe('CBOR_TRUNCATED');
      }
    }
  });

  it.each([
    ['62c328', 'truncated 2-byte sequence'],
    ['62c0af', 'overlong "/"'],
    ['63e0808f', 'overlong 3-byte form'],
    ['63eda080', 'lone high surrogate U+D800'],
    ['63edbfbf', 'lone low surrogate U+DFFF'],
    ['6180', 'bare continuation byte'],
    ['61ff', 'byte 0xff'],
    ['64f4908080', 'beyond U+10FFFF'],
  ])('rejects invalid UTF-8 %s (%s)', (hexText) => {
    expect(decodeCode(hexText)).toBe('CBOR_INVALID_UTF8');
    expect(decodeCode(`a1${hexText}00`)).toBe('CBOR_INVALID_UTF8'); // as a map key
  });

  it('keeps a leading byte-order mark instead of stripping it', () => {
    expect(decodeCbor(hex('63efbbbf'))).toBe('\ufeff');
  });

  it('rejects reserved additional information 28-30 in majors 0-5 with CBOR_MALFORMED', () => {
    for (let major = 0; major <= 5; major++) {
      for (let info = 28; info <= 30; info++) {
        const initial = ((major << 5) | info).toString(16).padStart(2, '0');
        expect(decodeCode(`${initial}00000000000000000000`, { allowIndefinite: true }), initial).toBe('CBOR_MALFORMED');
      }
    }
  });

  // Regression: RFC 8949 §3 reserves additional information 28-30 for every major type (not well-formed), but
  // tags (0xdc-0xde) and major 7 (0xfc-0xfe) answer CBOR_UNSUPPORTED, as if they were a well-formed item the
  // profile merely declines. Rejected either way; only the code is off.
  it('rejects reserved additional information 28-30 in majors 6 and 7 with CBOR_MALFORMED', () => {
    for (const initial of ['dc', 'dd', 'de', 'fc', 'fd', 'fe']) expect(decodeCode(`${initial}00`), initial).toBe('CBOR_MALFORMED');
  });

  it('rejects a lone break, a break in a definite container, and indefinite integers', () => {
    expect(decodeCode('ff')).toBe('CBOR_MALFORMED');
    expect(decodeCode('ff', { allowIndefinite: true })).toBe('CBOR_MALFORMED');
    expect(decodeCode('81ff', { allowIndefinite: true })).toBe('CBOR_MALFORMED');
    expect(decodeCode('a1ff00', { allowIndefinite: true })).toBe('CBOR_MALFORMED');
    expect(decodeCode('bf6161ff', { allowIndefinite: true })).toBe('CBOR_MALFORMED'); // key without a value
    expect(decodeCode('1f')).toBe('CBOR_MALFORMED');
    expect(decodeCode('3f')).toBe('CBOR_MALFORMED');
  });

  it('enforces maxDepth on arrays and maps, at the exact boundary', () => {
    const arrays = (depth: number): Uint8Array => hex(`${'81'.repeat(depth)}00`);
    expect(decodeCbor(arrays(16))).toBeDefined();
    expect(codeOf(() => decodeCbor(arrays(17)))).toBe('CBOR_TOO_DEEP');
    expect(decodeCbor(arrays(3), { maxDepth: 3 })).toEqual([[[0]]]);
    expect(codeOf(() => decodeCbor(arrays(4), { maxDepth: 3 }))).toBe('CBOR_TOO_DEEP');
    expect(codeOf(() => decodeCbor(hex('80'), { maxDepth: 0 }))).toBe('CBOR_TOO_DEEP');
    expect(decodeCbor(hex('00'), { maxDepth: 0 })).toBe(0);
    const maps = (depth: number): Uint8Array => hex(`${'a100'.repeat(depth)}00`);
    expect(decodeCbor(maps(16))).toBeInstanceOf(Map);
    expect(codeOf(() => decodeCbor(maps(17)))).toBe('CBOR_TOO_DEEP');
    const indefinite = (depth: number): Uint8Array => hex(`${'9f'.repeat(depth)}${'ff'.repeat(depth)}`);
    expect(decodeCbor(indefinite(16), { allowIndefinite: true })).toBeDefined();
    expect(codeOf(() => decodeCbor(indefinite(17), { allowIndefinite: true }))).toBe('CBOR_TOO_DEEP');
  });

  it('stops a 100000-deep input at maxDepth without touching the stack limit', () => {
    const deep = new Uint8Array(100_001).fill(0x81);
    deep[100_000] = 0x00;
    expect(codeOf(() => decodeCbor(deep))).toBe('CBOR_TOO_DEEP');
    expect(codeOf(() => decodeCbor(deep, { maxDepth: 1000 }))).toBe('CBOR_TOO_DEEP');
    const deepIndefinite = new Uint8Array(200_000).fill(0x9f, 0, 100_000).fill(0xff, 100_000);
    expect(codeOf(() => decodeCbor(deepIndefinite, { allowIndefinite: true }))).toBe('CBOR_TOO_DEEP');
  });

  // Regression: readItem/readArray/readMap recurse once per level and maxDepth has no ceiling, so a caller
  // passing maxDepth >= about 5000 lets this input end in a RangeError ("Maximum call stack size exceeded")
  // instead of a CborError. Default callers (maxDepth 16) are safe.
  it('never lets a deep input overflow the stack, whatever maxDepth says', () => {
    const deep = new Uint8Array(100_001).fill(0x81);
    deep[100_000] = 0x00;
    const outcome = decodesOrFailsCleanly(deep, { maxDepth: 100_000 });
    expect(outcome instanceof CborError ? outcome.code : 'decoded').toMatch(/^(CBOR_TOO_DEEP|decoded)$/);
  });

  it.each([
    ['1817', 23],
    ['190017', 23],
    ['1a00000017', 23],
    ['1b0000000000000017', 23],
    ['1900ff', 255],
    ['1a0000ffff', 65535],
    ['1b00000000ffffffff', 4294967295],
    ['3817', -24],
    ['3900ff', -256],
    ['5800', new Uint8Array(0)],
    ['7800', ''],
    ['9800', []],
    ['b800', map([])],
    ['590000', new Uint8Array(0)],
    ['a1180100', map([[1, 0]])],
  ] as [string, CborValue][])('decodes the non-shortest %s, but not with canonical', (hexText, value) => {
    expect(decodeCbor(hex(hexText))).toEqual(value);
    expect(decodeCode(hexText, { canonical: true })).toBe('CBOR_NON_CANONICAL');
  });

  it('accepts the shortest form on each side of every boundary with canonical', () => {
    const shortest: [string, number][] = [
      ['17', 23],
      ['1818', 24],
      ['18ff', 255],
      ['190100', 256],
      ['19ffff', 65535],
      ['1a00010000', 65536],
      ['1affffffff', 4294967295],
      ['1b0000000100000000', 4294967296],
      ['37', -24],
      ['3818', -25],
      ['38ff', -256],
      ['390100', -257],
    ];
    for (const [hexText, value] of shortest) expect(decodeCbor(hex(hexText), { canonical: true }), hexText).toBe(value);
  });

  it('fails fast on huge declared lengths, before allocating', () => {
    const started = performance.now();
    // With no item budget to speak of, the byte count alone refuses them.
    const unlimited: DecodeOptions = { maxItems: Number.MAX_SAFE_INTEGER };
    expect(decodeCode('5affffffff')).toBe('CBOR_TRUNCATED');
    expect(decodeCode('7affffffff')).toBe('CBOR_TRUNCATED');
    expect(decodeCode('9affffffff', unlimited)).toBe('CBOR_TRUNCATED');
    expect(decodeCode('baffffffff', unlimited)).toBe('CBOR_TRUNCATED');
    expect(decodeCode('bb00000000ffffffff', unlimited)).toBe('CBOR_TRUNCATED');
    expect(decodeCode('9b000fffffffffffff', unlimited)).toBe('CBOR_TRUNCATED');
    expect(decodeCode('bb000fffffffffffff', unlimited)).toBe('CBOR_TRUNCATED');
    expect(decodeCode('5bffffffffffffffff')).toBe('CBOR_INTEGER_RANGE');
    expect(decodeCode('9bffffffffffffffff')).toBe('CBOR_INTEGER_RANGE');
    // 2^53 - 1 items never fit in the largest budget: the top-level item has taken one.
    expect(decodeCode('9b001fffffffffffff', unlimited)).toBe('CBOR_TOO_MANY_ITEMS');
    // With the default budget, the item count refuses the containers first.
    expect(decodeCode('9affffffff')).toBe('CBOR_TOO_MANY_ITEMS');
    expect(decodeCode('baffffffff')).toBe('CBOR_TOO_MANY_ITEMS');
    expect(decodeCode('bb00000000ffffffff')).toBe('CBOR_TOO_MANY_ITEMS');
    // A map of n entries needs at least 2n bytes: n entries' worth of single bytes is still short.
    expect(decodeCode('a30000000000')).toBe('CBOR_TRUNCATED');
    // 4 GiB would take seconds to allocate and fill; the checks above take microseconds.
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('decodes a view at a non-zero offset into a larger buffer', () => {
    const encoded = hex('a26161016162820203');
    const backing = new Uint8Array(64).fill(0xff);
    backing.set(encoded, 7);
    const view = new Uint8Array(backing.buffer, 7, encoded.length);
    expect(decodeCbor(view)).toEqual(map([['a', 1], ['b', [2, 3]]]));
    // Byte strings come back with the right contents, not the backing buffer's start.
    backing.set(hex('43aabbcc'), 20);
    const bytes = decodeCbor(new Uint8Array(backing.buffer, 20, 4)) as Uint8Array;
    expect(toHex(bytes)).toBe('aabbcc');
    // The bytes after the view are not read: no trailing-bytes error, and a cut view is truncated.
    expect(codeOf(() => decodeCbor(new Uint8Array(backing.buffer, 7, encoded.length - 1)))).toBe('CBOR_TRUNCATED');
    // A Buffer is a Uint8Array and is accepted, also from Node's shared pool.
    expect(decodeCbor(Buffer.from('83010203', 'hex'))).toEqual([1, 2, 3]);
  });

  it('throws TypeError for anything but a Uint8Array', () => {
    const bytes = hex('00');
    const notBytes: unknown[] = [bytes.buffer, [0], '00', 0, null, undefined, new DataView(bytes.buffer), new Int8Array(1), new Uint8ClampedArray(1), new Uint16Array(1), { length: 1, 0: 0 }];
    for (const input of notBytes) expect(() => decodeCbor(input as Uint8Array)).toThrow(TypeError);
  });
});

/** The CborError `run` throws (any other outcome fails the test). */
function errorOf(run: () => unknown): CborError {
  try {
    run();
  } catch (error) {
    if (error instanceof CborError) return error;
    throw error;
  }
  throw new Error('expected a CborError, got a value');
}

/** `head` followed by `fill` up to `length` bytes. */
function padded(head: string, length: number, fill = 0): Uint8Array {
  const bytes = new Uint8Array(length).fill(fill);
  bytes.set(hex(head));
  return bytes;
}

const MIB_32 = 32 * 1024 * 1024;

describe('decodeCbor: item budget (maxItems)', () => {
  // Regression: 32 MiB holding one array of one-byte items was read as 33 million JS values (about
  // 1.7 s here) before anyone could refuse it. The offset says where decoding stopped: at the head.
  it('refuses a 32 MiB one-array input at its 5-byte head', () => {
    const lying = errorOf(() => decodeCbor(padded('9a02000000', MIB_32)));
    expect([lying.code, lying.offset]).toEqual(['CBOR_TOO_MANY_ITEMS', 5]);
    // A count that the bytes could hold: only the item budget stops it.
    const count = (MIB_32 - 5).toString(16).padStart(8, '0');
    for (const fill of [0x00, 0x80, 0xf6]) {
      const error = errorOf(() => decodeCbor(padded(`9a${count}`, MIB_32, fill), { allowIndefinite: true, canonical: true }));
      expect([error.code, error.offset], `fill ${fill}`).toEqual(['CBOR_TOO_MANY_ITEMS', 5]);
    }
  });

  it('refuses a 32 MiB one-map input at its head, and a huge array nested in a small map at its own', () => {
    const entries = ((MIB_32 - 5) / 2).toString(16).padStart(8, '0');
    const map = errorOf(() => decodeCbor(padded(`ba${entries}`, MIB_32)));
    expect([map.code, map.offset]).toEqual(['CBOR_TOO_MANY_ITEMS', 5]);
    // {"a": [0 x (32 MiB - 8)]}: the array head ends at byte 8.
    const nested = errorOf(() => decodeCbor(padded(`a161619a${(MIB_32 - 8).toString(16).padStart(8, '0')}`, MIB_32)));
    expect([nested.code, nested.offset]).toEqual(['CBOR_TOO_MANY_ITEMS', 8]);
  });

  it('counts every item: the top level, elements, map keys and values, at every depth', () => {
    const cases: [string, number][] = [
      ['00', 1],
      ['80', 1],
      ['83010203', 4],
      ['a201020304', 5],
      ['8301820203820405', 8],
      ['a26161016162820203', 7],
      ['826161a161626163', 5],
    ];
    for (const [hexText, items] of cases) {
      expect(decodeCbor(hex(hexText), { maxItems: items }), hexText).toBeDefined();
      expect(decodeCode(hexText, { maxItems: items - 1 }), hexText).toBe('CBOR_TOO_MANY_ITEMS');
    }
  });

  it('refuses a definite container at the head whose count no longer fits, siblings included', () => {
    // [1, [2, 3], [4, 5]] with 7 items: the outer head promises 3 (4 of 7), the first pair 2 (6), the
    // second pair's head (ending at byte 6) would make 8.
    const error = errorOf(() => decodeCbor(hex('8301820203820405'), { maxItems: 7 }));
    expect([error.code, error.offset]).toEqual(['CBOR_TOO_MANY_ITEMS', 6]);
    // [[0 x 3], 0, 0] with 5: the inner head (byte 2) already makes 6 with its two unread siblings.
    const early = errorOf(() => decodeCbor(hex('83830000000000'), { maxItems: 5 }));
    expect([early.code, early.offset]).toEqual(['CBOR_TOO_MANY_ITEMS', 2]);
  });

  it('counts indefinite arrays and maps item by item, refusing at the first item over', () => {
    const array = (n: number): Uint8Array => hex(`9f${'00'.repeat(n)}ff`);
    expect(decodeCbor(array(10), { allowIndefinite: true, maxItems: 11 })).toHaveLength(10);
    const error = errorOf(() => decodeCbor(array(10), { allowIndefinite: true, maxItems: 10 }));
    expect([error.code, error.offset]).toEqual(['CBOR_TOO_MANY_ITEMS', 10]);
    // {_ "a": 1, "b": [_ 2, 3]}: 1 + 4 + 2 = 7 items.
    expect(decodeCbor(hex('bf61610161629f0203ffff'), { allowIndefinite: true, maxItems: 7 })).toBeInstanceOf(Map);
    expect(decodeCode('bf61610161629f0203ffff', { allowIndefinite: true, maxItems: 6 })).toBe('CBOR_TOO_MANY_ITEMS');
    // An indefinite array followed by 32 MiB of zeros stops after maxItems, not at the end of the input.
    const long = errorOf(() => decodeCbor(padded('9f', MIB_32), { allowIndefinite: true, maxItems: 1001 }));
    expect([long.code, long.offset]).toEqual(['CBOR_TOO_MANY_ITEMS', 1001]);
  });

  it(`defaults to ${DEFAULT_MAX_ITEMS} items, the top-level one included`, () => {
    expect(DEFAULT_MAX_ITEMS).toBe(4096);
    const array = (n: number): Uint8Array => encodeCbor(new Array<number>(n).fill(0));
    expect(decodeCbor(array(DEFAULT_MAX_ITEMS - 1))).toHaveLength(DEFAULT_MAX_ITEMS - 1);
    expect(codeOf(() => decodeCbor(array(DEFAULT_MAX_ITEMS)))).toBe('CBOR_TOO_MANY_ITEMS');
  });

  it('maxItems 0 refuses everything at offset 0; anything but a non-negative integer is a TypeError', () => {
    const none = errorOf(() => decodeCbor(hex('00'), { maxItems: 0 }));
    expect([none.code, none.offset]).toEqual(['CBOR_TOO_MANY_ITEMS', 0]);
    for (const maxItems of [-1, 1.5, Number.NaN, Infinity, 2 ** 53, '5' as unknown as number]) {
      expect(() => decodeCbor(hex('00'), { maxItems }), String(maxItems)).toThrow(TypeError);
    }
  });
});

describe('encodeCbor', () => {
  it.each(ACCEPTED)('encodes the RFC 8949 Appendix A value of %s to exactly those bytes', (hexText, value) => {
    expect(toHex(encodeCbor(value))).toBe(hexText);
  });

  it.each([
    [0, '00'],
    [23, '17'],
    [24, '1818'],
    [255, '18ff'],
    [256, '190100'],
    [65535, '19ffff'],
    [65536, '1a00010000'],
    [4294967295, '1affffffff'],
    [4294967296, '1b0000000100000000'],
    [Number.MAX_SAFE_INTEGER, '1b001fffffffffffff'],
    [-1, '20'],
    [-24, '37'],
    [-25, '3818'],
    [-256, '38ff'],
    [-257, '390100'],
    [-65536, '39ffff'],
    [-65537, '3a00010000'],
    [-4294967296, '3affffffff'],
    [-4294967297, '3b0000000100000000'],
    [Number.MIN_SAFE_INTEGER, '3b001ffffffffffffe'],
    [-0, '00'],
  ])('encodes %d in shortest form %s', (value, hexText) => {
    expect(toHex(encodeCbor(value))).toBe(hexText);
  });

  it.each([
    [23, ['57', '77', '97', 'b7']],
    [24, ['5818', '7818', '9818', 'b818']],
    [255, ['58ff', '78ff', '98ff', 'b8ff']],
    [256, ['590100', '790100', '990100', 'b90100']],
    [65535, ['59ffff', '79ffff', '99ffff', 'b9ffff']],
    [65536, ['5a00010000', '7a00010000', '9a00010000', 'ba00010000']],
  ] as [number, [string, string, string, string]][])('uses the shortest length head for %d bytes, characters, items and entries', (length, heads) => {
    const [bytesHead, textHead, arrayHead, mapHead] = heads;
    const bytes = encodeCbor(new Uint8Array(length));
    expect(toHex(bytes.subarray(0, bytesHead.length / 2))).toBe(bytesHead);
    expect(bytes.length).toBe(bytesHead.length / 2 + length);
    expect(toHex(encodeCbor('x'.repeat(length)).subarray(0, textHead.length / 2))).toBe(textHead);
    expect(toHex(encodeCbor(new Array<number>(length).fill(0)).subarray(0, arrayHead.length / 2))).toBe(arrayHead);
    const entries = new Map(Array.from({ length }, (_, i) => [i, 0] as [number, number]));
    expect(toHex(encodeCbor(entries).subarray(0, mapHead.length / 2))).toBe(mapHead);
  });

  it('counts text length in UTF-8 bytes, not UTF-16 units', () => {
    expect(toHex(encodeCbor('\u00fc'))).toBe('62c3bc');
    expect(toHex(encodeCbor('\ud800\udd51'))).toBe('64f0908591');
    expect(toHex(encodeCbor('\u6c34'.repeat(8)))).toBe(`7818${'e6b0b4'.repeat(8)}`);
  });

  it('keeps Map insertion order, with integer and text keys', () => {
    expect(toHex(encodeCbor(new Map<string | number, CborInput>([['b', 1], ['a', 2], [3, 'c'], [-1, null]])))).toBe('a461620161610203616320f6');
  });

  it('encodes a plain object as a text-keyed map in property order', () => {
    expect(toHex(encodeCbor({ a: 1, b: [2, 3] }))).toBe('a26161016162820203');
    expect(toHex(encodeCbor({ z: true, y: null, x: new Uint8Array([1]) }))).toBe('a3617af56179f661784101');
    expect(toHex(encodeCbor({}))).toBe('a0');
  });

  it('copies the result out of its working buffer', () => {
    const encoded = encodeCbor(new Uint8Array(300));
    expect(encoded.byteOffset).toBe(0);
    expect(encoded.buffer.byteLength).toBe(encoded.length);
  });

  it('rejects what the profile cannot carry with CBOR_ENCODE', () => {
    class Point {
      x = 1;
    }
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    const invalid: [unknown, string][] = [
      [2 ** 53, '2^53'],
      [-(2 ** 53), '-2^53'],
      [Number.MAX_VALUE, 'MAX_VALUE'],
      [1.5, '1.5'],
      [-0.5, '-0.5'],
      [Number.NaN, 'NaN'],
      [Number.POSITIVE_INFINITY, 'Infinity'],
      [10n, 'bigint'],
      [undefined, 'undefined'],
      [() => 1, 'function'],
      [Symbol('s'), 'symbol'],
      [new Point(), 'class instance'],
      [new Date(0), 'Date'],
      [new Set([1]), 'Set'],
      [new ArrayBuffer(1), 'ArrayBuffer'],
      [new Uint16Array(1), 'Uint16Array'],
      [new Map<unknown, unknown>([[Symbol('k'), 1]]), 'Map with a symbol key'],
      [new Map<unknown, unknown>([[1.5, 1]]), 'Map with a float key'],
      [new Map<unknown, unknown>([[true, 1]]), 'Map with a boolean key'],
      [new Map<unknown, unknown>([[new Uint8Array(1), 1]]), 'Map with a bytes key'],
      [{ a: undefined }, 'object with an undefined value'],
      [[1, undefined], 'array with undefined'],
      [[1, 2.5], 'array with a float'],
      [{ a: { b: 1n } }, 'nested bigint'],
      [cyclic, 'cyclic array'],
    ];
    for (const [value, label] of invalid) expect(codeOf(() => encodeCbor(value as CborInput)), label).toBe('CBOR_ENCODE');
  });

  // Regression: a plain object's symbol-keyed properties are silently dropped, because Object.entries ignores
  // symbols. `encodeCbor({ [Symbol('k')]: 1 })` returns a0 (an empty map) instead of throwing CBOR_ENCODE as
  // a Map with a symbol key does.
  it('rejects a plain object with a symbol key with CBOR_ENCODE', () => {
    expect(codeOf(() => encodeCbor({ [Symbol('k')]: 1 } as unknown as CborInput))).toBe('CBOR_ENCODE');
  });

  // Regression: TextEncoder turns a lone surrogate into U+FFFD, so a string that has no UTF-8 form is
  // silently changed (encodeCbor('\ud800') is 63efbfbd) instead of refused.
  it('rejects a string with a lone surrogate with CBOR_ENCODE', () => {
    expect(codeOf(() => encodeCbor('\ud800'))).toBe('CBOR_ENCODE');
  });
});

// ---- property tests ----------------------------------------------------------------------------------

const integerArbitrary = fc.oneof(
  fc.integer({ min: -300, max: 300 }),
  fc.constantFrom(23, 24, 255, 256, 65535, 65536, 4294967295, 4294967296, -24, -25, -256, -257, -65537, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER),
  fc.maxSafeInteger(),
);
const textArbitrary = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 }));
const keyArbitrary = fc.oneof(textArbitrary, integerArbitrary);

const { value: valueArbitrary } = fc.letrec<{ value: CborValue; array: CborValue[]; map: Map<number | string, CborValue> }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 6 },
    fc.oneof(integerArbitrary, textArbitrary, fc.uint8Array({ maxLength: 40 }), fc.boolean(), fc.constant(null)),
    tie('array'),
    tie('map'),
  ),
  array: fc.array(tie('value'), { maxLength: 6 }),
  map: fc.uniqueArray(fc.tuple(keyArbitrary, tie('value')), { selector: ([key]) => key, maxLength: 6 }).map((entries) => new Map(entries)),
}));

/** Random bytes, half of them drawn from the bytes that start or end interesting structures. */
const hostileBytesArbitrary = (maxLength: number): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    fc.uint8Array({ maxLength }),
    fc
      .array(
        fc.oneof(
          fc.constantFrom(0x00, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x20, 0x3b, 0x40, 0x41, 0x58, 0x5f, 0x61, 0x62, 0x78, 0x7f, 0x80, 0x81, 0x98, 0x9f, 0xa0, 0xa1, 0xb8, 0xbf, 0xc0, 0xe0, 0xf4, 0xf6, 0xf7, 0xf8, 0xf9, 0xfb, 0xff),
          fc.integer({ min: 0, max: 255 }),
        ),
        { maxLength },
      )
      .map((bytes) => Uint8Array.from(bytes)),
  );


describe('properties', () => {
  it('(a) decode(encode(v), canonical) deep-equals v and re-encodes to the same bytes', () => {
    fc.assert(
      fc.property(valueArbitrary, (value) => {
        const encoded = encodeCbor(value);
        const decoded = decodeCbor(encoded, { canonical: true });
        expect(decoded).toEqual(value);
        expect(toHex(encodeCbor(decoded))).toBe(toHex(encoded));
      }),
      { seed: 42, numRuns: 1000 },
    );
  });

  it('(a) every strict prefix of a valid encoding is CBOR_TRUNCATED, every extension CBOR_TRAILING_BYTES', () => {
    fc.assert(
      fc.property(valueArbitrary, fc.uint8Array({ minLength: 1, maxLength: 4 }), (value, extra) => {
        const encoded = encodeCbor(value);
        for (let length = 0; length < encoded.length; length++) {
          expect(codeOf(() => decodeCbor(encoded.subarray(0, length)))).toBe('CBOR_TRUNCATED');
        }
        expect(codeOf(() => decodeCbor(Uint8Array.from([...encoded, ...extra])))).toBe('CBOR_TRAILING_BYTES');
      }),
      { seed: 42, numRuns: 200 },
    );
  });

  it('(b) random bytes either decode or throw a CborError with a known code, under every option set', () => {
    fc.assert(
      fc.property(hostileBytesArbitrary(512), (bytes) => {
        for (const options of OPTION_SETS) {
          const result = decodesOrFailsCleanly(bytes, options);
          // What the strictest decode accepts is exactly what the encoder would emit for it.
          if (!(result instanceof CborError) && options.canonical === true && options.allowIndefinite !== true) {
            expect(toHex(encodeCbor(result))).toBe(toHex(bytes));
          }
        }
      }),
      { seed: 42, numRuns: 3000 },
    );
  });

  it('(c) mutated, truncated and extended valid encodings either decode or throw a known CborError', () => {
    fc.assert(
      fc.property(valueArbitrary, fc.array(mutationArbitrary, { minLength: 1, maxLength: 3 }), (value, mutations) => {
        let bytes = encodeCbor(value);
        for (const mutation of mutations) bytes = mutate(bytes, mutation);
        for (const options of OPTION_SETS) decodesOrFailsCleanly(bytes, options);
      }),
      { seed: 42, numRuns: 1500 },
    );
  });

  // The decoder builds short pure-ASCII text without TextDecoder (decode.ts ASCII_FAST_PATH_MAX_BYTES):
  // for every byte content around that size, the answer must be exactly the validating decoder's.
  it('(e) text strings of 0-80 bytes decode exactly as a fatal TextDecoder says, ASCII or not', () => {
    const reference = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    const contentArbitrary = fc.oneof(
      fc.uint8Array({ maxLength: 80 }),
      fc.uint8Array({ maxLength: 80 }).map((bytes) => bytes.map((byte) => byte & 0x7f)),
      fc.string({ unit: 'grapheme', maxLength: 30 }).map((text) => new TextEncoder().encode(text)),
    );
    fc.assert(
      fc.property(contentArbitrary, (content) => {
        const head = content.length < 24 ? [0x60 | content.length] : [0x78, content.length];
        const bytes = Uint8Array.from([...head, ...content]);
        let expected: string | null;
        try {
          expected = reference.decode(content);
        } catch {
          expected = null;
        }
        if (expected === null) expect(codeOf(() => decodeCbor(bytes))).toBe('CBOR_INVALID_UTF8');
        else expect(decodeCbor(bytes)).toBe(expected);
      }),
      { seed: 42, numRuns: 3000 },
    );
  });

  // The encoder writes pure-ASCII text in place (encode.ts Writer.ascii) and the rest through TextEncoder:
  // for any string, ASCII or not, around the heads' size steps, the bytes must be the head of its UTF-8
  // length and TextEncoder's bytes, and a lone surrogate must still be refused.
  it('(f) text strings encode as their UTF-8 length and TextEncoder bytes, ASCII or not', () => {
    const reference = new TextEncoder();
    const textArbitrary = fc.oneof(
      fc.string({ unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)), maxLength: 300 }),
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.tuple(fc.string({ maxLength: 30 }), fc.integer({ min: 0x80, max: 0xffff }), fc.string({ maxLength: 30 })).map(([a, c, b]) => a + String.fromCharCode(c) + b),
    );
    fc.assert(
      fc.property(textArbitrary, (text) => {
        const lone = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
        if (lone) {
          expect(codeOf(() => encodeCbor(text))).toBe('CBOR_ENCODE');
          return;
        }
        const content = reference.encode(text);
        const n = content.length;
        const head = n < 24 ? [0x60 | n] : n <= 0xff ? [0x78, n] : [0x79, n >> 8, n & 0xff];
        expect(toHex(encodeCbor(text))).toBe(toHex(Uint8Array.from([...head, ...content])));
        expect(toHex(encodeCbor([text, 1]))).toBe(toHex(Uint8Array.from([0x82, ...head, ...content, 0x01])));
        expect(decodeCbor(encodeCbor(text))).toBe(text);
      }),
      { seed: 42, numRuns: 3000 },
    );
  });

  it('(d) inputs up to 64 KiB finish decoding', () => {
    const KIB_64 = 64 * 1024;
    // Large well-formed items (long strings, wide arrays and maps, deep-ish indefinite nesting), then
    // optionally damaged, plus plain random bytes.
    const largeArbitrary = fc.oneof(
      fc.uint8Array({ minLength: KIB_64 / 2, maxLength: KIB_64 }),
      fc.integer({ min: 1, max: 6000 }).map((count) => encodeCbor(Array.from({ length: count }, (_, i) => new Map<string | number, CborInput>([[i, 'v'], ['k', i]])))),
      fc.integer({ min: 1, max: KIB_64 - 16 }).map((length) => encodeCbor('\u6c34'.repeat(Math.floor(length / 3)))),
      fc.integer({ min: 1, max: 10_000 }).map((count) => encodeCbor(new Map(Array.from({ length: count }, (_, i) => [`k${i}`, i] as [string, number])))),
      fc.integer({ min: 1, max: KIB_64 / 2 }).map((depth) => Uint8Array.from([...new Uint8Array(depth).fill(0x9f), ...new Uint8Array(depth).fill(0xff)])),
      fc.integer({ min: 1, max: KIB_64 - 8 }).map((count) => Uint8Array.from([0xbf, ...new Uint8Array(count).fill(0x00)])),
    );
    fc.assert(
      fc.property(largeArbitrary, fc.option(mutationArbitrary, { nil: undefined }), (bytes, mutation) => {
        const input = (mutation === undefined ? bytes : mutate(bytes, mutation)).subarray(0, KIB_64);
        for (const options of OPTION_SETS) decodesOrFailsCleanly(input, options);
      }),
      { seed: 42, numRuns: 60 },
    );
  });
});
