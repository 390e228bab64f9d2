/**
 * The vsock binding on the host: argument validation only. Every bad cid, port, backlog or option is
 * rejected with VSOCK_BAD_ARGUMENT before any native code runs (the loader below is a spy that must stay
 * uncalled), and the C boundary rejects bad arguments before its syscall.
 *
 * This file must never create an AF_VSOCK socket: this machine's /dev/vsock leads out of the machine
 * (specs/qemu-rig.md). Sockets, data and errnos are tested inside QEMU (test/qemu/vsock.guest.test.ts).
 */

import { beforeEach, describe, expect, it, vi } from 'vitest';

import { loadNativeAddon } from '../native/index.js';

import {
  VMADDR_CID_ANY,
  VMADDR_CID_HOST,
  VMADDR_CID_LOCAL,
  VMADDR_PORT_ANY,
  VsockError,
  connectVsock,
  listenVsock,
} from './index.js';
import type { VsockNative } from './native.js';
import { rejection } from '../test/rejection.js';

/** The sentinel the mocked loader throws: seeing it means validation let the call through. */
const REACHED_NATIVE = 'the native loader was reached';

vi.mock('./native.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('./native.js')>();
  const reached = (): never => {
    throw new Error(REACHED_NATIVE);
  };
  return { ...original, loadVsockNative: vi.fn(reached), openPolledSocket: vi.fn(reached) };
});

const native = await import('./native.js');

/** An fd number no process can have open, so even a validation slip could only ever get EBADF. */
const NEVER_OPEN_FD = 0x7fffffff;

const BAD_UINT32: ReadonlyArray<[unknown, string]> = [
  [-1, '-1'],
  [1.5, '1.5'],
  [0x1_0000_0000, '4294967296'],
  [Number.NaN, 'NaN'],
  [Number.POSITIVE_INFINITY, 'Infinity'],
  ['1', 'string'],
  [1n, 'bigint'],
  [null, 'null'],
  [undefined, 'undefined'],
  [[1], 'Array'],
];

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

beforeEach(() => {
  vi.mocked(native.loadVsockNative).mockClear();
  vi.mocked(native.openPolledSocket).mockClear();
});

function expectNativeUntouched(): void {
  expect(native.loadVsockNative).not.toHaveBeenCalled();
  expect(native.openPolledSocket).not.toHaveBeenCalled();
}

describe('constants', () => {
  it('match include/uapi/linux/vm_sockets.h', () => {
    expect(VMADDR_CID_ANY).toBe(0xffffffff);
    expect(VMADDR_CID_LOCAL).toBe(1);
    expect(VMADDR_CID_HOST).toBe(2);
    expect(VMADDR_PORT_ANY).toBe(0xffffffff);
  });
});

describe('connectVsock validation', () => {
  it.each(BAD_UINT32)('rejects cid %s before native code', async (cid, got) => {
    const error = await rejection(connectVsock({ cid, port: 1234 } as never));
    expect(error).toBeInstanceOf(VsockError);
    expect(error).toMatchObject({
      code: 'VSOCK_BAD_ARGUMENT',
      message: `"cid" expected an integer 0..4294967295, got ${got}`,
    });
    expectNativeUntouched();
  });

  it.each(BAD_UINT32)('rejects port %s before native code', async (port, got) => {
    const error = await rejection(connectVsock({ cid: VMADDR_CID_LOCAL, port } as never));
    expect(error).toBeInstanceOf(VsockError);
    expect(error).toMatchObject({
      code: 'VSOCK_BAD_ARGUMENT',
      message: `"port" expected an integer 0..4294967295, got ${got}`,
    });
    expectNativeUntouched();
  });

  it.each([undefined, null, 7, 'vsock://1:1234', [1, 1234]])('rejects options %s', async (options) => {
    const error = await rejection(connectVsock(options as never));
    expect(error).toBeInstanceOf(VsockError);
    expect(error).toMatchObject({ code: 'VSOCK_BAD_ARGUMENT' });
    expect((error as Error).message).toMatch(/^"options" expected an object, got /);
    expectNativeUntouched();
  });

  it('rejects a non-boolean allowHalfOpen', async () => {
    const error = await rejection(connectVsock({ cid: 1, port: 1234, allowHalfOpen: 'yes' } as never));
    expect(error).toMatchObject({ code: 'VSOCK_BAD_ARGUMENT', message: '"allowHalfOpen" expected a boolean, got string' });
    expectNativeUntouched();
  });

  it('lets valid arguments through to the (mocked) native loader', async () => {
    const error = await rejection(connectVsock({ cid: VMADDR_CID_LOCAL, port: 0xffffffff }));
    expect((error as Error).message).toBe(REACHED_NATIVE);
    expect(native.loadVsockNative).toHaveBeenCalledTimes(1);
  });
});

describe('listenVsock validation', () => {
  it.each(BAD_UINT32.filter(([value]) => value !== undefined))('rejects cid %s', async (cid, got) => {
    const error = await rejection(listenVsock({ cid, port: 1234 } as never));
    expect(error).toMatchObject({ code: 'VSOCK_BAD_ARGUMENT', message: `"cid" expected an integer 0..4294967295, got ${got}` });
    expectNativeUntouched();
  });

  it.each(BAD_UINT32)('rejects port %s', async (port, got) => {
    const error = await rejection(listenVsock({ port } as never));
    expect(error).toBeInstanceOf(VsockError);
    expect(error).toMatchObject({ code: 'VSOCK_BAD_ARGUMENT', message: `"port" expected an integer 0..4294967295, got ${got}` });
    expectNativeUntouched();
  });

  it.each([
    [-1, '-1'],
    [0.5, '0.5'],
    [0x8000_0000, '2147483648'],
    ['128', 'string'],
    [null, 'null'],
  ])('rejects backlog %s', async (backlog, got) => {
    const error = await rejection(listenVsock({ port: 1234, backlog } as never));
    expect(error).toBeInstanceOf(VsockError);
    expect(error).toMatchObject({ code: 'VSOCK_BAD_ARGUMENT', message: `"backlog" expected an integer 0..2147483647, got ${got}` });
    expectNativeUntouched();
  });

  it('rejects missing options', async () => {
    const error = await rejection(listenVsock(undefined as never));
    expect(error).toMatchObject({ code: 'VSOCK_BAD_ARGUMENT', message: '"options" expected an object, got undefined' });
    expectNativeUntouched();
  });

  it('defaults cid and backlog, then reaches the (mocked) native loader', async () => {
    const error = await rejection(listenVsock({ port: VMADDR_PORT_ANY }));
    expect((error as Error).message).toBe(REACHED_NATIVE);
  });
});

/*
 * The C boundary, through the real addon. Each call has a bad argument, so it throws before its syscall;
 * socket() is never called. The fd, when valid, is one no process has open.
 */
describe('native argument checks (vsock/native/vsock.c)', () => {
  const vsock = (loadNativeAddon() as unknown as { vsock: VsockNative }).vsock;
  const loose = vsock as unknown as Record<string, (...args: unknown[]) => unknown>;

  it('exports the poll event bits and the would-block marker', () => {
    expect(vsock.READABLE).toBe(1);
    expect(vsock.WRITABLE).toBe(2);
    expect(vsock.WOULD_BLOCK).toBe(-1);
    expect(Object.isFrozen(vsock)).toBe(true);
  });

  it.each<[string, unknown[], string, string]>([
    ['bind', [-1, 1, 1], 'RangeError', '"fd" expected an integer 0..2147483647, got -1'],
    ['bind', [NEVER_OPEN_FD, 1, -1], 'RangeError', '"port" expected an integer 0..4294967295, got -1'],
    ['bind', [NEVER_OPEN_FD, 'x', 1], 'TypeError', '"cid" expected an integer 0..4294967295, got string'],
    ['connect', [NEVER_OPEN_FD, 1, 2 ** 32], 'RangeError', '"port" expected an integer 0..4294967295, got 4294967296'],
    ['connect', [NEVER_OPEN_FD, 1.5, 1], 'RangeError', '"cid" expected an integer 0..4294967295, got 1.5'],
    ['listen', [NEVER_OPEN_FD, -1], 'RangeError', '"backlog" expected an integer 0..2147483647, got -1'],
    ['accept', ['3'], 'TypeError', '"fd" expected an integer 0..2147483647, got string'],
    ['read', [NEVER_OPEN_FD, new Uint16Array(4)], 'TypeError', '"buffer" expected a Uint8Array, got object'],
    ['write', [NEVER_OPEN_FD, 'bytes'], 'TypeError', '"buffer" expected a Uint8Array, got string'],
    ['writev', [NEVER_OPEN_FD, new Uint8Array(1)], 'TypeError', '"buffers" expected an Array of Uint8Array, got object'],
    ['writev', [NEVER_OPEN_FD, [new Uint8Array(1), 7]], 'TypeError', '"buffers[i]" expected a Uint8Array, got 7'],
    ['shutdown', [NaN], 'RangeError', '"fd" expected an integer 0..2147483647, got NaN'],
    ['pollOpen', [NEVER_OPEN_FD, 'callback'], 'TypeError', '"callback" expected a function, got string'],
    ['pollSet', [{}, 1], 'TypeError', '"handle" expected a handle from pollOpen, got object'],
    ['pollClose', [null], 'TypeError', '"handle" expected a handle from pollOpen, got null'],
  ])('%s(%o) throws a %s before its syscall', (name, args, errorName, message) => {
    const error = thrown(() => loose[name]!(...args));
    expect((error as Error).name).toBe(errorName);
    expect(error).toMatchObject({ code: 'VSOCK_BAD_ARGUMENT', message });
  });
});
