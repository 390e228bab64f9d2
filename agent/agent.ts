/**
 * The agent process: wires the NSM, the manifest, `user_data`, the bounded NSM queue and metrics into
 * its listeners (specs/agent-http.md §1):
 * - public (default 0.0.0.0:8080): `/attestation`, `/.well-known/caution/health`, `/healthz`, and
 *   everything else for the STEVE proxy: until it is wired in, a 503 that says so, or, when explicitly
 *   configured, the app in plaintext;
 * - optional attestation-only listener (existing images' BOOTPROOFD_LISTEN_ADDR);
 * - internal (default 127.0.0.1:9090): `/metrics`.
 * `stop()` is the graceful shutdown: stop accepting, let in-flight requests finish within the deadline,
 * then cut what is left.
 */

import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { request as upstreamRequest } from 'undici';
import type { Nsm } from '../nsm/index.js';
import { createAttestationHandler } from './attestation.js';
import { createBoundedQueue } from './bounded-queue.js';
import type { AgentConfig, HostPort } from './config.js';
import { sendJson } from './http-util.js';
import type { Logger } from './log.js';
import type { Manifest } from './manifest.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createUserDataSource } from './user-data.js';

export interface AgentOptions {
  config: Pick<AgentConfig, 'listen' | 'attestationListen' | 'internalListen' | 'upstream' | 'metadataPath' | 'corsOrigins' | 'allowPlaintextFallback' | 'nsmConcurrency' | 'nsmQueueMax' | 'nsmTimeoutMs' | 'shutdownTimeoutMs' | 'nsm'>;
  nsm: Nsm;
  manifest: Manifest;
  logger: Logger;
}

export interface RunningAgent {
  /** Bound addresses, `host:port`. */
  addresses: { public: string; attestation: string | null; internal: string };
  metrics: Metrics;
  /** The Ed25519 identity key's public half (32 bytes), bound into user_data as `verifying_key`. */
  verifyingKey: Uint8Array;
  stop(): Promise<void>;
}

/** Hop-by-hop headers never forwarded (RFC 9110 §7.6.1, specs/steve.md §7). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'proxy-connection', 'host']);

/** Headers minus hop-by-hop ones, including those the Connection header names (RFC 9110 §7.6.1). */
function endToEndHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((token) => token.trim().toLowerCase())
      .filter((token) => token !== ''),
  );
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name) && !listed.has(name)) out[name] = value;
  }
  return out;
}

/**
 * The request target as a path on our own origin, or null. Only origin-form targets (`/path?query`)
 * are accepted: `//host/x` and absolute URLs would otherwise steer a proxy to another host.
 */
function originFormTarget(target: string | undefined): URL | null {
  if (target === undefined || !target.startsWith('/') || target.startsWith('//')) return null;
  try {
    return new URL(target, 'http://agent.invalid');
  } catch {
    return null;
  }
}

function identityKey(): { privateKey: KeyObject; verifyingKey: Uint8Array } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' });
  return { privateKey, verifyingKey: new Uint8Array(Buffer.from(jwk.x!, 'base64url')) };
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
  const metrics = createMetrics();
  const { verifyingKey } = identityKey();
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
  metrics.gauge('enclave_agent_steve_sessions', 'Open STEVE sessions.', () => 0);

  const upstreamOrigin = new URL(config.upstream).origin;

  async function forwardPlaintext(req: IncomingMessage, res: ServerResponse, url: URL): Promise<number> {
    const headers = endToEndHeaders(req.headers);
    headers['x-forwarded-proto'] = 'http';
    try {
      // Always the configured upstream's origin: only the path and query come from the request.
      const answer = await upstreamRequest(`${upstreamOrigin}${url.pathname}${url.search}`, {
        method: req.method as 'GET',
        headers,
        body: req.method === 'GET' || req.method === 'HEAD' ? null : req,
      });
      res.writeHead(answer.statusCode, endToEndHeaders(answer.headers));
      await pipeline(answer.body, res);
      return answer.statusCode;
    } catch (err) {
      metrics.countUpstreamError((err as { code?: string }).code ?? 'error');
      sendJson(res, 502, { error: 'upstream_unavailable' });
      return 502;
    }
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
      const url = originFormTarget(req.url);
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
        attestation(req, res, url).then(done, fail);
      } else if (url.pathname === '/.well-known/caution/health') {
        route = 'health';
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
        res.end('OK');
        done(200);
      } else if (url.pathname === '/healthz') {
        route = 'healthz';
        sendJson(res, 200, { status: 'ok', nsm: { mode: nsm.kind, lastError: lastNsmError }, upstream: config.upstream, sessions: 0 });
        done(200);
      } else if (!attestationOnly && config.allowPlaintextFallback) {
        route = 'plaintext';
        forwardPlaintext(req, res, url).then(done, fail);
      } else {
        route = 'steve';
        sendJson(res, attestationOnly ? 404 : 503, { error: attestationOnly ? 'not_found' : 'steve_unavailable' });
        done(attestationOnly ? 404 : 503);
      }
    };
  }

  /** Responses not yet finished; during shutdown they are told to close their connection. */
  const inFlight = new Set<ServerResponse>();
  let draining = false;
  const publicServer = createServer(handler(false));
  const attestationServer = config.attestationListen === null ? null : createServer(handler(true));
  const internalServer = createServer((req, res) => {
    if (req.url === '/metrics' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'cache-control': 'no-store' });
      res.end(metrics.render());
    } else sendJson(res, 404, { error: 'not_found' });
  });
  const servers = [publicServer, attestationServer, internalServer].filter((s): s is Server => s !== null);
  for (const server of servers) {
    // Headers must arrive promptly; bodies have their own deadlines per route.
    server.headersTimeout = 10_000;
    server.requestTimeout = 120_000;
  }

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
        logger.info({}, 'stopped');
      })();
      return stopping;
    },
  };
}
