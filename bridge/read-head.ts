/**
 * Reading a delimited prefix off a stream, for the two handshakes the bridges read before they forward
 * bytes: an HTTP head through CRLFCRLF (`readHead`, the CONNECT proxy) and the hybrid-vsock reply line
 * (`readUntil` with its own end, hybrid-vsock.ts). At most `maxBytes` are kept (plus one chunk in flight),
 * within `timeoutMs`; the bytes after the end are put back (`unshift`) so the tunnel forwards them; the
 * stream is left paused, with no listener of ours, for the next reader. Every failure is a caller's coded
 * error.
 */

import type { Duplex } from 'node:stream';

import { findHeadEnd } from './connect-head.js';
import { BridgeError } from './errors.js';

export interface ReadHeadOptions {
  readonly maxBytes: number;
  readonly timeoutMs: number;
  /** Aborting rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

export interface ReadUntilOptions extends ReadHeadOptions {
  /**
   * Where the prefix ends (exclusive) in `buffer[0, length)`, given that nothing before `scanned` held
   * its end; -1 when it has not arrived yet. May throw a coded error for a malformed prefix.
   */
  findEnd(buffer: Uint8Array, scanned: number, length: number): number;
  /** The errors of each way the prefix can fail to arrive. */
  readonly errors: {
    /** `maxBytes` arrived without the end. */
    tooLarge(): Error;
    /** The stream ended ('end': the peer finished sending) or closed; `length` bytes of the prefix had arrived. */
    closed(length: number, how: 'end' | 'close'): Error;
    timeout(): Error;
  };
}

/** Resolves with the prefix through its end (a copy); see the file's comment. */
export function readUntil(stream: Duplex, options: ReadUntilOptions): Promise<Uint8Array> {
  const { maxBytes, timeoutMs, signal, findEnd, errors } = options;
  return new Promise<Uint8Array>((resolve, reject) => {
    const buffer = Buffer.allocUnsafe(maxBytes);
    let length = 0;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;

    const finish = (error: unknown, prefix?: Uint8Array, rest?: Uint8Array): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      stream.pause();
      if (rest !== undefined && rest.length > 0 && !stream.destroyed) stream.unshift(rest);
      if (prefix !== undefined) resolve(prefix);
      else reject(error);
    };
    const onData = (chunk: Buffer): void => {
      const take = Math.min(chunk.length, maxBytes - length);
      chunk.copy(buffer, length, 0, take);
      const scanned = length;
      length += take;
      let end: number;
      try {
        end = findEnd(buffer, scanned, length);
      } catch (error) {
        finish(error);
        return;
      }
      if (end !== -1) finish(undefined, new Uint8Array(buffer.subarray(0, end)), chunk.subarray(end - scanned));
      else if (length === maxBytes) finish(errors.tooLarge());
    };
    const onEnd = (): void => finish(errors.closed(length, 'end'));
    const onClose = (): void => finish(errors.closed(length, 'close'));
    const onError = (error: Error): void => finish(error);
    const onAbort = (): void => finish(signal!.reason);

    if (signal?.aborted) {
      finish(signal.reason);
      return;
    }
    timer = setTimeout(() => finish(errors.timeout()), timeoutMs);
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
    stream.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    stream.resume();
  });
}

/** One HTTP head through CRLFCRLF (connect-head.ts finds it and refuses a bare LF). */
export function readHead(stream: Duplex, options: ReadHeadOptions): Promise<Uint8Array> {
  const { maxBytes, timeoutMs } = options;
  return readUntil(stream, {
    ...options,
    // The end may straddle chunks: look again from three bytes before what was new.
    findEnd: (buffer, scanned, length) => findHeadEnd(buffer, scanned - 3, length),
    errors: {
      tooLarge: () => new BridgeError('BRIDGE_HEAD_TOO_LARGE', `no end of head within ${maxBytes} bytes`),
      closed: (length, how) =>
        how === 'close'
          ? new BridgeError('BRIDGE_PEER_CLOSED', 'closed before the head was complete')
          : length === 0
            ? new BridgeError('BRIDGE_PEER_CLOSED', 'closed before sending a head')
            : new BridgeError('BRIDGE_HEAD_MALFORMED', 'closed inside the head'),
      timeout: () => new BridgeError('BRIDGE_HEAD_TIMEOUT', `no complete head within ${timeoutMs} ms`),
    },
  });
}
