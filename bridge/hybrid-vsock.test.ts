/**
 * The Unix-socket ("hybrid vsock") transport against a fake backend written here: a Unix socket server
 * that reads `CONNECT <port>\n`, answers as told (`OK <n>\n` and then echoes, nothing, a malformed line, a
 * close) and can hold its reader. Checked: the reply parser exactly and under fast-check (fixed seeds),
 * byte-exact transfers through the dialer and through `host-bridge`'s ingress and egress wiring, bytes
 * after the reply's newline kept for the stream, a refused CONNECT, a hung handshake (the reply deadline
 * and the dial's), a malformed or endless reply, backpressure from a paused guest reader, and the egress
 * listener's socket file (`UDS_<port>`, mode 0600, stale files replaced, live ones and other files not).
 * Unix sockets and TCP on loopback only: nothing here opens AF_VSOCK. The real backend does not pass a
 * half-close on (specs/nitro-enclave.md §3), so no test here relies on one crossing it.
 */

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';

import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';

import { startHostEgress, startHostIngress } from './bridges.js';
import { createAllowlist } from './connect-head.js';
import {
  HYBRID_REPLY_MAX_BYTES,
  UNIX_PATH_MAX_BYTES,
  encodeHybridConnect,
  hybridVsockDialer,
  hybridVsockListenPath,
  listenUnixStreams,
  parseHybridConnectReply,
} from './hybrid-vsock.js';
import { dialWithin } from './transports.js';
import { rejection } from '../test/rejection.js';
import { readHashed, writeHashed } from '../test/hashed-streams.js';

const MiB = 1024 * 1024;
const silent = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'hv-'));
const cleanups: Array<() => unknown> = [];
let socketCount = 0;

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const nextPath = (): string => join(dir, `s${++socketCount}`);

type Answer = { reply: string; then?: 'echo' | 'hold' | 'close' } | 'close' | 'silent';

interface FakeBackend {
  readonly path: string;
  /** The ports asked for, in order. */
  readonly asked: number[];
  /** The guest-side sockets after their handshake (for backpressure: `hold` leaves them paused). */
  readonly guests: Socket[];
  /** Connections the backend saw closed. */
  closedCount(): number;
}

/**
 * A fake vhost-device-vsock `--uds-path` socket: reads one `CONNECT <port>\n` line (at most 32 bytes),
 * then answers per `answer`. After `OK`, `echo` returns every byte, `hold` reads nothing more.
 */
async function fakeBackend(answer: Answer): Promise<FakeBackend> {
  const path = nextPath();
  const asked: number[] = [];
  const guests: Socket[] = [];
  let closedCount = 0;
  // Not half-open: the backend closes once our side is gone, which the tests count.
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.on('close', () => (closedCount += 1));
    let line = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      line = Buffer.concat([line, chunk]);
      const newline = line.indexOf(0x0a);
      if (newline === -1) {
        if (line.length > 32) socket.destroy();
        return;
      }
      socket.off('data', onData);
      socket.pause();
      const rest = line.subarray(newline + 1);
      const match = /^CONNECT (\d+)$/.exec(line.subarray(0, newline).toString('latin1'));
      if (match === null) {
        socket.destroy();
        return;
      }
      asked.push(Number(match[1]));
      if (answer === 'close') {
        socket.destroy();
        return;
      }
      if (answer === 'silent') {
        socket.resume(); // reads (and drops) nothing but the end, so a close is seen
        return;
      }
      socket.write(bytes(answer.reply));
      if (rest.length > 0) socket.unshift(rest);
      guests.push(socket);
      if (answer.then === 'echo') {
        socket.pipe(socket);
        socket.resume();
      } else if (answer.then === 'close') socket.end();
    };
    socket.on('data', onData);
  });
  server.listen(path);
  await once(server, 'listening');
  cleanups.push(() => server.close());
  return { path, asked, guests, closedCount: () => closedCount };
}

function closed(stream: Duplex): Promise<void> {
  return new Promise((resolve) => (stream.closed ? resolve() : stream.once('close', () => resolve())));
}

/** Reads exactly `length` bytes (no end needed: half-close does not cross the backend). */
function readBytes(stream: Duplex, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= length) {
        stream.off('data', onData);
        resolve(Buffer.concat(chunks));
      }
    };
    stream.on('data', onData);
    stream.resume(); // the dialer hands its stream over paused
    stream.once('error', reject);
    stream.once('close', () => got < length && reject(new Error(`closed after ${got} of ${length} bytes`)));
  });
}

async function dial(path: string, port: number, replyTimeoutMs?: number): Promise<Duplex> {
  const controller = new AbortController();
  return hybridVsockDialer({ path, port, ...(replyTimeoutMs !== undefined ? { replyTimeoutMs } : {}) })(controller.signal);
}

describe('the reply line', () => {
  it('encodes CONNECT with the port in decimal and a newline, nothing else', () => {
    expect(Buffer.from(encodeHybridConnect(8080)).toString('latin1')).toBe('CONNECT 8080\n');
    expect(Buffer.from(encodeHybridConnect(0xffff_ffff)).toString('latin1')).toBe('CONNECT 4294967295\n');
    for (const bad of [-1, 1.5, 2 ** 32, Number.NaN]) expect(() => encodeHybridConnect(bad)).toThrow(expect.objectContaining({ code: 'BRIDGE_CONFIG_INVALID' }));
  });

  it('accepts exactly "OK <u32>\\n" and returns the number', () => {
    expect(parseHybridConnectReply(text('OK 0\n'))).toBe(0);
    expect(parseHybridConnectReply(text('OK 1073741824\n'))).toBe(1073741824);
    expect(parseHybridConnectReply(text('OK 4294967295\n'))).toBe(4294967295);
  });

  it.each(['OK 4294967296\n', 'OK 01\n', 'ok 1\n', 'OK 1\r\n', 'OK  1\n', 'OK\n', 'OK \n', 'OK 1', 'OK 1 \n', 'OK -1\n', 'OK +1\n', 'OK 0x10\n', 'FAILED\n', '\n', '', 'OK 1\nOK 2\n', ' OK 1\n', 'OK 99999999999\n', 'OK 1\u0000\n'])(
    'refuses %j with BRIDGE_HYBRID_MALFORMED',
    (reply) => {
      expect(() => parseHybridConnectReply(bytes(reply))).toThrow(expect.objectContaining({ code: 'BRIDGE_HYBRID_MALFORMED' }));
    },
  );

  it('refuses a line longer than HYBRID_REPLY_MAX_BYTES before looking at it', () => {
    expect(() => parseHybridConnectReply(bytes(`OK 1${' '.repeat(HYBRID_REPLY_MAX_BYTES)}\n`))).toThrow(expect.objectContaining({ code: 'BRIDGE_HYBRID_MALFORMED' }));
  });

  it('round-trips every u32 (fast-check)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), (n) => parseHybridConnectReply(text(`OK ${n}\n`)) === n),
      { seed: 0x4856, numRuns: 2000 },
    );
  });

  it('on random and mutated bytes, accepts exactly what an independent check accepts, else a coded error (fast-check)', () => {
    const oracle = (line: Uint8Array): number | undefined => {
      // Independent of the parser's regex: walk the bytes.
      if (line.length < 5 || line[0] !== 0x4f || line[1] !== 0x4b || line[2] !== 0x20 || line[line.length - 1] !== 0x0a) return undefined;
      const digits = line.subarray(3, line.length - 1);
      if (digits.length === 0 || digits.length > 10 || (digits.length > 1 && digits[0] === 0x30)) return undefined;
      let value = 0;
      for (const d of digits) {
        if (d < 0x30 || d > 0x39) return undefined;
        value = value * 10 + (d - 0x30);
      }
      return value <= 0xffff_ffff ? value : undefined;
    };
    const valid = fc.integer({ min: 0, max: 0xffff_ffff }).map((n) => text(`OK ${n}\n`));
    const mutated = fc.tuple(valid, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([line, at, value]) => {
      const copy = Uint8Array.from(line);
      copy[at % copy.length] = value;
      return copy;
    });
    const lines = fc.oneof(fc.uint8Array({ maxLength: 80 }), valid, mutated);
    fc.assert(
      fc.property(lines, (line) => {
        const expected = oracle(line);
        try {
          expect(parseHybridConnectReply(line)).toBe(expected);
        } catch (error) {
          if (expected !== undefined) throw error;
          expect((error as { code?: unknown }).code).toBe('BRIDGE_HYBRID_MALFORMED');
        }
      }),
      { seed: 0x5644, numRuns: 5000 },
    );
  });
});

describe('hybridVsockDialer against a fake backend', () => {
  it('sends CONNECT <port>, takes OK, and carries bytes exactly both ways', async () => {
    const backend = await fakeBackend({ reply: 'OK 1073741824\n', then: 'echo' });
    const stream = await dial(backend.path, 8080);
    expect(backend.asked).toEqual([8080]);
    const data = randomBytes(4 * MiB + 3);
    const back = readBytes(stream, data.length);
    stream.write(data);
    expect((await back).equals(data)).toBe(true);
    stream.destroy();
  });

  it('bytes after the newline, in the same write as the reply, belong to the stream', async () => {
    const backend = await fakeBackend({ reply: 'OK 7\nguest speaks first', then: 'echo' });
    const stream = await dial(backend.path, 5000);
    expect((await readBytes(stream, 18)).toString('latin1')).toBe('guest speaks first');
    stream.destroy();
  });

  it('a close without a reply (no listener on that guest port) is BRIDGE_HYBRID_REFUSED', async () => {
    const backend = await fakeBackend('close');
    expect(await rejection(dial(backend.path, 9))).toMatchObject({ code: 'BRIDGE_HYBRID_REFUSED' });
    expect(backend.asked).toEqual([9]);
  });

  it('a close inside the reply is BRIDGE_HYBRID_MALFORMED', async () => {
    const backend = await fakeBackend({ reply: 'OK 12', then: 'close' });
    expect(await rejection(dial(backend.path, 9))).toMatchObject({ code: 'BRIDGE_HYBRID_MALFORMED' });
  });

  it.each(['FAILED\n', 'OK\n', 'OK 01\n', 'HTTP/1.1 200 OK\r\n'])('a malformed reply %j is BRIDGE_HYBRID_MALFORMED and the socket is closed', async (reply) => {
    const backend = await fakeBackend({ reply, then: 'hold' });
    expect(await rejection(dial(backend.path, 9))).toMatchObject({ code: 'BRIDGE_HYBRID_MALFORMED' });
    backend.guests[0]!.resume();
    await closed(backend.guests[0]!);
  });

  it('a reply that never ends its line is refused at HYBRID_REPLY_MAX_BYTES, not buffered', async () => {
    const backend = await fakeBackend({ reply: 'OK 1'.padEnd(HYBRID_REPLY_MAX_BYTES * 4, '1'), then: 'hold' });
    expect(await rejection(dial(backend.path, 9))).toMatchObject({ code: 'BRIDGE_HYBRID_MALFORMED' });
  });

  it('a hung handshake is BRIDGE_HYBRID_TIMEOUT at the reply deadline, and the socket is closed', async () => {
    const backend = await fakeBackend('silent');
    expect(await rejection(dial(backend.path, 9, 50))).toMatchObject({ code: 'BRIDGE_HYBRID_TIMEOUT' });
    expect(backend.asked).toEqual([9]);
    for (let i = 0; i < 100 && backend.closedCount() === 0; i++) await sleep(10);
    expect(backend.closedCount()).toBe(1);
  });

  it("under dialWithin, the dial's own deadline covers the handshake: BRIDGE_DIAL_TIMEOUT", async () => {
    const backend = await fakeBackend('silent');
    const error = await rejection(dialWithin(hybridVsockDialer({ path: backend.path, port: 9 }), 50, new AbortController().signal));
    expect(error).toMatchObject({ code: 'BRIDGE_DIAL_TIMEOUT' });
  });

  it('no backend at the path is BRIDGE_DIAL_FAILED with ENOENT under dialWithin', async () => {
    const error = await rejection(dialWithin(hybridVsockDialer({ path: join(dir, 'absent'), port: 9 }), 1000, new AbortController().signal));
    expect(error).toMatchObject({ code: 'BRIDGE_DIAL_FAILED', cause: { code: 'ENOENT' } });
  });
});

/** host-bridge's ingress over the hybrid transport: TCP on loopback -> Unix socket -> the fake backend. */
async function ingress(backendPath: string, port: number): Promise<number> {
  const forwarder = await startHostIngress({ listen: { host: '127.0.0.1', port: 0 }, uds: backendPath, vsockPort: port, logger: silent, idleTimeoutMs: 0 });
  cleanups.push(() => forwarder.close());
  return Number(String(forwarder.description.tcp).split(':').pop());
}

function tcpClient(port: number): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  return once(socket, 'connect').then(() => socket);
}

describe('host-bridge ingress with --uds', () => {
  it('joins each TCP client to the guest port through CONNECT/OK, bytes exact', async () => {
    const backend = await fakeBackend({ reply: 'OK 1024\n', then: 'echo' });
    const port = await ingress(backend.path, 8080);
    const data = randomBytes(2 * MiB + 1);
    const clients = await Promise.all([tcpClient(port), tcpClient(port)]);
    for (const socket of clients) {
      const back = readBytes(socket, data.length);
      socket.write(data);
      expect((await back).equals(data)).toBe(true);
      socket.destroy();
    }
    expect(backend.asked).toEqual([8080, 8080]);
  });

  it('a refused CONNECT closes the client without a byte', async () => {
    const backend = await fakeBackend('close');
    const socket = await tcpClient(await ingress(backend.path, 8080));
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    await closed(socket);
    expect(Buffer.concat(received).length).toBe(0);
  });

  it('holds the TCP writer while the guest reader is paused, then every byte arrives', async () => {
    const backend = await fakeBackend({ reply: 'OK 1\n', then: 'hold' });
    const socket = await tcpClient(await ingress(backend.path, 8080));
    const total = 32 * MiB;
    const writing = writeHashed(socket, total, randomBytes(256 * 1024));
    for (let i = 0; i < 200 && backend.guests.length === 0; i++) await sleep(10);
    await sleep(500);
    const sentWhilePaused = writing.sent;
    expect(writing.falses).toBeGreaterThan(0);
    expect(sentWhilePaused).toBeLessThan(total);

    const guest = backend.guests[0]!;
    const reading = readHashed(guest);
    guest.resume();
    await writing.done;
    for (let i = 0; i < 1000 && reading.received < total; i++) await sleep(10);
    expect(reading.received).toBe(total);
    expect(reading.digest()).toBe(writing.digest());
    socket.destroy();
  }, 30_000);
});

describe('host-bridge egress with --uds', () => {
  it('listens on UDS_<port> (mode 0600) and tunnels the enclave\'s CONNECT to an allowed TCP target, bytes exact', async () => {
    const target: Server = createServer((socket) => {
      socket.on('error', () => {});
      socket.pipe(socket);
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    cleanups.push(() => target.close());
    const targetPort = (target.address() as AddressInfo).port;

    const uds = nextPath();
    const forwarder = await startHostEgress({ allowlist: createAllowlist([`127.0.0.1:${targetPort}`]), uds, vsockPort: 3128, logger: silent, idleTimeoutMs: 0 });
    cleanups.push(() => forwarder.close());
    const path = hybridVsockListenPath(uds, 3128);
    expect(path).toBe(`${uds}_3128`);
    expect(forwarder.description).toEqual({ unix: path });
    expect(statSync(path).isSocket()).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);

    // What the backend does for a guest connection to the host's port 3128: connect to UDS_3128, no preamble.
    const enclave = connect({ path });
    enclave.on('error', () => {});
    await once(enclave, 'connect');
    const head = `CONNECT 127.0.0.1:${targetPort} HTTP/1.1\r\nHost: 127.0.0.1:${targetPort}\r\n\r\n`;
    const answer = 'HTTP/1.1 200 Connection Established\r\n\r\n';
    const data = randomBytes(MiB + 7);
    const back = readBytes(enclave, answer.length + data.length);
    enclave.write(head);
    enclave.write(data);
    const got = await back;
    expect(got.subarray(0, answer.length).toString('latin1')).toBe(answer);
    expect(got.subarray(answer.length).equals(data)).toBe(true);
    enclave.destroy();

    await forwarder.close();
    expect(existsSync(path)).toBe(false);
  });

  it('replaces a stale socket file, refuses a live one and leaves any other file alone', async () => {
    // Stale: a socket file nobody accepts on, as a killed process leaves it (a closed listener removes its file).
    const stalePath = nextPath();
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stalePath)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(statSync(stalePath).isSocket()).toBe(true);
    const replaced = await listenUnixStreams({ path: stalePath });
    await replaced.close();

    const livePath = nextPath();
    const live = await listenUnixStreams({ path: livePath });
    cleanups.push(() => live.close());
    expect(await rejection(listenUnixStreams({ path: livePath }))).toMatchObject({ code: 'BRIDGE_LISTEN_FAILED' });

    const filePath = nextPath();
    writeFileSync(filePath, 'not a socket');
    expect(await rejection(listenUnixStreams({ path: filePath }))).toMatchObject({ code: 'BRIDGE_LISTEN_FAILED' });
    expect(readFileSync(filePath, 'utf8')).toBe('not a socket');

    expect(await rejection(listenUnixStreams({ path: `/${'x'.repeat(UNIX_PATH_MAX_BYTES)}` }))).toMatchObject({ code: 'BRIDGE_LISTEN_FAILED' });
  });
});
