/**
 * The bounded NSM queue (agent/bounded-queue.ts): never more than `concurrency` tasks at once, even
 * under a burst of a thousand tasks of random duration; waiters start in arrival order; past
 * `maxQueued` waiters the call is refused at once with AGENT_BUSY; a task that fails (by rejecting or
 * by throwing synchronously) frees its slot like one that succeeds. Timers are real but short; no test
 * here waits on anything that cannot settle.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createBoundedQueue } from './bounded-queue.js';
import { AgentError } from './errors.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A promise with its resolve/reject handles, so a test decides when a task finishes. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every already-queued microtask (and the hand-offs they trigger) run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

async function expectBusy(promise: Promise<unknown>): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentError);
  expect((err as AgentError).code).toBe('AGENT_BUSY');
}

describe('createBoundedQueue', () => {
  it('never runs more than `concurrency` tasks in a burst of 1000 with random durations', async () => {
    const concurrency = 4;
    const queue = createBoundedQueue({ concurrency, maxQueued: 1000 });
    let running = 0;
    let maxRunning = 0;
    let maxReported = 0;
    const tasks = Array.from({ length: 1000 }, (_, i) =>
      queue.run(async () => {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        maxReported = Math.max(maxReported, queue.running);
        // Mix synchronous-looking tasks (resolved promise), microtask and timer delays.
        const kind = i % 3;
        if (kind === 1) await Promise.resolve();
        else if (kind === 2) await sleep(Math.floor(Math.random() * 3));
        running -= 1;
        return i;
      }),
    );
    const results = await Promise.all(tasks);
    expect(results).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(maxRunning).toBe(concurrency);
    expect(maxReported).toBeLessThanOrEqual(concurrency);
    expect(queue.running).toBe(0);
    expect(queue.queued).toBe(0);
  });

  it('holds the bound for any concurrency, queue size and mix of outcomes (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 20 }),
        fc.array(fc.record({ delayMs: fc.integer({ min: 0, max: 2 }), fails: fc.boolean() }), { minLength: 1, maxLength: 40 }),
        async (concurrency, maxQueued, specs) => {
          const queue = createBoundedQueue({ concurrency, maxQueued });
          let running = 0;
          let maxRunning = 0;
          const outcomes = await Promise.allSettled(
            specs.map((spec) =>
              queue.run(async () => {
                running += 1;
                maxRunning = Math.max(maxRunning, running);
                await sleep(spec.delayMs);
                running -= 1;
                if (spec.fails) throw new Error('task failed');
                return 'ok';
              }),
            ),
          );
          expect(maxRunning).toBeLessThanOrEqual(concurrency);
          // Exactly the calls beyond concurrency + maxQueued were refused: all calls arrive before any finishes.
          const busy = outcomes.filter((o) => o.status === 'rejected' && (o.reason as AgentError).code === 'AGENT_BUSY').length;
          expect(busy).toBe(Math.max(0, specs.length - concurrency - maxQueued));
          expect(queue.running).toBe(0);
          expect(queue.queued).toBe(0);
        },
      ),
      { seed: 20261121, numRuns: 60 },
    );
  });

  it('starts waiting tasks in arrival order (FIFO)', async () => {
    const queue = createBoundedQueue({ concurrency: 1, maxQueued: 10 });
    const gate = deferred();
    const started: number[] = [];
    const first = queue.run(async () => {
      started.push(0);
      await gate.promise;
    });
    const rest = Array.from({ length: 10 }, (_, i) =>
      queue.run(async () => {
        started.push(i + 1);
      }),
    );
    await settle();
    expect(started).toEqual([0]);
    expect(queue.running).toBe(1);
    expect(queue.queued).toBe(10);
    gate.resolve();
    await Promise.all([first, ...rest]);
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('refuses with AGENT_BUSY beyond the queue, at once, and accepts again once there is room', async () => {
    const queue = createBoundedQueue({ concurrency: 2, maxQueued: 3 });
    const gate = deferred();
    const admitted = Array.from({ length: 5 }, () => queue.run(() => gate.promise));
    await settle();
    expect(queue.running).toBe(2);
    expect(queue.queued).toBe(3);
    let ran = false;
    await expectBusy(
      queue.run(async () => {
        ran = true;
      }),
    );
    expect(ran).toBe(false);
    expect(queue.queued).toBe(3);
    gate.resolve();
    await Promise.all(admitted);
    expect(await queue.run(async () => 'again')).toBe('again');
  });

  it('with maxQueued 0, refuses everything past the running tasks', async () => {
    const queue = createBoundedQueue({ concurrency: 1, maxQueued: 0 });
    const gate = deferred();
    const running = queue.run(() => gate.promise);
    await expectBusy(queue.run(async () => 1));
    gate.resolve();
    await running;
    expect(await queue.run(async () => 2)).toBe(2);
  });

  it('frees the slot of a task that rejects, and of one that throws synchronously', async () => {
    const queue = createBoundedQueue({ concurrency: 1, maxQueued: 1 });
    const gate = deferred();
    const failing = queue.run(() => gate.promise);
    const next = queue.run(async () => 'next');
    await expectBusy(queue.run(async () => 'refused'));
    gate.reject(new Error('nsm failed'));
    await expect(failing).rejects.toThrow('nsm failed');
    expect(await next).toBe('next');
    expect(queue.running).toBe(0);

    const throwing = queue.run((): Promise<never> => {
      throw new Error('sync failure');
    });
    await expect(throwing).rejects.toThrow('sync failure');
    expect(queue.running).toBe(0);
    // Both slots are usable again: concurrency 1 plus one waiter.
    const gate2 = deferred();
    const a = queue.run(() => gate2.promise);
    const b = queue.run(async () => 'b');
    await expectBusy(queue.run(async () => 'c'));
    gate2.resolve();
    await a;
    expect(await b).toBe('b');
  });

  it('a failing task hands its slot to the next waiter without exceeding the bound', async () => {
    const queue = createBoundedQueue({ concurrency: 2, maxQueued: 100 });
    let running = 0;
    let maxRunning = 0;
    const outcomes = await Promise.allSettled(
      Array.from({ length: 100 }, (_, i) =>
        queue.run(async () => {
          running += 1;
          maxRunning = Math.max(maxRunning, running);
          await sleep(i % 2);
          running -= 1;
          if (i % 3 === 0) throw new Error(`task ${i}`);
          return i;
        }),
      ),
    );
    expect(maxRunning).toBe(2);
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(34);
    expect(queue.running).toBe(0);
  });
});
