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
 * establishes a fresh one while requests in flight finish on the old one. Nothing is ever retried or
 * replayed: each request is sent at most once, and its failure is the caller's to handle.
 *
 * Sequences. Application sequences start at 1 and increase; the answer must carry the same session id
 * and sequence. At most 64 requests are outstanding per session, counted as the server's replay window
 * counts them (ours): a new sequence is sent only while it is less than 64 above the oldest one still
 * outstanding, so no sequence can fall out of the window before it arrives. Requests beyond wait in a
 * FIFO queue. A request that timed out or was aborted no longer holds its place.
 *
 * Web-standard only (fetch, crypto.getRandomValues, AbortController, TextEncoder): runs in a browser, a
 * service worker, Deno and Node. Node callers may pass a faster `aead` and a node:crypto `verifier`.
 */

import { sha256 } from '@noble/hashes/sha2.js';
import type { P384Verifier, PcrProfile } from '../../nsm/verifier.js';
import {
  CONTEXT_HASH_BYTES,
  DIRECTION,
  MAX_APPLICATION_RESPONSE_BYTES,
  MAX_SEQUENCE,
  MESSAGE_TYPE,
  REPLAY_WINDOW_SIZE,
  constantTimeEqual,
  decodeAppResponse,
  decodeEnvelope,
  encodeEnvelope,
  isSuite,
  nobleAesGcm,
  openRecord,
  sealRecord,
  wipeSessionKeys,
  type Aead,
  type AppResponse,
  type RandomBytes,
  type Suite,
} from '../protocol/index.js';
import { buildResponse, prepareRequest, type SteveRequestInit } from './application.js';
import { SteveError } from '../errors.js';
import { SteveClientError } from './errors.js';
import { REQUEST_PATH, establishSession, type Session } from './establish.js';
import { createDeadline, httpError, postCbor, readCapped, type FetchFunction } from './http.js';
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
});

/** §6: these outer statuses end the session; every other failure keeps it. */
const SESSION_ENDING_STATUSES = new Set([400, 401, 409, 425]);

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
  requestTimeoutMs?: number;
  rotateAfterMs?: number;
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
  ended: boolean;
}

interface Waiter {
  resolve(slot: { live: LiveSession; sequence: number }): void;
  reject(error: unknown): void;
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

function describeTrust(trust: PcrTrust): string {
  return trust.policy === 'pinned' ? trust.profile : trust.result;
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
        current = { session, nextSequence: 1, outstanding: new Set(), ended: false };
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
      const waiter = queue.shift()!;
      const sequence = current.nextSequence++;
      current.outstanding.add(sequence);
      waiter.resolve({ live: current, sequence });
    }
  }

  function release(live: LiveSession, sequence: number): void {
    live.outstanding.delete(sequence);
    if (live.ended && live.outstanding.size === 0) wipeSessionKeys(live.session.keys);
    pump();
  }

  function acquire(signal: AbortSignal | null | undefined): Promise<{ live: LiveSession; sequence: number }> {
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

  async function exchange(live: LiveSession, sequence: number, prepared: ReturnType<typeof prepareRequest>, init: SteveRequestInit): Promise<Response> {
    const { session } = live;
    const timeoutMs = init.timeoutMs ?? requestTimeoutMs;
    const what = `${prepared.method} ${prepared.path}`;
    const deadline = createDeadline(timeoutMs, what, init.signal);
    try {
      deadline.check('request');
      const header = { type: MESSAGE_TYPE.APPLICATION, sessionId: session.sessionId, sequence } as const;
      const ciphertext = sealRecord(aead, session.keys, { ...header, direction: DIRECTION.C2S }, prepared.plaintext);
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
      const receipt: SteveReceipt = Object.freeze({
        sessionId: session.sessionIdHex,
        sequence,
        suite: session.suite,
        pcrTrust: describeTrust(session.pcrTrust),
        pcrPolicy: session.pcrTrust.policy,
        status: app.status,
        method: prepared.method,
        path: prepared.path,
        requestBytes: body.length,
        responseBytes: bytes.length,
        requestBodyBytes: prepared.bodyBytes,
        responseBodyBytes: app.body?.length ?? 0,
        sessionCreatedAtMs: session.createdAtMs,
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
      const prepared = prepareRequest(origin, target, init);
      const { live, sequence } = await acquire(init.signal);
      try {
        return await exchange(live, sequence, prepared, init);
      } finally {
        release(live, sequence);
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

