/**
 * The boot steps with fake system actions and the mock NSM: which mounts happen (only the missing ones,
 * with their exact flags), the device checks, the kernel modules (in order, each loaded now or already and
 * logged), Nitro's boot heartbeat (to the configured CID and port, a failure stopping the boot), lo, the interface addresses, the NSM device node (awaited, and its timeout), the entropy gathered from several GetRandom calls and credited in full, the
 * configuration PCR (value = SHA-384(0^48 || SHA-384(canonical config)), locked; a restart finds its own
 * value; another value is INIT_PCR_MISMATCH; index < 16 never reaches the NSM), and the files. The real
 * system actions are exercised in the QEMU guest only.
 */

import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';

import { bytesToHex, createMockPki, openMockNsm, type MockPki, type Nsm } from '../nsm/index.js';

import { createBootSteps, KERNEL_MOUNTS, lazyNsm, NSM_DEVICE_WAIT_MS, type BootContext, type MountSpec, type SystemActions } from './boot-steps.js';
import { parseInitConfig, type InitConfig } from './config.js';
import { InitError } from './errors.js';
import { measureConfig } from './measurement.js';
import { runBootSteps } from './steps.js';
import { fakeParent, memoryLogger, pick, type FakeParentAnswer } from './test-support.js';

let pki: MockPki;
beforeAll(() => {
  pki = createMockPki();
});

const silent = { warn() {} };

function config(patch: Record<string, unknown> = {}): InitConfig {
  return parseInitConfig({
    nsm: 'device',
    boot: { mounts: true, loopback: true, entropy: true, heartbeat: false },
    app: { command: ['/app'] },
    agent: null,
    ...patch,
  });
}

interface FakeSystem extends SystemActions {
  calls: string[];
  mounted: MountSpec[];
  entropy: Array<{ bytes: Uint8Array; bits: number }>;
  written: Record<string, string>;
}

function fakeSystem(options: { mountPoints?: string[]; devices?: string[]; deviceAfterPolls?: number; loadedModules?: string[]; downInterfaces?: string[]; parent?: FakeParentAnswer } = {}): FakeSystem {
  const mountPoints = new Set(options.mountPoints ?? []);
  const devices = new Set(options.devices ?? ['/dev/null', '/dev/urandom', '/dev/random', '/dev/nsm']);
  let polls = 0;
  const system: FakeSystem = {
    calls: [],
    mounted: [],
    entropy: [],
    written: {},
    async isMountPoint(path) {
      return mountPoints.has(path);
    },
    async mkdir(path) {
      system.calls.push(`mkdir ${path}`);
    },
    mount(spec) {
      system.calls.push(`mount ${spec.target}`);
      system.mounted.push(spec);
    },
    async isCharDevice(path) {
      if (path === '/dev/nsm' && options.deviceAfterPolls !== undefined) return polls++ >= options.deviceAfterPolls;
      return devices.has(path);
    },
    interfaceUp(name) {
      system.calls.push(`up ${name}`);
      return true;
    },
    setInterfaceAddress(name, address, prefixLength) {
      system.calls.push(`address ${name} ${address} ${prefixLength}`);
      return (options.downInterfaces ?? []).includes(name);
    },
    loadModule(path) {
      system.calls.push(`load ${path}`);
      return !(options.loadedModules ?? []).includes(path);
    },
    addEntropy(bytes, bits) {
      system.entropy.push({ bytes: Uint8Array.from(bytes), bits });
    },
    async connectVsock(cid, port) {
      system.calls.push(`vsock ${cid}:${port}`);
      return fakeParent(options.parent ?? { bytes: [0xb7] }).stream;
    },
    async writeFile(path, content) {
      system.written[path] = content;
    },
    async sleep(ms) {
      system.calls.push(`sleep ${ms}`);
    },
  };
  return system;
}

function context(cfg: InitConfig, system: SystemActions, nsm?: Nsm): BootContext & { records: ReturnType<typeof memoryLogger>['records'] } {
  const { logger, records } = memoryLogger();
  const module = nsm ?? openMockNsm({ pki, logger: silent });
  return { config: cfg, system, logger, nsm: async () => module, records };
}

function step(name: string) {
  const found = createBootSteps().find((s) => s.name === name);
  if (found === undefined) throw new Error(name);
  return found;
}

describe('the step list', () => {
  it('is in boot order with its fatal flags', () => {
    expect(createBootSteps().map((s) => [s.name, s.fatal])).toEqual([
      ['mounts', true],
      ['devices', true],
      ['modules', true],
      ['heartbeat', true],
      ['loopback', true],
      ['interfaces', true],
      ['nsm-driver', true],
      ['entropy', true],
      ['rig-measurements', true],
      ['pcr', true],
      ['files', false],
    ]);
  });

  it('runs whole with everything switched off, touching nothing', async () => {
    const system = fakeSystem();
    const ctx = context(config({ nsm: 'mock', deployment: 'test', mockPkiDir: '/pki', boot: { mounts: false, loopback: false, entropy: false, heartbeat: false } }), system);
    const report = await runBootSteps(createBootSteps(), ctx, { logger: ctx.logger });
    expect(report.ok).toBe(true);
    expect(system.calls).toEqual([]);
    expect(pick(ctx.records, 'boot step skipped').map((r) => [r.step, r.reason])).toEqual([
      ['mounts', 'boot.mounts is false'],
      ['modules', 'no modules configured'],
      ['heartbeat', 'boot.heartbeat is false'],
      ['loopback', 'boot.loopback is false'],
      ['interfaces', 'no interfaces configured'],
      ['nsm-driver', 'mock NSM'],
      ['entropy', 'boot.entropy is false'],
      ['rig-measurements', 'no rig measurements configured'],
      ['pcr', 'no pcr configured'],
      ['files', 'no files configured'],
    ]);
  });
});

describe("Nitro's boot heartbeat", () => {
  it('exchanges 0xB7 with the configured CID and port, after the modules and before anything else', async () => {
    const system = fakeSystem();
    const cfg = config({ modules: ['/lib/modules/vsock.ko'], boot: { mounts: false, loopback: true, entropy: false, heartbeat: { cid: 2, port: 9000 } } });
    const ctx = context(cfg, system);
    expect(await step('heartbeat').run(ctx)).toEqual({ cid: 2, port: 9000 });
    system.calls.length = 0;
    const report = await runBootSteps(createBootSteps(), ctx, { logger: ctx.logger });
    expect(report.ok).toBe(true);
    expect(system.calls).toEqual(['load /lib/modules/vsock.ko', 'vsock 2:9000', 'up lo']);
  });

  it('true goes to the parent, CID 3, port 9000', async () => {
    const system = fakeSystem();
    expect(await step('heartbeat').run(context(config({ boot: { mounts: false, loopback: false, entropy: false, heartbeat: true } }), system))).toEqual({ cid: 3, port: 9000 });
    expect(system.calls).toEqual(['vsock 3:9000']);
  });

  it.each<[FakeParentAnswer, string]>([
    [{ bytes: [0x00] }, 'INIT_HEARTBEAT_BAD_REPLY'],
    ['close', 'INIT_HEARTBEAT_FAILED'],
  ])('a wrong answer (%j) stops the boot: INIT_STEP_FAILED with %s, and nothing after it runs', async (answer, code) => {
    const system = fakeSystem({ parent: answer });
    const ctx = context(config({ boot: { mounts: false, loopback: true, entropy: false, heartbeat: true } }), system);
    const report = await runBootSteps(createBootSteps(), ctx, { logger: ctx.logger });
    expect(report.ok).toBe(false);
    expect(report.error).toMatchObject({ code: 'INIT_STEP_FAILED', cause: { code } });
    expect(system.calls).toEqual(['vsock 3:9000']);
    expect(pick(ctx.records, 'boot step failed')).toEqual([{ step: 'heartbeat', fatal: true, durationMs: expect.any(Number), err: { code, message: expect.any(String) } }]);
  });
});

describe('mounts and devices', () => {
  it('mounts only what is not mounted yet, with the fixed flags and options', async () => {
    const system = fakeSystem({ mountPoints: ['/proc', '/sys'] });
    expect(await step('mounts').run(context(config(), system))).toEqual({ mounted: ['/dev', '/tmp'] });
    expect(system.calls).toEqual(['mkdir /dev', 'mount /dev', 'mkdir /tmp', 'mount /tmp']);
    expect(system.mounted).toEqual([
      { source: 'devtmpfs', target: '/dev', fstype: 'devtmpfs', flags: 2, data: 'mode=0755' },
      { source: 'tmpfs', target: '/tmp', fstype: 'tmpfs', flags: 2 | 4, data: 'mode=1777' },
    ]);
    expect(KERNEL_MOUNTS.map((m) => [m.target, m.flags])).toEqual([
      ['/proc', 14],
      ['/sys', 14],
      ['/dev', 2],
      ['/tmp', 6],
    ]);
  });

  it('a missing device node is fatal, named', async () => {
    const system = fakeSystem({ devices: ['/dev/null'] });
    await expect(step('devices').run(context(config(), system))).rejects.toMatchObject({ code: 'INIT_DEVICE_MISSING', message: 'not character devices: /dev/urandom, /dev/random' });
  });

  it('brings lo up', async () => {
    const system = fakeSystem();
    expect(await step('loopback').run(context(config(), system))).toEqual({ interface: 'lo', changed: true });
    expect(system.calls).toEqual(['up lo']);
  });
});

describe('modules, interfaces and the NSM device', () => {
  it('loads every module in order, each logged as loaded now or already; none configured is a skip', async () => {
    const system = fakeSystem({ loadedModules: ['/lib/modules/vsock.ko'] });
    const cfg = config({ modules: ['/lib/modules/vsock.ko', '/lib/modules/virtio_net.ko', '/lib/modules/nsm.ko'] });
    const ctx = context(cfg, system);
    expect(await step('modules').run(ctx)).toEqual({ modules: 3, loadedNow: 2 });
    expect(system.calls).toEqual(['load /lib/modules/vsock.ko', 'load /lib/modules/virtio_net.ko', 'load /lib/modules/nsm.ko']);
    expect(pick(ctx.records, 'kernel module loaded')).toEqual([
      { module: '/lib/modules/vsock.ko', loaded: 'already', durationMs: expect.any(Number) },
      { module: '/lib/modules/virtio_net.ko', loaded: 'now', durationMs: expect.any(Number) },
      { module: '/lib/modules/nsm.ko', loaded: 'now', durationMs: expect.any(Number) },
    ]);
    expect(await step('modules').run(context(config(), fakeSystem()))).toEqual({ skipped: 'no modules configured' });
  });

  it('a module that fails stops at it: the ones after it are not tried', async () => {
    const system = fakeSystem();
    system.loadModule = (path) => {
      system.calls.push(`load ${path}`);
      if (path.endsWith('bad.ko')) throw new InitError('INIT_ENOEXEC', `finit_module ${path}: Exec format error`, { errno: 'ENOEXEC' });
      return true;
    };
    const ctx = context(config({ modules: ['/a.ko', '/bad.ko', '/c.ko'] }), system);
    await expect((async () => step('modules').run(ctx))()).rejects.toMatchObject({ code: 'INIT_ENOEXEC' });
    expect(system.calls).toEqual(['load /a.ko', 'load /bad.ko']);
  });

  it('sets each interface address with its prefix, in order, and says which were brought up', async () => {
    const system = fakeSystem({ downInterfaces: ['eth0'] });
    const cfg = config({ boot: { mounts: false, loopback: true, entropy: false, heartbeat: false, interfaces: [{ name: 'lo', address: '127.0.0.1/8' }, { name: 'eth0', address: '10.0.2.15/24' }] } });
    expect(await step('interfaces').run(context(cfg, system))).toEqual({
      interfaces: [
        { name: 'lo', address: '127.0.0.1/8', broughtUp: false },
        { name: 'eth0', address: '10.0.2.15/24', broughtUp: true },
      ],
    });
    expect(system.calls).toEqual(['address lo 127.0.0.1 8', 'address eth0 10.0.2.15 24']);
  });

  it('modules come before the interfaces (a NIC driver makes its interface) and the NSM device wait', async () => {
    const system = fakeSystem({ deviceAfterPolls: 1 });
    const cfg = config({ modules: ['/lib/modules/virtio_net.ko'], boot: { mounts: false, loopback: true, entropy: false, heartbeat: false, interfaces: [{ name: 'eth0', address: '10.0.2.15/24' }] } });
    const ctx = context(cfg, system);
    expect((await runBootSteps(createBootSteps(), ctx, { logger: ctx.logger })).ok).toBe(true);
    expect(system.calls).toEqual(['load /lib/modules/virtio_net.ko', 'up lo', 'address eth0 10.0.2.15 24', 'sleep 50']);
  });

  it('with the device NSM, waits for its node; with the mock, skips', async () => {
    const system = fakeSystem({ deviceAfterPolls: 3 });
    expect(await step('nsm-driver').run(context(config(), system))).toEqual({ device: '/dev/nsm', waitedMs: 150 });
    expect(system.calls).toEqual(['sleep 50', 'sleep 50', 'sleep 50']);
    const mock = config({ nsm: 'mock', deployment: 'test', mockPkiDir: '/pki', modules: ['/lib/modules/nsm.ko'] });
    expect(await step('nsm-driver').run(context(mock, fakeSystem()))).toEqual({ skipped: 'mock NSM' });
  });

  it('gives up when the node never appears', async () => {
    const system = fakeSystem({ deviceAfterPolls: Number.MAX_SAFE_INTEGER });
    await expect(step('nsm-driver').run(context(config(), system))).rejects.toMatchObject({ code: 'INIT_DEVICE_MISSING', message: `/dev/nsm did not appear within ${NSM_DEVICE_WAIT_MS} ms` });
    expect(system.calls.filter((c) => c === 'sleep 50')).toHaveLength(NSM_DEVICE_WAIT_MS / 50);
  });
});

/** An Nsm whose GetRandom answers `chunks` in turn (then empty), counting calls and keeping what it gave. */
function randomNsm(chunkBytes: number): Nsm & { calls: number; given: Uint8Array[] } {
  const nsm = {
    kind: 'mock' as const,
    calls: 0,
    given: [] as Uint8Array[],
    async getRandom() {
      nsm.calls += 1;
      const bytes = Uint8Array.from({ length: chunkBytes }, (_, i) => (nsm.calls * 31 + i) & 0xff);
      nsm.given.push(Uint8Array.from(bytes));
      return bytes;
    },
  };
  return nsm as unknown as Nsm & { calls: number; given: Uint8Array[] };
}

describe('entropy', () => {
  it('collects entropyBytes over several GetRandom calls and credits 8 bits a byte', async () => {
    const system = fakeSystem();
    const nsm = randomNsm(100);
    const result = await step('entropy').run(context(config({ entropyBytes: 256 }), system, nsm));
    expect(result).toEqual({ bytes: 256, bits: 2048, nsm: 'mock' });
    expect(nsm.calls).toBe(3);
    expect(system.entropy).toHaveLength(1);
    const expected = new Uint8Array([...nsm.given[0]!, ...nsm.given[1]!, ...nsm.given[2]!.subarray(0, 56)]);
    expect(bytesToHex(system.entropy[0]!.bytes)).toBe(bytesToHex(expected));
    expect(system.entropy[0]!.bits).toBe(2048);
  });

  it('a module that gives nothing cannot loop forever', async () => {
    const nsm = randomNsm(0);
    await expect(step('entropy').run(context(config(), fakeSystem(), nsm))).rejects.toBeInstanceOf(InitError);
    expect(nsm.calls).toBe(64);
  });

  it('works with the mock NSM (256-byte answers)', async () => {
    const system = fakeSystem();
    await step('entropy').run(context(config({ entropyBytes: 1000 }), system));
    expect(system.entropy[0]!.bytes).toHaveLength(1000);
    expect(new Set(system.entropy[0]!.bytes).size).toBeGreaterThan(200);
  });
});

describe('pcr', () => {
  it('extends the PCR with the config SHA-384 and locks it: value = SHA-384(0^48 || SHA-384(canonical))', async () => {
    const cfg = config({ pcr: { index: 16 } });
    const nsm = openMockNsm({ pki, logger: silent });
    const result = (await step('pcr').run(context(cfg, fakeSystem(), nsm))) as Record<string, unknown>;
    const digest = createHash('sha384').update(measureConfig(cfg).canonical).digest();
    const expected = createHash('sha384').update(new Uint8Array(48)).update(digest).digest('hex');
    expect(result).toEqual({ index: 16, digest: digest.toString('hex'), value: expected, locked: true, already: false });
    const described = await nsm.describePcr(16);
    expect(described.locked).toBe(true);
    expect(bytesToHex(described.value)).toBe(expected);
    expect(bytesToHex((await nsm.describePcr(17)).value)).toBe('00'.repeat(48)); // only the configured PCR
  });

  it('a restarted init finds its own value locked: fine; another configuration: INIT_PCR_MISMATCH', async () => {
    const nsm = openMockNsm({ pki, logger: silent });
    const cfg = config({ pcr: { index: 20 } });
    await step('pcr').run(context(cfg, fakeSystem(), nsm));
    expect(await step('pcr').run(context(cfg, fakeSystem(), nsm))).toMatchObject({ already: true, locked: true });
    const other = config({ pcr: { index: 20 }, entropyBytes: 32 });
    await expect(step('pcr').run(context(other, fakeSystem(), nsm))).rejects.toMatchObject({ code: 'INIT_PCR_MISMATCH' });
  });

  it('lock: false leaves it unlocked', async () => {
    const nsm = openMockNsm({ pki, logger: silent });
    await step('pcr').run(context(config({ pcr: { index: 31, lock: false } }), fakeSystem(), nsm));
    expect((await nsm.describePcr(31)).locked).toBe(false);
  });

  it('an index below 16 never reaches the NSM: the configuration refuses it', () => {
    expect(() => config({ pcr: { index: 4 } })).toThrow(expect.objectContaining({ code: 'INIT_CONFIG_INVALID' }));
  });
});

/** An NSM like QEMU's virtio-nsm: every PCR zero and unlocked at start, the device's lock rules. */
function unmeasuredNsm(): Nsm & { locked: boolean[] } {
  const values = Array.from({ length: 32 }, () => new Uint8Array(48));
  const locked = Array.from({ length: 32 }, () => false);
  const fail = (code: string) => Object.assign(new Error(code), { code });
  return {
    kind: 'device',
    locked,
    async describePcr(index) {
      return { locked: locked[index]!, value: values[index]! };
    },
    async extendPcr(index, data) {
      if (locked[index]) throw fail('NSM_READ_ONLY_INDEX');
      values[index] = new Uint8Array(createHash('sha384').update(values[index]!).update(data).digest());
      return values[index]!;
    },
    async lockPcr(index) {
      locked[index] = true;
    },
    async lockPcrs(range) {
      for (let i = 0; i < range; i++) locked[i] = true;
    },
    attest: () => Promise.reject(fail('unused')),
    describeNsm: () => Promise.reject(fail('unused')),
    getRandom: () => Promise.reject(fail('unused')),
    close: async () => {},
  };
}

describe('rig-measurements', () => {
  const rig = { deployment: 'test', rigMeasurements: { '2': 'app', '0': 'image', '1': 'kernel' } };

  it('extends each PCR with the UTF-8 bytes of its text, then locks PCRs 0-15 and nothing else', async () => {
    const nsm = unmeasuredNsm();
    const result = (await step('rig-measurements').run(context(config(rig), fakeSystem(), nsm))) as { values: Record<string, string>; locked: string };
    const once = (text: string) => createHash('sha384').update(new Uint8Array(48)).update(text).digest('hex');
    expect(result).toEqual({ values: { '0': once('image'), '1': once('kernel'), '2': once('app') }, locked: '0-15' });
    for (const [index, text] of [[0, 'image'], [1, 'kernel'], [2, 'app']] as const) expect(bytesToHex((await nsm.describePcr(index)).value)).toBe(once(text));
    expect(nsm.locked.map((l, i) => (l ? i : -1)).filter((i) => i >= 0)).toEqual([...Array(16).keys()]);
  });

  it('fails the boot on an NSM whose boot PCRs are already locked (a real Nitro enclave)', async () => {
    const nsm = openMockNsm({ pki, logger: silent });
    await expect(step('rig-measurements').run(context(config(rig), fakeSystem(), nsm))).rejects.toMatchObject({ code: 'NSM_READ_ONLY_INDEX' });
  });

  it('is refused in a production deployment and outside PCR0-15, every problem named', () => {
    const problems = (patch: Record<string, unknown>) => {
      try {
        config(patch);
        return [];
      } catch (err) {
        return (err as InitError & { problems: string[] }).problems;
      }
    };
    expect(problems({ rigMeasurements: { '0': 'image' } })).toEqual([
      'rigMeasurements: refused in a production deployment (it stands in for a measured boot on test rigs; set "deployment": "test")',
    ]);
    expect(problems({ deployment: 'test', rigMeasurements: { '16': 'x' } })).toHaveLength(1);
    expect(problems({ deployment: 'test', rigMeasurements: { '0': 1 } })).toHaveLength(1);
    expect(problems({ deployment: 'test', rigMeasurements: {} })).toEqual([]);
  });
});

describe('files and the NSM handle', () => {
  it('writes the configured files in path order', async () => {
    const system = fakeSystem();
    const cfg = config({ files: { '/etc/resolv.conf': 'nameserver 127.0.0.1\n', '/etc/hosts': '127.0.0.1 localhost\n' } });
    expect(await step('files').run(context(cfg, system))).toEqual({ paths: ['/etc/hosts', '/etc/resolv.conf'] });
    expect(system.written).toEqual({ '/etc/hosts': '127.0.0.1 localhost\n', '/etc/resolv.conf': 'nameserver 127.0.0.1\n' });
  });

  it('lazyNsm opens once with the configured mode and closes only what it opened', async () => {
    const opened: unknown[] = [];
    let closed = 0;
    const fake = { close: async () => void (closed += 1) } as unknown as Nsm;
    const cfg = config({ nsm: 'mock', deployment: 'test', mockPkiDir: '/pki' });
    const { logger } = memoryLogger();
    const handle = lazyNsm(cfg, logger, async (options) => {
      opened.push({ mode: options.mode, devicePath: options.devicePath, mockPkiDir: options.mockPkiDir });
      return fake;
    });
    await handle.close();
    expect(closed).toBe(0);
    expect(await handle.nsm()).toBe(fake);
    expect(await handle.nsm()).toBe(fake);
    await handle.close();
    expect(opened).toEqual([{ mode: 'mock', devicePath: '/dev/nsm', mockPkiDir: '/pki' }]);
    expect(closed).toBe(1);
  });
});
