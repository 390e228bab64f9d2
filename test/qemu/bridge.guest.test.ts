/**
 * The vsock bridges inside the QEMU guest, over real vsock loopback (CID 1), wired exactly as in
 * production: the enclave ingress bridge (vsock V -> TCP 127.0.0.1:V) and the host ingress bridge (TCP
 * 127.0.0.1:Q -> vsock 1:V), so a request to Q crosses both; the egress chain (the app's CONNECT proxy on
 * TCP -> vsock 1:E -> the host's egress bridge -> a TCP target) used by undici's ProxyAgent. On the same
 * path it measures our bridges against socat (`TCP-LISTEN -> VSOCK-CONNECT` and `VSOCK-LISTEN -> TCP`):
 * throughput of one 64 MiB transfer and sequential short connections per second, printed as ratios (no
 * timing assertions: the guest is emulated and shares the host's CPUs).
 *
 * It must run only inside the guest (see vsock.guest.test.ts: on the build machine /dev/vsock leads out of
 * the machine). It connects only to CID 1 and listens on fixed ports from PORT_BASE (never 2024, 5001, 5002).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';
import { pino } from 'pino';
import { Agent, ProxyAgent, request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';

import {
  createAllowlist,
  startEnclaveEgress,
  startEnclaveIngress,
  startHostEgress,
  startHostIngress,
  type Forwarder,
} from '../../bridge/index.js';
import { idleCpuMs } from './idle-cpu.js';

function guestHasVsockLoopback(): boolean {
  try {
    return /^vsock_loopback\s/m.test(readFileSync('/proc/modules', 'utf8'));
  } catch {
    return false;
  }
}

const IN_GUEST = process.env.ENCLAVE_QEMU_GUEST === '1' && guestHasVsockLoopback();

/** vsock ports (and, for the enclave ingress, the same TCP port numbers) from here; vsock.guest.test.ts uses 41_000+. */
// Below Linux's ephemeral range (32768-60999): the TCP servers here listen on these ports while the bridges'
// and clients' connections take ephemeral ones, and a port in that range was once taken first (EADDRINUSE).
const PORT_BASE = 23_000;
let nextPort = PORT_BASE;
const freshPort = (): number => (nextPort += 1);

const REPO = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const MiB = 1024 * 1024;
const BENCH_BYTES = 64 * MiB;
const BENCH_ROUNDS = 2;
/** Connection rounds: more than the transfers', since one round of a few seconds is easily disturbed by host load. */
const CONN_ROUNDS = 3;
const CONNECTIONS = 150;

/**
 * A bridge in a process of its own, as in production (and as socat runs): bundled with esbuild from the
 * sources at test time (the guest has no dist/), packages left to /project/node_modules.
 * `node bundle ROLE V RELAY [TARGET]`, RELAY one of native (the default relay: native, splice mode), copy
 * (native, read/write mode), js: `enclave V` runs the enclave ingress bridge for port V; `host V` the host ingress bridge to
 * vsock 1:V on a free TCP port; `host-egress E TARGET` the host egress bridge on vsock E allowing
 * 127.0.0.1:TARGET; `enclave-egress E TARGET` the app's CONNECT proxy on a free TCP port to vsock 1:E.
 * Each prints `{"ready": tcpPortOrV}` once listening.
 */
const BRIDGE_PROCESS_ENTRY = `
import { pino } from 'pino';
import { createAllowlist, startEnclaveEgress, startEnclaveIngress, startHostEgress, startHostIngress } from './bridge/index.ts';
const [role, portText, relayText, targetText] = process.argv.slice(2);
const port = Number(portText);
const relay = relayText === 'js' ? { relay: 'js' } : relayText === 'copy' ? { relay: 'native', relaySplice: false } : { relay: 'native' };
const logger = pino({ level: 'warn' }, pino.destination(2));
const tcpPort = (forwarder) => Number(String(forwarder.description.tcp).split(':').pop());
const allowlist = () => createAllowlist(['127.0.0.1:' + targetText]);
let ready;
if (role === 'enclave') {
  await startEnclaveIngress({ ports: [port], logger, ...relay });
  ready = port;
} else if (role === 'host') {
  ready = tcpPort(await startHostIngress({ listen: { host: '127.0.0.1', port: 0 }, cid: 1, vsockPort: port, logger, ...relay }));
} else if (role === 'host-egress') {
  await startHostEgress({ allowlist: allowlist(), vsockPort: port, logger, ...relay });
  ready = port;
} else {
  ready = tcpPort(await startEnclaveEgress({ listen: { host: '127.0.0.1', port: 0 }, allowlist: allowlist(), cid: 1, vsockPort: port, logger, ...relay }));
}
process.stdout.write(JSON.stringify({ ready }) + '\\n');
`;
const SOCAT = '/usr/bin/socat';
const silent = pino({ level: 'silent' });

const forwarders: Forwarder[] = [];
const servers: Server[] = [];
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(forwarders.map((forwarder) => forwarder.close()));
  for (const server of servers) server.close();
});

async function listenTcpServer(server: Server, port: number): Promise<number> {
  servers.push(server);
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Counts bytes until the client's FIN, then answers the count and ends. */
function sinkServer(): Server {
  return createServer({ allowHalfOpen: true }, (socket) => {
    let count = 0;
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => (count += chunk.length));
    socket.on('end', () => socket.end(String(count)));
  });
}

/** Echoes, half-open capable (ends after the client does). */
function echoServer(): Server {
  return createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
}

/** Both ingress bridges for one enclave port V, with the target already listening on TCP 127.0.0.1:V. */
async function ingressPath(port: number): Promise<{ hostPort: number; enclave: Forwarder; host: Forwarder }> {
  const [enclave] = await startEnclaveIngress({ ports: [port], logger: silent });
  const host = await startHostIngress({ listen: { host: '127.0.0.1', port: 0 }, cid: 1, vsockPort: port, logger: silent });
  forwarders.push(enclave!, host);
  return { hostPort: Number(String(host.description.tcp).split(':').pop()), enclave: enclave!, host };
}

/** The socat equivalent: TCP-LISTEN:Q -> VSOCK-CONNECT:1:V' and VSOCK-LISTEN:V' -> TCP:127.0.0.1:target. */
async function socatPath(targetPort: number): Promise<{ hostPort: number }> {
  const vsockPort = freshPort();
  const hostPort = freshPort();
  const block = ['-b', String(64 * 1024)];
  for (const args of [
    [...block, `VSOCK-LISTEN:${vsockPort},reuseaddr,fork`, `TCP:127.0.0.1:${targetPort}`],
    [...block, `TCP-LISTEN:${hostPort},bind=127.0.0.1,reuseaddr,fork`, `VSOCK-CONNECT:1:${vsockPort}`],
  ]) {
    const child = spawn(SOCAT, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(child);
  }
  return { hostPort };
}

/** Bundles BRIDGE_PROCESS_ENTRY once; returns the bundle's path. */
let bundled: Promise<string> | undefined;
function bridgeProcessBundle(): Promise<string> {
  bundled ??= (async () => {
    const outfile = join(REPO, 'test-output', 'bridge-process.mjs');
    mkdirSync(dirname(outfile), { recursive: true });
    await build({
      stdin: { contents: BRIDGE_PROCESS_ENTRY, resolveDir: REPO, sourcefile: 'bridge-process.ts', loader: 'ts' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      outfile,
      logLevel: 'warning',
    });
    return outfile;
  })();
  return bundled;
}

type Relay = 'native' | 'copy' | 'js';

/** Starts a bridge process and resolves with the port it reports once ready. */
async function bridgeProcess(role: 'enclave' | 'host' | 'enclave-egress' | 'host-egress', port: number, relay: Relay, target = 0): Promise<number> {
  const child = spawn(process.execPath, [await bridgeProcessBundle(), role, String(port), relay, String(target)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let output = '';
  child.stdout!.setEncoding('utf8');
  return new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (chunk: string) => {
      output += chunk;
      const match = /\{"ready":(\d+)\}/.exec(output);
      if (match !== null) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`bridge process ${role} exited ${code}`)));
  });
}

/** Our two ingress bridges, each in its own process (enclave V -> TCP 127.0.0.1:V, host TCP -> vsock 1:V). */
async function processPath(targetPort: number, relay: Relay): Promise<{ hostPort: number }> {
  await bridgeProcess('enclave', targetPort, relay);
  return { hostPort: await bridgeProcess('host', targetPort, relay) };
}

/** Our two egress bridges, each in its own process: the CONNECT proxy's TCP port (-> vsock 1:E -> host egress -> target). */
async function egressProcessPath(targetPort: number, relay: Relay): Promise<number> {
  const egressPort = freshPort();
  await bridgeProcess('host-egress', egressPort, relay, targetPort);
  return bridgeProcess('enclave-egress', egressPort, relay, targetPort);
}

function closed(stream: Socket): Promise<void> {
  return new Promise((resolve) => (stream.closed ? resolve() : stream.once('close', () => resolve())));
}

function readAll(stream: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return once(stream, 'end').then(() => Buffer.concat(chunks));
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const CONNECT_OK = 'HTTP/1.1 200 Connection Established\r\n\r\n';

/**
 * Sends `total` bytes through `port` to a sink, returns the sink's count and the milliseconds it took.
 * With `connectTo`, `port` is an egress proxy: a CONNECT to 127.0.0.1:connectTo goes first (in the time).
 */
async function sendThrough(port: number, total: number, connectTo?: number): Promise<{ count: number; ms: number }> {
  const block = Buffer.alloc(MiB);
  const start = performance.now();
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const reply = readAll(socket).then((bytes) => {
    if (connectTo === undefined) return bytes;
    const text = bytes.toString('latin1');
    return text.startsWith(CONNECT_OK) ? Buffer.from(text.slice(CONNECT_OK.length), 'latin1') : Buffer.from('-1');
  });
  if (connectTo !== undefined) socket.write(`CONNECT 127.0.0.1:${connectTo} HTTP/1.1\r\nHost: 127.0.0.1:${connectTo}\r\n\r\n`);
  for (let sent = 0; sent < total; sent += block.length) {
    const piece = total - sent >= block.length ? block : block.subarray(0, total - sent);
    if (!socket.write(piece)) await once(socket, 'drain');
  }
  socket.end();
  const count = Number((await reply).toString() || '-1');
  const ms = performance.now() - start;
  await closed(socket);
  return { count, ms };
}

/** Waits until a zero-byte transfer through `port` reaches the sink (socat listeners start asynchronously). */
async function waitForPath(port: number): Promise<void> {
  for (let attempt = 0; ; attempt += 1) {
    const result = await sendThrough(port, 0).catch(() => ({ count: -1, ms: 0 }));
    if (result.count === 0) return;
    if (attempt === 100) throw new Error(`path through ${port} never came up`);
    await sleep(100);
  }
}

/** `n` sequential short connections (connect, one byte there and back, close); returns connections per second. */
async function connectionsPerSecond(port: number, n: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < n; i += 1) {
    const socket = connect({ port, host: '127.0.0.1' });
    await once(socket, 'connect');
    const echoed = once(socket, 'data');
    socket.write('x');
    const [data] = await echoed;
    expect(String(data)).toBe('x');
    socket.end();
    await closed(socket);
  }
  return n / ((performance.now() - start) / 1000);
}

describe.skipIf(!IN_GUEST)('vsock bridges in the QEMU guest', () => {
  it('carries HTTP requests across both ingress bridges (TCP -> vsock -> TCP)', async () => {
    const port = freshPort();
    // The answer direction too (vsock -> TCP -> client): 8 MiB of random bytes, hashed on arrival.
    const answer = randomBytes(8 * MiB + 3);
    const app = createHttpServer((req, res) => {
      if (req.url === '/download') {
        res.end(answer);
        return;
      }
      const hash = createHash('sha256');
      let length = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        length += chunk.length;
      });
      req.on('end', () => res.end(JSON.stringify({ method: req.method, url: req.url, length, sha256: hash.digest('hex') })));
    });
    await listenTcpServer(app, port);
    const { hostPort, enclave, host } = await ingressPath(port);

    // A pool of our own, closed at the end: a kept-alive connection closing seconds later would show up as
    // CPU in the idle measurements below.
    const client = new Agent();
    const small = await request(`http://127.0.0.1:${hostPort}/hello?x=1`, { dispatcher: client });
    expect(small.statusCode).toBe(200);
    expect(await small.body.json()).toEqual({ method: 'GET', url: '/hello?x=1', length: 0, sha256: createHash('sha256').digest('hex') });

    const body = randomBytes(4 * MiB + 1);
    const big = await request(`http://127.0.0.1:${hostPort}/upload`, { method: 'POST', body, dispatcher: client });
    expect(await big.body.json()).toEqual({ method: 'POST', url: '/upload', length: body.length, sha256: createHash('sha256').update(body).digest('hex') });
    const down = await request(`http://127.0.0.1:${hostPort}/download`, { dispatcher: client });
    const received = createHash('sha256');
    let receivedBytes = 0;
    for await (const chunk of down.body) {
      received.update(chunk as Buffer);
      receivedBytes += (chunk as Buffer).length;
    }
    expect({ receivedBytes, sha256: received.digest('hex') }).toEqual({ receivedBytes: answer.length, sha256: createHash('sha256').update(answer).digest('hex') });
    console.log(`ingress: requests crossed host bridge (TCP ${hostPort}) -> vsock 1:${port} -> enclave bridge -> TCP ${port}; ` + `${enclave.stats().accepted} connection(s) at the enclave bridge`);
    expect(host.stats().accepted).toBeGreaterThanOrEqual(1);
    expect(enclave.stats().openFailures).toBe(0);
    await client.close();
    for (let i = 0; i < 100 && (host.stats().active > 0 || enclave.stats().active > 0); i += 1) await sleep(50);
    expect({ host: host.stats().active, enclave: enclave.stats().active }).toEqual({ host: 0, enclave: 0 });
  }, 120_000);

  it('half-closes across both bridges: the app sees end, answers, the client reads it', async () => {
    const port = freshPort();
    const app = createServer({ allowHalfOpen: true }, (socket) => {
      void readAll(socket).then((request) => socket.end(`pong:${request.toString()}`));
    });
    await listenTcpServer(app, port);
    const { hostPort } = await ingressPath(port);
    const socket = connect({ port: hostPort, host: '127.0.0.1', allowHalfOpen: true });
    await once(socket, 'connect');
    const reply = readAll(socket);
    socket.end('ping');
    expect((await reply).toString()).toBe('pong:ping');
    socket.end();
    await closed(socket);
  });

  it('closes the client when nothing listens on the enclave port, one dial each, then stays idle', async () => {
    const port = freshPort();
    const host = await startHostIngress({ listen: { host: '127.0.0.1', port: 0 }, cid: 1, vsockPort: port, logger: silent });
    forwarders.push(host);
    const hostPort = Number(String(host.description.tcp).split(':').pop());
    for (let i = 0; i < 5; i += 1) {
      const socket = connect({ port: hostPort, host: '127.0.0.1' });
      socket.on('error', () => {});
      socket.resume();
      await closed(socket);
    }
    expect(host.stats()).toMatchObject({ accepted: 5, openFailures: 5, active: 0 });
    // Let the collector and the JIT settle after the earlier transfers, then the process must be idle. A
    // busy loop would spin in every window; the collector or a compile after the earlier transfers (242 ms
    // in one window once) does not: the quietest of three seconds must be idle.
    await sleep(1000);
    const windows: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      const cpuBefore = process.cpuUsage();
      await sleep(1000);
      const cpu = process.cpuUsage(cpuBefore);
      windows.push((cpu.user + cpu.system) / 1000);
    }
    console.log(`refused vsock target: stats ${JSON.stringify(host.stats())}, ${windows.map((ms) => ms.toFixed(1)).join(', ')} ms CPU in the three seconds after the next one`);
    expect(host.stats().accepted).toBe(5);
    expect(Math.min(...windows)).toBeLessThan(50);
  });

  it('carries the egress chain over vsock: undici ProxyAgent -> CONNECT proxy -> vsock 1:E -> host bridge -> target', async () => {
    const target = createHttpServer((req, res) => res.end(`target saw ${req.method} ${req.url}`));
    const targetPort = await listenTcpServer(target, 0);
    const egressPort = freshPort();
    const allow = createAllowlist([`127.0.0.1:${targetPort}`]);
    const host = await startHostEgress({ allowlist: allow, vsockPort: egressPort, logger: silent });
    const enclave = await startEnclaveEgress({ listen: { host: '127.0.0.1', port: 0 }, allowlist: allow, cid: 1, vsockPort: egressPort, logger: silent });
    forwarders.push(enclave, host);
    const proxyPort = Number(String(enclave.description.tcp).split(':').pop());

    const agent = new ProxyAgent(`http://127.0.0.1:${proxyPort}`);
    const response = await request(`http://127.0.0.1:${targetPort}/through?egress=1`, { dispatcher: agent });
    expect(response.statusCode).toBe(200);
    expect(await response.body.text()).toBe('target saw GET /through?egress=1');
    await agent.close();

    // A target outside the allowlist: the exact 403, and the host never hears of it.
    const socket = connect({ port: proxyPort, host: '127.0.0.1' });
    await once(socket, 'connect');
    const answer = readAll(socket);
    socket.write('CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n');
    expect((await answer).toString()).toBe('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    console.log(`egress: enclave ${JSON.stringify(enclave.stats())}, host ${JSON.stringify(host.stats())}`);
    expect(host.stats().accepted).toBe(1);
  }, 120_000);

  it('measures throughput and connections/s against socat on the same path', async () => {
    // Paths to the same sink and echo servers: our bridges in their own processes (as deployed, and as
    // socat runs) with each relay (native: the default, splice mode; copy: native in read/write mode; js: pipe.ts), our
    // bridges in this test's process (sharing a CPU with the client and the sink), and socat. Egress is
    // the CONNECT proxy -> vsock -> host egress bridge -> sink; socat's path is the same TCP -> vsock -> TCP
    // relay pair either way (it has no CONNECT to parse), so both ratios are against its one figure.
    const sinkPort = freshPort();
    await listenTcpServer(sinkServer(), sinkPort);
    const echoPort = freshPort();
    await listenTcpServer(echoServer(), echoPort);
    const inProcessSinkPort = freshPort();
    await listenTcpServer(sinkServer(), inProcessSinkPort);
    const inProcessEchoPort = freshPort();
    await listenTcpServer(echoServer(), inProcessEchoPort);

    const relays: Relay[] = ['native', 'copy', 'js'];
    const paths: Record<string, { sink: number; echo: number; egress?: number }> = {};
    for (const relay of relays) {
      // The enclave ingress bridge listens on vsock V and dials TCP V: one sink and echo port per relay.
      const sink = freshPort();
      await listenTcpServer(sinkServer(), sink);
      const echo = freshPort();
      await listenTcpServer(echoServer(), echo);
      paths[relay] = { sink: (await processPath(sink, relay)).hostPort, echo: (await processPath(echo, relay)).hostPort, egress: await egressProcessPath(sinkPort, relay) };
    }
    paths.inProcess = { sink: (await ingressPath(inProcessSinkPort)).hostPort, echo: (await ingressPath(inProcessEchoPort)).hostPort };
    paths.socat = { sink: (await socatPath(sinkPort)).hostPort, echo: (await socatPath(echoPort)).hostPort };
    const names = Object.keys(paths);
    for (const name of names) await waitForPath(paths[name]!.sink);

    const ingressMs: Record<string, number> = Object.fromEntries(names.map((name) => [name, Number.POSITIVE_INFINITY]));
    const egressMs: Record<string, number> = { ...ingressMs };
    for (let round = 0; round < BENCH_ROUNDS; round += 1) {
      for (const name of names) {
        const { count, ms } = await sendThrough(paths[name]!.sink, BENCH_BYTES);
        expect(count).toBe(BENCH_BYTES);
        ingressMs[name] = Math.min(ingressMs[name]!, ms);
        const egress = paths[name]!.egress;
        if (egress !== undefined) {
          const through = await sendThrough(egress, BENCH_BYTES, sinkPort);
          expect(through.count).toBe(BENCH_BYTES);
          egressMs[name] = Math.min(egressMs[name]!, through.ms);
        }
      }
    }
    const rate = (ms: number): number => BENCH_BYTES / MiB / (ms / 1000);

    // One warm-up connection each (the socat listeners may still be starting).
    for (const name of names) {
      for (let attempt = 0; ; attempt += 1) {
        try {
          await connectionsPerSecond(paths[name]!.echo, 1);
          break;
        } catch (error) {
          if (attempt === 50) throw error;
          await sleep(100);
        }
      }
    }
    const connRate: Record<string, number> = Object.fromEntries(names.map((name) => [name, 0]));
    for (let round = 0; round < CONN_ROUNDS; round += 1) {
      for (const name of names) connRate[name] = Math.max(connRate[name]!, await connectionsPerSecond(paths[name]!.echo, CONNECTIONS));
    }
    const line = (label: string, value: (name: string) => number, socat: number, unit: string, which: readonly string[]): string =>
      `${label}: socat ${socat.toFixed(1)} ${unit}; ` + which.map((name) => `${name} ${value(name).toFixed(1)} ${unit} (ratio ${(value(name) / socat).toFixed(2)})`).join(', ');
    const ours = [...relays, 'inProcess'];
    console.log(
      [
        line(`bridge ingress throughput, ${BENCH_BYTES / MiB} MiB TCP -> host bridge -> vsock 1 -> enclave bridge -> TCP sink`, (name) => rate(ingressMs[name]!), rate(ingressMs.socat!), 'MiB/s', ours),
        line(`bridge egress throughput, ${BENCH_BYTES / MiB} MiB TCP -> CONNECT proxy -> vsock 1 -> host egress bridge -> TCP sink`, (name) => rate(egressMs[name]!), rate(ingressMs.socat!), 'MiB/s', relays),
        line(`bridge connections/s, ${CONNECTIONS} sequential connections (1 byte there and back), ingress path`, (name) => connRate[name]!, connRate.socat!, '/s', ours),
        `ratio summary (native relay, the default): ingress throughput ${(rate(ingressMs.native!) / rate(ingressMs.socat!)).toFixed(2)}, ` +
          `egress throughput ${(rate(egressMs.native!) / rate(ingressMs.socat!)).toFixed(2)}, connections/s ${(connRate.native! / connRate.socat!).toFixed(2)}`,
        `(best of ${BENCH_ROUNDS} interleaved rounds, ${CONN_ROUNDS} for connections; native, copy and js are each bridge in its own Node process with that relay, inProcess the default relay in the test process; socat two processes forking per connection)`,
      ].join('\n'),
    );
  }, 900_000);

  it('uses no CPU once everything is closed (no busy loop)', async () => {
    await Promise.all(forwarders.map((forwarder) => forwarder.close()));
    expect(await idleCpuMs()).toBeLessThan(50);
  });
});
