/**
 * init/native.ts on the host: the addon has its `init` half with every function and constant, the
 * TypeScript constants match the C ones, and bad arguments are refused with INIT_BAD_ARGUMENT by both
 * layers (TypeScript first, then the C checks when called directly). The calls themselves change the
 * system (mount, interfaces, the entropy pool, modules), so they run only in the QEMU guest
 * (test/qemu/init.guest.test.ts); every call made here fails its argument check before any syscall.
 */

import { describe, expect, it } from 'vitest';

import { InitError } from './errors.js';
import * as native from './native.js';

function expectBadArgument(call: () => unknown, message: RegExp): void {
  try {
    call();
  } catch (err) {
    expect(err).toBeInstanceOf(InitError);
    expect((err as InitError).code).toBe('INIT_BAD_ARGUMENT');
    expect((err as Error).message).toMatch(message);
    return;
  }
  throw new Error('no error');
}

/** For the C layer: its errors are plain TypeError/RangeError with a code. */
function expectNativeBadArgument(call: () => unknown, kind: typeof TypeError | typeof RangeError, message: RegExp): void {
  try {
    call();
  } catch (err) {
    expect(err).toBeInstanceOf(kind);
    expect((err as { code?: string }).code).toBe('INIT_BAD_ARGUMENT');
    expect((err as Error).message).toMatch(message);
    return;
  }
  throw new Error('no error');
}

describe('the addon', () => {
  it('has the init functions and constants, equal to the TypeScript ones', () => {
    const addon = native.loadInitNative();
    for (const name of ['mount', 'interfaceUp', 'setInterfaceAddress', 'addEntropy', 'loadModule', 'setChildSubreaper', 'reapOrphans'] as const) {
      expect(typeof addon[name], name).toBe('function');
    }
    expect(addon.MS_NOSUID).toBe(native.MS_NOSUID);
    expect(addon.MS_NODEV).toBe(native.MS_NODEV);
    expect(addon.MS_NOEXEC).toBe(native.MS_NOEXEC);
    expect(addon.MS_RELATIME).toBe(native.MS_RELATIME);
    expect(addon.MAX_ENTROPY_BYTES).toBe(native.ENTROPY_CALL_MAX_BYTES);
    expect(addon.MAX_STRING_BYTES).toBe(native.NATIVE_STRING_MAX_BYTES);
    expect(addon.MAX_OWN_PIDS).toBe(native.OWN_PIDS_MAX);
    expect(Object.isFrozen(addon)).toBe(true);
    expect(native.loadInitNative()).toBe(addon);
  });

  it('the C layer checks its arguments too', () => {
    const addon = native.loadInitNative();
    expectNativeBadArgument(() => addon.mount(1 as never, '/x', 'tmpfs', 0, ''), TypeError, /"source" expected a non-empty string of at most 4096 bytes without NUL, got 1/);
    expectNativeBadArgument(() => addon.mount('tmpfs', '', 'tmpfs', 0, ''), RangeError, /"target" expected a non-empty string/);
    expectNativeBadArgument(() => addon.mount('tmpfs', '/x', 'tmpfs', -1, ''), RangeError, /"flags" expected an integer 0..4294967295, got -1/);
    expectNativeBadArgument(() => addon.mount('tmpfs', '/x\0y', 'tmpfs', 0, ''), RangeError, /"target"/);
    expectNativeBadArgument(() => addon.interfaceUp('x'.repeat(16)), RangeError, /"name" expected a non-empty string of at most 15 bytes/);
    expectNativeBadArgument(() => addon.interfaceUp(undefined as never), TypeError, /"name".*got undefined/);
    // Every setInterfaceAddress call here fails a check before the socket is opened: none reaches an ioctl.
    expectNativeBadArgument(() => addon.setInterfaceAddress('x'.repeat(16), '127.0.0.1', 8), RangeError, /"name" expected a non-empty string of at most 15 bytes/);
    expectNativeBadArgument(() => addon.setInterfaceAddress('lo', 7 as never, 8), TypeError, /"address" expected a non-empty string of at most 15 bytes without NUL, got 7/);
    expectNativeBadArgument(() => addon.setInterfaceAddress('lo', '1234567890123456', 8), RangeError, /"address" expected a non-empty string of at most 15 bytes/);
    expectNativeBadArgument(() => addon.setInterfaceAddress('lo', '1.2.3.4.5', 8), RangeError, /"address" expected a dotted-quad IPv4 address, got string/);
    expectNativeBadArgument(() => addon.setInterfaceAddress('lo', '127.0.0.256', 8), RangeError, /"address" expected a dotted-quad IPv4 address/);
    expectNativeBadArgument(() => addon.setInterfaceAddress('lo', '127.0.0.1', 33), RangeError, /"prefixLength" expected an integer 0..32, got 33/);
    expectNativeBadArgument(() => addon.setInterfaceAddress('lo', '127.0.0.1', 8.5), RangeError, /"prefixLength" expected an integer 0..32, got 8.5/);
    expectNativeBadArgument(() => addon.setInterfaceAddress('lo', '127.0.0.1', '8' as never), TypeError, /"prefixLength".*got string/);
    expectNativeBadArgument(() => addon.addEntropy(new Uint8Array(0), 0), RangeError, /"bytes" expected 1..4096 bytes/);
    expectNativeBadArgument(() => addon.addEntropy(new Uint16Array(4) as never, 8), TypeError, /"bytes" expected a Uint8Array/);
    expectNativeBadArgument(() => addon.addEntropy(new Uint8Array(4), 33), RangeError, /"bits" expected an integer 0..8 x the byte count, got 33/);
    expectNativeBadArgument(() => addon.loadModule('', ''), RangeError, /"path"/);
    expectNativeBadArgument(() => addon.loadModule('/x.ko', 7 as never), TypeError, /"params"/);
    expectNativeBadArgument(() => addon.reapOrphans('1' as never), TypeError, /"ownPids" expected an Array of pids/);
    expectNativeBadArgument(() => addon.reapOrphans([0]), RangeError, /"ownPids\[i\]" expected a pid/);
    expectNativeBadArgument(() => addon.reapOrphans(new Array(1025).fill(1)), RangeError, /at most 1024 pids/);
  });
});

describe('argument checks before the addon', () => {
  it('mountFilesystem', () => {
    expectBadArgument(() => native.mountFilesystem('', '/proc', 'proc', 0), /"source" expected a non-empty string/);
    expectBadArgument(() => native.mountFilesystem('proc', 'x'.repeat(4097), 'proc', 0), /"target" expected .* at most 4096 bytes/);
    expectBadArgument(() => native.mountFilesystem('proc', '/proc', 'p'.repeat(65), 0), /"fstype"/);
    expectBadArgument(() => native.mountFilesystem('proc', '/proc', 'proc', 2 ** 32), /"flags" expected an integer 0..4294967295/);
    expectBadArgument(() => native.mountFilesystem('proc', '/proc', 'proc', 0, 'a\0b'), /"data"/);
  });

  it('interfaceUp', () => {
    expectBadArgument(() => native.interfaceUp(''), /"name" expected a non-empty string of at most 15 bytes/);
    expectBadArgument(() => native.interfaceUp('ééééééééé'), /at most 15 bytes/); // 18 bytes in UTF-8
    expectBadArgument(() => native.interfaceUp('../lo'), /an interface name/);
    expectBadArgument(() => native.interfaceUp('l o'), /an interface name/);
    expectBadArgument(() => native.interfaceUp('eth0:1'), /an interface name of 1..15 characters \[A-Za-z0-9_.-\]/);
    expectBadArgument(() => native.interfaceUp('..'), /not "." or ".."/);
  });

  it('setInterfaceAddress', () => {
    expectBadArgument(() => native.setInterfaceAddress('', '10.0.2.15', 24), /"name" expected a non-empty string of at most 15 bytes/);
    expectBadArgument(() => native.setInterfaceAddress('eth0:1', '10.0.2.15', 24), /"name" expected an interface name/);
    expectBadArgument(() => native.setInterfaceAddress('eth0', '010.0.2.15', 24), /"address" expected a dotted-quad IPv4 address \(no leading zeros\), got "010.0.2.15"/);
    expectBadArgument(() => native.setInterfaceAddress('eth0', '10.0.2.15/24', 24), /"address"/);
    expectBadArgument(() => native.setInterfaceAddress('eth0', '::1', 128), /"address"/);
    expectBadArgument(() => native.setInterfaceAddress('eth0', 167772687 as never, 24), /"address"/);
    expectBadArgument(() => native.setInterfaceAddress('eth0', '10.0.2.15', 33), /"prefixLength" expected an integer 0..32, got 33/);
    expectBadArgument(() => native.setInterfaceAddress('eth0', '10.0.2.15', -1), /"prefixLength"/);
    expectBadArgument(() => native.setInterfaceAddress('eth0', '10.0.2.15', Number.NaN), /"prefixLength"/);
  });

  it('addEntropy', () => {
    expectBadArgument(() => native.addEntropy(new Uint8Array(0), 0), /"bytes" expected a Uint8Array of 1..4096 bytes, got 0 bytes/);
    expectBadArgument(() => native.addEntropy(new Uint8Array(4097), 0), /got 4097 bytes/);
    expectBadArgument(() => native.addEntropy([1, 2] as never, 8), /"bytes"/);
    expectBadArgument(() => native.addEntropy(new Uint8Array(2), 17), /"bits" expected an integer 0..16, got 17/);
    expectBadArgument(() => native.addEntropy(new Uint8Array(2), 1.5), /"bits"/);
  });

  it('loadKernelModule and reapOrphans', () => {
    expectBadArgument(() => native.loadKernelModule(''), /"path"/);
    expectBadArgument(() => native.loadKernelModule('/nsm.ko', 'a\0'), /"params"/);
    expectBadArgument(() => native.reapOrphans([1, -2]), /"ownPids\[i\]" expected an integer 1..2147483647, got -2/);
    expectBadArgument(() => native.reapOrphans(new Array(1025).fill(1)), /at most 1024 pids/);
  });
});
