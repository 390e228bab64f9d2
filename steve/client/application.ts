/**
 * The client's side of the application plaintexts (specs/steve.md §3): a fetch-like call becomes the
 * `{method, path, headers, body}` request map, and the decrypted `{status, headers, body, error?}` becomes
 * a web `Response`. Web-standard only (URL, Headers, Response, TextEncoder).
 *
 * Decisions (ours, following fetch where §3 is silent):
 * - The target is a path (`/api?x=1`) or an absolute URL on the client's origin; it is resolved against
 *   the origin with URL (so `//other.example/` is refused rather than sent), the fragment is dropped.
 * - Methods are normalised like fetch (`get` -> `GET` for the six standard ones); CONNECT, TRACE and
 *   TRACK are refused, as fetch refuses them; GET and HEAD carry no body.
 * - Header names are lower-cased and repeated fields comma-joined (§3) by `Headers`; a string body
 *   without a content-type gets `text/plain;charset=UTF-8`, as fetch would send.
 * - The response keeps repeated fields (several set-cookie) by appending each pair (Node keeps set-cookie
 *   on a constructed Response; a browser drops it there, as the fetch standard's "response" header guard
 *   says: a service worker cannot set cookies this way). With no body and an
 *   `error` field, the body is `{"error": <error>}` as JSON (content-type application/json unless the
 *   server named one). 204, 205 and 304 get no body (a web Response refuses one).
 */

import { MAX_REQUEST_ENVELOPE_BYTES, SESSION_ID_BYTES, SEQUENCE_BYTES, TAG_BYTES, encodeAppRequest, type AppResponse } from '../protocol/index.js';
import { SteveClientError } from './errors.js';

export type SteveRequestBody = string | Uint8Array | ArrayBuffer | null;

export interface SteveRequestInit {
  /** Default GET. */
  method?: string;
  headers?: HeadersInit;
  body?: SteveRequestBody;
  /** Aborts this request (while queued, establishing or in flight); the session is kept. */
  signal?: AbortSignal | null;
  /** This request's timeout, from sending to the last response byte; default the client's (30 s). */
  timeoutMs?: number;
}

export interface PreparedRequest {
  method: string;
  /** Path plus query, as sent. */
  path: string;
  /** The CBOR request map, ready to seal. */
  plaintext: Uint8Array;
  bodyBytes: number;
}

const STANDARD_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);
const NULL_BODY_STATUSES = new Set([204, 205, 304]);

function badRequest(message: string, cause?: unknown): SteveClientError {
  return new SteveClientError('STEVE_CLIENT_BAD_REQUEST', 'request', message, cause === undefined ? {} : { cause });
}

/** Length of a CBOR byte-string head for `length` bytes (RFC 8949 §3: 1, 2, 3, 5 or 9 bytes). */
function cborHeadBytes(length: number): number {
  return length < 24 ? 1 : length < 0x100 ? 2 : length < 0x1_0000 ? 3 : length < 0x1_0000_0000 ? 5 : 9;
}

/**
 * The exact size of the envelope carrying `plaintextLength` bytes: the map head, the four text keys, the
 * version, the 16-byte session id, the 8-byte sequence and the ciphertext (plaintext + 16-byte tag).
 */
export function envelopeBytes(plaintextLength: number): number {
  const key = (name: string) => 1 + name.length;
  const ciphertext = plaintextLength + TAG_BYTES;
  return (
    1 +
    key('version') + 1 +
    key('session_id') + 1 + SESSION_ID_BYTES +
    key('sequence') + 1 + SEQUENCE_BYTES +
    key('ciphertext') + cborHeadBytes(ciphertext) + ciphertext
  );
}

function bodyBytes(body: unknown): Uint8Array | null {
  if (body === undefined || body === null) return null;
  if (typeof body === 'string') return new TextEncoder().encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw badRequest('"body" expected a string, Uint8Array, ArrayBuffer or null');
}

/** Turns a fetch-like call into the sealed request's plaintext; throws BAD_REQUEST or TOO_LARGE. */
export function prepareRequest(origin: string, target: string | URL, init: SteveRequestInit = {}): PreparedRequest {
  let url: URL;
  try {
    url = new URL(typeof target === 'string' ? target : target.href, `${origin}/`);
  } catch (error) {
    throw badRequest('the target is not a path or URL', error);
  }
  if (url.origin !== origin) throw badRequest(`the target is not on this client's origin ${origin}`);
  const path = `${url.pathname}${url.search}`;

  const given = init.method ?? 'GET';
  if (typeof given !== 'string') throw badRequest('"method" expected a string');
  const method = STANDARD_METHODS.has(given.toUpperCase()) ? given.toUpperCase() : given;
  if (FORBIDDEN_METHODS.has(method.toUpperCase())) throw badRequest(`the method ${method} is not allowed`);

  let headers: Headers;
  try {
    headers = new Headers(init.headers);
  } catch (error) {
    throw badRequest('"headers" are not valid HTTP fields', error);
  }
  const body = bodyBytes(init.body);
  if (body !== null && (method === 'GET' || method === 'HEAD')) throw badRequest(`a ${method} request cannot have a body`);
  if (typeof init.body === 'string' && !headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
  const fields: Record<string, string> = Object.create(null) as Record<string, string>;
  // Headers yields lower-case names with repeats joined, except set-cookie, which it yields one by one.
  headers.forEach((value, name) => {
    fields[name] = name in fields ? `${fields[name]}, ${value}` : value;
  });

  let plaintext: Uint8Array;
  try {
    plaintext = encodeAppRequest({ method, path, headers: fields, body });
  } catch (error) {
    throw badRequest(`the request cannot be encoded: ${(error as Error).message}`, error);
  }
  if (envelopeBytes(plaintext.length) > MAX_REQUEST_ENVELOPE_BYTES) {
    throw new SteveClientError('STEVE_CLIENT_TOO_LARGE', 'request', `the request envelope would be over ${MAX_REQUEST_ENVELOPE_BYTES} bytes (specs/steve.md §6)`);
  }
  return { method, path, plaintext, bodyBytes: body?.length ?? 0 };
}

/** The decrypted response as a web Response (see the file comment for the `error` and null-body rules). */
export function buildResponse(app: AppResponse): Response {
  const headers = new Headers();
  for (const [name, value] of app.headers) headers.append(name, value);
  let body: Uint8Array | null = app.body !== null && app.body.length > 0 ? app.body : null;
  if (body === null && app.error !== undefined) {
    body = new TextEncoder().encode(JSON.stringify({ error: app.error }));
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  }
  if (NULL_BODY_STATUSES.has(app.status)) body = null;
  return new Response(body as Uint8Array<ArrayBuffer> | null, { status: app.status, headers });
}
