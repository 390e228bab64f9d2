/**
 * Reads a request body under a size cap, a deadline and a process-wide memory budget, checking before
 * it buffers (specs/steve.md §7 "413 before reading the whole body"): the declared Content-Length
 * first, then the running count of what arrives. With a declared length a body that arrives as one
 * chunk is that chunk, and a longer one lands in one buffer of that size (one copy, no join; its pages
 * are only touched as bytes arrive); without one, the chunks are joined once at the end.
 *
 * The budget bounds the bytes that all bodies being read and processed hold at once, counted as they
 * arrive (ours: 32 MiB envelopes x 64 concurrent requests would be 2 GiB, more than an enclave may
 * have); over it the request is refused 429 busy, which clients treat as a failed request, not a failed
 * session (§6). It does not read the body it refuses: the caller answers and closes the connection.
 *
 * `firstBytes` checks the first chunk before anything is buffered: a STEVE body that does not start as
 * the expected CBOR map (steve/protocol `expectMapPrefix`) is refused after its first chunk, so an
 * unauthenticated 32 MiB body of the wrong shape is neither read nor decoded.
 */

import type { IncomingMessage } from 'node:http';
import { SteveError } from '../errors.js';
import { ReplyError, SERVER_REPLIES } from './replies.js';

/** Bytes of request bodies held at once by the whole server. */
export interface MemoryBudget {
  take(bytes: number): boolean;
  give(bytes: number): void;
  readonly used: number;
}

export function createMemoryBudget(maxBytes: number): MemoryBudget {
  let used = 0;
  return {
    take(bytes) {
      if (used + bytes > maxBytes) return false;
      used += bytes;
      return true;
    },
    give(bytes) {
      used -= bytes;
    },
    get used() {
      return used;
    },
  };
}

export interface BodyLimits {
  maxBytes: number;
  timeoutMs: number;
  budget: MemoryBudget;
  /** Throws (a SteveError) when the body's first chunk shows it cannot be what the endpoint takes. */
  firstBytes?: (chunk: Uint8Array) => void;
}

/** The declared length, or null without one; a malformed header is STEVE_PROTOCOL (Node already refuses most). */
function declaredLength(req: IncomingMessage): number | null {
  const header = req.headers['content-length'];
  if (header === undefined) return null;
  if (!/^\d{1,16}$/.test(header)) throw new SteveError('STEVE_PROTOCOL', 'bad Content-Length');
  return Number(header);
}

/**
 * Resolves with the body (a Buffer at this Node edge); rejects with STEVE_TOO_LARGE (413), STEVE_BUSY
 * (429, budget), ReplyError timeout (408) or STEVE_PROTOCOL (aborted or bad length). The budget taken is
 * given back when the returned `release` is called (after the request is done with the bytes).
 */
export function readBody(req: IncomingMessage, limits: BodyLimits): Promise<{ body: Buffer; release: () => void }> {
  let declared: number | null;
  try {
    declared = declaredLength(req);
  } catch (err) {
    return Promise.reject(err);
  }
  if (declared !== null && declared > limits.maxBytes) {
    return Promise.reject(new SteveError('STEVE_TOO_LARGE', `declared body of ${declared} bytes is over ${limits.maxBytes}`));
  }
  let taken = 0;
  const take = (bytes: number): boolean => {
    if (!limits.budget.take(bytes)) return false;
    taken += bytes;
    return true;
  };
  const release = (): void => {
    limits.budget.give(taken);
    taken = 0;
  };

  return new Promise((resolve, reject) => {
    // With a declared length: the body's one buffer, made on the first chunk unless that chunk is
    // already the whole body (the usual case for small requests: no copy at all).
    let single: Buffer | null = null;
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err: Error | null): void => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError).off('aborted', onAborted);
      if (err === null) {
        if (declared !== null && size !== declared) {
          release();
          reject(new SteveError('STEVE_PROTOCOL', 'body shorter than its Content-Length'));
          return;
        }
        resolve({ body: single ?? (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)), release });
      } else {
        release();
        // Stop reading what will not be used; the caller answers and closes the connection.
        req.pause();
        reject(err);
      }
    };
    const onData = (chunk: Buffer): void => {
      const next = size + chunk.length;
      if (next > limits.maxBytes || (declared !== null && next > declared)) {
        finish(new SteveError('STEVE_TOO_LARGE', `body over ${limits.maxBytes} bytes`));
        return;
      }
      if (size === 0 && limits.firstBytes !== undefined) {
        try {
          limits.firstBytes(chunk);
        } catch (err) {
          finish(err as Error);
          return;
        }
      }
      // Counted as it arrives, so a body that trickles in holds only what it sent.
      if (!take(chunk.length)) {
        finish(new SteveError('STEVE_BUSY', 'request body budget exhausted'));
        return;
      }
      if (declared === null || (size === 0 && chunk.length === declared)) chunks.push(chunk);
      else {
        single ??= Buffer.allocUnsafe(declared);
        single.set(chunk, size);
      }
      size = next;
    };
    const onEnd = (): void => finish(null);
    const onError = (): void => finish(new SteveError('STEVE_PROTOCOL', 'request aborted'));
    const onAborted = onError;
    const timer = setTimeout(() => finish(new ReplyError(SERVER_REPLIES.timeout, `body not received within ${limits.timeoutMs} ms`)), limits.timeoutMs);
    req.on('data', onData).on('end', onEnd).on('error', onError).on('aborted', onAborted);
  });
}
