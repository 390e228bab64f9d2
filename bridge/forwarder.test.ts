/**
 * startForwarder over TCP on 127.0.0.1 (the production transports are vsock on one side; the forwarder
 * does not know): echo through it, the connection cap, a target that refuses (one dial per connection, no
 * busy loop), a dial that never finishes, the idle timeout, close() with and without a grace period, and
 * its logs (constant messages, never payload bytes). With the native relay (the default here) a plain
 * `tcpDialer` to an IPv4 address is dialled by the relay itself (native-pipe.ts joinNativeDial); a
 * wrapped dialer (`counting`, a hanging one) goes through JavaScript. Both are tested: the last describe
 * holds the native dial to the same refusals, deadlines and close() as the JavaScript one.
 */

import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';

import { dialOpen } from './bridges.js';
import { startForwarder } from './forwarder.js';
import { listenTcp, listenTcpFds, tcpDialer, type Dial } from './transports.js';
import { freePort } from '../test/free-port.js';
import { memoryLogger } from '../test/memory-logger.js';

const MiB = 1024 * 1024;
const silent = pino({ level: 'silent' });
const cleanups: Array<() => unknown> = [];

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** An echo server on loopback, half-open capable: it answers what it reads and ends when the client ends. */
async function echoServer(): Promise<{ port: number; server: Server }> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => server.close());
  return { port: (server.address() as AddressInfo).port, server };
}


type Listen = typeof listenTcp;

async function forwarder(dial: Dial, options: { maxConnections?: number; idleTimeoutMs?: number; openTimeoutMs?: number; connectTimeoutMs?: number; logger?: typeof silent; listen?: Listen } = {}) {
  const listener = await (options.listen ?? listenTcp)({ host: '127.0.0.1', port: 0 });
  const started = startForwarder({
    name: 'test',
    listener,
    open: dialOpen(dial, options.connectTimeoutMs),
    maxConnections: options.maxConnections ?? 16,
    idleTimeoutMs: options.idleTimeoutMs ?? 0,
    openTimeoutMs: options.openTimeoutMs ?? 5_000,
    logger: options.logger ?? silent,
  });
  cleanups.push(() => started.close());
  return { forwarder: started, port: listener.port };
}

function client(port: number): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1' });
  return once(socket, 'connect').then(() => socket);
}

function readAll(stream: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return once(stream, 'end').then(() => Buffer.concat(chunks));
}

function closed(stream: Duplex): Promise<void> {
  return new Promise((resolve) => (stream.closed ? resolve() : stream.once('close', () => resolve())));
}

/** Waits until `predicate` holds, polling; fails after `ms`. */
async function until(predicate: () => boolean, ms = 5_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** `count` clients at once, each writing a few bytes: each is closed (or reset) without an answer. */
async function expectRefused(port: number, count: number): Promise<void> {
  const outcomes = await Promise.all(
    Array.from({ length: count }, async () => {
      const socket = await client(port);
      socket.write('never forwarded');
      return refusedOutcome(socket);
    }),
  );
  for (const outcome of outcomes) expect(['end', 'ECONNRESET']).toContain(outcome);
}

/** A dialer that counts its calls. */
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

/** The outcome a client sees of a connection the bridge refuses or drops: end or reset, never data. */
async function refusedOutcome(socket: Socket): Promise<string> {
  let outcome = 'open';
  socket.on('error', (error: NodeJS.ErrnoException) => (outcome = error.code ?? 'error'));
  const data: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => data.push(chunk));
  socket.on('end', () => (outcome = outcome === 'open' ? 'end' : outcome));
  await closed(socket);
  expect(Buffer.concat(data).length).toBe(0);
  return outcome;
}

describe('startForwarder', () => {
  it('forwards bytes exactly both ways and counts them', async () => {
    const echo = await echoServer();
    const { forwarder: fwd, port } = await forwarder(tcpDialer({ host: '127.0.0.1', port: echo.port }));
    const data = randomBytes(4 * MiB + 3);
    const socket = await client(port);
    const back = readAll(socket);
    socket.end(data);
    expect((await back).equals(data)).toBe(true);
    await closed(socket);
    await until(() => fwd.stats().completed === 1);
    expect(fwd.stats()).toMatchObject({ active: 0, accepted: 1, refused: 0, openFailures: 0, bytesIn: data.length, bytesOut: data.length });
  });

  it('closes connections beyond maxConnections at once and counts them, then accepts again', async () => {
    const echo = await echoServer();
    const { forwarder: fwd, port } = await forwarder(tcpDialer({ host: '127.0.0.1', port: echo.port }), { maxConnections: 2 });
    const held = [await client(port), await client(port)];
    for (const socket of held) {
      const echoed = once(socket, 'data');
      socket.write('hold');
      expect(String((await echoed)[0])).toBe('hold');
    }
    const extra = await client(port);
    expect(['end', 'ECONNRESET']).toContain(await refusedOutcome(extra));
    expect(fwd.stats()).toMatchObject({ active: 2, accepted: 3, refused: 1 });

    held[0]!.end();
    held[0]!.resume();
    await closed(held[0]!);
    await until(() => fwd.stats().active === 1);
    const again = await client(port);
    const back = readAll(again);
    again.end('again');
    expect((await back).toString()).toBe('again');
    held[1]!.destroy();
    await until(() => fwd.stats().active === 0);
    expect(fwd.stats()).toMatchObject({ accepted: 4, refused: 1 });
  });

  it('dials once per connection when the target refuses, and then does nothing (no busy loop)', async () => {
    const target = counting(tcpDialer({ host: '127.0.0.1', port: await freePort() }));
    const { forwarder: fwd, port } = await forwarder(target.dial);
    await expectRefused(port, 20);
    await until(() => fwd.stats().openFailures === 20);
    expect(target.calls()).toBe(20);
    const cpuBefore = process.cpuUsage();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const cpu = process.cpuUsage(cpuBefore);
    console.log(`refused target: 20 connections, ${target.calls()} dials, ${((cpu.user + cpu.system) / 1000).toFixed(1)} ms CPU in the next 500 ms`);
    expect(target.calls()).toBe(20);
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(100);
    expect(fwd.stats()).toMatchObject({ active: 0, accepted: 20, openFailures: 20, completed: 0 });
  });

  it('gives up on a dial that never finishes after the connect timeout', async () => {
    let aborted = 0;
    const hanging: Dial = (signal) =>
      new Promise((_, reject) =>
        signal.addEventListener('abort', () => {
          aborted += 1;
          reject(signal.reason);
        }),
      );
    const { forwarder: fwd, port } = await forwarder(hanging, { connectTimeoutMs: 100 });
    const start = performance.now();
    const socket = await client(port);
    expect(['end', 'ECONNRESET']).toContain(await refusedOutcome(socket));
    expect(performance.now() - start).toBeGreaterThanOrEqual(90);
    await until(() => fwd.stats().openFailures === 1);
    expect(aborted).toBe(1);
  });

  it('gives a hanging dial the earlier deadline and its code; close() during the dial aborts it', async () => {
    const reasons: unknown[] = [];
    const hanging: Dial = (signal) =>
      new Promise((_, reject) =>
        signal.addEventListener('abort', () => {
          reasons.push(signal.reason);
          reject(signal.reason);
        }),
      );
    const codes = (error: unknown): string | undefined => (error as { code?: string }).code;
    // The setup deadline first: BRIDGE_SETUP_TIMEOUT; the connect timeout first: BRIDGE_DIAL_TIMEOUT.
    const setupFirst = await forwarder(hanging, { openTimeoutMs: 60, connectTimeoutMs: 5_000 });
    expect(['end', 'ECONNRESET']).toContain(await refusedOutcome(await client(setupFirst.port)));
    const dialFirst = await forwarder(hanging, { openTimeoutMs: 5_000, connectTimeoutMs: 60 });
    expect(['end', 'ECONNRESET']).toContain(await refusedOutcome(await client(dialFirst.port)));
    await until(() => reasons.length === 2);
    expect(reasons.map(codes)).toEqual(['BRIDGE_SETUP_TIMEOUT', 'BRIDGE_DIAL_TIMEOUT']);
    // close() during the dial: BRIDGE_CLOSED, and nothing stays active.
    const closing = await forwarder(hanging);
    const waiting = await client(closing.port);
    waiting.on('error', () => {});
    await until(() => closing.forwarder.stats().active === 1);
    expect((await closing.forwarder.close()).active).toBe(0);
    expect(reasons.map(codes)).toEqual(['BRIDGE_SETUP_TIMEOUT', 'BRIDGE_DIAL_TIMEOUT', 'BRIDGE_CLOSED']);
    expect([setupFirst, dialFirst].map(({ forwarder: fwd }) => fwd.stats())).toMatchObject([
      { openFailures: 1, active: 0 },
      { openFailures: 1, active: 0 },
    ]);
  });

  it('closes a connection idle for idleTimeoutMs', async () => {
    const echo = await echoServer();
    const { forwarder: fwd, port } = await forwarder(tcpDialer({ host: '127.0.0.1', port: echo.port }), { idleTimeoutMs: 150 });
    const socket = await client(port);
    socket.on('error', () => {});
    const echoed = once(socket, 'data');
    socket.write('x');
    await echoed;
    await closed(socket);
    await until(() => fwd.stats().idleTimeouts === 1);
    expect(fwd.stats()).toMatchObject({ active: 0, completed: 1, bytesIn: 1, bytesOut: 1 });
  });

  it('close() stops accepting and waits for open connections within the grace period', async () => {
    const echo = await echoServer();
    const { forwarder: fwd, port } = await forwarder(tcpDialer({ host: '127.0.0.1', port: echo.port }));
    const socket = await client(port);
    const back = readAll(socket);
    socket.write('first');
    await until(() => fwd.stats().active === 1);
    const closing = fwd.close({ graceMs: 5_000 });
    // No new connections once closing.
    const late = connect({ port, host: '127.0.0.1' });
    const lateError = await once(late, 'error').then(([error]) => (error as NodeJS.ErrnoException).code);
    expect(lateError).toBe('ECONNREFUSED');
    // The open one still finishes its exchange.
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.end('second');
    expect((await back).toString()).toBe('firstsecond');
    const stats = await closing;
    expect(stats).toMatchObject({ active: 0, completed: 1 });
  });

  it('close() without a grace period cuts open connections', async () => {
    const echo = await echoServer();
    const { forwarder: fwd, port } = await forwarder(tcpDialer({ host: '127.0.0.1', port: echo.port }));
    const socket = await client(port);
    socket.on('error', () => {});
    socket.resume();
    socket.write('x');
    await until(() => fwd.stats().active === 1);
    const stats = await fwd.close();
    expect(stats.active).toBe(0);
    await closed(socket);
  });

  it('logs constant messages with data in the object and never payload bytes', async () => {
    const { logger, records } = memoryLogger('debug');
    const echo = await echoServer();
    const { forwarder: fwd, port } = await forwarder(tcpDialer({ host: '127.0.0.1', port: echo.port }), { logger, maxConnections: 1 });
    const marker = `PAYLOAD-${randomBytes(8).toString('hex')}`;
    const socket = await client(port);
    const back = readAll(socket);
    socket.write(marker);
    await until(() => fwd.stats().active === 1);
    const refused = await client(port);
    await refusedOutcome(refused);
    socket.end();
    expect((await back).toString()).toBe(marker);
    await fwd.close();
    const messages = records.map((record) => record.msg);
    expect(messages).toEqual(['bridge listening', 'bridge connection refused at the cap', 'bridge connection closed', 'bridge closed']);
    expect(records[0]).toMatchObject({ bridge: 'test', tcp: `127.0.0.1:${port}`, maxConnections: 1 });
    expect(records[2]).toMatchObject({ end: 'ended', bytesIn: marker.length, bytesOut: marker.length });
    expect(JSON.stringify(records)).not.toContain(marker);
  });
});

/**
 * A TCP port on 127.0.0.1 whose connects never complete: a child process listens with a backlog of 1 and
 * is stopped (SIGSTOP) before it accepts anything, and its accept queue is filled; the kernel then drops
 * further SYNs, so a connect waits. Loopback only; the child is killed at the end of the file.
 */
async function blackHolePort(): Promise<number> {
  const child = spawn(process.execPath, ['-e', "const s = require('net').createServer(); s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => { console.log(s.address().port); process.kill(process.pid, 'SIGSTOP'); });"], { stdio: ['ignore', 'pipe', 'ignore'] });
  cleanups.push(() => child.kill('SIGKILL'));
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  // Wait until it has stopped, then fill its accept queue (backlog + 1 on Linux) with connects that complete.
  await until(() => /State:\s+T/.test(readProcStatus(child.pid!)));
  for (let i = 0; i < 3; i++) {
    const filler = connect({ port, host: '127.0.0.1' });
    filler.on('error', () => {});
    cleanups.push(() => filler.destroy());
    await Promise.race([once(filler, 'connect'), sleep(200)]);
  }
  return port;
}

function readProcStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return '';
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.each([
  ['streams (listenTcp, joinNativeDial)', listenTcp],
  ['raw fds (listenTcpFds, joinNativeDialFd)', listenTcpFds],
] as const)('the native relay dials the target itself, connections accepted as %s', (_kind, listen) => {
  const forwarderOn = (dial: Dial, options: Parameters<typeof forwarder>[1] = {}): ReturnType<typeof forwarder> => forwarder(dial, { ...options, listen });

  it('carries early bytes and half-close to an IPv4 target, and counts the join', async () => {
    const echo = await echoServer();
    const { forwarder: fwd, port } = await forwarderOn(tcpDialer({ host: '127.0.0.1', port: echo.port }));
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const back = readAll(socket);
    // Written before the forwarder could have connected the target: the kernel holds it until the relay reads.
    const payload = randomBytes(MiB + 7);
    socket.end(payload);
    expect((await back).equals(payload)).toBe(true);
    await until(() => fwd.stats().completed === 1);
    expect(fwd.stats()).toMatchObject({ active: 0, accepted: 1, openFailures: 0, completed: 1, bytesIn: payload.length, bytesOut: payload.length });
  });

  it('refuses when the target refuses: the client is closed unanswered, BRIDGE_DIAL_FAILED with the errno, no busy loop', async () => {
    const { logger, records } = memoryLogger('debug');
    // Above the 20 at once: a burst accepted in one turn has every dial still pending, and past the cap
    // those would be refused at the cap instead (correctly: they are open connections then).
    const { forwarder: fwd, port } = await forwarderOn(tcpDialer({ host: '127.0.0.1', port: await freePort() }), { logger, maxConnections: 64 });
    await expectRefused(port, 20);
    await until(() => fwd.stats().openFailures === 20);
    const cpuBefore = process.cpuUsage();
    await sleep(500);
    const cpu = process.cpuUsage(cpuBefore);
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(100);
    expect(fwd.stats()).toMatchObject({ active: 0, accepted: 20, openFailures: 20, completed: 0 });
    // One warning per interval, the rest counted as suppressed.
    expect(records.filter((record) => record.msg === 'bridge connection not opened')).toMatchObject([{ code: 'BRIDGE_DIAL_FAILED', causeCode: 'VSOCK_ECONNREFUSED', suppressed: 0 }]);
  });

  it('gives up on a connect that never completes: BRIDGE_DIAL_TIMEOUT at the connect timeout, BRIDGE_SETUP_TIMEOUT at an earlier setup deadline', async () => {
    const target = await blackHolePort();
    const dialFirst = memoryLogger('debug');
    const first = await forwarderOn(tcpDialer({ host: '127.0.0.1', port: target }), { connectTimeoutMs: 150, openTimeoutMs: 5_000, logger: dialFirst.logger });
    const start = performance.now();
    expect(['end', 'ECONNRESET']).toContain(await refusedOutcome(await client(first.port)));
    expect(performance.now() - start).toBeGreaterThanOrEqual(140);
    await until(() => first.forwarder.stats().openFailures === 1);
    const setupFirst = memoryLogger('debug');
    const second = await forwarderOn(tcpDialer({ host: '127.0.0.1', port: target }), { connectTimeoutMs: 5_000, openTimeoutMs: 100, logger: setupFirst.logger });
    expect(['end', 'ECONNRESET']).toContain(await refusedOutcome(await client(second.port)));
    await until(() => second.forwarder.stats().openFailures === 1);
    const warning = (records: Array<Record<string, unknown>>): unknown => records.find((record) => record.msg === 'bridge connection not opened');
    expect(warning(dialFirst.records)).toMatchObject({ code: 'BRIDGE_DIAL_TIMEOUT' });
    expect(warning(setupFirst.records)).toMatchObject({ code: 'BRIDGE_SETUP_TIMEOUT' });
  });

  it('close() during a pending connect ends it: nothing stays active, the client is closed', async () => {
    const target = await blackHolePort();
    const { forwarder: fwd, port } = await forwarderOn(tcpDialer({ host: '127.0.0.1', port: target }), { connectTimeoutMs: 10_000 });
    const waiting = await client(port);
    waiting.on('error', () => {});
    await until(() => fwd.stats().active === 1);
    expect((await fwd.close()).active).toBe(0);
    await closed(waiting);
    expect(fwd.stats()).toMatchObject({ openFailures: 0, completed: 1 });
  });

  it('closes connections beyond maxConnections at once and counts them; cuts idle ones; close() cuts the rest', async () => {
    const echo = await echoServer();
    const { forwarder: fwd, port } = await forwarderOn(tcpDialer({ host: '127.0.0.1', port: echo.port }), { maxConnections: 2 });
    const held = [await client(port), await client(port)];
    for (const socket of held) {
      socket.on('error', () => {});
      const echoed = once(socket, 'data');
      socket.write('hold');
      expect(String((await echoed)[0])).toBe('hold');
    }
    expect(['end', 'ECONNRESET']).toContain(await refusedOutcome(await client(port)));
    expect(fwd.stats()).toMatchObject({ active: 2, accepted: 3, refused: 1 });
    expect((await fwd.close()).active).toBe(0);
    await Promise.all(held.map((socket) => closed(socket)));
    expect(fwd.stats()).toMatchObject({ accepted: 3, refused: 1, completed: 2 });

    const idle = await forwarderOn(tcpDialer({ host: '127.0.0.1', port: echo.port }), { idleTimeoutMs: 150 });
    const socket = await client(idle.port);
    socket.on('error', () => {});
    const echoed = once(socket, 'data');
    socket.write('x');
    await echoed;
    await closed(socket);
    await until(() => idle.forwarder.stats().idleTimeouts === 1);
    expect(idle.forwarder.stats()).toMatchObject({ active: 0, completed: 1, bytesIn: 1, bytesOut: 1 });
  });
});

describe('a listener that hands over raw fds (listenTcpFds)', () => {
  it('is refused with a dial the relay cannot make itself (BRIDGE_CONFIG_INVALID), and its port is closed again', async () => {
    const listener = await listenTcpFds({ host: '127.0.0.1', port: 0 });
    const jsDial = counting(tcpDialer({ host: '127.0.0.1', port: 1 })).dial;
    let code: string | undefined;
    try {
      startForwarder({ name: 'test', listener, open: dialOpen(jsDial), maxConnections: 1, idleTimeoutMs: 0, openTimeoutMs: 1000, logger: silent });
    } catch (error) {
      code = (error as { code?: string }).code;
    }
    expect(code).toBe('BRIDGE_CONFIG_INVALID');
    const socket = connect({ port: listener.port, host: '127.0.0.1' });
    const [error] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
    expect(error.code).toBe('ECONNREFUSED');
  });

  it('takes IPv4 addresses only, and reports a port in use as BRIDGE_LISTEN_FAILED', async () => {
    const taken = await listenTcpFds({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => taken.close());
    for (const options of [{ host: 'localhost', port: 0 }, { host: '::1', port: 0 }, { host: '127.0.0.1', port: taken.port }]) {
      let code: string | undefined;
      try {
        await listenTcpFds(options);
      } catch (error) {
        code = (error as { code?: string }).code;
      }
      expect(code, options.host).toBe('BRIDGE_LISTEN_FAILED');
    }
  });
});
