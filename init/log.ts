/**
 * The init process's logger: pino, JSON lines written synchronously to stdout (the enclave's console is
 * the only sink, and a crash or a kernel panic after PID 1 exits must not lose the last lines), with
 * `service: "enclave-init"` so its records stand apart from the agent's and the app's on the same console.
 * Messages are constant strings; data goes in the object; errors under `err` as `{ code, message }`.
 */

import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** An error as log data: its code and message, never a stack or a lower layer's object. */
export function errorData(err: unknown): { code: string; message: string } {
  const code = (err as { code?: unknown } | null)?.code;
  const message = (err as { message?: unknown } | null)?.message;
  return { code: typeof code === 'string' ? code : 'error', message: typeof message === 'string' ? message : String(err) };
}

/** The options of every init logger; `err` always goes through `errorData` (pino's default adds stacks). */
export function initLoggerOptions(level: string): LoggerOptions {
  return { level, base: { service: 'enclave-init' }, serializers: { err: errorData } };
}

export function createInitLogger(options: { level?: string } = {}): Logger {
  return pino(initLoggerOptions(options.level ?? 'info'), pino.destination({ fd: 1, sync: true }));
}
