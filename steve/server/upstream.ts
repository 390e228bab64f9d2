/**
 * The call from the proxy to the app on enclave loopback (specs/steve.md §3, §6, §7), over one
 * keep-alive undici `Pool` to the configured origin. It takes the DECRYPTED application request and
 * returns what the app answered, ready to be sealed; it never sees the outer HTTP request, so the outer
 * request's cookies and authorization cannot reach the app (§7: only the ones inside the encrypted
 * request).
 *
 * - Request headers: the one policy of headers.ts (hop-by-hop and forwarding headers dropped, `host` the
 *   app's, `x-forwarded-proto` the agent's).
 * - Redirects are returned as they are, never followed (§3); undici's pool does not follow them.
 * - The response body is capped at 33,554,432 bytes (§6, the authors' cap): a declared length over it
 *   is refused before reading, a running count after (the server then also checks the sealed envelope
 *   against the clients' cap). Headers stay [name, value] pairs, one per field line, so repeated
 *   set-cookie survive (§3).
 * - Memory: with a `budget`, every body byte is taken from the server's memory budget as it arrives;
 *   when the budget is spent the app's request is aborted and the answer is `overBudget` (the server
 *   answers 429 busy). The bytes of a successful answer stay taken (`held`) until the caller gives them
 *   back, once the answer has left the process (send.ts).
 * - Failures never throw: unreachable (refused, reset, bad answer, a body over the cap) is status 502
 *   and timeout is 504, each with an `error` field, sealed like any answer (§7; the outer status stays
 *   200). Ours: a request undici refuses to send (CONNECT, a header it rejects) is 405/400 the same way.
 * - Deadlines: the headers within `timeoutMs` (default 25 s; clients give up at 30 s, §5) and no gap
 *   longer than that between body chunks, on undici's own timers rather than one per request. A client
 *   that hangs up ends the app's request at once (its connection to the app is closed): nobody would
 *   read the answer, and the app should not keep working for it until the deadline.
 * - Streams (`stream`, our extension stream-1): a second pool with the same headers deadline and no body
 *   deadline; the body goes both ways chunk by chunk with backpressure, never counted or capped here
 *   (the stream endpoint holds a fixed reservation instead).
 * - undici is imported, and the pools made, on the first call to the app, not at start: the agent answers
 *   /healthz and /attestation without it, and it is the largest module the agent has (issue 16: start-up
 *   time and idle memory, bench/startup.mjs). A call made while it loads waits for it.
 */

import type { Readable } from 'node:stream';
import type { Dispatcher, Pool } from 'undici';
import { MAX_UPSTREAM_BODY_BYTES, type AppRequest, type AppResponse } from '../protocol/index.js';
import type { MemoryBudget } from './body.js';
import { appRequestHeaders, connectionTokens, isHopByHop, type ForwardedProto } from './headers.js';

/** Ours: the app gets this long for its headers, and again between body chunks; clients give up at 30 s (§5). */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 25_000;
/** Ours: at most this many connections to the app; more requests wait in the pool's queue. */
const UPSTREAM_CONNECTIONS = 128;

// RFC 9110 §5.6.2 token and §5.5 field value; the same grammar the protocol's encoder enforces.
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE_RE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Methods undici cannot send as a plain request. */
const REFUSED_METHODS = new Set(['CONNECT']);

export interface UpstreamAnswer {
  status: number;
  headers: Array<readonly [string, string]>;
  /** The body as received, in pieces (not joined: the sealer encrypts them one by one). */
  body: Buffer[];
  bodyBytes: number;
  /** Set on the answers the proxy made up itself (502, 504, ...). */
  error?: AppResponse['error'];
  /** Bytes of `body` taken from the forward's budget; the caller gives them back when the answer is gone. */
  held: number;
  /** The budget ran out while the body arrived: nothing is held, the app's request was aborted. */
  overBudget?: true;
}

export interface UpstreamOptions {
  /** The app's base URL (http://host:port/); only its origin is used. */
  url: string;
  timeoutMs?: number;
  /** `x-forwarded-proto` sent to the app (headers.ts). */
  forwardedProto: ForwardedProto;
  /** Told the kind of every failed call (an error code), for metrics and the log. */
  onError?: (kind: string, error: unknown) => void;
}

export interface Upstream {
  /**
   * `client`: when it closes before the answer, the app's request is aborted (its connection closed)
   * rather than left to run to the deadline for an answer nobody will read; the promise then settles
   * as a 502 `client_gone`.
   */
  forward(request: AppRequest, options?: ForwardOptions): Promise<UpstreamAnswer>;
  /**
   * A streamed call (stream.md, ours): the request's body is pulled from `body` only as fast as the app
   * takes it, and the answer is handed over chunk by chunk, with `pause`/`resume` on the returned call.
   * On its own pool, whose only deadline is the headers': a slow body is governed by the caller's idle
   * timeout, not by the 25 s gap the sealed path allows. `request.body` is ignored.
   */
  stream(request: AppRequest, body: AsyncIterable<Uint8Array> | null, handlers: StreamHandlers, contentLength?: number | null): StreamCall;
  close(): Promise<void>;
}

export interface StreamHandlers {
  /** The app's answer head: status 200..599, headers filtered as for a sealed answer (responseHeaders). */
  onHead(status: number, headers: Array<readonly [string, string]>): void;
  onData(chunk: Buffer): void;
  onEnd(): void;
  /**
   * The call failed or was aborted (at most once, and never after onEnd). `answer` is what the proxy
   * would answer instead (502/504 with an `error`, meaningful before onHead); `reason` is what `abort`
   * was given when the caller ended it, else undici's error.
   */
  onError(answer: UpstreamAnswer, reason: unknown, byCaller: boolean): void;
}

export interface StreamCall {
  /** Stop reading the app's answer until resume() (the socket to the app fills, the app waits). */
  pause(): void;
  resume(): void;
  /** End the app's request now (its connection closed, so it sees an incomplete request). */
  abort(reason: Error): void;
}

export interface ForwardOptions {
  client?: ClientConnection;
  /** The server's memory budget, which the answer's body bytes are taken from as they arrive. */
  budget?: MemoryBudget;
}

/**
 * What forward() needs of the outer connection (a ServerResponse is one): whether it is gone, and when it
 * goes. An event listener rather than an AbortSignal: an AbortController per request costs about 4 us.
 */
export interface ClientConnection {
  readonly destroyed: boolean;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

/** An answer the proxy makes up itself: `status` with an `error` field and no body (§7). */
export function madeAnswer(status: number, error: string): UpstreamAnswer {
  return { status, headers: [], body: [], bodyBytes: 0, error, held: 0 };
}

class TooLarge extends Error {}
class BadStatus extends Error {}
class OverBudget extends Error {}
class ClientGone extends Error {}
/** A call after close(): the app is not contacted; the code is the one undici's closed pool gives. */
class ClosedUpstream extends Error {
  readonly code = 'UND_ERR_CLOSED';
}

function errorCode(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code;
}

/** The app's answer headers a client may see: hop-by-hop dropped, names tokens, values field values (§3). */
export function responseHeaders(headers: Record<string, string | string[] | undefined>): Array<readonly [string, string]> {
  const listed = connectionTokens(headers.connection);
  const out: Array<readonly [string, string]> = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || isHopByHop(name, listed) || !TOKEN_RE.test(name)) continue;
    if (typeof value === 'string') {
      if (FIELD_VALUE_RE.test(value)) out.push([name, value]);
    } else {
      for (const item of value) if (FIELD_VALUE_RE.test(item)) out.push([name, item]);
    }
  }
  return out;
}

export function createUpstream(options: UpstreamOptions): Upstream {
  const origin = new URL(options.url);
  const timeoutMs = options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  let pools: Promise<{ pool: Pool; streamPool: Pool }> | undefined;
  /** The pools once made: every call after the first dispatches at once, with no promise in between. */
  let ready: { pool: Pool; streamPool: Pool } | undefined;
  let closed = false;

  /** The two pools, made once on first use; a rejection (undici failed to load) is retried by the next call. */
  function openPools(): Promise<{ pool: Pool; streamPool: Pool }> {
    // `default`, the CommonJS module's exports: the split bundle (image/build-bundle.mjs) gives a CommonJS
    // module imported with import() only that, Node gives it and the named exports.
    pools ??= import('undici').then(
      ({ default: { Pool: UndiciPool } }) => (ready = {
        // The deadlines are undici's own per-connection timers (no timer or AbortController per request):
        // headers within timeoutMs, then no gap between body chunks longer than timeoutMs.
        pool: new UndiciPool(origin.origin, {
          connections: UPSTREAM_CONNECTIONS,
          pipelining: 1,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
          connect: { timeout: Math.min(timeoutMs, 10_000) },
        }),
        // Streams (stream.md §5): the headers within timeoutMs, then no body deadline at all (an LLM may
        // pause longer than 25 s between tokens); the stream's idle timeout ends a stream nothing moves on.
        // A pool of their own, so long-lived streams never hold the sealed path's connections.
        streamPool: new UndiciPool(origin.origin, {
          connections: UPSTREAM_CONNECTIONS,
          pipelining: 1,
          headersTimeout: timeoutMs,
          bodyTimeout: 0,
          connect: { timeout: Math.min(timeoutMs, 10_000) },
        }),
      }),
      (err: unknown) => {
        pools = undefined;
        throw err;
      },
    );
    return pools;
  }

  /** Runs `dispatch` with the pools once they exist; after close() or a failed load, `fail` instead. */
  function withPools(dispatch: (p: { pool: Pool; streamPool: Pool }) => void, fail: (err: unknown) => void): void {
    if (closed) {
      fail(new ClosedUpstream());
      return;
    }
    if (ready !== undefined) {
      dispatch(ready);
      return;
    }
    openPools().then((p) => (closed ? fail(new ClosedUpstream()) : dispatch(p)), fail);
  }

  function failed(err: unknown): UpstreamAnswer {
    const code = errorCode(err);
    if (err instanceof ClientGone) {
      options.onError?.('client_gone', err);
      return madeAnswer(502, 'client_gone');
    }
    if (err instanceof OverBudget) {
      options.onError?.('over_budget', err);
      return { ...madeAnswer(503, 'busy'), overBudget: true };
    }
    if (err instanceof BadStatus) {
      options.onError?.('bad_status', err);
      return madeAnswer(502, 'upstream_bad_response');
    }
    if (err instanceof TooLarge) {
      options.onError?.('too_large', err);
      return madeAnswer(502, 'upstream_response_too_large');
    }
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
      options.onError?.('timeout', err);
      return madeAnswer(504, 'upstream_timeout');
    }
    if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED') {
      // A request undici will not send (a header or method it refuses): the client's, not the app's.
      options.onError?.('refused_request', err);
      return madeAnswer(400, 'bad_request');
    }
    options.onError?.(code ?? 'error', err);
    return madeAnswer(502, 'upstream_unavailable');
  }

  return {
    forward(request, forwardOptions = {}) {
      const { client, budget } = forwardOptions;
      if (REFUSED_METHODS.has(request.method)) return Promise.resolve(madeAnswer(405, 'method_not_allowed'));
      if (client?.destroyed === true) return Promise.resolve(madeAnswer(502, 'client_gone'));
      // A dispatch handler rather than pool.request(): the body arrives as chunks straight into the
      // array the sealer encrypts from, with no stream or promise per chunk in between.
      return new Promise<UpstreamAnswer>((resolve) => {
        let status = 0;
        let headers: Record<string, string | string[] | undefined> = {};
        const body: Buffer[] = [];
        let size = 0;
        let taken = 0;
        let settled = false;
        const settle = (answer: UpstreamAnswer): void => {
          if (settled) return;
          settled = true;
          client?.off('close', onClientGone);
          // Only a complete answer keeps its bytes; a failed one never reaches a socket.
          if (answer.held !== taken) budget?.give(taken);
          resolve(answer);
        };
        let gone = false;
        let abortRequest: (() => void) | null = null;
        const onClientGone = (): void => {
          gone = true;
          abortRequest?.();
        };
        const handler: Dispatcher.DispatchHandler = {
          onRequestStart(controller) {
            abortRequest = () => controller.abort(new ClientGone());
            // Gone while the request waited for a connection in the pool: never send it.
            if (gone) abortRequest();
          },
          onResponseStart(controller, statusCode, received) {
            // 1xx are interim (undici reports them too); none goes to a client (§3).
            if (statusCode < 200) return;
            status = statusCode;
            headers = received;
            const declared = received['content-length'];
            if (typeof declared === 'string' && Number(declared) > MAX_UPSTREAM_BODY_BYTES) controller.abort(new TooLarge());
          },
          onResponseData(controller, chunk) {
            if (settled) return;
            size += chunk.length;
            if (size > MAX_UPSTREAM_BODY_BYTES) controller.abort(new TooLarge());
            else if (budget !== undefined && !budget.take(chunk.length)) controller.abort(new OverBudget());
            else {
              if (budget !== undefined) taken += chunk.length;
              body.push(chunk);
            }
          },
          onResponseEnd() {
            // Anything outside 200..599 is not an HTTP answer we can pass on.
            if (status > 599) {
              options.onError?.('bad_status', null);
              settle(madeAnswer(502, 'upstream_bad_response'));
              return;
            }
            settle({ status, headers: responseHeaders(headers), body, bodyBytes: size, held: taken });
          },
          onResponseError(_controller, err) {
            settle(failed(err));
          },
        };
        client?.once('close', onClientGone);
        const appHeaders = appRequestHeaders(request.headers, { host: origin.host, proto: options.forwardedProto });
        withPools(({ pool }) => {
          try {
            pool.dispatch({ path: request.path, method: request.method as Dispatcher.HttpMethod, headers: appHeaders, body: request.body }, handler);
          } catch (err) {
            settle(failed(err));
          }
        }, (err) => settle(failed(err)));
      });
    },
    stream(request, body, handlers, contentLength = null) {
      let controller: Dispatcher.DispatchController | null = null;
      let abortedBy: Error | null = null;
      let settled = false;
      const fail = (err: unknown): void => {
        if (settled) return;
        settled = true;
        if (abortedBy !== null) handlers.onError(madeAnswer(502, 'aborted'), abortedBy, true);
        else handlers.onError(failed(err), err, false);
      };
      const call: StreamCall = {
        pause: () => controller?.pause(),
        resume: () => controller?.resume(),
        abort(reason) {
          if (settled || abortedBy !== null) return;
          abortedBy = reason;
          // Before the pool started the request: onRequestStart aborts it.
          controller?.abort(reason);
        },
      };
      if (REFUSED_METHODS.has(request.method)) {
        queueMicrotask(() => {
          if (!settled) {
            settled = true;
            handlers.onError(madeAnswer(405, 'method_not_allowed'), null, false);
          }
        });
        return call;
      }
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(c) {
          controller = c;
          if (abortedBy !== null) c.abort(abortedBy);
        },
        onResponseStart(c, statusCode, received) {
          if (statusCode < 200 || settled) return;
          if (statusCode > 599) {
            c.abort(new BadStatus());
            return;
          }
          handlers.onHead(statusCode, responseHeaders(received));
        },
        onResponseData(_c, chunk) {
          if (!settled) handlers.onData(chunk);
        },
        onResponseEnd() {
          if (settled) return;
          settled = true;
          handlers.onEnd();
        },
        onResponseError(_c, err) {
          fail(err);
        },
      };
      const headers = appRequestHeaders(request.headers, { host: origin.host, proto: options.forwardedProto });
      // headers.ts drops the client's content-length; a streamed body carries the head's own (checked
      // by the caller), else undici sends it chunked.
      if (contentLength !== null) headers['content-length'] = String(contentLength);
      withPools(({ streamPool }) => {
        try {
          // undici pulls an async iterable one chunk at a time, waiting for the socket to drain before
          // the next: the client's upload is read only as fast as the app takes it.
          streamPool.dispatch({ path: request.path, method: request.method as Dispatcher.HttpMethod, headers, body: body as unknown as Readable | null }, handler);
        } catch (err) {
          fail(err);
        }
      }, fail);
      return call;
    },
    async close() {
      closed = true;
      if (pools === undefined) return;
      const { pool, streamPool } = await pools.catch(() => ({ pool: null, streamPool: null }));
      if (pool !== null) await Promise.all([pool.close(), streamPool.close()]);
    },
  };
}
