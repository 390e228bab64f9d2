/**
 * The server roles the benchmarks fork (bench/steve.mjs, bench/compare.mjs): the app, the plain reverse
 * proxy baseline, a buffering one (steve.mjs only) and the real agent, each a child process on
 * 127.0.0.1 port 0 that reports its address over IPC, answers CPU queries and dies with its parent. Run
 * as a script, it becomes the role named by --role; imported, it exports the sizes the roles serve and
 * `runRole` for a script that forks itself.
 *
 * It must not listen anywhere but loopback, and it never opens vsock.
 */

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { unsignedNsmAnswer } from './unsigned-nsm.mjs';

export const SMALL_BYTES = 1024;
/**
 * specs/steve.md §6: an envelope, either way, is at most 32 MiB (the agent answers a larger one with an
 * encrypted 502), so downloads leave 64 KiB and uploads 4 KiB for the framing around the body.
 */
export const BIG_DOWNLOAD_BYTES = 33_554_432 - 65_536;
export const BIG_UPLOAD_BYTES = 33_554_432 - 4096;
/** The largest answer of POST /echo/N: sized requests and responses stay small-message benchmarks. */
export const MAX_ECHO_BYTES = 1_048_576;

/** This file, for fork(). */
export const ROLE_SCRIPT = fileURLToPath(import.meta.url);

/**
 * Child processes: answer the parent's questions over IPC and die with it. `nsmCost` (the agent) answers
 * 'nsm-cost': the mock NSM's CPU per request, measured apart.
 */
function serveRole(address, extra = {}, nsmCost = async () => undefined) {
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message) => {
    // A normal exit, so that --cpu-prof writes its profile.
    if (message === 'exit') process.exit(0);
    if (message === 'cpu') {
      const usage = process.cpuUsage();
      process.send({ cpuMs: (usage.user + usage.system) / 1000 });
    }
    if (message === 'nsm-cost') void nsmCost().then((nsmCpuMs) => process.send({ nsmCpuMs }));
  });
  process.send({ address, ...extra });
}

async function listen(server) {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${server.address().port}`;
}

/**
 * POST /echo answers 1 KiB; POST /echo/N answers N bytes (N <= MAX_ECHO_BYTES); POST /upload answers
 * the byte count; GET /download/N answers N bytes; GET /stream/N streams N bytes (any N) and GET /sse/E/G
 * E events G ms apart. Request bodies are read and counted, never kept.
 */
async function runApp() {
  const big = randomBytes(BIG_DOWNLOAD_BYTES);
  const send = (res, status, type, body) => {
    res.writeHead(status, { 'content-type': type, 'content-length': String(body.length) });
    res.end(body);
  };
  const server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (chunk) => (bytes += chunk.length));
    req.on('end', () => {
      if (req.url === '/echo') {
        send(res, 200, 'application/octet-stream', big.subarray(0, SMALL_BYTES));
      } else if (req.url.startsWith('/echo/')) {
        const length = Number(req.url.slice('/echo/'.length));
        if (Number.isInteger(length) && length >= 0 && length <= MAX_ECHO_BYTES) send(res, 200, 'application/octet-stream', big.subarray(0, length));
        else send(res, 400, 'text/plain', Buffer.from('bad length'));
      } else if (req.url === '/upload') {
        send(res, 200, 'application/json', Buffer.from(JSON.stringify({ bytes })));
      } else if (req.url.startsWith('/download/')) {
        const length = Math.min(Number(req.url.slice('/download/'.length)), big.length);
        send(res, 200, 'application/octet-stream', big.subarray(0, length));
      } else if (req.url.startsWith('/stream/')) {
        streamBytes(res, Number(req.url.slice('/stream/'.length)), big);
      } else if (req.url.startsWith('/sse/')) {
        const [events, gapMs] = req.url.slice('/sse/'.length).split('/').map(Number);
        streamEvents(res, events, gapMs);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  serveRole(await listen(server));
}

/**
 * GET /stream/N: N bytes (no cap) in 64 KiB writes, each after the last drained, without content-length:
 * an app streaming a body larger than any buffer, in constant memory.
 */
function streamBytes(res, total, source) {
  if (!Number.isSafeInteger(total) || total < 0) {
    res.writeHead(400);
    res.end();
    return;
  }
  const CHUNK = 65_536;
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  let left = total;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(CHUNK, left);
      left -= n;
      if (!res.write(source.subarray(0, n))) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  res.on('close', () => (left = 0));
  pump();
}

/** GET /sse/E/G: E server-sent events, the first at once, then one every G ms (an LLM's tokens). */
function streamEvents(res, events, gapMs) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
  let sent = 0;
  const next = () => {
    if (res.destroyed) return;
    res.write(`data: token ${sent}\n\n`);
    sent++;
    if (sent >= events) res.end();
    else setTimeout(next, gapMs);
  };
  next();
}

/** The baseline: what a reverse proxy costs with the same HTTP stack and no encryption. */
async function runProxy({ upstream: upstreamText }) {
  const { Pool } = await import('undici');
  const upstream = new URL(upstreamText);
  const pool = new Pool(upstream.origin, { connections: 128, pipelining: 1 });
  const HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection', 'proxy-authorization', 'host']);
  const strip = (headers) => Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP.has(name)));
  const server = createServer(async (req, res) => {
    try {
      const answer = await pool.request({ path: req.url, method: req.method, headers: { ...strip(req.headers), host: upstream.host }, body: req.method === 'GET' || req.method === 'HEAD' ? null : req });
      res.writeHead(answer.statusCode, strip(answer.headers));
      for await (const chunk of answer.body) res.write(chunk);
      res.end();
    } catch {
      res.writeHead(502);
      res.end();
    }
  });
  server.keepAliveTimeout = 60_000;
  serveRole(await listen(server));
}

/**
 * A second baseline: a reverse proxy that buffers each body as STEVE must (it cannot forward a record it
 * has not authenticated), on the same undici dispatch API, without encryption or CBOR. Next to the agent
 * it shows what STEVE itself costs; next to the streaming proxy, what buffering saves on small bodies.
 * Forwards content-type only and answers 502 when the app fails: enough for /echo, not a general proxy.
 */
async function runBufferedProxy({ upstream: upstreamText }) {
  const { Pool } = await import('undici');
  const upstream = new URL(upstreamText);
  const pool = new Pool(upstream.origin, { connections: 128, pipelining: 1 });
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      const headers = { host: upstream.host, 'content-type': req.headers['content-type'] ?? 'application/octet-stream' };
      const answer = [];
      let status = 502;
      pool.dispatch(
        { path: req.url, method: req.method, headers, body },
        {
          onRequestStart() {},
          onResponseStart(_controller, statusCode) {
            status = statusCode;
          },
          onResponseData(_controller, chunk) {
            answer.push(chunk);
          },
          onResponseEnd() {
            const bytes = answer.length === 1 ? answer[0] : Buffer.concat(answer);
            res.writeHead(status, { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) });
            res.end(bytes);
          },
          onResponseError() {
            res.writeHead(502, { 'content-length': '0' });
            res.end();
          },
        },
      );
    });
  });
  server.keepAliveTimeout = 60_000;
  serveRole(await listen(server));
}

/**
 * The mock NSM, with a way to measure what it costs apart from the agent: the transport keeps the last
 * request it was given, and `cpuMsPerRequest()` replays that request NSM_COST_REPLAYS times in a loop and
 * returns the CPU per call (the mock answers within the call: CBOR, and for an attestation the document
 * and its ES384 signature). The agent's CPU per handshake minus this is the agent's own share; on hardware
 * the NSM does that work outside the agent's process. (Timing each call in place instead cost more than a
 * tenth of a handshake itself: process.cpuUsage() twice per call.)
 */
const NSM_COST_REPLAYS = 200;

function measuredMockNsm(createNsm, transport) {
  let last = null;
  const kept = {
    kind: transport.kind,
    request(bytes) {
      last = bytes;
      return transport.request(bytes);
    },
    close: () => transport.close(),
  };
  async function cpuMsPerRequest() {
    if (last === null) return undefined;
    const before = process.cpuUsage();
    for (let i = 0; i < NSM_COST_REPLAYS; i++) await transport.request(last);
    const spent = process.cpuUsage(before);
    return (spent.user + spent.system) / 1000 / NSM_COST_REPLAYS;
  }
  return { nsm: createNsm(kept), cpuMsPerRequest };
}

/**
 * The real agent (startAgent, mock NSM, fresh mock PKI) in front of the app; reports the mock root, and
 * on request the mock NSM's CPU per call, measured apart (measuredMockNsm). With `nsm: 'unsigned'` its
 * NSM answers as QEMU's does (unsigned-nsm.mjs): no signing in the agent's process, so its CPU per
 * handshake is its own plus the answer's CBOR; its documents verify nowhere (clients must not verify).
 */
async function runAgent({ upstream, suite, nsm: nsmKind = 'mock' }) {
  if (nsmKind !== 'mock' && nsmKind !== 'unsigned') throw new Error(`bench agent: --nsm is mock or unsigned, not ${JSON.stringify(nsmKind)}`);
  const { pino } = await import('pino');
  const { startAgent } = await import('../../dist/agent/agent.js');
  const { parseManifest } = await import('../../dist/agent/manifest.js');
  const { DEMO_MANIFEST_JSON } = await import('../../dist/agent/demo/manifest.js');
  const { createMockPki, createMockTransport, createNsm } = await import('../../dist/nsm/index.js');
  const pki = createMockPki();
  const transport = nsmKind === 'mock' ? createMockTransport({ pki, logger: { warn() {} } }) : { kind: 'mock', request: unsignedNsmAnswer, close() {} };
  const { nsm, cpuMsPerRequest } = measuredMockNsm(createNsm, transport);
  const agent = await startAgent({
    config: {
      listen: { host: '127.0.0.1', port: 0 },
      attestationListen: null,
      internalListen: { host: '127.0.0.1', port: 0 },
      upstream,
      metadataPath: null,
      corsOrigins: [],
      allowPlaintextFallback: false,
      // The shipped defaults (README "Configuration").
      nsmConcurrency: 4,
      nsmQueueMax: 256,
      nsmTimeoutMs: 10_000,
      shutdownTimeoutMs: 2000,
      nsm: 'mock',
      deployment: 'test',
      keyExchange: suite,
      maxSessions: 10_000,
    },
    nsm,
    manifest: parseManifest(new TextEncoder().encode(DEMO_MANIFEST_JSON), 'demo manifest'),
    logger: pino({ level: 'silent' }),
  });
  serveRole(agent.addresses.public, { rootDer: Buffer.from(pki.root.der).toString('base64') }, cpuMsPerRequest);
}

/** Becomes the role: app, proxy or buffered-proxy (options.upstream), or agent (options.upstream, options.suite, options.nsm). */
export async function runRole(role, options = {}) {
  if (role === 'app') await runApp();
  else if (role === 'proxy') await runProxy(options);
  else if (role === 'buffered-proxy') await runBufferedProxy(options);
  else if (role === 'agent') await runAgent({ upstream: options.upstream, suite: options.suite ?? 'X25519', nsm: options.nsm });
  else throw new Error(`unknown role ${JSON.stringify(role)}`);
}

if (process.argv[1] === ROLE_SCRIPT) {
  const { values } = parseArgs({ options: { role: { type: 'string' }, upstream: { type: 'string' }, suite: { type: 'string' }, nsm: { type: 'string' } }, strict: true });
  await runRole(values.role, { upstream: values.upstream, suite: values.suite, nsm: values.nsm });
}
