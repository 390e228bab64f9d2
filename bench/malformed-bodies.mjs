/**
 * What a malformed, unauthenticated 32 MiB body costs the agent, against random bytes of the same size
 * measured in the same run (STYLE.md "Tests and speed": the ratio travels, the milliseconds do not).
 * A body that is one CBOR array of 33 million one-byte items used to be expanded into as many JS values
 * before the envelope was refused, stalling the event loop for everyone; random bytes are refused at
 * their first bytes. Plain JavaScript over the build (`npm run build` first); loopback only; prints,
 * asserts nothing.
 *
 * Two parts:
 *   1. In process: decodeEnvelope (the decoder /e2p/v2/request runs first) on each body, median of
 *      --runs, and the ratio to random bytes.
 *   2. The whole server path: the real agent (bench/lib/roles.mjs, mock NSM) in a child process; each
 *      body POSTed to /e2p/v2/request while this process asks /healthz every 5 ms on another connection:
 *      the POST's status and time, and the slowest /healthz answer meanwhile (the stall everyone sees).
 *
 *   npm run build && node bench/malformed-bodies.mjs [--runs 5] [--server-runs 3] [--no-server]
 */

import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createProcessGroup } from './lib/processes.mjs';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    'server-runs': { type: 'string', default: '3' },
    'no-server': { type: 'boolean', default: false },
  },
  strict: true,
});
const RUNS = Number(args.runs);
const SERVER_RUNS = Number(args['server-runs']);

const { decodeEnvelope, MAX_REQUEST_ENVELOPE_BYTES } = await import('../dist/steve/protocol/index.js');

/** 32 MiB, the request envelope cap (specs/steve.md §6). */
const SIZE = MAX_REQUEST_ENVELOPE_BYTES;

/** A definite head of `major` with a 4-byte argument, then `fill` up to SIZE. */
function oneItem(initial, count, fill) {
  const body = Buffer.alloc(SIZE, fill);
  body[0] = initial;
  body.writeUInt32BE(count, 1);
  return body;
}

const BODIES = [
  // The random body's first byte is drawn again until it is not a map head (0xa0-0xbf), so every run
  // measures the same thing: bytes refused at their start.
  ['random bytes', () => {
    const body = randomBytes(SIZE);
    while (body[0] >> 5 === 5) body[0] = randomBytes(1)[0];
    return body;
  }],
  ['one array of 0x00 items', () => oneItem(0x9a, SIZE - 5, 0x00)],
  ['one array of empty arrays', () => oneItem(0x9a, SIZE - 5, 0x80)],
  ['one text string', () => oneItem(0x7a, SIZE - 5, 0x61)],
  ['map head of 2^24 entries', () => oneItem(0xba, (SIZE - 5) / 2, 0x00)],
];

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const fmt = (ms) => (ms < 10 ? ms.toFixed(3) : ms.toFixed(1)).padStart(9);

// ---------------------------------------------------------------------------------------------------
// 1. decodeEnvelope in process

process.stdout.write(`decodeEnvelope on ${SIZE}-byte bodies, median of ${RUNS} runs (ms):\n`);
const decodeMs = new Map();
for (const [name, make] of BODIES) {
  const times = [];
  let outcome = '';
  for (let i = 0; i < RUNS; i++) {
    const body = make();
    const started = performance.now();
    try {
      decodeEnvelope(body, { maxBytes: SIZE });
      outcome = 'decoded';
    } catch (error) {
      outcome = `${error.code}${error.cause?.code ? ` (${error.cause.code} at ${error.cause.offset})` : ''}`;
    }
    times.push(performance.now() - started);
  }
  decodeMs.set(name, median(times));
  process.stdout.write(`  ${name.padEnd(28)} ${fmt(median(times))}   ${outcome}\n`);
}
const baseline = decodeMs.get('random bytes');
for (const [name, ms] of decodeMs) if (name !== 'random bytes') process.stdout.write(`  ratio ${name} / random bytes: ${(ms / Math.max(baseline, 0.001)).toFixed(1)}\n`);

// ---------------------------------------------------------------------------------------------------
// 2. The agent: POST /e2p/v2/request while /healthz is asked every 5 ms

if (!args['no-server']) {
  const { Pool } = await import('undici');
  const group = createProcessGroup({ name: 'bench/malformed-bodies', watchdogMs: 120_000 + SERVER_RUNS * BODIES.length * 10_000, layout: null });
  const app = await group.forkRole('app');
  const agent = await group.forkRole('agent', { upstream: `http://${app.address}/`, suite: 'X25519' });
  const origin = `http://${agent.address}`;
  const posts = new Pool(origin, { connections: 1 });
  const health = new Pool(origin, { connections: 1 });

  async function healthz() {
    const started = performance.now();
    const { statusCode, body } = await health.request({ path: '/healthz', method: 'GET' });
    await body.dump();
    if (statusCode !== 200) throw new Error(`/healthz answered ${statusCode}`);
    return performance.now() - started;
  }

  process.stdout.write(`\nthe agent: POST /e2p/v2/request with each body while /healthz is asked every 5 ms, median of ${SERVER_RUNS} runs (ms):\n`);
  process.stdout.write(`  ${'body'.padEnd(28)} ${'POST'.padStart(9)} ${'healthz max'.padStart(12)}   status\n`);
  await healthz();
  for (const [name, make] of BODIES) {
    const postMs = [];
    const healthMax = [];
    let status = 0;
    for (let i = 0; i < SERVER_RUNS; i++) {
      const body = make();
      let polling = true;
      let slowest = 0;
      const poller = (async () => {
        while (polling) {
          slowest = Math.max(slowest, await healthz());
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      const started = performance.now();
      const answer = await posts.request({ path: '/e2p/v2/request', method: 'POST', headers: { 'content-type': 'application/cbor' }, body });
      await answer.body.dump();
      postMs.push(performance.now() - started);
      status = answer.statusCode;
      polling = false;
      await poller;
      healthMax.push(slowest);
    }
    process.stdout.write(`  ${name.padEnd(28)} ${fmt(median(postMs))} ${fmt(median(healthMax)).padStart(12)}   ${status}\n`);
  }
  await posts.close();
  await health.close();
  for (const child of [agent.child, app.child]) child.send('exit');
}
