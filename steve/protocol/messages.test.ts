/**
 * messages.ts and sequence.ts: exact encodings (key order, byte strings, shortest integers), round trips
 * (fast-check), and the strictness cases of specs/steve.md §2-§3 built byte by byte: indefinite lengths,
 * floats, tags, duplicate keys, trailing bytes, non-shortest integers, wrong types, wrong lengths,
 * unknown and missing keys, versions other than 2, unknown suites, size caps.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CborError, decodeCbor, encodeCbor } from '../../cbor/index.js';
import { hex } from '../../test/vectors/steve/vectors.js';
import { SteveError } from '../errors.js';
import {
  ENVELOPE_ENTRIES,
  MAX_REQUEST_ENVELOPE_BYTES,
  MAX_SESSION_REQUEST_BYTES,
  MAX_SESSION_RESPONSE_BYTES,
  SESSION_REQUEST_ENTRIES,
  SESSION_RESPONSE_ENTRIES,
} from './constants.js';
import { expectMapPrefix } from './fields.js';
import {
  decodeEnvelope,
  decodeSessionRequest,
  decodeSessionResponse,
  encodeEnvelope,
  encodeSessionRequest,
  encodeSessionResponse,
  type Envelope,
  type SessionRequest,
  type SessionResponse,
} from './messages.js';
import { sequenceFromBytes, sequenceToBytes } from './sequence.js';
import { code } from '../../test/steve-codes.js';

const filled = (length: number, byte = 0xab): Uint8Array => new Uint8Array(length).fill(byte);


// ---------------------------------------------------------------------------------------------------
// A raw CBOR builder, so a test can write exactly the bytes a hostile peer would.

function head(major: number, value: number): number[] {
  if (value < 24) return [(major << 5) | value];
  if (value <= 0xff) return [(major << 5) | 24, value];
  if (value <= 0xffff) return [(major << 5) | 25, value >> 8, value & 0xff];
  return [(major << 5) | 26, (value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
}
const item = (value: Parameters<typeof encodeCbor>[0]): number[] => [...encodeCbor(value)];
type Entry = [key: number[], value: number[]];
const entry = (key: string | number, value: number[]): Entry => [item(key), value];
const rawMap = (entries: Entry[]): Uint8Array => Uint8Array.from([...head(5, entries.length), ...entries.flat(2)]);
const indefiniteMap = (entries: Entry[]): Uint8Array => Uint8Array.from([0xbf, ...entries.flat(2), 0xff]);

function envelopeEntries(): Entry[] {
  return [
    entry('version', item(2)),
    entry('session_id', item(filled(16, 1))),
    entry('sequence', item(sequenceToBytes(7))),
    entry('ciphertext', item(filled(20, 2))),
  ];
}

function replace(entries: Entry[], key: string, value: number[]): Entry[] {
  return entries.map(([k, v]) => (hex(Uint8Array.from(k)) === hex(encodeCbor(key)) ? [k, value] : [k, v]));
}

function requestEntries(suite = 'X25519', materialLength = 32): Entry[] {
  return [
    entry('version', item(2)),
    entry('key_exchange', item(suite)),
    entry('client_nonce', item(filled(32, 1))),
    entry('client_key_material', item(filled(materialLength, 2))),
    entry('context_hash', item(filled(32, 3))),
  ];
}

function responseEntries(): Entry[] {
  return [
    entry('version', item(2)),
    entry('key_exchange', item('X25519')),
    entry('session_id', item(filled(16, 1))),
    entry('server_key_material', item(filled(32, 2))),
    entry('attestation_document', item(filled(100, 3))),
    entry('expires_in_seconds', item(30)),
  ];
}

describe('sequence helpers', () => {
  it('8 bytes, big-endian, 0..2^53-1', () => {
    expect(hex(sequenceToBytes(0))).toBe('0000000000000000');
    expect(hex(sequenceToBytes(1))).toBe('0000000000000001');
    expect(hex(sequenceToBytes(0x0102030405060))).toBe('0000102030405060');
    expect(hex(sequenceToBytes(2 ** 32))).toBe('0000000100000000');
    expect(hex(sequenceToBytes(Number.MAX_SAFE_INTEGER))).toBe('001fffffffffffff');
    for (const bad of [-1, 2 ** 53, 1.5, Number.NaN, Infinity, '1' as never, 1n as never]) expect(code(() => sequenceToBytes(bad))).toBe('STEVE_BAD_ARGUMENT');
  });

  it('reads back what it writes, and refuses other lengths and values above 2^53-1', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => {
        expect(sequenceFromBytes(sequenceToBytes(n))).toBe(n);
      }),
      { seed: 8, numRuns: 500 },
    );
    expect(code(() => sequenceFromBytes(filled(7, 0)))).toBe('STEVE_PROTOCOL');
    expect(code(() => sequenceFromBytes(filled(9, 0)))).toBe('STEVE_PROTOCOL');
    expect(code(() => sequenceFromBytes(Uint8Array.from([0, 0x20, 0, 0, 0, 0, 0, 0])))).toBe('STEVE_PROTOCOL');
    expect(code(() => sequenceFromBytes(filled(8, 0xff)))).toBe('STEVE_PROTOCOL');
    // An offset view reads its own bytes.
    const framed = Uint8Array.from([9, 9, 0, 0, 0, 0, 0, 0, 1, 2, 9]);
    expect(sequenceFromBytes(framed.subarray(2, 10))).toBe(0x0102);
  });
});

describe('exact encodings', () => {
  it('session request: the §3 keys in table order, definite, shortest', () => {
    const bytes = encodeSessionRequest({ suite: 'X25519', clientNonce: filled(32, 1), clientKeyMaterial: filled(32, 2), contextHash: filled(32, 3) });
    expect(hex(bytes)).toBe(hex(rawMap(requestEntries())));
    expect(hex(bytes.subarray(0, 10))).toBe('a567' + hex(new TextEncoder().encode('version')) + '02');
  });

  it('session response and envelope: the §3 keys in table order; sequence as an 8-byte byte string', () => {
    const response = encodeSessionResponse({ suite: 'X25519', sessionId: filled(16, 1), serverKeyMaterial: filled(32, 2), attestationDocument: filled(100, 3), expiresInSeconds: 30 });
    expect(hex(response)).toBe(hex(rawMap(responseEntries())));
    const envelope = encodeEnvelope({ sessionId: filled(16, 1), sequence: 7, ciphertext: filled(20, 2) });
    expect(hex(envelope)).toBe(hex(rawMap(envelopeEntries())));
    expect(hex(envelope)).toContain('6873657175656e6365' + '48' + '0000000000000007');
  });

  it('the largest valid session request (X-Wing) is 1,370 bytes, under MAX_SESSION_REQUEST_BYTES', () => {
    const bytes = encodeSessionRequest({ suite: 'XWING-DRAFT10', clientNonce: filled(32), clientKeyMaterial: filled(1216), contextHash: filled(32) });
    expect(bytes.length).toBe(1370);
    expect(bytes.length).toBeLessThan(MAX_SESSION_REQUEST_BYTES);
  });
});

describe('round trips', () => {
  const bytes = (length: number) => fc.uint8Array({ minLength: length, maxLength: length });
  const suite = fc.constantFrom('X25519' as const, 'XWING-DRAFT10' as const);

  it('session request', () => {
    fc.assert(
      fc.property(suite.chain((s) => fc.record({ suite: fc.constant(s), clientNonce: bytes(32), clientKeyMaterial: bytes(s === 'X25519' ? 32 : 1216), contextHash: bytes(32) })), (request: SessionRequest) => {
        expect(decodeSessionRequest(encodeSessionRequest(request))).toEqual(request);
      }),
      { seed: 1, numRuns: 100 },
    );
  });

  it('session response', () => {
    fc.assert(
      fc.property(
        suite.chain((s) =>
          fc.record({
            suite: fc.constant(s),
            sessionId: bytes(16),
            serverKeyMaterial: bytes(s === 'X25519' ? 32 : 1120),
            attestationDocument: fc.uint8Array({ maxLength: 5000 }),
            expiresInSeconds: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
          }),
        ),
        (response: SessionResponse) => {
          expect(decodeSessionResponse(encodeSessionResponse(response))).toEqual(response);
        },
      ),
      { seed: 2, numRuns: 100 },
    );
  });

  it('envelope', () => {
    fc.assert(
      fc.property(fc.record({ sessionId: bytes(16), sequence: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), ciphertext: fc.uint8Array({ minLength: 16, maxLength: 3000 }) }), (envelope: Envelope) => {
        expect(decodeEnvelope(encodeEnvelope(envelope))).toEqual(envelope);
      }),
      { seed: 3, numRuns: 200 },
    );
  });

  it('decoded fixed-size fields are copies, not views into the input', () => {
    const wire = encodeEnvelope({ sessionId: filled(16, 1), sequence: 1, ciphertext: filled(16, 2) });
    const decoded = decodeEnvelope(wire);
    wire.fill(0);
    expect(decoded.sessionId.every((b) => b === 1)).toBe(true);
  });
});

describe('strictness (§2, §3)', () => {
  const cases: Array<[string, Uint8Array, string]> = [
    ['the valid envelope', rawMap(envelopeEntries()), 'ok'],
    ['an indefinite-length map', indefiniteMap(envelopeEntries()), 'STEVE_PROTOCOL'],
    ['an indefinite-length byte string', rawMap(replace(envelopeEntries(), 'ciphertext', [0x5f, ...item(filled(10)), ...item(filled(10)), 0xff])), 'STEVE_PROTOCOL'],
    ['an indefinite-length array as a value', rawMap([...envelopeEntries(), entry('x', [0x9f, 0xff])]), 'STEVE_PROTOCOL'],
    ['a half float version', rawMap(replace(envelopeEntries(), 'version', [0xf9, 0x40, 0x00])), 'STEVE_PROTOCOL'],
    ['a double float version', rawMap(replace(envelopeEntries(), 'version', [0xfb, 0x40, 0, 0, 0, 0, 0, 0, 0])), 'STEVE_PROTOCOL'],
    ['a tagged session id', rawMap(replace(envelopeEntries(), 'session_id', [0xd8, 0x40, ...item(filled(16, 1))])), 'STEVE_PROTOCOL'],
    ['a tagged map', Uint8Array.from([0xd9, 0xd9, 0xf7, ...rawMap(envelopeEntries())]), 'STEVE_PROTOCOL'],
    ['a duplicate key', rawMap([...envelopeEntries(), entry('version', item(2))]), 'STEVE_PROTOCOL'],
    ['trailing bytes', Uint8Array.from([...rawMap(envelopeEntries()), 0x00]), 'STEVE_PROTOCOL'],
    ['a second top-level item', Uint8Array.from([...rawMap(envelopeEntries()), ...rawMap(envelopeEntries())]), 'STEVE_PROTOCOL'],
    ['a non-shortest version (0x18 0x02)', rawMap(replace(envelopeEntries(), 'version', [0x18, 0x02])), 'STEVE_PROTOCOL'],
    ['a non-shortest byte-string length', rawMap(replace(envelopeEntries(), 'session_id', [0x58, 16, ...filled(16, 1)])), 'STEVE_PROTOCOL'],
    ['a non-shortest map length', Uint8Array.from([0xb8, 4, ...envelopeEntries().flat(2)]), 'STEVE_PROTOCOL'],
    ['a non-shortest key length', rawMap([[[0x78, 7, ...new TextEncoder().encode('version')], item(2)], ...envelopeEntries().slice(1)]), 'STEVE_PROTOCOL'],
    ['version 1', rawMap(replace(envelopeEntries(), 'version', item(1))), 'STEVE_PROTOCOL'],
    ['version 3', rawMap(replace(envelopeEntries(), 'version', item(3))), 'STEVE_PROTOCOL'],
    ['version "2"', rawMap(replace(envelopeEntries(), 'version', item('2'))), 'STEVE_PROTOCOL'],
    ['version -2', rawMap(replace(envelopeEntries(), 'version', item(-2))), 'STEVE_PROTOCOL'],
    ['version true', rawMap(replace(envelopeEntries(), 'version', item(true))), 'STEVE_PROTOCOL'],
    ['a text session id', rawMap(replace(envelopeEntries(), 'session_id', item('0123456789abcdef'))), 'STEVE_PROTOCOL'],
    ['a 15-byte session id', rawMap(replace(envelopeEntries(), 'session_id', item(filled(15)))), 'STEVE_PROTOCOL'],
    ['a 17-byte session id', rawMap(replace(envelopeEntries(), 'session_id', item(filled(17)))), 'STEVE_PROTOCOL'],
    ['a CBOR integer sequence', rawMap(replace(envelopeEntries(), 'sequence', item(7))), 'STEVE_PROTOCOL'],
    ['a 7-byte sequence', rawMap(replace(envelopeEntries(), 'sequence', item(filled(7, 0)))), 'STEVE_PROTOCOL'],
    ['a 9-byte sequence', rawMap(replace(envelopeEntries(), 'sequence', item(filled(9, 0)))), 'STEVE_PROTOCOL'],
    ['a sequence above 2^53-1', rawMap(replace(envelopeEntries(), 'sequence', item(Uint8Array.from([0, 0x20, 0, 0, 0, 0, 0, 0])))), 'STEVE_PROTOCOL'],
    ['a ciphertext shorter than the tag', rawMap(replace(envelopeEntries(), 'ciphertext', item(filled(15)))), 'STEVE_PROTOCOL'],
    ['a ciphertext array', rawMap(replace(envelopeEntries(), 'ciphertext', item([1, 2]))), 'STEVE_PROTOCOL'],
    ['a null ciphertext', rawMap(replace(envelopeEntries(), 'ciphertext', item(null))), 'STEVE_PROTOCOL'],
    ['an unknown key', rawMap([...envelopeEntries(), entry('padding', item(0))]), 'STEVE_PROTOCOL'],
    ['an integer key', rawMap([...envelopeEntries(), entry(1, item(0))]), 'STEVE_PROTOCOL'],
    ['a byte-string key', rawMap([...envelopeEntries(), [item(filled(2)), item(0)]]), 'STEVE_PROTOCOL'],
    ['an upper-case key', rawMap(envelopeEntries().map(([k, v], i) => (i === 0 ? [item('VERSION'), v] : [k, v]))), 'STEVE_PROTOCOL'],
    ['a missing key', rawMap(envelopeEntries().slice(0, 3)), 'STEVE_PROTOCOL'],
    ['an array at the top', Uint8Array.from(item([2, filled(16), filled(8), filled(16)])), 'STEVE_PROTOCOL'],
    ['an empty input', new Uint8Array(0), 'STEVE_PROTOCOL'],
    ['a truncated map', rawMap(envelopeEntries()).subarray(0, 30), 'STEVE_PROTOCOL'],
    ['invalid UTF-8 in a key', rawMap([[[0x62, 0xc3, 0x28], item(0)], ...envelopeEntries()]), 'STEVE_PROTOCOL'],
    ['undefined (simple 23)', rawMap(replace(envelopeEntries(), 'version', [0xf7])), 'STEVE_PROTOCOL'],
  ];

  it.each(cases)('envelope: %s', (_name, bytes, expected) => {
    expect(code(() => decodeEnvelope(bytes)) ?? 'ok').toBe(expected);
  });

  it('keeps the CborError as cause and never echoes bytes', () => {
    try {
      // Four entries (a fifth would be refused at the head, before the codec), one key twice.
      decodeEnvelope(rawMap([...envelopeEntries().slice(0, 3), entry('version', item(2))]));
      expect.unreachable();
    } catch (error) {
      expect((error as SteveError).cause).toMatchObject({ code: 'CBOR_DUPLICATE_KEY' });
    }
  });

  it('accepts the keys in any order (§3 fixes no order)', () => {
    expect(decodeEnvelope(rawMap(envelopeEntries().reverse())).sequence).toBe(7);
  });

  const requestCases: Array<[string, Uint8Array, string]> = [
    ['the valid X25519 request', rawMap(requestEntries()), 'ok'],
    ['the valid X-Wing request', rawMap(requestEntries('XWING-DRAFT10', 1216)), 'ok'],
    ['an unknown suite', rawMap(requestEntries('X448', 32)), 'STEVE_SUITE'],
    ['a lower-case suite', rawMap(requestEntries('x25519', 32)), 'STEVE_SUITE'],
    ['an empty suite', rawMap(requestEntries('', 32)), 'STEVE_SUITE'],
    ['a suite as bytes', rawMap(replace(requestEntries(), 'key_exchange', item(new TextEncoder().encode('X25519')))), 'STEVE_PROTOCOL'],
    ['X25519 with 1216-byte material', rawMap(requestEntries('X25519', 1216)), 'STEVE_PROTOCOL'],
    ['X-Wing with 32-byte material', rawMap(requestEntries('XWING-DRAFT10', 32)), 'STEVE_PROTOCOL'],
    ['a 31-byte nonce', rawMap(replace(requestEntries(), 'client_nonce', item(filled(31)))), 'STEVE_PROTOCOL'],
    ['a 33-byte nonce', rawMap(replace(requestEntries(), 'client_nonce', item(filled(33)))), 'STEVE_PROTOCOL'],
    ['a 31-byte context hash', rawMap(replace(requestEntries(), 'context_hash', item(filled(31)))), 'STEVE_PROTOCOL'],
    ['a 33-byte context hash', rawMap(replace(requestEntries(), 'context_hash', item(filled(33)))), 'STEVE_PROTOCOL'],
    ['a text context hash', rawMap(replace(requestEntries(), 'context_hash', item('https://example.com'))), 'STEVE_PROTOCOL'],
    ['version 1', rawMap(replace(requestEntries(), 'version', item(1))), 'STEVE_PROTOCOL'],
    ['version 3', rawMap(replace(requestEntries(), 'version', item(3))), 'STEVE_PROTOCOL'],
    ['an unknown key', rawMap([...requestEntries(), entry('origin', item('x'))]), 'STEVE_PROTOCOL'],
    ['a missing context hash', rawMap(requestEntries().slice(0, 4)), 'STEVE_PROTOCOL'],
    ['over the 4 KiB cap', rawMap([...requestEntries(), entry('x', item(filled(5000)))]), 'STEVE_TOO_LARGE'],
  ];

  it.each(requestCases)('session request: %s', (_name, bytes, expected) => {
    expect(code(() => decodeSessionRequest(bytes)) ?? 'ok').toBe(expected);
  });

  const responseCases: Array<[string, Uint8Array, string]> = [
    ['the valid response', rawMap(responseEntries()), 'ok'],
    ['expires_in_seconds 0', rawMap(replace(responseEntries(), 'expires_in_seconds', item(0))), 'STEVE_PROTOCOL'],
    ['expires_in_seconds -1', rawMap(replace(responseEntries(), 'expires_in_seconds', item(-1))), 'STEVE_PROTOCOL'],
    ['expires_in_seconds as text', rawMap(replace(responseEntries(), 'expires_in_seconds', item('30'))), 'STEVE_PROTOCOL'],
    ['a base64 attestation document (text)', rawMap(replace(responseEntries(), 'attestation_document', item('hEShATgioFkQ'))), 'STEVE_PROTOCOL'],
    ['31-byte server material', rawMap(replace(responseEntries(), 'server_key_material', item(filled(31)))), 'STEVE_PROTOCOL'],
    ['a 15-byte session id', rawMap(replace(responseEntries(), 'session_id', item(filled(15)))), 'STEVE_PROTOCOL'],
    ['an unknown suite', rawMap(replace(responseEntries(), 'key_exchange', item('KYBER'))), 'STEVE_SUITE'],
    ['version 3', rawMap(replace(responseEntries(), 'version', item(3))), 'STEVE_PROTOCOL'],
    ['an unknown key', rawMap([...responseEntries(), entry('error', item('x'))]), 'STEVE_PROTOCOL'],
  ];

  it.each(responseCases)('session response: %s', (_name, bytes, expected) => {
    expect(code(() => decodeSessionResponse(bytes)) ?? 'ok').toBe(expected);
  });

  it('exposes the parsed suite: the deployment check is the server\'s', () => {
    expect(decodeSessionRequest(rawMap(requestEntries('XWING-DRAFT10', 1216))).suite).toBe('XWING-DRAFT10');
  });

  it('checks the size cap before parsing (STEVE_TOO_LARGE), and a caller can tighten it', () => {
    const envelope = encodeEnvelope({ sessionId: filled(16), sequence: 0, ciphertext: filled(5000) });
    expect(code(() => decodeEnvelope(envelope, { maxBytes: 4096 }))).toBe('STEVE_TOO_LARGE');
    expect(code(() => decodeEnvelope(envelope))).toBeUndefined();
    expect(code(() => decodeEnvelope(envelope, { maxBytes: Number.NaN }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => decodeEnvelope(envelope, { maxBytes: -1 }))).toBe('STEVE_BAD_ARGUMENT');
    // Even garbage over the cap is TOO_LARGE, not PROTOCOL: nothing was parsed.
    expect(code(() => decodeSessionResponse(filled(65_537, 0xff)))).toBe('STEVE_TOO_LARGE');
  });

  it('a declared length beyond the input is refused without allocating it', () => {
    // A byte string claiming 4 GiB - 1.
    const bytes = rawMap(replace(envelopeEntries(), 'ciphertext', [0x5a, 0xff, 0xff, 0xff, 0xff]));
    expect(code(() => decodeEnvelope(bytes))).toBe('STEVE_PROTOCOL');
  });

  it('decodes through the shared strict codec: decodeCbor agrees the valid messages are canonical', () => {
    for (const bytes of [rawMap(envelopeEntries()), rawMap(requestEntries()), rawMap(responseEntries())]) {
      expect(() => decodeCbor(bytes, { canonical: true })).not.toThrow();
    }
  });
});

describe('encoders refuse what decoders would', () => {
  it('wrong lengths and values', () => {
    const request: SessionRequest = { suite: 'X25519', clientNonce: filled(32), clientKeyMaterial: filled(32), contextHash: filled(32) };
    expect(code(() => encodeSessionRequest({ ...request, clientNonce: filled(31) }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeSessionRequest({ ...request, clientKeyMaterial: filled(1216) }))).toBe('STEVE_KEY');
    expect(code(() => encodeSessionRequest({ ...request, suite: 'X448' as never }))).toBe('STEVE_BAD_ARGUMENT');
    const response: SessionResponse = { suite: 'X25519', sessionId: filled(16), serverKeyMaterial: filled(32), attestationDocument: filled(10), expiresInSeconds: 30 };
    expect(code(() => encodeSessionResponse({ ...response, expiresInSeconds: 0 }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeSessionResponse({ ...response, expiresInSeconds: 1.5 }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeSessionResponse({ ...response, serverKeyMaterial: filled(1120) }))).toBe('STEVE_KEY');
    expect(code(() => encodeEnvelope({ sessionId: filled(16), sequence: -1, ciphertext: filled(16) }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeEnvelope({ sessionId: filled(16), sequence: 1, ciphertext: filled(15) }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeEnvelope({ sessionId: filled(17), sequence: 1, ciphertext: filled(16) }))).toBe('STEVE_BAD_ARGUMENT');
  });
});

// ---------------------------------------------------------------------------------------------------
// Malformed bodies cost what it takes to see they are malformed (fields.ts expectMapPrefix, item budgets)

/** `head` (hex) followed by `fill` up to `length` bytes. */
function padded(head: string, length: number, fill = 0): Uint8Array {
  const bytes = new Uint8Array(length).fill(fill);
  bytes.set(Buffer.from(head.replace(/ /g, ''), 'hex'));
  return bytes;
}
const u32 = (n: number): string => n.toString(16).padStart(8, '0');

/** The SteveError `run` throws (any other outcome fails the test). */
function steveError(run: () => unknown): SteveError {
  try {
    run();
  } catch (error) {
    if (error instanceof SteveError) return error;
    throw error;
  }
  throw new Error('expected a SteveError, got a value');
}

const SHAPE = (entries: number): RegExp => new RegExp(`is not a definite CBOR map of at most ${entries} entries$`);

describe('malformed bodies are refused at their first bytes', () => {
  const MIB_32 = MAX_REQUEST_ENVELOPE_BYTES;

  // Regression: a 32 MiB envelope holding one array of one-byte items was decoded into 33 million
  // values (about 1.2 s of event loop per request through the server) before "is not a CBOR map".
  // Refused by the head check, the error carries no CborError: the codec never ran.
  it.each([
    ['one array of 0x00 items', `9a${u32(MIB_32 - 5)}`, 0x00],
    ['one array of empty arrays', `9a${u32(MIB_32 - 5)}`, 0x80],
    ['one byte string', `5a${u32(MIB_32 - 5)}`, 0x00],
    ['one text string, invalid UTF-8 at its end', `7a${u32(MIB_32 - 5)}`, 0x61],
    ['an indefinite map', 'bf', 0x00],
    ['a map of 2^24 entries', `ba${u32((MIB_32 - 5) / 2)}`, 0x00],
    ['a map of 5 entries', 'a5', 0x00],
  ])('a 32 MiB envelope that is %s: STEVE_PROTOCOL from its head', (_name, head, fill) => {
    const body = padded(head, MIB_32, fill);
    body[MIB_32 - 1] = 0xff;
    const error = steveError(() => decodeEnvelope(body, { maxBytes: MIB_32 }));
    expect([error.code, error.cause]).toEqual(['STEVE_PROTOCOL', undefined]);
    expect(error.message).toMatch(SHAPE(ENVELOPE_ENTRIES));
  });

  it('the session request and response: arrays and maps of one entry too many, refused at byte 0', () => {
    // A 4 KiB array: 0x99 and a two-byte count of 4,093 one-byte items.
    const request = steveError(() => decodeSessionRequest(padded(`99${(MAX_SESSION_REQUEST_BYTES - 3).toString(16).padStart(4, '0')}`, MAX_SESSION_REQUEST_BYTES)));
    expect([request.code, request.cause]).toEqual(['STEVE_PROTOCOL', undefined]);
    expect(request.message).toMatch(SHAPE(SESSION_REQUEST_ENTRIES));
    const sixEntries = rawMap([...requestEntries(), entry('extra', item(0))]);
    expect(steveError(() => decodeSessionRequest(sixEntries)).message).toMatch(SHAPE(SESSION_REQUEST_ENTRIES));
    const response = steveError(() => decodeSessionResponse(padded(`9a${u32(MAX_SESSION_RESPONSE_BYTES - 5)}`, MAX_SESSION_RESPONSE_BYTES)));
    expect([response.code, response.cause]).toEqual(['STEVE_PROTOCOL', undefined]);
    expect(response.message).toMatch(SHAPE(SESSION_RESPONSE_ENTRIES));
    const sevenEntries = rawMap([...responseEntries(), entry('extra', item(0))]);
    expect(steveError(() => decodeSessionResponse(sevenEntries)).message).toMatch(SHAPE(SESSION_RESPONSE_ENTRIES));
  });

  it('fewer entries pass the head check and are refused by the field checks', () => {
    expect(steveError(() => decodeEnvelope(Uint8Array.of(0xa0))).message).toMatch(/lacks "version"/);
    expect(steveError(() => decodeSessionRequest(rawMap(requestEntries().slice(1)))).message).toMatch(/lacks "version"/);
  });

  // Inside a map of the right size, the codec's item budget (1 + 2 x entries) stops a huge value at its
  // own head: {"version": [0 x (32 MiB - 14)], ...} ends its array head at byte 14.
  it('a huge array as a value is refused by the item budget at its head', () => {
    const body = padded(`a4 6776657273696f6e 9a${u32(MIB_32 - 14)}`, MIB_32);
    const error = steveError(() => decodeEnvelope(body, { maxBytes: MIB_32 }));
    expect(error.code).toBe('STEVE_PROTOCOL');
    expect(error.cause).toBeInstanceOf(CborError);
    expect([(error.cause as CborError).code, (error.cause as CborError).offset]).toEqual(['CBOR_TOO_MANY_ITEMS', 14]);
    // A small one too: every value of the three outer messages is a single item.
    const nested = rawMap(replace(envelopeEntries(), 'version', item([2])));
    expect((steveError(() => decodeEnvelope(nested)).cause as CborError).code).toBe('CBOR_TOO_MANY_ITEMS');
  });
});

describe('expectMapPrefix', () => {
  it('for fewer than 24 entries, decides on the first byte: a0..a0+maxEntries pass, every other byte is refused', () => {
    for (const maxEntries of [0, 4, 5, 6, 23]) {
      for (let byte = 0; byte < 256; byte++) {
        const fits = byte >= 0xa0 && byte <= 0xa0 + maxEntries;
        // The bytes after the head are never read: anything may follow.
        expect(code(() => expectMapPrefix(Uint8Array.of(byte, 0xff, 0x9b), maxEntries)), `${byte} ${maxEntries}`).toBe(fits ? undefined : 'STEVE_PROTOCOL');
      }
    }
  });

  it('passes an empty prefix and a head cut short; reads longer counts in shortest form only', () => {
    const cases: Array<[string, number, string | undefined]> = [
      ['', 0, undefined],
      ['b8', 24, undefined],
      ['b818', 24, undefined],
      ['b819', 24, 'STEVE_PROTOCOL'],
      ['b817', 100, 'STEVE_PROTOCOL'], // 23 in a one-byte count: not shortest (§2)
      ['b8', 23, 'STEVE_PROTOCOL'], // a one-byte count is at least 24: decided at byte 0
      ['b900', 300, undefined],
      ['b9012c', 300, undefined],
      ['b9012d', 300, 'STEVE_PROTOCOL'],
      ['b900ff', 300, 'STEVE_PROTOCOL'],
      ['b9', 255, 'STEVE_PROTOCOL'],
      ['ba00010000', 65_536, undefined],
      ['ba0000ffff', 100_000, 'STEVE_PROTOCOL'],
      ['ba', 65_535, 'STEVE_PROTOCOL'],
      ['bb0000000100000000', 2 ** 32, undefined],
      ['bb00000000ffffffff', 2 ** 33, 'STEVE_PROTOCOL'],
      ['bb', 2 ** 32 - 1, 'STEVE_PROTOCOL'],
      ['bf', 1000, 'STEVE_PROTOCOL'],
      ['bc', 1000, 'STEVE_PROTOCOL'],
      ['80', 1000, 'STEVE_PROTOCOL'],
    ];
    for (const [prefix, maxEntries, expected] of cases) {
      expect(code(() => expectMapPrefix(new Uint8Array(Buffer.from(prefix, 'hex')), maxEntries)), `${prefix} ${maxEntries}`).toBe(expected);
    }
  });

  it('passes every prefix of every valid message, and names the message', () => {
    const messages: Array<[Uint8Array, number]> = [
      [rawMap(requestEntries()), SESSION_REQUEST_ENTRIES],
      [rawMap(responseEntries()), SESSION_RESPONSE_ENTRIES],
      [rawMap(envelopeEntries()), ENVELOPE_ENTRIES],
    ];
    for (const [bytes, entries] of messages) {
      for (let length = 0; length <= bytes.length; length++) expect(code(() => expectMapPrefix(bytes.subarray(0, length), entries))).toBeUndefined();
    }
    expect(() => expectMapPrefix(Uint8Array.of(0x80), ENVELOPE_ENTRIES, 'envelope')).toThrow('envelope is not a definite CBOR map of at most 4 entries');
  });

  it('refuses bad arguments with STEVE_BAD_ARGUMENT', () => {
    for (const prefix of [[0xa4], 'a4', null, new ArrayBuffer(1)]) expect(code(() => expectMapPrefix(prefix as never, 4))).toBe('STEVE_BAD_ARGUMENT');
    for (const maxEntries of [-1, 1.5, Number.NaN, '4']) expect(code(() => expectMapPrefix(Uint8Array.of(0xa4), maxEntries as never))).toBe('STEVE_BAD_ARGUMENT');
  });
});
