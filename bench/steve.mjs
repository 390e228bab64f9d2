/**
 * Throughput of the STEVE proxy against a plain reverse proxy measured in the same run (STYLE.md "Tests
 * and speed"). Plain JavaScript over the build (`npm run build` first); loopback only; bounded in time
 * and requests; a watchdog ends every process if anything hangs.
 *
 * Three processes besides this one (forked from this file with --role), so the proxy under test has a
 * CPU of its own as far as the machine allows:
 *   - app:   a node:http server. POST /echo answers 1 KiB; POST /upload answers the byte count;
 *            GET /download/N answers N bytes.
 *   - proxy: the baseline, a plain reverse proxy in a few lines (node:http server, one undici Pool to the
 *            app, bodies streamed both ways, hop-by-hop headers dropped).
 *   - agent: the real agent (startAgent, mock NSM, fresh mock PKI) in front of the same app.
 * This process is the load generator: an undici Pool with one connection per client, and for STEVE a
 * protocol-level client (the protocol core with node:crypto AES-GCM and X25519) that establishes
 * --sessions sessions before timing (document and binding verified on the first) and spreads the
 * clients over them.
 *
 * Phases: 1 KiB request and 1 KiB response at --clients concurrent clients through (a) the app
 * directly, (b) the plain proxy, (c) STEVE: requests/s, p50/p99 latency, and CPU per request of the
 * proxy process and of this client; then 32 MiB bodies (upload, download) through (b) and (c) in MB/s.
 * The printed ratio c/b is the number to compare across machines (target >= 0.6 for 1 KiB).
 *
 *   npm run build && node bench/steve.mjs [--duration-s 3] [--rounds 3] [--max-requests 50000] [--clients 64]
 *     [--sessions 8] [--big-count 6] [--warmup-s 3] [--suite X25519|XWING-DRAFT10] [--profile DIR]
 */

import { randomBytes } from 'node:crypto';
import { execFileSync, fork } from 'node:child_process';
import { createServer } from 'node:http';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    upstream: { type: 'string' },
    suite: { type: 'string', default: 'X25519' },
    'duration-s': { type: 'string', default: '3' },
    'max-requests': { type: 'string', default: '50000' },
    clients: { type: 'string', default: '64' },
    sessions: { type: 'string', default: '8' },
    'big-count': { type: 'string', default: '6' },
    rounds: { type: 'string', default: '3' },
    'warmup-s': { type: 'string', default: '3' },
    /** Write a V8 CPU profile of the agent process (node --cpu-prof) into this directory. */
    profile: { type: 'string' },
    /**
     * auto: with taskset(1) and at least 2 CPUs, this load generator runs on CPU 0 and the servers
     * (app, proxy, agent) on the others, so the client's own crypto is not charged to the proxy under
     * test; off: every process floats over every CPU.
     */
    pin: { type: 'string', default: 'auto' },
  },
  strict: true,
});

const SMALL_BYTES = 1024;
/** §6: the authors' upstream cap; a request envelope is at most 32 MiB, so uploads leave 4 KiB for framing. */
const BIG_DOWNLOAD_BYTES = 33_554_432;
const BIG_UPLOAD_BYTES = 33_554_432 - 4096;
const REQUEST_TIMEOUT_MS = 30_000;

function positive(text, flag) {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`bench/steve: ${flag} expected a positive number, got ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return value;
}

/**
 * CPU sets for --pin auto: the load generator on CPU 0, the servers on the rest; null when pinning is
 * off or impossible (no taskset, one CPU). `taskset -a` moves every thread (libuv's pool, V8's helpers).
 */
function cpuLayout(mode) {
  if (mode === 'off') return null;
  if (mode !== 'auto') {
    process.stderr.write(`bench/steve: --pin expected auto or off, got ${JSON.stringify(mode)}\n`);
    process.exit(2);
  }
  const count = availableParallelism();
  if (count < 2) return null;
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
  } catch {
    return null;
  }
  return { client: '0', servers: count === 2 ? '1' : `1-${count - 1}` };
}

function pin(pid, cpus) {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/** Child processes: answer the parent's questions over IPC and die with it. */
function serveRole(address, extra = {}) {
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message) => {
    // A normal exit, so that --cpu-prof writes its profile.
    if (message === 'exit') process.exit(0);
    if (message === 'cpu') {
      const usage = process.cpuUsage();
      process.send({ cpuMs: (usage.user + usage.system) / 1000 });
    }
  });
  process.send({ address, ...extra });
}

async function listen(server) {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${server.address().port}`;
}

// ---------------------------------------------------------------------------------------------------
// Roles

async function runApp() {
  const small = randomBytes(SMALL_BYTES);
  const big = randomBytes(BIG_DOWNLOAD_BYTES);
  const server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (chunk) => (bytes += chunk.length));
    req.on('end', () => {
      if (req.url === '/echo') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(small.length) });
        res.end(small);
      } else if (req.url === '/upload') {
        const body = JSON.stringify({ bytes });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
        res.end(body);
      } else if (req.url.startsWith('/download/')) {
        const length = Math.min(Number(req.url.slice('/download/'.length)), big.length);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(length) });
        res.end(big.subarray(0, length));
      } else {
        res.writeHead(404);
        res.end();
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  serveRole(await listen(server));
}

/** The baseline: what a reverse proxy costs with the same HTTP stack and no encryption. */
async function runProxy() {
  const { Pool } = await import('undici');
  const upstream = new URL(args.upstream);
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

async function runAgent() {
  const { pino } = await import('pino');
  const { startAgent } = await import('../dist/agent/agent.js');
  const { parseManifest } = await import('../dist/agent/manifest.js');
  const { DEMO_MANIFEST_JSON } = await import('../dist/agent/demo/manifest.js');
  const { createMockPki, openMockNsm } = await import('../dist/nsm/index.js');
  const pki = createMockPki();
  const nsm = openMockNsm({ pki, logger: { warn() {} } });
  const agent = await startAgent({
    config: {
      listen: { host: '127.0.0.1', port: 0 },
      attestationListen: null,
      internalListen: { host: '127.0.0.1', port: 0 },
      upstream: args.upstream,
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
      keyExchange: args.suite,
      maxSessions: 10_000,
    },
    nsm,
    manifest: parseManifest(new TextEncoder().encode(DEMO_MANIFEST_JSON), 'demo manifest'),
    logger: pino({ level: 'silent' }),
  });
  serveRole(agent.addresses.public, { rootDer: Buffer.from(pki.root.der).toString('base64') });
}

// ---------------------------------------------------------------------------------------------------
// The load generator

async function runMain() {
  const DURATION_MS = positive(args['duration-s'], '--duration-s') * 1000;
  const MAX_REQUESTS = positive(args['max-requests'], '--max-requests');
  const CLIENTS = positive(args.clients, '--clients');
  const SESSIONS = positive(args.sessions, '--sessions');
  const BIG_COUNT = positive(args['big-count'], '--big-count');
  const ROUNDS = positive(args.rounds, '--rounds');
  const WARMUP_MS = positive(args['warmup-s'], '--warmup-s') * 1000;
  if (args.suite !== 'X25519' && args.suite !== 'XWING-DRAFT10') {
    process.stderr.write('bench/steve: --suite expected X25519 or XWING-DRAFT10\n');
    process.exit(2);
  }
  // Three small phases with warm-ups, two big phases of up to BIG_COUNT x 2 transfers of 32 MiB, start-up.
  const WATCHDOG_MS = 3 * (WARMUP_MS + ROUNDS * DURATION_MS) + 2 * BIG_COUNT * 2 * 10_000 + 60_000;
  const children = [];
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench/steve: still running after ${WATCHDOG_MS} ms; giving up\n`);
    for (const child of children) child.kill('SIGKILL');
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();

  const { Pool } = await import('undici');
  const steve = await import('../dist/steve/index.js');
  const { byteStringHead, envelopeHead, nodeAesGcm, nodeX25519Exchange, sealParts } = await import('../dist/steve/server/index.js');
  const { nodeP384Verifier, verifyAttestationDocument } = await import('../dist/nsm/index.js');

  const self = fileURLToPath(import.meta.url);
  function spawnRole(role, extra = [], execArgv = []) {
    const child = fork(self, ['--role', role, ...extra], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
    children.push(child);
    if (layout !== null) pin(child.pid, layout.servers);
    return new Promise((resolve, reject) => {
      child.once('message', (message) => resolve({ child, ...message }));
      child.once('exit', (code) => reject(new Error(`${role} exited with ${code}`)));
    });
  }
  function cpuMs(child) {
    return new Promise((resolve) => {
      child.once('message', (message) => resolve(message.cpuMs));
      child.send('cpu');
    });
  }

  const loadAtStart = loadavg()[0];
  const layout = cpuLayout(args.pin);
  const app = await spawnRole('app');
  const proxy = await spawnRole('proxy', ['--upstream', `http://${app.address}/`]);
  const agent = await spawnRole('agent', ['--upstream', `http://${app.address}/`, '--suite', args.suite], args.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', args.profile]);
  if (layout !== null) pin(process.pid, layout.client);
  const pools = [];
  const poolFor = (address, connections = CLIENTS) => {
    const pool = new Pool(`http://${address}`, { connections, pipelining: 1, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
    pools.push(pool);
    return pool;
  };

  async function post(pool, path, body, contentType) {
    const { statusCode, body: answer } = await pool.request({ path, method: 'POST', headers: { 'content-type': contentType }, body });
    const bytes = new Uint8Array(await answer.arrayBuffer());
    if (statusCode !== 200) throw new Error(`status ${statusCode}`);
    return bytes;
  }

  // STEVE sessions, established before any timing (§5), the first one checked end to end.
  const steveSessions = [];
  async function establish(pool, verify) {
    const exchange = args.suite === 'X25519' ? nodeX25519Exchange : steve.keyExchangeFor(args.suite);
    const random = (n) => new Uint8Array(randomBytes(n));
    const pair = exchange.generateClientKeyPair(random);
    const clientNonce = random(32);
    const contextHash = random(32);
    const reply = steve.decodeSessionResponse(await post(pool, '/e2p/v2/session', steve.encodeSessionRequest({ suite: args.suite, clientNonce, clientKeyMaterial: pair.material, contextHash }), 'application/cbor'));
    const transcriptHash = steve.transcriptHash({ suite: args.suite, clientNonce, clientKeyMaterial: pair.material, serverKeyMaterial: reply.serverKeyMaterial, sessionId: reply.sessionId, contextHash });
    const keys = steve.deriveSessionKeys(exchange.clientFinish(pair.secret, reply.serverKeyMaterial), transcriptHash);
    if (verify) {
      const verified = verifyAttestationDocument(reply.attestationDocument, { atMs: Date.now(), root: new Uint8Array(Buffer.from(agent.rootDer, 'base64')), expectedNonce: clientNonce, verifier: nodeP384Verifier });
      steve.checkBindingUserData(verified.userData, { suite: args.suite, sessionId: reply.sessionId, transcriptHash, binder: keys.binder });
    }
    const header = (sequence, direction, type) => ({ type, direction, sessionId: reply.sessionId, sequence });
    const sealed = steve.sealRecord(nodeAesGcm, keys, header(0, steve.DIRECTION.C2S, steve.MESSAGE_TYPE.CONFIRMATION), transcriptHash);
    const confirmation = steve.decodeEnvelope(await post(pool, '/e2p/v2/confirm', steve.encodeEnvelope({ sessionId: reply.sessionId, sequence: 0, ciphertext: sealed }), 'application/cbor'));
    steve.openRecord(nodeAesGcm, keys, header(0, steve.DIRECTION.S2C, steve.MESSAGE_TYPE.CONFIRMATION), confirmation.ciphertext);
    return { id: reply.sessionId, keys, next: 1, header, outstanding: new Set(), waiters: [] };
  }

  /**
   * The next sequence, kept within the server's 64-wide replay window (§7): a request may not be sent
   * while one 64 sequences older is still unanswered, or it (or that one) would arrive as too old.
   * "At most 64 outstanding" (§5) alone is not enough when one request stalls while the others go on.
   */
  async function takeSequence(session) {
    while (session.outstanding.size > 0 && session.next - Math.min(...session.outstanding) >= steve.REPLAY_WINDOW_SIZE) {
      await new Promise((resolve) => session.waiters.push(resolve));
    }
    const sequence = session.next++;
    session.outstanding.add(sequence);
    return sequence;
  }

  function settleSequence(session, sequence) {
    session.outstanding.delete(sequence);
    for (const wake of session.waiters.splice(0)) wake();
  }

  /**
   * One application request. The client frames like the server does (the envelope and the request
   * plaintext are written as a head followed by the body, sealed in pieces: no 32 MiB copies), then
   * checks everything the protocol says a client checks on the answer.
   */
  function requestHead(request) {
    const body = request.body ?? new Uint8Array(0);
    const withNull = steve.encodeAppRequest({ ...request, body: null });
    return body.length === 0 ? withNull : Buffer.concat([withNull.subarray(0, withNull.length - 1), byteStringHead(body.length)]);
  }

  async function steveCall(pool, session, request, expectBytes, head = requestHead(request)) {
    const sequence = await takeSequence(session);
    try {
      return await sealedCall(pool, session, request, expectBytes, head, sequence);
    } finally {
      settleSequence(session, sequence);
    }
  }

  async function sealedCall(pool, session, request, expectBytes, head, sequence) {
    const body = request.body ?? new Uint8Array(0);
    const c2s = session.header(sequence, steve.DIRECTION.C2S, steve.MESSAGE_TYPE.APPLICATION);
    const { parts, tag } = sealParts(session.keys.c2sKey, steve.recordNonce(session.keys.c2sIv, sequence), steve.recordAad(c2s.type, c2s.direction, c2s.sessionId, sequence), body.length === 0 ? [head] : [head, body]);
    const envelopeBytes = Buffer.concat([envelopeHead(session.id, sequence, head.length + body.length + steve.TAG_BYTES), ...parts, tag]);
    const envelope = steve.decodeEnvelope(await post(pool, '/e2p/v2/request', envelopeBytes, 'application/cbor'));
    if (envelope.sequence !== sequence || Buffer.compare(envelope.sessionId, session.id) !== 0) throw new Error('session id or sequence mismatch');
    const response = steve.decodeAppResponse(steve.openRecord(nodeAesGcm, session.keys, session.header(sequence, steve.DIRECTION.S2C, steve.MESSAGE_TYPE.APPLICATION), envelope.ciphertext));
    if (response.status !== 200) throw new Error(`inner status ${response.status}`);
    if (expectBytes !== undefined && (response.body?.length ?? 0) !== expectBytes) throw new Error(`inner body ${response.body?.length}`);
    return response;
  }

  const direct = poolFor(app.address);
  const plain = poolFor(proxy.address);
  const e2p = poolFor(agent.address);
  for (let i = 0; i < SESSIONS; i++) steveSessions.push(await establish(e2p, i === 0));

  const payload = new Uint8Array(randomBytes(SMALL_BYTES));
  const smallRequest = { method: 'POST', path: '/echo', headers: { 'content-type': 'application/octet-stream' }, body: payload };
  const smallHead = requestHead(smallRequest);
  const small = {
    a: (i) => post(direct, '/echo', payload, 'application/octet-stream').then((b) => check(b.length === SMALL_BYTES)),
    b: (i) => post(plain, '/echo', payload, 'application/octet-stream').then((b) => check(b.length === SMALL_BYTES)),
    // The request is encoded once, as (a) and (b) reuse their payload; sealing, framing and every check
    // of the answer happen per request.
    c: (i) => steveCall(e2p, steveSessions[i % SESSIONS], smallRequest, SMALL_BYTES, smallHead),
  };
  function check(ok) {
    if (!ok) throw new Error('wrong answer');
  }

  /** CLIENTS loops, each one request at a time (client i always uses session i mod SESSIONS). */
  async function load(run, durationMs, maxRequests, server) {
    const latencies = [];
    const errors = new Map();
    let issued = 0;
    const serverBefore = server === undefined ? 0 : await cpuMs(server);
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const deadline = started + durationMs;
    async function client(i) {
      while (issued < maxRequests && performance.now() < deadline) {
        issued += 1;
        const t0 = performance.now();
        try {
          await run(i);
          latencies.push(performance.now() - t0);
        } catch (err) {
          const key = err.code ?? err.message;
          errors.set(key, (errors.get(key) ?? 0) + 1);
        }
      }
    }
    await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i)));
    const elapsedS = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const serverCpuMs = server === undefined ? 0 : (await cpuMs(server)) - serverBefore;
    return { latencies, errors, issued, elapsedS, clientCpuMs: (cpu.user + cpu.system) / 1000, serverCpuMs };
  }

  /** Rounds of one path pooled: requests over total time, percentiles over all latencies, CPU over all requests. */
  function summarise(rounds) {
    const latencies = rounds.flatMap((r) => r.latencies).sort((x, y) => x - y);
    const at = (q) => (latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)]);
    const errors = new Map();
    for (const r of rounds) for (const [key, count] of r.errors) errors.set(key, (errors.get(key) ?? 0) + count);
    const issued = rounds.reduce((sum, r) => sum + r.issued, 0);
    return {
      requests: issued,
      errors: [...errors.values()].reduce((x, y) => x + y, 0),
      errorKinds: Object.fromEntries(errors),
      reqPerS: latencies.length / rounds.reduce((sum, r) => sum + r.elapsedS, 0),
      perRound: rounds.map((r) => r.latencies.length / r.elapsedS),
      p50: at(0.5),
      p99: at(0.99),
      clientCpuMs: rounds.reduce((sum, r) => sum + r.clientCpuMs, 0) / Math.max(1, issued),
      serverCpuMs: rounds.reduce((sum, r) => sum + r.serverCpuMs, 0) / Math.max(1, issued),
    };
  }

  /** BIG_COUNT transfers of 32 MiB one after another; MB/s = 10^6 bytes of body per second. */
  async function bulk(run, bytes) {
    const started = performance.now();
    for (let i = 0; i < BIG_COUNT; i++) await run();
    return (BIG_COUNT * bytes) / 1e6 / ((performance.now() - started) / 1000);
  }

  let exitCode = 0;
  try {
    // Warm up each path (the JIT needs a few seconds), then ROUNDS rounds of a, b, c in turn, so a
    // burst of other work on the machine lands on all three paths rather than on one.
    const paths = [
      ['a', app.child],
      ['b', proxy.child],
      ['c', agent.child],
    ];
    for (const [key] of paths) await load(small[key], WARMUP_MS, Infinity);
    const rounds = { a: [], b: [], c: [] };
    for (let round = 0; round < ROUNDS; round++) for (const [key, server] of paths) rounds[key].push(await load(small[key], DURATION_MS, MAX_REQUESTS, server));
    const results = Object.fromEntries(Object.entries(rounds).map(([key, list]) => [key, summarise(list)]));
    const upload = new Uint8Array(randomBytes(BIG_UPLOAD_BYTES));
    const bigPlain = poolFor(proxy.address, 1);
    const bigSteve = poolFor(agent.address, 1);
    const bigSession = await establish(bigSteve, false);
    const big = {
      bUp: await bulk(async () => check(JSON.parse(new TextDecoder().decode(await post(bigPlain, '/upload', upload, 'application/octet-stream'))).bytes === upload.length), upload.length),
      cUp: await bulk(async () => check(JSON.parse(new TextDecoder().decode((await steveCall(bigSteve, bigSession, { method: 'POST', path: '/upload', headers: {}, body: upload })).body)).bytes === upload.length), upload.length),
      bDown: await bulk(async () => {
        const { statusCode, body } = await bigPlain.request({ path: `/download/${BIG_DOWNLOAD_BYTES}`, method: 'GET' });
        check(statusCode === 200 && (await body.arrayBuffer()).byteLength === BIG_DOWNLOAD_BYTES);
      }, BIG_DOWNLOAD_BYTES),
      cDown: await bulk(() => steveCall(bigSteve, bigSession, { method: 'GET', path: `/download/${BIG_DOWNLOAD_BYTES}`, headers: {}, body: null }, BIG_DOWNLOAD_BYTES), BIG_DOWNLOAD_BYTES),
    };

    const ms = (v) => v.toFixed(1).padStart(6);
    const names = { a: '(a) app directly', b: '(b) plain undici proxy', c: `(c) STEVE ${args.suite}` };
    process.stdout.write(`1 KiB request and response, ${CLIENTS} clients, ${SESSIONS} STEVE sessions\n`);
    process.stdout.write('path                         req/s   p50 ms  p99 ms  proxy CPU/req  client CPU/req  errors\n');
    for (const key of ['a', 'b', 'c']) {
      const r = results[key];
      const proxyCpu = key === 'a' ? '   (app) ' + r.serverCpuMs.toFixed(3) : '         ' + r.serverCpuMs.toFixed(3);
      const kinds = r.errors > 0 ? ` ${JSON.stringify(r.errorKinds)}` : '';
      process.stdout.write(`${names[key].padEnd(26)} ${r.reqPerS.toFixed(0).padStart(7)}  ${ms(r.p50)}  ${ms(r.p99)}  ${proxyCpu} ms  ${r.clientCpuMs.toFixed(3).padStart(9)} ms  ${r.errors}${kinds}\n`);
    }
    const perRound = results.c.perRound.map((c, i) => (c / results.b.perRound[i]).toFixed(2)).join(', ');
    process.stdout.write(`ratio c/b: ${(results.c.reqPerS / results.b.reqPerS).toFixed(2)} (requests/s over ${ROUNDS} rounds of ${DURATION_MS / 1000} s; per round ${perRound}; target >= 0.6); proxy CPU per request c/b: ${(results.c.serverCpuMs / results.b.serverCpuMs).toFixed(2)}\n`);
    process.stdout.write(`32 MiB bodies, ${BIG_COUNT} each way, one at a time:\n`);
    process.stdout.write(`  (b) plain proxy: upload ${big.bUp.toFixed(0)} MB/s, download ${big.bDown.toFixed(0)} MB/s\n`);
    process.stdout.write(`  (c) STEVE:       upload ${big.cUp.toFixed(0)} MB/s, download ${big.cDown.toFixed(0)} MB/s   (c/b ${(big.cUp / big.bUp).toFixed(2)} up, ${(big.cDown / big.bDown).toFixed(2)} down)\n`);
    const cpu = cpus()[0]?.model?.trim() ?? 'unknown CPU';
    const cores = cpus().length;
    process.stdout.write(`machine: node ${process.version}, ${cpu}, ${cores} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${process.platform}/${process.arch}, load average ${loadAtStart.toFixed(2)} at start, ${loadavg()[0].toFixed(2)} at end\n`);
    process.stdout.write(layout === null ? 'cpus: not pinned (every process on every CPU)\n' : `cpus: load generator on CPU ${layout.client}, app + proxies on CPU ${layout.servers} (--pin off to share)\n`);
    if (Object.values(results).some((r) => r.errors > 0)) exitCode = 1;
  } catch (err) {
    process.stderr.write(`bench/steve: ${err.stack ?? err}\n`);
    exitCode = 1;
  } finally {
    await Promise.all(pools.map((pool) => pool.close()));
    await Promise.all(
      children.map(
        (child) =>
          new Promise((resolve) => {
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.send('exit');
          }),
      ),
    );
    clearTimeout(watchdog);
  }
  process.exitCode = exitCode;
}

if (args.role === 'app') await runApp();
else if (args.role === 'proxy') await runProxy();
else if (args.role === 'agent') await runAgent();
else await runMain();
