/**
 * A pino logger that keeps every record it writes, parsed, for tests that assert on logs (constant messages,
 * the data beside them, and that no payload leaks). pino writes synchronously to a plain Writable, so a
 * record is in `records` as soon as the logging call returns. init/'s tests have their own
 * (init/test-support.ts), with init's logger options.
 */

import { Writable } from 'node:stream';

import { pino, type Level, type Logger } from 'pino';

export function memoryLogger(level: Level): { logger: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') records.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { logger: pino({ level }, sink), records };
}
