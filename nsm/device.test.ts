/**
 * The device transport and its addon, on a machine without /dev/nsm: the addon loads, a missing device is
 * a coded error, arguments are checked at the boundary, and the async ioctl path maps errnos to codes
 * (proved on /dev/null, which answers every ioctl with ENOTTY). The NSM protocol itself (EMSGSIZE, EINVAL
 * on a wrong size, real replies) needs the device and belongs to the QEMU tests.
 * Never opens /dev/vsock or an AF_VSOCK socket.
 */

import { existsSync, readdirSync, readlinkSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import {
  DEFAULT_NSM_DEVICE_PATH,
  loadNativeBinding,
  openDeviceTransport,
  rawDeviceRequest,
} from './device.js';
import { NsmError } from './errors.js';
import type { NsmTransport } from './types.js';
import { rejection } from '../test/rejection.js';

/** An fd number no process can have open: RLIMIT_NOFILE is capped by fs.nr_open (at most 2^30). */
const NEVER_OPEN_FD = 0x7fffffff;
const DESCRIBE_NSM = Uint8Array.from(Buffer.from('6b44657363726962654e534d', 'hex')); // specs/nsm.md §2

type Loose = Record<'open' | 'request' | 'close', (...args: unknown[]) => unknown>;

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

function openDevNullCount(): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === '/dev/null';
    } catch {
      return false; // the directory's own fd, gone by now
    }
  }).length;
}

describe('loadNativeBinding', () => {
  it('loads the addon once, with the ioctl constants of specs/nsm.md §1', () => {
    const native = loadNativeBinding();
    expect(loadNativeBinding()).toBe(native);
    expect(typeof native.open).toBe('function');
    expect(typeof native.request).toBe('function');
    expect(typeof native.close).toBe('function');
    expect(native.NSM_IOCTL_RAW).toBe(0xc0200a00);
    expect(native.NSM_RESPONSE_BYTES).toBe(0x3000);
    expect(native.MAX_REQUEST_COPY_BYTES).toBe(0x10000);
  });
});

describe('openDeviceTransport without a device', () => {
  it.skipIf(existsSync(DEFAULT_NSM_DEVICE_PATH))('throws NSM_DEVICE_UNAVAILABLE for the default /dev/nsm', () => {
    expect(DEFAULT_NSM_DEVICE_PATH).toBe('/dev/nsm');
    const error = thrown(() => openDeviceTransport());
    expect(error).toBeInstanceOf(NsmError);
    expect(error).toMatchObject({ code: 'NSM_DEVICE_UNAVAILABLE', errno: 'ENOENT' });
    expect((error as NsmError).message).toBe('cannot open /dev/nsm: No such file or directory');
  });

  it('throws NSM_DEVICE_UNAVAILABLE with errno ENOENT and the native error as cause', () => {
    const error = thrown(() => openDeviceTransport('/nonexistent/nsm'));
    expect(error).toBeInstanceOf(NsmError);
    expect(error).toMatchObject({ code: 'NSM_DEVICE_UNAVAILABLE', errno: 'ENOENT' });
    expect((error as NsmError).message).toBe('cannot open /nonexistent/nsm: No such file or directory');
    expect((error as NsmError).cause).toMatchObject({ code: 'NSM_DEVICE_UNAVAILABLE', errno: 'ENOENT' });
  });

  it('codes other open failures NSM_E<ERRNO>', () => {
    const error = thrown(() => openDeviceTransport('/'));
    expect(error).toBeInstanceOf(NsmError);
    expect(error).toMatchObject({ code: 'NSM_EISDIR', errno: 'EISDIR' });
  });

  it('rejects a path that is not a string or holds a NUL', () => {
    for (const path of [42, '/dev/nsm\0x']) {
      const error = thrown(() => openDeviceTransport(path as string));
      expect(error).toBeInstanceOf(NsmError);
      expect(error).toMatchObject({ code: 'NSM_BAD_ARGUMENT' });
      expect((error as NsmError).cause).toBeInstanceOf(TypeError);
    }
  });
});

describe('native argument checks', () => {
  const native = loadNativeBinding();
  const loose = native as unknown as Loose;

  function expectBadArgument(fn: () => unknown, message: string, kind: typeof TypeError = TypeError): void {
    const error = thrown(fn);
    expect(error).toBeInstanceOf(kind);
    expect(error).toMatchObject({ code: 'NSM_BAD_ARGUMENT', message });
    expect((error as { errno?: unknown }).errno).toBeUndefined();
  }

  it('"fd" must be a non-negative int32 number', () => {
    const cases: [unknown, string][] = [
      [-1, '-1'],
      [1.5, '1.5'],
      [Number.NaN, 'NaN'],
      [Number.POSITIVE_INFINITY, 'Infinity'],
      [2 ** 31, '2147483648'],
      ['3', 'string'],
      [3n, 'bigint'],
      [undefined, 'undefined'],
      [null, 'null'],
    ];
    for (const [fd, got] of cases) {
      const message = `"fd" expected a non-negative integer, got ${got}`;
      expectBadArgument(() => loose.request(fd, new Uint8Array(1)), message);
      expectBadArgument(() => loose.close(fd), message);
    }
  });

  it('"request" must be a Uint8Array', () => {
    const cases: [unknown, string][] = [
      ['abc', 'string'],
      [[1, 2], 'Array'],
      [new Uint16Array(2), 'Uint16Array'],
      [new Uint8ClampedArray(2), 'Uint8ClampedArray'],
      [new DataView(new ArrayBuffer(2)), 'DataView'],
      [new ArrayBuffer(2), 'ArrayBuffer'],
      [{ length: 2 }, 'object'],
      [undefined, 'undefined'],
    ];
    for (const [request, got] of cases) {
      expectBadArgument(
        () => loose.request(NEVER_OPEN_FD, request),
        `"request" expected a Uint8Array, got ${got}`,
      );
    }
  });

  it('copies at most 64 KiB, leaving the 4 KiB NSM limit to the kernel', async () => {
    expectBadArgument(
      () => native.request(NEVER_OPEN_FD, new Uint8Array(0x10001)),
      '"request" expected at most 65536 bytes, got 65537',
      RangeError,
    );
    // 0x10000 and 0x1001 bytes pass the addon and reach ioctl(), which fails on the fd, not on the size.
    for (const size of [0x10000, 0x1001]) {
      await expect(native.request(NEVER_OPEN_FD, new Uint8Array(size))).rejects.toMatchObject({
        code: 'NSM_EBADF',
        errno: 'EBADF',
      });
    }
  });

  it('"ioctlSize" must be an integer in [0, 16383]', () => {
    for (const [size, got] of [
      [-1, '-1'],
      [0x4000, '16384'],
      [1.5, '1.5'],
      ['32', 'string'],
      [null, 'null'],
    ] as const) {
      expectBadArgument(
        () => loose.request(NEVER_OPEN_FD, new Uint8Array(1), size),
        `"ioctlSize" expected an integer in [0, 16383], got ${got}`,
      );
    }
  });
});

describe('native request on a non-NSM fd', () => {
  const native = loadNativeBinding();

  it('runs the ioctl off-thread and rejects NSM_ENOTTY on /dev/null', async () => {
    const fd = native.open('/dev/null');
    expect(Number.isInteger(fd) && fd >= 0).toBe(true);
    try {
      const pending = native.request(fd, DESCRIBE_NSM);
      expect(pending).toBeInstanceOf(Promise);
      const error = await rejection(pending);
      expect(error).toBeInstanceOf(Error);
      expect(error).toMatchObject({
        code: 'NSM_ENOTTY',
        errno: 'ENOTTY',
        message: 'NSM ioctl failed: Inappropriate ioctl for device',
      });
      // Buffers, offset views, empty requests and the wrong-size hook all reach the same ioctl.
      const offsetView = new Uint8Array(64).subarray(7, 19);
      // All five are in flight at once; settle them together so none rejects unobserved.
      const outcomes = await Promise.allSettled([
        native.request(fd, Buffer.from(DESCRIBE_NSM)),
        native.request(fd, offsetView),
        native.request(fd, new Uint8Array(0)),
        native.request(fd, DESCRIBE_NSM, 0),
        native.request(fd, DESCRIBE_NSM, 0x3fff),
      ]);
      for (const outcome of outcomes) {
        expect(outcome.status).toBe('rejected');
        expect((outcome as PromiseRejectedResult).reason).toMatchObject({ code: 'NSM_ENOTTY', errno: 'ENOTTY' });
      }
    } finally {
      native.close(fd);
    }
  });

  it('rejects NSM_EBADF on a closed fd, and close() throws NSM_EBADF', async () => {
    await expect(native.request(NEVER_OPEN_FD, DESCRIBE_NSM)).rejects.toMatchObject({
      code: 'NSM_EBADF',
      errno: 'EBADF',
      message: 'NSM ioctl failed: Bad file descriptor',
    });
    const error = thrown(() => native.close(NEVER_OPEN_FD));
    expect(error).toMatchObject({ code: 'NSM_EBADF', errno: 'EBADF', message: 'NSM close failed: Bad file descriptor' });
  });
});

describe('device transport over /dev/null', () => {
  it('wraps ioctl failures in NsmError with code, errno and cause', async () => {
    const transport = openDeviceTransport('/dev/null');
    try {
      expect(transport.kind).toBe('device');
      const error = await rejection(transport.request(DESCRIBE_NSM));
      expect(error).toBeInstanceOf(NsmError);
      expect(error).toMatchObject({
        code: 'NSM_ENOTTY',
        errno: 'ENOTTY',
        message: 'NSM ioctl failed: Inappropriate ioctl for device',
      });
      expect((error as NsmError).cause).toMatchObject({ code: 'NSM_ENOTTY', errno: 'ENOTTY' });

      const hooked = await rejection(rawDeviceRequest(transport, DESCRIBE_NSM, 16));
      expect(hooked).toBeInstanceOf(NsmError);
      expect(hooked).toMatchObject({ code: 'NSM_ENOTTY', errno: 'ENOTTY' });

      const bad = await rejection(transport.request('DescribeNSM' as unknown as Uint8Array));
      expect(bad).toBeInstanceOf(NsmError);
      expect(bad).toMatchObject({ code: 'NSM_BAD_ARGUMENT', message: '"request" expected a Uint8Array, got string' });
      expect((bad as NsmError).errno).toBeUndefined();

      const badSize = await rejection(rawDeviceRequest(transport, DESCRIBE_NSM, -1));
      expect(badSize).toMatchObject({ code: 'NSM_BAD_ARGUMENT' });
    } finally {
      await transport.close();
    }
  });

  it('closes the fd once, idempotently, and then rejects NSM_DEVICE_CLOSED', async () => {
    const before = openDevNullCount();
    const transport = openDeviceTransport('/dev/null');
    expect(openDevNullCount()).toBe(before + 1);

    const first = transport.close();
    expect(transport.close()).toBe(first);
    await first;
    await transport.close();
    expect(openDevNullCount()).toBe(before);

    const errors = await Promise.all([rejection(transport.request(DESCRIBE_NSM)), rejection(rawDeviceRequest(transport, DESCRIBE_NSM, 32))]);
    for (const error of errors) {
      expect(error).toBeInstanceOf(NsmError);
      expect(error).toMatchObject({ code: 'NSM_DEVICE_CLOSED' });
      expect((error as NsmError).errno).toBeUndefined();
    }
  });

  it('waits for in-flight ioctls before closing the fd', async () => {
    const transport = openDeviceTransport('/dev/null');
    const events: string[] = [];
    const requests = Array.from({ length: 8 }, (_, i) =>
      transport.request(DESCRIBE_NSM).then(
        () => events.push(`resolved ${i}`),
        (error: unknown) => events.push(`${i} ${(error as NsmError).code}`),
      ),
    );
    const closed = transport.close().then(() => events.push('closed'));
    const late = rejection(transport.request(DESCRIBE_NSM));
    await Promise.all([...requests, closed]);
    // Every ioctl ran on the open fd (ENOTTY, never EBADF), and the fd closed after the last one.
    // The threadpool may finish them in any order.
    expect(events).toHaveLength(9);
    expect(events[8]).toBe('closed');
    expect(events.slice(0, 8).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `${i} NSM_ENOTTY`));
    expect(await late).toMatchObject({ code: 'NSM_DEVICE_CLOSED' });
  });

  it('refuses a transport it did not open', async () => {
    const mock: NsmTransport = {
      kind: 'mock',
      request: () => Promise.resolve(new Uint8Array(0)),
      close: () => Promise.resolve(),
    };
    const error = await rejection(rawDeviceRequest(mock, DESCRIBE_NSM, 32));
    expect(error).toBeInstanceOf(NsmError);
    expect(error).toMatchObject({ code: 'NSM_BAD_ARGUMENT' });
  });
});
