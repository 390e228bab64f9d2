/**
 * Throughput of the STEVE proxy against a plain reverse proxy measured in the same run (STYLE.md "Tests
 * and speed"). Plain JavaScript over the build (`npm run build` first); loopback only; bounded in time
 * and requests; a watchdog ends every process if anything hangs.
 *
 * Four processes besides this one (forked from bench/lib/roles.mjs, which compare.mjs shares), so the
 * proxy under test has a CPU of its own as far as the machine allows:
 *   - app:   a node:http server. POST /echo answers 1 KiB; POST /upload answers the byte count;
 *            GET /download/N answers N bytes.
 *   - proxy: the baseline, a plain reverse proxy in a few lines (node:http server, one undici Pool to the
 *            app, bodies streamed both ways, hop-by-hop headers dropped).
 *   - buffered proxy: a second baseline that reads each body whole before passing it on, as STEVE
 *            must, on undici's dispatch API, with no encryption or CBOR: c/d is what STEVE itself costs.
 *   - agent: the real agent (startAgent, mock NSM, fresh mock PKI) in front of the same app.
 * This process is the load generator: an undici Pool with one connection per client, and for STEVE a
 * protocol-level client (the protocol core with node:crypto AES-GCM and X25519) that establishes
 * --sessions sessions before timing (document and binding verified on the first) and spreads the
 * clients over them.
 *
 * Phases: 1 KiB request and 1 KiB response at --clients concurrent clients through (a) the app
 * directly, (b) the plain proxy, (c) STEVE, (d) the buffered proxy: requests/s, p50/p99 latency, and CPU
 * per request of the proxy process and of this client; then 32 MiB bodies (upload, download) through
 * (b) and (c) in MB/s. The printed ratio c/b is the number to compare across machines (target >= 0.6
 * for 1 KiB); c/d is printed beside it.
 *
 *   npm run build && node bench/steve.mjs [--duration-s 3] [--rounds 3] [--max-requests 50000] [--clients 64]
 *     [--sessions 8] [--big-count 6] [--warmup-s 3] [--suite X25519|XWING-DRAFT10] [--profile DIR]
 */

import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { positiveArg } from './lib/args.mjs';
import { load as loadPhase, machineLine, summarise } from './lib/load.mjs';
import { cpuLayout, createProcessGroup, pin } from './lib/processes.mjs';
import { BIG_DOWNLOAD_BYTES, BIG_UPLOAD_BYTES, SMALL_BYTES, runRole } from './lib/roles.mjs';
import { createSteveClient, post } from './lib/steve-client.mjs';

const { values: args } = parseArgs({
  options: {
    /** Internal: become a server role (bench/lib/roles.mjs), as older runs forked this file. */
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
    /**
     * Write V8 CPU profiles of the four servers (node --cpu-prof) into this directory, named by process
     * id; the run prints each role's pid and how many requests it served (warm-ups included).
     */
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

function positive(text, flag) {
  return positiveArg(text, flag, 'bench/steve');
}

const REQUEST_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------------------------------------------
// The load generator

async function runMain() {
  const DURATION_MS = positive(args['duration-s'], '--duration-s') * 1000;
  const MAX_REQUESTS = positive(args['max-requests'], '--max-requests');
  const CLIENTS = positive(args.clients, '--clients');
  const SESSIONS = positive(args.sessions, '--sessions');
  // 0 skips the 32 MiB phases (for --profile of the 1 KiB path alone).
  const BIG_COUNT = args['big-count'] === '0' ? 0 : positive(args['big-count'], '--big-count');
  const ROUNDS = positive(args.rounds, '--rounds');
  const WARMUP_MS = positive(args['warmup-s'], '--warmup-s') * 1000;
  if (args.suite !== 'X25519' && args.suite !== 'XWING-DRAFT10') {
    process.stderr.write('bench/steve: --suite expected X25519 or XWING-DRAFT10\n');
    process.exit(2);
  }
  // Three small phases with warm-ups, two big phases of up to BIG_COUNT x 2 transfers of 32 MiB, start-up.
  const WATCHDOG_MS = 3 * (WARMUP_MS + ROUNDS * DURATION_MS) + 2 * BIG_COUNT * 2 * 10_000 + 60_000;
  const layout = cpuLayout(args.pin, 'bench/steve');
  const group = createProcessGroup({ name: 'bench/steve', watchdogMs: WATCHDOG_MS, layout });

  const { Pool } = await import('undici');
  const loadAtStart = loadavg()[0];
  const pools = [];
  let exitCode = 0;
  try {
    const profile = args.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', args.profile];
    const app = await group.forkRole('app', {}, profile);
    const proxy = await group.forkRole('proxy', { upstream: `http://${app.address}/` }, profile);
    const bufferedProxy = await group.forkRole('buffered-proxy', { upstream: `http://${app.address}/` }, profile);
    const agent = await group.forkRole('agent', { upstream: `http://${app.address}/`, suite: args.suite }, profile);
    if (layout !== null) pin(process.pid, layout.client);
    const poolFor = (address, connections = CLIENTS) => {
      const pool = new Pool(`http://${address}`, { connections, pipelining: 1, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
      pools.push(pool);
      return pool;
    };
    const client = await createSteveClient({ suite: args.suite, rootDer: agent.rootDer });

    const direct = poolFor(app.address);
    const plain = poolFor(proxy.address);
    const buffered = poolFor(bufferedProxy.address);
    const e2p = poolFor(agent.address);
    // STEVE sessions, established before any timing (§5), the first one checked end to end.
    const steveSessions = [];
    for (let i = 0; i < SESSIONS; i++) steveSessions.push(await client.establish(e2p, i === 0));

    const payload = new Uint8Array(randomBytes(SMALL_BYTES));
    const smallRequest = { method: 'POST', path: '/echo', headers: { 'content-type': 'application/octet-stream' }, body: payload };
    const smallHead = client.requestHead(smallRequest);
    const check = (ok) => {
      if (!ok) throw new Error('wrong answer');
    };
    const small = {
      a: () => post(direct, '/echo', payload, 'application/octet-stream').then((b) => check(b.length === SMALL_BYTES)),
      b: () => post(plain, '/echo', payload, 'application/octet-stream').then((b) => check(b.length === SMALL_BYTES)),
      d: () => post(buffered, '/echo', payload, 'application/octet-stream').then((b) => check(b.length === SMALL_BYTES)),
      // The request is encoded once, as (a) and (b) reuse their payload; sealing, framing and every check
      // of the answer happen per request (client i always uses session i mod SESSIONS).
      c: (i) => client.call(e2p, steveSessions[i % SESSIONS], smallRequest, SMALL_BYTES, smallHead),
    };

    /** BIG_COUNT transfers of 32 MiB one after another; MB/s = 10^6 bytes of body per second. */
    async function bulk(run, bytes) {
      const started = performance.now();
      for (let i = 0; i < BIG_COUNT; i++) await run();
      return (BIG_COUNT * bytes) / 1e6 / ((performance.now() - started) / 1000);
    }

    // Warm up each path (the JIT needs a few seconds), then ROUNDS rounds of a, b, c, d in turn, so a
    // burst of other work on the machine lands on every path rather than on one.
    const paths = [
      ['a', app],
      ['b', proxy],
      ['c', agent],
      ['d', bufferedProxy],
    ];
    const warmUpRequests = {};
    for (const [key] of paths) warmUpRequests[key] = (await loadPhase({ run: small[key], clients: CLIENTS, durationMs: WARMUP_MS })).issued;
    const rounds = { a: [], b: [], c: [], d: [] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const [key, server] of paths) rounds[key].push(await loadPhase({ run: small[key], clients: CLIENTS, durationMs: DURATION_MS, maxRequests: MAX_REQUESTS, cpu: { server: server.cpuMs } }));
    }
    const results = Object.fromEntries(Object.entries(rounds).map(([key, list]) => [key, summarise(list)]));
    const upload = new Uint8Array(randomBytes(BIG_COUNT === 0 ? 0 : BIG_UPLOAD_BYTES));
    const bigPlain = poolFor(proxy.address, 1);
    const bigSteve = poolFor(agent.address, 1);
    const bigSession = await client.establish(bigSteve, false);
    const uploaded = (bytes) => check(JSON.parse(new TextDecoder().decode(bytes)).bytes === upload.length);
    const big = BIG_COUNT === 0 ? null : {
      bUp: await bulk(async () => uploaded(await post(bigPlain, '/upload', upload, 'application/octet-stream')), upload.length),
      cUp: await bulk(async () => uploaded((await client.call(bigSteve, bigSession, { method: 'POST', path: '/upload', headers: {}, body: upload })).body), upload.length),
      bDown: await bulk(async () => {
        const { statusCode, body } = await bigPlain.request({ path: `/download/${BIG_DOWNLOAD_BYTES}`, method: 'GET' });
        check(statusCode === 200 && (await body.arrayBuffer()).byteLength === BIG_DOWNLOAD_BYTES);
      }, BIG_DOWNLOAD_BYTES),
      cDown: await bulk(() => client.call(bigSteve, bigSession, { method: 'GET', path: `/download/${BIG_DOWNLOAD_BYTES}`, headers: {}, body: null }, BIG_DOWNLOAD_BYTES), BIG_DOWNLOAD_BYTES),
    };

    const ms = (v) => v.toFixed(1).padStart(6);
    const names = { a: '(a) app directly', b: '(b) plain undici proxy', c: `(c) STEVE ${args.suite}`, d: '(d) buffered, no crypto' };
    process.stdout.write(`1 KiB request and response, ${CLIENTS} clients, ${SESSIONS} STEVE sessions\n`);
    process.stdout.write('path                         req/s   p50 ms  p99 ms  proxy CPU/req  client CPU/req  errors\n');
    for (const key of ['a', 'b', 'c', 'd']) {
      const r = results[key];
      const proxyCpu = key === 'a' ? '   (app) ' + r.cpuMs.server.toFixed(3) : '         ' + r.cpuMs.server.toFixed(3);
      const kinds = r.errors > 0 ? ` ${JSON.stringify(r.errorKinds)}` : '';
      process.stdout.write(`${names[key].padEnd(26)} ${r.reqPerS.toFixed(0).padStart(7)}  ${ms(r.p50)}  ${ms(r.p99)}  ${proxyCpu} ms  ${r.clientCpuMs.toFixed(3).padStart(9)} ms  ${r.errors}${kinds}\n`);
    }
    const perRound = results.c.perRound.map((c, i) => (c / results.b.perRound[i]).toFixed(2)).join(', ');
    process.stdout.write(`ratio c/b: ${(results.c.reqPerS / results.b.reqPerS).toFixed(2)} (requests/s over ${ROUNDS} rounds of ${DURATION_MS / 1000} s; per round ${perRound}; target >= 0.6); proxy CPU per request c/b: ${(results.c.cpuMs.server / results.b.cpuMs.server).toFixed(2)}\n`);
    process.stdout.write(`ratio c/d: ${(results.c.reqPerS / results.d.reqPerS).toFixed(2)} (requests/s); proxy CPU per request c/d: ${(results.c.cpuMs.server / results.d.cpuMs.server).toFixed(2)}\n`);
    if (big !== null) {
      process.stdout.write(`32 MiB bodies, ${BIG_COUNT} each way, one at a time:\n`);
      process.stdout.write(`  (b) plain proxy: upload ${big.bUp.toFixed(0)} MB/s, download ${big.bDown.toFixed(0)} MB/s\n`);
      process.stdout.write(`  (c) STEVE:       upload ${big.cUp.toFixed(0)} MB/s, download ${big.cDown.toFixed(0)} MB/s   (c/b ${(big.cUp / big.bUp).toFixed(2)} up, ${(big.cDown / big.bDown).toFixed(2)} down)\n`);
    }
    if (args.profile !== undefined) {
      const served = (key) => warmUpRequests[key] + results[key].requests;
      process.stdout.write(`profiles in ${args.profile} by pid: app ${app.pid}, (b) ${proxy.pid} served ${served('b')}, (c) ${agent.pid} served ${served('c')}, (d) ${bufferedProxy.pid} served ${served('d')} requests of 1 KiB\n`);
    }
    process.stdout.write(`${machineLine(loadAtStart)}\n`);
    process.stdout.write(layout === null ? 'cpus: not pinned (every process on every CPU)\n' : `cpus: load generator on CPU ${layout.client}, app + proxies on CPU ${layout.servers} (--pin off to share)\n`);
    if (Object.values(results).some((r) => r.errors > 0)) exitCode = 1;
  } catch (err) {
    process.stderr.write(`bench/steve: ${err.stack ?? err}\n`);
    exitCode = 1;
  } finally {
    await Promise.all(pools.map((pool) => pool.close()));
    await group.stopAll();
  }
  process.exitCode = exitCode;
}

if (args.role === 'main') await runMain();
else await runRole(args.role, { upstream: args.upstream, suite: args.suite });
