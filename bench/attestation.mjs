/**
 * Load benchmark of `POST /attestation` against a baseline measured in the same run (STYLE.md "Tests
 * and speed"). Starts the built agent (dist/, so run `npm run build` first) in process with the mock
 * NSM on 127.0.0.1 port 0, checks that one document verifies with the mock root, warms up, then puts
 * the same bounded load on two routes of the same listener:
 *   - `POST /attestation` with a fresh 32-byte nonce per request (JSON parse, bounded NSM queue, a mock
 *     NSM call that signs an ES384 COSE_Sign1 document, base64 and JSON out);
 *   - `GET /.well-known/caution/health`, which touches no NSM: the cost of HTTP alone on this machine.
 * It prints throughput and latency for each and the ratio attestation/health, plus the machine. The
 * load generator (undici Pool) shares the process and the CPU with the agent, so absolute numbers are
 * lower than a separate client would see; the ratio is the number to compare across machines.
 *
 * Loopback only; stops by itself (each phase ends after --duration-s or --max-requests, whichever
 * comes first, and a watchdog ends the process if anything hangs).
 *
 *   npm run build && node bench/attestation.mjs [--duration-s 10] [--max-requests 20000] [--clients 64]
 */

import { randomBytes } from 'node:crypto';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Pool } from 'undici';
import { startAgent } from '../dist/agent/agent.js';
import { parseManifest } from '../dist/agent/manifest.js';
import { DEMO_MANIFEST_JSON } from '../dist/agent/demo/manifest.js';
import { base64ToBytes, bytesToBase64, createMockPki, nodeP384Verifier, openMockNsm, verifyAttestationDocument } from '../dist/nsm/index.js';
import { positiveArg } from './lib/args.mjs';

const { values: args } = parseArgs({
  options: {
    'duration-s': { type: 'string', default: '10' },
    'max-requests': { type: 'string', default: '20000' },
    clients: { type: 'string', default: '64' },
    'warmup-s': { type: 'string', default: '2' },
  },
  strict: true,
});
const DURATION_MS = positive(args['duration-s'], '--duration-s') * 1000;
const MAX_REQUESTS = positive(args['max-requests'], '--max-requests');
const CLIENTS = positive(args.clients, '--clients');
const WARMUP_MS = positive(args['warmup-s'], '--warmup-s') * 1000;
/** A request slower than this is counted as an error rather than waited for. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Two warm-ups, two measured phases, start-up and shutdown, with room to spare. */
const WATCHDOG_MS = 2 * (WARMUP_MS + DURATION_MS) + 60_000;

function positive(text, flag) {
  return positiveArg(text, flag, 'bench/attestation');
}

const watchdog = setTimeout(() => {
  process.stderr.write(`bench/attestation: still running after ${WATCHDOG_MS} ms; giving up\n`);
  process.exit(1);
}, WATCHDOG_MS);
watchdog.unref();

const silent = { warn() {} };
const pki = createMockPki();
const nsm = openMockNsm({ pki, logger: silent });
const manifest = parseManifest(new TextEncoder().encode(DEMO_MANIFEST_JSON), 'demo manifest');
const agent = await startAgent({
  config: {
    listen: { host: '127.0.0.1', port: 0 },
    attestationListen: null,
    internalListen: { host: '127.0.0.1', port: 0 },
    upstream: new URL('http://127.0.0.1:1'),
    metadataPath: null,
    corsOrigins: [],
    allowPlaintextFallback: false,
    // The shipped defaults (README "Configuration").
    nsmConcurrency: 4,
    nsmQueueMax: 256,
    shutdownTimeoutMs: 2000,
    nsm: 'mock',
    deployment: 'test',
  },
  nsm,
  manifest,
  logger: pino({ level: 'silent' }),
});
const origin = `http://${agent.addresses.public}`;
const pool = new Pool(origin, { connections: CLIENTS, pipelining: 1 });

const routes = {
  attestation: () => {
    const nonce = randomBytes(32);
    return { path: '/attestation', method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"nonce":"${nonce.toString('base64')}"}` };
  },
  health: () => ({ path: '/.well-known/caution/health', method: 'GET' }),
};

/** One request; resolves to its latency in ms, or throws on anything but 200. */
async function once(build) {
  const started = performance.now();
  const { statusCode, body } = await pool.request({ ...build(), headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
  await body.arrayBuffer();
  if (statusCode !== 200) throw new Error(`status ${statusCode}`);
  return performance.now() - started;
}

/** CLIENTS loops, each sending one request at a time, until the time or the request budget runs out. */
async function load(build, durationMs, maxRequests) {
  const latencies = [];
  const errors = new Map();
  let issued = 0;
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const deadline = started + durationMs;
  async function client() {
    while (issued < maxRequests && performance.now() < deadline) {
      issued += 1;
      try {
        latencies.push(await once(build));
      } catch (err) {
        const key = err.code ?? err.message;
        errors.set(key, (errors.get(key) ?? 0) + 1);
      }
    }
  }
  await Promise.all(Array.from({ length: CLIENTS }, client));
  const elapsedS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort((a, b) => a - b);
  const at = (q) => (latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)]);
  const errorCount = [...errors.values()].reduce((a, b) => a + b, 0);
  return { requests: issued, ok: latencies.length, errors: errorCount, errorKinds: Object.fromEntries(errors), reqPerS: latencies.length / elapsedS, cpuMsPerRequest: (cpu.user + cpu.system) / 1000 / Math.max(1, issued), p50: at(0.5), p99: at(0.99), max: at(1), elapsedS };
}

/** Other work on the machine skews everything but the ratio; say how busy it was when we started. */
const loadAtStart = loadavg()[0];
let exitCode = 0;
try {
  // Sanity: what we are about to time is a real document for our nonce.
  const nonce = randomBytes(32);
  const check = await pool.request({ path: '/attestation', method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ nonce: bytesToBase64(nonce) }) });
  const reply = await check.body.json();
  if (check.statusCode !== 200) throw new Error(`sanity request answered ${check.statusCode}`);
  verifyAttestationDocument(base64ToBytes(reply.document), { atMs: Date.now(), root: pki.root.der, expectedNonce: new Uint8Array(nonce), verifier: nodeP384Verifier });

  await load(routes.health, WARMUP_MS, Infinity);
  await load(routes.attestation, WARMUP_MS, Infinity);
  const attestation = await load(routes.attestation, DURATION_MS, MAX_REQUESTS);
  const health = await load(routes.health, DURATION_MS, MAX_REQUESTS);

  const ms = (v) => v.toFixed(1);
  const ratio = attestation.reqPerS / health.reqPerS;
  const cpu = cpus()[0]?.model?.trim() ?? 'unknown CPU';
  for (const [name, r] of Object.entries({ attestation, health })) {
    const kinds = r.errors > 0 ? ` ${JSON.stringify(r.errorKinds)}` : '';
    process.stdout.write(`${name.padEnd(12)} ${r.reqPerS.toFixed(0).padStart(6)} req/s  p50 ${ms(r.p50)} ms  p99 ${ms(r.p99)} ms  max ${ms(r.max)} ms  (${r.requests} requests in ${r.elapsedS.toFixed(1)} s, ${r.errors} errors${kinds}; ${r.cpuMsPerRequest.toFixed(2)} ms CPU per request, client included)\n`);
  }
  process.stdout.write(
    `attestation: ${attestation.reqPerS.toFixed(0)} req/s p50 ${ms(attestation.p50)} ms p99 ${ms(attestation.p99)} ms max ${ms(attestation.max)} ms ` +
      `(${CLIENTS} clients, ${attestation.requests} requests, ${attestation.errors} errors); ` +
      `health baseline ${health.reqPerS.toFixed(0)} req/s; ratio ${ratio.toFixed(3)}\n` +
      `machine: node ${process.version}, ${cpu}, ${availableParallelism()} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${process.platform}/${process.arch}, load average ${loadAtStart.toFixed(2)} at start\n`,
  );
  if (attestation.errors > 0 || health.errors > 0) exitCode = 1;
} catch (err) {
  process.stderr.write(`bench/attestation: ${err.stack ?? err}\n`);
  exitCode = 1;
} finally {
  await pool.close();
  await agent.stop();
  await nsm.close();
  clearTimeout(watchdog);
}
process.exitCode = exitCode;
