/**
 * `enclave-agent init` end to end on the host, through the built CLI (dist/agent/cli.js): the real
 * supervisor, the real agent as a child (mock NSM, loopback, port 0), a service and a tiny app. Killing
 * the app gets it restarted and the agent's /healthz shows it; killing it in a loop stops after the limit
 * with the INIT_CRASH_LOOP record while the agent reports `failed`; SIGTERM stops everything with the
 * reported status, the service after the agent and the app; a service's `args` run this same CLI; an
 * orphan left by the app is reaped by init (a child subreaper); config errors exit 2, bridges that would
 * expose the app or the agent's internal listener among them.
 *
 * The boot's system steps are switched off (`boot` all false): mounts, lo and the entropy pool are never
 * touched on this machine; they run in the QEMU guest (test/qemu/init.guest.test.ts).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { bytesToHex, createMockPki, writeMockPki } from '../nsm/index.js';

import { loadInitConfig } from './config-file.js';
import { measureConfig } from './measurement.js';

const REPO = dirname(dirname(fileURLToPath(import.meta.url)));
const CLI = join(REPO, 'dist', 'agent', 'cli.js');
/** Every wait below is bounded by this; loopback and a node start take well under it. */
const WAIT_MS = 20_000;
const MANIFEST = JSON.stringify({ version: '1.0', powered_by: 'enclave-agent tests', enclave_source: { type: 'local', path: '.' }, framework_source: { type: 'git_archive', url: 'https://example.org/f.tar.gz' } });

type Record_ = Record<string, unknown> & { msg?: string };

interface RunningInit {
  child: ChildProcess;
  records: Record_[];
  stderr: string[];
  exit: Promise<number | null>;
}

let dir: string;
const running: RunningInit[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'init-e2e-'));
  await writeMockPki(join(dir, 'pki'), createMockPki());
  await writeFile(join(dir, 'manifest.json'), MANIFEST);
});

afterEach(async () => {
  // SIGTERM first: a SIGKILLed init would leave its children (own process groups) behind.
  for (const init of running.splice(0)) {
    if (init.child.exitCode !== null || init.child.signalCode !== null) continue;
    init.child.kill('SIGTERM');
    const ended = await Promise.race([init.exit.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000))]);
    if (!ended) init.child.kill('SIGKILL');
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function initConfig(app: string[], patch: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    nsm: 'mock',
    deployment: 'test',
    mockPkiDir: join(dir, 'pki'),
    boot: { mounts: false, loopback: false, entropy: false, heartbeat: false },
    pcr: { index: 16 },
    app: { command: app },
    agent: { args: ['--nsm', 'mock', '--deployment', 'test', '--mock-pki', join(dir, 'pki'), '--manifest', join(dir, 'manifest.json'), '--listen', '127.0.0.1:0', '--internal-listen', '127.0.0.1:0', '--shutdown-timeout-ms', '1000'] },
    restart: { initialBackoffMs: 50, maxBackoffMs: 200, crashLoopRestarts: 2, crashLoopWindowMs: 60_000, stableAfterMs: 60_000 },
    shutdownDeadlineMs: 3000,
    ...patch,
  };
}

let configs = 0;
async function writeConfig(config: Record<string, unknown>): Promise<string> {
  const path = join(dir, `init-${++configs}.json`);
  await writeFile(path, JSON.stringify(config));
  return path;
}

function startInit(args: string[]): RunningInit {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [CLI, 'init', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const records: Record_[] = [];
  const stderr: string[] = [];
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      try {
        records.push(JSON.parse(line) as Record_);
      } catch {
        // the app's own output
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const init = { child, records, stderr, exit };
  running.push(init);
  return init;
}

async function until<T>(probe: () => T | undefined | Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const find = (init: RunningInit, predicate: (r: Record_) => boolean) => init.records.find(predicate);

interface Health {
  status: string;
  app?: { state: string; pid: number | null; restarts: number; lastExit: { code: number | null; signal: string | null; uptimeMs: number } | null };
}

async function healthz(base: string): Promise<Health> {
  const answer = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(5000) });
  return (await answer.json()) as Health;
}

async function agentBase(init: RunningInit): Promise<string> {
  const listening = await until(() => find(init, (r) => r.service === 'enclave-agent' && r.msg === 'agent listening'), 'the agent to listen');
  // The app's state is on the internal /healthz (the public one says only the status).
  return `http://${(listening.addresses as { internal: string }).internal}`;
}

const LONG_RUNNING_APP = [process.execPath, '-e', 'setInterval(() => {}, 1000)'];

describe('enclave-agent init', () => {
  it('killing the app: init restarts it and the agent reports the restart; SIGTERM stops all with status 0, the service last', async () => {
    const init = startInit(['--config', await writeConfig(initConfig(LONG_RUNNING_APP, { services: [{ name: 'ticker', command: LONG_RUNNING_APP }] }))]);
    const base = await agentBase(init);
    const first = await until(async () => {
      const h = await healthz(base);
      return h.app?.state === 'running' ? h.app : undefined;
    }, 'the app to run');
    expect(first).toMatchObject({ restarts: 0, lastExit: null });
    process.kill(first.pid!, 'SIGKILL');
    const second = await until(async () => {
      const h = await healthz(base);
      return h.app?.state === 'running' && h.app.restarts === 1 ? h.app : undefined;
    }, 'the restarted app');
    expect(second.pid).not.toBe(first.pid);
    expect(second.lastExit).toMatchObject({ code: null, signal: 'SIGKILL' });
    expect(find(init, (r) => r.msg === 'child exited' && r.child === 'app')).toMatchObject({ pid: first.pid, signal: 'SIGKILL', code: null });
    // The configuration PCR step ran (on the init's own mock NSM).
    const pcr = find(init, (r) => r.msg === 'boot step done' && r.step === 'pcr')!;
    const config = await loadInitConfig(init.child.spawnargs.at(-1)!);
    expect(pcr.value).toBe(bytesToHex(measureConfig(config).pcrValue));

    init.child.kill('SIGTERM');
    expect(await init.exit).toBe(0);
    expect(find(init, (r) => r.msg === 'init stopped')).toMatchObject({
      exitCode: 0,
      app: { state: 'stopped', restarts: 1, lastExit: { signal: 'SIGTERM' } },
      agent: { state: 'stopped', restarts: 0, lastExit: { code: 0, signal: null } },
      services: { ticker: { state: 'stopped', restarts: 0, lastExit: { signal: 'SIGTERM' } } },
    });
    expect(find(init, (r) => r.service === 'enclave-agent' && r.msg === 'stopped')).toBeDefined();
    const order = (msg: string) => init.records.filter((r) => r.msg === msg && typeof r.child === 'string').map((r) => r.child);
    expect(order('child started')).toEqual(['ticker', 'agent', 'app', 'app']);
    // The agent and the app stop together, then the service.
    expect(order('child exited').slice(-3).sort()).toEqual(['agent', 'app', 'ticker']);
    expect(order('child exited').at(-1)).toBe('ticker');
  }, 60_000);

  it('killing the app in a loop: it stops after the limit with INIT_CRASH_LOOP, the agent reports failed, exit 1', async () => {
    const init = startInit(['--config', await writeConfig(initConfig(LONG_RUNNING_APP))]);
    const base = await agentBase(init);
    const pids: number[] = [];
    for (let restarts = 0; restarts <= 2; restarts++) {
      const app = await until(async () => {
        const h = await healthz(base);
        return h.app?.state === 'running' && h.app.restarts === restarts ? h.app : undefined;
      }, `the app after ${restarts} restarts`);
      pids.push(app.pid!);
      process.kill(app.pid!, 'SIGKILL');
    }
    const failed = await until(async () => {
      const h = await healthz(base);
      return h.app?.state === 'failed' ? h.app : undefined;
    }, 'the app to be reported failed');
    expect(failed).toEqual({ state: 'failed', pid: null, restarts: 2, lastExit: { code: null, signal: 'SIGKILL', uptimeMs: expect.any(Number) } });
    const loop = find(init, (r) => r.code === 'INIT_CRASH_LOOP')!;
    expect(loop).toMatchObject({ level: 50, msg: 'child crash loop; giving up', service: 'enclave-init', child: 'app', restarts: 2, limit: 2, windowMs: 60_000 });
    expect((loop.exits as Array<{ signal: string }>).map((e) => e.signal)).toEqual(['SIGKILL', 'SIGKILL', 'SIGKILL']);
    expect(init.records.filter((r) => r.msg === 'child started' && r.child === 'app').map((r) => r.pid)).toEqual(pids);
    // Init and the agent stay up to report it.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(init.child.exitCode).toBeNull();
    expect((await healthz(base)).status).toBe('ok');
    init.child.kill('SIGTERM');
    expect(await init.exit).toBe(1);
    expect(find(init, (r) => r.msg === 'init stopped')).toMatchObject({ exitCode: 1, app: { state: 'failed' } });
  }, 60_000);

  it("a service's args run this same CLI: mock-pki writes its directory", async () => {
    const out = join(dir, 'service-pki');
    const init = startInit(['--config', await writeConfig(initConfig(LONG_RUNNING_APP, { agent: null, services: [{ name: 'pki', args: ['mock-pki', '--out', out] }] }))]);
    await until(() => (existsSync(join(out, 'root.pem')) ? true : undefined), 'the service to write the mock PKI');
    // mock-pki exits when done, so init restarts it like any service: that is the policy, whatever the status.
    await until(() => find(init, (r) => r.msg === 'child exited' && r.child === 'pki'), 'the service to exit');
    init.child.kill('SIGTERM');
    expect([0, 1]).toContain(await init.exit);
  }, 60_000);

  it('reaps an orphan the app leaves behind', async () => {
    // The subshell starts a short sleep and exits at once: the sleep's parent is gone, so it is re-parented to init.
    const app = ['/bin/sh', '-c', `(sleep 0.2 &); exec ${process.execPath} -e "setInterval(() => {}, 1000)"`];
    const init = startInit(['--config', await writeConfig(initConfig(app, { agent: null }))]);
    const reaped = await until(() => find(init, (r) => r.msg === 'orphans reaped'), 'the orphan to be reaped');
    expect((reaped.pids as number[]).length).toBeGreaterThan(0);
    expect(find(init, (r) => r.msg === 'boot step done' && r.step === 'reaper')).toMatchObject({ subreaper: true, pid1: false });
    init.child.kill('SIGTERM');
    expect(await init.exit).toBe(0);
  }, 60_000);

  it('a bad configuration: exit 2 with every problem on stderr, nothing started', async () => {
    const init = startInit(['--config', await writeConfig({ nsm: 'sometimes', boot: {}, app: { command: [] }, agent: null })]);
    expect(await init.exit).toBe(2);
    const stderr = init.stderr.join('');
    expect(stderr).toContain('enclave-agent init: invalid configuration:');
    for (const problem of ['nsm: expected "device" or "mock"', 'boot.mounts: expected true or false', 'app.command: expected an array of 1..256 strings']) expect(stderr).toContain(problem);
    expect(init.records).toEqual([]);
    const missing = startInit([]);
    expect(await missing.exit).toBe(2);
    expect(missing.stderr.join('')).toContain('--config FILE (or ENCLAVE_INIT_CONFIG) is required');
  }, 30_000);

  it('bridges that would expose the app or the internal listener: exit 2 naming the ports, with --print-measurement too', async () => {
    // Each half passes its own check: the bridge sees no --upstream or --internal-listen of its own.
    const path = await writeConfig(
      initConfig(LONG_RUNNING_APP, {
        services: [{ name: 'bridges', args: ['enclave-bridge', '--ingress-port', '9000', '--ingress-port=7000'] }],
        agent: {
          args: ['--nsm', 'mock', '--deployment', 'test', '--mock-pki', join(dir, 'pki'), '--manifest', join(dir, 'manifest.json'), '--listen', '127.0.0.1:0', '--upstream=http://127.0.0.1:9000'],
          env: { ENCLAVE_AGENT_INTERNAL_LISTEN: '127.0.0.1:7000' },
        },
      }),
    );
    const problems = [
      'services[0] "bridges": ingress port 9000 (--ingress-port in services[0].args) is the app\'s port (agent\'s upstream, --upstream in agent.args)',
      'services[0] "bridges": ingress port 7000 (--ingress-port in services[0].args) is the internal listener\'s port (agent\'s internal listener, ENCLAVE_AGENT_INTERNAL_LISTEN in agent.env)',
    ];
    for (const args of [['--config', path, '--print-measurement'], ['--config', path]]) {
      const init = startInit(args);
      let stdout = '';
      init.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
      expect(await init.exit, args.join(' ')).toBe(2);
      const stderr = init.stderr.join('');
      expect(stderr).toContain('enclave-agent init: invalid configuration:');
      for (const problem of problems) expect(stderr).toContain(problem);
      expect(stdout).toBe('');
    }
  }, 30_000);

  it('--print-measurement prints the canonical config, its SHA-384 and the PCR value, and boots nothing', async () => {
    const path = await writeConfig(initConfig(LONG_RUNNING_APP, { pcr: { index: 23 } }));
    const init = startInit(['--config', path, '--print-measurement']);
    let stdout = '';
    init.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    expect(await init.exit).toBe(0);
    const printed = JSON.parse(stdout) as { canonical: string; sha384: string; pcr: { index: number; value: string } };
    const m = measureConfig(await loadInitConfig(path));
    expect(printed).toEqual({ canonical: m.canonical, sha384: bytesToHex(m.digest), pcr: { index: 23, value: bytesToHex(m.pcrValue) } });
  }, 30_000);
});
