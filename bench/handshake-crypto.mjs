/**
 * The cryptography of one X25519 handshake on the server: the agent's native one (agent/handshake-native.ts,
 * three addon calls into the OpenSSL inside node) against node:crypto's (`nodeHandshake`, the STEVE server's
 * default), measured in the same run and interleaved round by round: the X25519 answer to a client's key
 * (a fresh key pair and the shared secret), the transcript hash, the key schedule (seven HKDF outputs),
 * and the three in a row. Prints microseconds per call (median of the rounds) and the ratio native/node.
 * Over the build (`npm run build` first); in process, no network.
 *
 *   npm run build && node bench/handshake-crypto.mjs [--rounds 7] [--ms 200]
 */

import { loadavg } from 'node:os';
import { loadNativeHandshake } from '../dist/agent/handshake-native.js';
import { nodeHandshake, nodeRandomBytes } from '../dist/steve/server/index.js';
import { machineLine, quantile } from './lib/load.mjs';
import { microOptions, timeRound } from './lib/micro.mjs';

const { rounds: ROUNDS, roundMs: ROUND_MS } = microOptions('bench/handshake-crypto');

const loadAtStart = loadavg()[0];
const implementations = { node: nodeHandshake, native: loadNativeHandshake() };
const client = nodeHandshake.x25519.generateClientKeyPair(nodeRandomBytes);
const transcriptInput = (serverKeyMaterial) => ({
  suite: 'X25519',
  clientNonce: new Uint8Array(32).fill(1),
  clientKeyMaterial: client.material,
  serverKeyMaterial,
  sessionId: new Uint8Array(16).fill(2),
  contextHash: new Uint8Array(32).fill(3),
});

/** The steps of one handshake with `h`, as the server runs them; returns what the client must agree with. */
function handshake(h) {
  const { serverMaterial, sharedSecret } = h.x25519.serverRespond(client.material, nodeRandomBytes);
  const hash = h.transcriptHash(transcriptInput(serverMaterial));
  return { serverMaterial, keys: h.deriveSessionKeys(sharedSecret, hash) };
}

// The two must agree with the client before they are timed.
for (const [name, h] of Object.entries(implementations)) {
  const { serverMaterial, keys } = handshake(h);
  const clientKeys = nodeHandshake.deriveSessionKeys(nodeHandshake.x25519.clientFinish(client.secret, serverMaterial), nodeHandshake.transcriptHash(transcriptInput(serverMaterial)));
  if (Buffer.compare(keys.c2sKey, clientKeys.c2sKey) !== 0 || Buffer.compare(keys.streamS2cKey, clientKeys.streamS2cKey) !== 0) throw new Error(`bench/handshake-crypto: ${name} disagrees with the client`);
}

const fixedSecret = () => new Uint8Array(32).fill(9);
const fixedHash = new Uint8Array(32).fill(4);
const fixedServer = new Uint8Array(32).fill(5);
const steps = {
  'X25519 answer': (h) => () => h.x25519.serverRespond(client.material, nodeRandomBytes),
  'transcript hash': (h) => () => h.transcriptHash(transcriptInput(fixedServer)),
  'key schedule': (h) => () => h.deriveSessionKeys(fixedSecret(), fixedHash),
  'all three': (h) => () => handshake(h),
};

const median = (values) => quantile([...values].sort((a, b) => a - b), 0.5);
const f = (v) => v.toFixed(2).padStart(8);

process.stdout.write('One X25519 handshake\'s server cryptography, us (median of rounds), native (agent/handshake-native.ts) against node:crypto (nodeHandshake):\n');
for (const [step, make] of Object.entries(steps)) {
  const runs = { node: make(implementations.node), native: make(implementations.native) };
  const times = { node: [], native: [] };
  for (const name in runs) timeRound(runs[name], ROUND_MS);
  for (let round = 0; round < ROUNDS; round++) for (const name in runs) times[name].push(timeRound(runs[name], ROUND_MS));
  const m = { node: median(times.node), native: median(times.native) };
  process.stdout.write(`  ${step.padEnd(16)} node ${f(m.node)}  native ${f(m.native)}  ratio ${(m.native / m.node).toFixed(2)}\n`);
}
process.stdout.write(`${machineLine(loadAtStart)}\n`);
