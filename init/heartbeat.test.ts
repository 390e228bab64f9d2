/**
 * Nitro's boot heartbeat with fake streams (no vsock on this machine): the one byte 0xB7 sent, 0xB7 back
 * accepted, another byte, a close, a refused connect and no answer each a coded error, the stream
 * destroyed in every case (a connect that completes after the deadline too). The deadline runs on fake
 * timers. The real exchange over vsock runs in the QEMU guest (test/qemu/init.guest.test.ts).
 */

import type { Duplex } from 'node:stream';

import { afterEach, describe, expect, it, vi } from 'vitest';

import { DEFAULT_HEARTBEAT_TIMEOUT_MS, HEARTBEAT_BYTE, NITRO_HEARTBEAT_PORT, NITRO_PARENT_CID, exchangeHeartbeat } from './heartbeat.js';
import { fakeParent, type FakeParentAnswer } from './test-support.js';

const TARGET = { cid: NITRO_PARENT_CID, port: NITRO_HEARTBEAT_PORT, timeoutMs: DEFAULT_HEARTBEAT_TIMEOUT_MS };

function withParent(answer: FakeParentAnswer) {
  const parent = fakeParent(answer);
  const dialled: Array<[number, number]> = [];
  const open = (cid: number, port: number): Promise<Duplex> => {
    dialled.push([cid, port]);
    return Promise.resolve(parent.stream);
  };
  return { parent, dialled, open };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('exchangeHeartbeat', () => {
  it('has the constants of specs/nitro-enclave.md §4', () => {
    expect([HEARTBEAT_BYTE, NITRO_PARENT_CID, NITRO_HEARTBEAT_PORT]).toEqual([0xb7, 3, 9000]);
  });

  it('sends exactly 0xB7 to the configured CID and port, accepts 0xB7, then closes the stream', async () => {
    const { parent, dialled, open } = withParent({ bytes: [0xb7] });
    await exchangeHeartbeat(open, { ...TARGET, cid: 2, port: 9001 });
    expect(dialled).toEqual([[2, 9001]]);
    expect(parent.written).toEqual([0xb7]);
    expect(parent.stream.destroyed).toBe(true);
  });

  it('judges the first byte only: 0xB7 followed by more is an answer, which is not read further', async () => {
    const { parent, open } = withParent({ bytes: [0xb7, 0x00, 0x01] });
    await exchangeHeartbeat(open, TARGET);
    expect(parent.stream.destroyed).toBe(true);
  });

  it.each([[[0x00]], [[0xb6]], [[0xb8, 0xb7]], [[0xff]]])('another first byte %j is INIT_HEARTBEAT_BAD_REPLY', async (bytes) => {
    const { parent, open } = withParent({ bytes });
    await expect(exchangeHeartbeat(open, TARGET)).rejects.toMatchObject({ code: 'INIT_HEARTBEAT_BAD_REPLY' });
    expect(parent.stream.destroyed).toBe(true);
  });

  it('a close without an answer is INIT_HEARTBEAT_FAILED', async () => {
    const { parent, open } = withParent('close');
    await expect(exchangeHeartbeat(open, TARGET)).rejects.toMatchObject({ code: 'INIT_HEARTBEAT_FAILED', message: 'vsock 3:9000 closed without answering' });
    expect(parent.stream.destroyed).toBe(true);
  });

  it('a refused connect is INIT_HEARTBEAT_FAILED with the cause kept, and no retry', async () => {
    let calls = 0;
    const refused = Object.assign(new Error('connect: Connection reset by peer'), { code: 'VSOCK_ECONNRESET' });
    const error = await exchangeHeartbeat(() => {
      calls += 1;
      return Promise.reject(refused);
    }, TARGET).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'INIT_HEARTBEAT_FAILED', message: 'vsock 3:9000 failed: VSOCK_ECONNRESET', cause: refused });
    expect(calls).toBe(1);
  });

  it('an error on the stream is INIT_HEARTBEAT_FAILED', async () => {
    const { parent, open } = withParent('silent');
    const exchange = exchangeHeartbeat(open, TARGET);
    await new Promise((resolve) => setImmediate(resolve));
    parent.stream.destroy(Object.assign(new Error('reset'), { code: 'VSOCK_ECONNRESET' }));
    await expect(exchange).rejects.toMatchObject({ code: 'INIT_HEARTBEAT_FAILED', message: 'vsock 3:9000 failed: VSOCK_ECONNRESET' });
  });

  it('no answer within timeoutMs is INIT_HEARTBEAT_TIMEOUT, and the stream is destroyed', async () => {
    vi.useFakeTimers();
    const { parent, open } = withParent('silent');
    const exchange = exchangeHeartbeat(open, { ...TARGET, timeoutMs: 5000 });
    const settled = exchange.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(4999);
    expect(parent.written).toEqual([0xb7]);
    expect(parent.stream.destroyed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await settled).toMatchObject({ code: 'INIT_HEARTBEAT_TIMEOUT', message: 'no heartbeat answer from vsock 3:9000 within 5000 ms' });
    expect(parent.stream.destroyed).toBe(true);
  });

  it('a connect that hangs past the deadline times out, and the stream it brings later is destroyed unused', async () => {
    vi.useFakeTimers();
    const parent = fakeParent({ bytes: [0xb7] });
    let connect!: (stream: Duplex) => void;
    const exchange = exchangeHeartbeat(() => new Promise<Duplex>((resolve) => (connect = resolve)), { ...TARGET, timeoutMs: 1000 });
    const settled = exchange.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(1000);
    expect(await settled).toMatchObject({ code: 'INIT_HEARTBEAT_TIMEOUT' });
    connect(parent.stream);
    await vi.advanceTimersByTimeAsync(0);
    expect(parent.written).toEqual([]);
    expect(parent.stream.destroyed).toBe(true);
  });
});
