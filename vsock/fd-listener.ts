/**
 * FdListener: a listening socket (TCP on an IPv4 address, or AF_VSOCK) that hands each accepted
 * connection out as a raw fd, 'fd' events, for the bridges whose connections go straight to the native
 * relay's dial (bridge/native-pipe.ts joinNativeDialFd). No net.Socket or VsockSocket is made and
 * destroyed per connection: in the QEMU guest that per-connection JavaScript kept the bridges'
 * connections/s below socat's.
 *
 * The listening fd is polled like a VsockServer's (PolledFd, level-triggered): on readable it accepts
 * until nothing waits, at most ACCEPTS_PER_WAKEUP at a time so one flood cannot hold the loop. An accept
 * error (EMFILE, ENFILE, ENOBUFS) is an 'error' event and accepting pauses for ACCEPT_RETRY_MS, as
 * VsockServer does; the queue stays readable meanwhile, so that is no busy loop. The receiver of an 'fd'
 * owns it: it hands it to a relay or closes it (`closeFd`). `close()` stops accepting and closes the
 * listening fd; connections already handed out are not touched.
 */

import { EventEmitter } from 'node:events';

import { VMADDR_CID_ANY } from './address.js';
import { type VsockError, toVsockError } from './errors.js';
import { PolledFd, loadVsockNative } from './native.js';
import { acceptTcpFd, listenTcpFd } from './relay.js';
import { DEFAULT_BACKLOG, openListeningSocket, pauseAccepting } from './server.js';

/** Accepts per readable wakeup before the loop gets a turn (the rest wait in the kernel's queue). */
const ACCEPTS_PER_WAKEUP = 64;

export type FdListenOptions =
  | { readonly kind: 'tcp'; readonly address: Uint8Array; readonly port: number; readonly backlog?: number }
  | { readonly kind: 'vsock'; readonly port: number; readonly cid?: number; readonly backlog?: number };

export interface FdListener extends EventEmitter {
  /** The bound port (the one the kernel chose for 0). */
  readonly port: number;
  on(event: 'fd', listener: (fd: number) => void): this;
  on(event: 'error', listener: (error: VsockError) => void): this;
  /** Stops accepting and closes the listening fd. Idempotent. */
  close(): Promise<void>;
}

class PolledFdListener extends EventEmitter implements FdListener {
  readonly port: number;
  readonly #pfd: PolledFd;
  readonly #accept: (fd: number) => number;
  #closed = false;
  #retryTimer: NodeJS.Timeout | undefined;

  constructor(pfd: PolledFd, port: number, accept: (fd: number) => number) {
    super();
    this.#pfd = pfd;
    this.port = port;
    this.#accept = accept;
    pfd.onPoll = (error) => this.#onPoll(error);
    pfd.setEvents(pfd.native.READABLE);
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      clearTimeout(this.#retryTimer);
      this.#pfd.close();
    }
    return Promise.resolve();
  }

  #onPoll(error: VsockError | null): void {
    if (error !== null) {
      this.#pause(error);
      return;
    }
    for (let i = 0; i < ACCEPTS_PER_WAKEUP && !this.#closed; i++) {
      let fd: number;
      try {
        fd = this.#accept(this.#pfd.fd);
      } catch (acceptError) {
        this.#pause(toVsockError(acceptError) as VsockError);
        return;
      }
      if (fd < 0) return;
      this.emit('fd', fd);
    }
  }

  #pause(error: VsockError): void {
    this.#retryTimer = pauseAccepting(this.#pfd, () => this.#closed);
    this.emit('error', error);
  }
}

/** Binds and listens. Throws `VSOCK_UNAVAILABLE`, `VSOCK_BAD_ARGUMENT` or `VSOCK_E<ERRNO>` (EADDRINUSE, ...). */
export function listenFds(options: FdListenOptions): FdListener {
  const native = loadVsockNative();
  const backlog = options.backlog ?? DEFAULT_BACKLOG;
  if (options.kind === 'tcp') {
    const { fd, port } = listenTcpFd(options.address, options.port, backlog);
    return new PolledFdListener(new PolledFd(native, fd), port, acceptTcpFd);
  }
  const { pfd, address } = openListeningSocket(options.cid ?? VMADDR_CID_ANY, options.port, backlog);
  return new PolledFdListener(pfd, address.port, (fd) => {
    const accepted = native.accept(fd);
    return accepted === native.WOULD_BLOCK ? -1 : accepted[0];
  });
}

/** Closes an accepted fd that nothing took (vsock's `close`, which serves any fd no poll handle owns). */
export function closeFd(fd: number): void {
  try {
    loadVsockNative().close(fd);
  } catch (error) {
    throw toVsockError(error);
  }
}
