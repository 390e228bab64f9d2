/**
 * joinStreams: relays bytes both ways between two connected Duplex streams (a TCP socket and a vsock
 * socket, or two of either), the core of every bridge. What it guarantees:
 * - backpressure end to end: a direction stops reading as soon as the other side's write() returns false
 *   and resumes on its 'drain', so at most one chunk beyond the writer's high-water mark is ever queued
 *   per direction (the kernel's windows hold the rest);
 * - half-close: the end of one side's readable half becomes end() of the other's writable half while the
 *   opposite direction keeps flowing (both streams must be created with allowHalfOpen: true);
 * - failure: an error or an abrupt close on either side destroys both;
 * - idle timeout: when no byte moved and no write drained either way for `idleTimeoutMs`, both are destroyed.
 * It never reads payload bytes beyond counting them and never logs.
 */

import type { Duplex } from 'node:stream';

import { BridgeError } from './errors.js';

export interface JoinOptions {
  /** Destroys both streams after this long without a byte moving either way; 0 disables it. */
  readonly idleTimeoutMs: number;
}

/**
 * How a join ended: both directions ended cleanly, the idle timeout, an error on a stream, or destroy();
 * 'dial-failed' only from a join that dials its target itself (native-pipe.ts joinNativeDial).
 */
export type JoinEnd = 'ended' | 'idle-timeout' | 'error' | 'destroyed' | 'dial-failed';

export interface JoinResult {
  /** Bytes read from `a` and written to `b`. */
  readonly bytesAToB: number;
  /** Bytes read from `b` and written to `a`. */
  readonly bytesBToA: number;
  readonly end: JoinEnd;
  /** The first error seen (a stream's, BRIDGE_IDLE_TIMEOUT, or the one given to destroy()). */
  readonly error?: Error;
}

export interface Join {
  /** Settles once both streams have closed; never rejects. */
  readonly done: Promise<JoinResult>;
  readonly bytesAToB: number;
  readonly bytesBToA: number;
  /** Destroys both streams now; `done` reports 'destroyed' with the error. */
  destroy(error?: Error): void;
}

interface State {
  aToB: number;
  bToA: number;
  end: JoinEnd | undefined;
  error: Error | undefined;
  lastActivityMs: number;
}

/** A stream that finished both halves (read to its end, every write flushed) closed cleanly. */
function closedCleanly(stream: Duplex): boolean {
  return stream.readableEnded && stream.writableFinished;
}

export function joinStreams(a: Duplex, b: Duplex, options: JoinOptions): Join {
  const { idleTimeoutMs } = options;
  if (!Number.isInteger(idleTimeoutMs) || idleTimeoutMs < 0) {
    throw new BridgeError('BRIDGE_CONFIG_INVALID', `"idleTimeoutMs" expected an integer >= 0, got ${String(idleTimeoutMs)}`);
  }
  const state: State = { aToB: 0, bToA: 0, end: undefined, error: undefined, lastActivityMs: performance.now() };
  let idleTimer: NodeJS.Timeout | undefined;
  let settle!: (result: JoinResult) => void;
  const done = new Promise<JoinResult>((resolve) => (settle = resolve));

  const finishWith = (end: JoinEnd, error: Error | undefined): void => {
    if (state.end === undefined) {
      state.end = end;
      state.error = error;
    }
    a.destroy();
    b.destroy();
  };

  const relay = (from: Duplex, to: Duplex, count: (n: number) => void): void => {
    from.on('data', (chunk: Uint8Array) => {
      state.lastActivityMs = performance.now();
      count(chunk.length);
      if (to.destroyed) return;
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => {
      state.lastActivityMs = performance.now();
      from.resume();
    });
    from.on('end', () => {
      if (!to.destroyed && !to.writableEnded) to.end();
    });
    // A stream paused before the join (pauseOnConnect, a head reader) does not restart on a 'data' listener.
    from.resume();
  };

  let closedCount = 0;
  const onClose = (stream: Duplex, other: Duplex) => (): void => {
    closedCount += 1;
    if (!closedCleanly(stream) && !other.destroyed) {
      finishWith('error', state.error ?? new BridgeError('BRIDGE_PEER_CLOSED', 'a side closed before both directions ended'));
    }
    if (closedCount === 2) {
      clearTimeout(idleTimer);
      const end = state.end ?? (state.error === undefined ? 'ended' : 'error');
      settle({ bytesAToB: state.aToB, bytesBToA: state.bToA, end, ...(state.error !== undefined ? { error: state.error } : {}) });
    }
  };
  const onError = (error: Error): void => {
    state.error ??= error;
    finishWith('error', error);
  };

  a.on('error', onError);
  b.on('error', onError);
  for (const [stream, other] of [
    [a, b],
    [b, a],
  ] as const) {
    // A stream that already closed (its peer vanished while the target was dialled) counts at once.
    if (stream.closed) queueMicrotask(onClose(stream, other));
    else stream.on('close', onClose(stream, other));
  }
  relay(a, b, (n) => (state.aToB += n));
  relay(b, a, (n) => (state.bToA += n));

  if (idleTimeoutMs > 0) {
    // One timer re-armed for the remaining time, rather than one reset per chunk.
    const check = (): void => {
      const idleMs = performance.now() - state.lastActivityMs;
      if (idleMs >= idleTimeoutMs) {
        finishWith('idle-timeout', new BridgeError('BRIDGE_IDLE_TIMEOUT', `no bytes either way for ${idleTimeoutMs} ms`));
      } else {
        idleTimer = setTimeout(check, Math.ceil(idleTimeoutMs - idleMs));
        idleTimer.unref();
      }
    };
    idleTimer = setTimeout(check, idleTimeoutMs);
    idleTimer.unref();
  }
  // Either stream may already be gone (destroyed while a dial was in flight).
  if (a.destroyed || b.destroyed) finishWith('error', new BridgeError('BRIDGE_PEER_CLOSED', 'a side was closed before the join'));

  return {
    done,
    get bytesAToB() {
      return state.aToB;
    },
    get bytesBToA() {
      return state.bToA;
    },
    destroy(error?: Error) {
      finishWith('destroyed', error);
    },
  };
}
