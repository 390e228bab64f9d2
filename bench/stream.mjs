/**
 * Streams through STEVE (our extension stream-1, steve/protocol/stream.md) against the plain reverse
 * proxy, measured in the same run (STYLE.md "Tests and speed"). Plain JavaScript over the build (`npm run
 * build` first); loopback only; bounded in time; a watchdog ends every process if anything hangs.
 *
 * Processes (bench/lib/roles.mjs): the app, the plain proxy (b) and the real agent (c, mock NSM); this
 * process is the load generator, with the protocol-level client of bench/lib/steve-client.mjs.
 *
 * Phases:
 *   1. 32 MiB upload and download, one at a time: (b) against (c) streamed, in MB/s, with the CPU per MB
 *      of the proxy and of this client.
 *   2. time to first byte of a server-sent-events answer (5 events 20 ms apart, the first at once),
 *      the paths interleaved request by request: (b) the first body chunk through the plain proxy, (c)
 *      the first opened DATA record through a STEVE stream, and (v2) STEVE without streaming
 *      (/e2p/v2/request), whose first byte is its last.
 *   3. 1 GiB streamed download through (c): throughput, and the agent's resident memory sampled every
 *      20 ms (/proc/PID/status VmRSS), its growth over the value after a 64 MiB warm-up stream.
 * The 32 MiB phases run first: measured here, after phase 2's few hundred short streams the agent spent
 * about twice the CPU per MB on them (2.3-2.9 ms against 5-6; not reproduced with agent, app and client
 * in one process, not understood yet).
 * Ratios printed: c/b time to first byte (goal <= 1.2), c/b upload (goal >= 0.7) and download (>= 0.8),
 * and the 1 GiB RSS growth (goal < 32 MiB).
 *
 *   npm run build && node bench/stream.mjs [--ttfb-count 100] [--big-count 6] [--huge-mib 1024] [--pin auto|off] [--profile DIR]
 */

import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { positiveArg } from './lib/args.mjs';
import { machineLine, quantile } from './lib/load.mjs';
import { cpuLayout, createProcessGroup, pin, procRssBytes as rssBytes } from './lib/processes.mjs';
import { BIG_DOWNLOAD_BYTES, BIG_UPLOAD_BYTES, runRole } from './lib/roles.mjs';
import { createSteveClient, post } from './lib/steve-client.mjs';

const { values: args } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    upstream: { type: 'string' },
    suite: { type: 'string', default: 'X25519' },
    'ttfb-count': { type: 'string', default: '100' },
    'big-count': { type: 'string', default: '6' },
    'huge-mib': { type: 'string', default: '1024' },
    pin: { type: 'string', default: 'auto' },
    /** Write V8 CPU profiles of the app and the agent (node --cpu-prof) into this directory, named by process id. */
    profile: { type: 'string' },
  },
  strict: true,
});

function positive(text, flag) {
  return positiveArg(text, flag, 'bench/stream', { integer: true });
}

const REQUEST_TIMEOUT_MS = 60_000;
const SSE_EVENTS = 5;
const SSE_GAP_MS = 20;

/** Nearest-rank quantile of unsorted values. */
const quantileOf = (values, q) => quantile([...values].sort((a, b) => a - b), q);
const median = (values) => quantileOf(values, 0.5);

async function runMain() {
  const TTFB_COUNT = positive(args['ttfb-count'], '--ttfb-count');
  const BIG_COUNT = positive(args['big-count'], '--big-count');
  const HUGE_BYTES = positive(args['huge-mib'], '--huge-mib') * 1024 * 1024;
  const WATCHDOG_MS = TTFB_COUNT * 3 * 1000 + BIG_COUNT * 4 * 10_000 + HUGE_BYTES / 1e5 + 120_000;
  const layout = cpuLayout(args.pin, 'bench/stream');
  const group = createProcessGroup({ name: 'bench/stream', watchdogMs: WATCHDOG_MS, layout });
  const { Pool } = await import('undici');
  const loadAtStart = loadavg()[0];
  const pools = [];
  let exitCode = 0;
  try {
    const profile = args.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', args.profile];
    const app = await group.forkRole('app', {}, profile);
    const proxy = await group.forkRole('proxy', { upstream: `http://${app.address}/` });
    const agent = await group.forkRole('agent', { upstream: `http://${app.address}/`, suite: args.suite }, profile);
    if (layout !== null) pin(process.pid, layout.client);
    const poolFor = (address) => {
      const pool = new Pool(`http://${address}`, { connections: 1, pipelining: 1, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
      pools.push(pool);
      return pool;
    };
    const client = await createSteveClient({ suite: args.suite, rootDer: agent.rootDer });
    const plain = poolFor(proxy.address);
    const e2p = poolFor(agent.address);
    // The first session is verified end to end, the binding included: it must list stream-1.
    const session = await client.establish(e2p, true);
    const check = (ok, what) => {
      if (!ok) throw new Error(`wrong answer: ${what}`);
    };

    // 2. 32 MiB each way.
    const upload = new Uint8Array(randomBytes(BIG_UPLOAD_BYTES));
    /** MB/s of BIG_COUNT transfers one after another, and CPU ms per MB of the proxy (`server`) and of this client. */
    async function bulk(run, bytes, server) {
      const cpuBefore = await server.cpuMs();
      const clientBefore = process.cpuUsage();
      const started = performance.now();
      for (let i = 0; i < BIG_COUNT; i++) await run();
      const seconds = (performance.now() - started) / 1000;
      const mb = (BIG_COUNT * bytes) / 1e6;
      const client = process.cpuUsage(clientBefore);
      return { mbPerS: mb / seconds, proxyCpuMsPerMb: ((await server.cpuMs()) - cpuBefore) / mb, clientCpuMsPerMb: (client.user + client.system) / 1000 / mb };
    }
    const uploaded = (bytes) => check(JSON.parse(new TextDecoder().decode(bytes)).bytes === upload.length, 'upload count');
    const plainDown = async () => {
      const { statusCode, body } = await plain.request({ path: `/download/${BIG_DOWNLOAD_BYTES}`, method: 'GET' });
      let n = 0;
      for await (const chunk of body) n += chunk.length;
      check(statusCode === 200 && n === BIG_DOWNLOAD_BYTES, 'plain download');
    };
    const streamDown = async () => {
      const answer = await client.stream(e2p, session, { method: 'GET', path: `/download/${BIG_DOWNLOAD_BYTES}`, headers: {} });
      check(answer.status === 200 && answer.bodyBytes === BIG_DOWNLOAD_BYTES, 'stream download');
    };
    const streamUp = async () => {
      // The app answers {"bytes": N} on the stream; read through the v2 path's check by size only.
      const answer = await client.stream(e2p, session, { method: 'POST', path: '/upload', headers: { 'content-type': 'application/octet-stream' } }, upload);
      check(answer.status === 200 && answer.bodyBytes > 0, 'stream upload');
    };
    await plainDown();
    await streamDown();
    const big = {
      bUp: await bulk(async () => uploaded(await post(plain, '/upload', upload, 'application/octet-stream')), upload.length, proxy),
      cUp: await bulk(streamUp, upload.length, agent),
      bDown: await bulk(plainDown, BIG_DOWNLOAD_BYTES, proxy),
      cDown: await bulk(streamDown, BIG_DOWNLOAD_BYTES, agent),
    };

    // 1. Time to first byte.
    const ssePath = `/sse/${SSE_EVENTS}/${SSE_GAP_MS}`;
    const ssePlainFirst = async () => {
      const started = performance.now();
      const { statusCode, body } = await plain.request({ path: ssePath, method: 'GET' });
      let first = null;
      for await (const chunk of body) first ??= chunk.length > 0 ? performance.now() - started : null;
      check(statusCode === 200 && first !== null, 'plain sse');
      return first;
    };
    const sseStreamFirst = async () => {
      const answer = await client.stream(e2p, session, { method: 'GET', path: ssePath, headers: {} });
      check(answer.status === 200 && answer.bodyBytes > 0, 'stream sse');
      return answer.firstDataMs;
    };
    const sseV2First = async () => {
      const started = performance.now();
      const answer = await client.call(e2p, session, { method: 'GET', path: ssePath, headers: {}, body: null });
      check((answer.body?.length ?? 0) > 0, 'v2 sse');
      return performance.now() - started;
    };
    for (let i = 0; i < 10; i++) {
      await ssePlainFirst();
      await sseStreamFirst();
    }
    const ttfb = { b: [], c: [], v2: [] };
    for (let i = 0; i < TTFB_COUNT; i++) {
      ttfb.b.push(await ssePlainFirst());
      ttfb.c.push(await sseStreamFirst());
      if (i % 10 === 0) ttfb.v2.push(await sseV2First());
    }

    // 3. A streamed download far over any buffer, with the agent's memory sampled. A 64 MiB stream first,
    // so the baseline is the agent's RSS with the stream path warm (after the earlier phases V8 may have
    // given memory back, which would count as growth here).
    await client.stream(e2p, session, { method: 'GET', path: `/stream/${64 * 1024 * 1024}`, headers: {} });
    const rssBefore = rssBytes(agent.pid);
    let rssMax = rssBefore;
    const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssBytes(agent.pid))), 20);
    const hugeStarted = performance.now();
    const huge = await client.stream(e2p, session, { method: 'GET', path: `/stream/${HUGE_BYTES}`, headers: {} });
    const hugeMs = performance.now() - hugeStarted;
    clearInterval(sampler);
    rssMax = Math.max(rssMax, rssBytes(agent.pid));
    check(huge.status === 200 && huge.bodyBytes === HUGE_BYTES, 'huge stream');

    const f = (v) => v.toFixed(2).padStart(7);
    process.stdout.write(`time to first byte, server-sent events (${SSE_EVENTS} events ${SSE_GAP_MS} ms apart), ${TTFB_COUNT} requests per path, ms:\n`);
    process.stdout.write(`  (b) plain proxy            median ${f(median(ttfb.b))}  p90 ${f(quantileOf(ttfb.b, 0.9))}\n`);
    process.stdout.write(`  (c) STEVE stream           median ${f(median(ttfb.c))}  p90 ${f(quantileOf(ttfb.c, 0.9))}\n`);
    process.stdout.write(`  (v2) STEVE, no streaming   median ${f(median(ttfb.v2))}  p90 ${f(quantileOf(ttfb.v2, 0.9))}  (${ttfb.v2.length} requests; its first byte is its last)\n`);
    process.stdout.write(`ratio c/b time to first byte: ${(median(ttfb.c) / median(ttfb.b)).toFixed(2)} (median; goal <= 1.2)\n`);
    process.stdout.write(`32 MiB bodies, ${BIG_COUNT} each way, one at a time:\n`);
    const row = (name, up, down) =>
      process.stdout.write(
        `  ${name} upload ${up.mbPerS.toFixed(0).padStart(4)} MB/s (CPU ms/MB proxy ${up.proxyCpuMsPerMb.toFixed(2)}, client ${up.clientCpuMsPerMb.toFixed(2)}), download ${down.mbPerS.toFixed(0).padStart(4)} MB/s (proxy ${down.proxyCpuMsPerMb.toFixed(2)}, client ${down.clientCpuMsPerMb.toFixed(2)})\n`,
      );
    row('(b) plain proxy: ', big.bUp, big.bDown);
    row('(c) STEVE stream:', big.cUp, big.cDown);
    process.stdout.write(`ratio c/b: upload ${(big.cUp.mbPerS / big.bUp.mbPerS).toFixed(2)} (goal >= 0.7), download ${(big.cDown.mbPerS / big.bDown.mbPerS).toFixed(2)} (goal >= 0.8)\n`);
    const mib = (bytes) => (bytes / 1048576).toFixed(1);
    process.stdout.write(
      `${mib(HUGE_BYTES)} MiB streamed download through STEVE: ${(HUGE_BYTES / 1e6 / (hugeMs / 1000)).toFixed(0)} MB/s; agent RSS ${mib(rssBefore)} MiB before, ${mib(rssMax)} MiB at most, growth ${mib(rssMax - rssBefore)} MiB (goal < 32)\n`,
    );
    process.stdout.write(`${machineLine(loadAtStart)}\n`);
    process.stdout.write(layout === null ? 'cpus: not pinned (every process on every CPU)\n' : `cpus: load generator on CPU ${layout.client}, app + proxies on CPU ${layout.servers} (--pin off to share)\n`);
  } catch (err) {
    process.stderr.write(`bench/stream: ${err.stack ?? err}\n`);
    exitCode = 1;
  } finally {
    await Promise.all(pools.map((pool) => pool.close()));
    await group.stopAll();
  }
  process.exitCode = exitCode;
}

if (args.role === 'main') await runMain();
else await runRole(args.role, { upstream: args.upstream, suite: args.suite });
