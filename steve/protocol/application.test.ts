/**
 * application.ts: the application request and response plaintexts of specs/steve.md §3. Exact
 * encodings, round trips (fast-check), the optional `error`, and refusal of what would reach an HTTP
 * client malformed: bad methods and paths, upper-case or non-token header names, CR/LF in values,
 * statuses outside 200..599, wrong shapes, unknown keys.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CborError, encodeCbor, type CborInput } from '../../cbor/index.js';
import { hex } from '../../test/vectors/steve/vectors.js';
import {
  decodeAppRequest,
  decodeAppRequestStrict,
  decodeAppResponse,
  encodeAppRequest,
  encodeAppResponse,
  readCanonicalAppRequest,
  type AppRequest,
  type AppResponse,
  type JsonValue,
} from './application.js';
import { MAX_APPLICATION_RESPONSE_BYTES, MAX_ERROR_ITEMS, MAX_HEADER_FIELDS, MAX_REQUEST_ENVELOPE_BYTES } from './constants.js';
import { SteveError } from '../errors.js';
import { code } from '../../test/steve-codes.js';


const request = (over: Record<string, unknown> = {}): Uint8Array =>
  encodeCbor({ method: 'GET', path: '/items?page=2', headers: { accept: 'application/json' }, body: null, ...over } as never);
const response = (over: Record<string, unknown> = {}): Uint8Array =>
  encodeCbor({ status: 200, headers: [['content-type', 'text/plain']], body: new Uint8Array([104, 105]), ...over } as never);

describe('application request', () => {
  it('encodes method, path, headers, body in the §3 order, and null for an empty body', () => {
    const bytes = encodeAppRequest({ method: 'POST', path: '/a', headers: { 'content-type': 'text/plain' }, body: new Uint8Array(0) });
    expect(hex(bytes)).toBe(hex(encodeCbor(new Map<string, unknown>([['method', 'POST'], ['path', '/a'], ['headers', new Map([['content-type', 'text/plain']])], ['body', null]]) as never)));
  });

  it('decodes to a null-prototype header object', () => {
    const decoded = decodeAppRequest(request({ headers: { constructor: 'x', 'x-a': 'b' } }));
    expect(Object.getPrototypeOf(decoded.headers)).toBeNull();
    expect({ ...decoded.headers }).toEqual({ constructor: 'x', 'x-a': 'b' });
    expect(decoded.body).toBeNull();
  });

  it('keeps an empty byte-string body as sent', () => {
    expect(decodeAppRequest(request({ body: new Uint8Array(0) })).body).toEqual(new Uint8Array(0));
  });

  it('round trips', () => {
    const token = fc.stringMatching(/^[a-z0-9!#$%&'*+.^_`|~-]{1,20}$/);
    const value = fc.stringMatching(/^[\t\x20-\x7e\x80-\xff]{0,40}$/);
    fc.assert(
      fc.property(
        fc.record({
          method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'PROPFIND'),
          path: fc.stringMatching(/^\/[\x21-\x7e]{0,60}$/),
          headers: fc.dictionary(token, value, { maxKeys: 8 }),
          body: fc.option(fc.uint8Array({ minLength: 1, maxLength: 500 }), { nil: null }),
        }),
        (input: AppRequest) => {
          const decoded = decodeAppRequest(encodeAppRequest(input));
          expect({ ...decoded, headers: { ...decoded.headers } }).toEqual(input);
        },
      ),
      { seed: 11, numRuns: 300 },
    );
  });

  const cases: Array<[string, Uint8Array, string]> = [
    ['the valid request', request(), 'ok'],
    ['an empty method', request({ method: '' }), 'STEVE_PROTOCOL'],
    ['a method with a space', request({ method: 'GET /' }), 'STEVE_PROTOCOL'],
    ['a method with CRLF', request({ method: 'GET\r\n' }), 'STEVE_PROTOCOL'],
    ['a method as bytes', request({ method: new Uint8Array([71]) }), 'STEVE_PROTOCOL'],
    ['an absolute-form path', request({ path: 'http://169.254.169.254/latest' }), 'STEVE_PROTOCOL'],
    ['an empty path', request({ path: '' }), 'STEVE_PROTOCOL'],
    ['a path with a space', request({ path: '/a b' }), 'STEVE_PROTOCOL'],
    ['a path with CRLF', request({ path: '/a\r\nx-injected: 1' }), 'STEVE_PROTOCOL'],
    ['a path with non-ASCII', request({ path: '/caf\u00e9' }), 'STEVE_PROTOCOL'],
    ['an asterisk path', request({ path: '*' }), 'STEVE_PROTOCOL'],
    ['an upper-case header name', request({ headers: { Accept: 'x' } }), 'STEVE_PROTOCOL'],
    ['a header name with a colon', request({ headers: { 'a:b': 'x' } }), 'STEVE_PROTOCOL'],
    ['an empty header name', request({ headers: { '': 'x' } }), 'STEVE_PROTOCOL'],
    ['a header value with CRLF', request({ headers: { a: 'x\r\nset-cookie: y' } }), 'STEVE_PROTOCOL'],
    ['a header value with NUL', request({ headers: { a: 'x\u0000' } }), 'STEVE_PROTOCOL'],
    ['a header value above U+00FF', request({ headers: { a: '\u20ac' } }), 'STEVE_PROTOCOL'],
    ['a header value with HTAB and Latin-1', request({ headers: { a: 'x\ty \u00e9' } }), 'ok'],
    ['a header value as bytes', request({ headers: { a: new Uint8Array(1) } }), 'STEVE_PROTOCOL'],
    ['a header with an integer name', encodeCbor(new Map<string, unknown>([['method', 'GET'], ['path', '/'], ['headers', new Map([[1, 'x']])], ['body', null]]) as never), 'STEVE_PROTOCOL'],
    ['headers as an array of pairs', request({ headers: [['a', 'b']] }), 'STEVE_PROTOCOL'],
    ['a text body', request({ body: 'hello' }), 'STEVE_PROTOCOL'],
    ['a missing body', encodeCbor({ method: 'GET', path: '/', headers: {} }), 'STEVE_PROTOCOL'],
    ['an unknown key', request({ url: 'https://x/' }), 'STEVE_PROTOCOL'],
    ['a version key', request({ version: 2 }), 'STEVE_PROTOCOL'],
    ['not a map', encodeCbor(['GET', '/', {}, null]), 'STEVE_PROTOCOL'],
    ['trailing bytes', Uint8Array.from([...request(), 0]), 'STEVE_PROTOCOL'],
  ];

  it.each(cases)('decode: %s', (_name, bytes, expected) => {
    expect(code(() => decodeAppRequest(bytes)) ?? 'ok').toBe(expected);
  });

  it('encoders refuse the same things with STEVE_BAD_ARGUMENT', () => {
    const ok: AppRequest = { method: 'GET', path: '/', headers: {}, body: null };
    expect(code(() => encodeAppRequest(ok))).toBeUndefined();
    expect(code(() => encodeAppRequest({ ...ok, method: 'G T' }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeAppRequest({ ...ok, path: 'x' }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeAppRequest({ ...ok, headers: { Host: 'x' } }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeAppRequest({ ...ok, headers: { a: 'x\n' } }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeAppRequest({ ...ok, body: 'x' as never }))).toBe('STEVE_BAD_ARGUMENT');
  });
});

describe('application response', () => {
  it('encodes status, headers, body (and error only when given) in the §3 order', () => {
    const bytes = encodeAppResponse({ status: 404, headers: [['set-cookie', 'a=1'], ['set-cookie', 'b=2']], body: null });
    expect(hex(bytes)).toBe(hex(encodeCbor({ status: 404, headers: [['set-cookie', 'a=1'], ['set-cookie', 'b=2']], body: null })));
    const withError = encodeAppResponse({ status: 502, headers: [], body: new Uint8Array(0), error: 'upstream_unreachable' });
    expect(hex(withError)).toBe(hex(encodeCbor({ status: 502, headers: [], body: null, error: 'upstream_unreachable' })));
  });

  it('keeps repeated headers in order', () => {
    const decoded = decodeAppResponse(encodeAppResponse({ status: 200, headers: [['Set-Cookie', 'a'], ['set-cookie', 'b'], ['X', '']], body: null }));
    expect(decoded.headers).toEqual([['Set-Cookie', 'a'], ['set-cookie', 'b'], ['X', '']]);
  });

  it('error: any JSON-able value, decoded to plain JSON (null-prototype objects)', () => {
    const error: JsonValue = { code: 'timeout', after_ms: 30000, detail: [1, -2, true, null, 'x', { nested: {} }] };
    const decoded = decodeAppResponse(encodeAppResponse({ status: 504, headers: [], body: null, error }));
    expect(JSON.stringify(decoded.error)).toBe(JSON.stringify(error));
    expect(decoded).not.toHaveProperty('nothing');
    expect('error' in decodeAppResponse(response())).toBe(false);
    expect(decodeAppResponse(response({ error: null })).error).toBeNull();
  });

  it('round trips', () => {
    const json = fc.letrec<{ value: JsonValue }>((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.constant(null),
        fc.boolean(),
        fc.integer({ min: -1e9, max: 1e9 }),
        fc.string({ maxLength: 10 }),
        fc.array(tie('value'), { maxLength: 3 }),
        fc.dictionary(fc.string({ maxLength: 5 }), tie('value'), { maxKeys: 3 }),
      ),
    })).value;
    fc.assert(
      fc.property(
        fc.record(
          {
            status: fc.integer({ min: 200, max: 599 }),
            headers: fc.array(fc.tuple(fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}$/), fc.stringMatching(/^[\t\x20-\x7e\x80-\xff]{0,40}$/)), { maxLength: 6 }),
            body: fc.option(fc.uint8Array({ minLength: 1, maxLength: 500 }), { nil: null }),
            error: json,
          },
          { requiredKeys: ['status', 'headers', 'body'] },
        ),
        (input: AppResponse) => {
          const decoded = decodeAppResponse(encodeAppResponse(input));
          expect(JSON.parse(JSON.stringify({ ...decoded, body: decoded.body && [...decoded.body] }))).toEqual(
            JSON.parse(JSON.stringify({ ...input, body: input.body && [...input.body] })),
          );
          expect('error' in decoded).toBe('error' in input);
        },
      ),
      { seed: 12, numRuns: 300 },
    );
  });

  const cases: Array<[string, Uint8Array, string]> = [
    ['the valid response', response(), 'ok'],
    ['status 199', response({ status: 199 }), 'STEVE_PROTOCOL'],
    ['status 101', response({ status: 101 }), 'STEVE_PROTOCOL'],
    ['status 600', response({ status: 600 }), 'STEVE_PROTOCOL'],
    ['status 599', response({ status: 599 }), 'ok'],
    ['status as text', response({ status: '200' }), 'STEVE_PROTOCOL'],
    ['headers as a map', response({ headers: { a: 'b' } }), 'STEVE_PROTOCOL'],
    ['a header triple', response({ headers: [['a', 'b', 'c']] }), 'STEVE_PROTOCOL'],
    ['a header single', response({ headers: [['a']] }), 'STEVE_PROTOCOL'],
    ['a header pair of bytes', response({ headers: [[new Uint8Array(1), 'b']] }), 'STEVE_PROTOCOL'],
    ['a header value with LF', response({ headers: [['a', 'b\nc']] }), 'STEVE_PROTOCOL'],
    ['a header name with a space', response({ headers: [['a b', 'c']] }), 'STEVE_PROTOCOL'],
    ['an upper-case header name', response({ headers: [['Content-Type', 'x']] }), 'ok'],
    ['a text body', response({ body: 'hi' }), 'STEVE_PROTOCOL'],
    ['a null body', response({ body: null }), 'ok'],
    ['an error with bytes', response({ error: new Uint8Array(2) }), 'STEVE_PROTOCOL'],
    ['an error with an integer key', encodeCbor(new Map<string, unknown>([['status', 500], ['headers', []], ['body', null], ['error', new Map([[1, 'x']])]]) as never), 'STEVE_PROTOCOL'],
    ['an error nested array of bytes', response({ error: [[new Uint8Array(1)]] }), 'STEVE_PROTOCOL'],
    ['an unknown key', response({ trailers: [] }), 'STEVE_PROTOCOL'],
    ['a missing headers key', encodeCbor({ status: 200, body: null }), 'STEVE_PROTOCOL'],
  ];

  it.each(cases)('decode: %s', (_name, bytes, expected) => {
    expect(code(() => decodeAppResponse(bytes)) ?? 'ok').toBe(expected);
  });

  it('a caller cap is enforced first', () => {
    expect(code(() => decodeAppResponse(response({ body: new Uint8Array(100) }), { maxBytes: 50 }))).toBe('STEVE_TOO_LARGE');
    expect(code(() => decodeAppRequest(request({ body: new Uint8Array(100) }), { maxBytes: 50 }))).toBe('STEVE_TOO_LARGE');
  });

  it('encoders refuse what decoders would', () => {
    const ok: AppResponse = { status: 200, headers: [], body: null };
    expect(code(() => encodeAppResponse({ ...ok, status: 100 }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeAppResponse({ ...ok, status: 200.5 }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeAppResponse({ ...ok, headers: [['a', 'b\r']] }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeAppResponse({ ...ok, headers: [['a'] as never] }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeAppResponse({ ...ok, error: 1.5 }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeAppResponse({ ...ok, error: new Date() as never }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeAppResponse({ ...ok, error: { a: undefined } as never }))).toBe('STEVE_BAD_ARGUMENT');
  });
});

// ---------------------------------------------------------------------------------------------------
// Limits: the head check and the item budget derived from MAX_HEADER_FIELDS and MAX_ERROR_ITEMS

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

/** `head` (hex, spaces allowed) followed by zeros up to `length` bytes. */
function padded(head: string, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  bytes.set(Buffer.from(head.replace(/ /g, ''), 'hex'));
  return bytes;
}

const names = (count: number): string[] => Array.from({ length: count }, (_, i) => `h${i}`);

describe('application plaintexts: shape and item limits', () => {
  it('a 32 MiB plaintext that is one array is refused at its head, without the codec', () => {
    const array = (length: number): Uint8Array => padded(`9a${(length - 5).toString(16).padStart(8, '0')}`, length);
    for (const [decode, length] of [
      [decodeAppRequest, MAX_REQUEST_ENVELOPE_BYTES],
      [decodeAppResponse, MAX_APPLICATION_RESPONSE_BYTES],
    ] as const) {
      const error = steveError(() => decode(array(length)));
      expect([error.code, error.cause]).toEqual(['STEVE_PROTOCOL', undefined]);
      expect(error.message).toMatch(/is not a definite CBOR map of at most 4 entries$/);
    }
    expect(steveError(() => decodeAppRequest(encodeCbor(new Map<string, CborInput>([['method', 'GET'], ['path', '/'], ['headers', new Map()], ['body', null], ['x', 1]])))).message).toMatch(/at most 4 entries$/);
  });

  // {method: "GET", path: "/", headers: <map of 2^24 entries>, ...}: the headers head ends at byte 32.
  it('a headers map declaring 2^24 entries is refused by the item budget at its head', () => {
    const body = padded(`a4 66${hex(new TextEncoder().encode('method'))} 63474554 64${hex(new TextEncoder().encode('path'))} 612f 67${hex(new TextEncoder().encode('headers'))} ba01000000`, MAX_REQUEST_ENVELOPE_BYTES);
    const error = steveError(() => decodeAppRequest(body));
    expect(error.code).toBe('STEVE_PROTOCOL');
    expect(error.cause).toBeInstanceOf(CborError);
    expect([(error.cause as CborError).code, (error.cause as CborError).offset]).toEqual(['CBOR_TOO_MANY_ITEMS', 32]);
  });

  it(`a request holds at most ${MAX_HEADER_FIELDS} header fields, on the fast and the strict path alike`, () => {
    const fields = (count: number): Map<string, string> => new Map(names(count).map((name) => [name, 'v']));
    const wire = (count: number): Uint8Array => encodeCbor(new Map<string, CborInput>([['method', 'GET'], ['path', '/'], ['headers', fields(count)], ['body', null]]));
    const most = wire(MAX_HEADER_FIELDS);
    expect(Object.keys(readCanonicalAppRequest(most)!.headers)).toHaveLength(MAX_HEADER_FIELDS);
    expect(Object.keys(decodeAppRequestStrict(most).headers)).toHaveLength(MAX_HEADER_FIELDS);
    expect(encodeAppRequest({ method: 'GET', path: '/', headers: Object.fromEntries(fields(MAX_HEADER_FIELDS)), body: null })).toEqual(most);
    const over = wire(MAX_HEADER_FIELDS + 1);
    expect(readCanonicalAppRequest(over)).toBeNull();
    expect(code(() => decodeAppRequest(over))).toBe('STEVE_PROTOCOL');
    expect((steveError(() => decodeAppRequestStrict(over)).cause as CborError).code).toBe('CBOR_TOO_MANY_ITEMS');
    expect(code(() => encodeAppRequest({ method: 'GET', path: '/', headers: Object.fromEntries(fields(MAX_HEADER_FIELDS + 1)), body: null }))).toBe('STEVE_BAD_ARGUMENT');
  });

  it(`a response holds at most ${MAX_HEADER_FIELDS} header pairs and ${MAX_ERROR_ITEMS} error items: exactly the budget decodes`, () => {
    const pairs = (count: number): Array<[string, string]> => names(count).map((name) => [name, 'v']);
    // An array of n zeros is n + 1 items.
    const error = (items: number): number[] => new Array<number>(items - 1).fill(0);
    const wire = (headers: number, errorItems: number): Uint8Array =>
      encodeCbor(new Map<string, CborInput>([['status', 200], ['headers', pairs(headers)], ['body', null], ['error', error(errorItems)]]));
    const full = decodeAppResponse(wire(MAX_HEADER_FIELDS, MAX_ERROR_ITEMS));
    expect([full.headers.length, (full.error as number[]).length]).toEqual([MAX_HEADER_FIELDS, MAX_ERROR_ITEMS - 1]);
    expect(encodeAppResponse({ status: 200, headers: pairs(MAX_HEADER_FIELDS), body: null, error: error(MAX_ERROR_ITEMS) })).toEqual(wire(MAX_HEADER_FIELDS, MAX_ERROR_ITEMS));
    // One item more anywhere is over the budget.
    expect((steveError(() => decodeAppResponse(wire(MAX_HEADER_FIELDS, MAX_ERROR_ITEMS + 1))).cause as CborError).code).toBe('CBOR_TOO_MANY_ITEMS');
    expect(code(() => decodeAppResponse(wire(MAX_HEADER_FIELDS + 1, 1)))).toBe('STEVE_PROTOCOL');
    // The header count is checked on its own; the error may use what the headers leave.
    expect(steveError(() => decodeAppResponse(wire(MAX_HEADER_FIELDS + 1, 1))).message).toMatch(/"headers" holds more than 16384 fields/);
    expect((decodeAppResponse(wire(0, MAX_ERROR_ITEMS + 100)).error as number[]).length).toBe(MAX_ERROR_ITEMS + 99);
    // The encoder keeps to both limits.
    expect(code(() => encodeAppResponse({ status: 200, headers: pairs(MAX_HEADER_FIELDS + 1), body: null }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeAppResponse({ status: 200, headers: [], body: null, error: error(MAX_ERROR_ITEMS + 1) }))).toBe('STEVE_BAD_ARGUMENT');
    // Map keys count as items: {k0: 0, ..., k510: 0} is 1 + 2 x 511 = 1,023 items, one more key is 1,025.
    const object = (keys: number): JsonValue => Object.fromEntries(names(keys).map((name) => [name, 0]));
    expect(code(() => encodeAppResponse({ status: 200, headers: [], body: null, error: object(511) }))).toBeUndefined();
    expect(code(() => encodeAppResponse({ status: 200, headers: [], body: null, error: object(512) }))).toBe('STEVE_BAD_ARGUMENT');
  });
});
