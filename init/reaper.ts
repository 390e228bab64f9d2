/**
 * Reaps orphans: processes re-parented to init (it is a child subreaper, or PID 1) that exited. Node
 * cannot wait for arbitrary children and libuv reaps only the ones it spawned, so without this their
 * zombies would pile up. `reap` (init/native.ts `reapOrphans`) never takes a child Node spawned: it is
 * given the supervised children's pids and stops at the first of them (see init/native/init.c).
 *
 * It runs on SIGCHLD and, because an orphan can wait behind one of our own children that libuv has not
 * reaped yet, once every REAP_INTERVAL_MS (an unref'd timer: it never keeps init alive). It must not
 * spawn, signal or wait for anything itself.
 */

import type { EventEmitter } from 'node:events';

import { errorData, type Logger } from './log.js';

export const REAP_INTERVAL_MS = 1000;

export interface OrphanReaper {
  /** Orphans reaped so far. */
  readonly reaped: number;
  stop(): void;
}

export interface OrphanReaperOptions {
  reap(ownPids: readonly number[]): number[];
  ownPids(): number[];
  logger: Logger;
  /** Where SIGCHLD comes from; default process. */
  signals?: EventEmitter;
  intervalMs?: number;
}

export function startOrphanReaper(options: OrphanReaperOptions): OrphanReaper {
  const signals = options.signals ?? process;
  let reaped = 0;
  let failed = false;
  const tick = () => {
    try {
      const pids = options.reap(options.ownPids());
      if (pids.length > 0) {
        reaped += pids.length;
        options.logger.info({ pids }, 'orphans reaped');
      }
    } catch (err) {
      // Logged once; the next tick tries again.
      if (!failed) options.logger.error({ err: errorData(err) }, 'orphan reaping failed');
      failed = true;
    }
  };
  signals.on('SIGCHLD', tick);
  const timer = setInterval(tick, options.intervalMs ?? REAP_INTERVAL_MS);
  timer.unref();
  return {
    get reaped() {
      return reaped;
    },
    stop() {
      signals.off('SIGCHLD', tick);
      clearInterval(timer);
    },
  };
}
