/**
 * The STEVE v2 server (specs/steve.md §2-§7), with legacy v1 (§8) beside it: the HTTP handlers for
 * `/e2p/v2/session`, `/e2p/v2/confirm`, `/e2p/v2/request`, their CORS preflight, and the v1 endpoints.
 * The agent routes requests here (`claims`) and counts what `handle` reports; this file never imports
 * the agent or the NSM: attestation is the `attest(nonce, userData)` function it is given.
 *
 * `/e2p/v2/stream` (our extension `stream-1`, steve/protocol/stream.md) is stream-endpoint.ts, routed
 * from here when `streaming` is on (the default), with the binding's sixth field `extensions`.
 *
 * Per request, cheapest checks first and nothing buffered before its limit is known: method, media
 * type, declared length (413), the body's first byte (400 unless it opens the endpoint's CBOR map), the
 * body under a running count and a deadline, the strict CBOR decode
 * (400), the session (401 unknown or expired, 425 unconfirmed), the replay window (409, checked before
 * and recorded only after the AEAD opened, so a forged record burns no sequence), the AEAD (401), the
 * plaintext (400). Only then is the app called; its answer (or the proxy's own 502/504) is sealed under
 * the request's sequence and written without joining the body into one buffer.
 *
 * Decisions (ours; each also cited where it is made):
 * - §7 lists "sequence 0 is only for confirmation" in the replay row: sequence 0 on /request is 409.
 * - A second confirmation of a confirmed session is 409 (its sequence 0 was used).
 * - A record that does not open leaves the session in place (401; the client ends it itself, §6), so a
 *   party that merely saw a session id cannot close it by sending garbage. A confirmation that opens
 *   but carries the wrong transcript hash drops the session (401).
 * - Requests must be `Content-Type: application/cbor` (§2); anything else is 400 protocol_error. A
 *   cross-site page thus cannot use a CORS-simple request: the browser must preflight.
 * - `x-forwarded-proto: https` to the app: the client spoke from a secure context (service workers
 *   require one) over a confidential channel, whatever the host's hop was.
 */

import type { KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import {
  DIRECTION,
  MAX_CONFIRMATION_REQUEST_BYTES,
  MAX_REQUEST_ENVELOPE_BYTES,
  MAX_SERVER_RESPONSE_ENVELOPE_BYTES,
  MAX_SESSION_REQUEST_BYTES,
  ENVELOPE_ENTRIES,
  SESSION_REQUEST_ENTRIES,
  expectMapPrefix,
  MESSAGE_TYPE,
  SESSION_ID_BYTES,
  TAG_BYTES,
  constantTimeEqual,
  decodeAppRequest,
  decodeEnvelope,
  decodeSessionRequest,
  encodeAppResponse,
  encodeBindingUserData,
  encodeEnvelope,
  encodeSessionResponse,
  openRecord,
  recordAad,
  recordNonce,
  sealRecord,
  STREAM_EXTENSION,
  STREAM_MEDIA_TYPE,
  STREAM_PATH,
  wipeSessionKeys,
  type KeyExchange,
  type SessionKeys,
  type TranscriptInput,
  type Suite,
} from '../protocol/index.js';
import { SteveError } from '../errors.js';
import { nodeAesGcm, type ServerAead } from './aead-node.js';
import { createMemoryBudget, readBody } from './body.js';
import { nodeDeriveSessionKeys, nodeTranscriptHash } from './kdf-node.js';
import { V1_CREATE_PATH, createLegacyV1, type LegacyV1 } from './legacy-v1.js';
import { ReplyError, SERVER_REPLIES, replyFor, sendReply } from './replies.js';
import { nodeRandomBytes, publicRandomBytes } from './secret-bytes.js';
import { holdUntilClosed, sendPieces, DEFAULT_SEND_TIMEOUT_MS } from './send.js';
import { DEFAULT_MAX_SESSIONS, PENDING_TTL_SECONDS, createSessionTable, type Session } from './session-table.js';
import { DEFAULT_STREAM_IDLE_TIMEOUT_MS, createStreamEndpoint } from './stream-endpoint.js';
import { createUpstream, madeAnswer, type UpstreamAnswer } from './upstream.js';
import { appResponseHead, envelopeHead } from './wire.js';
import { nodeX25519Exchange } from './x25519-node.js';
import { nodeXwingExchange } from './xwing-node.js';

export const SESSION_PATH = '/e2p/v2/session';
export const CONFIRM_PATH = '/e2p/v2/confirm';
export const REQUEST_PATH = '/e2p/v2/request';
/** §5: clients give establishment 10 s; a session or confirmation body slower than that is abandoned. */
const ESTABLISH_BODY_TIMEOUT_MS = 10_000;
/** §5: the clients' default request timeout is 30 s. */
const REQUEST_BODY_TIMEOUT_MS = 30_000;
/**
 * Ours: bytes of request bodies and answers held at once by the whole server: eight 32 MiB envelopes.
 * Over it a request is 429 busy (a failed request, not a failed session, §6). Request bodies count as
 * they arrive, until their request is done with them; answers count from their first body byte until
 * they have left the process or their connection closed (send.ts).
 */
export const DEFAULT_MAX_BUFFERED_BYTES = 8 * MAX_REQUEST_ENVELOPE_BYTES;
/** An answer up to this size goes out as one buffer; larger ones as their pieces (no join). */
const SINGLE_WRITE_MAX_BYTES = 64 * 1024;
/** Ours: how often expired sessions are reclaimed in the background (lookups check expiry themselves). */
const SWEEP_INTERVAL_MS = 10_000;
const CBOR = 'application/cbor';
/** A body's first bytes must open the endpoint's map (§3): anything else is refused before it is read. */
const SESSION_REQUEST_PREFIX = (chunk: Uint8Array): void => expectMapPrefix(chunk, SESSION_REQUEST_ENTRIES, 'session request');
const ENVELOPE_PREFIX = (chunk: Uint8Array): void => expectMapPrefix(chunk, ENVELOPE_ENTRIES, 'envelope');
/** Read only: the extra headers of a deployment without CORS. */
const NO_HEADERS: Record<string, string> = Object.freeze({});

export type SteveRoute = 'steve_session' | 'steve_confirm' | 'steve_request' | 'steve_stream' | 'steve_preflight' | 'steve_v1_key' | 'steve_v1_request' | 'steve_other';

export interface SteveServerOptions {
  /** The deployment's one suite (§1: no negotiation). */
  suite: Suite;
  /** The app's base URL (http://host:port/). */
  upstream: string;
  /** Asks the NSM for a document with this nonce and user_data (the agent's bounded queue). */
  attest: (nonce: Uint8Array, userData: Uint8Array) => Promise<Uint8Array>;
  logger: Logger;
  /** Exact origins allowed on /e2p/v2/* (§6); none: no CORS headers. */
  corsOrigins?: readonly string[];
  /** §7 default 10,000. */
  maxSessions?: number;
  /** Pending sessions held at once (session-table.ts); default min(1,000, maxSessions). */
  maxPendingSessions?: number;
  /** The enclave's Ed25519 identity key (private) for v1 (§8); without it v1 answers 404. */
  identityKey?: KeyObject | null;
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
  /** Fresh random bytes; injectable for tests. */
  random?: (length: number) => Uint8Array;
  /**
   * The AES-256-GCM every record is sealed and opened with: node:crypto's (`nodeAesGcm`) by default; the
   * agent passes its native one (agent/aes-gcm-native.ts), which does a record in one call.
   */
  aead?: ServerAead;
  /**
   * The handshake's X25519, transcript hash and key schedule: node:crypto's (`nodeHandshake`) by default;
   * the agent passes its native one (agent/handshake-native.ts). X-Wing's exchange is always
   * `nodeXwingExchange`.
   */
  handshake?: ServerHandshake;
  upstreamTimeoutMs?: number;
  maxBufferedBytes?: number;
  /** A socket that takes no answer bytes for this long is closed (send.ts); default 30 s. */
  sendTimeoutMs?: number;
  /** Tests only: legacy v1's replay cache size and per-token quota (legacy-v1.ts). */
  legacyV1Limits?: { replayCacheEntries: number; maxRequestsPerToken: number };
  /** Told the kind of every failed call to the app (metrics). */
  onUpstreamError?: (kind: string) => void;
  /**
   * Our stream extension `stream-1` (stream-endpoint.ts, steve/protocol/stream.md); default on. On, every
   * session's binding lists it and /e2p/v2/stream answers; off, the five-field binding of §5 and 404.
   */
  streaming?: boolean;
  /** A stream on which no record moved either way for this long is ended (stream.md §5); default 60 s. */
  streamIdleTimeoutMs?: number;
}

/** What a handshake computes (§4-§5), besides X-Wing's exchange and the attestation. */
export interface ServerHandshake {
  /** The X25519 suite's exchange (its `serverRespond` is what the server calls). */
  x25519: KeyExchange;
  /** transcript_hash (§4), as the protocol's `transcriptHash`. */
  transcriptHash(input: TranscriptInput): Uint8Array;
  /** The session keys (§4), as the protocol's `deriveSessionKeys`; zeroes `sharedSecret`. */
  deriveSessionKeys(sharedSecret: Uint8Array, transcriptHash: Uint8Array): SessionKeys;
}

/** The handshake on node:crypto. */
export const nodeHandshake: ServerHandshake = Object.freeze({
  x25519: nodeX25519Exchange,
  transcriptHash: nodeTranscriptHash,
  deriveSessionKeys: nodeDeriveSessionKeys,
});

export interface SteveServer {
  /** True for what STEVE answers: every `/e2p/` path, and any request carrying a v1 `X-E2P-Key`. */
  claims(req: IncomingMessage, pathname: string): boolean;
  /** `pathname`: the request target's path (the agent parses the target once). */
  handle(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<{ route: SteveRoute; status: number }>;
  /** Sessions in the table (pending and confirmed). */
  readonly sessions: number;
  /** Sessions awaiting their confirmation. */
  readonly pendingSessions: number;
  /** Sessions evicted to make room since start. */
  readonly evictedSessions: number;
  /** Bytes of request bodies and answers held against the memory budget now (a fixed reservation per open stream). */
  readonly bufferedBytes: number;
  /** Streams open now (/e2p/v2/stream). */
  readonly openStreams: number;
  /**
   * Whether `socket` carries an open stream: its upload arrives for as long as the client sends records,
   * so the HTTP server's deadline for a whole request must not end it (stream.md §5: the stream's idle
   * timeout does).
   */
  carriesStream(socket: unknown): boolean;
  close(): Promise<void>;
}

function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

function requireCbor(req: IncomingMessage): void {
  if (req.headers['content-type'] !== CBOR && mediaType(req) !== CBOR) throw new SteveError('STEVE_PROTOCOL', 'Content-Type is not application/cbor');
}

function requireStreamType(req: IncomingMessage): void {
  if (req.headers['content-type'] !== STREAM_MEDIA_TYPE && mediaType(req) !== STREAM_MEDIA_TYPE) throw new SteveError('STEVE_PROTOCOL', `Content-Type is not ${STREAM_MEDIA_TYPE}`);
}

function sendCbor(res: ServerResponse, body: Uint8Array, headers: Record<string, string>): void {
  res.writeHead(200, { ...headers, 'content-type': CBOR, 'content-length': String(body.length), 'cache-control': 'no-store' });
  res.end(body);
}

export function createSteveServer(options: SteveServerOptions): SteveServer {
  const { suite, attest } = options;
  const logger = options.logger;
  const now = options.now ?? Date.now;
  const random = options.random ?? nodeRandomBytes;
  /** Session ids are public: by default from the pooled generator (secret-bytes.ts), else the injected one. */
  const randomId = options.random ?? publicRandomBytes;
  const handshake = options.handshake ?? nodeHandshake;
  const exchange: KeyExchange = suite === 'X25519' ? handshake.x25519 : nodeXwingExchange;
  if (exchange.suite !== suite) throw new SteveError('STEVE_SUITE', `unknown suite ${String(suite)}`);
  const corsOrigins = options.corsOrigins ?? [];
  const table = createSessionTable({
    maxSessions: options.maxSessions ?? DEFAULT_MAX_SESSIONS,
    ...(options.maxPendingSessions !== undefined ? { maxPendingSessions: options.maxPendingSessions } : {}),
    now,
  });
  const maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  const budget = createMemoryBudget(maxBufferedBytes);
  const sendTimeoutMs = options.sendTimeoutMs ?? DEFAULT_SEND_TIMEOUT_MS;
  const aead = options.aead ?? nodeAesGcm;
  const upstream = createUpstream({
    url: options.upstream,
    forwardedProto: 'https',
    ...(options.upstreamTimeoutMs !== undefined ? { timeoutMs: options.upstreamTimeoutMs } : {}),
    onError: (kind, err) => {
      options.onUpstreamError?.(kind);
      logger.warn({ kind, err: { code: (err as { code?: string } | null)?.code } }, 'app call failed');
    },
  });
  const v1: LegacyV1 | null =
    options.identityKey === undefined || options.identityKey === null ? null : createLegacyV1({ identityKey: options.identityKey, random, now, upstream, budget, sendTimeoutMs, ...options.legacyV1Limits });
  const streaming = options.streaming ?? true;
  /** The binding's sixth field (stream.md §1); none when streaming is off. */
  const extensions = streaming ? [STREAM_EXTENSION] : undefined;
  const streams = createStreamEndpoint({
    table,
    budget,
    aead,
    upstream,
    logger,
    sendTimeoutMs,
    idleTimeoutMs: options.streamIdleTimeoutMs ?? DEFAULT_STREAM_IDLE_TIMEOUT_MS,
    preambleTimeoutMs: REQUEST_BODY_TIMEOUT_MS,
    lookup: (sessionId) => lookup(sessionId),
    maxReservedBytes: Math.floor(maxBufferedBytes / 2),
  });
  const sweeper = setInterval(() => table.purgeExpired(), SWEEP_INTERVAL_MS);
  sweeper.unref();

  /** §6: CORS on /e2p/v2/* only, for exact configured origins; nothing at all without a list. */
  function corsHeaders(req: IncomingMessage): Record<string, string> {
    if (corsOrigins.length === 0) return NO_HEADERS;
    const origin = req.headers.origin;
    if (origin !== undefined && corsOrigins.includes(origin)) return { 'access-control-allow-origin': origin, vary: 'Origin' };
    return { vary: 'Origin' };
  }

  function lookup(sessionId: Uint8Array): Session {
    const session = table.get(sessionId);
    if (session === undefined) throw new SteveError('STEVE_SESSION_INVALID', 'unknown or expired session');
    return session;
  }

  // -------------------------------------------------------------------------------------------------
  // /e2p/v2/session (§5 steps 1-2)

  async function createSession(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>, state: { bodyRead: boolean }): Promise<number> {
    requireCbor(req);
    const { body, release } = await readBody(req, { maxBytes: MAX_SESSION_REQUEST_BYTES, timeoutMs: ESTABLISH_BODY_TIMEOUT_MS, budget, firstBytes: SESSION_REQUEST_PREFIX });
    state.bodyRead = true;
    try {
      const request = decodeSessionRequest(body);
      if (request.suite !== suite) throw new SteveError('STEVE_SUITE', `key_exchange ${request.suite} is not the deployment's ${suite}`);
      if (!table.reserve()) throw new SteveError('STEVE_BUSY', 'session table full');
      let keys: SessionKeys | undefined;
      let inserted = false;
      try {
        let sessionId = randomId(SESSION_ID_BYTES);
        while (table.has(sessionId)) sessionId = randomId(SESSION_ID_BYTES);
        sessionId = Uint8Array.from(sessionId);
        const { serverMaterial, sharedSecret } = exchange.serverRespond(request.clientKeyMaterial, random);
        const hash = handshake.transcriptHash({
          suite,
          clientNonce: request.clientNonce,
          clientKeyMaterial: request.clientKeyMaterial,
          serverKeyMaterial: serverMaterial,
          sessionId,
          contextHash: request.contextHash,
        });
        // Wipes the shared secret (§4), leaving no copy of it (kdf-node.ts).
        keys = handshake.deriveSessionKeys(sharedSecret, hash);
        const userData = encodeBindingUserData({ suite, sessionId, transcriptHash: hash, binder: keys.binder, ...(extensions !== undefined ? { extensions } : {}) });
        // The binder is only for the document; the server has no other use for it.
        keys.binder.fill(0);
        let document: Uint8Array;
        try {
          document = await attest(request.clientNonce, userData);
        } catch (err) {
          if (err instanceof SteveError && err.code === 'STEVE_BUSY') throw err;
          throw new ReplyError(SERVER_REPLIES.attestationUnavailable, 'attestation failed', { cause: err });
        }
        if (res.destroyed) throw new ReplyError(SERVER_REPLIES.internal, 'client went away during attestation');
        table.insert({ id: sessionId, suite, keys, transcriptHash: hash });
        inserted = true;
        sendCbor(
          res,
          encodeSessionResponse({ suite, sessionId, serverKeyMaterial: serverMaterial, attestationDocument: document, expiresInSeconds: PENDING_TTL_SECONDS }),
          headers,
        );
        return 200;
      } catch (err) {
        if (!inserted) {
          table.unreserve();
          if (keys !== undefined) wipeSessionKeys(keys);
        }
        throw err;
      }
    } finally {
      release();
    }
  }

  // -------------------------------------------------------------------------------------------------
  // /e2p/v2/confirm (§5 steps 4-5)

  async function confirm(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>, state: { bodyRead: boolean }): Promise<number> {
    requireCbor(req);
    const { body, release } = await readBody(req, { maxBytes: MAX_CONFIRMATION_REQUEST_BYTES, timeoutMs: ESTABLISH_BODY_TIMEOUT_MS, budget, firstBytes: ENVELOPE_PREFIX });
    state.bodyRead = true;
    try {
      const envelope = decodeEnvelope(body, { maxBytes: MAX_CONFIRMATION_REQUEST_BYTES });
      const session = lookup(envelope.sessionId);
      if (session.confirmed) throw new SteveError('STEVE_REPLAY', 'session already confirmed');
      // Sequence other than 0: STEVE_PROTOCOL, before any cryptography (record.ts).
      const plaintext = openRecord(
        aead,
        session.keys,
        { type: MESSAGE_TYPE.CONFIRMATION, direction: DIRECTION.C2S, sessionId: session.id, sequence: envelope.sequence },
        envelope.ciphertext,
      );
      if (!constantTimeEqual(plaintext, session.transcriptHash)) {
        table.drop(session);
        throw new SteveError('STEVE_SESSION_INVALID', 'confirmation does not carry the transcript hash; session dropped');
      }
      table.confirm(session);
      const sealed = sealRecord(
        aead,
        session.keys,
        { type: MESSAGE_TYPE.CONFIRMATION, direction: DIRECTION.S2C, sessionId: session.id, sequence: 0 },
        session.transcriptHash,
      );
      sendCbor(res, encodeEnvelope({ sessionId: session.id, sequence: 0, ciphertext: sealed }), headers);
      return 200;
    } finally {
      release();
    }
  }

  // -------------------------------------------------------------------------------------------------
  // /e2p/v2/request (§5 step 6)

  /** An answer sealed under its request's sequence: the envelope's pieces and their total length. */
  interface SealedAnswer {
    pieces: Uint8Array[];
    total: number;
  }

  /**
   * Seals `answer` under `sequence` (APPLICATION, server->client) as envelope pieces; null when the
   * envelope would be over MAX_SERVER_RESPONSE_ENVELOPE_BYTES (nothing is sealed then).
   */
  function seal(session: Session, sequence: number, answer: UpstreamAnswer): SealedAnswer | null {
    const head =
      answer.error !== undefined
        ? encodeAppResponse({ status: answer.status, headers: answer.headers, body: null, error: answer.error })
        : appResponseHead(answer.status, answer.headers, answer.bodyBytes);
    const plaintextLength = head.length + answer.bodyBytes;
    const ciphertextLength = plaintextLength + TAG_BYTES;
    const envelope = envelopeHead(session.id, sequence, ciphertextLength);
    const total = envelope.length + ciphertextLength;
    if (total > MAX_SERVER_RESPONSE_ENVELOPE_BYTES) return null;
    const nonce = recordNonce(session.keys.s2cIv, sequence);
    const aad = recordAad(MESSAGE_TYPE.APPLICATION, DIRECTION.S2C, session.id, sequence);
    // Sealed from its pieces, so the body is never joined first. A small answer goes out as one buffer (one
    // write: the native AEAD gives one already); a large one may go piece by piece (send.ts).
    const small = total <= SINGLE_WRITE_MAX_BYTES;
    const pieces = aead.sealPrefixedParts(session.keys.s2cKey, nonce, aad, answer.body.length === 0 ? [head] : [head, ...answer.body], envelope);
    return { pieces: small && pieces.length > 1 ? [Buffer.concat(pieces, total)] : pieces, total };
  }

  async function request(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>, state: { bodyRead: boolean }): Promise<number> {
    requireCbor(req);
    const { body, release } = await readBody(req, { maxBytes: MAX_REQUEST_ENVELOPE_BYTES, timeoutMs: REQUEST_BODY_TIMEOUT_MS, budget, firstBytes: ENVELOPE_PREFIX });
    state.bodyRead = true;
    let sealed: SealedAnswer;
    try {
      const envelope = decodeEnvelope(body, { maxBytes: MAX_REQUEST_ENVELOPE_BYTES });
      const session = lookup(envelope.sessionId);
      if (!session.confirmed) throw new SteveError('STEVE_SESSION_UNCONFIRMED', 'request before confirmation');
      const { sequence } = envelope;
      // §7: duplicate, too old, or 0 -> 409, decided on the public sequence before any cryptography.
      session.replay.check(sequence);
      const plaintext = openRecord(
        aead,
        session.keys,
        { type: MESSAGE_TYPE.APPLICATION, direction: DIRECTION.C2S, sessionId: session.id, sequence },
        envelope.ciphertext,
      );
      // Recorded only now that the record is authentic; nothing awaited between check and accept.
      session.replay.accept(sequence);
      const appRequest = decodeAppRequest(plaintext);
      // §5: a client keeps at most 64 outstanding; more on one session is busy, not a failed session.
      if (!table.retain(session)) throw new SteveError('STEVE_BUSY', 'too many requests in flight on this session');
      // Used only now: a request decoded and goes to the app (session-table.ts).
      table.touch(session);
      try {
        let answer = await upstream.forward(appRequest, { client: res, budget });
        // The request body is no longer needed: its budget goes back before the answer is written.
        release();
        if (answer.overBudget === true) throw new SteveError('STEVE_BUSY', 'answers in memory would pass the budget');
        let sealedAnswer = seal(session, sequence, answer);
        if (sealedAnswer === null) {
          budget.give(answer.held);
          options.onUpstreamError?.('too_large');
          logger.warn({ kind: 'too_large', bodyBytes: answer.bodyBytes }, 'app answer over the envelope cap');
          answer = madeAnswer(502, 'upstream_response_too_large');
          sealedAnswer = seal(session, sequence, answer)!;
        }
        sealed = sealedAnswer;
        // Counted until the answer has left the process or its connection is gone (send.ts).
        const held = answer.held;
        if (held > 0) holdUntilClosed(res, () => budget.give(held));
      } finally {
        table.release(session);
      }
    } finally {
      release();
    }
    res.writeHead(200, { ...headers, 'content-type': CBOR, 'content-length': String(sealed.total), 'cache-control': 'no-store' });
    const outcome = await sendPieces(res, sealed.pieces, sendTimeoutMs);
    if (outcome === 'stalled') logger.info({ route: 'steve_request', sendTimeoutMs }, 'client took no answer bytes in time; connection closed');
    return 200;
  }

  // -------------------------------------------------------------------------------------------------
  // /e2p/v2/stream (stream.md, ours; stream-endpoint.ts)

  async function stream(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>, state: { bodyRead: boolean }): Promise<number> {
    requireStreamType(req);
    // `state.bodyRead` stays false: the body is read as the exchange goes, so a refusal before the 200
    // reads and discards what is left for a moment before closing (replies.ts).
    void state;
    return streams.run(req, res, headers);
  }

  // -------------------------------------------------------------------------------------------------
  // Routing

  const V2_ENDPOINTS: Record<string, { route: SteveRoute; run: typeof request }> = {
    [SESSION_PATH]: { route: 'steve_session', run: createSession },
    [CONFIRM_PATH]: { route: 'steve_confirm', run: confirm },
    [REQUEST_PATH]: { route: 'steve_request', run: request },
    // Off: not routed at all, so the path is 404 like any unknown one.
    ...(streaming ? { [STREAM_PATH]: { route: 'steve_stream' as const, run: stream } } : {}),
  };

  function fail(req: IncomingMessage, res: ServerResponse, route: SteveRoute, err: unknown, headers: Record<string, string>, state: { bodyRead: boolean }): number {
    const reply = replyFor(err);
    const code = err instanceof SteveError ? err.code : undefined;
    // The detail stays here: messages name what was wrong, never key or plaintext bytes.
    if (reply.status >= 500) logger.error({ route, status: reply.status, code, err: { message: (err as Error).message, cause: ((err as Error).cause as { code?: string } | undefined)?.code } }, 'steve request failed');
    else logger.info({ route, status: reply.status, code, err: { message: (err as Error).message } }, 'steve request refused');
    // A body not read to its end is not drained: the connection closes after the answer.
    const mayHaveBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
    sendReply(res, reply, headers, !state.bodyRead && mayHaveBody ? req : undefined);
    return reply.status;
  }

  async function handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<{ route: SteveRoute; status: number }> {
    const state = { bodyRead: false };
    if (path.startsWith('/e2p/v2/')) {
      const headers = corsHeaders(req);
      if (req.method === 'OPTIONS') {
        const allowed = headers['access-control-allow-origin'] !== undefined;
        res.writeHead(204, {
          ...headers,
          ...(allowed ? { 'access-control-allow-methods': 'POST', 'access-control-allow-headers': 'content-type', 'access-control-max-age': '600' } : {}),
          'cache-control': 'no-store',
        });
        res.end();
        return { route: 'steve_preflight', status: 204 };
      }
      const endpoint = V2_ENDPOINTS[path];
      if (endpoint === undefined) return { route: 'steve_other', status: fail(req, res, 'steve_other', new ReplyError(SERVER_REPLIES.notFound, `no endpoint ${path}`), headers, state) };
      if (req.method !== 'POST') return { route: endpoint.route, status: fail(req, res, endpoint.route, new ReplyError(SERVER_REPLIES.methodNotAllowed, 'use POST'), headers, state) };
      try {
        return { route: endpoint.route, status: await endpoint.run(req, res, headers, state) };
      } catch (err) {
        return { route: endpoint.route, status: fail(req, res, endpoint.route, err, headers, state) };
      }
    }
    if (path === V1_CREATE_PATH) {
      if (v1 === null) return { route: 'steve_v1_key', status: fail(req, res, 'steve_v1_key', new ReplyError(SERVER_REPLIES.notFound, 'v1 disabled'), {}, state) };
      // v1 has no preflight: POST only.
      if (req.method !== 'POST') return { route: 'steve_v1_key', status: fail(req, res, 'steve_v1_key', new ReplyError(SERVER_REPLIES.methodNotAllowed, 'use POST'), { allow: 'POST' }, state) };
      try {
        return { route: 'steve_v1_key', status: await v1.createSharedKey(req, res, state) };
      } catch (err) {
        return { route: 'steve_v1_key', status: fail(req, res, 'steve_v1_key', err, {}, state) };
      }
    }
    if (!path.startsWith('/e2p/') && req.headers['x-e2p-key'] !== undefined && v1 !== null) {
      try {
        return { route: 'steve_v1_request', status: await v1.protectedRequest(req, res, state) };
      } catch (err) {
        return { route: 'steve_v1_request', status: fail(req, res, 'steve_v1_request', err, {}, state) };
      }
    }
    return { route: 'steve_other', status: fail(req, res, 'steve_other', new ReplyError(SERVER_REPLIES.notFound, `no endpoint ${path}`), {}, state) };
  }

  return {
    claims(req, pathname) {
      return pathname.startsWith('/e2p/') || (v1 !== null && req.headers['x-e2p-key'] !== undefined);
    },
    handle,
    get sessions() {
      return table.size;
    },
    get pendingSessions() {
      return table.pending;
    },
    get evictedSessions() {
      return table.evicted;
    },
    get bufferedBytes() {
      return budget.used;
    },
    get openStreams() {
      return streams.open;
    },
    carriesStream(socket) {
      return streams.carries(socket);
    },
    async close() {
      clearInterval(sweeper);
      streams.closeAll();
      table.clear();
      await upstream.close();
    },
  };
}
