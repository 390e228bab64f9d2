/**
 * readHead: reads one HTTP head (through CRLFCRLF) off a stream into a buffer of at most `maxBytes`,
 * within `timeoutMs`, and puts any bytes that came after it back (`unshift`) so the tunnel forwards them.
 * It must not buffer more than `maxBytes` plus one chunk, nor keep listening once it settled: it leaves
 * the stream paused, with no listener of its own, for the next reader.
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

export function readHead(stream: Duplex, options: ReadHeadOptions): Promise<Uint8Array> {
  const { maxBytes, timeoutMs, signal } = options;
  return new Promise<Uint8Array>((resolve, reject) => {
    const buffer = Buffer.allocUnsafe(maxBytes);
    let length = 0;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;

    const finish = (error: unknown, head?: Uint8Array, rest?: Uint8Array): void => {
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
      if (head !== undefined) resolve(head);
      else reject(error);
    };
    const onData = (chunk: Buffer): void => {
      const take = Math.min(chunk.length, maxBytes - length);
      chunk.copy(buffer, length, 0, take);
      const scanned = length;
      length += take;
      let end: number;
      try {
        end = findHeadEnd(buffer, scanned - 3, length);
      } catch (error) {
        finish(error);
        return;
      }
      if (end !== -1) {
        finish(undefined, new Uint8Array(buffer.subarray(0, end)), chunk.subarray(end - scanned));
      } else if (length === maxBytes) {
        finish(new BridgeError('BRIDGE_HEAD_TOO_LARGE', `no end of head within ${maxBytes} bytes`));
      }
    };
    const onEnd = (): void =>
      finish(length === 0 ? new BridgeError('BRIDGE_PEER_CLOSED', 'closed before sending a head') : new BridgeError('BRIDGE_HEAD_MALFORMED', 'closed inside the head'));
    const onError = (error: Error): void => finish(error);
    const onClose = (): void => finish(new BridgeError('BRIDGE_PEER_CLOSED', 'closed before the head was complete'));
    const onAbort = (): void => finish(signal!.reason);

    if (signal?.aborted) {
      finish(signal.reason);
      return;
    }
    timer = setTimeout(() => finish(new BridgeError('BRIDGE_HEAD_TIMEOUT', `no complete head within ${timeoutMs} ms`)), timeoutMs);
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
    stream.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    stream.resume();
  });
}
