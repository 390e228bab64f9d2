/**
 * Writing an answer to a client that may never read it (ours, from the hardening round). An answer
 * handed to a socket stays in memory until the kernel takes it, so a client that stops reading would
 * otherwise pin up to a whole answer (32 MiB) per connection, for as long as it keeps the connection
 * open. Here every answer is written piece by piece with backpressure, and a socket that makes no write
 * progress for `sendTimeoutMs` (no piece taken by the kernel, or the end not flushed) is destroyed, which
 * frees what it held. Callers keep answer bytes counted in the server's memory budget until the
 * response closes (`holdUntilClosed`), so the budget covers what sockets hold, not only what is being
 * built.
 *
 * Progress is observed per write of at most MAX_WRITE_BYTES: the next is written only once the socket
 * drained, so a large answer is never one write the kernel takes in a single step at the end. Pieces are
 * the app's body chunks (at most 64 KiB each off a socket) or one sealed buffer, which goes in slices.
 */

import type { ServerResponse } from 'node:http';

/** Ours: how long a socket may make no write progress before it is closed (`--send-timeout-ms`). */
export const DEFAULT_SEND_TIMEOUT_MS = 30_000;

export type Outcome = 'ready' | 'closed' | 'stalled';

/** Ours: the most one write hands the socket before waiting for it to drain. */
const MAX_WRITE_BYTES = 64 * 1024;

/** `piece` as writes of at most MAX_WRITE_BYTES (views, not copies). */
function* slices(piece: Uint8Array): Generator<Uint8Array> {
  if (piece.length <= MAX_WRITE_BYTES) {
    yield piece;
    return;
  }
  for (let at = 0; at < piece.length; at += MAX_WRITE_BYTES) yield piece.subarray(at, at + MAX_WRITE_BYTES);
}

/**
 * Waits for `event` ('drain' or 'finish') or the response's close; destroys it after `timeoutMs` without
 * either. Also the streams' watchdog (stream-endpoint.ts).
 */
export function progress(res: ServerResponse, event: 'drain' | 'finish', timeoutMs: number): Promise<Outcome> {
  if (res.destroyed) return Promise.resolve('closed');
  return new Promise((resolve) => {
    const done = (outcome: Outcome): void => {
      clearTimeout(timer);
      res.off(event, onEvent).off('close', onClose);
      resolve(outcome);
    };
    const onEvent = (): void => done('ready');
    const onClose = (): void => done('closed');
    const timer = setTimeout(() => {
      done('stalled');
      res.destroy();
    }, timeoutMs);
    res.on(event, onEvent).on('close', onClose);
  });
}

/**
 * Writes `pieces` (already behind `res.writeHead`) and ends the response. Resolves 'sent' once the last
 * byte is with the kernel; 'closed' when the connection went away first; 'stalled' when it made no progress
 * for `timeoutMs` (the response, and with it the socket, is then destroyed).
 *
 * One piece of at most MAX_WRITE_BYTES (a small answer: the hot path) is ended at once and resolves
 * 'ended' without waiting; a watchdog still destroys the response if its end is not flushed within `timeoutMs`.
 */
export async function sendPieces(
  res: ServerResponse,
  pieces: readonly Uint8Array[] | AsyncIterable<Uint8Array>,
  timeoutMs: number,
): Promise<'sent' | 'ended' | 'closed' | 'stalled'> {
  if (res.destroyed) return 'closed';
  if (Array.isArray(pieces) && pieces.length === 1 && pieces[0]!.length <= MAX_WRITE_BYTES) {
    res.end(pieces[0]);
    if (!res.writableFinished) void progress(res, 'finish', timeoutMs);
    return 'ended';
  }
  for await (const piece of pieces) {
    for (const slice of slices(piece)) {
      if (res.destroyed) return 'closed';
      if (!res.write(slice)) {
        const outcome = await progress(res, 'drain', timeoutMs);
        if (outcome !== 'ready') return outcome;
      }
    }
  }
  if (res.destroyed) return 'closed';
  res.end();
  if (res.writableFinished) return 'sent';
  const outcome = await progress(res, 'finish', timeoutMs);
  return outcome === 'ready' ? 'sent' : outcome;
}

/** Calls `release` once, when the response has closed (finished and flushed, or its connection gone). */
export function holdUntilClosed(res: ServerResponse, release: () => void): void {
  let released = false;
  const once = (): void => {
    if (released) return;
    released = true;
    release();
  };
  if (res.closed || res.destroyed) once();
  else res.once('close', once);
}
