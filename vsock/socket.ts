/**
 * VsockSocket: a node:stream Duplex over one connected AF_VSOCK stream socket, and `connectVsock`, which
 * makes one. The stream rules follow net.Socket: `end()` sends FIN (shutdown(SHUT_WR)) once every queued
 * write has reached the kernel; the peer's FIN ends the readable side, and with `allowHalfOpen: false`
 * (the default) also ends ours; `destroy()` closes the fd exactly once (PolledFd).
 *
 * It must not busy-loop or buffer without bound: reads happen only when libuv says the fd is readable and
 * stop once `push()` returns false (backpressure reaches the peer through the kernel's credit window);
 * READABLE polling is dropped at the next readiness event while still paused, not at once, because every
 * uv_poll_start re-registers the fd with epoll and a flowing consumer usually asks again within the tick.
 * Writes go to the kernel until EAGAIN and then wait for WRITABLE. It must not touch the fd after destroy.
 *
 * Measured in the QEMU guest (test/qemu/vsock.guest.test.ts prints the figures): sending runs at 0.7-0.9x
 * socat, receiving at 0.5-0.7x (the range over runs). The receive gap is the fresh 64 KiB Buffer each read hands to the
 * consumer (first-touch page faults): reading into one reused buffer ran at about 0.95x socat but would give
 * consumers aliased memory; recycling blocks in C after GC gained about 1.1x and was not worth its lifetime
 * rules; 256 KiB reads and a 1 MiB SO_VM_SOCKETS_BUFFER_SIZE changed nothing measurable.
 */

import { Duplex } from 'node:stream';

import { assertCid, assertOptionalBoolean, assertOptions, assertPort, type VsockAddress } from './address.js';
import { VsockError, toVsockError } from './errors.js';
import { PolledFd, loadVsockNative, openPolledSocket } from './native.js';

/** Bytes asked of the kernel per read(2): 64 KiB, the largest virtio-vsock packet (VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). */
export const READ_CHUNK_BYTES = 64 * 1024;

/**
 * Reads shorter than this are copied into an exactly sized buffer and the 64 KiB one is reused, so a few
 * bytes never pin 64 KiB in the consumer's queue. A quarter keeps the copy small next to the syscall.
 */
const COPY_BELOW_BYTES = READ_CHUNK_BYTES / 4;

export interface VsockSocketOptions {
  /** As net.Socket: when false (the default) the peer's FIN also ends our writable side. */
  readonly allowHalfOpen?: boolean;
}

export interface ConnectVsockOptions extends VsockSocketOptions {
  /** 0..4294967295; VMADDR_CID_HOST (2) from an enclave, VMADDR_CID_LOCAL (1) for loopback. */
  readonly cid: number;
  /** 0..4294967295 */
  readonly port: number;
}

interface PendingWrite {
  readonly buffers: Uint8Array[];
  index: number;
  readonly callback: (error?: Error | null) => void;
}

export class VsockSocket extends Duplex {
  /** The peer's address (from accept or connect). */
  readonly remoteCid: number;
  readonly remotePort: number;
  readonly #pfd: PolledFd;
  /** Set by _read, cleared when push() returns false; READABLE polling stops on the next event while false. */
  #wantRead = false;
  /** The read buffer a short read or EAGAIN left unused. */
  #spare: Buffer | undefined;
  #pendingWrite: PendingWrite | undefined;
  #localAddress: VsockAddress | undefined;

  /** Not for callers: sockets come from `connectVsock` and a VsockServer's 'connection' event. */
  constructor(pfd: PolledFd, remote: VsockAddress, options: VsockSocketOptions = {}) {
    super({ allowHalfOpen: options.allowHalfOpen ?? false, decodeStrings: true });
    this.#pfd = pfd;
    this.remoteCid = remote.cid;
    this.remotePort = remote.port;
    pfd.onPoll = (error, events) => this.#onPoll(error, events);
  }

  /**
   * The socket's fd, -1 once destroyed: for the bridges' native relay (vsock/relay.ts), which works on a
   * duplicate and leaves this one to `destroy()`.
   */
  get fd(): number {
    return this.#pfd.closed ? -1 : this.#pfd.fd;
  }

  /** The local { cid, port } (getsockname, asked once). */
  address(): VsockAddress {
    if (this.#localAddress === undefined) {
      if (this.#pfd.closed) throw new VsockError('VSOCK_EBADF', 'the vsock socket is closed', { errno: 'EBADF' });
      try {
        this.#localAddress = this.#pfd.native.localAddress(this.#pfd.fd);
      } catch (error) {
        throw toVsockError(error);
      }
    }
    return this.#localAddress;
  }

  override _read(): void {
    this.#wantRead = true;
    this.#pfd.want(this.#pfd.native.READABLE, true);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#pendingWrite = { buffers: [chunk], index: 0, callback };
    this.#flush();
  }

  override _writev(
    chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>,
    callback: (error?: Error | null) => void,
  ): void {
    this.#pendingWrite = { buffers: chunks.map(({ chunk }) => chunk), index: 0, callback };
    this.#flush();
  }

  /** Runs after every write has completed: FIN to the peer. */
  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.#pfd.native.shutdown(this.#pfd.fd);
      callback();
    } catch (error) {
      callback(toVsockError(error) as Error);
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#pendingWrite = undefined;
    this.#spare = undefined;
    this.#pfd.close();
    callback(error);
  }

  #onPoll(error: VsockError | null, events: number): void {
    if (error !== null) {
      this.destroy(error);
      return;
    }
    const { READABLE, WRITABLE } = this.#pfd.native;
    if ((events & WRITABLE) !== 0) {
      if (this.#pendingWrite === undefined) this.#pfd.want(WRITABLE, false);
      else this.#flush();
    }
    if ((events & READABLE) !== 0 && !this.#pfd.closed) this.#onReadable();
  }

  #onReadable(): void {
    const pfd = this.#pfd;
    const { native, fd } = pfd;
    if (!this.#wantRead) {
      // Paused since the last push() returned false: stop polling until _read asks again (level-triggered).
      pfd.want(native.READABLE, false);
      return;
    }
    while (this.#wantRead && !pfd.closed) {
      const buffer = this.#spare ?? Buffer.allocUnsafe(READ_CHUNK_BYTES);
      this.#spare = undefined;
      let n: number;
      try {
        n = native.read(fd, buffer);
      } catch (error) {
        this.destroy(toVsockError(error) as Error);
        return;
      }
      if (n === native.WOULD_BLOCK) {
        this.#spare = buffer;
        return;
      }
      if (n === 0) {
        this.#wantRead = false;
        pfd.want(native.READABLE, false);
        this.push(null);
        return;
      }
      let chunk: Buffer;
      if (n < COPY_BELOW_BYTES) {
        chunk = Buffer.allocUnsafe(n);
        buffer.copy(chunk, 0, 0, n);
        this.#spare = buffer;
      } else {
        chunk = n === buffer.length ? buffer : buffer.subarray(0, n);
      }
      if (!this.push(chunk)) this.#wantRead = false;
      // A short read means the kernel queue is empty (as libuv's uv__read assumes): wait for the next event.
      if (n < buffer.length) return;
    }
  }

  /** Writes the pending buffers until done or EAGAIN; on EAGAIN waits for WRITABLE. */
  #flush(): void {
    const pending = this.#pendingWrite;
    if (pending === undefined || this.#pfd.closed) return;
    const { native, fd } = this.#pfd;
    const { buffers } = pending;
    for (;;) {
      while (pending.index < buffers.length && buffers[pending.index]!.length === 0) pending.index += 1;
      if (pending.index === buffers.length) break;
      let n: number;
      try {
        n =
          pending.index === buffers.length - 1
            ? native.write(fd, buffers[pending.index]!)
            : native.writev(fd, pending.index === 0 ? buffers : buffers.slice(pending.index));
      } catch (error) {
        this.#pendingWrite = undefined;
        pending.callback(toVsockError(error) as Error);
        return;
      }
      if (n === native.WOULD_BLOCK) {
        this.#pfd.want(native.WRITABLE, true);
        return;
      }
      while (n > 0) {
        const head = buffers[pending.index]!;
        if (n >= head.length) {
          n -= head.length;
          pending.index += 1;
        } else {
          buffers[pending.index] = head.subarray(n);
          n = 0;
        }
      }
    }
    this.#pendingWrite = undefined;
    this.#pfd.want(native.WRITABLE, false);
    pending.callback();
  }
}

/**
 * Connects to `cid:port`. Resolves once the peer accepted; rejects with `VSOCK_BAD_ARGUMENT` before any
 * native call for a bad cid or port, or with the kernel's `VSOCK_E<ERRNO>` (a port nobody listens on is
 * refused with a reset; no listener reachable times out after the kernel's connect timeout, 2 s by default).
 */
export async function connectVsock(options: ConnectVsockOptions): Promise<VsockSocket> {
  assertOptions(options);
  const { cid, port, allowHalfOpen } = options;
  assertCid(cid);
  assertPort(port);
  assertOptionalBoolean(allowHalfOpen, 'allowHalfOpen');

  const pfd = openPolledSocket(loadVsockNative());
  try {
    if (!pfd.native.connect(pfd.fd, cid, port)) await connected(pfd);
  } catch (error) {
    pfd.close();
    throw toVsockError(error);
  }
  return new VsockSocket(pfd, { cid, port }, allowHalfOpen === undefined ? {} : { allowHalfOpen });
}

/** A non-blocking connect finishes when the fd turns writable (or errors); SO_ERROR says which. */
function connected(pfd: PolledFd): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    pfd.onPoll = (error) => {
      pfd.onPoll = () => {};
      pfd.setEvents(0);
      if (error !== null) {
        reject(error);
        return;
      }
      try {
        pfd.native.connectResult(pfd.fd);
        resolve();
      } catch (connectError) {
        reject(toVsockError(connectError));
      }
    };
    pfd.setEvents(pfd.native.WRITABLE);
  });
}
