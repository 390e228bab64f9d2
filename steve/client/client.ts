/**
 * `createSteveClient`: a fetch-like client for an app behind the STEVE proxy (specs/steve.md §5-§6).
 * `request(path, init)` resolves with a web `Response` built from the decrypted answer; the non-secret
 * receipt of the exchange is `client.receiptFor(response)` (and `client.lastReceipt`).
 *
 * Sessions. The first request establishes a session (establish.ts: document, binding, PCR policy and
 * confirmation, all before any application data); requests share it. Outer 400, 401, 409 and 425 end it
 * and the next request establishes a new one; 403, 404, 408, 413, 429, 5xx, a timeout or a network error
 * fail only that request (§6). An answer that is malformed, for another session or sequence, or does not
 * open also ends the session (ours: the channel can no longer be trusted to be in step). A session is
 * rotated `rotateAfterMs` after its creation (default 25 minutes; the server's live 30): the NEXT request
 * establishes a fresh one while requests in flight finish on the old one. One failure is retried: a 401
 * `session_invalid` (the server does not know the session: it restarted, or a balancer moved the client
 * to another agent) means the app never saw the request, so an idempotent request is sent once more on a
 * freshly established and verified session (isUnknownSession says when that is safe, and why only
 * idempotent methods by default). Nothing else is retried or replayed: any other failure is the caller's
 * to handle.
 *
 * Sequences. Application sequences start at 1 and increase; the answer must carry the same session id
 * and sequence. At most 64 requests are outstanding per session, counted as the server's replay window
 * counts them (ours): a new sequence is sent only while it is less than 64 above the oldest one still
 * outstanding, so no sequence can fall out of the window before it arrives. Requests beyond wait in a
 * FIFO queue. A request that timed out or was aborted no longer holds its place.
 *
 * Streams (ours, ../protocol/stream.md, `stream-1`). On a session whose verified binding lists
 * `stream-1` (and unless `streaming: false` or the request's `stream: false`), a request goes to
 * /e2p/v2/stream as HEAD, DATA records of at most 64 KiB and END (stream.ts). request() resolves as soon
 * as the answer's head record opened; its body is pull-based (a record is read off the network only when
 * the consumer asks, so a slow reader slows the server and the app) and hands on each DATA plaintext
 * only once its record opened. A record that does not open, a wrong kind or order, a byte after END is
 * STEVE_CLIENT_PROTOCOL and ends the session; ABORT is STEVE_CLIENT_STREAM_ABORTED; a body that ends
 * before END is STEVE_CLIENT_TRUNCATED: never a short success. requestTimeoutMs bounds the time to the
 * head, streamIdleTimeoutMs (60 s) each wait for a body record. A streamed body holds its sequence and
 * one of the session's 16 stream places until it ends, fails or is cancelled: read or cancel every body
 * (as fetch's unread bodies hold their connections). A ReadableStream or async-iterable request body is
 * sent with `duplex: 'half'` (Node's fetch; Chromium only over HTTP/2, so the browser worker passes
 * bytes); on a session without stream-1 it is read whole (32 MiB cap) and sent as one record.
 *
 * Web-standard only (fetch, crypto.getRandomValues, AbortController, TextEncoder): runs in a browser, a
 * service worker, Deno and Node. Node callers may pass a faster `aead` and a node:crypto `verifier`.
 */

import { sha256 } from '@noble/hashes/sha2.js';
import type { P384Verifier, PcrProfile } from '../../nsm/verifier.js';
import {
  CONTEXT_HASH_BYTES,
  DIRECTION,
  FRAME_KIND,
  MAX_APPLICATION_RESPONSE_BYTES,
  MAX_REQUEST_ENVELOPE_BYTES,
  MAX_SEQUENCE,
  MAX_STREAM_CHUNK_BYTES,
  MAX_STREAMS_PER_SESSION,
  MESSAGE_TYPE,
  REPLAY_WINDOW_SIZE,
  STREAM_EXTENSION,
  STREAM_MEDIA_TYPE,
  STREAM_PATH,
  constantTimeEqual,
  createStreamWriter,
  decodeAppResponse,
  decodeEnvelope,
  encodeEnvelope,
  encodeStreamPreamble,
  isSuite,
  joinBytes,
  nobleAesGcm,
  openRecord,
  sealRecord,
  wipeSessionKeys,
  type Aead,
  type AppResponse,
  type RandomBytes,
  type Suite,
} from '../protocol/index.js';
import {
  buildResponse,
  buildStreamedResponse,
  encodeRequestPlaintext,
  errorBody,
  hasNullBody,
  prepareRequest,
  prepareRequestBody,
  tooLargeForRecord,
  type PreparedRequest,
  type SteveRequestInit,
} from './application.js';
import { SteveError } from '../errors.js';
import { SteveClientError, printable } from './errors.js';
import { REQUEST_PATH, establishSession, type Session } from './establish.js';
import { createDeadline, httpError, networkError, postCbor, readCapped, type FetchFunction } from './http.js';
import { createRecordReader, frameRequest, headPlaintext, streamRequest, type RecordReader, type UploadProgress } from './stream.js';
import { assertProfiles, type PcrPolicy, type PcrTrust, type TofuStore } from './pcr-policy.js';

/** Defaults in one place (specs/steve.md §5 "client-side timing", §6). */
export const STEVE_CLIENT_DEFAULTS = Object.freeze({
  /** §5: establishment deadline. */
  establishTimeoutMs: 10_000,
  /** §5: default request timeout. */
  requestTimeoutMs: 30_000,
  /** §5: the browser client rotates 25 minutes after creating a session; the server's live 30 (§7). */
  rotateAfterMs: 25 * 60 * 1000,
  /** §5: a client keeps at most 64 outstanding, the width of the server's replay window (§7). */
  maxOutstanding: REPLAY_WINDOW_SIZE,
  /** Ours, stream.md §5: the server's own idle timeout is 60 s, so a longer gap means it gave up too. */
  streamIdleTimeoutMs: 60_000,
});

/** §6: these outer statuses end the session; every other failure keeps it. */
const SESSION_ENDING_STATUSES = new Set([400, 401, 409, 425]);

/**
 * Sends of one request: the first, and one more on a fresh session after the server said it does not
 * know the session (isUnknownSession). One, so a server that keeps forgetting cannot make a loop.
 */
const MAX_ATTEMPTS = 2;

/**
 * The one failure the client retries: `401 {"error":"session_invalid"}` (§7) on /request or /stream,
 * what an agent answers for a session it does not know (it restarted, it evicted the session, or a
 * balancer sent the request to another agent: README "Scale-out"). The agent looks the session up and
 * opens the record before it calls the app (steve/server/server.ts; stream-endpoint.ts looks the session
 * up on the preamble, before any record), so it did not pass the request to the app: sending it again on a
 * new session, established and verified from scratch (document, binding, PCR policy), cannot make the app
 * run it twice. (The same 401 answers a record that does not open, which only a host that alters records
 * causes; on a stream whose later DATA record fails so, the app's request is aborted before its body is
 * complete.) Only a request whose body is bytes is resent: a ReadableStream body was consumed by the
 * first send.
 *
 * The outer status is not authenticated: a hostile host could answer this 401 for a request it did pass
 * on, and so have the app run it twice, which is what STEVE's replay window exists to prevent. So by
 * default only idempotent methods (RFC 9110 §9.2.2: running one twice has the effect of running it once)
 * are resent; a POST gets the 401 as its error, and the next request establishes a new session on its own
 * (`resendOnUnknownSession: 'all'` resends every method, for apps whose requests carry idempotency keys).
 */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

function isUnknownSession(error: unknown): boolean {
  return error instanceof SteveClientError && error.code === 'STEVE_CLIENT_HTTP' && error.stage === 'request' && error.status === 401 && error.serverError === 'session_invalid';
}

export interface SteveClientOptions {
  /** The enclave's origin: `https://host[:port]` (a trailing `/` is allowed, nothing else after it). */
  origin: string | URL;
  /** The deployment's suite (§1: pinned, never negotiated). */
  keyExchange: Suite;
  /** Pinned PCR profiles (several, for image rotations), checked before confirmation. Not with tofuStore. */
  pcrPolicy?: readonly PcrProfile[];
  /** Trust on first use: recorded after the first full establishment, compared later. Not with pcrPolicy. */
  tofuStore?: TofuStore;
  /** Trust anchor, DER. Default: the pinned AWS Nitro Enclaves Root-G1. */
  root?: Uint8Array;
  /** Accept debug-mode documents (all-zero PCR0-2). Default false. */
  allowDebug?: boolean;
  /** Default: the global fetch. */
  fetch?: FetchFunction;
  /** Clock in ms since the epoch. Default Date.now. */
  now?: () => number;
  /** Random bytes. Default crypto.getRandomValues. */
  random?: RandomBytes;
  /** AES-256-GCM. Default nobleAesGcm (pure JS); Node callers may pass a node:crypto one. */
  aead?: Aead;
  /** 32 bytes for the session request. Default SHA-256 of the origin string (`https://host`). */
  contextHash?: Uint8Array;
  /** P-384 signatures for the verifier. Default noble; Node callers pass `nodeP384Verifier`. */
  verifier?: P384Verifier;
  establishTimeoutMs?: number;
  /** Time to the whole answer on /e2p/v2/request, to the head record on a stream. */
  requestTimeoutMs?: number;
  rotateAfterMs?: number;
  /**
   * Stream requests (stream.md) on sessions whose verified binding lists `stream-1`. Default true; false:
   * always /e2p/v2/request, as a client without the extension does.
   */
  streaming?: boolean;
  /** Longest wait for the next record of a streamed answer's body, once its head came (default 60 s). */
  streamIdleTimeoutMs?: number;
  /**
   * Which requests are sent once more, on a new session, after the server answered that it does not know
   * the session (isUnknownSession): `idempotent` (the default: GET, HEAD, OPTIONS, TRACE, PUT, DELETE,
   * RFC 9110 §9.2.2), `all`, or `none`. That answer is not authenticated: `all` lets a hostile host have
   * the app run a POST twice.
   */
  resendOnUnknownSession?: 'idempotent' | 'all' | 'none';
}

/** What one exchange proved, without secrets: for logs, UIs and the CLI's stderr. */
export interface SteveReceipt {
  /** Hex of the 16-byte session id. */
  sessionId: string;
  sequence: number;
  suite: Suite;
  /** The pinned profile's name, or 'tofu-recorded' / 'tofu-matched'. */
  pcrTrust: string;
  pcrPolicy: 'pinned' | 'tofu';
  /** The app's status (inside the channel). */
  status: number;
  method: string;
  path: string;
  /** Envelope bytes sent and received. */
  requestBytes: number;
  responseBytes: number;
  /** Plaintext body bytes sent and received. */
  requestBodyBytes: number;
  responseBodyBytes: number;
  sessionCreatedAtMs: number;
  /**
   * Present for an exchange over /e2p/v2/stream. `open`: the receipt as of the head record (the byte
   * counts so far); receiptFor(response) then gives a new receipt with the final counts once the body
   * `ended` (END opened) or `failed` (an error, an ABORT, or the consumer cancelled it).
   */
  stream?: 'open' | 'ended' | 'failed';
}

export interface SteveClient {
  /** The origin all requests go to, `https://host[:port]`. */
  readonly origin: string;
  readonly suite: Suite;
  /** Sends one request through the channel; resolves with the app's answer (any status), or rejects coded. */
  request(target: string | URL, init?: SteveRequestInit): Promise<Response>;
  /** The receipt of a Response this client returned. */
  receiptFor(response: Response): SteveReceipt | undefined;
  /** The receipt of the last request that completed. */
  readonly lastReceipt: SteveReceipt | undefined;
  /** Ends the current session; the next request establishes a new one. In-flight requests finish. */
  endSession(): void;
  /** Refuses new and queued requests (STEVE_CLIENT_CLOSED); in-flight ones finish. */
  close(): void;
}

interface LiveSession {
  session: Session;
  nextSequence: number;
  outstanding: Set<number>;
  /** Streams sent and not yet ended (their bodies not read to the end, failed or cancelled). */
  openStreams: number;
  ended: boolean;
}

interface Slot {
  live: LiveSession;
  sequence: number;
  /** This request goes over /e2p/v2/stream. */
  streamed: boolean;
}

interface Waiter {
  resolve(slot: Slot): void;
  reject(error: unknown): void;
  /** An error when this request cannot go on this session (checked before a sequence is given to it). */
  admit?(live: LiveSession): SteveClientError | undefined;
  /** Whether this request would stream on this session. */
  streams?(live: LiveSession): boolean;
}

function configError(message: string): SteveClientError {
  return new SteveClientError('STEVE_CLIENT_CONFIG', 'config', message);
}

function positiveMs(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw configError(`"${name}" expected a positive number of milliseconds`);
  return value;
}

/** The origin as `scheme://host[:port]`: http: or https:, no credentials, no path, query or fragment. */
function parseOrigin(origin: unknown): string {
  let url: URL;
  try {
    url = new URL(origin instanceof URL ? origin.href : String(origin));
  } catch {
    throw configError('"origin" expected an absolute http: or https: URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw configError('"origin" expected http: or https:');
  if (url.username !== '' || url.password !== '') throw configError('"origin" must not carry credentials');
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') throw configError('"origin" expected scheme://host[:port] with no path, query or fragment');
  return url.origin;
}

function defaultRandom(length: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(length));
}

function pcrPolicyFrom(options: SteveClientOptions): PcrPolicy {
  const pinned = options.pcrPolicy !== undefined;
  const tofu = options.tofuStore !== undefined;
  if (pinned === tofu) throw configError('exactly one of "pcrPolicy" (pinned profiles) and "tofuStore" (trust on first use) is required');
  if (pinned) {
    assertProfiles(options.pcrPolicy, '"pcrPolicy"');
    return { kind: 'pinned', profiles: [...options.pcrPolicy!] };
  }
  const store = options.tofuStore!;
  if (typeof store !== 'object' || store === null || typeof store.load !== 'function' || typeof store.save !== 'function') {
    throw configError('"tofuStore" expected { load(), save(pcrs) }');
  }
  return { kind: 'tofu', store };
}

/** The coded error of a stream the server ended with ABORT (stream.md §5): not a short success. */
function streamAborted(what: string, code: string): SteveClientError {
  const serverError = printable(code, 80);
  return new SteveClientError('STEVE_CLIENT_STREAM_ABORTED', 'request', `${what}: the server aborted the stream (${serverError})`, { serverError });
}

/** A promise that rejects when `signal` aborts (for racing a read that would not notice). */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise<never>((_resolve, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

function describeTrust(trust: PcrTrust): string {
  return trust.policy === 'pinned' ? trust.profile : trust.result;
}

/** The receipt of one exchange: what the session proved, and the counts the caller gives. */
function receiptOf(
  session: Session,
  sequence: number,
  prepared: { method: string; path: string },
  status: number,
  counts: Pick<SteveReceipt, 'requestBytes' | 'responseBytes' | 'requestBodyBytes' | 'responseBodyBytes' | 'stream'>,
): SteveReceipt {
  return Object.freeze({
    sessionId: session.sessionIdHex,
    sequence,
    suite: session.suite,
    pcrTrust: describeTrust(session.pcrTrust),
    pcrPolicy: session.pcrTrust.policy,
    status,
    method: prepared.method,
    path: prepared.path,
    ...counts,
    sessionCreatedAtMs: session.createdAtMs,
  });
}

export function createSteveClient(options: SteveClientOptions): SteveClient {
  if (typeof options !== 'object' || options === null) throw configError('options expected an object');
  const origin = parseOrigin(options.origin);
  if (!isSuite(options.keyExchange)) throw configError('"keyExchange" expected X25519 or XWING-DRAFT10');
  const suite = options.keyExchange;
  const policy = pcrPolicyFrom(options);
  const fetchFunction: FetchFunction | undefined = options.fetch ?? (typeof fetch === 'function' ? (input, init) => fetch(input, init) : undefined);
  if (typeof fetchFunction !== 'function') throw configError('"fetch" expected a function (no global fetch here)');
  const contextHash = options.contextHash ?? sha256(new TextEncoder().encode(origin));
  if (!(contextHash instanceof Uint8Array) || contextHash.length !== CONTEXT_HASH_BYTES) throw configError(`"contextHash" expected ${CONTEXT_HASH_BYTES} bytes`);
  if (options.root !== undefined && !(options.root instanceof Uint8Array)) throw configError('"root" expected DER bytes');
  for (const name of ['now', 'random'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') throw configError(`"${name}" expected a function`);
  }
  const aead = options.aead ?? nobleAesGcm;
  if (typeof aead.seal !== 'function' || typeof aead.open !== 'function') throw configError('"aead" expected { seal, open }');
  const now = options.now ?? Date.now;
  const random = options.random ?? defaultRandom;
  const establishTimeoutMs = positiveMs(options.establishTimeoutMs, 'establishTimeoutMs', STEVE_CLIENT_DEFAULTS.establishTimeoutMs);
  const requestTimeoutMs = positiveMs(options.requestTimeoutMs, 'requestTimeoutMs', STEVE_CLIENT_DEFAULTS.requestTimeoutMs);
  const rotateAfterMs = positiveMs(options.rotateAfterMs, 'rotateAfterMs', STEVE_CLIENT_DEFAULTS.rotateAfterMs);
  const streamIdleTimeoutMs = positiveMs(options.streamIdleTimeoutMs, 'streamIdleTimeoutMs', STEVE_CLIENT_DEFAULTS.streamIdleTimeoutMs);
  if (options.streaming !== undefined && typeof options.streaming !== 'boolean') throw configError('"streaming" expected a boolean');
  const streaming = options.streaming !== false;
  const resend = options.resendOnUnknownSession ?? 'idempotent';
  if (resend !== 'idempotent' && resend !== 'all' && resend !== 'none') throw configError('"resendOnUnknownSession" expected idempotent, all or none');
  const establishOptions = {
    origin,
    suite,
    policy,
    contextHash: contextHash.slice(),
    fetch: fetchFunction,
    now,
    random,
    aead,
    timeoutMs: establishTimeoutMs,
    allowDebug: options.allowDebug === true,
    ...(options.root !== undefined ? { root: options.root.slice() } : {}),
    ...(options.verifier !== undefined ? { verifier: options.verifier } : {}),
  };

  const receipts = new WeakMap<Response, SteveReceipt>();
  let lastReceipt: SteveReceipt | undefined;
  let current: LiveSession | undefined;
  let establishing = false;
  let closed = false;
  const queue: Waiter[] = [];

  /** Retires a session: no new requests; its keys are wiped once nothing is in flight on it. */
  function retire(live: LiveSession): void {
    live.ended = true;
    if (current === live) current = undefined;
    if (live.outstanding.size === 0) wipeSessionKeys(live.session.keys);
  }

  function canSend(live: LiveSession): boolean {
    if (live.nextSequence > MAX_SEQUENCE) return false;
    if (live.outstanding.size === 0) return true;
    let oldest = Infinity;
    for (const sequence of live.outstanding) oldest = Math.min(oldest, sequence);
    return live.nextSequence - oldest < STEVE_CLIENT_DEFAULTS.maxOutstanding;
  }

  function startEstablishment(): void {
    if (establishing) return;
    establishing = true;
    establishSession(establishOptions).then(
      (session) => {
        establishing = false;
        if (closed) {
          wipeSessionKeys(session.keys);
          return;
        }
        current = { session, nextSequence: 1, outstanding: new Set(), openStreams: 0, ended: false };
        pump();
      },
      (error: unknown) => {
        establishing = false;
        // Every request waiting for this session fails with its error; none is retried.
        for (const waiter of queue.splice(0)) waiter.reject(error);
      },
    );
  }

  /** Hands sequences to queued requests, in order, while the session's window allows. */
  function pump(): void {
    while (queue.length > 0) {
      if (current !== undefined && (current.ended || now() - current.session.createdAtMs >= rotateAfterMs || current.nextSequence > MAX_SEQUENCE)) {
        retire(current);
      }
      if (current === undefined) {
        startEstablishment();
        return;
      }
      if (!canSend(current)) return;
      // stream.md §5: at most 16 streams open per session; a stream request waits for one to end (in order).
      const streamed = queue[0]!.streams?.(current) === true;
      if (streamed && current.openStreams >= MAX_STREAMS_PER_SESSION) return;
      const waiter = queue.shift()!;
      const refusal = waiter.admit?.(current);
      if (refusal !== undefined) {
        waiter.reject(refusal);
        continue;
      }
      const sequence = current.nextSequence++;
      current.outstanding.add(sequence);
      if (streamed) current.openStreams++;
      waiter.resolve({ live: current, sequence, streamed });
    }
  }

  function release(live: LiveSession, sequence: number, streamed = false): void {
    if (!live.outstanding.delete(sequence)) return;
    if (streamed) live.openStreams--;
    if (live.ended && live.outstanding.size === 0) wipeSessionKeys(live.session.keys);
    pump();
  }

  function acquire(signal: AbortSignal | null | undefined, admit: Waiter['admit'], streams: Waiter['streams']): Promise<Slot> {
    return new Promise((resolve, reject) => {
      const aborted = () => new SteveClientError('STEVE_CLIENT_ABORTED', 'request', 'aborted by the caller before it was sent');
      if (signal?.aborted) {
        reject(aborted());
        return;
      }
      const onAbort = (): void => {
        const index = queue.indexOf(waiter);
        if (index >= 0) {
          queue.splice(index, 1);
          reject(aborted());
        }
      };
      const waiter: Waiter = {
        admit,
        streams,
        resolve: (slot) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(slot);
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(waiter);
      pump();
    });
  }

  function endSession(live: LiveSession, error: SteveClientError): SteveClientError {
    if (!live.ended) retire(live);
    error.sessionEnded = true;
    return error;
  }

  async function exchange(live: LiveSession, sequence: number, given: PreparedRequest, init: SteveRequestInit): Promise<Response> {
    const { session } = live;
    const timeoutMs = init.timeoutMs ?? requestTimeoutMs;
    const what = `${given.method} ${given.path}`;
    const deadline = createDeadline(timeoutMs, what, init.signal);
    try {
      deadline.check('request');
      const prepared = given.bodyStream === null ? given : await readStreamBody(given, deadline, what);
      deadline.check('request');
      const header = { type: MESSAGE_TYPE.APPLICATION, sessionId: session.sessionId, sequence } as const;
      const ciphertext = sealRecord(aead, session.keys, { ...header, direction: DIRECTION.C2S }, encodeRequestPlaintext(prepared, prepared.body, 'record'));
      const body = encodeEnvelope({ sessionId: session.sessionId, sequence, ciphertext });
      const response = await postCbor(fetchFunction!, `${origin}${REQUEST_PATH}`, body, deadline, 'request', what);
      if (response.status !== 200) {
        const error = await httpError(response, deadline, 'request', what);
        throw SESSION_ENDING_STATUSES.has(response.status) ? endSession(live, error) : error;
      }
      const bytes = await readCapped(response, MAX_APPLICATION_RESPONSE_BYTES, deadline, 'request', what);
      deadline.check('request');
      let app: AppResponse;
      try {
        const envelope = decodeEnvelope(bytes, { maxBytes: MAX_APPLICATION_RESPONSE_BYTES });
        if (!constantTimeEqual(envelope.sessionId, session.sessionId) || envelope.sequence !== sequence) {
          throw new SteveClientError('STEVE_CLIENT_PROTOCOL', 'request', `${what}: the answer is not for this session and sequence`);
        }
        const plaintext = openRecord(aead, session.keys, { ...header, direction: DIRECTION.S2C }, envelope.ciphertext);
        app = decodeAppResponse(plaintext, { maxBytes: MAX_APPLICATION_RESPONSE_BYTES });
      } catch (error) {
        if (error instanceof SteveClientError) throw endSession(live, error);
        const detail = error instanceof SteveError ? `${error.code}: ${error.message}` : 'malformed';
        throw endSession(live, new SteveClientError('STEVE_CLIENT_PROTOCOL', 'request', `${what}: ${detail}`, { cause: error }));
      }
      let result: Response;
      try {
        result = buildResponse(app);
      } catch (error) {
        throw endSession(live, new SteveClientError('STEVE_CLIENT_PROTOCOL', 'request', `${what}: the answer cannot be a web Response`, { cause: error }));
      }
      const receipt = receiptOf(session, sequence, prepared, app.status, {
        requestBytes: body.length,
        responseBytes: bytes.length,
        requestBodyBytes: prepared.bodyBytes,
        responseBodyBytes: app.body?.length ?? 0,
      });
      receipts.set(result, receipt);
      lastReceipt = receipt;
      return result;
    } catch (error) {
      if (error instanceof SteveClientError) throw error;
      // Something unexpected (a broken custom aead or fetch): still coded, and the session is not trusted further.
      throw endSession(live, new SteveClientError('STEVE_CLIENT_PROTOCOL', 'request', `${what}: ${(error as Error)?.name ?? 'error'}`, { cause: error }));
    } finally {
      deadline.dispose();
    }
  }

  /**
   * A stream body on a session without stream-1: read whole, under the §6 envelope cap (the count is
   * checked as chunks arrive), and sent as one record like a bytes body.
   */
  async function readStreamBody(prepared: PreparedRequest, deadline: ReturnType<typeof createDeadline>, what: string): Promise<PreparedRequest> {
    const reader = prepared.bodyStream!.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for (;;) {
        const { done, value } = await Promise.race([reader.read(), aborted(deadline.signal)]);
        if (done) break;
        if (!(value instanceof Uint8Array)) throw new SteveClientError('STEVE_CLIENT_BAD_REQUEST', 'request', `${what}: the request body stream gave a chunk that is not a Uint8Array`);
        size += value.length;
        if (size > MAX_REQUEST_ENVELOPE_BYTES) throw tooLargeForRecord();
        chunks.push(value);
      }
    } catch (error) {
      reader.cancel().catch(() => undefined);
      deadline.check('request');
      if (error instanceof SteveClientError) throw error;
      throw new SteveClientError('STEVE_CLIENT_BAD_REQUEST', 'request', `${what}: the request body stream failed`, { cause: error });
    }
    const bytes = prepareRequestBody(prepared, joinBytes(chunks));
    if (bytes.tooLargeForRecord) throw tooLargeForRecord();
    return bytes;
  }

  /**
   * One exchange over /e2p/v2/stream (stream.md). Resolves once the head record opened; the sequence
   * stays outstanding until the body ends, fails or is cancelled (`hold.handedOver` tells the caller the
   * body now releases it). requestTimeoutMs bounds the time to the head, streamIdleTimeoutMs each wait
   * for a body record after it.
   */
  async function streamExchange(live: LiveSession, sequence: number, prepared: PreparedRequest, head: Uint8Array, init: SteveRequestInit, hold: { handedOver: boolean }): Promise<Response> {
    const { session } = live;
    const what = `${prepared.method} ${prepared.path}`;
    const deadline = createDeadline(init.timeoutMs ?? requestTimeoutMs, what, init.signal);
    // Our own controller for the fetch: the deadline aborts it until the head, the body's end after it.
    const fetchController = new AbortController();
    const abortFetch = (): void => fetchController.abort();
    deadline.signal.addEventListener('abort', abortFetch, { once: true });
    const upload: UploadProgress = { wireBytes: 0, bodyBytes: 0, failure: undefined };
    let records: RecordReader | undefined;
    const stopOnDeadline = (): void => {
      try {
        deadline.check('request');
      } catch (verdict) {
        records?.stop(verdict as SteveClientError);
      }
    };
    deadline.signal.addEventListener('abort', stopOnDeadline, { once: true });
    try {
      deadline.check('request');
      const writer = createStreamWriter(aead, session.keys.streamC2sKey, { direction: DIRECTION.C2S, sessionId: session.sessionId, sequence });
      const preamble = encodeStreamPreamble(session.sessionId, sequence);
      let body: Uint8Array | ReadableStream<Uint8Array>;
      if (prepared.bodyStream === null) {
        body = frameRequest(preamble, writer, head, prepared.body);
        upload.wireBytes = body.length;
        upload.bodyBytes = prepared.bodyBytes;
      } else {
        body = streamRequest(preamble, writer, head, prepared.bodyStream, upload);
      }
      let response: Response;
      try {
        // duplex 'half' is what fetch wants for a stream body (Node's fetch takes it; Chromium only over HTTP/2).
        const requestInit = {
          method: 'POST',
          headers: { 'content-type': STREAM_MEDIA_TYPE, accept: STREAM_MEDIA_TYPE },
          body: body as Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array>,
          credentials: 'omit',
          redirect: 'error',
          signal: fetchController.signal,
          ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
        } as RequestInit;
        response = await fetchFunction!(`${origin}${STREAM_PATH}`, requestInit);
      } catch (error) {
        throw upload.failure ?? networkError(error, deadline, 'request', what);
      }
      if (response.status !== 200) {
        const error = await httpError(response, deadline, 'request', what);
        throw SESSION_ENDING_STATUSES.has(response.status) ? endSession(live, error) : error;
      }
      const reader = createRecordReader(response.body, aead, session.keys.streamS2cKey, { sessionId: session.sessionId, sequence, what });
      records = reader;
      reader.readFailure = (error) => networkError(error, deadline, 'request', what);
      if (deadline.signal.aborted) stopOnDeadline();

      let app: AppResponse;
      try {
        app = decodeAppResponse(headPlaintext(await reader.next()), { maxBytes: MAX_STREAM_CHUNK_BYTES });
      } catch (error) {
        if (error instanceof SteveClientError) throw error;
        throw new SteveClientError('STEVE_CLIENT_PROTOCOL', 'request', `${what}: stream head: ${error instanceof SteveError ? `${error.code}: ${error.message}` : 'malformed'}`, { cause: error });
      }
      if (app.body !== null) throw new SteveClientError('STEVE_CLIENT_PROTOCOL', 'request', `${what}: stream head: a head carries no body (stream.md §4)`);
      if (hasNullBody(app.status)) {
        // A web Response has no body for these: the records are read to END now, within the deadline, and
        // any DATA dropped, as buildResponse drops a body sent with them.
        for (;;) {
          const record = await reader.next();
          if (record.kind === FRAME_KIND.END) break;
          if (record.kind === FRAME_KIND.ABORT) throw streamAborted(what, record.error);
        }
        await reader.expectEnd();
      }
      deadline.check('request');

      const receipt = (state: NonNullable<SteveReceipt['stream']>, bodyBytes: number): SteveReceipt =>
        receiptOf(session, sequence, prepared, app.status, {
          requestBytes: upload.wireBytes,
          responseBytes: reader.wireBytes,
          requestBodyBytes: upload.bodyBytes,
          responseBodyBytes: bodyBytes,
          stream: state,
        });

      // From here the body owns the exchange: its end releases the sequence, aborts the fetch if needed,
      // and writes the final receipt.
      deadline.signal.removeEventListener('abort', abortFetch);
      deadline.signal.removeEventListener('abort', stopOnDeadline);
      reader.readFailure = (error) => new SteveClientError('STEVE_CLIENT_TRUNCATED', 'request', `${what}: the stream broke off before its END record`, { cause: error });
      let delivered = 0;
      let done = false;
      let result: Response;
      const onCallerAbort = (): void => reader.stop(new SteveClientError('STEVE_CLIENT_ABORTED', 'request', `${what}: aborted by the caller`));
      const finish = (state: 'ended' | 'failed', error?: SteveClientError): void => {
        if (done) return;
        done = true;
        init.signal?.removeEventListener('abort', onCallerAbort);
        if (state === 'failed') {
          if (error?.code === 'STEVE_CLIENT_PROTOCOL') endSession(live, error);
          reader.stop(error ?? new SteveClientError('STEVE_CLIENT_ABORTED', 'request', `${what}: the body was cancelled`));
          fetchController.abort();
        }
        const final = receipt(state, delivered);
        if (lastReceipt === receipts.get(result)) lastReceipt = final;
        receipts.set(result, final);
        release(live, sequence, true);
      };
      const coded = (error: unknown): SteveClientError =>
        error instanceof SteveClientError ? error : new SteveClientError('STEVE_CLIENT_PROTOCOL', 'request', `${what}: stream: ${(error as Error)?.name ?? 'error'}`, { cause: error });

      let bodyStream: ReadableStream<Uint8Array> | null = null;
      if (!hasNullBody(app.status)) {
        bodyStream = new ReadableStream<Uint8Array>(
          {
            // Pull-based, high-water mark 0: a record is read only when the consumer asks for bytes.
            async pull(controller) {
              const idle = setTimeout(() => reader.stop(new SteveClientError('STEVE_CLIENT_TIMEOUT', 'request', `${what}: no stream record within ${streamIdleTimeoutMs} ms`)), streamIdleTimeoutMs);
              try {
                const record = await reader.next();
                if (record.kind === FRAME_KIND.DATA) {
                  delivered += record.plaintext.length;
                  controller.enqueue(record.plaintext);
                  return;
                }
                if (record.kind === FRAME_KIND.ABORT) throw streamAborted(what, record.error);
                if (record.kind !== FRAME_KIND.END) throw new SteveClientError('STEVE_CLIENT_PROTOCOL', 'request', `${what}: stream: a second head`);
                await reader.expectEnd();
                // An answer the proxy made up (error, no body) reads as buildResponse shows it.
                if (delivered === 0 && app.error !== undefined) controller.enqueue(errorBody(app));
                controller.close();
                finish('ended');
              } catch (error) {
                const failure = coded(error);
                controller.error(failure);
                finish('failed', failure);
              } finally {
                clearTimeout(idle);
              }
            },
            cancel() {
              finish('failed');
            },
          },
          { highWaterMark: 0 },
        );
      }
      try {
        result = buildStreamedResponse(app, bodyStream);
      } catch (error) {
        throw new SteveClientError('STEVE_CLIENT_PROTOCOL', 'request', `${what}: the answer cannot be a web Response`, { cause: error });
      }
      const first = receipt(bodyStream === null ? 'ended' : 'open', 0);
      receipts.set(result, first);
      lastReceipt = first;
      if (bodyStream === null) {
        // Read to END already: the caller's finally releases the sequence.
        done = true;
        fetchController.abort();
        return result;
      }
      hold.handedOver = true;
      if (init.signal?.aborted) onCallerAbort();
      else init.signal?.addEventListener('abort', onCallerAbort, { once: true });
      return result;
    } catch (error) {
      records?.stop(error instanceof SteveClientError ? error : new SteveClientError('STEVE_CLIENT_ABORTED', 'request', `${what}: stopped`));
      fetchController.abort();
      if (error instanceof SteveClientError) {
        if (error.code === 'STEVE_CLIENT_PROTOCOL') endSession(live, error);
        throw error;
      }
      throw endSession(live, new SteveClientError('STEVE_CLIENT_PROTOCOL', 'request', `${what}: ${(error as Error)?.name ?? 'error'}`, { cause: error }));
    } finally {
      deadline.signal.removeEventListener('abort', abortFetch);
      deadline.signal.removeEventListener('abort', stopOnDeadline);
      deadline.dispose();
    }
  }

  return {
    origin,
    suite,
    async request(target, init = {}) {
      if (closed) throw new SteveClientError('STEVE_CLIENT_CLOSED', 'request', 'the client is closed');
      if (typeof init !== 'object' || init === null) throw new SteveClientError('STEVE_CLIENT_BAD_REQUEST', 'request', '"init" expected an object');
      const { timeoutMs } = init;
      if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0)) {
        throw new SteveClientError('STEVE_CLIENT_BAD_REQUEST', 'request', '"timeoutMs" expected a positive number of milliseconds');
      }
      if (init.stream !== undefined && typeof init.stream !== 'boolean') throw new SteveClientError('STEVE_CLIENT_BAD_REQUEST', 'request', '"stream" expected a boolean');
      const prepared = prepareRequest(origin, target, init);
      const mayStream = streaming && init.stream !== false;
      // Without streaming, a request that cannot fit one envelope is refused before any session or sequence.
      if (!mayStream && prepared.tooLargeForRecord) throw tooLargeForRecord();
      const head = mayStream ? encodeRequestPlaintext(prepared, prepared.body, 'head') : null;
      const streams = (live: LiveSession): boolean => head !== null && live.session.extensions.includes(STREAM_EXTENSION);
      const admit = (live: LiveSession): SteveClientError | undefined => {
        if (streams(live)) {
          return head!.length > MAX_STREAM_CHUNK_BYTES
            ? new SteveClientError('STEVE_CLIENT_TOO_LARGE', 'request', `the request head is over ${MAX_STREAM_CHUNK_BYTES} bytes (stream.md §5)`)
            : undefined;
        }
        return prepared.tooLargeForRecord ? tooLargeForRecord() : undefined;
      };
      for (let attempt = 1; ; attempt++) {
        const { live, sequence, streamed } = await acquire(init.signal, admit, streams);
        const hold = { handedOver: false };
        try {
          return streamed ? await streamExchange(live, sequence, prepared, head!, init, hold) : await exchange(live, sequence, prepared, init);
        } catch (error) {
          const resendable = resend === 'all' || (resend === 'idempotent' && IDEMPOTENT_METHODS.has(prepared.method));
          if (attempt < MAX_ATTEMPTS && resendable && prepared.bodyStream === null && !init.signal?.aborted && isUnknownSession(error)) continue;
          throw error;
        } finally {
          if (!hold.handedOver) release(live, sequence, streamed);
        }
      }
    },
    receiptFor(response) {
      return receipts.get(response);
    },
    get lastReceipt() {
      return lastReceipt;
    },
    endSession() {
      if (current !== undefined) retire(current);
    },
    close() {
      closed = true;
      for (const waiter of queue.splice(0)) waiter.reject(new SteveClientError('STEVE_CLIENT_CLOSED', 'request', 'the client was closed'));
      if (current !== undefined) retire(current);
    },
  };
}

