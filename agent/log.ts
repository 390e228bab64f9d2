/**
 * The process logger: pino, JSON lines, written synchronously to stdout (inside an enclave the console
 * is the only log sink and a crash must not lose the last lines). Messages are constant strings with
 * data in the object; keys, plaintext bodies and secrets are never logged.
 */

import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(options: { level?: string } = {}): Logger {
  return pino({ level: options.level ?? 'info', base: { service: 'enclave-agent' } }, pino.destination({ fd: 1, sync: true }));
}
