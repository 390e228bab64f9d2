/**
 * One NSM call through the bounded queue with a deadline for the caller, the way both /attestation and
 * STEVE's per-session attestation make it. The deadline answers the caller (NSM_TIMEOUT, so 503) but does
 * not free the queue slot: the call keeps it until the device actually answers. Otherwise a stuck device
 * would let ever more calls pile up behind the bound (each one a libuv threadpool thread in the ioctl),
 * and the queue would no longer say how many calls the NSM has in flight.
 */

import type { BoundedQueue } from './bounded-queue.js';

export interface NsmCallOptions {
  queue: BoundedQueue;
  /** Measured from the start of the call, not from the wait in the queue. */
  timeoutMs: number;
  /** Told the call's duration in seconds and how it ended (a late answer after the deadline counts as 'error'). */
  observe?: (seconds: number, outcome: 'ok' | 'error') => void;
  /** Checked when the slot comes: a caller that no longer wants the answer gets this error and no call. */
  abandoned?: () => Error | null;
}

export function nsmCall<T>(call: () => Promise<T>, options: NsmCallOptions): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    options.queue
      .run(async () => {
        const gone = options.abandoned?.() ?? null;
        if (gone !== null) {
          reject(gone);
          return;
        }
        const started = performance.now();
        let late = false;
        const timer = setTimeout(() => {
          late = true;
          reject(Object.assign(new Error(`NSM gave no answer in ${options.timeoutMs} ms`), { code: 'NSM_TIMEOUT' }));
        }, options.timeoutMs);
        try {
          const value = await call();
          options.observe?.((performance.now() - started) / 1000, late ? 'error' : 'ok');
          resolve(value);
        } catch (err) {
          options.observe?.((performance.now() - started) / 1000, 'error');
          reject(err);
        } finally {
          clearTimeout(timer);
        }
      })
      // Only the queue's own refusal (AGENT_BUSY) lands here; the task never throws.
      .catch(reject);
  });
}
