/**
 * VsockError: the one error class of the vsock binding. Callers match on `code`, never on `message`:
 * - `VSOCK_BAD_ARGUMENT`: a cid, port, backlog or option failed validation (checked in TypeScript before
 *   any native call, and again in C at the addon boundary);
 * - `VSOCK_UNAVAILABLE`: the native addon is missing or was built without vsock/native/vsock.c;
 * - `VSOCK_E<ERRNO>` (`VSOCK_ECONNRESET`, `VSOCK_ETIMEDOUT`, ...): the kernel said no; `errno` holds the name.
 * Pure: no `node:` imports, no I/O.
 */

export type VsockErrorCode = 'VSOCK_BAD_ARGUMENT' | 'VSOCK_UNAVAILABLE' | `VSOCK_E${string}`;

export class VsockError extends Error {
  readonly code: VsockErrorCode;
  /** errno name (`ECONNRESET`) when the error came from the kernel. */
  readonly errno?: string;

  constructor(code: VsockErrorCode, message: string, options?: { cause?: unknown; errno?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VsockError';
    this.code = code;
    if (options?.errno !== undefined) this.errno = options.errno;
  }
}

/** A coded error thrown by the addon: `code` always, `errno` (the name) when a syscall failed. */
interface NativeError extends Error {
  code: string;
  errno?: unknown;
}

function isNativeError(value: unknown): value is NativeError {
  return value instanceof Error && typeof (value as { code?: unknown }).code === 'string';
}

/** An addon error as a `VsockError` with the same `code` and `errno` (the original as `cause`); others unchanged. */
export function toVsockError(error: unknown): unknown {
  if (error instanceof VsockError || !isNativeError(error) || !error.code.startsWith('VSOCK_')) return error;
  const options: { cause: unknown; errno?: string } = { cause: error };
  if (typeof error.errno === 'string') options.errno = error.errno;
  return new VsockError(error.code as VsockErrorCode, error.message, options);
}
