/**
 * Tests for the NSM request/response codec (codec.ts). Request vectors are the hex table of specs/nsm.md §2
 * (serde_cbor's encoding of AWS's Rust types), checked byte for byte both ways. Replies are built by hand
 * from hex and `encodeCbor`, in AWS's field order and in QEMU's (DescribePCR with `data` before `lock`,
 * DescribeNSM with `digest` first, integers in the 8-byte form libcbor may emit, specs/nsm.md §2 and §4).
 * Property tests (fast-check, fixed seeds) check that hostile or damaged bytes only ever produce a coded
 * `NsmError`.
 */

import fc from 'fast-check';
import { mutate, mutationArbitrary } from '../test/mutations.js';
import { describe, expect, it } from 'vitest';
import { CborError, encodeCbor, type CborInput } from '../cbor/index.js';
import { decodeNsmRequest, decodeNsmResponse, encodeNsmRequest, encodeNsmResponse, type NsmRequest, type NsmResponse } from './codec.js';
import { NSM_REPLY_ERROR_CODES, NsmError, type NsmErrorCode } from './errors.js';

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
/** Hex of the CBOR text string `value` (head and UTF-8). */
const text = (value: string): string => toHex(encodeCbor(value));
/** Hex of an unsigned integer in the 8-byte form (`1b` + 8 bytes) QEMU's libcbor may use. */
const wide = (value: number): string => `1b${value.toString(16).padStart(16, '0')}`;

const REQUEST_TYPES: readonly NsmRequest['type'][] = ['DescribeNSM', 'GetRandom', 'DescribePCR', 'ExtendPCR', 'LockPCR', 'LockPCRs', 'Attestation'];
const REPLY_ERROR_NAMES: readonly [string, NsmErrorCode][] = [
  ['InvalidArgument', 'NSM_INVALID_ARGUMENT'],
  ['InvalidIndex', 'NSM_INVALID_INDEX'],
  ['InvalidResponse', 'NSM_INVALID_RESPONSE'],
  ['ReadOnlyIndex', 'NSM_READ_ONLY_INDEX'],
  ['InvalidOperation', 'NSM_INVALID_OPERATION'],
  ['BufferTooSmall', 'NSM_BUFFER_TOO_SMALL'],
  ['InputTooLarge', 'NSM_INPUT_TOO_LARGE'],
  ['InternalError', 'NSM_INTERNAL_ERROR'],
];
/** Every code decodeNsmResponse may throw. */
const RESPONSE_CODES: ReadonlySet<NsmErrorCode> = new Set<NsmErrorCode>(['NSM_BAD_RESPONSE', ...REPLY_ERROR_NAMES.map(([, code]) => code)]);

/** The code of the `NsmError` `run` throws; any other outcome fails the test. */
function nsmCodeOf(run: () => unknown): NsmErrorCode {
  try {
    run();
  } catch (error) {
    if (error instanceof NsmError) return error.code;
    throw error;
  }
  throw new Error('expected an NsmError, got a value');
}

function replyCode(hexText: string, expected: NsmRequest['type']): NsmErrorCode {
  return nsmCodeOf(() => decodeNsmResponse(hex(hexText), expected));
}

// specs/nsm.md §2, the request table, as [label, request, hex].
const REQUEST_VECTORS: [string, NsmRequest, string][] = [
  ['DescribeNSM', { type: 'DescribeNSM' }, '6b44657363726962654e534d'],
  ['GetRandom', { type: 'GetRandom' }, '6947657452616e646f6d'],
  ['DescribePCR{index:0}', { type: 'DescribePCR', index: 0 }, 'a16b4465736372696265504352a165696e64657800'],
  ['ExtendPCR{index:16,data:010203}', { type: 'ExtendPCR', index: 16, data: hex('010203') }, 'a169457874656e64504352a265696e64657810646461746143010203'],
  ['LockPCR{index:16}', { type: 'LockPCR', index: 16 }, 'a1674c6f636b504352a165696e64657810'],
  ['LockPCRs{range:32}', { type: 'LockPCRs', range: 32 }, 'a1684c6f636b50435273a16572616e67651820'],
  [
    'Attestation{null,null,null}',
    { type: 'Attestation', userData: null, nonce: null, publicKey: null },
    'a16b4174746573746174696f6ea369757365725f64617461f6656e6f6e6365f66a7075626c69635f6b6579f6',
  ],
  [
    'Attestation{nonce:aabb}',
    { type: 'Attestation', userData: null, nonce: hex('aabb'), publicKey: null },
    'a16b4174746573746174696f6ea369757365725f64617461f6656e6f6e636542aabb6a7075626c69635f6b6579f6',
  ],
];

const PCR_A = new Uint8Array(48).fill(0xa5);
const PCR_ZERO = new Uint8Array(48);
const DESCRIPTION = {
  versionMajor: 1,
  versionMinor: 0,
  versionPatch: 0,
  moduleId: 'i-0123456789abcdef0-enc0123456789abcdef',
  maxPcrs: 32,
  lockedPcrs: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  digest: 'SHA384',
};

/** One valid reply of every type, as the codec's encoder writes it (AWS field order, shortest integers). */
const VALID_RESPONSES: Exclude<NsmResponse, { type: 'Error' }>[] = [
  { type: 'DescribeNSM', description: DESCRIPTION },
  { type: 'GetRandom', random: new Uint8Array(256).map((_, i) => i) },
  { type: 'DescribePCR', pcr: { locked: true, value: PCR_A } },
  { type: 'ExtendPCR', value: PCR_A },
  { type: 'LockPCR' },
  { type: 'LockPCRs' },
  { type: 'Attestation', document: hex('8444a1013822') },
];

describe('encodeNsmRequest / decodeNsmRequest: specs/nsm.md §2', () => {
  it.each(REQUEST_VECTORS)('encodes %s byte for byte', (_label, request, hexText) => {
    expect(toHex(encodeNsmRequest(request))).toBe(hexText);
  });

  it.each(REQUEST_VECTORS)('decodes %s back to the request', (_label, request, hexText) => {
    expect(decodeNsmRequest(hex(hexText))).toEqual(request);
  });

  it('encodes every field of Attestation in declaration order, present or null', () => {
    const request: NsmRequest = { type: 'Attestation', userData: hex('01'), nonce: null, publicKey: hex('0203') };
    expect(toHex(encodeNsmRequest(request))).toBe(
      `a1${text('Attestation')}a3${text('user_data')}4101${text('nonce')}f6${text('public_key')}420203`,
    );
    expect(decodeNsmRequest(encodeNsmRequest(request))).toEqual(request);
  });

  it('encodes index and range in shortest form at the QEMU limit 255', () => {
    expect(toHex(encodeNsmRequest({ type: 'DescribePCR', index: 255 }))).toBe(`a1${text('DescribePCR')}a1${text('index')}18ff`);
    expect(toHex(encodeNsmRequest({ type: 'LockPCRs', range: 23 }))).toBe(`a1${text('LockPCRs')}a1${text('range')}17`);
  });

  it.each([
    ['empty', ''],
    ['a break byte', 'ff'],
    ['an unknown unit request', text('DescribeAll')],
    ['a unit request with a body', `a1${text('DescribeNSM')}a0`],
    ['an unknown request', `a1${text('DescribeAll')}a0`],
    ['two requests in one map', `a2${text('DescribePCR')}a1${text('index')}00${text('LockPCR')}a1${text('index')}00`],
    ['a body that is not a map', `a1${text('DescribePCR')}00`],
    ['an integer request name', `a101a0`],
    ['a negative index', `a1${text('DescribePCR')}a1${text('index')}20`],
    ['a text index', `a1${text('DescribePCR')}a1${text('index')}${text('0')}`],
    ['a missing index', `a1${text('LockPCR')}a0`],
    ['a missing range', `a1${text('LockPCRs')}a1${text('index')}00`],
    ['ExtendPCR without data', `a1${text('ExtendPCR')}a1${text('index')}10`],
    ['ExtendPCR with null data', `a1${text('ExtendPCR')}a2${text('index')}10${text('data')}f6`],
    ['Attestation with a text nonce', `a1${text('Attestation')}a1${text('nonce')}${text('aa')}`],
    ['trailing bytes', '6947657452616e646f6d00'],
    ['a duplicate key', `a1${text('DescribePCR')}a2${text('index')}00${text('index')}01`],
    ['a float index', `a1${text('DescribePCR')}a1${text('index')}f90000`],
    ['an indefinite body', `a1${text('DescribePCR')}bf${text('index')}00ff`],
  ])('rejects %s with NSM_INVALID_OPERATION', (_label, hexText) => {
    expect(nsmCodeOf(() => decodeNsmRequest(hex(hexText)))).toBe('NSM_INVALID_OPERATION');
  });

  it('keeps the CBOR failure as the cause', () => {
    try {
      decodeNsmRequest(hex('6947657452616e646f6d00'));
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(NsmError);
      expect((error as NsmError).cause).toBeInstanceOf(CborError);
      expect(((error as NsmError).cause as CborError).code).toBe('CBOR_TRAILING_BYTES');
    }
  });
});

describe('decodeNsmResponse: replies built by hand', () => {
  const pcrHex = toHex(PCR_A);

  it('decodes DescribePCR in AWS order (lock, data) and in QEMU order (data, lock)', () => {
    const aws = `a1${text('DescribePCR')}a2${text('lock')}f5${text('data')}5830${pcrHex}`;
    const qemu = `a1${text('DescribePCR')}a2${text('data')}5830${toHex(PCR_ZERO)}${text('lock')}f4`;
    expect(decodeNsmResponse(hex(aws), 'DescribePCR')).toEqual({ type: 'DescribePCR', pcr: { locked: true, value: PCR_A } });
    expect(decodeNsmResponse(hex(qemu), 'DescribePCR')).toEqual({ type: 'DescribePCR', pcr: { locked: false, value: PCR_ZERO } });
    // The encoder writes AWS's order.
    expect(toHex(encodeNsmResponse({ type: 'DescribePCR', pcr: { locked: true, value: PCR_A } }))).toBe(aws);
  });

  it('decodes ExtendPCR, GetRandom and Attestation', () => {
    expect(decodeNsmResponse(hex(`a1${text('ExtendPCR')}a1${text('data')}5830${pcrHex}`), 'ExtendPCR')).toEqual({ type: 'ExtendPCR', value: PCR_A });
    const random256 = new Uint8Array(256).fill(7);
    expect(decodeNsmResponse(hex(`a1${text('GetRandom')}a1${text('random')}590100${toHex(random256)}`), 'GetRandom')).toEqual({ type: 'GetRandom', random: random256 });
    expect(decodeNsmResponse(hex(`a1${text('GetRandom')}a1${text('random')}4101`), 'GetRandom')).toEqual({ type: 'GetRandom', random: hex('01') });
    expect(decodeNsmResponse(hex(`a1${text('Attestation')}a1${text('document')}43d28440`), 'Attestation')).toEqual({ type: 'Attestation', document: hex('d28440') });
  });

  it('decodes the bare LockPCR and LockPCRs replies', () => {
    expect(decodeNsmResponse(hex('674c6f636b504352'), 'LockPCR')).toEqual({ type: 'LockPCR' });
    expect(decodeNsmResponse(hex('684c6f636b50435273'), 'LockPCRs')).toEqual({ type: 'LockPCRs' });
    expect(replyCode('674c6f636b504352', 'LockPCRs')).toBe('NSM_BAD_RESPONSE');
    expect(replyCode('684c6f636b50435273', 'LockPCR')).toBe('NSM_BAD_RESPONSE');
    // Unit replies only as bare text: not as a one-entry map.
    expect(replyCode(`a1${text('LockPCR')}a0`, 'LockPCR')).toBe('NSM_BAD_RESPONSE');
    expect(replyCode(`a1${text('LockPCR')}f6`, 'LockPCR')).toBe('NSM_BAD_RESPONSE');
  });

  it('decodes DescribeNSM in AWS order with shortest integers', () => {
    const aws =
      `a1${text('DescribeNSM')}a7${text('version_major')}01${text('version_minor')}00${text('version_patch')}00` +
      `${text('module_id')}${text(DESCRIPTION.moduleId)}${text('max_pcrs')}1820${text('locked_pcrs')}90${'000102030405060708090a0b0c0d0e0f'}` +
      `${text('digest')}${text('SHA384')}`;
    expect(decodeNsmResponse(hex(aws), 'DescribeNSM')).toEqual({ type: 'DescribeNSM', description: DESCRIPTION });
    expect(toHex(encodeNsmResponse({ type: 'DescribeNSM', description: DESCRIPTION }))).toBe(aws);
  });

  it('decodes DescribeNSM in QEMU order (digest first) with 8-byte integers', () => {
    const qemu =
      `a1${text('DescribeNSM')}a7${text('digest')}${text('SHA384')}${text('module_id')}${text('i-qemu')}` +
      `${text('max_pcrs')}${wide(32)}${text('locked_pcrs')}83${wide(0)}${wide(1)}${wide(16)}` +
      `${text('version_major')}${wide(1)}${text('version_minor')}1a00000000${text('version_patch')}190000`;
    expect(decodeNsmResponse(hex(qemu), 'DescribeNSM')).toEqual({
      type: 'DescribeNSM',
      description: { versionMajor: 1, versionMinor: 0, versionPatch: 0, moduleId: 'i-qemu', maxPcrs: 32, lockedPcrs: [0, 1, 16], digest: 'SHA384' },
    });
  });

  it('accepts 8-byte integers and non-shortest lengths elsewhere too', () => {
    // Byte-string length 48 as 59 0030 and 5b 0000000000000030.
    expect(decodeNsmResponse(hex(`a1${text('ExtendPCR')}a1${text('data')}590030${pcrHex}`), 'ExtendPCR')).toEqual({ type: 'ExtendPCR', value: PCR_A });
    expect(decodeNsmResponse(hex(`a1${text('ExtendPCR')}a1${text('data')}5b0000000000000030${pcrHex}`), 'ExtendPCR')).toEqual({ type: 'ExtendPCR', value: PCR_A });
    // A map header in its 8-byte form.
    expect(decodeNsmResponse(hex(`bb0000000000000001${text('ExtendPCR')}b90001${text('data')}5830${pcrHex}`), 'ExtendPCR')).toEqual({ type: 'ExtendPCR', value: PCR_A });
  });

  it.each(REPLY_ERROR_NAMES)('turns {"Error":"%s"} into %s for every request type', (name, code) => {
    const reply = `a1${text('Error')}${text(name)}`;
    expect(toHex(encodeNsmResponse({ type: 'Error', error: name }))).toBe(reply);
    for (const expected of REQUEST_TYPES) expect(replyCode(reply, expected), expected).toBe(code);
  });

  it('has exactly the eight reply names of specs/nsm.md §2 in its table', () => {
    expect(Object.entries(NSM_REPLY_ERROR_CODES).sort()).toEqual([...REPLY_ERROR_NAMES].sort());
  });

  it.each([
    ['"Success"', text('Success')],
    ['an unknown name', text('NotAnError')],
    ['a name in the wrong case', text('invalidindex')],
    ['our code instead of the name', text('NSM_INVALID_INDEX')],
    ['an integer', '01'],
    ['null', 'f6'],
    ['a map', `a1${text('InvalidIndex')}f6`],
    ['an array', `81${text('InvalidIndex')}`],
  ])('rejects an Error reply carrying %s with NSM_BAD_RESPONSE', (_label, body) => {
    for (const expected of REQUEST_TYPES) expect(replyCode(`a1${text('Error')}${body}`, expected), expected).toBe('NSM_BAD_RESPONSE');
  });

  // Regression: the reply name is looked up with NSM_REPLY_ERROR_CODES[body] on a plain object, so names
  // inherited from Object.prototype are "found". {"Error":"toString"} (a1654572726f7268746f537472696e67)
  // throws an NsmError whose `code` is the function Object.prototype.toString; "constructor",
  // "hasOwnProperty", "valueOf" likewise, "__proto__" gives the object Object.prototype. A device can thus
  // hand callers (and anything mapping codes to HTTP statuses or logs) a code outside NsmErrorCode. Fix:
  // Object.hasOwn or a null-prototype table / Map.
  it.each(['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf'])(
    'rejects {"Error":"%s"} with NSM_BAD_RESPONSE',
    (name) => {
      expect(replyCode(`a1${text('Error')}${text(name)}`, 'GetRandom')).toBe('NSM_BAD_RESPONSE');
    },
  );

  it('rejects a reply of another type than the request, for every pair', () => {
    for (const response of VALID_RESPONSES) {
      const bytes = encodeNsmResponse(response);
      for (const expected of REQUEST_TYPES) {
        if (expected === response.type) expect(decodeNsmResponse(bytes, expected).type).toBe(expected);
        else expect(nsmCodeOf(() => decodeNsmResponse(bytes, expected)), `${response.type} for ${expected}`).toBe('NSM_BAD_RESPONSE');
      }
    }
  });

  it('rejects PCR values that are not 48 bytes', () => {
    for (const length of [0, 1, 32, 47, 49, 64]) {
      const value = new Uint8Array(length);
      expect(nsmCodeOf(() => decodeNsmResponse(encodeCbor({ ExtendPCR: { data: value } }), 'ExtendPCR')), `${length}`).toBe('NSM_BAD_RESPONSE');
      expect(nsmCodeOf(() => decodeNsmResponse(encodeCbor({ DescribePCR: { lock: false, data: value } }), 'DescribePCR')), `${length}`).toBe('NSM_BAD_RESPONSE');
    }
  });

  it('accepts 1 to 256 random bytes and rejects 0 and 257', () => {
    const reply = (length: number): Uint8Array => encodeCbor({ GetRandom: { random: new Uint8Array(length) } });
    expect(decodeNsmResponse(reply(1), 'GetRandom')).toEqual({ type: 'GetRandom', random: new Uint8Array(1) });
    expect(decodeNsmResponse(reply(256), 'GetRandom')).toEqual({ type: 'GetRandom', random: new Uint8Array(256) });
    expect(nsmCodeOf(() => decodeNsmResponse(reply(0), 'GetRandom'))).toBe('NSM_BAD_RESPONSE');
    expect(nsmCodeOf(() => decodeNsmResponse(reply(257), 'GetRandom'))).toBe('NSM_BAD_RESPONSE');
  });

  const describeNsmBody = (): Map<string, CborInput> =>
    new Map<string, CborInput>([
      ['version_major', 1],
      ['version_minor', 0],
      ['version_patch', 0],
      ['module_id', 'i-x'],
      ['max_pcrs', 32],
      ['locked_pcrs', [0, 1]],
      ['digest', 'SHA384'],
    ]);

  it('rejects DescribeNSM with any field missing or of the wrong type', () => {
    const broken: [string, CborInput | undefined][] = [
      ['version_major', undefined],
      ['version_minor', undefined],
      ['version_patch', undefined],
      ['module_id', undefined],
      ['max_pcrs', undefined],
      ['locked_pcrs', undefined],
      ['digest', undefined],
      ['version_major', -1],
      ['version_major', '1'],
      ['version_patch', null],
      ['module_id', new Uint8Array(3)],
      ['max_pcrs', true],
      ['locked_pcrs', [0, -1]],
      ['locked_pcrs', ['0']],
      ['locked_pcrs', [[0]]],
      ['locked_pcrs', new Map([[0, 0]])],
      ['digest', 384],
    ];
    const reply = (body: Map<string, CborInput>): Uint8Array => encodeCbor({ DescribeNSM: body });
    expect(decodeNsmResponse(reply(describeNsmBody()), 'DescribeNSM').type).toBe('DescribeNSM');
    for (const [key, value] of broken) {
      const body = describeNsmBody();
      if (value === undefined) body.delete(key);
      else body.set(key, value);
      expect(nsmCodeOf(() => decodeNsmResponse(reply(body), 'DescribeNSM')), `${key}=${String(value)}`).toBe('NSM_BAD_RESPONSE');
    }
  });

  it.each([
    ['DescribePCR without lock', 'DescribePCR', { DescribePCR: { data: PCR_A } }],
    ['DescribePCR without data', 'DescribePCR', { DescribePCR: { lock: true } }],
    ['DescribePCR with lock as 1', 'DescribePCR', { DescribePCR: { lock: 1, data: PCR_A } }],
    ['DescribePCR with data as text', 'DescribePCR', { DescribePCR: { lock: true, data: 'a'.repeat(48) } }],
    ['ExtendPCR without data', 'ExtendPCR', { ExtendPCR: {} }],
    ['ExtendPCR with null data', 'ExtendPCR', { ExtendPCR: { data: null } }],
    ['ExtendPCR with a misspelt key', 'ExtendPCR', { ExtendPCR: { Data: PCR_A } }],
    ['GetRandom without random', 'GetRandom', { GetRandom: {} }],
    ['GetRandom with random as an array', 'GetRandom', { GetRandom: { random: [1, 2, 3] } }],
    ['Attestation without document', 'Attestation', { Attestation: {} }],
    ['Attestation with a null document', 'Attestation', { Attestation: { document: null } }],
    ['a body that is bytes', 'ExtendPCR', { ExtendPCR: PCR_A }],
    ['a body that is null', 'Attestation', { Attestation: null }],
    ['a body that is an array', 'GetRandom', { GetRandom: [new Uint8Array(8)] }],
  ] as [string, NsmRequest['type'], CborInput][])('rejects %s with NSM_BAD_RESPONSE', (_label, expected, reply) => {
    expect(nsmCodeOf(() => decodeNsmResponse(encodeCbor(reply), expected))).toBe('NSM_BAD_RESPONSE');
  });

  it.each([
    ['empty', '', 'CBOR_TRUNCATED'],
    ['a lone break', 'ff', 'CBOR_MALFORMED'],
    ['a float', 'f93c00', 'CBOR_UNSUPPORTED'],
    ['a tag', 'c0' + text('LockPCR'), 'CBOR_UNSUPPORTED'],
    ['trailing bytes', '674c6f636b50435200', 'CBOR_TRAILING_BYTES'],
    ['a cut reply', `a1${text('ExtendPCR')}a1${text('data')}5830${'00'.repeat(47)}`, 'CBOR_TRUNCATED'],
    ['a duplicate field', `a1${text('DescribePCR')}a3${text('lock')}f5${text('data')}5830${'00'.repeat(48)}${text('lock')}f4`, 'CBOR_DUPLICATE_KEY'],
    ['an indefinite map', `bf${text('LockPCR')}a0ff`, 'CBOR_INDEFINITE_LENGTH'],
    ['invalid UTF-8', '62c328', 'CBOR_INVALID_UTF8'],
    // {"DescribeNSM": {"locked_pcrs": [0 x 4,096]}}: over the codec's default budget of 4,096 items.
    ['a reply of too many items', `a1${text('DescribeNSM')}a1${text('locked_pcrs')}991000${'00'.repeat(4096)}`, 'CBOR_TOO_MANY_ITEMS'],
  ])('rejects garbage (%s) with NSM_BAD_RESPONSE, keeping the CBOR cause', (_label, hexText, cborCode) => {
    for (const expected of REQUEST_TYPES) {
      try {
        decodeNsmResponse(hex(hexText), expected);
        expect.unreachable();
      } catch (error) {
        expect(error).toBeInstanceOf(NsmError);
        expect((error as NsmError).code).toBe('NSM_BAD_RESPONSE');
        expect(((error as NsmError).cause as CborError).code).toBe(cborCode);
      }
    }
  });

  it.each([
    ['an integer', '00'],
    ['null', 'f6'],
    ['bytes', '4100'],
    ['an array', `81${text('LockPCR')}`],
    ['an empty map', 'a0'],
    ['a map with two replies', `a2${text('LockPCR')}a0${text('Error')}${text('InvalidIndex')}`],
    ['an integer reply name', `a101a0`],
    ['an unknown unit reply', text('Locked')],
    ['a unit reply named after a request with a body', text('DescribeNSM')],
    ['a bare "Error"', text('Error')],
  ])('rejects a reply that is %s with NSM_BAD_RESPONSE', (_label, hexText) => {
    for (const expected of REQUEST_TYPES) expect(replyCode(hexText, expected), expected).toBe('NSM_BAD_RESPONSE');
  });
});

describe('encodeNsmResponse -> decodeNsmResponse', () => {
  it.each(VALID_RESPONSES.map((response) => [response.type, response] as const))('round-trips %s', (type, response) => {
    expect(decodeNsmResponse(encodeNsmResponse(response), type)).toEqual(response);
  });
});

// ---- property tests ----------------------------------------------------------------------------------

const bytesOf = (length: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: length, maxLength: length });
const optionalBytes = fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null });
const uint = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.maxSafeNat());

const requestArbitrary: fc.Arbitrary<NsmRequest> = fc.oneof(
  fc.constant({ type: 'DescribeNSM' as const }),
  fc.constant({ type: 'GetRandom' as const }),
  fc.record({ type: fc.constant('DescribePCR' as const), index: uint }),
  fc.record({ type: fc.constant('ExtendPCR' as const), index: uint, data: fc.uint8Array({ maxLength: 64 }) }),
  fc.record({ type: fc.constant('LockPCR' as const), index: uint }),
  fc.record({ type: fc.constant('LockPCRs' as const), range: uint }),
  fc.record({ type: fc.constant('Attestation' as const), userData: optionalBytes, nonce: optionalBytes, publicKey: optionalBytes }),
);

const responseArbitrary: fc.Arbitrary<NsmResponse> = fc.oneof(
  fc.record({
    type: fc.constant('DescribeNSM' as const),
    description: fc.record({
      versionMajor: uint,
      versionMinor: uint,
      versionPatch: uint,
      moduleId: fc.string({ maxLength: 40 }),
      maxPcrs: uint,
      lockedPcrs: fc.uniqueArray(fc.integer({ min: 0, max: 31 }), { maxLength: 32 }).map((pcrs) => pcrs.sort((a, b) => a - b)),
      digest: fc.constantFrom('SHA256', 'SHA384', 'SHA512'),
    }),
  }),
  fc.record({ type: fc.constant('GetRandom' as const), random: fc.uint8Array({ minLength: 1, maxLength: 256 }) }),
  fc.record({ type: fc.constant('DescribePCR' as const), pcr: fc.record({ locked: fc.boolean(), value: bytesOf(48) }) }),
  fc.record({ type: fc.constant('ExtendPCR' as const), value: bytesOf(48) }),
  fc.constant({ type: 'LockPCR' as const }),
  fc.constant({ type: 'LockPCRs' as const }),
  fc.record({ type: fc.constant('Attestation' as const), document: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({ type: fc.constant('Error' as const), error: fc.oneof(fc.constantFrom(...REPLY_ERROR_NAMES.map(([name]) => name), 'Success'), fc.string({ maxLength: 20 })) }),
);

/** Replies of the right outer shape with fields of arbitrary names and types, to reach the field checks. */
const fieldNames = ['lock', 'data', 'random', 'document', 'version_major', 'version_minor', 'version_patch', 'module_id', 'max_pcrs', 'locked_pcrs', 'digest'];
const scalarArbitrary: fc.Arbitrary<CborInput> = fc.oneof(
  fc.integer({ min: -3, max: 300 }),
  fc.boolean(),
  fc.constant(null),
  fc.string({ maxLength: 8 }),
  fc.uint8Array({ maxLength: 300 }),
  fc.constantFrom<CborInput>(PCR_A, new Uint8Array(256), [0, 1, 2], [-1], ['x'], 'SHA384'),
);
const shapedReplyArbitrary: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.constantFrom(...REQUEST_TYPES, 'Error', 'Nope'),
    fc.oneof(
      scalarArbitrary,
      fc.uniqueArray(fc.tuple(fc.constantFrom(...fieldNames), scalarArbitrary), { selector: ([key]) => key, maxLength: 8 }).map((entries) => new Map<string, CborInput>(entries)),
    ),
  )
  .map(([name, body]) => encodeCbor(new Map<string, CborInput>([[name, body]])));


/** decodeNsmResponse returns a well-typed reply of the expected type or throws an NsmError with a known code. */
function checkResponse(bytes: Uint8Array): void {
  for (const expected of REQUEST_TYPES) {
    let response: NsmResponse;
    try {
      response = decodeNsmResponse(bytes, expected);
    } catch (error) {
      if (!(error instanceof NsmError)) throw error;
      if (!RESPONSE_CODES.has(error.code)) throw new Error(`unexpected code ${String(error.code)}`);
      continue;
    }
    expect(response.type).toBe(expected);
    if (response.type === 'DescribePCR') expect(response.pcr.value.length).toBe(48);
    if (response.type === 'ExtendPCR') expect(response.value.length).toBe(48);
    if (response.type === 'GetRandom') expect(response.random.length).toBeGreaterThanOrEqual(1);
    if (response.type === 'GetRandom') expect(response.random.length).toBeLessThanOrEqual(256);
  }
}

/** decodeNsmRequest returns a request or throws NsmError('NSM_INVALID_OPERATION'); nothing else. */
function checkRequest(bytes: Uint8Array): void {
  try {
    const request = decodeNsmRequest(bytes);
    expect(REQUEST_TYPES).toContain(request.type);
  } catch (error) {
    if (!(error instanceof NsmError)) throw error;
    if (error.code !== 'NSM_INVALID_OPERATION') throw new Error(`unexpected code ${String(error.code)}`);
  }
}

describe('properties', () => {
  it('requests round-trip through encodeNsmRequest and decodeNsmRequest', () => {
    fc.assert(
      fc.property(requestArbitrary, (request) => {
        const encoded = encodeNsmRequest(request);
        expect(decodeNsmRequest(encoded)).toEqual(request);
      }),
      { seed: 42, numRuns: 500 },
    );
  });

  it('responses round-trip through encodeNsmResponse and decodeNsmResponse; errors become their codes', () => {
    fc.assert(
      fc.property(responseArbitrary, (response) => {
        const encoded = encodeNsmResponse(response);
        if (response.type !== 'Error') {
          expect(decodeNsmResponse(encoded, response.type)).toEqual(response);
          return;
        }
        const code = Object.hasOwn(NSM_REPLY_ERROR_CODES, response.error) ? NSM_REPLY_ERROR_CODES[response.error] : 'NSM_BAD_RESPONSE';
        for (const expected of REQUEST_TYPES) expect(nsmCodeOf(() => decodeNsmResponse(encoded, expected))).toBe(code);
      }),
      { seed: 42, numRuns: 500 },
    );
  });

  it('random bytes: only NsmError with a known code, from both decoders', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        checkResponse(bytes);
        checkRequest(bytes);
      }),
      { seed: 42, numRuns: 1500 },
    );
  });

  it('mutated valid replies and requests: only NsmError with a known code', () => {
    fc.assert(
      fc.property(
        fc.oneof(responseArbitrary.map(encodeNsmResponse), requestArbitrary.map(encodeNsmRequest), shapedReplyArbitrary),
        fc.array(mutationArbitrary, { maxLength: 3 }),
        (valid, mutations) => {
          let bytes = valid;
          for (const mutation of mutations) bytes = mutate(bytes, mutation);
          checkResponse(bytes);
          checkRequest(bytes);
        },
      ),
      { seed: 42, numRuns: 2000 },
    );
  });
});
