/**
 * The two transports a bridge joins, behind one small interface each, so the forwarder and the CONNECT
 * handlers run the same over TCP and vsock (host tests use TCP on loopback only; the QEMU guest uses both):
 * - a StreamListener hands out accepted streams (`listenTcp`, `listenVsockStreams`), or their raw fds
 *   for the native relay's own dial (`listenTcpFds`, `listenVsockFds`: the two ingress bridges);
 * - a Dial opens one stream to a fixed target (`tcpDialer`, `vsockDialer`); `dialWithin` bounds any Dial
 *   in time and turns its failures into BRIDGE_DIAL_FAILED / BRIDGE_DIAL_TIMEOUT.
 * Every stream is half-open capable (allowHalfOpen: true); TCP sockets have Nagle off, since a bridge
 * forwards chunks as they come and must not add a delayed-ACK round to request/response traffic.
 * Nothing here opens a socket at import time; vsock is only touched when a vsock function is called.
 */

import { EventEmitter } from 'node:events';
import { createServer, connect as connectTcp, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

import { connectVsock, ipv4Bytes, listenFds, listenVsock, type DialTarget, type FdListener, type VsockServer } from '../vsock/index.js';
import { BridgeError } from './errors.js';

/**
 * Opens one stream to the dialer's target; rejects (and leaves nothing open) when `signal` aborts.
 * `nativeTarget` names the same target for the native relay's own dial (native-pipe.ts joinNativeDial):
 * `tcpDialer` to a dotted IPv4 address and `vsockDialer` have it; other dials (names, hybrid vsock) do not.
 */
export type Dial = ((signal: AbortSignal) => Promise<Duplex>) & { readonly nativeTarget?: DialTarget };

export interface StreamListener {
  /** Where it listens, for logs: `{ tcp: '127.0.0.1:8080' }` or `{ vsockPort: 8080 }`. */
  readonly description: Readonly<Record<string, string | number>>;
  /**
   * 'connection' with each accepted Duplex, or 'fd' with each accepted connection's raw fd when
   * `handsOverFds`; 'error' for an accept failure, after which it keeps listening.
   */
  readonly events: EventEmitter;
  /**
   * Accepted connections come as raw fds (vsock/fd-listener.ts), which only the native relay's own dial
   * can take (the forwarder refuses any other pairing): no stream object is made per connection.
   */
  readonly handsOverFds?: true;
  /** Stops accepting; connections already handed out are not touched. */
  close(): Promise<void>;
}

export interface TcpListener extends StreamListener {
  /** The bound port (the one the kernel chose for port 0). */
  readonly port: number;
}

/** listen(2) backlog for TCP listeners: libuv's default would be 511; an enclave's bridges see few peers. */
const TCP_BACKLOG = 128;

/**
 * Listens on TCP `host:port`. Accept errors (EMFILE when the fd table is full) come out as 'error' events;
 * libuv answers EMFILE by accepting and closing the pending connection with its reserve fd, so a full table
 * does not spin. Rejects with BRIDGE_LISTEN_FAILED (EADDRINUSE, EACCES, ...).
 */
export async function listenTcp(options: { host: string; port: number }): Promise<TcpListener> {
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
  const events = new EventEmitter();
  await new Promise<void>((resolve, reject) => {
    const onError = (cause: Error): void => {
      reject(new BridgeError('BRIDGE_LISTEN_FAILED', `cannot listen on ${options.host}:${options.port}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause }));
    };
    server.once('error', onError);
    server.listen({ host: options.host, port: options.port, backlog: TCP_BACKLOG }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('connection', (socket: Socket) => events.emit('connection', socket));
  server.on('error', (error) => events.emit('error', error));
  const address = server.address() as AddressInfo;
  return {
    description: { tcp: `${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}` },
    port: address.port,
    events,
    close: () => {
      // server.close()'s callback waits for every accepted connection; stopping to accept is immediate.
      if (server.listening) server.close();
      return Promise.resolve();
    },
  };
}

/**
 * Listens on TCP `host:port` (a dotted IPv4 address) and hands accepted connections over as raw fds
 * (`handsOverFds`), with TCP_NODELAY as listenTcp's. BRIDGE_LISTEN_FAILED as listenTcp, and for a host
 * that is not an IPv4 address (listenTcp takes names and IPv6).
 */
export async function listenTcpFds(options: { host: string; port: number }): Promise<TcpListener> {
  const address = ipv4Bytes(options.host);
  if (address === undefined) throw new BridgeError('BRIDGE_LISTEN_FAILED', `cannot listen on ${options.host}:${options.port} for fds: not an IPv4 address`);
  let listener: FdListener;
  try {
    listener = listenFds({ kind: 'tcp', address, port: options.port, backlog: TCP_BACKLOG });
  } catch (cause) {
    throw new BridgeError('BRIDGE_LISTEN_FAILED', `cannot listen on ${options.host}:${options.port}: ${listenCode(cause)}`, { cause });
  }
  return { description: { tcp: `${options.host}:${listener.port}` }, port: listener.port, events: listener, handsOverFds: true, close: () => listener.close() };
}

/** Listens on vsock `port` and hands accepted connections over as raw fds (`handsOverFds`). */
export async function listenVsockFds(options: { port: number; cid?: number }): Promise<StreamListener> {
  let listener: FdListener;
  try {
    listener = listenFds({ kind: 'vsock', port: options.port, ...(options.cid !== undefined ? { cid: options.cid } : {}) });
  } catch (cause) {
    throw new BridgeError('BRIDGE_LISTEN_FAILED', `cannot listen on vsock port ${options.port}: ${(cause as { code?: string }).code ?? 'error'}`, { cause });
  }
  return { description: { vsockPort: listener.port }, events: listener, handsOverFds: true, close: () => listener.close() };
}

/** `EADDRINUSE` from VSOCK_EADDRINUSE, as listenTcp's message (Node's code) has it. */
function listenCode(cause: unknown): string {
  const code = (cause as { code?: string }).code;
  return code?.startsWith('VSOCK_E') === true ? code.slice('VSOCK_'.length) : (code ?? 'error');
}

/** Dials TCP `host:port`. */
export function tcpDialer(target: { host: string; port: number }): Dial {
  const dial = tcpDial(target);
  const address = ipv4Bytes(target.host);
  return address === undefined ? dial : Object.assign(dial, { nativeTarget: { kind: 'tcp' as const, address, port: target.port } });
}

function tcpDial(target: { host: string; port: number }): Dial {
  return (signal) =>
    new Promise<Duplex>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const socket = connectTcp({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
      const cleanup = (): void => {
        socket.off('connect', onConnect);
        socket.off('error', onError);
        signal.removeEventListener('abort', onAbort);
      };
      const onConnect = (): void => {
        cleanup();
        resolve(socket);
      };
      const onError = (cause: Error): void => {
        cleanup();
        socket.destroy();
        reject(cause);
      };
      const onAbort = (): void => {
        cleanup();
        socket.destroy();
        reject(signal.reason);
      };
      socket.once('connect', onConnect);
      socket.once('error', onError);
      signal.addEventListener('abort', onAbort, { once: true });
    });
}

/** Listens on vsock `port` (any local CID unless `cid` is given). Rejects with BRIDGE_LISTEN_FAILED. */
export async function listenVsockStreams(options: { port: number; cid?: number }): Promise<StreamListener> {
  let server: VsockServer;
  try {
    server = await listenVsock({ port: options.port, allowHalfOpen: true, ...(options.cid !== undefined ? { cid: options.cid } : {}) });
  } catch (cause) {
    throw new BridgeError('BRIDGE_LISTEN_FAILED', `cannot listen on vsock port ${options.port}: ${(cause as { code?: string }).code ?? 'error'}`, { cause });
  }
  // VsockServer already emits 'connection' and 'error' (it pauses accepting ACCEPT_RETRY_MS after resource errors).
  return { description: { vsockPort: server.address().port }, events: server, close: () => server.close() };
}

/** Dials vsock `cid:port`. A connect cannot be cancelled; one that completes after an abort is destroyed. */
export function vsockDialer(target: { cid: number; port: number }): Dial {
  const dial = async (signal: AbortSignal): Promise<Duplex> => {
    if (signal.aborted) throw signal.reason;
    const socket = await connectVsock({ cid: target.cid, port: target.port, allowHalfOpen: true });
    if (signal.aborted) {
      socket.destroy();
      throw signal.reason;
    }
    return socket;
  };
  return Object.assign(dial, { nativeTarget: { kind: 'vsock' as const, cid: target.cid, port: target.port } });
}

/**
 * Runs `dial` for at most `timeoutMs` (and no longer than `signal` allows). Resolves with the stream or
 * rejects with BRIDGE_DIAL_TIMEOUT, BRIDGE_DIAL_FAILED (the dialer's error as `cause`) or the parent
 * signal's reason; a stream that arrives after the race was lost is destroyed.
 */
export function dialWithin(dial: Dial, timeoutMs: number, signal: AbortSignal): Promise<Duplex> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return dialOwned(dial, timeoutMs, new AbortController(), signal);
}

/** The timeout's error is made when it fires: an Error's stack trace is a real cost per connection. */
export const dialTimeoutError = (timeoutMs: number): Error => new BridgeError('BRIDGE_DIAL_TIMEOUT', `no connection within ${timeoutMs} ms`);

/** A dial that failed (the dialer's error, or the native relay's VSOCK_E<ERRNO>) as BRIDGE_DIAL_FAILED with it as cause. */
export const dialFailedError = (cause: unknown): Error => new BridgeError('BRIDGE_DIAL_FAILED', `connect failed: ${(cause as { code?: string } | null)?.code ?? 'error'}`, { cause });

/**
 * dialWithin for a caller that owns `controller` (the forwarder's per-connection setup, which then needs
 * no controller or timer of its own): the dial gets `controller.signal`; the timeout aborts `controller`
 * with `timeoutError(timeoutMs)`, and any abort of it (the timeout, the caller, `parent`) rejects with its
 * reason. One promise settled once, without Promise.race or a promise per abort, and `controller` is
 * aborted only when the dial lost (a dial that settled removed its listeners): this runs per connection.
 */
export function dialOwned(dial: Dial, timeoutMs: number, controller: AbortController, parent?: AbortSignal, timeoutError = dialTimeoutError): Promise<Duplex> {
  const own = controller.signal;
  if (own.aborted) return Promise.reject(own.reason as Error);
  return new Promise<Duplex>((resolve, reject) => {
    let settled = false;
    const settle = (): void => {
      settled = true;
      clearTimeout(timer);
      own.removeEventListener('abort', onAbort);
      parent?.removeEventListener('abort', onParentAbort);
    };
    const onAbort = (): void => {
      if (settled) return;
      settle();
      reject(own.reason);
    };
    const onParentAbort = (): void => controller.abort(parent!.reason);
    const timer = setTimeout(() => controller.abort(timeoutError(timeoutMs)), timeoutMs);
    own.addEventListener('abort', onAbort);
    parent?.addEventListener('abort', onParentAbort, { once: true });
    const onDialed = (stream: Duplex): void => {
      if (settled) {
        stream.destroy(); // a dial that settles after the race was lost must not leak its stream
        return;
      }
      settle();
      resolve(stream);
    };
    const onFailed = (error: unknown): void => {
      if (settled) return;
      settle();
      reject(dialFailedError(error));
    };
    let dialing: Promise<Duplex>;
    try {
      dialing = dial(own);
    } catch (error) {
      onFailed(error);
      return;
    }
    dialing.then(onDialed, onFailed);
  });
}
