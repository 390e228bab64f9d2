/**
 * Every decoder of untrusted bytes in the protocol core (decodeSessionRequest, decodeSessionResponse,
 * decodeEnvelope, decodeAppRequest, decodeAppResponse, checkBindingUserData, sequenceFromBytes) fed
 * random bytes, damaged valid messages and well-formed maps with the right keys but random values
 * (fast-check, fixed seeds): each either returns or throws a SteveError with a known code, never another
 * exception. The two decoders with an in-place fast path (envelope, application request) must also
 * agree with their strict reference on every input: the same value, or the same error code. The head
 * check every message decoder runs first (expectMapPrefix) must never refuse a prefix of a message the
 * decoder accepts, and what it refuses the decoder refuses; array and map heads with large counts put
 * inside messages exercise the item budgets.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCbor, type CborInput } from '../../cbor/index.js';
import { mutate, mutationArbitrary } from '../../test/mutations.js';
import { STEVE_ERROR_CODES, SteveError } from '../errors.js';
import { decodeAppRequest, decodeAppRequestStrict, readCanonicalAppRequest, decodeAppResponse, encodeAppRequest, encodeAppResponse } from './application.js';
import { checkBindingUserData, encodeBindingUserData, type Binding } from './binding.js';
import { APP_REQUEST_ENTRIES, APP_RESPONSE_ENTRIES, ENVELOPE_ENTRIES, SESSION_REQUEST_ENTRIES, SESSION_RESPONSE_ENTRIES } from './constants.js';
import { expectMapPrefix } from './fields.js';
import { decodeEnvelope, decodeEnvelopeStrict, readCanonicalEnvelope, decodeSessionRequest, decodeSessionResponse, encodeEnvelope, encodeSessionRequest, encodeSessionResponse } from './messages.js';
import { sequenceFromBytes } from './sequence.js';

const binding: Binding = { suite: 'X25519', sessionId: new Uint8Array(16).fill(1), transcriptHash: new Uint8Array(32).fill(2), binder: new Uint8Array(32).fill(3) };

interface Decoder {
  name: string;
  decode: (bytes: Uint8Array) => unknown;
  samples: Uint8Array[];
  keys: string[];
  /** The message's number of entries for expectMapPrefix; 0 when it is not a CBOR map. */
  entries: number;
}

const DECODERS: Decoder[] = [
  {
    name: 'decodeSessionRequest',
    decode: decodeSessionRequest,
    samples: [
      encodeSessionRequest({ suite: 'X25519', clientNonce: new Uint8Array(32), clientKeyMaterial: new Uint8Array(32).fill(9), contextHash: new Uint8Array(32) }),
      encodeSessionRequest({ suite: 'XWING-DRAFT10', clientNonce: new Uint8Array(32), clientKeyMaterial: new Uint8Array(1216).fill(9), contextHash: new Uint8Array(32) }),
    ],
    keys: ['version', 'key_exchange', 'client_nonce', 'client_key_material', 'context_hash'],
    entries: SESSION_REQUEST_ENTRIES,
  },
  {
    name: 'decodeSessionResponse',
    decode: decodeSessionResponse,
    samples: [encodeSessionResponse({ suite: 'X25519', sessionId: new Uint8Array(16), serverKeyMaterial: new Uint8Array(32), attestationDocument: new Uint8Array(40).fill(0x84), expiresInSeconds: 30 })],
    keys: ['version', 'key_exchange', 'session_id', 'server_key_material', 'attestation_document', 'expires_in_seconds'],
    entries: SESSION_RESPONSE_ENTRIES,
  },
  {
    name: 'decodeEnvelope',
    decode: decodeEnvelope,
    samples: [encodeEnvelope({ sessionId: new Uint8Array(16), sequence: 3, ciphertext: new Uint8Array(48) })],
    keys: ['version', 'session_id', 'sequence', 'ciphertext'],
    entries: ENVELOPE_ENTRIES,
  },
  {
    name: 'decodeAppRequest',
    decode: decodeAppRequest,
    samples: [encodeAppRequest({ method: 'POST', path: '/x?y=1', headers: { 'content-type': 'application/json', cookie: 'a=1' }, body: new Uint8Array([123, 125]) })],
    keys: ['method', 'path', 'headers', 'body'],
    entries: APP_REQUEST_ENTRIES,
  },
  {
    name: 'decodeAppResponse',
    decode: decodeAppResponse,
    samples: [encodeAppResponse({ status: 201, headers: [['set-cookie', 'a=1'], ['set-cookie', 'b=2']], body: null, error: { code: 'x', n: [1, 2] } })],
    keys: ['status', 'headers', 'body', 'error'],
    entries: APP_RESPONSE_ENTRIES,
  },
  {
    name: 'checkBindingUserData',
    decode: (bytes) => checkBindingUserData(bytes, binding),
    samples: [encodeBindingUserData(binding)],
    keys: [],
    entries: 0,
  },
  {
    name: 'sequenceFromBytes',
    decode: sequenceFromBytes,
    samples: [Uint8Array.from([0, 0, 0, 0, 0, 0, 1, 2])],
    keys: [],
    entries: 0,
  },
];

const KNOWN = new Set<string>(STEVE_ERROR_CODES);

function outcome(decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array): string {
  try {
    decode(bytes);
    return 'ok';
  } catch (error) {
    if (!(error instanceof SteveError)) throw new Error(`not a SteveError: ${String(error)}`, { cause: error });
    if (!KNOWN.has(error.code)) throw new Error(`unknown code ${error.code}`);
    return error.code;
  }
}

/** CBOR values of the kinds and sizes our fields use, plus the wrong ones. */
const cborValue: fc.Arbitrary<CborInput> = fc.letrec<{ value: CborInput }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom<CborInput>(null, true, false, 0, 1, 2, 3, 199, 200, 599, 600, -1, Number.MAX_SAFE_INTEGER, 'X25519', 'XWING-DRAFT10', 'GET', '/', ''),
    fc.integer(),
    fc.string({ maxLength: 12 }),
    fc.constantFrom(0, 7, 8, 9, 15, 16, 17, 31, 32, 33, 1120, 1216).chain((length) => fc.uint8Array({ minLength: length, maxLength: length })),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.array(fc.tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 3 }).map((d) => new Map(Object.entries(d))),
  ),
})).value;

/**
 * An array or map head with a large count (1, 2 or 4 count bytes, or indefinite), put into `bytes` at
 * a random place or over its first byte: what a peer writes to make a decoder iterate.
 */
const withBigHead = (samples: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> =>
  fc
    .tuple(
      samples,
      fc.nat(),
      fc.boolean(),
      fc.constantFrom(0x80, 0xa0),
      fc.oneof(
        fc.integer({ min: 24, max: 0xff }).map((n) => [24, n]),
        fc.integer({ min: 0x100, max: 0xffff }).map((n) => [25, n >>> 8, n & 0xff]),
        fc.integer({ min: 0x1_0000, max: 0xffff_ffff }).map((n) => [26, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]),
        fc.constant([31]),
      ),
    )
    .map(([bytes, at, replace, major, [info, ...count]]) => {
      const head = [major | info!, ...count];
      const where = bytes.length === 0 ? 0 : at % bytes.length;
      return Uint8Array.from([...bytes.subarray(0, where), ...head, ...bytes.subarray(replace ? where + 1 : where)]);
    });

describe.each(DECODERS)('$name on hostile input', ({ decode, samples, keys }) => {
  it('the samples decode', () => {
    for (const sample of samples) expect(outcome(decode, sample)).toBe('ok');
  });

  it('random bytes: only known SteveError codes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        outcome(decode, bytes);
      }),
      { seed: 20_260_101, numRuns: 2000 },
    );
  });

  it('damaged valid messages: only known SteveError codes', () => {
    fc.assert(
      fc.property(fc.constantFrom(...samples), fc.array(mutationArbitrary, { minLength: 1, maxLength: 4 }), (sample, mutations) => {
        let bytes = sample;
        for (const mutation of mutations) bytes = mutate(bytes, mutation);
        outcome(decode, bytes);
      }),
      { seed: 20_260_102, numRuns: 3000 },
    );
  });

  it('array and map heads with large counts inside valid messages: only known SteveError codes', () => {
    fc.assert(
      fc.property(withBigHead(fc.constantFrom(...samples)), (bytes) => {
        outcome(decode, bytes);
      }),
      { seed: 20_260_104, numRuns: 2000 },
    );
  });

  it('offset views decode like copies', () => {
    for (const sample of samples) {
      const framed = new Uint8Array(sample.length + 7).fill(0xee);
      framed.set(sample, 3);
      expect(outcome(decode, framed.subarray(3, 3 + sample.length))).toBe('ok');
    }
  });
});

describe.each(DECODERS.filter((d) => d.keys.length > 0))('$name on well-formed maps', ({ decode, keys }) => {
  it('maps with the right keys and random values: only known SteveError codes', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.constantFrom(...keys, 'extra', 'Version'), { minLength: 0, maxLength: keys.length + 1 }),
        fc.array(cborValue, { minLength: keys.length + 1, maxLength: keys.length + 1 }),
        (chosen, values) => {
          const map = new Map<string, CborInput>(chosen.map((key, i) => [key, values[i]!]));
          outcome(decode, encodeCbor(map));
        },
      ),
      { seed: 20_260_103, numRuns: 2000 },
    );
  });
});

describe.each(DECODERS.filter((d) => d.entries > 0))('$name and its head check (expectMapPrefix)', ({ decode, samples, keys, entries }) => {
  const inputs = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.tuple(fc.constantFrom(...samples), fc.array(mutationArbitrary, { minLength: 1, maxLength: 3 })).map(([sample, mutations]) => mutations.reduce(mutate, sample)),
    withBigHead(fc.constantFrom(...samples)),
    fc
      .tuple(fc.uniqueArray(fc.constantFrom(...keys, 'extra', 'more', 'Version'), { maxLength: keys.length + 2 }), fc.array(cborValue, { minLength: keys.length + 2, maxLength: keys.length + 2 }))
      .map(([chosen, values]) => encodeCbor(new Map<string, CborInput>(chosen.map((key, i) => [key, values[i]!])))),
  );

  it('never refuses a prefix of a message the decoder accepts; what it refuses, the decoder refuses', () => {
    fc.assert(
      fc.property(inputs, (bytes) => {
        const decoded = outcome(decode, bytes);
        for (let length = 0; length <= Math.min(bytes.length, 10); length++) {
          let refused = false;
          try {
            expectMapPrefix(bytes.subarray(0, length), entries);
          } catch (error) {
            if (!(error instanceof SteveError) || error.code !== 'STEVE_PROTOCOL') throw error;
            refused = true;
          }
          if (decoded === 'ok') expect(refused).toBe(false);
          if (refused) expect(decoded).toBe('STEVE_PROTOCOL');
        }
      }),
      { seed: 20_260_105, numRuns: 3000 },
    );
    for (const sample of samples) for (let length = 0; length <= sample.length; length++) expectMapPrefix(sample.subarray(0, length), entries);
  });
});

/** Byte arrays as hex (a deep compare of 64 KiB arrays element by element is slow). */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return `bytes:${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, plain(item)]));
}

/** The value, or the error code: what a fast path must reproduce exactly. */
function result(decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array): unknown {
  try {
    return { value: plain(decode(bytes)) };
  } catch (error) {
    if (!(error instanceof SteveError)) throw new Error(`not a SteveError: ${String(error)}`, { cause: error });
    return { code: error.code };
  }
}

/** Bytes of 8 big-endian octets (any value, also above 2^53 - 1). */
const u64Bytes = fc.oneof(
  fc.uint8Array({ minLength: 8, maxLength: 8 }),
  fc.integer({ min: 0, max: 2 ** 21 + 2 }).map((high) => Uint8Array.from([high >>> 24, (high >>> 16) & 0xff, (high >>> 8) & 0xff, high & 0xff, 0, 0, 0, 7])),
);
/** Lengths around every CBOR head boundary, and below the tag. */
const bodyLength = fc.oneof(
  { arbitrary: fc.constantFrom(0, 1, 15, 16, 17, 23, 24, 25, 255, 256, 257), weight: 4 },
  { arbitrary: fc.constantFrom(65_535, 65_536, 65_537), weight: 1 },
  { arbitrary: fc.nat({ max: 600 }), weight: 4 },
);
const headerText = fc.oneof(fc.constantFrom('content-type', 'x-a', 'Content-Type', 'a b', 'é', '', 'application/json', 'x\ty', 'x\ny', 'ÿ'), fc.string({ maxLength: 6 }));

const FAST_PATHS = [
  {
    name: 'decodeEnvelope',
    fast: (bytes: Uint8Array) => decodeEnvelope(bytes, { maxBytes: 100_000 }),
    inPlace: readCanonicalEnvelope,
    sample: encodeEnvelope({ sessionId: new Uint8Array(16).fill(4), sequence: 2 ** 53 - 1, ciphertext: new Uint8Array(300) }),
    strict: (bytes: Uint8Array) => decodeEnvelopeStrict(bytes, { maxBytes: 100_000 }),
    // Canonical envelopes with any id, any 8-byte sequence and ciphertext lengths across the heads.
    valid: fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), u64Bytes, bodyLength).map(([id, sequence, length]) =>
      encodeCbor(
        new Map<string, CborInput>([
          ['version', 2],
          ['session_id', id],
          ['sequence', sequence],
          ['ciphertext', new Uint8Array(length).fill(0xc7)],
        ]),
      ),
    ),
  },
  {
    name: 'decodeAppRequest',
    fast: (bytes: Uint8Array) => decodeAppRequest(bytes),
    inPlace: readCanonicalAppRequest,
    sample: encodeAppRequest({ method: 'POST', path: '/x?y=1', headers: { 'content-type': 'application/json', cookie: 'a=1' }, body: new Uint8Array(70_000) }),
    strict: (bytes: Uint8Array) => decodeAppRequestStrict(bytes),
    // Requests in the encoders' key order with text that may or may not be valid HTTP, and repeated names.
    valid: fc
      .tuple(
        fc.constantFrom('GET', 'POST', 'get', 'BAD METHOD', ''),
        fc.constantFrom('/', '/a?b=c', '/é', 'x', '/a b'),
        fc.array(fc.tuple(headerText, headerText), { maxLength: 4 }),
        fc.oneof(fc.constant(null), bodyLength.map((length) => new Uint8Array(length).fill(0x5a))),
      )
      .map(([method, path, headers, body]) =>
        encodeCbor(
          new Map<string, CborInput>([
            ['method', method],
            ['path', path],
            // Repeated names collapse here; the test below writes a repeated name by hand.
            ['headers', new Map(headers)],
            ['body', body],
          ]),
        ),
      ),
  },
];

describe.each(FAST_PATHS)('$name fast path against the strict decoder', ({ fast, strict, valid, inPlace, sample }) => {
  it("the encoders' own output takes the fast path", () => {
    const read = inPlace(sample);
    expect(read).not.toBeNull();
    expect(read).toEqual(strict(sample));
  });

  it('canonical messages with random values: same value or same error', () => {
    fc.assert(
      fc.property(valid, (bytes) => {
        expect(result(fast, bytes)).toEqual(result(strict, bytes));
      }),
      { seed: 20_261_122, numRuns: 1500 },
    );
  });

  it('damaged canonical messages: same value or same error', () => {
    fc.assert(
      fc.property(valid, fc.array(mutationArbitrary, { minLength: 1, maxLength: 3 }), (sample, mutations) => {
        let bytes = sample;
        for (const mutation of mutations) bytes = mutate(bytes, mutation);
        expect(result(fast, bytes)).toEqual(result(strict, bytes));
      }),
      { seed: 20_261_123, numRuns: 3000 },
    );
  });

  it('random bytes: same value or same error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
        expect(result(fast, bytes)).toEqual(result(strict, bytes));
      }),
      { seed: 20_261_124, numRuns: 3000 },
    );
  });

  it('canonical messages with an array or map head of a large count put in: same value or same error', () => {
    fc.assert(
      fc.property(withBigHead(valid), (bytes) => {
        expect(result(fast, bytes)).toEqual(result(strict, bytes));
      }),
      { seed: 20_261_126, numRuns: 2000 },
    );
  });
});

describe('fast paths on heads longer than they need be (not canonical: refused)', () => {
  it('an envelope whose ciphertext head has 1, 2 or 4 length bytes it does not need', () => {
    fc.assert(
      fc.property(fc.nat({ max: 300 }), fc.constantFrom(0x58, 0x59, 0x5a), (length, form) => {
        const canonical = encodeEnvelope({ sessionId: new Uint8Array(16).fill(1), sequence: 9, ciphertext: new Uint8Array(length + 16).fill(3) });
        const size = length + 16;
        const headLength = size < 24 ? 1 : size <= 0xff ? 2 : 3;
        const prefix = canonical.subarray(0, canonical.length - size - headLength);
        const head = form === 0x58 ? [0x58, size] : form === 0x59 ? [0x59, size >>> 8, size & 0xff] : [0x5a, 0, 0, size >>> 8, size & 0xff];
        if (form === 0x58 && size > 0xff) return;
        const bytes = Uint8Array.from([...prefix, ...head, ...new Uint8Array(size).fill(3)]);
        const shortest = (form === 0x58 && size >= 24) || (form === 0x59 && size > 0xff);
        expect(readCanonicalEnvelope(bytes) !== null).toBe(shortest);
        expect(result(decodeEnvelope, bytes)).toEqual(result(decodeEnvelopeStrict, bytes));
      }),
      { seed: 20_261_125, numRuns: 500 },
    );
  });

  it('an application request whose method has a one-byte length it does not need', () => {
    const bytes = Uint8Array.from([
      0xa4, 0x66, ...Buffer.from('method'), 0x78, 0x03, ...Buffer.from('GET'), 0x64, ...Buffer.from('path'), 0x61, 0x2f,
      0x67, ...Buffer.from('headers'), 0xa0, 0x64, ...Buffer.from('body'), 0xf6,
    ]);
    expect(readCanonicalAppRequest(bytes)).toBeNull();
    expect(result(decodeAppRequest, bytes)).toEqual({ code: 'STEVE_PROTOCOL' });
  });
});

describe('decodeAppRequest fast path on repeated header names', () => {
  it('a header map with a name twice is refused as the strict decoder refuses it', () => {
    // {method: "GET", path: "/", headers: {"a": "1", "a": "2"}, body: null}, written by hand.
    const bytes = Uint8Array.from([
      0xa4, 0x66, ...Buffer.from('method'), 0x63, ...Buffer.from('GET'), 0x64, ...Buffer.from('path'), 0x61, 0x2f,
      0x67, ...Buffer.from('headers'), 0xa2, 0x61, 0x61, 0x61, 0x31, 0x61, 0x61, 0x61, 0x32, 0x64, ...Buffer.from('body'), 0xf6,
    ]);
    expect(result(decodeAppRequest, bytes)).toEqual({ code: 'STEVE_PROTOCOL' });
    expect(result(decodeAppRequestStrict, bytes)).toEqual({ code: 'STEVE_PROTOCOL' });
  });
});
