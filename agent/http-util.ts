/**
 * Small HTTP helpers shared by the agent's listeners: JSON answers with `Cache-Control: no-store`, and
 * a request body reader that enforces its size limit before buffering (declared length first, then
 * the running count) and a deadline, so a slow or endless body cannot hold memory or a socket.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';

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
