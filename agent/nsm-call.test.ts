/**
 * nsmCall: the caller's deadline and the queue's bound are separate things. A call past its deadline
 * answers NSM_TIMEOUT at once but keeps its slot until the device answers, so a stuck NSM can never have
 * more calls in flight than the queue allows.
 */

import { describe, expect, it, vi } from 'vitest';
import { createBoundedQueue } from './bounded-queue.js';
import { nsmCall } from './nsm-call.js';

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('nsmCall', () => {
  it('answers NSM_TIMEOUT at the deadline but holds the slot until the device answers', async () => {
    vi.useFakeTimers();
    try {
      const queue = createBoundedQueue({ concurrency: 1, maxQueued: 1 });
      const stuck = deferred<string>();
      const outcomes: string[] = [];
      const first = nsmCall(() => stuck.promise, { queue, timeoutMs: 100, observe: (_, outcome) => outcomes.push(outcome) });
      const firstError = first.catch((err: unknown) => err);
      await vi.advanceTimersByTimeAsync(100);
      expect(await firstError).toMatchObject({ code: 'NSM_TIMEOUT' });
      // Still in flight: the next call waits, and one more is refused.
      expect(queue.running).toBe(1);
      let secondCalled = false;
      const second = nsmCall(async () => {
        secondCalled = true;
        return 'second';
      }, { queue, timeoutMs: 100 });
      await expect(nsmCall(async () => 'third', { queue, timeoutMs: 100 })).rejects.toMatchObject({ code: 'AGENT_BUSY' });
      await vi.advanceTimersByTimeAsync(1000);
      expect(secondCalled).toBe(false);
      // The device answers late: its slot passes on, and the late answer counts as an error.
      stuck.resolve('late');
      expect(await second).toBe('second');
      expect(outcomes).toEqual(['error']);
      await vi.advanceTimersByTimeAsync(0);
      expect(queue.running).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('passes the answer or the error through, observed once each', async () => {
    const queue = createBoundedQueue({ concurrency: 2, maxQueued: 0 });
    const outcomes: string[] = [];
    const observe = (_: number, outcome: string) => outcomes.push(outcome);
    expect(await nsmCall(async () => 'doc', { queue, timeoutMs: 1000, observe })).toBe('doc');
    const failure = Object.assign(new Error('device'), { code: 'NSM_EIO' });
    await expect(nsmCall(() => Promise.reject(failure), { queue, timeoutMs: 1000, observe })).rejects.toBe(failure);
    expect(outcomes).toEqual(['ok', 'error']);
    await new Promise((resolve) => setImmediate(resolve));
    expect(queue.running).toBe(0);
  });

  it('skips the call of a caller that gave up while queued', async () => {
    const queue = createBoundedQueue({ concurrency: 1, maxQueued: 1 });
    const first = deferred<string>();
    const running = nsmCall(() => first.promise, { queue, timeoutMs: 10_000 });
    let called = false;
    const gone = new Error('client went away');
    const waiting = nsmCall(async () => {
      called = true;
      return 'x';
    }, { queue, timeoutMs: 10_000, abandoned: () => gone });
    first.resolve('first');
    expect(await running).toBe('first');
    await expect(waiting).rejects.toBe(gone);
    expect(called).toBe(false);
    await new Promise((resolve) => setImmediate(resolve));
    expect(queue.running).toBe(0);
  });
});
