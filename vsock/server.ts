/**
 * VsockServer: a listening AF_VSOCK stream socket that emits 'connection' with a VsockSocket per accepted
 * peer, and `listenVsock`, which opens one. Accepting runs only when libuv reports the listening fd readable,
 * and drains the kernel's queue (accept4 until EAGAIN).
 *
 * It must not spin: when accept fails for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) the queue stays
 * readable, so accepting pauses for ACCEPT_RETRY_MS. `close()` stops accepting and closes the listening
 * fd; it does not touch connections already handed out.
 */

import { EventEmitter } from 'node:events';

import {
  VMADDR_CID_ANY,
  assertBacklog,
  assertCid,
  assertOptionalBoolean,
  assertOptions,
  assertPort,
  type VsockAddress,
} from './address.js';
import { type VsockError, toVsockError } from './errors.js';
import { PolledFd, loadVsockNative, openPolledSocket } from './native.js';
import { VsockSocket, type VsockSocketOptions } from './socket.js';

/** listen(2)'s backlog when none is given: net.Server's default (lib/net.js, `backlog || 511`) would be
 * clamped anyway; 128 is the historical SOMAXCONN and plenty for an enclave's few peers. */
export const DEFAULT_BACKLOG = 128;

/** How long accepting pauses after a resource error, so a full fd table does not become a busy loop. */
export const ACCEPT_RETRY_MS = 100;

export interface ListenVsockOptions extends VsockSocketOptions {
  /** Local CID to bind: VMADDR_CID_ANY (the default) or a specific one (VMADDR_CID_LOCAL for loopback only). */
  readonly cid?: number;
  /** 0..4294967295; VMADDR_PORT_ANY picks a free port (see `address()`). */
  readonly port: number;
  /** listen(2) backlog, default 128. */
  readonly backlog?: number;
}

export interface VsockServer {
  on(event: 'connection', listener: (socket: VsockSocket) => void): this;
  on(event: 'error', listener: (error: VsockError) => void): this;
  on(event: 'close', listener: () => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'connection', listener: (socket: VsockSocket) => void): this;
  once(event: 'error', listener: (error: VsockError) => void): this;
  once(event: 'close', listener: () => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

export class VsockServer extends EventEmitter {
  readonly #pfd: PolledFd;
  readonly #address: VsockAddress;
  readonly #socketOptions: VsockSocketOptions;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;

  /** Not for callers: use `listenVsock`. */
  constructor(pfd: PolledFd, address: VsockAddress, socketOptions: VsockSocketOptions) {
    super();
    this.#pfd = pfd;
    this.#address = address;
    this.#socketOptions = socketOptions;
    pfd.onPoll = (error) => this.#onPoll(error);
    pfd.setEvents(pfd.native.READABLE);
  }

  /** The bound { cid, port } (getsockname; the port the kernel chose for VMADDR_PORT_ANY). */
  address(): VsockAddress {
    return this.#address;
  }

  get listening(): boolean {
    return !this.#closed;
  }

  /** Stops accepting and closes the listening fd; 'close' follows on the next tick. Idempotent. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      clearTimeout(this.#retryTimer);
      this.#pfd.close();
      process.nextTick(() => this.emit('close'));
    }
    return Promise.resolve();
  }

  #onPoll(error: VsockError | null): void {
    if (error !== null) {
      this.#pause(error);
      return;
    }
    const { native, fd } = this.#pfd;
    while (!this.#closed) {
      let accepted: readonly [number, number, number] | -1;
      try {
        accepted = native.accept(fd);
      } catch (acceptError) {
        this.#pause(toVsockError(acceptError) as VsockError);
        return;
      }
      if (accepted === native.WOULD_BLOCK) return;
      const [peerFd, cid, port] = accepted;
      let socket: VsockSocket;
      try {
        // Lazy: a socket the bridges' native relay takes over at once never needs a poll handle of its own.
        socket = new VsockSocket(new PolledFd(native, peerFd, { lazy: true }), { cid, port }, this.#socketOptions);
      } catch (wrapError) {
        this.emit('error', toVsockError(wrapError));
        continue;
      }
      this.emit('connection', socket);
    }
  }

  /** Reports the error and stops accepting for ACCEPT_RETRY_MS (the queue stays readable meanwhile). */
  #pause(error: VsockError): void {
    this.#retryTimer = pauseAccepting(this.#pfd, () => this.#closed);
    this.emit('error', error);
  }
}

/**
 * After an accept error on a listening fd: stop polling it, and poll for READABLE again after
 * ACCEPT_RETRY_MS unless `closed()` by then (VsockServer, fd-listener.ts). Returns the timer, for close().
 */
export function pauseAccepting(pfd: PolledFd, closed: () => boolean): NodeJS.Timeout {
  pfd.setEvents(0);
  return setTimeout(() => {
    if (!closed()) pfd.setEvents(pfd.native.READABLE);
  }, ACCEPT_RETRY_MS);
}

/**
 * Binds and listens. Rejects with `VSOCK_BAD_ARGUMENT` before any native call for a bad cid, port or
 * backlog, or with the kernel's `VSOCK_E<ERRNO>` (`VSOCK_EADDRINUSE`, `VSOCK_EADDRNOTAVAIL` for a CID
 * this machine does not have).
 */
export async function listenVsock(options: ListenVsockOptions): Promise<VsockServer> {
  assertOptions(options);
  const { cid = VMADDR_CID_ANY, port, backlog = DEFAULT_BACKLOG, allowHalfOpen } = options;
  assertOptionalBoolean(allowHalfOpen, 'allowHalfOpen');
  const { pfd, address } = openListeningSocket(cid, port, backlog);
  return new VsockServer(pfd, address, allowHalfOpen === undefined ? {} : { allowHalfOpen });
}

/**
 * A bound, listening AF_VSOCK socket and its address (listenVsock, fd-listener.ts). `VSOCK_BAD_ARGUMENT`
 * before any native call for a bad cid, port or backlog; the kernel's `VSOCK_E<ERRNO>` with nothing left open.
 */
export function openListeningSocket(cid: number, port: number, backlog: number): { pfd: PolledFd; address: VsockAddress } {
  assertCid(cid);
  assertPort(port);
  assertBacklog(backlog);
  const pfd = openPolledSocket(loadVsockNative());
  try {
    pfd.native.bind(pfd.fd, cid, port);
    pfd.native.listen(pfd.fd, backlog);
    return { pfd, address: pfd.native.localAddress(pfd.fd) };
  } catch (error) {
    pfd.close();
    throw toVsockError(error);
  }
}
