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

/**
 * A request body. Bytes and strings go either way; a ReadableStream or an async iterable of Uint8Array
 * chunks is streamed (stream.md) on a session whose binding lists `stream-1`, and otherwise read whole
 * (up to the §6 envelope cap) and sent as one /e2p/v2/request record.
 */
export type SteveRequestBody = string | Uint8Array | ArrayBuffer | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | null;

export interface SteveRequestInit {
  /** Default GET. */
  method?: string;
  headers?: HeadersInit;
  body?: SteveRequestBody;
  /** Aborts this request (while queued, establishing, in flight, or while its streamed body is read); the session is kept. */
  signal?: AbortSignal | null;
  /**
   * This request's timeout: from sending to the last response byte on /e2p/v2/request, to the head record
   * on a stream (the body then has the client's `streamIdleTimeoutMs` between records); default 30 s.
   */
  timeoutMs?: number;
  /** `false`: never stream this request, even on a session that offers stream-1. Default: stream when offered. */
  stream?: boolean;
}

export interface PreparedRequest {
  method: string;
  /** Path plus query, as sent. */
  path: string;
  /** Lower-case names, repeats comma-joined: what goes into the §3 map. */
  headers: Readonly<Record<string, string>>;
  /** The body when it is bytes (null when empty or absent). */
  body: Uint8Array | null;
  /** The body when it is a stream (null otherwise). */
  bodyStream: ReadableStream<Uint8Array> | null;
  /** Plaintext body bytes, when known up front (bytes bodies). */
  bodyBytes: number;
  /** The whole request would not fit one /e2p/v2/request envelope (§6): only a stream can carry it. */
  tooLargeForRecord: boolean;
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

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';
}

/** An async iterable as a pull-based ReadableStream (one `next()` per pull; `return()` on cancel). */
function iterableStream(iterable: AsyncIterable<unknown>): ReadableStream<Uint8Array> {
  let iterator: AsyncIterator<unknown> | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        iterator ??= iterable[Symbol.asyncIterator]();
        const { done, value } = await iterator.next();
        if (done === true) controller.close();
        else controller.enqueue(value as Uint8Array);
      },
      async cancel() {
        await iterator?.return?.();
      },
    },
    { highWaterMark: 0 },
  );
}

function bodyOf(body: unknown): { bytes: Uint8Array | null; stream: ReadableStream<Uint8Array> | null } {
  if (body === undefined || body === null) return { bytes: null, stream: null };
  if (typeof body === 'string') return { bytes: new TextEncoder().encode(body), stream: null };
  if (body instanceof Uint8Array) return { bytes: body, stream: null };
  if (body instanceof ArrayBuffer) return { bytes: new Uint8Array(body), stream: null };
  if (typeof ReadableStream === 'function' && body instanceof ReadableStream) {
    if (body.locked) throw badRequest('"body" is a ReadableStream that is already locked');
    return { bytes: null, stream: body as ReadableStream<Uint8Array> };
  }
  if (isAsyncIterable(body)) return { bytes: null, stream: iterableStream(body) };
  throw badRequest('"body" expected a string, Uint8Array, ArrayBuffer, ReadableStream, async iterable of Uint8Array, or null');
}

/**
 * The §3 request map for `prepared`: with `body` for /e2p/v2/request, or with a null body as a stream's
 * head record (stream.md §4). A head whose body is known bytes carries their `content-length`, so the
 * server can pass them to the app with that length, as /e2p/v2/request's app sees them; a head without a
 * body carries none.
 */
export function encodeRequestPlaintext(prepared: PreparedRequest, body: Uint8Array | null, as: 'record' | 'head'): Uint8Array {
  let headers = prepared.headers;
  if (as === 'head' && prepared.bodyStream === null) {
    const copy: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [name, value] of Object.entries(headers)) if (name !== 'content-length') copy[name] = value;
    if (body !== null && body.length > 0) copy['content-length'] = String(body.length);
    headers = copy;
  }
  try {
    return encodeAppRequest({ method: prepared.method, path: prepared.path, headers, body: as === 'head' ? null : body });
  } catch (error) {
    throw badRequest(`the request cannot be encoded: ${(error as Error).message}`, error);
  }
}

/**
 * Checks a fetch-like call and keeps what the request's plaintext is made of (encodeRequestPlaintext);
 * throws BAD_REQUEST. Whether it fits one envelope is noted, not thrown: a stream may still carry it.
 */
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
  const { bytes: body, stream: bodyStream } = bodyOf(init.body);
  if ((body !== null || bodyStream !== null) && (method === 'GET' || method === 'HEAD')) throw badRequest(`a ${method} request cannot have a body`);
  if (typeof init.body === 'string' && !headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
  const fields: Record<string, string> = Object.create(null) as Record<string, string>;
  // Headers yields lower-case names with repeats joined, except set-cookie, which it yields one by one.
  headers.forEach((value, name) => {
    fields[name] = name in fields ? `${fields[name]}, ${value}` : value;
  });

  return prepareRequestBody({ method, path, headers: fields, body: null, bodyStream, bodyBytes: 0, tooLargeForRecord: false }, bodyStream === null ? body : null);
}

/**
 * `prepared` with `body` as its bytes body (a stream body read whole, or the call's own bytes), and
 * whether the whole request then fits one /e2p/v2/request envelope.
 */
export function prepareRequestBody(prepared: PreparedRequest, body: Uint8Array | null): PreparedRequest {
  const bytes = body !== null && body.length > 0 ? body : null;
  const out: PreparedRequest = { ...prepared, body: bytes, bodyStream: body === null ? prepared.bodyStream : null, bodyBytes: bytes?.length ?? 0, tooLargeForRecord: false };
  // The map with a null body checks every field now; with n body bytes it is that map with the one-byte
  // null replaced by a byte string (head + n bytes): the same size without copying the body.
  const withoutBody = encodeRequestPlaintext(out, null, 'record').length;
  const n = out.bodyBytes;
  out.tooLargeForRecord = envelopeBytes(n === 0 ? withoutBody : withoutBody - 1 + cborHeadBytes(n) + n) > MAX_REQUEST_ENVELOPE_BYTES;
  return out;
}

/** The TOO_LARGE a request gets when it must go as one /e2p/v2/request record and cannot. */
export function tooLargeForRecord(): SteveClientError {
  return new SteveClientError('STEVE_CLIENT_TOO_LARGE', 'request', `the request envelope would be over ${MAX_REQUEST_ENVELOPE_BYTES} bytes (specs/steve.md §6)`);
}

/** The decrypted response as a web Response (see the file comment for the `error` and null-body rules). */
export function buildResponse(app: AppResponse): Response {
  const headers = responseHeaders(app);
  let body: Uint8Array | null = app.body !== null && app.body.length > 0 ? app.body : null;
  if (body === null && app.error !== undefined) body = errorBody(app);
  if (hasNullBody(app.status)) body = null;
  return new Response(body as Uint8Array<ArrayBuffer> | null, { status: app.status, headers });
}

/** 204, 205 and 304: a web Response refuses any body for them. */
export function hasNullBody(status: number): boolean {
  return NULL_BODY_STATUSES.has(status);
}

/** The `{"error": <error>}` body shown for an answer that carries no body of its own. */
export function errorBody(app: AppResponse): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ error: app.error }));
}

function responseHeaders(app: AppResponse): Headers {
  const headers = new Headers();
  for (const [name, value] of app.headers) headers.append(name, value);
  if ((app.body === null || app.body.length === 0) && app.error !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
  return headers;
}

/**
 * A streamed answer (stream.md) as a web Response: the head's status and headers as buildResponse gives
 * them, and `body` (its DATA records, read as the consumer pulls) unless the status has a null body.
 */
export function buildStreamedResponse(head: AppResponse, body: ReadableStream<Uint8Array> | null): Response {
  return new Response(hasNullBody(head.status) ? null : body, { status: head.status, headers: responseHeaders(head) });
}
