/**
 * STEVE's AES-256-GCM per record: the agent's native one (agent/aes-gcm-native.ts, one addon call) against
 * node:crypto's (steve/server/aead-node.ts, five calls and a Cipheriv object), measured in the same run and
 * interleaved round by round, for the record sizes the proxy sees: a stream's END (0 bytes), an SSE event
 * (13), a 1 KiB answer and a full 64 KiB stream record. Prints microseconds per seal and per open (median
 * of the rounds) and the ratio native/node. Over the build (`npm run build` first); in process, no network.
 *
 *   npm run build && node bench/aead.mjs [--rounds 7] [--ms 200]
 */

import { loadavg } from 'node:os';
import { loadNativeAesGcm } from '../dist/agent/aes-gcm-native.js';
import { nodeAesGcm } from '../dist/steve/server/aead-node.js';
import { machineLine, quantile } from './lib/load.mjs';
import { microOptions, timeRound as timeRoundOf } from './lib/micro.mjs';

const { rounds: ROUNDS, roundMs: ROUND_MS } = microOptions('bench/aead');

const loadAtStart = loadavg()[0];
const native = loadNativeAesGcm();
const key = new Uint8Array(32).fill(7);
const prefix = new Uint8Array(5);
const timeRound = (run) => timeRoundOf(run, ROUND_MS);

/** A nonce and AAD made per record, as the protocol makes them (small JS arrays). */
function inputs(i) {
  const nonce = new Uint8Array(12);
  nonce[11] = i & 0xff;
  return { nonce, aad: new Uint8Array(46) };
}

const median = (values) => quantile([...values].sort((a, b) => a - b), 0.5);
const f = (v) => v.toFixed(2).padStart(8);

process.stdout.write('AES-256-GCM per record, us (median of rounds), native (agent/aes-gcm-native.ts) against node:crypto (nodeAesGcm):\n');
for (const size of [0, 13, 1024, 65_536]) {
  const plaintext = new Uint8Array(size).fill(1);
  const sealed = nodeAesGcm.seal(key, inputs(0).nonce, inputs(0).aad, plaintext);
  const runs = {
    nodeSeal: (i) => nodeAesGcm.sealPrefixed(key, inputs(i).nonce, inputs(i).aad, plaintext, prefix),
    nativeSeal: (i) => native.sealPrefixed(key, inputs(i).nonce, inputs(i).aad, plaintext, prefix),
    nodeOpen: () => nodeAesGcm.open(key, inputs(0).nonce, inputs(0).aad, sealed),
    nativeOpen: () => native.open(key, inputs(0).nonce, inputs(0).aad, sealed),
  };
  // The two must agree before they are timed.
  if (Buffer.compare(runs.nodeSeal(3), runs.nativeSeal(3)) !== 0 || Buffer.compare(runs.nodeOpen(), runs.nativeOpen()) !== 0) throw new Error(`bench/aead: native and node:crypto differ at ${size} bytes`);
  const times = { nodeSeal: [], nativeSeal: [], nodeOpen: [], nativeOpen: [] };
  for (const name in runs) timeRound(runs[name]);
  for (let round = 0; round < ROUNDS; round++) for (const name in runs) times[name].push(timeRound(runs[name]));
  const m = Object.fromEntries(Object.entries(times).map(([name, values]) => [name, median(values)]));
  process.stdout.write(
    `  ${String(size).padStart(6)} B  seal: node ${f(m.nodeSeal)}  native ${f(m.nativeSeal)}  ratio ${(m.nativeSeal / m.nodeSeal).toFixed(2)}   open: node ${f(m.nodeOpen)}  native ${f(m.nativeOpen)}  ratio ${(m.nativeOpen / m.nodeOpen).toFixed(2)}\n`,
  );
}
process.stdout.write(`${machineLine(loadAtStart)}\n`);
