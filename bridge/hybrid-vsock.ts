/**
 * The Unix-socket ("hybrid vsock") transport: how a host reaches a guest's vsock ports when the guest's
 * vsock device is emulated on the host (QEMU's nitro-enclave machine behind `vhost-device-vsock
 * --uds-path UDS`; Firecracker uses the same convention), specs/nitro-enclave.md §3:
 * - host -> guest port P: connect to the Unix socket UDS, write `CONNECT P\n`, read `OK <port>\n`; from
 *   then on the connection is the stream (bytes after the newline already belong to it);
 * - guest -> host port P: the backend connects to the Unix socket `UDS_P`, where the host listens.
 * `hybridVsockDialer` and `listenUnixStreams` are a Dial and a StreamListener like the TCP and vsock ones
 * (bridge/transports.ts), so the same forwarder and CONNECT handlers run over them.
 *
 * The reply is untrusted input: at most HYBRID_REPLY_MAX_BYTES up to its newline, within a deadline, and
 * exactly `OK <decimal u32>\n`; anything else is a coded failure and the socket is destroyed. Nothing here
 * opens an AF_VSOCK socket. The backend does not pass a half-close on (a guest's shutdown(SHUT_WR) never
 * reaches the host, specs/nitro-enclave.md §3): only full closes can be relied on across it.
 */

import { EventEmitter } from 'node:events';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { createServer, connect as connectUnix, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

import { BridgeError } from './errors.js';
import { readUntil } from './read-head.js';
import type { Dial, StreamListener } from './transports.js';

/**
 * Longest reply line read, newline included: `OK ` + at most 10 digits (a u32) + `\n` is 14 bytes; 64
 * leaves room for nothing but refuses a peer that streams bytes without a newline.
 */
export const HYBRID_REPLY_MAX_BYTES = 64;
/** How long the backend may take to answer a CONNECT: it asks the guest, one vsock round trip. */
export const HYBRID_REPLY_TIMEOUT_MS = 10_000;
/** sun_path holds 108 bytes on Linux, its NUL included (include/uapi/linux/un.h, UNIX_PATH_MAX). */
export const UNIX_PATH_MAX_BYTES = 107;
/** vsock ports are u32 (include/uapi/linux/vm_sockets.h). */
const MAX_U32 = 0xffff_ffff;
/** listen(2) backlog for the Unix listeners: one backend connects, a few connections at a time. */
const UNIX_BACKLOG = 128;

const LF = 0x0a;
const REPLY_RE = /^OK (0|[1-9][0-9]{0,9})\n$/;

/** `CONNECT <port>\n`, the request the backend reads (the port in decimal, no leading zeros). */
export function encodeHybridConnect(port: number): Uint8Array {
  if (!Number.isInteger(port) || port < 0 || port > MAX_U32) throw new BridgeError('BRIDGE_CONFIG_INVALID', `"port" expected an integer 0..${MAX_U32}, got ${String(port)}`);
  return new TextEncoder().encode(`CONNECT ${port}\n`);
}

/**
 * Parses one reply line, its newline included: exactly `OK <n>\n` with n a decimal u32 without leading
 * zeros; returns n, which nothing relies on (Firecracker reports the host side's port, vhost-device-vsock
 * 0.3.0 the guest port asked for). Anything else, a longer line included, is BRIDGE_HYBRID_MALFORMED. Pure.
 */
export function parseHybridConnectReply(line: Uint8Array): number {
  if (line.length > HYBRID_REPLY_MAX_BYTES) throw new BridgeError('BRIDGE_HYBRID_MALFORMED', `reply longer than ${HYBRID_REPLY_MAX_BYTES} bytes`);
  // Bytes above 0x7e never match the pattern, so decoding as Latin-1 cannot make a bad reply look good.
  let text = '';
  for (const byte of line) text += String.fromCharCode(byte);
  const match = REPLY_RE.exec(text);
  if (match === null || Number(match[1]) > MAX_U32) throw new BridgeError('BRIDGE_HYBRID_MALFORMED', 'reply is not "OK <port>\\n"');
  return Number(match[1]);
}

/** The Unix socket a guest's connection to the host's vsock `port` arrives on: `UDS_<port>`. */
export function hybridVsockListenPath(udsPath: string, port: number): string {
  return `${udsPath}_${port}`;
}

export interface ReadReplyOptions {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/**
 * Reads the reply line (through its newline, at most HYBRID_REPLY_MAX_BYTES) and parses it; the bytes
 * after the newline are put back on the stream, which is left paused with no listener of ours. Rejects
 * with BRIDGE_HYBRID_REFUSED (closed before a reply: the guest has no listener on that port),
 * BRIDGE_HYBRID_MALFORMED, BRIDGE_HYBRID_TIMEOUT, the stream's error, or the signal's reason.
 */
export async function readHybridConnectReply(stream: Duplex, options: ReadReplyOptions): Promise<number> {
  const line = await readUntil(stream, {
    ...options,
    maxBytes: HYBRID_REPLY_MAX_BYTES,
    findEnd: (buffer, scanned, length) => {
      const newline = buffer.subarray(scanned, length).indexOf(LF);
      return newline === -1 ? -1 : scanned + newline + 1;
    },
    errors: {
      tooLarge: () => new BridgeError('BRIDGE_HYBRID_MALFORMED', `no newline within ${HYBRID_REPLY_MAX_BYTES} bytes of the reply`),
      closed: (length) =>
        length === 0 ? new BridgeError('BRIDGE_HYBRID_REFUSED', 'closed without a reply to CONNECT') : new BridgeError('BRIDGE_HYBRID_MALFORMED', 'closed inside the reply'),
      timeout: () => new BridgeError('BRIDGE_HYBRID_TIMEOUT', `no reply to CONNECT within ${options.timeoutMs} ms`),
    },
  });
  return parseHybridConnectReply(line);
}

export interface HybridVsockTarget {
  /** The backend's Unix socket (vhost-device-vsock's `--uds-path`). */
  readonly path: string;
  /** The guest's vsock port. */
  readonly port: number;
  /** Deadline for the reply; default HYBRID_REPLY_TIMEOUT_MS (the dial's own deadline applies as well). */
  readonly replyTimeoutMs?: number;
}

/**
 * Dials the guest's vsock `port` through the backend's Unix socket: connect, `CONNECT port\n`, the reply
 * checked. Resolves with the socket, positioned at the stream's first byte; on any failure or abort the
 * socket is destroyed. Its errors are BridgeErrors (above) or the connect's own (ENOENT, ECONNREFUSED).
 */
export function hybridVsockDialer(target: HybridVsockTarget): Dial {
  const request = encodeHybridConnect(target.port);
  const replyTimeoutMs = target.replyTimeoutMs ?? HYBRID_REPLY_TIMEOUT_MS;
  return (signal) =>
    new Promise<Duplex>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const socket: Socket = connectUnix({ path: target.path, allowHalfOpen: true });
      const fail = (error: unknown): void => {
        socket.off('connect', onConnect);
        socket.off('error', fail);
        signal.removeEventListener('abort', onAbort);
        socket.destroy();
        reject(error);
      };
      const onAbort = (): void => fail(signal.reason);
      const onConnect = (): void => {
        socket.off('error', fail);
        signal.removeEventListener('abort', onAbort);
        socket.write(request);
        // The reader listens for errors, the deadline and the abort from here on.
        readHybridConnectReply(socket, { timeoutMs: replyTimeoutMs, signal }).then(
          () => resolve(socket),
          (error: unknown) => {
            socket.destroy();
            reject(error);
          },
        );
      };
      socket.once('connect', onConnect);
      socket.once('error', fail);
      signal.addEventListener('abort', onAbort, { once: true });
    });
}

export interface UnixListener extends StreamListener {
  readonly path: string;
}

/**
 * Listens on the Unix socket `path` (a guest's connections to one host port arrive there), owner-only
 * (mode 0600: whoever can connect speaks for the enclave). A socket file left by a process that is gone
 * (nothing accepts on it) is replaced; a live one, or any other file, is BRIDGE_LISTEN_FAILED. The file
 * is removed on close. Accept errors come out as 'error' events, as with TCP.
 */
export async function listenUnixStreams(options: { path: string }): Promise<UnixListener> {
  const { path } = options;
  if (Buffer.byteLength(path) > UNIX_PATH_MAX_BYTES) throw new BridgeError('BRIDGE_LISTEN_FAILED', `Unix socket path longer than ${UNIX_PATH_MAX_BYTES} bytes: ${path}`);
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
  const listen = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const onError = (cause: Error): void => reject(cause);
      server.once('error', onError);
      server.listen({ path, backlog: UNIX_BACKLOG }, () => {
        server.off('error', onError);
        resolve();
      });
    });
  const failed = (cause: unknown): BridgeError =>
    new BridgeError('BRIDGE_LISTEN_FAILED', `cannot listen on ${path}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
  try {
    await listen();
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'EADDRINUSE' || !(await isStaleSocket(path))) throw failed(cause);
    try {
      await unlink(path);
      await listen();
    } catch (retryCause) {
      throw failed(retryCause);
    }
  }
  try {
    await chmod(path, 0o600);
  } catch (cause) {
    server.close();
    throw failed(cause);
  }
  const events = new EventEmitter();
  server.on('connection', (socket: Socket) => events.emit('connection', socket));
  server.on('error', (error) => events.emit('error', error));
  return {
    description: { unix: path },
    path,
    events,
    close: () => {
      // Node unlinks the socket file when the server closes; accepted connections are not touched.
      if (server.listening) server.close();
      return Promise.resolve();
    },
  };
}

/** True when `path` is a socket file nobody accepts on (connecting is refused): left by a process that is gone. */
async function isStaleSocket(path: string): Promise<boolean> {
  try {
    if (!(await lstat(path)).isSocket()) return false;
  } catch {
    return false;
  }
  return new Promise<boolean>((resolve) => {
    const probe = connectUnix({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}
