/**
 * The supervisor's policy with a manual clock and a fake spawn (backoff sequence, reset after a stable
 * run, crash-loop limit and its log record, stop in every state, SIGKILL after the deadline, spawn
 * errors), then the same behaviour with real processes (`process.execPath -e`): a crashing child is
 * restarted, a child that traps SIGTERM exits on it, one that ignores it is killed at the deadline, and a
 * shell's background leftovers die with their group. Real-process tests use short backoffs and bounded
 * waits.
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import type { RestartPolicy } from './config.js';
import { createSupervisor, spawnProcess, type SupervisorSnapshot } from './supervisor.js';
import { fakeSpawn, manualClock, memoryLogger, pick } from './test-support.js';

const POLICY: RestartPolicy = { initialBackoffMs: 100, maxBackoffMs: 1000, crashLoopRestarts: 5, crashLoopWindowMs: 60_000, stableAfterMs: 10_000 };

function setup(policy: Partial<RestartPolicy> = {}, shutdownDeadlineMs = 5000) {
  const clock = manualClock();
  const spawner = fakeSpawn();
  const { logger, records } = memoryLogger();
  const changes: SupervisorSnapshot[] = [];
  const supervisor = createSupervisor({
    name: 'app',
    spec: { command: ['/bin/app', '--flag'], ipc: false },
    restart: { ...POLICY, ...policy },
    shutdownDeadlineMs,
    logger,
    clock,
    spawnChild: spawner.spawnChild,
    onChange: (s) => changes.push(s),
  });
  const current = () => spawner.children[spawner.children.length - 1]!;
  return { clock, spawner, records, changes, supervisor, current };
}

describe('restart policy (manual clock)', () => {
  it('starts, and restarts after each exit with the backoff doubling up to the cap', () => {
    const { clock, spawner, supervisor, current, records } = setup();
    supervisor.start();
    expect(supervisor.snapshot()).toEqual({ name: 'app', state: 'running', pid: 1000, restarts: 0, lastExit: null, backoffMs: null });
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      clock.advance(50);
      current().exit(1);
      expect(supervisor.snapshot().state).toBe('backoff');
      delays.push(supervisor.snapshot().backoffMs!);
      clock.advance(supervisor.snapshot().backoffMs! - 1);
      expect(spawner.children).toHaveLength(i + 1);
      clock.advance(1);
      expect(spawner.children).toHaveLength(i + 2);
      expect(supervisor.snapshot()).toMatchObject({ state: 'running', restarts: i + 1, lastExit: { code: 1, signal: null, uptimeMs: 50 } });
    }
    // 100 x 2^(n-1), capped at 1000.
    expect(delays).toEqual([100, 200, 400, 800, 1000]);
    expect(pick(records, 'child restart scheduled').map((r) => r.delayMs)).toEqual([100, 200, 400, 800, 1000]);
    expect(spawner.children.every((c) => c.spec.command.join(' ') === '/bin/app --flag')).toBe(true);
  });

  it('reports each exit with its code or signal', () => {
    const { clock, supervisor, current, records } = setup();
    supervisor.start();
    clock.advance(20);
    current().exit(null, 'SIGSEGV');
    expect(pick(records, 'child exited')).toEqual([{ child: 'app', pid: 1000, code: null, signal: 'SIGSEGV', uptimeMs: 20, restarts: 0 }]);
    expect(records.find((r) => r.msg === 'child exited')!.level).toBe(40);
    clock.advance(100);
    clock.advance(7);
    current().exit(3);
    expect(pick(records, 'child exited')[1]).toEqual({ child: 'app', pid: 1001, code: 3, signal: null, uptimeMs: 7, restarts: 1 });
  });

  it('a child that stayed up for stableAfterMs starts the backoff over', () => {
    const { clock, supervisor, current } = setup({ crashLoopRestarts: 100 });
    supervisor.start();
    for (let i = 0; i < 3; i++) {
      current().exit(1);
      clock.advance(supervisor.snapshot().backoffMs!);
    }
    expect(supervisor.snapshot().restarts).toBe(3);
    clock.advance(10_000); // stable
    current().exit(1);
    expect(supervisor.snapshot().backoffMs).toBe(100);
    clock.advance(100);
    current().exit(1);
    expect(supervisor.snapshot().backoffMs).toBe(200);
  });

  it('gives up after crashLoopRestarts restarts within the window: state failed and one INIT_CRASH_LOOP record with the exits', () => {
    const { clock, spawner, supervisor, current, records, changes } = setup({ crashLoopRestarts: 3 });
    supervisor.start();
    for (let i = 0; i < 3; i++) {
      clock.advance(10);
      current().exit(10 + i);
      clock.advance(supervisor.snapshot().backoffMs!);
    }
    clock.advance(10);
    current().exit(13);
    expect(supervisor.snapshot()).toMatchObject({ state: 'failed', restarts: 3, pid: null, lastExit: { code: 13 } });
    expect(spawner.children).toHaveLength(4);
    expect(clock.pending()).toEqual([]);
    const loop = records.filter((r) => r.code === 'INIT_CRASH_LOOP');
    expect(loop).toHaveLength(1);
    expect(loop[0]).toEqual({
      level: 50,
      msg: 'child crash loop; giving up',
      child: 'app',
      code: 'INIT_CRASH_LOOP',
      restarts: 3,
      limit: 3,
      windowMs: 60_000,
      exits: [10, 11, 12, 13].map((code) => ({ code, signal: null, uptimeMs: 10 })),
    });
    expect(changes[changes.length - 1]!.state).toBe('failed');
    // Nothing more happens, whatever the clock does.
    clock.advance(1_000_000);
    expect(spawner.children).toHaveLength(4);
  });

  it('restarts spread wider than the window never count as a crash loop', () => {
    const { clock, supervisor, current } = setup({ crashLoopRestarts: 2, crashLoopWindowMs: 1000, maxBackoffMs: 100 });
    supervisor.start();
    for (let i = 0; i < 10; i++) {
      current().exit(1);
      clock.advance(100);
      clock.advance(600); // 700 ms between restarts: at most 2 inside any 1000 ms window
    }
    expect(supervisor.snapshot()).toMatchObject({ state: 'running', restarts: 10 });
  });

  it('crashLoopRestarts 0: the first exit is final', async () => {
    const { supervisor, current } = setup({ crashLoopRestarts: 0 });
    supervisor.start();
    current().exit(0);
    expect(supervisor.snapshot().state).toBe('failed');
    await expect(supervisor.done).resolves.toMatchObject({ state: 'failed', restarts: 0 });
  });

  it('keeps at most MAX_EXITS_KEPT exits in the crash-loop record', () => {
    const { clock, supervisor, current, records } = setup({ crashLoopRestarts: 100, maxBackoffMs: 1, initialBackoffMs: 1 });
    supervisor.start();
    for (let i = 0; i <= 100; i++) {
      current().exit(i % 256);
      clock.advance(1);
    }
    expect(supervisor.snapshot().state).toBe('failed');
    const record = records.find((r) => r.code === 'INIT_CRASH_LOOP')!;
    expect((record.exits as unknown[]).length).toBe(32);
  });

  it('a command that cannot be spawned counts as an exit with its error code', async () => {
    const { clock, spawner, supervisor, records } = setup({ crashLoopRestarts: 1 });
    spawner.failNext('ENOENT');
    supervisor.start();
    expect(supervisor.snapshot().state).toBe('starting');
    await Promise.resolve();
    expect(supervisor.snapshot()).toMatchObject({ state: 'backoff', lastExit: { code: null, signal: null, uptimeMs: 0, error: 'ENOENT' } });
    expect(pick(records, 'child could not be started')).toEqual([{ child: 'app', command: '/bin/app', err: { code: 'ENOENT', message: 'spawn /bin/app ENOENT' } }]);
    spawner.failNext('ENOENT');
    clock.advance(100);
    await Promise.resolve();
    expect(supervisor.snapshot().state).toBe('failed');
  });
});

describe('stop (manual clock)', () => {
  it('sends SIGTERM to the running child and resolves when it exits', async () => {
    const { supervisor, current, records, changes } = setup();
    supervisor.start();
    const stopped = supervisor.stop();
    expect(supervisor.snapshot().state).toBe('stopping');
    expect(current().signals).toEqual(['SIGTERM']);
    current().exit(0);
    await expect(stopped).resolves.toMatchObject({ state: 'stopped', lastExit: { code: 0 } });
    expect(changes.map((c) => c.state)).toEqual(['running', 'stopping', 'stopped']);
    expect(pick(records, 'child exited')).toEqual([{ child: 'app', pid: 1000, code: 0, signal: null, uptimeMs: 0 }]);
    // After the exit, leftovers of the group get SIGKILL; the child is not restarted.
    expect(current().signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(supervisor.stop()).toBe(stopped);
  });

  it('SIGKILLs a child still running at the deadline', async () => {
    const { clock, supervisor, current, records } = setup({}, 3000);
    supervisor.start();
    const stopped = supervisor.stop();
    clock.advance(2999);
    expect(current().signals).toEqual(['SIGTERM']);
    clock.advance(1);
    expect(current().signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(pick(records, 'child shutdown deadline reached; killing')).toEqual([{ child: 'app', pid: 1000, deadlineMs: 3000 }]);
    current().exit(null, 'SIGKILL');
    await expect(stopped).resolves.toMatchObject({ state: 'stopped', lastExit: { signal: 'SIGKILL' } });
  });

  it('in backoff: cancels the restart', async () => {
    const { clock, spawner, supervisor, current } = setup();
    supervisor.start();
    current().exit(1);
    await expect(supervisor.stop()).resolves.toMatchObject({ state: 'stopped', restarts: 0 });
    clock.advance(10_000);
    expect(spawner.children).toHaveLength(1);
  });

  it('after a crash loop: stays failed', async () => {
    const { supervisor, current } = setup({ crashLoopRestarts: 0 });
    supervisor.start();
    current().exit(1);
    await expect(supervisor.stop()).resolves.toMatchObject({ state: 'failed' });
  });
});

/** Waits until `predicate` holds, polling every 20 ms, for at most `ms`. */
async function until(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const REAL_POLICY: RestartPolicy = { initialBackoffMs: 20, maxBackoffMs: 40, crashLoopRestarts: 2, crashLoopWindowMs: 60_000, stableAfterMs: 60_000 };

/** Child code that creates the file named by its first argument: the child's "handlers installed" signal. */
const READY = "require('node:fs').writeFileSync(process.argv[1], '')";
let readyCount = 0;
const readyDir = mkdtempSync(join(tmpdir(), 'init-supervisor-'));
afterAll(() => rmSync(readyDir, { recursive: true, force: true }));
const readyFile = () => join(readyDir, `ready-${++readyCount}`);

function realSupervisor(script: string, shutdownDeadlineMs = 10_000, command?: string[], arg?: string) {
  const { logger, records } = memoryLogger();
  const supervisor = createSupervisor({
    name: 'real',
    spec: { command: command ?? [process.execPath, '-e', script, ...(arg !== undefined ? [arg] : [])], ipc: false },
    restart: REAL_POLICY,
    shutdownDeadlineMs,
    logger,
  });
  return { supervisor, records };
}

/** True while `pid` runs; a zombie (state Z, waiting for whoever reaps orphans here) counts as gone. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('real processes', () => {
  it('a crashing child is restarted until the crash-loop limit; every exit status is kept', async () => {
    const { supervisor, records } = realSupervisor('process.exit(7)');
    supervisor.start();
    const end = await supervisor.done;
    expect(end).toMatchObject({ state: 'failed', restarts: 2, lastExit: { code: 7, signal: null } });
    const loop = records.find((r) => r.code === 'INIT_CRASH_LOOP')!;
    expect((loop.exits as Array<{ code: number }>).map((e) => e.code)).toEqual([7, 7, 7]);
  }, 30_000);

  it('a child that traps SIGTERM exits on it, well before the deadline', async () => {
    const ready = readyFile();
    const { supervisor, records } = realSupervisor(`process.on('SIGTERM', () => process.exit(0)); ${READY}; setInterval(() => {}, 1000)`, 10_000, undefined, ready);
    supervisor.start();
    await until(() => existsSync(ready), 10_000, 'the child to install its handler').catch(async (err: unknown) => {
      await supervisor.stop();
      throw err;
    });
    const started = Date.now();
    const end = await supervisor.stop();
    expect(Date.now() - started).toBeLessThan(5000);
    expect(end).toMatchObject({ state: 'stopped', lastExit: { code: 0, signal: null } });
    expect(pick(records, 'child shutdown deadline reached; killing')).toEqual([]);
  }, 30_000);

  it('a child that ignores SIGTERM is killed with SIGKILL at the deadline', async () => {
    const ready = readyFile();
    const { supervisor, records } = realSupervisor(`process.on('SIGTERM', () => {}); ${READY}; setInterval(() => {}, 1000)`, 700, undefined, ready);
    supervisor.start();
    await until(() => existsSync(ready), 10_000, 'the child to install its handler').catch(async (err: unknown) => {
      await supervisor.stop();
      throw err;
    });
    const started = Date.now();
    const end = await supervisor.stop();
    expect(Date.now() - started).toBeGreaterThanOrEqual(650);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(end).toMatchObject({ state: 'stopped', lastExit: { code: null, signal: 'SIGKILL' } });
    expect(pick(records, 'child shutdown deadline reached; killing')).toHaveLength(1);
  }, 30_000);

  it('SIGTERM reaches a command behind /bin/sh -c, and what the shell left behind dies with its group', async () => {
    // The shell runs a background sleep (a leftover) and a foreground node that waits; the shell is the child.
    const script = `sleep 30 & echo $! >&2; ${process.execPath} -e "setInterval(() => {}, 1000)"`;
    const marker: string[] = [];
    const { logger } = memoryLogger();
    const supervisor = createSupervisor({
      name: 'sh',
      spec: { command: ['/bin/sh', '-c', script], ipc: false },
      restart: REAL_POLICY,
      shutdownDeadlineMs: 5000,
      logger,
      spawnChild: (spec, events) => {
        // The real spawn, with stderr captured to learn the background pid.
        const child = spawn(spec.command[0]!, spec.command.slice(1), { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
        child.stderr.on('data', (chunk: Buffer) => marker.push(chunk.toString()));
        child.on('exit', (code, signal) => events.onExit(code, signal));
        child.on('error', (error) => events.onError(error));
        return {
          pid: child.pid,
          signal: (signal) => {
            try {
              process.kill(-child.pid!, signal);
            } catch {
              // gone
            }
          },
          send: () => {},
        };
      },
    });
    supervisor.start();
    try {
      await until(() => marker.join('').trim() !== '', 10_000, 'the background pid');
      const background = Number(marker.join('').trim());
      expect(alive(background)).toBe(true);
      const end = await supervisor.stop();
      expect(end.state).toBe('stopped');
      await until(() => !alive(background), 5000, 'the background sleep to die');
    } finally {
      await supervisor.stop(); // a failed assertion must not leave the shell's group running
    }
  }, 30_000);

  it('spawnProcess: an unknown command is an ENOENT exit, never a throw', async () => {
    const { supervisor } = realSupervisor('', 1000, ['/nonexistent/enclave-init-test-command']);
    supervisor.start();
    const end = await supervisor.done;
    expect(end).toMatchObject({ state: 'failed', lastExit: { code: null, signal: null, error: 'ENOENT' } });
  }, 30_000);

  it('spawnProcess: send on a child without a channel does nothing', () => {
    const handle = spawnProcess({ command: [process.execPath, '-e', ''], ipc: false }, { onExit() {}, onError() {}, onMessage() {} });
    expect(() => handle.send({ type: 'x' })).not.toThrow();
    handle.signal('SIGKILL');
  });
});
