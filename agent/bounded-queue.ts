/**
 * A bounded work queue: at most `concurrency` tasks run, at most `maxQueued` wait, and anything beyond
 * that is refused at once with `AGENT_BUSY` (the caller answers 429) instead of piling up in memory.
 * The agent puts every NSM call through one of these.
 */

import { AgentError } from './errors.js';

export interface BoundedQueue {
  run<T>(task: () => Promise<T>): Promise<T>;
  readonly running: number;
  readonly queued: number;
}

export function createBoundedQueue(options: { concurrency: number; maxQueued: number }): BoundedQueue {
  const waiting: Array<() => void> = [];
  let running = 0;

  return {
    get running() {
      return running;
    },
    get queued() {
      return waiting.length;
    },
    async run<T>(task: () => Promise<T>): Promise<T> {
      if (running < options.concurrency) {
        running += 1;
      } else {
        if (waiting.length >= options.maxQueued) throw new AgentError('AGENT_BUSY', 'the NSM queue is full');
        // A finishing task hands its slot straight to us, so `running` never overshoots.
        await new Promise<void>((resolve) => waiting.push(resolve));
      }
      try {
        return await task();
      } finally {
        const wake = waiting.shift();
        if (wake === undefined) running -= 1;
        else wake();
      }
    },
  };
}
