/**
 * joinStreams over real TCP sockets on 127.0.0.1 (never vsock on this machine): byte-exact relay both ways,
 * backpressure with a paused reader (the writer is held, the bridge's buffers stay bounded), half-close in
 * both directions, the idle timeout, and an abrupt close on one side taking down the other.
 */

import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

import { afterAll, describe, expect, it } from 'vitest';

import { joinStreams } from './pipe.js';
import { readHashed, writeHashed } from '../test/hashed-streams.js';

const MiB = 1024 * 1024;
const servers: Server[] = [];

afterAll(() => {
  for (const server of servers) server.close();
});

/** A connected TCP pair on loopback: [the dialling end, the accepted end], both half-open capable. */
async function tcpPair(): Promise<[Socket, Socket]> {
  const server = createServer({ allowHalfOpen: true });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  await once(client, 'connect');
  const [peer] = await accepted;
  server.close();
  return [client, peer];
}

/**
 * left <-> [a  join  b] <-> right: what `left` writes arrives at `right` through the join and back.
 * `a` and `b` are the join's sides, as a bridge holds them.
 */
async function joined(idleTimeoutMs = 0) {
  const [left, a] = await tcpPair();
  const [b, right] = await tcpPair();
  const join = joinStreams(a, b, { idleTimeoutMs });
  return { left, right, a, b, join };
}

function readAll(stream: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return once(stream, 'end').then(() => Buffer.concat(chunks));
}

function closed(stream: Socket): Promise<void> {
  return new Promise((resolve) => (stream.closed ? resolve() : stream.once('close', () => resolve())));
}

/** The outer ends are half-open capable: read to the end and then end our side too, so they close. */
function closeOnEnd(stream: Socket): void {
  stream.on('error', () => {});
  stream.on('end', () => stream.end());
  stream.resume();
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('joinStreams', () => {
  it('relays random bytes exactly, both ways at once, and reports the counts', async () => {
    const { left, right, join } = await joined();
    const up = randomBytes(3 * MiB + 17);
    const down = randomBytes(2 * MiB + 5);
    const atRight = readAll(right);
    const atLeft = readAll(left);
    left.end(up);
    right.end(down);
    expect((await atRight).equals(up)).toBe(true);
    expect((await atLeft).equals(down)).toBe(true);
    const result = await join.done;
    expect(result).toEqual({ bytesAToB: up.length, bytesBToA: down.length, end: 'ended' });
  });

  it('holds the writer while the far reader is paused: bounded buffers, then every byte arrives', async () => {
    const { left, right, a, b, join } = await joined();
    right.pause();
    const total = 32 * MiB;
    const writing = writeHashed(left, total, randomBytes(256 * 1024), { end: true });
    await sleep(500);
    const sentWhilePaused = writing.sent;
    // What the join holds itself: its writable queue towards the paused side and the readable queue it stopped reading.
    const heldByJoin = b.writableLength + a.readableLength;
    console.log(`paused reader: writer stopped after ${(sentWhilePaused / MiB).toFixed(1)} MiB of ${total / MiB}, join holds ${heldByJoin} bytes`);
    expect(writing.falses).toBeGreaterThan(0);
    expect(sentWhilePaused).toBeLessThan(total);
    expect(a.isPaused()).toBe(true);
    // At most one read chunk (64 KiB) past each high-water mark (16 KiB).
    expect(heldByJoin).toBeLessThanOrEqual(b.writableHighWaterMark + a.readableHighWaterMark + 2 * 64 * 1024);

    // A slow reader: stop for a moment after every chunk.
    const reading = readHashed(right, () => {
      right.pause();
      setTimeout(() => right.resume(), 0);
    });
    right.resume();
    await once(right, 'end');
    await writing.done;
    expect(reading.received).toBe(total);
    expect(reading.digest()).toBe(writing.digest());
    right.end();
    expect((await join.done).end).toBe('ended');
  }, 30_000);

  it('half-closes left to right: the right sees end, still answers, the left reads the answer', async () => {
    const { left, right, join } = await joined();
    const request = readAll(right);
    const reply = readAll(left);
    left.end('ping');
    expect((await request).toString()).toBe('ping');
    expect(right.writable).toBe(true);
    right.write('po');
    await sleep(20);
    right.end('ng');
    expect((await reply).toString()).toBe('pong');
    expect(await join.done).toEqual({ bytesAToB: 4, bytesBToA: 4, end: 'ended' });
  });

  it('half-closes right to left the same way', async () => {
    const { left, right, join } = await joined();
    const fromRight = readAll(left);
    const fromLeft = readAll(right);
    right.end('hello');
    expect((await fromRight).toString()).toBe('hello');
    left.end('bye');
    expect((await fromLeft).toString()).toBe('bye');
    expect((await join.done).end).toBe('ended');
  });

  it('destroys both sides after the idle timeout', async () => {
    const { left, right, join } = await joined(150);
    closeOnEnd(left);
    closeOnEnd(right);
    const start = performance.now();
    const result = await join.done;
    const ms = performance.now() - start;
    expect(result.end).toBe('idle-timeout');
    expect(result.error).toMatchObject({ code: 'BRIDGE_IDLE_TIMEOUT' });
    expect(ms).toBeGreaterThanOrEqual(140);
    await Promise.all([closed(left), closed(right)]);
  });

  it('does not time out a connection that keeps moving bytes', async () => {
    const { left, right, join } = await joined(150);
    right.resume();
    for (let i = 0; i < 8; i += 1) {
      left.write('x');
      await sleep(50);
    }
    left.end();
    right.end();
    const result = await join.done;
    expect(result.end).toBe('ended');
    expect(result.bytesAToB).toBe(8);
  });

  it('destroys the other side when one side resets', async () => {
    const { left, right, join } = await joined();
    closeOnEnd(right);
    left.write('some');
    await sleep(20);
    left.resetAndDestroy();
    await closed(right);
    const result = await join.done;
    expect(result.end).toBe('error');
    expect(result.error).toBeDefined();
  });

  it('destroy() ends the join at once', async () => {
    const { left, right, join } = await joined();
    closeOnEnd(left);
    closeOnEnd(right);
    join.destroy(new Error('stop'));
    const result = await join.done;
    expect(result.end).toBe('destroyed');
    expect(result.error?.message).toBe('stop');
    await Promise.all([closed(left), closed(right)]);
  });
});
