/**
 * runInit wired with fakes (system actions, spawn, clock, signals): the boot failing stops everything
 * with status 1; the agent gets its IPC channel, ENCLAVE_INIT_IPC and this CLI's `run`; every change of
 * the app reaches the agent, and so does an answer to its request; SIGTERM stops both children; a
 * crash-looping app is reported to the agent while init keeps running; nothing left to supervise ends
 * init. Services start before the agent (`args` through this CLI, `command` as it is), are restarted like
 * the others, and stop after the agent and the app, last started first; then the same with real `node -e`
 * children. The built CLI is in init/init.e2e.test.ts.
 */

import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

import type { SystemActions } from './boot-steps.js';
import { parseInitConfig } from './config.js';
import { runInit, type RunInitOptions } from './main.js';
import { fakeSpawn, manualClock, memoryLogger, pick } from './test-support.js';

const system: SystemActions = {
  isMountPoint: async () => true,
  mkdir: async () => {},
  mount: () => {
    throw new Error('no mounts in this test');
  },
  isCharDevice: async () => true,
  interfaceUp: () => true,
  setInterfaceAddress: () => true,
  loadModule: () => true,
  addEntropy: () => {},
  connectVsock: () => Promise.reject(new Error('no vsock in this test')),
  writeFile: async () => {},
  sleep: async () => {},
};

function config(patch: Record<string, unknown> = {}) {
  return parseInitConfig({
    nsm: 'mock',
    deployment: 'test',
    mockPkiDir: '/pki',
    boot: { mounts: false, loopback: false, entropy: false, heartbeat: false },
    app: { command: ['/bin/app', 'serve'], env: { PORT: '8083' } },
    agent: { args: ['--nsm', 'mock'] },
    restart: { initialBackoffMs: 100, maxBackoffMs: 100, crashLoopRestarts: 2, crashLoopWindowMs: 60_000, stableAfterMs: 60_000 },
    shutdownDeadlineMs: 1000,
    ...patch,
  });
}

function start(patch: Record<string, unknown> = {}, extra: Partial<RunInitOptions> = {}) {
  const { logger, records } = memoryLogger();
  const spawner = fakeSpawn();
  const clock = manualClock();
  const signals = new EventEmitter();
  const status = runInit({
    config: config(patch),
    logger,
    cli: ['/usr/bin/node', '/opt/agent/cli.js'],
    signals,
    env: { PATH: '/bin' },
    system,
    openNsm: () => Promise.reject(new Error('the NSM is not used here')),
    spawnChild: spawner.spawnChild,
    clock,
    reaper: null,
    ...extra,
  });
  /** The agent is the child with IPC, the app runs /bin/app, a service is found by a word of its argv. */
  const child = (name: string, index = -1) =>
    spawner.children.filter((c) => (name === 'agent' ? c.spec.ipc : name === 'app' ? c.spec.command[0] === '/bin/app' : !c.spec.ipc && c.spec.command.includes(name))).at(index)!;
  return { status, records, spawner, clock, signals, child };
}

describe('runInit', () => {
  it('spawns the agent (IPC, ENCLAVE_INIT_IPC, this CLI run) and the app (its env) after the boot', async () => {
    const { status, spawner, signals, child, records } = start();
    await vi.waitFor(() => expect(spawner.children).toHaveLength(2));
    expect(child('agent').spec).toEqual({ command: ['/usr/bin/node', '/opt/agent/cli.js', 'run', '--nsm', 'mock'], env: { PATH: '/bin', ENCLAVE_INIT_IPC: '1' }, ipc: true });
    expect(child('app').spec).toEqual({ command: ['/bin/app', 'serve'], env: { PATH: '/bin', PORT: '8083' }, ipc: false });
    expect(pick(records, 'boot step done').map((r) => r.step)).toEqual(['devices', 'agent', 'app']);
    signals.emit('SIGTERM');
    await vi.waitFor(() => expect(child('app').signals).toEqual(['SIGTERM']));
    expect(child('agent').signals).toEqual(['SIGTERM']);
    child('app').exit(0);
    child('agent').exit(0);
    await expect(status).resolves.toBe(0);
    expect(pick(records, 'init stopped')).toEqual([
      {
        exitCode: 0,
        app: { state: 'stopped', restarts: 0, lastExit: { code: 0, signal: null, uptimeMs: 0 } },
        agent: { state: 'stopped', restarts: 0, lastExit: { code: 0, signal: null, uptimeMs: 0 } },
        services: {},
      },
    ]);
    expect(signals.listenerCount('SIGTERM')).toBe(0);
  });

  it('tells the agent every change of the app, and answers its request', async () => {
    const { status, spawner, signals, child, clock } = start();
    await vi.waitFor(() => expect(spawner.children).toHaveLength(2));
    const agent = child('agent');
    // On the agent's start the app did not exist yet; then the app started.
    expect(agent.sent).toEqual([
      { type: 'app-state', app: { state: 'starting', pid: null, restarts: 0, lastExit: null } },
      { type: 'app-state', app: { state: 'running', pid: 1001, restarts: 0, lastExit: null } },
    ]);
    clock.advance(40);
    child('app').exit(null, 'SIGKILL');
    expect(agent.sent.at(-1)).toEqual({ type: 'app-state', app: { state: 'backoff', pid: null, restarts: 0, lastExit: { code: null, signal: 'SIGKILL', uptimeMs: 40 } } });
    clock.advance(100);
    expect(agent.sent.at(-1)).toEqual({ type: 'app-state', app: { state: 'running', pid: 1002, restarts: 1, lastExit: { code: null, signal: 'SIGKILL', uptimeMs: 40 } } });
    const before = agent.sent.length;
    agent.message({ type: 'app-state-request' });
    agent.message({ type: 'something-else' });
    expect(agent.sent.slice(before)).toEqual([agent.sent.at(-1)]);
    signals.emit('SIGINT');
    await vi.waitFor(() => expect(child('app').signals).toContain('SIGTERM'));
    child('app').exit(0);
    agent.exit(0);
    await expect(status).resolves.toBe(0);
  });

  it('a restarted agent gets the app state again', async () => {
    const { status, spawner, signals, child, clock } = start();
    await vi.waitFor(() => expect(spawner.children).toHaveLength(2));
    child('agent').exit(1);
    clock.advance(100);
    expect(child('agent').pid).toBe(1002);
    expect(child('agent').sent).toEqual([{ type: 'app-state', app: { state: 'running', pid: 1001, restarts: 0, lastExit: null } }]);
    signals.emit('SIGTERM');
    await vi.waitFor(() => expect(child('agent').signals).toContain('SIGTERM'));
    child('agent').exit(0);
    child('app').exit(0);
    await expect(status).resolves.toBe(0);
  });

  it('a crash-looping app is reported failed to the agent; init keeps running and exits 1 on SIGTERM', async () => {
    const { status, spawner, signals, child, clock, records } = start();
    await vi.waitFor(() => expect(spawner.children).toHaveLength(2));
    for (let i = 0; i < 3; i++) {
      child('app').exit(3);
      clock.advance(100);
    }
    expect(child('agent').sent.at(-1)).toMatchObject({ app: { state: 'failed', restarts: 2, lastExit: { code: 3 } } });
    expect(records.filter((r) => r.code === 'INIT_CRASH_LOOP')).toHaveLength(1);
    let settled = false;
    void status.then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(settled).toBe(false);
    signals.emit('SIGTERM');
    await vi.waitFor(() => expect(child('agent').signals).toContain('SIGTERM'));
    child('agent').exit(0);
    await expect(status).resolves.toBe(1);
    expect(pick(records, 'init stopped')[0]).toMatchObject({ exitCode: 1, app: { state: 'failed', restarts: 2 } });
  });

  it('with no agent, a crash-looping app leaves nothing to supervise: exit 1', async () => {
    const { status, spawner, child, clock, records } = start({ agent: null });
    await vi.waitFor(() => expect(spawner.children).toHaveLength(1));
    for (let i = 0; i < 3; i++) {
      child('app').exit(1);
      clock.advance(100);
    }
    await expect(status).resolves.toBe(1);
    expect(pick(records, 'nothing left to supervise')).toEqual([{ code: 'INIT_CRASH_LOOP' }]);
    expect(pick(records, 'boot step skipped').find((r) => r.step === 'agent')).toEqual({ step: 'agent', durationMs: expect.any(Number), reason: 'agent is null' });
  });

  it('a failed boot starts nothing and exits 1', async () => {
    const { status, spawner, records } = start({}, { system: { ...system, isCharDevice: async () => false } });
    await expect(status).resolves.toBe(1);
    expect(spawner.children).toEqual([]);
    expect(pick(records, 'boot stopped')).toEqual([{ step: 'devices', code: 'INIT_STEP_FAILED' }]);
    expect(pick(records, 'init stopped')).toEqual([{ exitCode: 1, app: null, agent: null, services: {} }]);
  });

  const SERVICES = [
    { name: 'bridges', args: ['enclave-bridge', '--ingress-port', '8080'] },
    { name: 'shipper', command: ['/bin/shipper', '--to', 'vsock'], env: { LEVEL: 'debug' } },
  ];

  it('services: started in order before the agent and the app, args through this CLI, command as it is', async () => {
    const { status, spawner, signals, child, records } = start({ services: SERVICES });
    await vi.waitFor(() => expect(spawner.children).toHaveLength(4));
    expect(spawner.children.map((c) => c.spec)).toEqual([
      { command: ['/usr/bin/node', '/opt/agent/cli.js', 'enclave-bridge', '--ingress-port', '8080'], env: { PATH: '/bin' }, ipc: false },
      { command: ['/bin/shipper', '--to', 'vsock'], env: { PATH: '/bin', LEVEL: 'debug' }, ipc: false },
      { command: ['/usr/bin/node', '/opt/agent/cli.js', 'run', '--nsm', 'mock'], env: { PATH: '/bin', ENCLAVE_INIT_IPC: '1' }, ipc: true },
      { command: ['/bin/app', 'serve'], env: { PATH: '/bin', PORT: '8083' }, ipc: false },
    ]);
    expect(pick(records, 'boot step done').find((r) => r.step === 'services')).toMatchObject({ started: [{ name: 'bridges', pid: 1000 }, { name: 'shipper', pid: 1001 }] });
    expect(pick(records, 'child started').map((r) => r.child)).toEqual(['bridges', 'shipper', 'agent', 'app']);
    signals.emit('SIGTERM');
    await vi.waitFor(() => expect(child('app').signals).toEqual(['SIGTERM']));
    child('app').exit(0);
    child('agent').exit(0);
    for (const service of ['/bin/shipper', 'enclave-bridge']) {
      await vi.waitFor(() => expect(child(service).signals).toEqual(['SIGTERM']));
      child(service).exit(0);
    }
    await expect(status).resolves.toBe(0);
  });

  it('at shutdown the services stop after the agent and the app, the last started first', async () => {
    const { status, signals, child, spawner, records } = start({ services: SERVICES });
    await vi.waitFor(() => expect(spawner.children).toHaveLength(4));
    signals.emit('SIGTERM');
    await vi.waitFor(() => expect(child('agent').signals).toEqual(['SIGTERM']));
    expect(child('app').signals).toEqual(['SIGTERM']);
    expect(child('enclave-bridge').signals).toEqual([]);
    expect(child('/bin/shipper').signals).toEqual([]);
    child('app').exit(0);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(child('/bin/shipper').signals).toEqual([]); // the agent is still stopping
    child('agent').exit(0);
    await vi.waitFor(() => expect(child('/bin/shipper').signals).toEqual(['SIGTERM']));
    expect(child('enclave-bridge').signals).toEqual([]);
    child('/bin/shipper').exit(0);
    await vi.waitFor(() => expect(child('enclave-bridge').signals).toEqual(['SIGTERM']));
    child('enclave-bridge').exit(null, 'SIGTERM');
    await expect(status).resolves.toBe(0);
    expect(pick(records, 'child exited').map((r) => r.child)).toEqual(['app', 'agent', 'shipper', 'bridges']);
    expect(pick(records, 'init stopped')[0]).toMatchObject({
      exitCode: 0,
      services: {
        bridges: { state: 'stopped', restarts: 0, lastExit: { code: null, signal: 'SIGTERM', uptimeMs: 0 } },
        shipper: { state: 'stopped', restarts: 0, lastExit: { code: 0, signal: null, uptimeMs: 0 } },
      },
    });
  });

  it('a crashing service is restarted with backoff; a crash loop leaves it failed, the rest running, and init exits 1', async () => {
    const { status, signals, child, spawner, clock, records } = start({ services: SERVICES });
    await vi.waitFor(() => expect(spawner.children).toHaveLength(4));
    clock.advance(30);
    child('enclave-bridge').exit(1);
    expect(pick(records, 'child exited').at(-1)).toEqual({ child: 'bridges', pid: 1000, code: 1, signal: null, uptimeMs: 30, restarts: 0 });
    expect(pick(records, 'child restart scheduled').at(-1)).toEqual({ child: 'bridges', delayMs: 100, restarts: 0 });
    clock.advance(100);
    expect(child('enclave-bridge').pid).toBe(1004);
    expect(child('enclave-bridge').spec.command).toEqual(['/usr/bin/node', '/opt/agent/cli.js', 'enclave-bridge', '--ingress-port', '8080']);
    child('enclave-bridge').exit(1);
    clock.advance(100);
    child('enclave-bridge').exit(1);
    expect(records.filter((r) => r.code === 'INIT_CRASH_LOOP').map((r) => r.child)).toEqual(['bridges']);
    // The agent, the app and the other service are untouched, and init keeps running.
    expect([child('agent'), child('app'), child('/bin/shipper')].map((c) => c.signals)).toEqual([[], [], []]);
    let settled = false;
    void status.then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled).toBe(false);
    signals.emit('SIGTERM');
    await vi.waitFor(() => expect(child('app').signals).toContain('SIGTERM'));
    child('app').exit(0);
    child('agent').exit(0);
    await vi.waitFor(() => expect(child('/bin/shipper').signals).toContain('SIGTERM'));
    child('/bin/shipper').exit(0);
    await expect(status).resolves.toBe(1);
    expect(pick(records, 'init stopped')[0]).toMatchObject({ exitCode: 1, services: { bridges: { state: 'failed', restarts: 2 }, shipper: { state: 'stopped' } } });
  });

  it('a service with args but no CLI path fails the boot before any service starts', async () => {
    const { status, records, spawner } = start({ services: [{ name: 'first', command: ['/bin/first'] }, ...SERVICES] }, { cli: undefined });
    await expect(status).resolves.toBe(1);
    expect(spawner.children).toEqual([]);
    expect(pick(records, 'boot step failed')).toEqual([
      { step: 'services', fatal: true, durationMs: expect.any(Number), err: { code: 'INIT_CONFIG_INVALID', message: 'service bridges: "args" needs the path of this CLI; use "command"' } },
    ]);
  });

  it('a signal during the boot: the remaining start steps are skipped and init exits 0', async () => {
    const signals = new EventEmitter();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { status, spawner, records } = start({}, { signals, system: { ...system, isCharDevice: async () => (await gate, true) } });
    await vi.waitFor(() => expect(signals.listenerCount('SIGTERM')).toBe(1));
    signals.emit('SIGTERM');
    release();
    await expect(status).resolves.toBe(0);
    expect(spawner.children).toEqual([]);
    expect(pick(records, 'boot step skipped').filter((r) => r.reason === 'SIGTERM received').map((r) => r.step)).toEqual(['services', 'agent', 'app']);
  });

  it('agent.args without a CLI path is a configuration error at start', async () => {
    const { status, records } = start({}, { cli: undefined });
    await expect(status).resolves.toBe(1);
    expect(pick(records, 'boot step failed')[0]).toMatchObject({ step: 'agent', err: { code: 'INIT_CONFIG_INVALID' } });
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

describe('runInit with real processes (node -e)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'init-main-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a crashing service is restarted up to its limit while the rest runs; SIGTERM stops the app, then the service', async () => {
    const ready = join(dir, 'steady-ready');
    // Each traps SIGTERM (and says so with a file), so a clean stop is exit code 0.
    const trapping = (marker: string) => `process.on('SIGTERM', () => process.exit(0)); require('node:fs').writeFileSync(${JSON.stringify(marker)}, ''); setInterval(() => {}, 1000)`;
    const appReady = join(dir, 'app-ready');
    const { logger, records } = memoryLogger();
    const signals = new EventEmitter();
    const status = runInit({
      config: config({
        agent: null,
        services: [
          { name: 'crasher', command: [process.execPath, '-e', 'process.exit(3)'] },
          { name: 'steady', command: [process.execPath, '-e', trapping(ready)] },
        ],
        app: { command: [process.execPath, '-e', trapping(appReady)] },
        restart: { initialBackoffMs: 20, maxBackoffMs: 40, crashLoopRestarts: 2, crashLoopWindowMs: 60_000, stableAfterMs: 60_000 },
        shutdownDeadlineMs: 10_000,
      }),
      logger,
      signals,
      system,
      openNsm: () => Promise.reject(new Error('the NSM is not used here')),
      reaper: null,
    });
    try {
      await until(() => records.some((r) => r.code === 'INIT_CRASH_LOOP'), 20_000, 'the crasher to give up');
      await until(() => [ready, appReady].every((file) => existsSync(file)), 20_000, 'the app and the steady service to trap SIGTERM');
    } finally {
      signals.emit('SIGTERM');
    }
    await expect(status).resolves.toBe(1);
    const loop = records.find((r) => r.code === 'INIT_CRASH_LOOP')!;
    expect(loop).toMatchObject({ child: 'crasher', restarts: 2, exits: [3, 3, 3].map((code) => ({ code, signal: null })) });
    const exits = pick(records, 'child exited').filter((r) => r.child !== 'crasher');
    expect(exits.map((r) => [r.child, r.code, r.signal])).toEqual([
      ['app', 0, null],
      ['steady', 0, null],
    ]);
    expect(pick(records, 'init stopped')[0]).toMatchObject({
      exitCode: 1,
      app: { state: 'stopped', restarts: 0 },
      services: { crasher: { state: 'failed', restarts: 2, lastExit: { code: 3 } }, steady: { state: 'stopped', restarts: 0 } },
    });
  }, 30_000);
});
