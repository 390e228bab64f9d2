/**
 * The real NSM transport: CBOR bytes through NSM_IOCTL_RAW on /dev/nsm (specs/nsm.md §1), by way of the
 * native addon `build/Release/enclave_native.node` (nsm/native/nsm.c), loaded through native/.
 *
 * This file moves bytes and maps kernel failures to `NsmError` codes (`NSM_DEVICE_UNAVAILABLE`,
 * `NSM_E<ERRNO>`); it knows nothing of CBOR. It never falls back to the mock: a missing device or a missing
 * addon is always a coded error, and the caller decides what to do about it.
 */

import { loadNativeAddon } from '../native/index.js';

import { NsmError, type NsmErrorCode } from './errors.js';
import type { NsmTransport } from './types.js';

export const DEFAULT_NSM_DEVICE_PATH = '/dev/nsm';

/** What nsm/native/nsm.c exports. Argument errors are TypeErrors (RangeError for size) coded NSM_BAD_ARGUMENT. */
export interface NativeBinding {
  /** open(path, O_RDWR | O_CLOEXEC); throws NSM_DEVICE_UNAVAILABLE or NSM_E<ERRNO>. */
  open(path: string): number;
  /**
   * One NSM_IOCTL_RAW on the libuv threadpool with a 0x3000-byte response buffer; rejects NSM_E<ERRNO>.
   * `ioctlSize` is a test hook that rewrites the size field of the ioctl number.
   */
  request(fd: number, request: Uint8Array, ioctlSize?: number): Promise<Buffer>;
  close(fd: number): void;
  /** _IOWR(0x0A, 0, struct nsm_raw) = 0xC0200A00 (specs/nsm.md §1). */
  readonly NSM_IOCTL_RAW: number;
  /** The response buffer passed on every call, 0x3000 (specs/nsm.md §1). */
  readonly NSM_RESPONSE_BYTES: number;
  /** Largest request the addon copies (64 KiB); the kernel's own limit, 0x1000, is left to the kernel. */
  readonly MAX_REQUEST_COPY_BYTES: number;
}

/** A coded error thrown by the addon: `code` always, `errno` (the name, `EINVAL`) when the kernel failed. */
interface NativeError extends Error {
  code: string;
  errno?: string;
}

/**
 * The addon (loaded once by native/) typed as its NSM half; throws `NSM_DEVICE_UNAVAILABLE` when it is
 * missing or was built without nsm.c.
 */
export function loadNativeBinding(): NativeBinding {
  let addon: Readonly<Record<string, unknown>>;
  try {
    addon = loadNativeAddon();
  } catch (cause) {
    throw new NsmError('NSM_DEVICE_UNAVAILABLE', (cause as Error).message, { cause });
  }
  if (typeof addon.request !== 'function') {
    throw new NsmError('NSM_DEVICE_UNAVAILABLE', 'the native addon was built without nsm/native/nsm.c: rebuild it (`npm run install`)');
  }
  return addon as unknown as NativeBinding;
}

function isNativeError(value: unknown): value is NativeError {
  return value instanceof Error && typeof (value as { code?: unknown }).code === 'string';
}

/** Re-throws an addon error as an `NsmError` with the same `code` and `errno`; anything else unchanged. */
function toNsmError(error: unknown): unknown {
  if (!isNativeError(error) || !error.code.startsWith('NSM_')) return error;
  const options: { cause: unknown; errno?: string } = { cause: error };
  if (typeof error.errno === 'string') options.errno = error.errno;
  return new NsmError(error.code as NsmErrorCode, error.message, options);
}

type DeviceRequest = (requestBytes: Uint8Array, ioctlSize: number | undefined) => Promise<Uint8Array>;

/** The fd-owning request function behind each transport, for the test hook below. */
const deviceRequests = new WeakMap<NsmTransport, DeviceRequest>();

/**
 * Opens the NSM device and returns its transport. Throws `NSM_DEVICE_UNAVAILABLE` (errno `ENOENT`,
 * `ENODEV`, ...) when there is no device, `NSM_E<ERRNO>` for other open failures.
 */
export function openDeviceTransport(path: string = DEFAULT_NSM_DEVICE_PATH): NsmTransport {
  const native = loadNativeBinding();
  let fd: number;
  try {
    fd = native.open(path);
  } catch (error) {
    throw toNsmError(error);
  }

  let inFlight = 0;
  let onIdle: (() => void) | undefined;
  let closing: Promise<void> | undefined;

  const deviceRequest: DeviceRequest = async (requestBytes, ioctlSize) => {
    if (closing !== undefined) throw new NsmError('NSM_DEVICE_CLOSED', `NSM device ${path} is closed`);
    inFlight += 1;
    try {
      const response = await native.request(fd, requestBytes, ioctlSize);
      return new Uint8Array(response.buffer, response.byteOffset, response.byteLength);
    } catch (error) {
      throw toNsmError(error);
    } finally {
      inFlight -= 1;
      if (inFlight === 0) onIdle?.();
    }
  };

  const transport: NsmTransport = {
    kind: 'device',
    request: (requestBytes) => deviceRequest(requestBytes, undefined),
    close() {
      // Idempotent; never closes the fd under a running ioctl (the number could be reused mid-call).
      closing ??= (async () => {
        if (inFlight > 0) await new Promise<void>((resolve) => (onIdle = resolve));
        try {
          native.close(fd);
        } catch (error) {
          throw toNsmError(error);
        }
      })();
      return closing;
    },
  };
  deviceRequests.set(transport, deviceRequest);
  return transport;
}

/**
 * Test hook, not for production: sends `requestBytes` with the ioctl number's size field set to
 * `ioctlSize` (`_IOC(_IOC_READ | _IOC_WRITE, 0x0A, 0, ioctlSize)`), so a device test can watch the
 * kernel reject a wrong command with `NSM_EINVAL` (specs/nsm.md §1). Only for transports from
 * `openDeviceTransport`; obeys the same close rules as `request`.
 */
export function rawDeviceRequest(
  transport: NsmTransport,
  requestBytes: Uint8Array,
  ioctlSize: number,
): Promise<Uint8Array> {
  const deviceRequest = deviceRequests.get(transport);
  if (deviceRequest === undefined) {
    return Promise.reject(
      new NsmError('NSM_BAD_ARGUMENT', '"transport" expected a transport from openDeviceTransport'),
    );
  }
  return deviceRequest(requestBytes, ioctlSize);
}
