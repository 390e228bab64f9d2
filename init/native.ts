/**
 * The typed boundary to init/native/init.c (exported as `init` on the one addon native/ loads): mount(2),
 * bringing an interface up, an interface's IPv4 address, RNDADDENTROPY, finit_module(2),
 * PR_SET_CHILD_SUBREAPER and the orphan reaper.
 *
 * Every wrapper checks its arguments first and throws `INIT_BAD_ARGUMENT` before the addon is even
 * loaded; addon failures come back as `InitError` with code `INIT_E<ERRNO>` and `errno`. Nothing here runs
 * at import time, and nothing here decides when to call what (that is init/boot-steps.ts).
 */

import { loadNativeAddon } from '../native/index.js';

import { InitError, type InitErrorCode } from './errors.js';
import { INTERFACE_NAME_EXPECTED, INTERFACE_NAME_MAX_BYTES, IPV4_PREFIX_MAX, isInterfaceName, isIpv4Address } from './network.js';

export { INTERFACE_NAME_MAX_BYTES };

/** What init.c exports. */
export interface InitNative {
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  interfaceUp(name: string): boolean;
  setInterfaceAddress(name: string, address: string, prefixLength: number): boolean;
  addEntropy(bytes: Uint8Array, bits: number): void;
  loadModule(path: string, params: string): boolean;
  setChildSubreaper(): void;
  reapOrphans(ownPids: number[]): number[];
  readonly MS_NOSUID: number;
  readonly MS_NODEV: number;
  readonly MS_NOEXEC: number;
  readonly MS_RELATIME: number;
  readonly MAX_ENTROPY_BYTES: number;
  readonly MAX_STRING_BYTES: number;
  readonly MAX_OWN_PIDS: number;
  readonly MAX_REAP_PER_CALL: number;
}

/** Same limits as init.c: PATH_MAX for strings, 4 KiB of entropy per call, 1024 own pids. */
export const NATIVE_STRING_MAX_BYTES = 4096;
export const ENTROPY_CALL_MAX_BYTES = 4096;
export const OWN_PIDS_MAX = 1024;
/** Mount flags (include/uapi/linux/mount.h), restated so argument checks need no addon. */
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_NOEXEC = 8;
export const MS_RELATIME = 1 << 21;

let cached: InitNative | undefined;

/** Loads (once, through native/'s loader) the addon's `init` half; throws `INIT_NATIVE_UNAVAILABLE`. */
export function loadInitNative(): InitNative {
  if (cached !== undefined) return cached;
  let binding: unknown;
  try {
    binding = loadNativeAddon();
  } catch (cause) {
    throw new InitError('INIT_NATIVE_UNAVAILABLE', 'cannot load the native addon for init', { cause });
  }
  const native = (binding as { init?: InitNative }).init;
  if (native === undefined) {
    throw new InitError('INIT_NATIVE_UNAVAILABLE', 'the native addon was built without init/native/init.c: rebuild it (`npm run install`)');
  }
  cached = native;
  return native;
}

function badArgument(name: string, expected: string, value: unknown): InitError {
  const got = typeof value === 'string' ? `${JSON.stringify(value.slice(0, 40))}${value.length > 40 ? '...' : ''}` : Array.isArray(value) ? 'Array' : value instanceof Uint8Array ? `${value.length} bytes` : String(value);
  return new InitError('INIT_BAD_ARGUMENT', `"${name}" expected ${expected}, got ${got}`);
}

function assertString(name: string, value: unknown, options: { allowEmpty?: boolean; maxBytes?: number } = {}): asserts value is string {
  const maxBytes = options.maxBytes ?? NATIVE_STRING_MAX_BYTES;
  const expected = `a ${options.allowEmpty ? '' : 'non-empty '}string of at most ${maxBytes} bytes without NUL`;
  if (typeof value !== 'string' || value.includes('\0') || (!options.allowEmpty && value === '') || Buffer.byteLength(value) > maxBytes) {
    throw badArgument(name, expected, value);
  }
}

function assertInteger(name: string, value: unknown, min: number, max: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw badArgument(name, `an integer ${min}..${max}`, value);
}

/** Re-throws an addon error as an `InitError` with the same code and errno. */
function fromNative<T>(call: () => T): T {
  try {
    return call();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (error instanceof Error && typeof code === 'string' && code.startsWith('INIT_')) {
      const errno = (error as { errno?: unknown }).errno;
      throw new InitError(code as InitErrorCode, error.message, { cause: error, ...(typeof errno === 'string' ? { errno } : {}) });
    }
    throw error;
  }
}

/** mount(2). `data` is the filesystem's option string ('' for none). */
export function mountFilesystem(source: string, target: string, fstype: string, flags: number, data = ''): void {
  assertString('source', source);
  assertString('target', target);
  assertString('fstype', fstype, { maxBytes: 64 });
  assertInteger('flags', flags, 0, 0xffff_ffff);
  assertString('data', data, { allowEmpty: true });
  const native = loadInitNative();
  fromNative(() => native.mount(source, target, fstype, flags, data));
}

function assertInterfaceName(name: unknown): asserts name is string {
  assertString('name', name, { maxBytes: INTERFACE_NAME_MAX_BYTES });
  if (!isInterfaceName(name)) throw badArgument('name', INTERFACE_NAME_EXPECTED, name);
}

/** Sets IFF_UP on an interface; true if it was down, false if it was already up. */
export function interfaceUp(name: string): boolean {
  assertInterfaceName(name);
  const native = loadInitNative();
  return fromNative(() => native.interfaceUp(name));
}

/**
 * Sets an interface's IPv4 address and netmask (SIOCSIFADDR, SIOCSIFNETMASK), then IFF_UP; true if the
 * interface was down. The same values again change nothing. `address` is a dotted quad without leading
 * zeros (init/network.ts).
 */
export function setInterfaceAddress(name: string, address: string, prefixLength: number): boolean {
  assertInterfaceName(name);
  if (!isIpv4Address(address)) throw badArgument('address', 'a dotted-quad IPv4 address (no leading zeros)', address);
  assertInteger('prefixLength', prefixLength, 0, IPV4_PREFIX_MAX);
  const native = loadInitNative();
  return fromNative(() => native.setInterfaceAddress(name, address, prefixLength));
}

/** RNDADDENTROPY: mixes `bytes` into the kernel's pool and credits `bits` (at most 8 per byte). */
export function addEntropy(bytes: Uint8Array, bits: number): void {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0 || bytes.length > ENTROPY_CALL_MAX_BYTES) {
    throw badArgument('bytes', `a Uint8Array of 1..${ENTROPY_CALL_MAX_BYTES} bytes`, bytes);
  }
  assertInteger('bits', bits, 0, bytes.length * 8);
  const native = loadInitNative();
  fromNative(() => native.addEntropy(bytes, bits));
}

/** finit_module(2); true if loaded now, false if the module was already loaded (EEXIST). */
export function loadKernelModule(path: string, params = ''): boolean {
  assertString('path', path);
  assertString('params', params, { allowEmpty: true });
  const native = loadInitNative();
  return fromNative(() => native.loadModule(path, params));
}

/** prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are re-parented to this process. */
export function setChildSubreaper(): void {
  const native = loadInitNative();
  fromNative(() => native.setChildSubreaper());
}

/**
 * Reaps exited children that are not in `ownPids` (the children Node spawned and libuv will reap) and
 * returns their pids; at most MAX_REAP_PER_CALL per call.
 */
export function reapOrphans(ownPids: readonly number[]): number[] {
  if (!Array.isArray(ownPids) || ownPids.length > OWN_PIDS_MAX) throw badArgument('ownPids', `an array of at most ${OWN_PIDS_MAX} pids`, ownPids);
  for (const pid of ownPids) assertInteger('ownPids[i]', pid, 1, 2 ** 31 - 1);
  const native = loadInitNative();
  return fromNative(() => native.reapOrphans([...ownPids]));
}
