/**
 * init/ against a real kernel, inside the QEMU guest (root, /dev/nsm through nsm.ko, busybox):
 * - the natives for real: lo brought up after busybox took it down (/sys/class/net/lo/flags), lo's IPv4
 *   address set again (127.0.0.1/8, no change), its netmask changed and restored, lo brought up by it
 *   (`ip -o -f inet addr show dev lo`; the rig's default boot has no NIC, so lo is the one interface),
 *   entropy credited with RNDADDENTROPY (entropy_avail does not drop), a tmpfs mounted on a fresh
 *   directory (/proc/self/mountinfo), nsm.ko found already loaded (EEXIST), coded errnos for bad mounts,
 *   addresses and modules, and an orphan reaped by a child subreaper without stealing the exit of a child
 *   Node spawned;
 * - the system boot steps with the real actions and the device NSM (modules, lo's address, entropy from
 *   GetRandom, the configuration PCR extended and locked on the device);
 * - Nitro's boot heartbeat over real vsock loopback (CID 1) against a listener standing in for the parent:
 *   answered with 0xB7 (done), with another byte (INIT_HEARTBEAT_BAD_REPLY), nobody listening
 *   (INIT_HEARTBEAT_FAILED);
 * - `enclave-agent init` as a child process (not PID 1) with the device NSM, the bridges as a service
 *   (`args: ["enclave-bridge", ...]`, vsock in the guest), the agent on loopback and a tiny app: killing
 *   the app gets it restarted and the agent's /healthz shows the restart; killing it in a loop stops after
 *   the limit with the INIT_CRASH_LOOP record; SIGTERM ends it with status 1, the bridges stopped last.
 *
 * The guest has no dist/, so the CLI is bundled from the sources with esbuild into /project/.guest-init/
 * (node_modules and the addon resolve from /project). PCRs 26 and 27 are used here and nowhere else (the
 * NSM conformance suite uses 18, 20-22). Under TCG a Node start takes seconds: waits are generous and
 * bounded. Skipped outside the guest: these calls change the machine they run on.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { bytesToHex, createNsm, openDeviceTransport } from '../../nsm/index.js';
import { listenVsock, type VsockServer } from '../../vsock/index.js';
import { createBootSteps, loadInitConfig, measureConfig, parseInitConfig, runBootSteps, systemActions, type InitError } from '../../init/index.js';
import { addEntropy, interfaceUp, loadKernelModule, mountFilesystem, setInterfaceAddress } from '../../init/native.js';

const IN_GUEST = process.env.ENCLAVE_QEMU_GUEST === '1' && existsSync('/dev/nsm');
const REPO = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const NSM_MODULE = '/lib/modules/rig/nsm.ko';
/** The bridges service's ingress port (vsock and TCP): apart from vsock.guest (41_000+) and bridge.guest (43_000+). */
const BRIDGE_PORT = 44_000;
/** The heartbeat's stand-in parent listens here (vsock loopback), apart from every other guest suite. */
const HEARTBEAT_PORT = 45_000;
const ADDON = join(REPO, 'build', 'Release', 'enclave_native.node');
/** Under TCG, a Node process needs seconds to start; the agent more. */
const WAIT_MS = 90_000;

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

function run(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.status} ${result.stderr}`);
  return result.stdout;
}

async function until<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, ms = WAIT_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function codeOf(call: () => unknown): { code: string; errno?: string } {
  try {
    call();
  } catch (err) {
    return { code: (err as InitError).code, ...((err as InitError).errno ? { errno: (err as InitError).errno } : {}) };
  }
  throw new Error('no error');
}

describe.runIf(IN_GUEST)('init natives, real syscalls', () => {
  it('interfaceUp: brings lo up after it was taken down, and says so; then finds it up', () => {
    try {
      run('ip', ['link', 'set', 'lo', 'down']);
      expect(Number(readFileSync('/sys/class/net/lo/flags', 'utf8')) & 1).toBe(0);
      expect(interfaceUp('lo')).toBe(true);
      expect(Number(readFileSync('/sys/class/net/lo/flags', 'utf8')) & 1).toBe(1);
      expect(interfaceUp('lo')).toBe(false);
    } finally {
      spawnSync('ip', ['link', 'set', 'lo', 'up']);
    }
    expect(codeOf(() => interfaceUp('nosuch0'))).toEqual({ code: 'INIT_ENODEV', errno: 'ENODEV' });
  });

  it('setInterfaceAddress: lo keeps 127.0.0.1/8 when set again; a new netmask shows and is undone; it brings lo up', () => {
    const loAddresses = () => [...run('ip', ['-o', '-f', 'inet', 'addr', 'show', 'dev', 'lo']).matchAll(/inet (\S+)/g)].map((m) => m[1]);
    const loUp = () => (Number(readFileSync('/sys/class/net/lo/flags', 'utf8')) & 1) === 1;
    expect(loAddresses()).toEqual(['127.0.0.1/8']);
    expect(setInterfaceAddress('lo', '127.0.0.1', 8)).toBe(false);
    expect(loAddresses()).toEqual(['127.0.0.1/8']);
    try {
      // The address stays 127.0.0.1 throughout, so loopback traffic (vitest's own) is never cut.
      expect(setInterfaceAddress('lo', '127.0.0.1', 16)).toBe(false);
      expect(loAddresses()).toEqual(['127.0.0.1/16']);
      run('ip', ['link', 'set', 'lo', 'down']);
      expect(loUp()).toBe(false);
      expect(setInterfaceAddress('lo', '127.0.0.1', 8)).toBe(true);
      expect(loUp()).toBe(true);
      expect(loAddresses()).toEqual(['127.0.0.1/8']);
    } finally {
      spawnSync('ip', ['addr', 'del', '127.0.0.1/16', 'dev', 'lo']);
      spawnSync('ip', ['link', 'set', 'lo', 'up']);
      if (!loAddresses().includes('127.0.0.1/8')) spawnSync('ip', ['addr', 'add', '127.0.0.1/8', 'dev', 'lo']);
    }
    expect(codeOf(() => setInterfaceAddress('nosuch0', '10.0.2.15', 24))).toEqual({ code: 'INIT_ENODEV', errno: 'ENODEV' });
    // A multicast address is no interface address (net/ipv4/devinet.c inet_abc_len).
    expect(codeOf(() => setInterfaceAddress('lo', '224.0.0.1', 8))).toEqual({ code: 'INIT_EINVAL', errno: 'EINVAL' });
    expect(loAddresses()).toEqual(['127.0.0.1/8']);
  });

  it('addEntropy: RNDADDENTROPY succeeds and entropy_avail does not drop', () => {
    const before = Number(readFileSync('/proc/sys/kernel/random/entropy_avail', 'utf8'));
    const bytes = new Uint8Array(256).map((_, i) => (i * 131 + 7) & 0xff);
    addEntropy(bytes, 2048);
    addEntropy(bytes.subarray(0, 16), 0);
    const after = Number(readFileSync('/proc/sys/kernel/random/entropy_avail', 'utf8'));
    expect(after).toBeGreaterThanOrEqual(before);
  });

  it('mountFilesystem: a tmpfs on a fresh directory, with its options; coded errors otherwise', () => {
    const target = mkdtempSync('/tmp/init-mount-');
    try {
      mountFilesystem('tmpfs', target, 'tmpfs', 2 | 4, 'size=1m,mode=0700');
      const entry = lines(readFileSync('/proc/self/mountinfo', 'utf8')).find((l) => l.split(' ')[4] === target);
      expect(entry).toBeDefined();
      expect(entry).toMatch(/ - tmpfs tmpfs /);
      expect(entry).toMatch(/nosuid,nodev/);
      writeFileSync(join(target, 'probe'), 'x');
      expect(readFileSync(join(target, 'probe'), 'utf8')).toBe('x');
    } finally {
      spawnSync('umount', [target]);
      rmSync(target, { recursive: true, force: true });
    }
    expect(codeOf(() => mountFilesystem('none', '/tmp/does-not-exist-init', 'tmpfs', 0))).toEqual({ code: 'INIT_ENOENT', errno: 'ENOENT' });
    expect(codeOf(() => mountFilesystem('none', '/tmp', 'nosuchfs', 0))).toEqual({ code: 'INIT_ENODEV', errno: 'ENODEV' });
  });

  it('loadKernelModule: nsm.ko is already loaded (EEXIST is not an error); a non-module and a missing file are coded errors', () => {
    expect(readFileSync('/proc/modules', 'utf8')).toMatch(/^nsm /m);
    expect(loadKernelModule(NSM_MODULE)).toBe(false);
    expect(codeOf(() => loadKernelModule('/etc/hosts')).code).toMatch(/^INIT_E(NOEXEC|INVAL)$/);
    expect(codeOf(() => loadKernelModule('/lib/modules/rig/nosuch.ko'))).toEqual({ code: 'INIT_ENOENT', errno: 'ENOENT' });
  });

  it('setChildSubreaper + reapOrphans: the orphan is reaped, a child Node spawned still reports its own exit', () => {
    // In a separate process: the vitest worker must not become a subreaper or lose its children's exits.
    const script = `
      const { spawn } = require('node:child_process');
      const native = require(${JSON.stringify(ADDON)}).init;
      native.setChildSubreaper();
      const own = spawn('/bin/sh', ['-c', '(sleep 0.3 &); sleep 1; exit 5'], { stdio: 'ignore' });
      const reaped = [];
      const timer = setInterval(() => reaped.push(...native.reapOrphans([own.pid])), 50);
      own.on('exit', (code) => {
        setTimeout(() => {
          clearInterval(timer);
          reaped.push(...native.reapOrphans([]));
          console.log(JSON.stringify({ ownExit: code, reaped }));
        }, 200);
      });`;
    const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: WAIT_MS });
    expect(result.status, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { ownExit: number; reaped: number[] };
    expect(report.ownExit).toBe(5);
    expect(report.reaped).toHaveLength(1);
  });
});

describe.runIf(IN_GUEST)('the system boot steps with the real actions and the device NSM', () => {
  it('mounts (nothing missing), devices, the module (already loaded), lo and its address, the NSM node, entropy from GetRandom, PCR 26 extended and locked', async () => {
    const config = parseInitConfig({
      nsm: 'device',
      modules: [NSM_MODULE],
      boot: { mounts: true, loopback: true, entropy: true, heartbeat: false, interfaces: [{ name: 'lo', address: '127.0.0.1/8' }] },
      pcr: { index: 26 },
      files: { '/tmp/init-guest-etc/hosts': '127.0.0.1 localhost\n' },
      app: { command: ['/bin/true'] },
      agent: null,
    });
    const records: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info', base: null }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
    const nsm = createNsm(openDeviceTransport('/dev/nsm'));
    try {
      const report = await runBootSteps(createBootSteps(), { config, system: systemActions, logger, nsm: async () => nsm }, { logger });
      expect(report.error).toBeNull();
      const done = (step: string) => records.find((r) => r.msg === 'boot step done' && r.step === step);
      expect(done('mounts')).toMatchObject({ mounted: [] });
      expect(done('modules')).toMatchObject({ modules: 1, loadedNow: 0 });
      expect(records.filter((r) => r.msg === 'kernel module loaded')).toEqual([expect.objectContaining({ module: NSM_MODULE, loaded: 'already' })]);
      expect(done('loopback')).toMatchObject({ interface: 'lo', changed: false });
      expect(done('interfaces')).toMatchObject({ interfaces: [{ name: 'lo', address: '127.0.0.1/8', broughtUp: false }] });
      expect(done('nsm-driver')).toMatchObject({ device: '/dev/nsm', waitedMs: 0 });
      expect(done('entropy')).toMatchObject({ bytes: 256, bits: 2048, nsm: 'device' });
      const expected = bytesToHex(measureConfig(config).pcrValue);
      expect(done('pcr')).toMatchObject({ index: 26, value: expected, locked: true, already: false });
      expect(await nsm.describePcr(26)).toEqual({ locked: true, value: measureConfig(config).pcrValue });
      expect(readFileSync('/tmp/init-guest-etc/hosts', 'utf8')).toBe('127.0.0.1 localhost\n');
      for (const r of records.filter((r) => r.msg === 'boot step done')) expect(typeof r.durationMs).toBe('number');
    } finally {
      await nsm.close();
    }
  });
});

describe.runIf(IN_GUEST)("Nitro's boot heartbeat over vsock loopback", () => {
  const heartbeatStep = createBootSteps().find((s) => s.name === 'heartbeat')!;
  const logger = pino({ level: 'silent' });
  const context = (port: number) => ({
    config: parseInitConfig({ nsm: 'device', boot: { mounts: false, loopback: false, entropy: false, heartbeat: { cid: 1, port, timeoutMs: 20_000 } }, app: { command: ['/bin/true'] }, agent: null }),
    system: systemActions,
    logger,
    nsm: () => Promise.reject(new Error('no NSM in this test')),
  });

  /** A parent that reads one byte and answers `answer` for every connection; records what it read. */
  async function parent(port: number, answer: number): Promise<{ server: VsockServer; received: number[] }> {
    const received: number[] = [];
    const server = await listenVsock({ port, cid: 1 });
    server.on('connection', (socket) => {
      socket.once('data', (chunk: Buffer) => {
        received.push(...chunk);
        socket.end(Uint8Array.of(answer));
      });
      socket.on('error', () => {});
    });
    return { server, received };
  }

  it('0xB7 to the configured CID and port, 0xB7 back: done', async () => {
    const { server, received } = await parent(HEARTBEAT_PORT, 0xb7);
    try {
      expect(await heartbeatStep.run(context(HEARTBEAT_PORT))).toEqual({ cid: 1, port: HEARTBEAT_PORT });
      expect(received).toEqual([0xb7]);
    } finally {
      await server.close();
    }
  });

  it('another byte back is INIT_HEARTBEAT_BAD_REPLY; nobody listening is INIT_HEARTBEAT_FAILED', async () => {
    const { server } = await parent(HEARTBEAT_PORT + 1, 0x00);
    try {
      await expect((async () => heartbeatStep.run(context(HEARTBEAT_PORT + 1)))()).rejects.toMatchObject({ code: 'INIT_HEARTBEAT_BAD_REPLY' });
    } finally {
      await server.close();
    }
    await expect((async () => heartbeatStep.run(context(HEARTBEAT_PORT + 2)))()).rejects.toMatchObject({ code: 'INIT_HEARTBEAT_FAILED' });
  });
});

describe.runIf(IN_GUEST)('enclave-agent init in the guest (device NSM, agent on loopback, a tiny app)', () => {
  const work = join(REPO, '.guest-init');
  const cli = join(work, 'agent', 'cli.js');
  let init: ChildProcess | null = null;
  const records: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    mkdirSync(work, { recursive: true });
    // The guest has sources but no dist/: bundle the CLI, leaving packages to /project/node_modules.
    await build({ absWorkingDir: REPO, entryPoints: ['agent/cli.ts'], outfile: cli, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'error' });
    writeFileSync(join(work, 'manifest.json'), JSON.stringify({ version: '1.0', powered_by: 'enclave-agent guest test', enclave_source: { type: 'local', path: '.' }, framework_source: { type: 'git_archive', url: 'https://example.org/f.tar.gz' } }));
    writeFileSync(
      join(work, 'init.json'),
      JSON.stringify({
        nsm: 'device',
        modules: [NSM_MODULE],
        boot: { mounts: true, loopback: true, entropy: true, heartbeat: false },
        pcr: { index: 27 },
        services: [{ name: 'bridges', args: ['enclave-bridge', '--ingress-port', String(BRIDGE_PORT)] }],
        app: { command: [process.execPath, '-e', 'setInterval(() => {}, 1000)'] },
        agent: { args: ['--nsm', 'device', '--manifest', join(work, 'manifest.json'), '--listen', '127.0.0.1:0', '--internal-listen', '127.0.0.1:0', '--shutdown-timeout-ms', '2000'] },
        restart: { initialBackoffMs: 200, maxBackoffMs: 1000, crashLoopRestarts: 2, crashLoopWindowMs: 600_000, stableAfterMs: 600_000 },
        shutdownDeadlineMs: 10_000,
      }),
    );
    init = spawn(process.execPath, [cli, 'init', '--config', join(work, 'init.json')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let partial = '';
    init.stdout!.on('data', (chunk: Buffer) => {
      const parts = (partial + chunk.toString('utf8')).split('\n');
      partial = parts.pop()!;
      for (const line of parts) {
        try {
          records.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // app output
        }
      }
    });
  }, WAIT_MS);

  afterAll(() => {
    if (init !== null && init.exitCode === null && init.signalCode === null) init.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  });

  const find = (predicate: (r: Record<string, unknown>) => boolean) => records.find(predicate);
  type App = { state: string; pid: number | null; restarts: number; lastExit: { code: number | null; signal: string | null } | null };

  async function appState(base: string): Promise<App | undefined> {
    try {
      const answer = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(10_000) });
      return ((await answer.json()) as { app?: App }).app;
    } catch {
      return undefined;
    }
  }

  it('boots with the device NSM, restarts a killed app (reported by the agent), and stops a kill loop at the limit', async () => {
    const listening = await until(() => find((r) => r.service === 'enclave-agent' && r.msg === 'agent listening'), 'the agent to listen');
    // The app's state is on the internal /healthz (the public one says only the status).
    const base = `http://${(listening.addresses as { internal: string }).internal}`;
    expect(find((r) => r.msg === 'boot step done' && r.step === 'entropy')).toMatchObject({ bytes: 256, nsm: 'device' });
    // The bridges service is this CLI's enclave-bridge, listening on vsock in the guest.
    expect(find((r) => r.msg === 'boot step done' && r.step === 'services')).toMatchObject({ started: [{ name: 'bridges', pid: expect.any(Number) }] });
    await until(() => find((r) => r.msg === 'bridge listening'), 'the bridges service to listen');
    const config = await loadInitConfig(join(work, 'init.json'));
    expect(find((r) => r.msg === 'boot step done' && r.step === 'pcr')).toMatchObject({ index: 27, value: bytesToHex(measureConfig(config).pcrValue), locked: true });

    const pids: number[] = [];
    for (let restarts = 0; restarts <= 2; restarts++) {
      const app = await until(async () => {
        const state = await appState(base);
        return state?.state === 'running' && state.restarts === restarts ? state : undefined;
      }, `the app running after ${restarts} restarts`);
      if (restarts === 1) expect(app.lastExit).toMatchObject({ code: null, signal: 'SIGKILL' });
      pids.push(app.pid!);
      process.kill(app.pid!, 'SIGKILL');
    }
    const failed = await until(async () => {
      const state = await appState(base);
      return state?.state === 'failed' ? state : undefined;
    }, 'the app reported failed');
    expect(failed).toMatchObject({ restarts: 2, pid: null, lastExit: { signal: 'SIGKILL' } });
    const loop = find((r) => r.code === 'INIT_CRASH_LOOP');
    expect(loop).toMatchObject({ msg: 'child crash loop; giving up', child: 'app', restarts: 2, limit: 2 });
    expect((loop!.exits as Array<{ signal: string }>).map((e) => e.signal)).toEqual(['SIGKILL', 'SIGKILL', 'SIGKILL']);

    const exited = new Promise<number | null>((resolve) => init!.on('exit', (code) => resolve(code)));
    init!.kill('SIGTERM');
    expect(await exited).toBe(1);
    expect(find((r) => r.msg === 'init stopped')).toMatchObject({
      exitCode: 1,
      app: { state: 'failed' },
      agent: { state: 'stopped' },
      services: { bridges: { state: 'stopped', restarts: 0, lastExit: { code: 0, signal: null } } },
    });
    const exits = records.filter((r) => r.msg === 'child exited').map((r) => r.child);
    expect(exits.at(-1)).toBe('bridges');
  }, 4 * WAIT_MS);
});
