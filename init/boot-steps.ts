/**
 * The boot steps, in order, as data for init/steps.ts:
 *
 *   mounts      fatal   /proc, /sys, /dev, /tmp mounted where they are not yet (boot.mounts)
 *   devices     fatal   /dev/null, /dev/urandom, /dev/random are character devices
 *   modules     fatal   `modules` loaded in order with finit_module (already loaded is fine), each logged
 *   heartbeat   fatal   Nitro's boot heartbeat: 0xB7 to the parent on vsock, 0xB7 back in time (boot.heartbeat)
 *   loopback    fatal   `lo` up (boot.loopback): the agent and the app talk over it
 *   interfaces  fatal   `boot.interfaces`: each interface's IPv4 address and netmask set, and it is up
 *   nsm-driver  fatal   with the device NSM, its node present (the driver is one of `modules`, or built in)
 *   entropy     fatal   `entropyBytes` from NSM GetRandom credited to the kernel pool (boot.entropy)
 *   rig-measurements fatal   test deployments only: text extended into PCR0-15, then LockPCRs(16) (a measured boot for QEMU)
 *   pcr         fatal   the configuration's SHA-384 extended into a PCR >= 16, then locked (init/measurement.ts)
 *   files       -       configured files written (/etc/hosts, /etc/resolv.conf, ...)
 *
 * The modules come before the interfaces, so a NIC driver among them has made its interface by then, and
 * before the heartbeat, whose vsock transport may be one of them; the heartbeat comes before anything
 * else that needs the parent (the bridges start after the steps), as early as vsock allows, since the
 * launcher gives up on an enclave that does not call in.
 * Starting the services, the agent and the app are steps too; init/main.ts appends them. Every system
 * action goes through `SystemActions`, so the steps are tested on the host with fakes, and the real
 * actions (init/native.ts) only inside the QEMU guest. A step that has nothing to do says so
 * (`{ skipped }`) rather than succeeding silently.
 */

import { mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';

import { bytesToHex, openNsm, type Nsm } from '../nsm/index.js';
import { connectVsock } from '../vsock/index.js';

import type { InitConfig } from './config.js';
import { InitError } from './errors.js';
import { exchangeHeartbeat } from './heartbeat.js';
import type { Logger } from './log.js';
import { measureConfig } from './measurement.js';
import { addEntropy, interfaceUp, loadKernelModule, mountFilesystem, MS_NODEV, MS_NOEXEC, MS_NOSUID, setInterfaceAddress } from './native.js';
import { parseInterfaceAddress } from './network.js';
import type { BootStep } from './steps.js';

export interface MountSpec {
  source: string;
  target: string;
  fstype: string;
  flags: number;
  data: string;
}

/** The kernel filesystems a Node process and its children expect; mounted only where missing. */
export const KERNEL_MOUNTS: readonly MountSpec[] = Object.freeze([
  { source: 'proc', target: '/proc', fstype: 'proc', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC, data: '' },
  { source: 'sysfs', target: '/sys', fstype: 'sysfs', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC, data: '' },
  { source: 'devtmpfs', target: '/dev', fstype: 'devtmpfs', flags: MS_NOSUID, data: 'mode=0755' },
  { source: 'tmpfs', target: '/tmp', fstype: 'tmpfs', flags: MS_NOSUID | MS_NODEV, data: 'mode=1777' },
]);

export const REQUIRED_DEVICES = Object.freeze(['/dev/null', '/dev/urandom', '/dev/random']);

/** How long the NSM device node may take to appear after the driver loads (the driver binds at once; devtmpfs adds the node). */
export const NSM_DEVICE_WAIT_MS = 5000;
const NSM_DEVICE_POLL_MS = 50;
/** NSM GetRandom gives up to 256 bytes a call (specs/nsm.md §2); calls made at most, so a module giving 1 byte cannot loop forever. */
const GET_RANDOM_MAX_CALLS = 64;

/** Everything the steps do to the system. */
export interface SystemActions {
  /** True if `path` is a mount point (its device differs from its parent's), false if not or missing. */
  isMountPoint(path: string): Promise<boolean>;
  mkdir(path: string): Promise<void>;
  mount(spec: MountSpec): void;
  isCharDevice(path: string): Promise<boolean>;
  interfaceUp(name: string): boolean;
  /** IPv4 address and netmask, then up; true if the interface was down. */
  setInterfaceAddress(name: string, address: string, prefixLength: number): boolean;
  /** finit_module(2); true if loaded now, false if it was loaded already. */
  loadModule(path: string): boolean;
  addEntropy(bytes: Uint8Array, bits: number): void;
  /** One vsock stream to `cid:port` (the heartbeat's); rejects when the connect fails. */
  connectVsock(cid: number, port: number): Promise<Duplex>;
  writeFile(path: string, content: string): Promise<void>;
  sleep(ms: number): Promise<void>;
}

export const systemActions: SystemActions = {
  async isMountPoint(path) {
    try {
      if (path === '/') return true;
      const [own, parent] = await Promise.all([stat(path), stat(dirname(path))]);
      return own.dev !== parent.dev;
    } catch {
      return false;
    }
  },
  async mkdir(path) {
    await mkdir(path, { recursive: true });
  },
  mount: (spec) => mountFilesystem(spec.source, spec.target, spec.fstype, spec.flags, spec.data),
  async isCharDevice(path) {
    try {
      return (await stat(path)).isCharacterDevice();
    } catch {
      return false;
    }
  },
  interfaceUp: (name) => interfaceUp(name),
  setInterfaceAddress: (name, address, prefixLength) => setInterfaceAddress(name, address, prefixLength),
  loadModule: (path) => loadKernelModule(path),
  addEntropy: (bytes, bits) => addEntropy(bytes, bits),
  connectVsock: (cid, port) => connectVsock({ cid, port }),
  async writeFile(path, content) {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
  },
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export interface BootContext {
  config: InitConfig;
  system: SystemActions;
  logger: Logger;
  /** The NSM, opened on first use (entropy, pcr) and closed by the caller after the boot. */
  nsm(): Promise<Nsm>;
}

/** A `nsm()` for BootContext: opens the configured NSM once; `close()` closes it if it was opened. */
export function lazyNsm(config: InitConfig, logger: Logger, open: typeof openNsm = openNsm): { nsm(): Promise<Nsm>; close(): Promise<void> } {
  let opened: Promise<Nsm> | null = null;
  return {
    nsm() {
      opened ??= open({
        mode: config.nsm,
        devicePath: config.nsmDevicePath,
        ...(config.mockPkiDir !== null ? { mockPkiDir: config.mockPkiDir } : {}),
        logger,
      });
      return opened;
    },
    async close() {
      if (opened === null) return;
      const nsm = await opened.catch(() => null);
      await nsm?.close();
    },
  };
}

const mounts: BootStep<BootContext> = {
  name: 'mounts',
  fatal: true,
  async run({ config, system }) {
    if (!config.boot.mounts) return { skipped: 'boot.mounts is false' };
    const mounted: string[] = [];
    for (const spec of KERNEL_MOUNTS) {
      if (await system.isMountPoint(spec.target)) continue;
      await system.mkdir(spec.target);
      system.mount(spec);
      mounted.push(spec.target);
    }
    return { mounted };
  },
};

const devices: BootStep<BootContext> = {
  name: 'devices',
  fatal: true,
  async run({ system }) {
    const missing: string[] = [];
    for (const path of REQUIRED_DEVICES) if (!(await system.isCharDevice(path))) missing.push(path);
    if (missing.length > 0) throw new InitError('INIT_DEVICE_MISSING', `not character devices: ${missing.join(', ')}`);
    return { checked: REQUIRED_DEVICES.length };
  },
};

const loopback: BootStep<BootContext> = {
  name: 'loopback',
  fatal: true,
  run({ config, system }) {
    if (!config.boot.loopback) return { skipped: 'boot.loopback is false' };
    return { interface: 'lo', changed: system.interfaceUp('lo') };
  },
};

const modules: BootStep<BootContext> = {
  name: 'modules',
  fatal: true,
  run({ config, system, logger }) {
    if (config.modules.length === 0) return { skipped: 'no modules configured' };
    let loadedNow = 0;
    for (const path of config.modules) {
      const started = performance.now();
      const now = system.loadModule(path);
      if (now) loadedNow += 1;
      logger.info({ module: path, loaded: now ? 'now' : 'already', durationMs: Math.round((performance.now() - started) * 10) / 10 }, 'kernel module loaded');
    }
    return { modules: config.modules.length, loadedNow };
  },
};

const heartbeat: BootStep<BootContext> = {
  name: 'heartbeat',
  // A Nitro launcher reports an enclave that does not call in as a failed boot: so does init.
  fatal: true,
  async run({ config, system }) {
    const target = config.boot.heartbeat;
    if (target === null) return { skipped: 'boot.heartbeat is false' };
    await exchangeHeartbeat((cid, port) => system.connectVsock(cid, port), target);
    return { cid: target.cid, port: target.port };
  },
};

const interfaces: BootStep<BootContext> = {
  name: 'interfaces',
  fatal: true,
  run({ config, system }) {
    if (config.boot.interfaces.length === 0) return { skipped: 'no interfaces configured' };
    const done: Array<{ name: string; address: string; broughtUp: boolean }> = [];
    for (const { name, address } of config.boot.interfaces) {
      // The configuration checked the form (init/config.ts); a null here is a bug, not an input.
      const parsed = parseInterfaceAddress(address);
      if (parsed === null) throw new InitError('INIT_BAD_ARGUMENT', `interface ${name}: bad address ${JSON.stringify(address)}`);
      done.push({ name, address, broughtUp: system.setInterfaceAddress(name, parsed.address, parsed.prefixLength) });
    }
    return { interfaces: done };
  },
};

const nsmDriver: BootStep<BootContext> = {
  name: 'nsm-driver',
  fatal: true,
  async run({ config, system }) {
    if (config.nsm !== 'device') return { skipped: 'mock NSM' };
    let waitedMs = 0;
    while (!(await system.isCharDevice(config.nsmDevicePath))) {
      if (waitedMs >= NSM_DEVICE_WAIT_MS) throw new InitError('INIT_DEVICE_MISSING', `${config.nsmDevicePath} did not appear within ${NSM_DEVICE_WAIT_MS} ms`);
      await system.sleep(NSM_DEVICE_POLL_MS);
      waitedMs += NSM_DEVICE_POLL_MS;
    }
    return { device: config.nsmDevicePath, waitedMs };
  },
};

const entropy: BootStep<BootContext> = {
  name: 'entropy',
  fatal: true,
  async run({ config, system, nsm }) {
    if (!config.boot.entropy) return { skipped: 'boot.entropy is false' };
    const module = await nsm();
    const pool = new Uint8Array(config.entropyBytes);
    let filled = 0;
    for (let calls = 0; filled < pool.length; calls++) {
      if (calls === GET_RANDOM_MAX_CALLS) throw new InitError('INIT_STEP_FAILED', `NSM GetRandom gave ${filled} of ${pool.length} bytes in ${calls} calls`);
      const random = await module.getRandom();
      const take = Math.min(random.length, pool.length - filled);
      pool.set(random.subarray(0, take), filled);
      random.fill(0);
      filled += take;
    }
    try {
      // The NSM's generator is the Nitro hardware's: credit every bit (what AWS's own tools do).
      system.addEntropy(pool, pool.length * 8);
    } finally {
      pool.fill(0);
    }
    return { bytes: pool.length, bits: pool.length * 8, nsm: module.kind };
  },
};

/** PCRs 0-15 are the boot's (specs/nsm.md §2): LockPCRs with this range locks exactly them. */
const BOOT_PCR_RANGE = 16;

const rigMeasurements: BootStep<BootContext> = {
  name: 'rig-measurements',
  fatal: true,
  async run({ config, nsm }) {
    const entries = Object.entries(config.rigMeasurements).sort(([a], [b]) => Number(a) - Number(b));
    if (entries.length === 0) return { skipped: 'no rig measurements configured' };
    const module = await nsm();
    const values: Record<string, string> = {};
    for (const [index, text] of entries) {
      values[index] = bytesToHex(await module.extendPcr(Number(index), new TextEncoder().encode(text)));
    }
    await module.lockPcrs(BOOT_PCR_RANGE);
    return { values, locked: `0-${BOOT_PCR_RANGE - 1}` };
  },
};

const pcr: BootStep<BootContext> = {
  name: 'pcr',
  fatal: true,
  async run({ config, nsm }) {
    if (config.pcr === null) return { skipped: 'no pcr configured' };
    const { index, lock } = config.pcr;
    const { digest, pcrValue } = measureConfig(config);
    const module = await nsm();
    const before = await module.describePcr(index);
    if (before.locked) {
      // A restarted init in the same enclave finds its own measurement: fine. Anything else is not.
      if (bytesToHex(before.value) !== bytesToHex(pcrValue)) {
        throw new InitError('INIT_PCR_MISMATCH', `PCR${index} is locked with another value than this configuration's`);
      }
      return { index, digest: bytesToHex(digest), value: bytesToHex(before.value), locked: true, already: true };
    }
    const value = await module.extendPcr(index, digest);
    if (lock) await module.lockPcr(index);
    return { index, digest: bytesToHex(digest), value: bytesToHex(value), locked: lock, already: false };
  },
};

const files: BootStep<BootContext> = {
  name: 'files',
  fatal: false,
  async run({ config, system }) {
    const paths = Object.keys(config.files).sort();
    if (paths.length === 0) return { skipped: 'no files configured' };
    for (const path of paths) await system.writeFile(path, config.files[path]!);
    return { paths };
  },
};

/** The system steps, in boot order. */
export function createBootSteps(): BootStep<BootContext>[] {
  return [mounts, devices, modules, heartbeat, loopback, interfaces, nsmDriver, entropy, rigMeasurements, pcr, files];
}
