/**
 * Small HTTP helpers shared by the agent's listeners: JSON answers with `Cache-Control: no-store`, and
 * a request body reader that enforces its size limit before buffering (declared length first, then
 * the running count) and a deadline, so a slow or endless body cannot hold memory or a socket.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';

/** A request target on our own origin: its path and its query (`?...`, or ''). */
export interface RequestTarget {
  pathname: string;
  search: string;
}

const BASE = 'http://agent.invalid';
/**
 * Targets the WHATWG URL parser returns unchanged as the pathname: no query or fragment, no percent
 * signs, only characters of the path that it neither escapes nor rewrites, and (below) no dot segments.
 * `/` is outside the segment class, so the match is linear.
 */
const PLAIN_PATH = /^(?:\/[A-Za-z0-9\-._~!$&()*+,;=:@]*)+$/;
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;

/**
 * The request target as a path and query on our own origin, or null. Only origin-form targets
 * (`/path?query`) are accepted: `//host/x` and absolute URLs would otherwise steer a proxy to another
 * host. Runs on every request: a plain path (the common case) is returned as it is, which the URL
 * parser would also do (`http-util.test.ts` holds the two equal); anything else goes through the parser.
 */
export function parseRequestTarget(target: string | undefined): RequestTarget | null {
  if (target === undefined || !target.startsWith('/') || target.startsWith('//')) return null;
  if (PLAIN_PATH.test(target) && !DOT_SEGMENT.test(target)) return { pathname: target, search: '' };
  try {
    const url = new URL(target, BASE);
    return { pathname: url.pathname, search: url.search };
  } catch {
    return null;
  }
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendBytes(res, status, Buffer.from(JSON.stringify(body)), 'application/json', headers);
}

export function sendBytes(res: ServerResponse, status: number, body: Uint8Array, contentType: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, { ...headers, 'content-type': contentType, 'content-length': String(body.length), 'cache-control': 'no-store' });
  res.end(body);
}

/** Reads the whole body, at most `maxBytes`, within `timeoutMs`; throws HttpError 413 or 408. */
export function readBody(req: IncomingMessage, maxBytes: number, timeoutMs: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) return Promise.reject(new HttpError(413, 'body too large'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err: HttpError | null) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError);
      if (err === null) resolve(Buffer.concat(chunks));
      else {
        // Stop reading what we will not use; the response still goes out on this socket.
        req.pause();
        reject(err);
      }
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) finish(new HttpError(413, 'body too large'));
      else chunks.push(chunk);
    };
    const onEnd = () => finish(null);
    const onError = () => finish(new HttpError(400, 'request aborted'));
    const timer = setTimeout(() => finish(new HttpError(408, 'body not received in time')), timeoutMs);
    req.on('data', onData).on('end', onEnd).on('error', onError);
  });
}
