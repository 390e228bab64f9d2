/**
 * joinStreamsNative over real TCP sockets on 127.0.0.1 (never vsock on this machine), in both of the
 * relay's modes (copy: read/write through a ring; splice: through a pipe): bytes hashed end to end both
 * ways, bytes the streams had read or queued before the join, backpressure with a paused reader (the
 * writer is held), half-close both ways, a peer's reset, the idle timeout, destroy() mid-transfer, a
 * stream without an fd, and the fds: every one the relay made is closed, once.
 */

import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, fstatSync, openSync, readdirSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';

import { afterAll, describe, expect, it, vi } from 'vitest';

import { joinStreamsNative, resolveRelay, streamFd } from './native-pipe.js';
import { readHashed, writeHashed } from '../test/hashed-streams.js';

const MiB = 1024 * 1024;
const servers: Server[] = [];

afterAll(() => {
  for (const server of servers) server.close();
});

/**
 * A connected TCP pair on loopback: [the dialling end, the accepted end], both half-open capable; with
 * `pauseOnConnect` the accepted end starts paused, as the bridges' listeners hand it out.
 */
async function tcpPair(pauseOnConnect = false): Promise<[Socket, Socket]> {
  const server = createServer({ allowHalfOpen: true, pauseOnConnect });
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

function readAll(stream: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return once(stream, 'end').then(() => Buffer.concat(chunks));
}

function closed(stream: Socket): Promise<void> {
  return new Promise((resolve) => (stream.closed ? resolve() : stream.once('close', () => resolve())));
}

function closeOnEnd(stream: Socket): void {
  stream.on('error', () => {});
  stream.on('end', () => stream.end());
  stream.resume();
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const openFds = (): number => readdirSync('/proc/self/fd').length;

describe.each([
  { mode: 'copy', splice: false },
  { mode: 'splice', splice: true },
])('joinStreamsNative ($mode)', ({ splice }) => {
  /**
   * The relay's fds are all closed: exactly as many fds as before in copy mode; in splice mode empty pipes
   * go to the relay's pool (PIPE_POOL_MAX pairs) and come back from it, so at most the pool's 4 fds more.
   */
  function expectNoFdLeft(before: number): void {
    if (splice) expect(openFds()).toBeLessThanOrEqual(before + 4);
    else expect(openFds()).toBe(before);
  }

  /** left <-> [a  relay  b] <-> right */
  async function joined(idleTimeoutMs = 0, bufferBytes?: number) {
    const [left, a] = await tcpPair(true);
    const [b, right] = await tcpPair();
    const join = joinStreamsNative(a, b, { idleTimeoutMs, splice, ...(bufferBytes !== undefined ? { bufferBytes } : {}) });
    return { left, right, a, b, join };
  }

  it('relays hashed bytes exactly, both ways at once, reports the counts, and hands the fds over', async () => {
    const fdsBefore = openFds();
    const { left, right, a, b, join } = await joined();
    // The streams are destroyed at the join: Node no longer reads or writes their sockets.
    await Promise.all([closed(a), closed(b)]);
    expect(streamFd(a)).toBe(-1);
    const up = writeHashed(left, 24 * MiB + 7, randomBytes(64 * 1024 + 1), { end: true });
    const down = writeHashed(right, 16 * MiB + 1, randomBytes(4099), { end: true });
    const atRight = readHashed(right);
    const atLeft = readHashed(left);
    await Promise.all([once(right, 'end'), once(left, 'end'), up.done, down.done]);
    expect([atRight.received, atRight.digest()]).toEqual([up.sent, up.digest()]);
    expect([atLeft.received, atLeft.digest()]).toEqual([down.sent, down.digest()]);
    expect(await join.done).toEqual({ bytesAToB: up.sent, bytesBToA: down.sent, end: 'ended' });
    left.destroy();
    right.destroy();
    await Promise.all([closed(left), closed(right)]);
    expectNoFdLeft(fdsBefore);
  }, 30_000);

  it('sends first what the streams had read, and flushes what was queued on them, in order', async () => {
    const [left, a] = await tcpPair(true);
    const [b, right] = await tcpPair();
    const atRight = readAll(right);
    const atLeft = readAll(left);
    left.write('head|rest-of-head');
    await sleep(50);
    a.resume();
    await once(a, 'data');
    a.pause();
    a.unshift(Buffer.from('kept|'));
    b.write('queued-before|');
    const join = joinStreamsNative(a, b, { idleTimeoutMs: 0, splice });
    left.end('after');
    right.end('tail');
    // b's own queued write reached its peer before anything the relay sends there.
    expect((await atRight).toString()).toBe('queued-before|kept|after');
    expect((await atLeft).toString()).toBe('tail');
    expect((await join.done).end).toBe('ended');
  });

  it('holds the writer while the far reader is paused (bounded buffer), then every byte arrives', async () => {
    const { left, right, join } = await joined(0, 64 * 1024);
    right.pause();
    const total = 64 * MiB;
    const writing = writeHashed(left, total, randomBytes(256 * 1024), { end: true });
    await sleep(500);
    const sentWhilePaused = writing.sent;
    const relayed = join.bytesAToB;
    await sleep(300);
    console.log(`native paused reader: writer stopped after ${(sentWhilePaused / MiB).toFixed(1)} MiB of ${total / MiB}, relay read ${(relayed / MiB).toFixed(1)} MiB`);
    expect(writing.falses).toBeGreaterThan(0);
    expect(sentWhilePaused).toBeLessThan(total);
    // Stopped: nothing more is read while the far side stays full.
    expect(join.bytesAToB).toBe(relayed);
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
  }, 60_000);

  it('half-closes left to right: the right sees end, still answers, the left reads the answer', async () => {
    const { left, right, join } = await joined();
    const request = readAll(right);
    const reply = readAll(left);
    left.end('ping');
    expect((await request).toString()).toBe('ping');
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

  it('ends with the socket error and closes the other side when one side resets', async () => {
    const { left, right, join } = await joined();
    closeOnEnd(right);
    left.write('some');
    await sleep(20);
    left.resetAndDestroy();
    await closed(right);
    const result = await join.done;
    expect(result.end).toBe('error');
    expect(result.error).toMatchObject({ code: 'VSOCK_ECONNRESET', errno: 'ECONNRESET' });
  });

  it('destroys both sides after the idle timeout, and not while bytes move', async () => {
    const { left, right, join } = await joined(150);
    closeOnEnd(right);
    closeOnEnd(left);
    for (let i = 0; i < 6; i += 1) {
      left.write('x');
      await sleep(50);
    }
    expect(join.bytesAToB).toBe(6);
    const result = await join.done;
    expect(result).toMatchObject({ end: 'idle-timeout', bytesAToB: 6, error: { code: 'BRIDGE_IDLE_TIMEOUT' } });
    await Promise.all([closed(left), closed(right)]);
  });

  it('ends each join at its own idle deadline: a shorter one after a longer one, a later one after an earlier one', async () => {
    // The idle timeouts of every join share one timer (IdleWatch): it must be armed earlier for a join
    // with a shorter timeout, and re-armed for a join that joined after it was armed.
    const long = await joined(5_000);
    const short = await joined(100);
    const start = performance.now();
    const shortResult = await short.join.done;
    expect(performance.now() - start).toBeLessThan(2_000);
    expect(shortResult).toMatchObject({ end: 'idle-timeout', error: { code: 'BRIDGE_IDLE_TIMEOUT' } });
    const first = await joined(200);
    await sleep(120);
    const second = await joined(200);
    const firstResult = await first.join.done;
    let secondEnded = false;
    void second.join.done.then(() => (secondEnded = true));
    await sleep(20);
    expect(secondEnded).toBe(false); // not taken along with the first: its own 200 ms have not passed
    expect(firstResult.end).toBe('idle-timeout');
    expect((await second.join.done).end).toBe('idle-timeout');
    long.join.destroy();
    expect((await long.join.done).end).toBe('destroyed');
    for (const { left, right } of [long, short, first, second]) {
      left.destroy();
      right.destroy();
    }
  });

  it('destroy() mid-transfer ends at once; both outer ends see the close and no fd stays open', async () => {
    const fdsBefore = openFds();
    const { left, right, join } = await joined();
    left.on('error', () => {});
    closeOnEnd(right);
    const writing = writeHashed(left, 256 * MiB, randomBytes(64 * 1024));
    writing.done.catch(() => {});
    await sleep(100);
    join.destroy(new Error('stop'));
    const result = await join.done;
    expect(result.end).toBe('destroyed');
    expect(result.error?.message).toBe('stop');
    expect(result.bytesAToB).toBeGreaterThan(0);
    await Promise.all([closed(right), closed(left)]);
    expectNoFdLeft(fdsBefore);
    // The relay's fds were closed once: fds opened now (reusing those numbers) stay open across loop turns.
    const probes = [openSync('/dev/null', 'r'), openSync('/dev/null', 'r'), openSync('/dev/null', 'r')];
    await sleep(50);
    for (const fd of probes) expect(fstatSync(fd).isCharacterDevice()).toBe(true);
    for (const fd of probes) closeSync(fd);
  }, 30_000);

  it('refuses a stream that has no fd with BRIDGE_RELAY_UNAVAILABLE and destroys both', async () => {
    const [left, a] = await tcpPair(true);
    closeOnEnd(left);
    const other = new PassThrough();
    const result = await joinStreamsNative(a, other, { idleTimeoutMs: 0, splice }).done;
    expect(result).toMatchObject({ end: 'error', error: { code: 'BRIDGE_RELAY_UNAVAILABLE' } });
    expect(other.destroyed).toBe(true);
    await closed(left);
  });
});

describe('resolveRelay', () => {
  it('takes js when asked, and native by default or when asked where the addon loads (here)', () => {
    expect(resolveRelay('js')).toBe('js');
    expect(resolveRelay(undefined)).toBe('native');
    expect(resolveRelay('native')).toBe('native');
  });

  it('refuses native without the addon (BRIDGE_RELAY_UNAVAILABLE) and takes js only when nothing was asked', async () => {
    vi.resetModules();
    vi.doMock('../vsock/index.js', async (importOriginal) => ({ ...(await importOriginal<object>()), fdRelayAvailable: () => false }));
    try {
      const { resolveRelay: withoutAddon } = await import('./native-pipe.js');
      expect(() => withoutAddon('native')).toThrow(expect.objectContaining({ code: 'BRIDGE_RELAY_UNAVAILABLE' }));
      expect(withoutAddon(undefined)).toBe('js');
      expect(withoutAddon('js')).toBe('js');
    } finally {
      vi.doUnmock('../vsock/index.js');
      vi.resetModules();
    }
  });
});
