/**
 * The typed boundary to the bridges' native relay (vsock/native/relay.c, `exports.vsockRelay` on the one
 * addon): `openFdRelay` copies bytes both ways between two connected stream-socket fds in C, from the main
 * loop, with no JavaScript per chunk; `openDialRelay` does the same between one connected fd and a socket
 * it connects itself (an IPv4 TCP address or a vsock CID and port), so a bridge's plain dial costs no
 * JavaScript either. It lives beside the vsock binding because it is the vsock half of
 * the addon that bridge/ may reach (bridge/ imports only vsock/, test/boundaries.test.ts).
 *
 * The relay works on duplicates of the fds it is given: the caller still owns (and must close, usually by
 * destroying its stream) the originals. It must not be reached before the caller's arguments are valid;
 * nothing runs at import time, and a missing addon is `VSOCK_UNAVAILABLE`, never a silent fallback.
 */

import { loadNativeAddon } from '../native/index.js';

import { VsockError, toVsockError } from './errors.js';

/** An opaque handle made by `open`. */
export interface RelayHandle {
  readonly __relayHandle: unique symbol;
}

/** What relay.c exports. */
interface RelayNative {
  open(
    fdA: number,
    fdB: number,
    bufferBytes: number,
    splice: boolean,
    prefixAToB: Uint8Array,
    prefixBToA: Uint8Array,
    callback: (error: Error | null, bytesAToB: number, bytesBToA: number, connected: boolean) => void,
  ): RelayHandle;
  dial(
    fdA: number,
    family: 'inet' | 'vsock',
    address: Uint8Array | number,
    port: number,
    connectTimeoutMs: number,
    bufferBytes: number,
    splice: boolean,
    prefixAToB: Uint8Array,
    callback: (error: Error | null, bytesAToB: number, bytesBToA: number, connected: boolean) => void,
  ): RelayHandle;
  /** [bytesAToB, bytesBToA, idleMs] */
  stats(handle: RelayHandle): readonly [number, number, number];
  close(handle: RelayHandle): void;
  /** [fd, bound port] of a listening TCP socket. */
  listenTcp(address: Uint8Array, port: number, backlog: number): readonly [number, number];
  /** An accepted connection's fd, or -1 when none waits. */
  acceptTcp(fd: number): number;
  readonly MIN_BUFFER_BYTES: number;
  readonly MAX_BUFFER_BYTES: number;
  readonly MAX_PREFIX_BYTES: number;
}

export interface FdRelayOptions {
  /** Bytes in flight per direction: the ring (copy) or the pipe (splice); 4096..16 MiB. */
  readonly bufferBytes: number;
  /** splice(2) through a pipe per direction instead of read/write through a ring. */
  readonly splice: boolean;
  /** Bytes the streams had already read before the relay took over, sent first (each at most 1 MiB). */
  readonly prefixAToB?: Uint8Array;
  readonly prefixBToA?: Uint8Array;
}

export interface FdRelayStats {
  /** Bytes read from a (prefix included). */
  readonly bytesAToB: number;
  readonly bytesBToA: number;
  /** Milliseconds (the loop's clock) since a byte last moved either way; 0 once closed, and while a dial connects. */
  readonly idleMs: number;
}

export interface FdRelay {
  stats(): FdRelayStats;
  /** Stops at once and closes the relay's fds; `onEnd` is not called. Idempotent. */
  close(): void;
}

/** `connected`: always true for openFdRelay; for openDialRelay, false when the connect failed or timed out. */
export type FdRelayEnd = (error: VsockError | Error | null, bytesAToB: number, bytesBToA: number, connected: boolean) => void;

/** Where openDialRelay connects: an IPv4 address (its four bytes, `ipv4Bytes`) and a TCP port, or a vsock CID and port. */
export type DialTarget = { readonly kind: 'tcp'; readonly address: Uint8Array; readonly port: number } | { readonly kind: 'vsock'; readonly cid: number; readonly port: number };

export interface DialRelayOptions extends FdRelayOptions {
  /** The connect's deadline (1..2147483647 ms): past it the relay ends with VSOCK_ETIMEDOUT. */
  readonly connectTimeoutMs: number;
}

let cached: RelayNative | undefined;

/** The relay half of the addon; throws `VSOCK_UNAVAILABLE` when the addon (or its relay) is missing. */
function loadRelayNative(): RelayNative {
  if (cached !== undefined) return cached;
  let binding: unknown;
  try {
    binding = loadNativeAddon();
  } catch (cause) {
    throw new VsockError('VSOCK_UNAVAILABLE', 'cannot load the native addon for the relay', { cause });
  }
  const native = (binding as { vsockRelay?: RelayNative }).vsockRelay;
  if (native === undefined) {
    throw new VsockError('VSOCK_UNAVAILABLE', 'the native addon was built without vsock/native/relay.c: rebuild it (`npm run install`)');
  }
  cached = native;
  return native;
}

/** Whether the native relay can be used here (the addon loads and has it). */
export function fdRelayAvailable(): boolean {
  try {
    loadRelayNative();
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts relaying between duplicates of `fdA` and `fdB`. `onEnd` runs once, when both directions ended
 * (every byte flushed, both write sides shut: error null) or at the first error (a `VSOCK_E<ERRNO>`); by
 * then the relay's fds are closed. Throws `VSOCK_UNAVAILABLE`, `VSOCK_BAD_ARGUMENT` or `VSOCK_E<ERRNO>`
 * (dup, pipe) and then holds nothing.
 */
export function openFdRelay(fdA: number, fdB: number, options: FdRelayOptions, onEnd: FdRelayEnd): FdRelay {
  const native = loadRelayNative();
  let handle: RelayHandle;
  try {
    handle = native.open(fdA, fdB, options.bufferBytes, options.splice, options.prefixAToB ?? EMPTY, options.prefixBToA ?? EMPTY, relayEnd(onEnd));
  } catch (error) {
    throw toVsockError(error);
  }
  return relayFor(native, handle);
}

/**
 * The four bytes of a dotted IPv4 address, or undefined for anything else (a name, IPv6, a malformed
 * or non-canonical form such as 010.0.0.1).
 */
export function ipv4Bytes(host: string): Uint8Array | undefined {
  const parts = host.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return undefined;
    bytes[i] = Number(part);
  }
  return bytes;
}

/**
 * Starts relaying between a duplicate of `fdA` and a socket the relay makes and connects to `target`
 * itself. `onEnd` runs once: at the end of the relay as for openFdRelay, or when the connect failed
 * (`VSOCK_E<ERRNO>`: ECONNREFUSED, ENETUNREACH, ...) or passed `connectTimeoutMs` (`VSOCK_ETIMEDOUT`),
 * with `connected` false. Nothing is read from `fdA` before the connect succeeded. Throws
 * `VSOCK_UNAVAILABLE`, `VSOCK_BAD_ARGUMENT` (a tcp address that is not 4 bytes among them) or
 * `VSOCK_E<ERRNO>` (a connect refused at once) and then holds nothing.
 */
export function openDialRelay(fdA: number, target: DialTarget, options: DialRelayOptions, onEnd: FdRelayEnd): FdRelay {
  const native = loadRelayNative();
  let handle: RelayHandle;
  try {
    handle = native.dial(fdA, target.kind === 'tcp' ? 'inet' : 'vsock', target.kind === 'tcp' ? target.address : target.cid, target.port, options.connectTimeoutMs, options.bufferBytes, options.splice, options.prefixAToB ?? EMPTY, relayEnd(onEnd));
  } catch (error) {
    throw toVsockError(error);
  }
  return relayFor(native, handle);
}

/**
 * A listening TCP socket on a 4-byte IPv4 address whose connections are accepted with `acceptTcpFd`, for
 * the bridges that hand accepted fds straight to openDialRelay (vsock/fd-listener.ts). Throws
 * `VSOCK_UNAVAILABLE`, `VSOCK_BAD_ARGUMENT` or `VSOCK_E<ERRNO>` (EADDRINUSE, EACCES) and then holds nothing.
 */
export function listenTcpFd(address: Uint8Array, port: number, backlog: number): { fd: number; port: number } {
  const native = loadRelayNative();
  try {
    const [fd, bound] = native.listenTcp(address, port, backlog);
    return { fd, port: bound };
  } catch (error) {
    throw toVsockError(error);
  }
}

/** The next waiting connection's fd (non-blocking, TCP_NODELAY), or -1; throws `VSOCK_E<ERRNO>` (EMFILE, ...). */
export function acceptTcpFd(fd: number): number {
  try {
    return loadRelayNative().acceptTcp(fd);
  } catch (error) {
    throw toVsockError(error);
  }
}

const EMPTY = new Uint8Array(0);

function relayEnd(onEnd: FdRelayEnd): (error: Error | null, aToB: number, bToA: number, connected: boolean) => void {
  return (error, aToB, bToA, connected) => onEnd(error === null ? null : (toVsockError(error) as Error), aToB, bToA, connected);
}

function relayFor(native: RelayNative, handle: RelayHandle): FdRelay {
  return {
    stats() {
      const [bytesAToB, bytesBToA, idleMs] = native.stats(handle);
      return { bytesAToB, bytesBToA, idleMs };
    },
    close() {
      native.close(handle);
    },
  };
}
