/**
 * The agent process: wires the NSM, the manifest, `user_data`, the bounded NSM queue and metrics into
 * its listeners (specs/agent-http.md §1):
 * - public (default 0.0.0.0:8080): `/attestation`, `/.well-known/caution/health`, `/healthz`, the STEVE
 *   server for `/e2p/*` and v1 protected requests, and fail-closed routing for everything else
 *   (specs/steve.md §6): 403 `e2e_required` without contacting the app, except the bootstrap files a
 *   browser needs before it can speak STEVE, and except when the plaintext fallback is explicitly on;
 * - optional attestation-only listener (existing images' BOOTPROOFD_LISTEN_ADDR);
 * - internal (default 127.0.0.1:9090): `/metrics`.
 * `stop()` is the graceful shutdown: stop accepting, let in-flight requests finish within the deadline,
 * then cut what is left.
 */

import { generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { request as UndiciRequest } from 'undici';
import type { Nsm } from '../nsm/runtime.js';
import { isBootstrapRequest } from '../steve/protocol/routing.js';
import {
  SteveError,
  appRequestHeaders,
  connectionTokens,
  createSteveServer,
  DEFAULT_MAX_SESSIONS,
  DEFAULT_SEND_TIMEOUT_MS,
  isHopByHop,
  sendPieces,
  SERVER_REPLIES,
  sendReply,
  type SteveServerOptions,
} from '../steve/server/index.js';
import { appState } from './app-state.js';
import { createAttestationHandler } from './attestation.js';
import { createBoundedQueue } from './bounded-queue.js';
import type { AgentConfig, HostPort } from './config.js';
import { loadNativeAesGcm } from './aes-gcm-native.js';
import { loadNativeHandshake } from './handshake-native.js';
import { AgentError } from './errors.js';
import { parseRequestTarget, sendJson, type RequestTarget } from './http-util.js';
import type { Logger } from './log.js';
import type { Manifest } from './manifest.js';
import { createMetrics, type Metrics } from './metrics.js';
import { nsmCall } from './nsm-call.js';
import { createUserDataSource } from './user-data.js';

export interface AgentOptions {
  config: Pick<AgentConfig, 'listen' | 'attestationListen' | 'internalListen' | 'upstream' | 'metadataPath' | 'corsOrigins' | 'allowPlaintextFallback' | 'nsmConcurrency' | 'nsmQueueMax' | 'nsmTimeoutMs' | 'shutdownTimeoutMs' | 'nsm' | 'deployment'> &
    Partial<Pick<AgentConfig, 'keyExchange' | 'maxSessions' | 'maxPendingSessions' | 'maxBufferedBytes' | 'sendTimeoutMs' | 'streaming' | 'streamIdleTimeoutMs' | 'legacyV1'>>;
  nsm: Nsm;
  manifest: Manifest;
  logger: Logger;
  /** Tests only: the STEVE server's clock, randomness, app deadline and v1 cache limits. */
  steve?: Pick<SteveServerOptions, 'now' | 'random' | 'upstreamTimeoutMs' | 'legacyV1Limits'>;
  /** Tests only: the HTTP servers' deadline for a whole request and how often Node checks it (REQUEST_DEADLINE). */
  requestDeadline?: { timeoutMs: number; checkEveryMs: number };
}

export interface RunningAgent {
  /** Bound addresses, `host:port`. */
  addresses: { public: string; attestation: string | null; internal: string };
  metrics: Metrics;
  /** The Ed25519 identity key's public half (32 bytes), bound into user_data as `verifying_key`. */
  verifyingKey: Uint8Array;
  stop(): Promise<void>;
}

/** The app's response headers minus hop-by-hop ones, including those its Connection header lists (RFC 9110 §7.6.1). */
function responseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !isHopByHop(name, listed)) out[name] = value;
  }
  return out;
}

/**
 * `generateKeyPairSync` with only the public half encoded, as JWK by the generation itself: exporting a
 * generated KeyObject as JWK can deadlock Node 20 (steve/server/x25519-node.ts). @types/node has no such overload.
 */
const generateWithPublicJwk = generateKeyPairSync as unknown as (type: 'ed25519', options: { publicKeyEncoding: { format: 'jwk' } }) => { publicKey: JsonWebKey; privateKey: KeyObject };

/** The enclave's Ed25519 identity (v1, §8): a fresh key pair per start. */
export function identityKey(): { privateKey: KeyObject; verifyingKey: Uint8Array } {
  const { publicKey, privateKey } = generateWithPublicJwk('ed25519', { publicKeyEncoding: { format: 'jwk' } });
  return { privateKey, verifyingKey: new Uint8Array(Buffer.from(publicKey.x!, 'base64url')) };
}

/**
 * The public /healthz: a status only (ours). The upstream's URL, the NSM's last error and the app's
 * restarts tell an outsider how the enclave is built and how it fails; they are on the internal listener.
 */
const PUBLIC_HEALTH = Object.freeze({ status: 'ok' });

/**
 * Ours: a request's headers must arrive within 10 s and the whole request within 120 s (Node checks every
 * 30 s); bodies also have deadlines of their own per route. A STEVE stream's upload is the exception
 * (onClientError).
 */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_DEADLINE = { timeoutMs: 120_000, checkEveryMs: 30_000 };

/** What Node answers a broken or overdue request with when nothing listens for 'clientError' (Node 20's _http_server). */
const CLIENT_ERROR_RESPONSES: Record<string, string> = {
  HPE_HEADER_OVERFLOW: 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 'HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n',
  ERR_HTTP_REQUEST_TIMEOUT: 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n',
};
const BAD_REQUEST_RESPONSE = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';

/**
 * The servers' 'clientError': Node's own answer (above; then the socket is closed), except when the
 * request deadline passes on a socket that carries an open STEVE stream. Such an upload goes on for as long
 * as the client sends records, in constant memory, and the stream's idle timeout (stream.md §5) ends it
 * when nothing moves; the deadline would cut every upload longer than two minutes. Node checks a request
 * against the deadline once, so the stream is not asked again.
 */
function onClientError(carriesStream: (socket: unknown) => boolean): (err: Error & { code?: string }, socket: Duplex) => void {
  return (err, socket) => {
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' && carriesStream(socket)) return;
    // As Node decides: answer only while no response head of ours has gone out on the socket.
    const answering = (socket as Duplex & { _httpMessage?: { _headerSent?: boolean } })._httpMessage;
    if (socket.writable && answering?._headerSent !== true) socket.write(CLIENT_ERROR_RESPONSES[err.code ?? ''] ?? BAD_REQUEST_RESPONSE);
    socket.destroy(err);
  };
}

async function listen(server: Server, address: HostPort): Promise<string> {
  server.listen(address.port, address.host);
  await once(server, 'listening');
  const bound = server.address();
  if (typeof bound !== 'object' || bound === null) return String(bound);
  return `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
}

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const { config, nsm, manifest, logger } = options;
  // Fail closed twice: loadConfig refuses the combination, and so does the one place that wires an NSM in.
  if (config.deployment !== 'test' && nsm.kind !== 'device') {
    throw new AgentError('AGENT_CONFIG', `a production deployment refuses the ${nsm.kind} NSM (set deployment to test for tests and demos)`);
  }
  const metrics = createMetrics();
  const { privateKey, verifyingKey } = identityKey();
  const queue = createBoundedQueue({ concurrency: config.nsmConcurrency, maxQueued: config.nsmQueueMax });
  let lastNsmError: string | null = null;
  const userData = await createUserDataSource({
    manifestSha256: manifest.sha256,
    verifyingKey,
    metadataPath: config.metadataPath,
    onMetadataError: (err) => logger.error({ err: { code: err.code, message: err.message } }, 'metadata change rejected; keeping the last good metadata'),
  });
  const attestation = createAttestationHandler({
    nsm,
    queue,
    manifest,
    userData,
    metrics,
    corsOrigins: config.corsOrigins,
    nsmTimeoutMs: config.nsmTimeoutMs,
    onNsmError: (err) => {
      lastNsmError = (err as { code?: string }).code ?? 'error';
      logger.error({ err: { code: lastNsmError } }, 'NSM attestation failed');
    },
  });
  metrics.gauge('enclave_agent_nsm_queue_running', 'NSM calls in flight.', () => queue.running);
  metrics.gauge('enclave_agent_nsm_queue_waiting', 'NSM calls waiting.', () => queue.queued);

  /**
   * STEVE's per-session attestation (specs/steve.md §5 step 2) through the same bounded NSM queue,
   * deadline and metrics as /attestation. A full queue is STEVE_BUSY (429 busy); other failures reach
   * the server as they are (503).
   */
  async function steveAttest(nonce: Uint8Array, sessionUserData: Uint8Array): Promise<Uint8Array> {
    try {
      return await nsmCall(() => nsm.attest({ nonce, userData: sessionUserData }), {
        queue,
        timeoutMs: config.nsmTimeoutMs,
        observe: (seconds, outcome) => metrics.observeNsm(seconds, outcome),
      });
    } catch (err) {
      if (err instanceof AgentError && err.code === 'AGENT_BUSY') throw new SteveError('STEVE_BUSY', 'the NSM queue is full', { cause: err });
      lastNsmError = (err as { code?: string }).code ?? 'error';
      logger.error({ err: { code: lastNsmError } }, 'NSM attestation failed');
      throw err;
    }
  }

  const steve = createSteveServer({
    aead: loadNativeAesGcm(),
    handshake: loadNativeHandshake(),
    suite: config.keyExchange ?? 'X25519',
    maxSessions: config.maxSessions ?? DEFAULT_MAX_SESSIONS,
    upstream: config.upstream,
    corsOrigins: config.corsOrigins,
    attest: steveAttest,
    // Legacy v1 only when explicitly on: without its identity key the server answers v1 404.
    identityKey: config.legacyV1 === true ? privateKey : null,
    ...(config.maxPendingSessions !== undefined ? { maxPendingSessions: config.maxPendingSessions } : {}),
    ...(config.maxBufferedBytes !== undefined ? { maxBufferedBytes: config.maxBufferedBytes } : {}),
    ...(config.sendTimeoutMs !== undefined ? { sendTimeoutMs: config.sendTimeoutMs } : {}),
    ...(config.streaming !== undefined ? { streaming: config.streaming } : {}),
    ...(config.streamIdleTimeoutMs !== undefined ? { streamIdleTimeoutMs: config.streamIdleTimeoutMs } : {}),
    logger: logger.child({ component: 'steve' }),
    onUpstreamError: (kind) => metrics.countUpstreamError(kind),
    ...options.steve,
  });
  metrics.gauge('enclave_agent_steve_sessions', 'Open STEVE sessions (pending and confirmed).', () => steve.sessions);
  metrics.gauge('enclave_agent_steve_pending_sessions', 'STEVE sessions awaiting their confirmation.', () => steve.pendingSessions);
  metrics.gauge('enclave_agent_steve_evicted_sessions', 'STEVE sessions evicted to make room since start.', () => steve.evictedSessions);
  metrics.gauge('enclave_agent_steve_open_streams', 'STEVE streams open now (/e2p/v2/stream).', () => steve.openStreams);
  metrics.gauge('enclave_agent_steve_buffered_bytes', 'Bytes of STEVE request bodies and answers held in memory (the --max-buffered-bytes budget).', () => steve.bufferedBytes);

  const upstreamUrl = new URL(config.upstream);
  const upstreamOrigin = upstreamUrl.origin;
  const sendTimeoutMs = config.sendTimeoutMs ?? DEFAULT_SEND_TIMEOUT_MS;

  /**
   * The app in plaintext: the bootstrap files (with only the headers a static file needs: no cookie,
   * credential or custom header the host would see, steve/server/headers.ts), or anything when the
   * fallback is explicitly on. Forwarding headers are the agent's on both. The answer streams back
   * with backpressure, and a client that stops reading is dropped after the send timeout.
   */
  async function forwardPlaintext(req: IncomingMessage, res: ServerResponse, url: RequestTarget, bootstrap = false): Promise<number> {
    const headers = appRequestHeaders(req.headers, { host: upstreamUrl.host, proto: 'http', bootstrap });
    let answer: Awaited<ReturnType<typeof UndiciRequest>>;
    try {
      // undici on first use, not at start (issue 16), as its `default` export (steve/server/upstream.ts says why).
      const { request: upstreamRequest } = (await import('undici')).default;
      // Always the configured upstream's origin: only the path and query come from the request.
      answer = await upstreamRequest(`${upstreamOrigin}${url.pathname}${url.search}`, {
        method: req.method as 'GET',
        headers,
        body: bootstrap || req.method === 'GET' || req.method === 'HEAD' ? null : req,
      });
    } catch (err) {
      metrics.countUpstreamError((err as { code?: string }).code ?? 'error');
      sendJson(res, 502, { error: 'upstream_unavailable' });
      return 502;
    }
    res.writeHead(answer.statusCode, responseHeaders(answer.headers));
    try {
      if ((await sendPieces(res, answer.body, sendTimeoutMs)) !== 'sent') answer.body.destroy();
    } catch (err) {
      // The app's body failed midway: the client sees a cut answer (its length does not match).
      metrics.countUpstreamError((err as { code?: string }).code ?? 'error');
      res.destroy();
    }
    return answer.statusCode;
  }

  function handler(attestationOnly: boolean) {
    return (req: IncomingMessage, res: ServerResponse) => {
      let route = 'other';
      const done = (status: number) => metrics.countRequest(route, status);
      if (draining) res.setHeader('connection', 'close');
      inFlight.add(res);
      res.once('close', () => {
        inFlight.delete(res);
        if (draining) for (const s of servers) s.closeIdleConnections();
      });
      const url = parseRequestTarget(req.url);
      if (url === null) {
        sendJson(res, 400, { error: 'bad_request_target' }, { connection: 'close' });
        done(400);
        return;
      }
      const fail = (err: unknown) => {
        logger.error({ err: { message: (err as Error).message }, route }, 'request failed');
        sendJson(res, 500, { errors: ['internal error'] });
        done(500);
      };
      if (url.pathname === '/attestation') {
        route = 'attestation';
        attestation(req, res, url.search).then(done, fail);
      } else if (url.pathname === '/.well-known/caution/health') {
        route = 'health';
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
        res.end('OK');
        done(200);
      } else if (url.pathname === '/healthz') {
        route = 'healthz';
        // Public: a status only. The details are for the operator, on the internal listener.
        sendJson(res, 200, PUBLIC_HEALTH);
        done(200);
      } else if (attestationOnly) {
        route = 'other';
        sendJson(res, 404, { error: 'not_found' });
        done(404);
      } else if (steve.claims(req, url.pathname)) {
        // specs/steve.md §6: E2P behaviour does not depend on the plaintext fallback.
        route = 'steve';
        steve.handle(req, res, url.pathname).then((result) => {
          route = result.route;
          done(result.status);
        }, fail);
      } else if (isBootstrapRequest(req.method, url.pathname, url.search)) {
        route = 'bootstrap';
        forwardPlaintext(req, res, url, true).then(done, fail);
      } else if (config.allowPlaintextFallback) {
        route = 'plaintext';
        forwardPlaintext(req, res, url).then(done, fail);
      } else {
        // Fail closed (specs/steve.md §6): the app is not contacted.
        route = 'e2e_required';
        sendReply(res, SERVER_REPLIES.e2eRequired);
        done(403);
      }
    };
  }

  /** Responses not yet finished; during shutdown they are told to close their connection. */
  const inFlight = new Set<ServerResponse>();
  let draining = false;
  const deadline = options.requestDeadline ?? REQUEST_DEADLINE;
  const serverOptions = { headersTimeout: Math.min(HEADERS_TIMEOUT_MS, deadline.timeoutMs), requestTimeout: deadline.timeoutMs, connectionsCheckingInterval: deadline.checkEveryMs };
  const publicServer = createServer(serverOptions, handler(false));
  const attestationServer = config.attestationListen === null ? null : createServer(serverOptions, handler(true));
  const internalServer = createServer(serverOptions, (req, res) => {
    if (req.url === '/metrics' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'cache-control': 'no-store' });
      res.end(metrics.render());
    } else if (req.url === '/healthz' && req.method === 'GET') {
      // `app` only under init (agent/app-state.ts): the app's supervisor state, restarts and last exit.
      const app = appState.current();
      sendJson(res, 200, { status: 'ok', nsm: { mode: nsm.kind, lastError: lastNsmError }, upstream: config.upstream, sessions: steve.sessions, ...(app !== null ? { app } : {}) });
    } else sendJson(res, 404, { error: 'not_found' });
  });
  const servers = [publicServer, attestationServer, internalServer].filter((s): s is Server => s !== null);
  const clientError = onClientError((socket) => steve.carriesStream(socket));
  for (const server of servers) server.on('clientError', clientError);

  const addresses = {
    public: await listen(publicServer, config.listen),
    attestation: attestationServer === null ? null : await listen(attestationServer, config.attestationListen!),
    internal: await listen(internalServer, config.internalListen),
  };
  logger.info({ addresses, nsm: nsm.kind, manifestSha256: manifest.sha256 }, 'agent listening');

  let stopping: Promise<void> | undefined;
  return {
    addresses,
    metrics,
    verifyingKey,
    stop() {
      stopping ??= (async () => {
        logger.info({ deadlineMs: config.shutdownTimeoutMs }, 'shutting down');
        draining = true;
        for (const res of inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
        const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
        for (const s of servers) s.closeIdleConnections();
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<'deadline'>((resolve) => (timer = setTimeout(() => resolve('deadline'), config.shutdownTimeoutMs)));
        if ((await Promise.race([closed, deadline])) === 'deadline') {
          logger.warn({}, 'shutdown deadline reached; closing remaining connections');
          for (const s of servers) s.closeAllConnections();
          await closed;
        }
        clearTimeout(timer);
        await steve.close();
        logger.info({}, 'stopped');
      })();
      return stopping;
    },
  };
}
