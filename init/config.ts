/**
 * The init's configuration: one JSON file (`enclave-agent init --config FILE`, or the path in
 * ENCLAVE_INIT_CONFIG), plus the Procfile it may name, loaded once (init/config-file.ts), validated here as
 * a whole (every problem reported at once, `INIT_CONFIG_INVALID`), normalised (defaults filled in, the
 * Procfile's `run` turned into the app command) and frozen. Pure: no I/O.
 *
 * No other environment variable changes the configuration: what runs is exactly what the file (and the
 * Procfile) say, and that is what init/measurement.ts hashes into the configuration PCR. Unknown keys are
 * errors, so a misspelt security setting cannot be silently ignored. Switches that touch the system
 * (`boot.mounts`, `boot.loopback`, `boot.entropy`) have no default: a config written for a laptop cannot
 * mount over its /tmp by omission. `boot.heartbeat` (Nitro's boot heartbeat, init/heartbeat.ts) has none
 * either: an image for Nitro says `true` (the parent, CID 3, port 9000) or where its launcher listens, one
 * for a laptop `false`. The NSM mode has no default either, the mock is chosen by name, and
 * like the agent's, it is refused unless `deployment` is "test".
 *
 * File shape (every field, with defaults):
 *
 *   {
 *     "nsm": "device" | "mock",                      required
 *     "deployment": "production",                    "test" allows the mock NSM (as the agent's --deployment)
 *     "nsmDevicePath": "/dev/nsm",
 *     "mockPkiDir": null,                            required with "mock", refused with "device"
 *     "modules": [],                                 absolute paths of .ko files, loaded in order (finit_module)
 *     "boot": { "mounts": bool, "loopback": bool, "entropy": bool,        required, explicit
 *               "heartbeat": false | true | { "cid": 3, "port": 9000, "timeoutMs": 10000 },  required;
 *                                                    true is the object with those defaults (Nitro's parent)
 *               "interfaces": [] },                  [{ "name": "eth0", "address": "10.0.2.15/24" }], IPv4
 *     "entropyBytes": 256,                           1..4096, collected from NSM GetRandom
 *     "files": {},                                   absolute path -> content, e.g. /etc/hosts
 *     "pcr": null,                                   { "index": 16..31, "lock": true }
 *     "rigMeasurements": {},                         test deployments only: { "0": text, ... } extended into
 *                                                    PCR0-15 and then locked (a measured boot for QEMU)
 *     "services": [],                                [{ "name", "args": [...] } | { "name", "command": [argv] },
 *                                                     plus optional "env": {}], started before the agent
 *     "app": { "command": [argv] } | { "procfile": PATH },  plus optional "env": {}, "cwd": PATH
 *     "agent": { "args": [...] } | { "command": [argv] } | null,  plus optional "env": {}
 *     "restart": { "initialBackoffMs": 500, "maxBackoffMs": 30000, "crashLoopRestarts": 5,
 *                  "crashLoopWindowMs": 60000, "stableAfterMs": 10000 },
 *     "shutdownDeadlineMs": 10000,
 *     "logLevel": "info"
 *   }
 *
 * `agent.args` runs this same CLI's `run` subcommand with those arguments (`process.execPath CLI run
 * ...args`), and a service's `args` runs this same CLI with its arguments, the subcommand first
 * (`process.execPath CLI enclave-bridge ...`); the CLI's path is resolved at start, not stored here, so the
 * measurement does not depend on where Node is installed. `command` is a full argv instead. Service names
 * are [a-z0-9-]{1,32}, unique, and not "agent" or "app" (they name the children in the logs). Every
 * supervised child (services, agent, app) follows `restart` and `shutdownDeadlineMs`.
 */

import { isAbsolute } from 'node:path';

import { Checker, CONFIG_MAX_BYTES, isObject, type Json } from './config-checker.js';
import { InitError } from './errors.js';
import { DEFAULT_HEARTBEAT_TIMEOUT_MS, NITRO_HEARTBEAT_PORT, NITRO_PARENT_CID, type HeartbeatTarget } from './heartbeat.js';
import { INTERFACE_NAME_EXPECTED, isInterfaceName, parseInterfaceAddress } from './network.js';
import { parseProcfile, procfileCommand } from './procfile.js';

export { CONFIG_MAX_BYTES };
/** PCRs 0-15 are locked at boot (specs/nsm.md §2); 16-31 can be extended and locked. */
const FIRST_EXTENDABLE_PCR = 16;
const LAST_PCR = 31;
/** NSM GetRandom gives at most 256 bytes per call (specs/nsm.md §2); 16 calls at most. */
export const ENTROPY_MAX_BYTES = 4096;
/** Kernel modules, interfaces and services accepted: an enclave image needs a handful of each. */
export const MAX_MODULES = 64;
export const MAX_INTERFACES = 16;
export const MAX_SERVICES = 16;
const SERVICE_NAME_RE = /^[a-z0-9-]{1,32}$/;
/** The names of the two children init always knows; a service cannot take them. */
const RESERVED_SERVICE_NAMES: readonly string[] = ['agent', 'app'];
const HOUR_MS = 60 * 60 * 1000;
/** vsock CIDs and ports are u32; -1U is VMADDR_*_ANY, never a target (include/uapi/linux/vm_sockets.h). */
const MAX_VSOCK_CID = 0xffff_fffe;
const MAX_VSOCK_PORT = 0xffff_fffe;
/** A heartbeat may wait at most 10 minutes: longer would be a boot that never ends, not a slow parent. */
const MAX_HEARTBEAT_TIMEOUT_MS = 10 * 60 * 1000;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type InitLogLevel = (typeof LOG_LEVELS)[number];

export interface RestartPolicy {
  /** First delay before a restart; doubled after each quick failure, up to `maxBackoffMs`. */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** Give up (state `failed`, `INIT_CRASH_LOOP`) when a child exits after this many restarts within the window. */
  crashLoopRestarts: number;
  crashLoopWindowMs: number;
  /** A child that ran at least this long counts as healthy: the next backoff starts again from the first. */
  stableAfterMs: number;
}

/** An IPv4 address for one interface, as written: "10.0.2.15/24" (init/network.ts). */
export interface InterfaceConfig {
  name: string;
  address: string;
}

/** A supervised service: `command` (a full argv), or null and `args` for this same CLI. */
export interface ServiceConfig {
  name: string;
  command: readonly string[] | null;
  args: readonly string[];
  env: Readonly<Record<string, string>>;
}

export interface InitConfig {
  nsm: 'device' | 'mock';
  deployment: 'production' | 'test';
  nsmDevicePath: string;
  mockPkiDir: string | null;
  modules: readonly string[];
  /** `heartbeat`: where Nitro's boot heartbeat goes (init/heartbeat.ts), or null for none. */
  boot: { mounts: boolean; loopback: boolean; entropy: boolean; heartbeat: HeartbeatTarget | null; interfaces: readonly InterfaceConfig[] };
  entropyBytes: number;
  files: Readonly<Record<string, string>>;
  pcr: { index: number; lock: boolean } | null;
  /**
   * Test deployments only: PCR index (0-15) -> text whose UTF-8 bytes are extended into that PCR before
   * PCRs 0-15 are locked. It stands in for Nitro's measured boot on rigs whose NSM has none (QEMU's
   * virtio-nsm starts with every PCR zero and unlocked), so documents there carry PCR0-2 to pin.
   */
  rigMeasurements: Readonly<Record<string, string>>;
  services: readonly ServiceConfig[];
  app: { command: readonly string[]; procfile: string | null; env: Readonly<Record<string, string>>; cwd: string | null };
  agent: { command: readonly string[] | null; args: readonly string[]; env: Readonly<Record<string, string>> } | null;
  restart: RestartPolicy;
  shutdownDeadlineMs: number;
  logLevel: InitLogLevel;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = Object.freeze({
  initialBackoffMs: 500,
  maxBackoffMs: 30_000,
  crashLoopRestarts: 5,
  crashLoopWindowMs: 60_000,
  stableAfterMs: 10_000,
});

const TOP_LEVEL_KEYS = [
  'nsm', 'deployment', 'nsmDevicePath', 'mockPkiDir', 'modules', 'boot', 'entropyBytes', 'files', 'pcr', 'rigMeasurements', 'services', 'app', 'agent', 'restart', 'shutdownDeadlineMs', 'logLevel',
];
/** Keys of earlier versions of this file, refused with what replaced them. */
const REPLACED_KEYS: Readonly<Record<string, string>> = {
  nsmModule: 'replaced by "modules" (a list of .ko paths)',
  bridges: 'replaced by "services" (e.g. { "name": "bridges", "args": ["enclave-bridge", ...] })',
};

/** `boot.interfaces`: each a valid name and "a.b.c.d/p", no name twice. */
function parseInterfaces(c: Checker, value: Json): InterfaceConfig[] {
  const interfaces = c.list('boot.interfaces', value, MAX_INTERFACES, (field, item) => {
    if (!isObject(item)) {
      c.fail(field, 'an object {"name", "address"}', item);
      return { name: '', address: '' };
    }
    c.keys(field, item, ['name', 'address']);
    const name = isInterfaceName(item.name) ? item.name : '';
    if (name === '') c.fail(`${field}.name`, INTERFACE_NAME_EXPECTED, item.name);
    if (parseInterfaceAddress(item.address) === null) c.fail(`${field}.address`, 'an IPv4 address and prefix length like "10.0.2.15/24"', item.address);
    return { name, address: String(item.address) };
  });
  duplicates(c, 'boot.interfaces', interfaces.map((i) => i.name));
  return interfaces;
}

/** `boot.heartbeat`: explicit `false`, `true` (Nitro's parent and port), or an object overriding them. */
function parseHeartbeat(c: Checker, value: Json): HeartbeatTarget | null {
  if (value === false) return null;
  if (value === true) return { cid: NITRO_PARENT_CID, port: NITRO_HEARTBEAT_PORT, timeoutMs: DEFAULT_HEARTBEAT_TIMEOUT_MS };
  if (!isObject(value)) {
    c.fail('boot.heartbeat', 'false, true (CID 3, port 9000) or an object {"cid", "port", "timeoutMs"} (no default)', value);
    return null;
  }
  c.keys('boot.heartbeat', value, ['cid', 'port', 'timeoutMs']);
  return {
    cid: c.integer('boot.heartbeat.cid', value.cid, 1, MAX_VSOCK_CID, NITRO_PARENT_CID),
    port: c.integer('boot.heartbeat.port', value.port, 0, MAX_VSOCK_PORT, NITRO_HEARTBEAT_PORT),
    timeoutMs: c.integer('boot.heartbeat.timeoutMs', value.timeoutMs, 1, MAX_HEARTBEAT_TIMEOUT_MS, DEFAULT_HEARTBEAT_TIMEOUT_MS),
  };
}

/** `services`: each named, with exactly one of `args` and `command`, no name twice. */
function parseServices(c: Checker, value: Json): ServiceConfig[] {
  const services = c.list('services', value, MAX_SERVICES, (field, item): ServiceConfig => {
    if (!isObject(item)) {
      c.fail(field, 'an object {"name", "args" or "command", "env"}', item);
      return { name: '', command: null, args: [], env: {} };
    }
    c.keys(field, item, ['name', 'args', 'command', 'env']);
    const name = typeof item.name === 'string' && SERVICE_NAME_RE.test(item.name) && !RESERVED_SERVICE_NAMES.includes(item.name) ? item.name : '';
    if (name === '') c.fail(`${field}.name`, 'a name of 1..32 characters [a-z0-9-], not "agent" or "app"', item.name);
    const env = c.env(`${field}.env`, item.env);
    if ((item.args === undefined) === (item.command === undefined)) {
      c.problems.push(`${field}: expected exactly one of "args" (this CLI's subcommand and its arguments) and "command" (an argv)`);
      return { name, command: null, args: [], env };
    }
    if (item.command !== undefined) return { name, command: c.argv(`${field}.command`, item.command), args: [], env };
    return { name, command: null, args: c.args(`${field}.args`, item.args, 1), env };
  });
  duplicates(c, 'services', services.map((s) => s.name));
  return services;
}

/** One problem per name used again, naming the first use. Empty names (already reported) are skipped. */
function duplicates(c: Checker, field: string, names: readonly string[]): void {
  const first = new Map<string, number>();
  names.forEach((name, i) => {
    if (name === '') return;
    const earlier = first.get(name);
    if (earlier === undefined) first.set(name, i);
    else c.problems.push(`${field}[${i}].name: ${JSON.stringify(name)} is already used by ${field}[${earlier}]`);
  });
}

export interface ParseInitConfigOptions {
  /** The text of `app.procfile`, read by the caller (undefined if it could not be read: `procfileError` says why). */
  procfileText?: string;
  procfileError?: string;
}

/**
 * Validates a parsed config file (and the Procfile's text when it names one) and returns the frozen
 * effective configuration. Throws `INIT_CONFIG_INVALID` listing every problem. Pure.
 */
export function parseInitConfig(json: Json, options: ParseInitConfigOptions = {}): InitConfig {
  const c = new Checker();
  if (!isObject(json)) {
    c.fail('config', 'a JSON object', json);
    throw configError(c.problems);
  }
  for (const key of Object.keys(json)) {
    if (REPLACED_KEYS[key] !== undefined) c.problems.push(`${key}: ${REPLACED_KEYS[key]}`);
    else if (!TOP_LEVEL_KEYS.includes(key)) c.problems.push(`config: unknown key ${JSON.stringify(key)}`);
  }

  let nsm: InitConfig['nsm'] = 'device';
  if (json.nsm === 'device' || json.nsm === 'mock') nsm = json.nsm;
  else c.fail('nsm', '"device" or "mock" (no default)', json.nsm);
  let deployment: InitConfig['deployment'] = 'production';
  if (json.deployment === 'test' || json.deployment === 'production') deployment = json.deployment;
  else if (json.deployment !== undefined) c.fail('deployment', '"production" or "test"', json.deployment);
  if (nsm === 'mock' && deployment === 'production') c.problems.push('nsm: "mock" is refused in a production deployment (set "deployment": "test" for tests)');
  const nsmDevicePath = json.nsmDevicePath === undefined ? '/dev/nsm' : c.path('nsmDevicePath', json.nsmDevicePath);
  const mockPkiDir = c.optionalPath('mockPkiDir', json.mockPkiDir);
  if (nsm === 'mock' && mockPkiDir === null) c.problems.push('mockPkiDir: required with nsm "mock" (enclave-agent mock-pki --out DIR)');
  if (nsm === 'device' && mockPkiDir !== null) c.problems.push('mockPkiDir: goes with nsm "mock" only');
  const modules = c.list('modules', json.modules, MAX_MODULES, (field, item) => c.path(field, item));

  let boot: InitConfig['boot'] = { mounts: false, loopback: false, entropy: false, heartbeat: null, interfaces: [] };
  if (isObject(json.boot)) {
    c.keys('boot', json.boot, ['mounts', 'loopback', 'entropy', 'heartbeat', 'interfaces']);
    boot = {
      mounts: c.boolean('boot.mounts', json.boot.mounts),
      loopback: c.boolean('boot.loopback', json.boot.loopback),
      entropy: c.boolean('boot.entropy', json.boot.entropy),
      heartbeat: parseHeartbeat(c, json.boot.heartbeat),
      interfaces: parseInterfaces(c, json.boot.interfaces),
    };
  } else c.fail('boot', 'an object {"mounts", "loopback", "entropy", "heartbeat"} of explicit values', json.boot);
  const entropyBytes = c.integer('entropyBytes', json.entropyBytes, 1, ENTROPY_MAX_BYTES, 256);

  const files = c.stringMap('files', json.files, (key) => isAbsolute(key) && !key.includes('\0') && key.length <= 4096, 'an absolute path');

  let pcr: InitConfig['pcr'] = null;
  if (isObject(json.pcr)) {
    c.keys('pcr', json.pcr, ['index', 'lock']);
    const index = json.pcr.index;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < FIRST_EXTENDABLE_PCR || index > LAST_PCR) {
      c.fail('pcr.index', `an integer ${FIRST_EXTENDABLE_PCR}..${LAST_PCR} (PCRs 0-15 belong to the boot)`, index);
    }
    pcr = { index: Number(index), lock: c.boolean('pcr.lock', json.pcr.lock, true) };
  } else if (json.pcr !== undefined && json.pcr !== null) c.fail('pcr', 'an object {"index", "lock"} or null', json.pcr);

  const rigMeasurements = c.stringMap('rigMeasurements', json.rigMeasurements, (key) => /^(?:[0-9]|1[0-5])$/.test(key), 'a PCR index 0..15');
  if (Object.keys(rigMeasurements).length > 0 && deployment === 'production') {
    c.problems.push('rigMeasurements: refused in a production deployment (it stands in for a measured boot on test rigs; set "deployment": "test")');
  }

  const services = parseServices(c, json.services);

  let app: InitConfig['app'] = { command: [], procfile: null, env: {}, cwd: null };
  if (isObject(json.app)) {
    c.keys('app', json.app, ['command', 'procfile', 'env', 'cwd']);
    const env = c.env('app.env', json.app.env);
    const cwd = c.optionalPath('app.cwd', json.app.cwd);
    if ((json.app.command === undefined) === (json.app.procfile === undefined)) {
      c.problems.push('app: expected exactly one of "command" (an argv array) and "procfile" (a path)');
    } else if (json.app.command !== undefined) {
      app = { command: c.argv('app.command', json.app.command), procfile: null, env, cwd };
    } else {
      const procfile = c.path('app.procfile', json.app.procfile);
      let command: string[] = [];
      if (options.procfileText !== undefined) {
        try {
          command = procfileCommand(parseProcfile(options.procfileText));
        } catch (err) {
          c.problems.push(`app.procfile: ${(err as Error).message}`);
        }
      } else if (procfile !== '') c.problems.push(`app.procfile: ${options.procfileError ?? 'not read'}`);
      app = { command, procfile, env, cwd };
    }
  } else c.fail('app', 'an object with "command" or "procfile"', json.app);

  let agent: InitConfig['agent'] = null;
  if (isObject(json.agent)) {
    c.keys('agent', json.agent, ['args', 'command', 'env']);
    const env = c.env('agent.env', json.agent.env);
    if (json.agent.command !== undefined && json.agent.args !== undefined) c.problems.push('agent: expected "args" (for this CLI\'s run command) or "command" (an argv), not both');
    agent = {
      command: json.agent.command === undefined ? null : c.argv('agent.command', json.agent.command),
      args: c.args('agent.args', json.agent.args),
      env,
    };
  } else if (json.agent !== null) c.fail('agent', 'an object with "args" or "command", or null for no agent (explicitly)', json.agent);

  let restart = DEFAULT_RESTART_POLICY;
  if (isObject(json.restart)) {
    const r = json.restart;
    c.keys('restart', r, Object.keys(DEFAULT_RESTART_POLICY));
    const d = DEFAULT_RESTART_POLICY;
    restart = {
      initialBackoffMs: c.integer('restart.initialBackoffMs', r.initialBackoffMs, 1, HOUR_MS, d.initialBackoffMs),
      maxBackoffMs: c.integer('restart.maxBackoffMs', r.maxBackoffMs, 1, HOUR_MS, d.maxBackoffMs),
      crashLoopRestarts: c.integer('restart.crashLoopRestarts', r.crashLoopRestarts, 0, 1000, d.crashLoopRestarts),
      crashLoopWindowMs: c.integer('restart.crashLoopWindowMs', r.crashLoopWindowMs, 1, 24 * HOUR_MS, d.crashLoopWindowMs),
      stableAfterMs: c.integer('restart.stableAfterMs', r.stableAfterMs, 1, HOUR_MS, d.stableAfterMs),
    };
    if (restart.maxBackoffMs < restart.initialBackoffMs) c.problems.push('restart.maxBackoffMs: expected at least restart.initialBackoffMs');
  } else if (json.restart !== undefined) c.fail('restart', 'an object', json.restart);

  const shutdownDeadlineMs = c.integer('shutdownDeadlineMs', json.shutdownDeadlineMs, 1, 10 * 60 * 1000, 10_000);
  let logLevel: InitLogLevel = 'info';
  if (json.logLevel !== undefined) {
    if ((LOG_LEVELS as readonly Json[]).includes(json.logLevel)) logLevel = json.logLevel as InitLogLevel;
    else c.fail('logLevel', `one of ${LOG_LEVELS.join(', ')}`, json.logLevel);
  }

  if (c.problems.length > 0) throw configError(c.problems);
  return deepFreeze({
    nsm,
    deployment,
    nsmDevicePath,
    mockPkiDir,
    modules,
    boot,
    entropyBytes,
    files,
    pcr,
    rigMeasurements,
    services,
    app,
    agent,
    restart: { ...restart },
    shutdownDeadlineMs,
    logLevel,
  });
}

function configError(problems: string[]): InitError {
  return new InitError('INIT_CONFIG_INVALID', `invalid init configuration: ${problems.join('; ')}`, { problems });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}
