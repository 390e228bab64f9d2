/**
 * The child process of secret-wipe.test.ts: the real agent from the build (dist/agent/agent.js, the
 * code `enclave-agent run` starts), mock NSM, every listener on 127.0.0.1:0, pinned to the suite in
 * argv. One change from a deployment: the STEVE server's `random` is the server's own default
 * (`nodeRandomBytes`) wrapped so that each draw is also written to stdout as `draw <hex>`: the test
 * learns the server's ephemeral keys that way. The hex is built digit by digit, so the wrapper makes no
 * copy of the bytes. `listening <host:port>` when ready; on SIGUSR2 a full garbage collection, then
 * `collected` (the test starts this with --expose-gc). Plain JavaScript: it runs against dist/, which
 * holds no test code.
 *
 * argv: <mock PKI directory> <suite>
 */

import { pino } from 'pino';
import { startAgent } from '../../dist/agent/agent.js';
import { DEMO_MANIFEST_JSON } from '../../dist/agent/demo/manifest.js';
import { parseManifest } from '../../dist/agent/manifest.js';
import { loadMockPki, openMockNsm } from '../../dist/nsm/index.js';
import { nodeRandomBytes } from '../../dist/steve/server/index.js';

const [pkiDir, suite] = process.argv.slice(2);
const HEX = '0123456789abcdef';

function random(length) {
  const bytes = nodeRandomBytes(length);
  let hex = '';
  for (let i = 0; i < bytes.length; i++) hex += HEX[bytes[i] >> 4] + HEX[bytes[i] & 15];
  process.stdout.write(`draw ${hex}\n`);
  return bytes;
}

const nsm = openMockNsm({ pki: await loadMockPki(pkiDir), logger: { warn() {} } });
const agent = await startAgent({
  config: {
    listen: { host: '127.0.0.1', port: 0 },
    attestationListen: null,
    internalListen: { host: '127.0.0.1', port: 0 },
    // Nothing listens on port 9: v1 requests are answered with a sealed 502.
    upstream: 'http://127.0.0.1:9/',
    metadataPath: null,
    corsOrigins: [],
    allowPlaintextFallback: false,
    nsmConcurrency: 4,
    nsmQueueMax: 256,
    nsmTimeoutMs: 10_000,
    shutdownTimeoutMs: 2000,
    nsm: 'mock',
    deployment: 'test',
    keyExchange: suite,
    // v1 is opt-in; its key derivation is scanned too.
    legacyV1: true,
  },
  nsm,
  manifest: parseManifest(new TextEncoder().encode(DEMO_MANIFEST_JSON), 'demo manifest'),
  logger: pino({ level: 'silent' }),
  steve: { random },
});
process.on('SIGUSR2', () => {
  globalThis.gc();
  process.stdout.write('collected\n');
});
process.stdout.write(`listening ${agent.addresses.public}\n`);
