/**
 * The typed boundary to the C half of the binding (vsock/native/vsock.c, exported as `vsock` on the one
 * addon that native/ loads), and `PolledFd`, the owner of one socket fd and its libuv poll handle.
 *
 * It must not hold stream logic (that is socket.ts and server.ts) and must not be reached before the
 * caller's arguments are validated: loading the addon is the first native step, and nothing here runs at
 * import time.
 */

import { loadNativeAddon } from '../native/index.js';

import { VsockError, toVsockError } from './errors.js';
import type { VsockAddress } from './address.js';

/** An opaque uv_poll_t wrapper made by `pollOpen`. */
export interface PollHandle {
  readonly __pollHandle: unique symbol;
}

/**
 * What vsock.c exports. Every call is one non-blocking syscall. read/write/writev/accept return
 * `WOULD_BLOCK` (-1) for EAGAIN; failures throw `VSOCK_E<ERRNO>`, bad arguments TypeError/RangeError coded
 * `VSOCK_BAD_ARGUMENT`.
 */
export interface VsockNative {
  /** socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) */
  socket(): number;
  bind(fd: number, cid: number, port: number): void;
  listen(fd: number, backlog: number): void;
  /** accept4(SOCK_NONBLOCK | SOCK_CLOEXEC): [fd, peer cid, peer port] */
  accept(fd: number): readonly [number, number, number] | -1;
  /** true: connected; false: in progress, wait for WRITABLE and call connectResult. */
  connect(fd: number, cid: number, port: number): boolean;
  /** Throws the error (SO_ERROR) a non-blocking connect ended with. */
  connectResult(fd: number): void;
  /** Bytes read, 0 at end of stream, -1 would block. */
  read(fd: number, buffer: Uint8Array): number;
  /** Bytes written (maybe fewer), -1 would block. MSG_NOSIGNAL: EPIPE, never SIGPIPE. */
  write(fd: number, buffer: Uint8Array): number;
  /** Like write, over the first MAX_WRITEV_BUFFERS buffers. */
  writev(fd: number, buffers: readonly Uint8Array[]): number;
  /** shutdown(SHUT_WR): the peer sees end of stream after our queued bytes. */
  shutdown(fd: number): void;
  /** For fds that never got a poll handle. */
  close(fd: number): void;
  localAddress(fd: number): VsockAddress;
  remoteAddress(fd: number): VsockAddress;
  /** Takes ownership of `fd` on success; callback(error, events) runs when the fd is ready. */
  pollOpen(fd: number, callback: (error: Error | null, events: number) => void): PollHandle;
  /** READABLE | WRITABLE, 0 to stop. Level-triggered. */
  pollSet(handle: PollHandle, events: number): void;
  /** Stops polling and closes the fd; later calls do nothing. */
  pollClose(handle: PollHandle): void;
  readonly READABLE: number;
  readonly WRITABLE: number;
  readonly WOULD_BLOCK: -1;
  readonly MAX_WRITEV_BUFFERS: number;
}

/** Loads the addon (once, through native/'s loader) and returns its vsock half; throws `VSOCK_UNAVAILABLE`. */
export function loadVsockNative(): VsockNative {
  let binding: unknown;
  try {
    binding = loadNativeAddon();
  } catch (cause) {
    throw new VsockError('VSOCK_UNAVAILABLE', 'cannot load the native addon for vsock', { cause });
  }
  const native = (binding as { vsock?: VsockNative }).vsock;
  if (native === undefined) {
    throw new VsockError(
      'VSOCK_UNAVAILABLE',
      'the native addon was built without vsock/native/vsock.c: rebuild it (`npm run install`)',
    );
  }
  return native;
}

export type PollHandler = (error: VsockError | null, events: number) => void;

/**
 * One socket fd and its poll handle. The fd is closed exactly once, by `close()` (or by the addon when the
 * Node environment shuts down). `onPoll` is swapped as the owner changes (connect, then the socket).
 * With `lazy`, the poll handle is made at the first `setEvents` that asks for an event: an accepted socket
 * that the bridges' native relay takes over at once never polls from JavaScript, and making and closing a
 * libuv poll handle (uv_poll_init's epoll check, a uv_close, the addon's wrapper) was a cost per
 * connection. A lazy handle that cannot be made closes the fd and reports the error through `onPoll`
 * (from a microtask: `setEvents` runs inside stream methods that must not throw).
 */
export class PolledFd {
  readonly native: VsockNative;
  readonly fd: number;
  onPoll: PollHandler = () => {};
  #handle: PollHandle | undefined;
  #events = 0;
  #closed = false;

  /** Wraps `fd`; if that fails the fd is closed and the error thrown (with `lazy`, at the first poll). */
  constructor(native: VsockNative, fd: number, options: { lazy?: boolean } = {}) {
    this.native = native;
    this.fd = fd;
    if (options.lazy !== true) this.#handle = this.#open();
  }

  /** The poll handle for the fd; on failure the fd is closed and the error thrown. */
  #open(): PollHandle {
    try {
      return this.native.pollOpen(this.fd, (error, events) => {
        if (error !== null) this.#events = 0; // libuv stopped the handle
        this.onPoll(error === null ? null : (toVsockError(error) as VsockError), events);
      });
    } catch (error) {
      this.#closed = true;
      this.native.close(this.fd);
      throw toVsockError(error);
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Polls for exactly `events` (READABLE | WRITABLE, 0 for none); no native call when nothing changes. */
  setEvents(events: number): void {
    if (this.#closed || events === this.#events) return;
    if (this.#handle === undefined) {
      const onPoll = this.onPoll;
      try {
        this.#handle = this.#open();
      } catch (error) {
        this.onPoll = () => {};
        queueMicrotask(() => onPoll(error as VsockError, 0));
        return;
      }
    }
    this.native.pollSet(this.#handle, events);
    this.#events = events;
  }

  /** Adds or removes one event. */
  want(event: number, on: boolean): void {
    this.setEvents(on ? this.#events | event : this.#events & ~event);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onPoll = () => {};
    if (this.#handle !== undefined) {
      this.native.pollClose(this.#handle);
      return;
    }
    try {
      this.native.close(this.fd);
    } catch {
      // Linux releases the fd whatever close(2) reports; there is nothing to retry and no one to tell.
    }
  }
}

/** A new non-blocking AF_VSOCK socket with its poll handle. */
export function openPolledSocket(native: VsockNative): PolledFd {
  let fd: number;
  try {
    fd = native.socket();
  } catch (error) {
    throw toVsockError(error);
  }
  return new PolledFd(native, fd);
}
