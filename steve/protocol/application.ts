/**
 * The plaintexts inside application records (specs/steve.md §3): the request a client seals
 * ({method, path, headers, body}) and the response the server seals ({status, headers, body, error?}).
 * Same strict CBOR rules as the outer messages (§2); these are what the proxy turns into an HTTP request
 * to the app, so their text fields are also checked against HTTP's grammar here, once, instead of letting
 * a peer's bytes reach an HTTP client that would throw or, worse, split a header.
 *
 * Decisions (ours, §3 leaves them open):
 * - All keys are required except the response's `error`, which may be absent; unknown keys are refused.
 * - `method` is an RFC 9110 token; `path` starts with `/` and holds only visible ASCII (what a browser's
 *   URL pathname + search is), so an absolute-form target cannot reach the upstream.
 * - Request header names are lower-case tokens (§3 says clients lower-case them); response header names
 *   are tokens of any case. Values are RFC 9110 field values: no CR, LF, NUL or other controls except
 *   HTAB, and no character above U+00FF (HTTP fields are bytes; browsers give them as Latin-1).
 * - `body`: decoders return what the wire says (null, or bytes, possibly empty); encoders send null for
 *   an empty body (§3 "null when empty").
 * - `error`: any JSON-able CBOR value (null, booleans, integers, text, arrays, text-keyed maps); byte
 *   strings and integer map keys are refused because they have no JSON form.
 * - At most MAX_HEADER_FIELDS header fields, and at most MAX_ERROR_ITEMS CBOR items in `error`; the
 *   encoders refuse more (STEVE_BAD_ARGUMENT). The decoders refuse at its first byte anything that is
 *   not a map of at most 4 entries, and give the codec an item budget derived from those two limits
 *   (below), so a plaintext of 32 MiB of one-byte items is refused at its head, not built.
 * Pure: no I/O.
 */

import { encodeCbor, type CborInput, type CborValue } from '../../cbor/index.js';
import { SteveError, type SteveErrorCode } from '../errors.js';
import {
  APP_REQUEST_ENTRIES,
  APP_RESPONSE_ENTRIES,
  MAX_APPLICATION_RESPONSE_BYTES,
  MAX_ERROR_ITEMS,
  MAX_HEADER_FIELDS,
  MAX_REQUEST_ENVELOPE_BYTES,
} from './constants.js';
import { CanonicalReader } from './canonical.js';
import { decodeMap, expectText, expectUint, readFields, type MapShape } from './fields.js';
import type { DecodeLimit } from './messages.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface AppRequest {
  method: string;
  /** Path plus query, e.g. `/api/items?page=2`. */
  path: string;
  /** Lower-case names; repeated fields already comma-joined (§3). A null-prototype object when decoded. */
  headers: Readonly<Record<string, string>>;
  body: Uint8Array | null;
}

export interface AppResponse {
  /** 200..599; 1xx is never sent (§3). */
  status: number;
  /** `[name, value]` pairs, so repeated fields such as set-cookie survive (§3). */
  headers: ReadonlyArray<readonly [string, string]>;
  body: Uint8Array | null;
  /** Shown by clients as `{"error": <error>}` when there is no body (§3). */
  error?: JsonValue;
}

export const MIN_STATUS = 200;
export const MAX_STATUS = 599;

/**
 * A request is {method, path, headers: {name: value, ...}, body}: the map and its 4 keys (5), method,
 * path and body (3), the headers map (1) and a name and a value per field: 9 + 2 x 16,384 = 32,777
 * items. A valid request with one field more needs 2 more, so the budget alone enforces
 * MAX_HEADER_FIELDS for the strict decoder.
 */
const APP_REQUEST_SHAPE: MapShape = { maxEntries: APP_REQUEST_ENTRIES, maxItems: 9 + 2 * MAX_HEADER_FIELDS };
/**
 * A response is {status, headers: [[name, value], ...], body, error?}: the map and up to 4 keys (5),
 * status and body (2), the headers array (1), 3 items per pair, and the error: 8 + 3 x 16,384 + 1,024 =
 * 50,184 items. The header count is also checked on its own, as `error` may use what headers leave.
 */
const APP_RESPONSE_SHAPE: MapShape = { maxEntries: APP_RESPONSE_ENTRIES, maxItems: 8 + 3 * MAX_HEADER_FIELDS + MAX_ERROR_ITEMS };

// RFC 9110 §5.6.2 token, §5.5 field-value (VCHAR, obs-text, SP, HTAB), §4.1 and RFC 3986 for the target.
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const LOWER_TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const FIELD_VALUE_RE = /^[\t\x20-\x7e\x80-\xff]*$/;
const PATH_RE = /^\/[\x21-\x7e]*$/;

function check(ok: boolean, code: SteveErrorCode, message: string): void {
  if (!ok) throw new SteveError(code, message);
}

function checkMethod(method: unknown, code: SteveErrorCode): asserts method is string {
  check(typeof method === 'string' && TOKEN_RE.test(method), code, '"method" expected an HTTP token');
}

function checkPath(path: unknown, code: SteveErrorCode): asserts path is string {
  check(typeof path === 'string' && PATH_RE.test(path), code, '"path" expected "/" followed by visible ASCII');
}

function checkField(name: unknown, value: unknown, nameRe: RegExp, code: SteveErrorCode): void {
  check(typeof name === 'string' && nameRe.test(name), code, nameRe === LOWER_TOKEN_RE ? 'a header name is not a lower-case token' : 'a header name is not a token');
  check(typeof value === 'string' && FIELD_VALUE_RE.test(value), code, 'a header value has a forbidden character');
}

function checkBody(body: unknown, code: SteveErrorCode): asserts body is Uint8Array | null {
  check(body === null || body instanceof Uint8Array, code, '"body" expected bytes or null');
}

function checkStatus(status: unknown, code: SteveErrorCode): asserts status is number {
  check(typeof status === 'number' && Number.isSafeInteger(status) && status >= MIN_STATUS && status <= MAX_STATUS, code, `"status" expected an integer in ${MIN_STATUS}..${MAX_STATUS}`);
}

/** §3: null when empty. */
function wireBody(body: Uint8Array | null): Uint8Array | null {
  return body === null || body.length === 0 ? null : body;
}

// ---------------------------------------------------------------------------------------------------
// JSON-able `error` values

/** `count.items` counts the CBOR items made, against MAX_ERROR_ITEMS. */
function jsonToCbor(value: unknown, depth: number, count: { items: number }): CborInput {
  check(depth <= 8, 'STEVE_BAD_ARGUMENT', '"error" nests too deeply');
  count.items += 1;
  check(count.items <= MAX_ERROR_ITEMS, 'STEVE_BAD_ARGUMENT', `"error" holds more than ${MAX_ERROR_ITEMS} CBOR items`);
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') {
    // CBOR floats are refused by every STEVE peer (§2): only integers travel.
    check(Number.isSafeInteger(value), 'STEVE_BAD_ARGUMENT', '"error" may hold only safe integers');
    return value;
  }
  if (Array.isArray(value)) return value.map((item) => jsonToCbor(item, depth + 1, count));
  const proto: unknown = typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  check(proto === Object.prototype || proto === null, 'STEVE_BAD_ARGUMENT', '"error" must be a JSON-able value');
  return new Map(
    Object.entries(value as Record<string, unknown>).map(([k, v]) => {
      // The key is an item too.
      count.items += 1;
      return [k, jsonToCbor(v, depth + 1, count)];
    }),
  );
}

function cborToJson(value: CborValue): JsonValue {
  if (value === null || typeof value === 'boolean' || typeof value === 'string' || typeof value === 'number') return value;
  if (value instanceof Uint8Array) throw new SteveError('STEVE_PROTOCOL', '"error" holds a byte string, which has no JSON form');
  if (Array.isArray(value)) return value.map(cborToJson);
  const out = Object.create(null) as Record<string, JsonValue>;
  for (const [key, item] of value) {
    if (typeof key !== 'string') throw new SteveError('STEVE_PROTOCOL', '"error" holds an integer map key, which has no JSON form');
    out[key] = cborToJson(item);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Application request (inside a client -> server record)

export function encodeAppRequest(request: AppRequest): Uint8Array {
  checkMethod(request.method, 'STEVE_BAD_ARGUMENT');
  checkPath(request.path, 'STEVE_BAD_ARGUMENT');
  check(typeof request.headers === 'object' && request.headers !== null, 'STEVE_BAD_ARGUMENT', '"headers" expected an object');
  const headers = new Map<string, string>();
  const fields = Object.entries(request.headers);
  check(fields.length <= MAX_HEADER_FIELDS, 'STEVE_BAD_ARGUMENT', `"headers" holds more than ${MAX_HEADER_FIELDS} fields`);
  for (const [name, value] of fields) {
    checkField(name, value, LOWER_TOKEN_RE, 'STEVE_BAD_ARGUMENT');
    headers.set(name, value);
  }
  checkBody(request.body, 'STEVE_BAD_ARGUMENT');
  return encodeCbor(
    new Map<string, CborInput>([
      ['method', request.method],
      ['path', request.path],
      ['headers', headers],
      ['body', wireBody(request.body)],
    ]),
  );
}

/**
 * Default cap: MAX_REQUEST_ENVELOPE_BYTES (§6): a plaintext is smaller than the envelope carrying it.
 *
 * A request in the exact form the STEVE v2 encoders write (ours and the clients': the §3 key order,
 * shortest heads, ASCII text) is read in place without building CBOR maps: it runs once per proxied
 * request. That form is canonical CBOR, so the strict path would return the same request; anything
 * else (another key order, non-ASCII text, a duplicate header, a field HTTP would refuse) goes through
 * the strict path, which decides. `decoders.test.ts` holds the two equal on random and damaged input.
 */
export function decodeAppRequest(bytes: Uint8Array, limit: DecodeLimit = {}): AppRequest {
  const maxBytes = limit.maxBytes ?? MAX_REQUEST_ENVELOPE_BYTES;
  if (bytes instanceof Uint8Array && Number.isSafeInteger(maxBytes) && maxBytes >= 0 && bytes.length <= maxBytes) {
    const request = readCanonicalAppRequest(bytes);
    if (request !== null) return request;
  }
  return decodeAppRequestStrict(bytes, limit);
}

/** The request through the strict codec and field checks only (decodeAppRequest's reference). */
export function decodeAppRequestStrict(bytes: Uint8Array, limit: DecodeLimit = {}): AppRequest {
  const what = 'application request';
  const map = decodeMap(bytes, what, limit.maxBytes ?? MAX_REQUEST_ENVELOPE_BYTES, APP_REQUEST_SHAPE);
  const f = readFields(map, what, ['method', 'path', 'headers', 'body']);
  const method = expectText(f.method, 'method');
  checkMethod(method, 'STEVE_PROTOCOL');
  const path = expectText(f.path, 'path');
  checkPath(path, 'STEVE_PROTOCOL');
  if (!(f.headers instanceof Map)) throw new SteveError('STEVE_PROTOCOL', '"headers" expected a map');
  const headers = Object.create(null) as Record<string, string>;
  for (const [name, value] of f.headers) {
    checkField(name, value, LOWER_TOKEN_RE, 'STEVE_PROTOCOL');
    headers[name as string] = value as string;
  }
  checkBody(f.body, 'STEVE_PROTOCOL');
  return { method, path, headers, body: f.body };
}

// The fixed keys of the canonical request, as CBOR text strings.
const KEY_METHOD = encodeCbor('method');
const KEY_PATH = encodeCbor('path');
const KEY_HEADERS = encodeCbor('headers');
const KEY_BODY = encodeCbor('body');
const CBOR_NULL = Uint8Array.of(0xf6);

/** The canonical application request read in place, or null for anything outside that form (the strict path then decides). */
export function readCanonicalAppRequest(bytes: Uint8Array): AppRequest | null {
  const reader = new CanonicalReader(bytes);
  if (reader.head(5) !== 4 || !reader.literal(KEY_METHOD)) return null;
  const method = reader.ascii();
  if (method === null || !TOKEN_RE.test(method) || !reader.literal(KEY_PATH)) return null;
  const path = reader.ascii();
  if (path === null || !PATH_RE.test(path) || !reader.literal(KEY_HEADERS)) return null;
  const count = reader.head(5);
  // Over MAX_HEADER_FIELDS the strict decoder's item budget refuses it: so must this path.
  if (count < 0 || count > MAX_HEADER_FIELDS) return null;
  const headers = Object.create(null) as Record<string, string>;
  for (let i = 0; i < count; i++) {
    const name = reader.ascii();
    if (name === null || !LOWER_TOKEN_RE.test(name) || name in headers) return null;
    const value = reader.ascii();
    if (value === null || !FIELD_VALUE_RE.test(value)) return null;
    headers[name] = value;
  }
  if (!reader.literal(KEY_BODY)) return null;
  let body: Uint8Array | null = null;
  if (!reader.literal(CBOR_NULL)) {
    body = reader.byteString();
    if (body === null) return null;
  }
  return reader.done ? { method, path, headers, body } : null;
}

// ---------------------------------------------------------------------------------------------------
// Application response (inside a server -> client record)

export function encodeAppResponse(response: AppResponse): Uint8Array {
  checkStatus(response.status, 'STEVE_BAD_ARGUMENT');
  check(Array.isArray(response.headers), 'STEVE_BAD_ARGUMENT', '"headers" expected an array of [name, value] pairs');
  check(response.headers.length <= MAX_HEADER_FIELDS, 'STEVE_BAD_ARGUMENT', `"headers" holds more than ${MAX_HEADER_FIELDS} fields`);
  const headers: CborInput[] = [];
  for (const pair of response.headers) {
    check(Array.isArray(pair) && pair.length === 2, 'STEVE_BAD_ARGUMENT', 'a header is not a [name, value] pair');
    checkField(pair[0], pair[1], TOKEN_RE, 'STEVE_BAD_ARGUMENT');
    headers.push([pair[0], pair[1]]);
  }
  checkBody(response.body, 'STEVE_BAD_ARGUMENT');
  const map = new Map<string, CborInput>([
    ['status', response.status],
    ['headers', headers],
    ['body', wireBody(response.body)],
  ]);
  if (response.error !== undefined) map.set('error', jsonToCbor(response.error, 0, { items: 0 }));
  return encodeCbor(map);
}

/** Default cap: MAX_APPLICATION_RESPONSE_BYTES (§6). */
export function decodeAppResponse(bytes: Uint8Array, limit: DecodeLimit = {}): AppResponse {
  const what = 'application response';
  const map = decodeMap(bytes, what, limit.maxBytes ?? MAX_APPLICATION_RESPONSE_BYTES, APP_RESPONSE_SHAPE);
  const f = readFields(map, what, ['status', 'headers', 'body'], ['error']);
  const status = expectUint(f.status, 'status', MIN_STATUS, MAX_STATUS);
  if (!Array.isArray(f.headers)) throw new SteveError('STEVE_PROTOCOL', '"headers" expected an array');
  if (f.headers.length > MAX_HEADER_FIELDS) throw new SteveError('STEVE_PROTOCOL', `"headers" holds more than ${MAX_HEADER_FIELDS} fields`);
  const headers: Array<readonly [string, string]> = [];
  for (const pair of f.headers) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new SteveError('STEVE_PROTOCOL', 'a header is not a [name, value] pair');
    checkField(pair[0], pair[1], TOKEN_RE, 'STEVE_PROTOCOL');
    headers.push([pair[0] as string, pair[1] as string]);
  }
  checkBody(f.body, 'STEVE_PROTOCOL');
  const response: AppResponse = { status, headers, body: f.body };
  if (f.error !== undefined) response.error = cborToJson(f.error);
  return response;
}
