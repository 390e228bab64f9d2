/**
 * joinStreamsNative: the same join as pipe.ts's joinStreams (same Join, same JoinResult), with the bytes
 * moved by the native relay (vsock/relay.ts, vsock/native/relay.c) instead of stream events: after setup
 * no JavaScript runs per chunk, which is what kept the JS relay at 0.3-0.6x socat's throughput in the QEMU
 * guest. Guarantees as joinStreams': backpressure (at most `bufferBytes` in flight per direction; the
 * kernel windows hold the rest), half-close (end of stream on one side becomes shutdown(SHUT_WR) on the
 * other, the opposite direction keeps flowing), an error or reset on either side ends both, the idle
 * timeout (no byte moved either way), and destroy().
 *
 * How the fds change hands (the choice, and why): the relay never shares an fd with Node. At the join it
 * (1) waits until every write queued on either stream reached the kernel (a CONNECT answer, say), (2)
 * takes the bytes the streams had already read (a head reader's rest) to send first, (3) has the relay
 * duplicate both fds (F_DUPFD_CLOEXEC), and (4) destroys both streams, all in one synchronous step so no
 * loop turn can let Node read in between. Destroying closes Node's handle, which takes its fd out of epoll
 * and closes it; the socket lives on through the relay's duplicate, which the relay closes when it ends.
 * So each fd has one owner and is closed once, and Node cannot read or write the socket after the join.
 * Taking the fd over in place (readStop and keep Node's handle) would leave two owners of one fd and
 * libuv's epoll entry on it. The two ingress bridges skip the client stream altogether: their listeners
 * accept in C and hand over raw fds (vsock/fd-listener.ts), while the cap, the counters and the error
 * handling stay in the forwarder (joinNativeDialFd). The fd of a net.Socket is its libuv handle's (`_handle.fd`, Unix only), of a
 * VsockSocket its `fd`; a stream with neither is BRIDGE_RELAY_UNAVAILABLE (no silent fallback to the JS
 * relay: the caller chose native).
 * It never reads payload bytes beyond counting them and never logs.
 */

import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

import { VsockSocket, closeFd, fdRelayAvailable, openDialRelay, openFdRelay, type DialTarget, type FdRelay, type FdRelayEnd } from '../vsock/index.js';
import { BridgeError } from './errors.js';
import type { Join, JoinEnd, JoinOptions, JoinResult } from './pipe.js';
import { dialFailedError } from './transports.js';

/**
 * Bytes in flight per direction: 256 KiB, four of virtio-vsock's 64 KiB packets (and socat's `-b 65536`
 * four times over) so that one side's wakeup finds a full batch to write; at the default 1024 connections
 * that bounds the relay's memory at 512 MiB only if every connection is backed up both ways at once.
 */
export const RELAY_BUFFER_BYTES = 256 * 1024;

/** Which relay joins a bridge's two streams: the native one (the default where the addon loads) or pipe.ts's. */
export type RelayKind = 'native' | 'js';

/**
 * The relay to use: `native` only if the addon has it (else BRIDGE_RELAY_UNAVAILABLE, never a quiet
 * switch to the JS relay), `js` always, and no choice means native where the addon loads, else js.
 */
export function resolveRelay(choice: RelayKind | undefined): RelayKind {
  if (choice === 'js') return 'js';
  const available = fdRelayAvailable();
  if (choice === 'native' && !available) {
    throw new BridgeError('BRIDGE_RELAY_UNAVAILABLE', 'the native relay was asked for but the addon cannot be loaded (run `npm ci`), or choose --relay js');
  }
  return available ? 'native' : 'js';
}

/**
 * The native relay's default mode: splice(2) through a pipe (true) or read/write through a ring (false).
 * Measured in the QEMU guest (test/qemu/bridge.guest.test.ts, 64 MiB, three runs): splice 1.27-3.85x
 * socat's ingress throughput and 1.29-3.43x its egress; read/write 1.03-2.10x and 0.95-1.61x.
 */
export const RELAY_SPLICE = true;

export interface NativeJoinOptions extends JoinOptions {
  /** Per-direction bound (RELAY_BUFFER_BYTES by default). */
  readonly bufferBytes?: number;
  /** splice(2) through a pipe instead of read/write through a ring (vsock/native/relay.c). */
  readonly splice?: boolean;
}

/** The fd the relay can duplicate, or -1: a VsockSocket's, or a connected net.Socket's libuv handle's. */
export function streamFd(stream: Duplex): number {
  if (stream instanceof VsockSocket) return stream.fd;
  if (stream instanceof Socket) {
    const fd = (stream as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
    return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : -1;
  }
  return -1;
}

const NOTHING_BUFFERED = new Uint8Array(0);

/**
 * Takes what a paused stream had already read, as one block (empty when nothing). With nothing buffered it
 * does not call read(): on a stream that never read (an accepted socket, a fresh dial) read() would start
 * reading (libuv's readStart, or the vsock socket's poll), an epoll registration undone at once by the
 * destroy that follows, on every connection.
 */
function takeBuffered(stream: Duplex): Uint8Array {
  stream.pause();
  if (stream.readableLength === 0) return NOTHING_BUFFERED;
  const chunks: Buffer[] = [];
  for (let chunk: unknown = stream.read(); chunk !== null; chunk = stream.read()) chunks.push(Buffer.from(chunk as Uint8Array));
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/** A join's idle deadline in IdleWatch: `due` runs once `atMs` passed and returns its next time, or undefined when done. */
interface IdleEntry {
  atMs: number;
  due(nowMs: number): number | undefined;
}

/**
 * One unref'd timer for the idle timeouts of every native join in the process, instead of a setTimeout
 * and clearTimeout per connection (with a timer list made and dropped each time when connections come one
 * after another): the relay keeps the time of its last byte, so a join only needs looking at when its
 * deadline may have passed. The timer is armed for the earliest deadline it knows; a join that ends just
 * leaves the set, and a timer that fires with nothing due re-arms for the earliest remaining one, or
 * stops when the set is empty (at most one firing per idle period after the last join: no busy loop).
 */
class IdleWatch {
  readonly #entries = new Set<IdleEntry>();
  #timer: NodeJS.Timeout | undefined;
  #timerAtMs = Number.POSITIVE_INFINITY;

  add(entry: IdleEntry): void {
    this.#entries.add(entry);
    if (entry.atMs < this.#timerAtMs) this.#arm(entry.atMs);
  }

  delete(entry: IdleEntry): void {
    this.#entries.delete(entry);
  }

  #arm(atMs: number): void {
    clearTimeout(this.#timer);
    this.#timerAtMs = atMs;
    this.#timer = setTimeout(() => this.#fire(), Math.max(1, Math.ceil(atMs - performance.now())));
    this.#timer.unref();
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAtMs = Number.POSITIVE_INFINITY;
    const nowMs = performance.now();
    let next = Number.POSITIVE_INFINITY;
    for (const entry of [...this.#entries]) {
      if (!this.#entries.has(entry)) continue; // ended by an earlier entry's expiry
      if (entry.atMs <= nowMs) {
        const later = entry.due(nowMs);
        if (later === undefined) {
          this.#entries.delete(entry);
          continue;
        }
        entry.atMs = Math.max(later, nowMs + 1); // strictly later: never a loop of zero-delay timers
      }
      if (entry.atMs < next) next = entry.atMs;
    }
    if (next < this.#timerAtMs) this.#arm(next);
  }
}

const idleWatch = new IdleWatch();

/**
 * What both native joins share: the relay (once started), the streams it took over, the idle deadline, and
 * one settlement once the relay has ended and every stream has closed. `idleBeforeRelay` is the idle time
 * counted before the relay runs (joinStreamsNative: since the join began; a dial: none, its connect has a
 * deadline of its own).
 */
class NativeJoinCore {
  relay: FdRelay | undefined;
  relayDone = false;
  end: JoinEnd | undefined;
  firstError: Error | undefined;
  readonly done: Promise<JoinResult>;
  #bytesAToB = 0;
  #bytesBToA = 0;
  #closed = 0;
  #settled = false;
  #idleEntry: IdleEntry | undefined;
  #settle!: (result: JoinResult) => void;
  readonly streams: readonly Duplex[];
  /** Told the result synchronously as the join settles, before `done` resolves (joinNativeDialFd). */
  onSettle: ((result: JoinResult) => void) | undefined;

  /** `closedMessage`: BRIDGE_PEER_CLOSED's message for a stream that closes before the relay runs. */
  constructor(streams: readonly Duplex[], idleTimeoutMs: number, idleBeforeRelay: (nowMs: number) => number, closedMessage: string) {
    this.streams = streams;
    if (!Number.isInteger(idleTimeoutMs) || idleTimeoutMs < 0) {
      throw new BridgeError('BRIDGE_CONFIG_INVALID', `"idleTimeoutMs" expected an integer >= 0, got ${String(idleTimeoutMs)}`);
    }
    this.done = new Promise<JoinResult>((resolve) => (this.#settle = resolve));
    if (idleTimeoutMs > 0) {
      // The relay keeps the time of its last byte (and reports none while a dial connects).
      this.#idleEntry = {
        atMs: performance.now() + idleTimeoutMs,
        due: (nowMs) => {
          if (this.#settled || this.end !== undefined) return undefined;
          const idleMs = this.relay !== undefined ? (this.relayDone ? 0 : this.relay.stats().idleMs) : idleBeforeRelay(nowMs);
          if (idleMs < idleTimeoutMs) return nowMs + (idleTimeoutMs - idleMs);
          this.finishWith('idle-timeout', new BridgeError('BRIDGE_IDLE_TIMEOUT', `no bytes either way for ${idleTimeoutMs} ms`));
          return undefined;
        },
      };
      idleWatch.add(this.#idleEntry);
    }
    this.#watch(closedMessage);
  }

  /** Ends the join: records the first end and error, stops the relay (or the handover) and the streams. */
  finishWith(how: JoinEnd, error: Error | undefined): void {
    if (this.end === undefined) {
      this.end = how;
      this.firstError = error;
    }
    if (this.relay !== undefined && !this.relayDone) {
      const stats = this.relay.stats();
      this.#bytesAToB = stats.bytesAToB;
      this.#bytesBToA = stats.bytesBToA;
      this.relay.close();
      this.relayDone = true;
    }
    for (const stream of this.streams) stream.destroy();
    this.maybeSettle();
  }

  /** The relay ended by itself: its counts, and (if it failed) how and with what error. */
  relayEnded(bytesAToB: number, bytesBToA: number, how?: JoinEnd, error?: Error): void {
    this.#bytesAToB = bytesAToB;
    this.#bytesBToA = bytesBToA;
    this.relayDone = true;
    if (how !== undefined) {
      this.end ??= how;
      this.firstError ??= error;
    }
    this.maybeSettle();
  }

  /**
   * Watches the streams: before the relay runs, an error or close ends the join (a close with
   * BRIDGE_PEER_CLOSED and `message`); after, they were destroyed on purpose and only their close counts.
   */
  #watch(message: string): void {
    const onError = (error: Error): void => {
      if (this.relay !== undefined) return;
      this.firstError ??= error;
      this.finishWith('error', error);
    };
    const onClose = (): void => {
      this.#closed += 1;
      if (this.relay === undefined && this.end === undefined) this.finishWith('error', this.firstError ?? new BridgeError('BRIDGE_PEER_CLOSED', message));
      this.maybeSettle();
    };
    for (const stream of this.streams) {
      stream.on('error', onError);
      if (stream.closed) queueMicrotask(onClose);
      else stream.once('close', onClose);
    }
  }

  maybeSettle(): void {
    if (this.#settled || this.#closed < this.streams.length || (this.relay !== undefined && !this.relayDone)) return;
    this.#settled = true;
    if (this.#idleEntry !== undefined) idleWatch.delete(this.#idleEntry);
    const how = this.end ?? (this.firstError === undefined ? 'ended' : 'error');
    const result: JoinResult = { bytesAToB: this.#bytesAToB, bytesBToA: this.#bytesBToA, end: how, ...(this.firstError !== undefined ? { error: this.firstError } : {}) };
    this.onSettle?.(result);
    this.#settle(result);
  }

  /** The Join the caller hands out. */
  join(): Join {
    const live = (): FdRelay | undefined => (this.relay !== undefined && !this.relayDone ? this.relay : undefined);
    const bytes = (): readonly [number, number] => [this.#bytesAToB, this.#bytesBToA];
    return {
      done: this.done,
      get bytesAToB() {
        return live()?.stats().bytesAToB ?? bytes()[0];
      },
      get bytesBToA() {
        return live()?.stats().bytesBToA ?? bytes()[1];
      },
      destroy: (error?: Error) => {
        if (this.#settled) return;
        if (this.relayDone && this.relay !== undefined) return; // already ended; `done` is about to settle
        this.finishWith('destroyed', error);
      },
    };
  }
}

export function joinStreamsNative(a: Duplex, b: Duplex, options: NativeJoinOptions): Join {
  const { idleTimeoutMs, bufferBytes = RELAY_BUFFER_BYTES, splice = false } = options;
  const startedMs = performance.now();
  // Before the relay runs, the join's start counts as the last byte.
  const core = new NativeJoinCore([a, b], idleTimeoutMs, (nowMs) => nowMs - startedMs, 'a side closed before the relay started');

  /** Starts the relay once both streams have flushed their writes; see the file's comment for the order. */
  const handover = (): void => {
    if (core.end !== undefined || core.relay !== undefined) return;
    if (a.destroyed || b.destroyed) {
      core.finishWith('error', new BridgeError('BRIDGE_PEER_CLOSED', 'a side was closed before the join'));
      return;
    }
    for (const stream of [a, b]) {
      if (stream.writableLength > 0 || (stream.writableEnded && !stream.writableFinished)) {
        // Runs after every earlier write completed (writes complete in order), then tries again.
        if (stream.writableEnded) stream.once('finish', handover);
        else stream.write(Buffer.alloc(0), () => handover());
        return;
      }
    }
    const fdA = streamFd(a);
    const fdB = streamFd(b);
    if (fdA < 0 || fdB < 0) {
      core.finishWith('error', new BridgeError('BRIDGE_RELAY_UNAVAILABLE', 'a stream has no socket fd for the native relay'));
      return;
    }
    const prefixAToB = takeBuffered(a);
    const prefixBToA = takeBuffered(b);
    try {
      core.relay = openFdRelay(fdA, fdB, { bufferBytes, splice, prefixAToB, prefixBToA }, (error, aToB, bToA) =>
        core.relayEnded(aToB, bToA, error === null ? undefined : 'error', error ?? undefined),
      );
    } catch (cause) {
      core.finishWith('error', new BridgeError('BRIDGE_RELAY_FAILED', 'the native relay did not start', { cause }));
      return;
    }
    a.destroy();
    b.destroy();
  };
  handover();
  return core.join();
}

export interface NativeDialOptions extends NativeJoinOptions {
  /** The connect's deadline; past it the join ends 'dial-failed' with `timeoutError()`. */
  readonly connectTimeoutMs: number;
  readonly timeoutError: () => Error;
}

/**
 * A bridge's plain dial and its join in one step, both in C (vsock/relay.ts openDialRelay): the relay
 * connects `target` itself and relays between it and `client` once connected, so a connection costs no
 * JavaScript stream for its target, no dial promise or timer, and no handover. In the QEMU guest that
 * per-connection JavaScript was what kept the bridges' connections/s below socat's (bridge/README.md).
 * Same guarantees as joinStreamsNative once connected. Before that, nothing is read from `client` (its
 * bytes wait in the kernel, as in its paused stream) and the join ends 'dial-failed' with
 * BRIDGE_DIAL_FAILED (the relay's VSOCK_E<ERRNO> as its cause) or `timeoutError()`; the idle timeout
 * counts only from the connect.
 */
export function joinNativeDial(client: Duplex, target: DialTarget, options: NativeDialOptions): Join {
  const { idleTimeoutMs, bufferBytes = RELAY_BUFFER_BYTES, splice = false, connectTimeoutMs, timeoutError } = options;
  const core = new NativeJoinCore([client], idleTimeoutMs, () => 0, 'the client closed before the relay started');
  const start = (): void => {
    if (client.destroyed) {
      core.finishWith('error', new BridgeError('BRIDGE_PEER_CLOSED', 'the client closed before the relay started'));
      return;
    }
    const fd = streamFd(client);
    if (fd < 0) {
      core.finishWith('error', new BridgeError('BRIDGE_RELAY_UNAVAILABLE', 'the client has no socket fd for the native relay'));
      return;
    }
    const prefixAToB = takeBuffered(client);
    try {
      core.relay = openDialRelay(fd, target, { bufferBytes, splice, prefixAToB, connectTimeoutMs }, dialEnded(core, timeoutError));
    } catch (cause) {
      dialNotStarted(core, cause);
      return;
    }
    client.destroy();
  };
  start();
  return core.join();
}

/** The relay's end of a dial: not connected is `dial-failed` (BRIDGE_DIAL_TIMEOUT or BRIDGE_DIAL_FAILED). */
function dialEnded(core: NativeJoinCore, timeoutError: () => Error): FdRelayEnd {
  return (error, aToB, bToA, connected) => {
    if (!connected) core.relayEnded(aToB, bToA, 'dial-failed', (error as { code?: string } | null)?.code === 'VSOCK_ETIMEDOUT' ? timeoutError() : dialFailedError(error));
    else core.relayEnded(aToB, bToA, error === null ? undefined : 'error', error ?? undefined);
  };
}

/** A dial refused before the relay ran: `dial-failed` for the kernel's errno, BRIDGE_RELAY_FAILED otherwise. */
function dialNotStarted(core: NativeJoinCore, cause: unknown): void {
  const code = (cause as { code?: string }).code;
  if (code !== undefined && code.startsWith('VSOCK_E')) core.finishWith('dial-failed', dialFailedError(cause));
  else core.finishWith('error', new BridgeError('BRIDGE_RELAY_FAILED', 'the native relay did not start', { cause }));
}

/**
 * joinNativeDial for a connection accepted as a raw fd (vsock/fd-listener.ts, a StreamListener with
 * `handsOverFds`): no stream was ever made for it, so none is waited for or destroyed. The join owns `fd`
 * from the call on: the relay takes a duplicate and `fd` itself is closed here, whatever happens.
 * `onSettle` is told the result synchronously when the join ends, which may be before this returns (a
 * dial refused at once): a listener hands over a burst of fds in one turn, and a caller counting open
 * connections must see that one end before the next fd, as it would between two streams' events.
 */
export function joinNativeDialFd(fd: number, target: DialTarget, options: NativeDialOptions, onSettle: (result: JoinResult) => void): Join {
  const { idleTimeoutMs, bufferBytes = RELAY_BUFFER_BYTES, splice = false, connectTimeoutMs, timeoutError } = options;
  const core = new NativeJoinCore([], idleTimeoutMs, () => 0, 'the client closed before the relay started');
  core.onSettle = onSettle;
  try {
    core.relay = openDialRelay(fd, target, { bufferBytes, splice, connectTimeoutMs }, dialEnded(core, timeoutError));
  } catch (cause) {
    dialNotStarted(core, cause);
  } finally {
    closeFd(fd);
  }
  return core.join();
}

