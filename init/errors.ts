/**
 * InitError: the one error class of init/ (config, Procfile, boot steps, the native syscalls, supervision).
 * Callers match on `code`, never on `message`:
 * - `INIT_CONFIG_INVALID` (every problem in `problems`), `INIT_PROCFILE_INVALID`: input to fix (exit 2);
 * - `INIT_STEP_FAILED`: a fatal boot step failed (its own error is the `cause`);
 * - `INIT_E<ERRNO>` from a system call (init/native/init.c), with `errno` the errno name;
 * - `INIT_BAD_ARGUMENT` for a bad argument to a native call, `INIT_NATIVE_UNAVAILABLE` without the addon;
 * - `INIT_PCR_MISMATCH` when the configuration PCR is locked with another value;
 * - `INIT_HEARTBEAT_TIMEOUT`, `INIT_HEARTBEAT_BAD_REPLY`, `INIT_HEARTBEAT_FAILED`: Nitro's boot heartbeat to
 *   the parent was not answered in time, was answered with another byte, or could not be sent;
 * - `INIT_CRASH_LOOP` is a log code (a supervised child gave up), never thrown.
 */

export type InitErrorCode =
  | 'INIT_CONFIG_INVALID'
  | 'INIT_PROCFILE_INVALID'
  | 'INIT_STEP_FAILED'
  | 'INIT_BAD_ARGUMENT'
  | 'INIT_NATIVE_UNAVAILABLE'
  | 'INIT_DEVICE_MISSING'
  | 'INIT_PCR_MISMATCH'
  | 'INIT_HEARTBEAT_TIMEOUT'
  | 'INIT_HEARTBEAT_BAD_REPLY'
  | 'INIT_HEARTBEAT_FAILED'
  | 'INIT_CRASH_LOOP'
  | `INIT_E${string}`;

export class InitError extends Error {
  readonly code: InitErrorCode;
  /** Every problem found, for errors that gather several (configuration). */
  readonly problems: readonly string[];
  /** errno name (`EPERM`) when a system call failed. */
  readonly errno?: string;

  constructor(code: InitErrorCode, message: string, options?: { cause?: unknown; problems?: readonly string[]; errno?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'InitError';
    this.code = code;
    this.problems = options?.problems ?? [message];
    if (options?.errno !== undefined) this.errno = options.errno;
  }
}
