/**
 * Every decoder of untrusted bytes in the protocol core (decodeSessionRequest, decodeSessionResponse,
 * decodeEnvelope, decodeAppRequest, decodeAppResponse, checkBindingUserData, sequenceFromBytes) fed
 * random bytes, damaged valid messages and well-formed maps with the right keys but random values
 * (fast-check, fixed seeds): each either returns or throws a SteveError with a known code, never another
 * exception.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCbor, type CborInput } from '../../cbor/index.js';
import { mutate, mutationArbitrary } from '../../test/mutations.js';
import { STEVE_ERROR_CODES, SteveError } from '../errors.js';
import { decodeAppRequest, decodeAppResponse, encodeAppRequest, encodeAppResponse } from './application.js';
import { checkBindingUserData, encodeBindingUserData, type Binding } from './binding.js';
import { decodeEnvelope, decodeSessionRequest, decodeSessionResponse, encodeEnvelope, encodeSessionRequest, encodeSessionResponse } from './messages.js';
import { sequenceFromBytes } from './sequence.js';

const binding: Binding = { suite: 'X25519', sessionId: new Uint8Array(16).fill(1), transcriptHash: new Uint8Array(32).fill(2), binder: new Uint8Array(32).fill(3) };

interface Decoder {
  name: string;
  decode: (bytes: Uint8Array) => unknown;
  samples: Uint8Array[];
  keys: string[];
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
  },
  {
    name: 'decodeSessionResponse',
    decode: decodeSessionResponse,
    samples: [encodeSessionResponse({ suite: 'X25519', sessionId: new Uint8Array(16), serverKeyMaterial: new Uint8Array(32), attestationDocument: new Uint8Array(40).fill(0x84), expiresInSeconds: 30 })],
    keys: ['version', 'key_exchange', 'session_id', 'server_key_material', 'attestation_document', 'expires_in_seconds'],
  },
  {
    name: 'decodeEnvelope',
    decode: decodeEnvelope,
    samples: [encodeEnvelope({ sessionId: new Uint8Array(16), sequence: 3, ciphertext: new Uint8Array(48) })],
    keys: ['version', 'session_id', 'sequence', 'ciphertext'],
  },
  {
    name: 'decodeAppRequest',
    decode: decodeAppRequest,
    samples: [encodeAppRequest({ method: 'POST', path: '/x?y=1', headers: { 'content-type': 'application/json', cookie: 'a=1' }, body: new Uint8Array([123, 125]) })],
    keys: ['method', 'path', 'headers', 'body'],
  },
  {
    name: 'decodeAppResponse',
    decode: decodeAppResponse,
    samples: [encodeAppResponse({ status: 201, headers: [['set-cookie', 'a=1'], ['set-cookie', 'b=2']], body: null, error: { code: 'x', n: [1, 2] } })],
    keys: ['status', 'headers', 'body', 'error'],
  },
  {
    name: 'checkBindingUserData',
    decode: (bytes) => checkBindingUserData(bytes, binding),
    samples: [encodeBindingUserData(binding)],
    keys: [],
  },
  {
    name: 'sequenceFromBytes',
    decode: sequenceFromBytes,
    samples: [Uint8Array.from([0, 0, 0, 0, 0, 0, 1, 2])],
    keys: [],
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
