/**
 * The egress chain on TCP loopback, with the vsock hop replaced by TCP (the handlers only see a Dial):
 * app -> enclave proxy (127.0.0.1:P, allowlist) -> host egress bridge (its own allowlist) -> target.
 * Asserts the exact answer bytes for allowed, denied (at either end), malformed, non-CONNECT, oversized,
 * slow, refused and unanswered CONNECTs, that a refused CONNECT never reaches the host or the target, that
 * bytes on either side of a head survive, that a host answering nonsense yields 502, and that undici's
 * ProxyAgent (what an app's HTTP(S)_PROXY client does) works through the whole chain.
 */

import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

import { pino } from 'pino';
import { ProxyAgent, request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';

import { startEnclaveEgress, startHostEgress } from './bridges.js';
import { createAllowlist, MAX_HEAD_BYTES } from './connect-head.js';
import { createEgressProxyOpen } from './egress.js';
import { startForwarder } from './forwarder.js';
import { listenTcp, tcpDialer, type Dial } from './transports.js';

const silent = pino({ level: 'silent' });
const cleanups: Array<() => unknown> = [];

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const OK = 'HTTP/1.1 200 Connection Established\r\n\r\n';
const refusal = (status: string, extra = ''): string => `HTTP/1.1 ${status}\r\n${extra}Content-Length: 0\r\nConnection: close\r\n\r\n`;

/** A target on loopback: answers `hello` first (server speaks first), then echoes; counts its connections. */
async function target(): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    connections += 1;
    socket.on('error', () => {});
    socket.write('hello:');
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => server.close());
  return { port: (server.address() as AddressInfo).port, connections: () => connections };
}

function counting(dial: Dial): { dial: Dial; calls: () => number } {
  let calls = 0;
  return {
    dial: (signal) => {
      calls += 1;
      return dial(signal);
    },
    calls: () => calls,
  };
}

interface ChainOptions {
  enclaveAllow: string[];
  hostAllow: string[] | null;
  dialTarget?: (target: { host: string; port: number }) => Dial;
  connectTimeoutMs?: number;
}

/** The enclave proxy and the host bridge, joined by TCP where production has vsock. */
async function chain(options: ChainOptions) {
  const hostListener = await listenTcp({ host: '127.0.0.1', port: 0 });
  const host = await startHostEgress({
    allowlist: options.hostAllow === null ? null : createAllowlist(options.hostAllow),
    vsockPort: 0,
    listener: hostListener,
    logger: silent,
    ...(options.dialTarget ? { dialTarget: options.dialTarget } : {}),
    ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
  });
  const toHost = counting(tcpDialer({ host: '127.0.0.1', port: hostListener.port }));
  const enclave = await startEnclaveEgress({
    listen: { host: '127.0.0.1', port: 0 },
    allowlist: createAllowlist(options.enclaveAllow),
    vsockPort: 0,
    dialHost: toHost.dial,
    logger: silent,
  });
  cleanups.push(() => enclave.close(), () => host.close());
  const proxyPort = Number(String(enclave.description.tcp).split(':').pop());
  return { proxyPort, host, enclave, hostDials: toHost.calls };
}

/** Sends `bytes` to the proxy and returns everything it answers until it closes. */
async function exchange(port: number, bytes: string | Buffer, options: { endAfterWrite?: boolean } = {}): Promise<string> {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  if (options.endAfterWrite) socket.end(bytes);
  else socket.write(bytes);
  await new Promise((resolve) => socket.once('close', resolve));
  return Buffer.concat(chunks).toString('latin1');
}

/** Opens a tunnel and returns the socket once the 200 has been read; `extra` is sent with the CONNECT. */
async function tunnel(port: number, authority: string, extra = ''): Promise<{ socket: Socket; after: () => string }> {
  const socket = connect({ port, host: '127.0.0.1' });
  await once(socket, 'connect');
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (received += chunk));
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n${extra}`);
  const deadline = performance.now() + 5_000;
  while (!received.startsWith(OK)) {
    if (performance.now() > deadline || (received.length >= OK.length && !received.startsWith(OK))) throw new Error(`no tunnel: ${JSON.stringify(received)}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return { socket, after: () => received.slice(OK.length) };
}

async function until(predicate: () => boolean, ms = 5_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('egress chain (TCP in place of vsock)', () => {
  it('tunnels an allowed CONNECT: exact 200, server-first bytes, early client bytes, echo both ways', async () => {
    const app = await target();
    const { proxyPort, host, enclave } = await chain({ enclaveAllow: [`127.0.0.1:${app.port}`], hostAllow: [`127.0.0.1:${app.port}`] });
    // "early" rides in the same write as the CONNECT head and must reach the target after it.
    const { socket, after } = await tunnel(proxyPort, `127.0.0.1:${app.port}`, 'early,');
    await until(() => after() === 'hello:early,');
    socket.write('more');
    await until(() => after() === 'hello:early,more');
    socket.end();
    await new Promise((resolve) => socket.once('close', resolve));
    expect(app.connections()).toBe(1);
    await until(() => enclave.stats().completed === 1 && host.stats().completed === 1);
    expect(enclave.stats()).toMatchObject({ bytesIn: 'early,more'.length, bytesOut: 'hello:early,more'.length });
  });

  it('answers 403 for a target outside the enclave allowlist and never contacts the host', async () => {
    const app = await target();
    const { proxyPort, hostDials } = await chain({ enclaveAllow: ['example.com:443'], hostAllow: null });
    expect(await exchange(proxyPort, `CONNECT 127.0.0.1:${app.port} HTTP/1.1\r\n\r\n`)).toBe(refusal('403 Forbidden'));
    expect(await exchange(proxyPort, `CONNECT EXAMPLE.com:444 HTTP/1.1\r\n\r\n`)).toBe(refusal('403 Forbidden'));
    expect(hostDials()).toBe(0);
    expect(app.connections()).toBe(0);
  });

  it('answers 403 when the host allowlist refuses what the enclave allowed; the target is not contacted', async () => {
    const app = await target();
    const { proxyPort, hostDials, host } = await chain({ enclaveAllow: [`127.0.0.1:${app.port}`], hostAllow: ['example.com:443'] });
    expect(await exchange(proxyPort, `CONNECT 127.0.0.1:${app.port} HTTP/1.1\r\n\r\n`)).toBe(refusal('403 Forbidden'));
    expect(hostDials()).toBe(1);
    expect(app.connections()).toBe(0);
    await until(() => host.stats().openFailures === 1);
  });

  it('answers 400, 405 and 431 with exact bytes, and the host never hears of them', async () => {
    const { proxyPort, hostDials } = await chain({ enclaveAllow: ['example.com:443'], hostAllow: null });
    expect(await exchange(proxyPort, 'CONNECT example.com HTTP/1.1\r\n\r\n')).toBe(refusal('400 Bad Request'));
    expect(await exchange(proxyPort, 'CONNECT example.com:443 HTTP/1.1\nHost: x\n\n')).toBe(refusal('400 Bad Request'));
    expect(await exchange(proxyPort, 'GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n')).toBe(refusal('405 Method Not Allowed', 'Allow: CONNECT\r\n'));
    const huge = `CONNECT example.com:443 HTTP/1.1\r\nX-Pad: ${'a'.repeat(MAX_HEAD_BYTES)}\r\n\r\n`;
    expect(await exchange(proxyPort, huge)).toBe(refusal('431 Request Header Fields Too Large'));
    // A head cut short by the client's FIN is answered too (the client may still read).
    expect(await exchange(proxyPort, 'CONNECT example.com:443 HTTP/1.1\r\n', { endAfterWrite: true })).toBe(refusal('400 Bad Request'));
    expect(hostDials()).toBe(0);
  });

  it('answers 408 to a head that does not arrive in time', async () => {
    const listener = await listenTcp({ host: '127.0.0.1', port: 0 });
    const hostDial = counting(tcpDialer({ host: '127.0.0.1', port: 9 }));
    const fwd = startForwarder({
      name: 'test',
      listener,
      open: createEgressProxyOpen({ allowlist: createAllowlist(['example.com:443']), dialHost: hostDial.dial, headTimeoutMs: 100 }),
      maxConnections: 4,
      idleTimeoutMs: 0,
      openTimeoutMs: 5_000,
      logger: silent,
    });
    cleanups.push(() => fwd.close());
    const start = performance.now();
    expect(await exchange(listener.port, 'CONNECT example.com:443 HTTP/1.1\r\n')).toBe(refusal('408 Request Timeout'));
    expect(performance.now() - start).toBeGreaterThanOrEqual(90);
    expect(hostDial.calls()).toBe(0);
  });

  it('answers 502 when the target refuses the connection', async () => {
    const dead = createServer();
    dead.listen(0, '127.0.0.1');
    await once(dead, 'listening');
    const { port } = dead.address() as AddressInfo;
    await new Promise((resolve) => dead.close(resolve));
    const { proxyPort, host } = await chain({ enclaveAllow: [`127.0.0.1:${port}`], hostAllow: null });
    expect(await exchange(proxyPort, `CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n`)).toBe(refusal('502 Bad Gateway'));
    await until(() => host.stats().openFailures === 1);
  });

  it('answers 504 when the target does not answer within the connect timeout', async () => {
    const hanging = (): Dial => (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    const { proxyPort } = await chain({ enclaveAllow: ['example.com:443'], hostAllow: null, dialTarget: hanging, connectTimeoutMs: 100 });
    expect(await exchange(proxyPort, 'CONNECT example.com:443 HTTP/1.1\r\n\r\n')).toBe(refusal('504 Gateway Timeout'));
  });

  it('answers 502 when the host answers nonsense, and does not pass its bytes on', async () => {
    const fakeHost: Server = createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nbroken header\r\n\r\nleaked'));
    });
    fakeHost.listen(0, '127.0.0.1');
    await once(fakeHost, 'listening');
    cleanups.push(() => fakeHost.close());
    const enclave = await startEnclaveEgress({
      listen: { host: '127.0.0.1', port: 0 },
      allowlist: createAllowlist(['example.com:443']),
      vsockPort: 0,
      dialHost: tcpDialer({ host: '127.0.0.1', port: (fakeHost.address() as AddressInfo).port }),
      logger: silent,
    });
    cleanups.push(() => enclave.close());
    const proxyPort = Number(String(enclave.description.tcp).split(':').pop());
    expect(await exchange(proxyPort, 'CONNECT example.com:443 HTTP/1.1\r\n\r\n')).toBe(refusal('502 Bad Gateway'));
  });

  it('with fromCid, serves only that peer: others are closed unanswered', async () => {
    const app = await target();
    const listener = await listenTcp({ host: '127.0.0.1', port: 0 });
    const host = await startHostEgress({ allowlist: null, vsockPort: 0, fromCid: 16, listener, logger: silent });
    cleanups.push(() => host.close());
    // A TCP peer has no CID, so it is not the enclave.
    expect(await exchange(listener.port, `CONNECT 127.0.0.1:${app.port} HTTP/1.1\r\n\r\n`)).toBe('');
    expect(app.connections()).toBe(0);
    await until(() => host.stats().openFailures === 1);
  });

  it("serves undici's ProxyAgent: a real HTTP client reaches a local server through both halves", async () => {
    const server = createHttpServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        res.setHeader('content-type', 'text/plain');
        res.end(`${req.method} ${req.url} ${body}`);
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => server.close());
    const { port } = server.address() as AddressInfo;
    const { proxyPort, enclave } = await chain({ enclaveAllow: [`127.0.0.1:${port}`], hostAllow: [`127.0.0.1:${port}`] });
    const agent = new ProxyAgent(`http://127.0.0.1:${proxyPort}`);
    cleanups.push(() => agent.close());
    for (let i = 0; i < 3; i += 1) {
      const response = await request(`http://127.0.0.1:${port}/path?i=${i}`, { method: 'POST', body: `body-${i}`, dispatcher: agent });
      expect(response.statusCode).toBe(200);
      expect(await response.body.text()).toBe(`POST /path?i=${i} body-${i}`);
    }
    // A target outside the allowlist fails in the client with the proxy's status.
    const refused = await request(`http://127.0.0.1:${port + (port === 65_535 ? -1 : 1)}/`, { dispatcher: agent }).then(
      () => undefined,
      (error: Error) => error.message,
    );
    expect(refused).toMatch(/403/);
    expect(enclave.stats().accepted).toBeGreaterThanOrEqual(2);
  });
});
