/**
 * Test doubles for init/'s tests (not used by the init itself): a pino logger that keeps parsed records,
 * a manual clock for the supervisor's timers, a fake spawn whose children the test ends by hand, and a
 * fake parent for the boot heartbeat (a stream, no vsock).
 */

import { Duplex, Writable } from 'node:stream';

import { pino } from 'pino';

import { initLoggerOptions, type Logger } from './log.js';
import type { ChildEvents, Clock, SpawnChild, SpawnSpec } from './supervisor.js';

export type LogRecord = Record<string, unknown> & { level: number; msg: string };

/** A pino logger (level trace) writing parsed JSON records to `records`. */
export function memoryLogger(): { logger: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') records.push(JSON.parse(line) as LogRecord);
      callback();
    },
  });
  // pino writes synchronously to a plain Writable, so records are there as soon as the call returns.
  return { logger: pino({ ...initLoggerOptions('trace'), base: null, timestamp: false }, stream), records };
}

/** Records without pino's level/time noise, for exact comparison. */
export function pick(records: readonly LogRecord[], msg: string): Array<Record<string, unknown>> {
  return records.filter((r) => r.msg === msg).map(({ level: _level, time: _time, msg: _msg, ...rest }) => rest);
}

export interface ManualClock extends Clock {
  /** Moves time forward by `ms`, running every timer that falls due, in order. */
  advance(ms: number): void;
  /** Delays of the timers pending now, in due order. */
  pending(): number[];
}

export function manualClock(start = 0): ManualClock {
  let now = start;
  let nextId = 1;
  const timers = new Map<number, { due: number; callback: () => void; delay: number }>();
  const due = () => [...timers.entries()].sort((a, b) => a[1].due - b[1].due || a[0] - b[0]);
  return {
    now: () => now,
    setTimeout(callback, ms) {
      const id = nextId++;
      timers.set(id, { due: now + ms, callback, delay: ms });
      return id;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    advance(ms) {
      const target = now + ms;
      for (;;) {
        const first = due()[0];
        if (first === undefined || first[1].due > target) break;
        timers.delete(first[0]);
        now = first[1].due;
        first[1].callback();
      }
      now = target;
    },
    pending: () => due().map(([, t]) => t.delay),
  };
}

export interface FakeChild {
  spec: SpawnSpec;
  pid: number | undefined;
  signals: string[];
  sent: unknown[];
  exit(code: number | null, signal?: NodeJS.Signals | null): void;
  fail(error: Error): void;
  message(message: unknown): void;
}

/** A spawn function whose children only end when the test says so. `failNext` makes the next spawn fail like ENOENT. */
export function fakeSpawn(): { spawnChild: SpawnChild; children: FakeChild[]; failNext(code: string): void } {
  const children: FakeChild[] = [];
  let nextPid = 1000;
  let failCode: string | null = null;
  const spawnChild: SpawnChild = (spec, events: ChildEvents) => {
    const failing = failCode;
    failCode = null;
    const child: FakeChild = {
      spec,
      pid: failing === null ? nextPid++ : undefined,
      signals: [],
      sent: [],
      exit: (code, signal = null) => events.onExit(code, signal),
      fail: (error) => events.onError(error),
      message: (message) => events.onMessage(message),
    };
    children.push(child);
    if (failing !== null) queueMicrotask(() => events.onError(Object.assign(new Error(`spawn ${spec.command[0]} ${failing}`), { code: failing })));
    return {
      pid: child.pid,
      signal: (signal) => void child.signals.push(signal),
      send: (message) => void child.sent.push(message),
    };
  };
  return { spawnChild, children, failNext: (code) => (failCode = code) };
}

/** How a fake parent answers the heartbeat: with these bytes, by closing, or not at all. */
export type FakeParentAnswer = { bytes: number[] } | 'close' | 'silent';

export interface FakeParent {
  /** The enclave's end of the connection, as `connectVsock` would resolve it. */
  readonly stream: Duplex;
  /** Every byte the enclave wrote, in order. */
  readonly written: number[];
}

/** A stream standing in for the parent's end of a vsock connection; it answers after the first write. */
export function fakeParent(answer: FakeParentAnswer): FakeParent {
  const written: number[] = [];
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      const first = written.length === 0;
      written.push(...chunk);
      if (first) {
        if (answer === 'close') stream.push(null);
        else if (answer !== 'silent') stream.push(Buffer.from(answer.bytes));
      }
      callback();
    },
  });
  return { stream, written };
}
