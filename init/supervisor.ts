/**
 * Supervises one child process (the app, the agent, or a service): spawns it, restarts it when it exits
 * with an exponential backoff, gives up on a crash loop, and stops it on request with SIGTERM and, after
 * the shutdown deadline, SIGKILL. Every exit is logged with its code or signal.
 *
 * States: `starting` (created, not yet spawned) -> `running` -> on exit `backoff` -> `running` ...; `stop()`
 * goes through `stopping` to `stopped`; a crash loop ends in `failed`. `stopped` and `failed` are final.
 *
 * Policy (init/config.ts `RestartPolicy`): the n-th consecutive quick failure waits
 * min(initialBackoffMs x 2^(n-1), maxBackoffMs); a child that ran at least `stableAfterMs` resets n. Every
 * exit restarts the child, whatever its status (an app server that exits 0 has still stopped serving),
 * unless it already had `crashLoopRestarts` restarts within the last `crashLoopWindowMs`: then it is not
 * restarted, the state is `failed`, and one error record with code INIT_CRASH_LOOP lists the recent exits.
 *
 * Each child runs in its own process group (`detached`), so SIGTERM and SIGKILL reach what a shell
 * wrapper (`/bin/sh -c`) started too; when the child exits, whatever is left of its group is killed, so a
 * restarted app never finds a stray copy of itself holding its port. The clock and the spawn function
 * are injectable so the policy is tested with a manual clock; memory is bounded (the restart times and
 * exits kept are at most `crashLoopRestarts + 1`, the exits also capped at MAX_EXITS_KEPT).
 */

import { spawn } from 'node:child_process';

import type { RestartPolicy } from './config.js';
import { errorData, type Logger } from './log.js';

export type ChildState = 'starting' | 'running' | 'backoff' | 'stopping' | 'stopped' | 'failed';

export interface ExitRecord {
  /** Exit code, or null when a signal ended it (or it never started). */
  code: number | null;
  signal: string | null;
  uptimeMs: number;
  /** The spawn error's code (`ENOENT`, ...) when the command could not be started at all. */
  error?: string;
}

export interface SupervisorSnapshot {
  name: string;
  state: ChildState;
  pid: number | null;
  /** Spawns after the first one. */
  restarts: number;
  lastExit: ExitRecord | null;
  /** While in `backoff`: the delay before the next start. */
  backoffMs: number | null;
}

/** One spawned child, as the supervisor sees it. */
export interface ChildHandle {
  readonly pid: number | undefined;
  /** Sends `signal` to the child's process group; never throws. */
  signal(signal: NodeJS.Signals): void;
  /** Sends an IPC message if the child has a channel and it is open; never throws. */
  send(message: unknown): void;
}

export interface ChildEvents {
  onExit(code: number | null, signal: NodeJS.Signals | null): void;
  /** The child could not be spawned (or a later error on its handle). */
  onError(error: Error): void;
  onMessage(message: unknown): void;
}

export interface SpawnSpec {
  command: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Open an IPC channel (fd 3) to the child. */
  ipc: boolean;
}

export type SpawnChild = (spec: SpawnSpec, events: ChildEvents) => ChildHandle;

export interface Clock {
  /** Milliseconds from a monotonic clock. */
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Most exits (and restart times) kept, whatever the crash-loop limit: bounds memory and the log record. */
export const MAX_EXITS_KEPT = 32;

export interface SupervisorOptions {
  /** Used in logs as `child`. */
  name: string;
  spec: SpawnSpec;
  restart: RestartPolicy;
  shutdownDeadlineMs: number;
  logger: Logger;
  spawnChild?: SpawnChild;
  clock?: Clock;
  /** Called after every state change (and after every spawn) with a fresh snapshot. */
  onChange?: (snapshot: SupervisorSnapshot) => void;
  /** IPC messages from the child. */
  onMessage?: (message: unknown) => void;
}

export interface Supervisor {
  readonly name: string;
  /** Spawns the child; once. */
  start(): void;
  /** SIGTERM, then SIGKILL after the deadline; resolves when the child is gone. Idempotent. */
  stop(): Promise<SupervisorSnapshot>;
  snapshot(): SupervisorSnapshot;
  /** Pid of the running child, for the orphan reaper (init/reaper.ts). */
  pid(): number | null;
  /** IPC to the running child (if it has a channel). */
  send(message: unknown): void;
  /** Resolves when the state becomes `stopped` or `failed`. */
  readonly done: Promise<SupervisorSnapshot>;
}

/** The real spawn: a detached child (its own process group) with stdout and stderr shared with init. */
export const spawnProcess: SpawnChild = (spec, events) => {
  const [file, ...args] = spec.command;
  const child = spawn(file!, args, {
    detached: true,
    stdio: spec.ipc ? ['ignore', 'inherit', 'inherit', 'ipc'] : ['ignore', 'inherit', 'inherit'],
    ...(spec.env !== undefined ? { env: spec.env } : {}),
    ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}),
  });
  child.on('exit', (code, signal) => events.onExit(code, signal));
  child.on('error', (error) => events.onError(error));
  if (spec.ipc) child.on('message', (message) => events.onMessage(message));
  const pid = child.pid;
  return {
    pid,
    signal(signal) {
      if (pid === undefined) return;
      try {
        process.kill(-pid, signal);
      } catch {
        // ESRCH: the group is gone. EPERM cannot happen for our own children.
      }
    },
    send(message) {
      if (!child.connected) return;
      try {
        child.send(message as never, (error: Error | null) => void error);
      } catch {
        // The channel closed between the check and the send.
      }
    },
  };
};

export function createSupervisor(options: SupervisorOptions): Supervisor {
  const { name, spec, restart: policy, logger } = options;
  const spawnChild = options.spawnChild ?? spawnProcess;
  const clock = options.clock ?? systemClock;
  /** Exits kept for the crash-loop record; restart times need the full limit (at most 1000, init/config.ts). */
  const keep = Math.min(policy.crashLoopRestarts + 1, MAX_EXITS_KEPT);
  const keepRestartTimes = policy.crashLoopRestarts + 1;

  let state: ChildState = 'starting';
  let handle: ChildHandle | null = null;
  let pid: number | null = null;
  let startedAt = 0;
  let restarts = 0;
  let consecutiveFailures = 0;
  let backoffMs: number | null = null;
  let lastExit: ExitRecord | null = null;
  /** Times of the restarts still inside the crash-loop window (at most `keepRestartTimes`). */
  const restartTimes: number[] = [];
  /** The most recent exits (at most `keep`), for the crash-loop record. */
  const recentExits: ExitRecord[] = [];
  let restartTimer: unknown = null;
  let killTimer: unknown = null;
  let started = false;
  let stopping: Promise<SupervisorSnapshot> | null = null;
  /** Resolves the current stop() once the child is gone. */
  let onGone: (() => void) | null = null;

  let resolveDone!: (snapshot: SupervisorSnapshot) => void;
  const done = new Promise<SupervisorSnapshot>((resolve) => (resolveDone = resolve));

  const snapshot = (): SupervisorSnapshot => ({ name, state, pid, restarts, lastExit: lastExit === null ? null : { ...lastExit }, backoffMs });

  function setState(next: ChildState): void {
    state = next;
    const current = snapshot();
    try {
      options.onChange?.(current);
    } catch (err) {
      logger.error({ child: name, err: errorData(err) }, 'state listener failed');
    }
    if (next === 'stopped' || next === 'failed') resolveDone(current);
  }

  function launch(): void {
    backoffMs = null;
    /** Set once this child's end has been handled (an exit, or a spawn error without one). */
    let ended = false;
    const events: ChildEvents = {
      onExit(code, signal) {
        if (ended) return;
        ended = true;
        exited({ code, signal, uptimeMs: Math.round(clock.now() - startedAt) });
      },
      onError(error) {
        // A spawn failure comes without an exit; a later error (a failed kill or send) changes nothing.
        if (ended || (handle !== null && handle.pid !== undefined)) {
          logger.warn({ child: name, err: errorData(error) }, 'child process error');
          return;
        }
        ended = true;
        logger.error({ child: name, command: spec.command[0], err: errorData(error) }, 'child could not be started');
        exited({ code: null, signal: null, uptimeMs: 0, error: errorData(error).code });
      },
      onMessage(message) {
        options.onMessage?.(message);
      },
    };
    startedAt = clock.now();
    handle = spawnChild(spec, events);
    pid = handle.pid ?? null;
    if (ended) return; // a synchronous spawn error was already handled
    if (pid === null) {
      // Node reports a failed spawn (ENOENT, EACCES) by an 'error' event a moment later, never an exit.
      setState('starting');
      return;
    }
    logger.info({ child: name, pid, restarts }, 'child started');
    setState('running');
  }

  function exited(exit: ExitRecord): void {
    const { code, signal, uptimeMs } = exit;
    if (state === 'stopped' || state === 'failed') return; // a spawn error after stop(): nothing to do
    // Whatever the child left in its process group goes with it (see the header).
    handle?.signal('SIGKILL');
    handle = null;
    const exitedPid = pid;
    pid = null;
    lastExit = exit;
    recentExits.push(exit);
    if (recentExits.length > keep) recentExits.shift();
    if (killTimer !== null) {
      clock.clearTimeout(killTimer);
      killTimer = null;
    }

    if (state === 'stopping' || stopping !== null) {
      logger.info({ child: name, pid: exitedPid, code, signal, uptimeMs }, 'child exited');
      setState('stopped');
      onGone?.();
      return;
    }
    logger.warn({ child: name, pid: exitedPid, code, signal, uptimeMs, restarts }, 'child exited');

    const now = clock.now();
    while (restartTimes.length > 0 && restartTimes[0]! <= now - policy.crashLoopWindowMs) restartTimes.shift();
    if (restartTimes.length >= policy.crashLoopRestarts) {
      logger.error(
        { child: name, code: 'INIT_CRASH_LOOP', restarts, limit: policy.crashLoopRestarts, windowMs: policy.crashLoopWindowMs, exits: recentExits.map((e) => ({ ...e })) },
        'child crash loop; giving up',
      );
      setState('failed');
      return;
    }
    consecutiveFailures = uptimeMs >= policy.stableAfterMs ? 1 : consecutiveFailures + 1;
    backoffMs = Math.min(policy.initialBackoffMs * 2 ** (consecutiveFailures - 1), policy.maxBackoffMs);
    logger.info({ child: name, delayMs: backoffMs, restarts }, 'child restart scheduled');
    restartTimer = clock.setTimeout(() => {
      restartTimer = null;
      if (state !== 'backoff') return;
      restarts += 1;
      restartTimes.push(clock.now());
      if (restartTimes.length > keepRestartTimes) restartTimes.shift();
      launch();
    }, backoffMs);
    setState('backoff');
  }

  return {
    name,
    done,
    start() {
      if (started) return;
      started = true;
      launch();
    },
    stop() {
      stopping ??= (async () => {
        if (state === 'stopped' || state === 'failed') return snapshot();
        if (state === 'starting' || state === 'backoff') {
          if (restartTimer !== null) clock.clearTimeout(restartTimer);
          restartTimer = null;
          backoffMs = null;
          setState('stopped');
          return snapshot();
        }
        const running = handle!;
        const gone = new Promise<void>((resolve) => (onGone = resolve));
        logger.info({ child: name, pid, deadlineMs: options.shutdownDeadlineMs }, 'child stopping');
        setState('stopping');
        running.signal('SIGTERM');
        killTimer = clock.setTimeout(() => {
          killTimer = null;
          logger.warn({ child: name, pid, deadlineMs: options.shutdownDeadlineMs }, 'child shutdown deadline reached; killing');
          running.signal('SIGKILL');
        }, options.shutdownDeadlineMs);
        await gone;
        return snapshot();
      })();
      return stopping;
    },
    snapshot,
    pid: () => pid,
    send(message) {
      handle?.send(message);
    },
  };
}
