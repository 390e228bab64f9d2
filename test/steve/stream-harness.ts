/**
 * A small stream client (steve/protocol/stream.md) and an app for the server's stream tests: the client
 * is built only from the protocol core (preamble, writer, frame parser, reader), so a test chooses every
 * record it sends (flipped, dropped, repeated, from another sequence or session) and when; the app
 * records what reached it, chunk by chunk, and whether a body ever completed.
 */

import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent as UndiciAgent, request, type Dispatcher } from 'undici';
import {
  DIRECTION,
  FRAME_KIND,
  createFrameParser,
  createStreamReader,
  createStreamWriter,
  decodeAppResponse,
  encodeAppRequest,
  encodeStreamPreamble,
  type AppRequest,
  type AppResponse,
  type StreamWriter,
} from '../../steve/index.js';
import { nodeAesGcm } from '../../steve/server/index.js';
import { REQUEST_TIMEOUT_MS, createHeldResponses, pattern, sha256Hex, type ClientSession } from './harness.js';

/** Polls `condition` every 10 ms; throws naming `what` after `timeoutMs` (a hang, not a slow machine). */
export async function until(condition: () => boolean, what: string, timeoutMs = REQUEST_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits until `value()` has not changed for `quietMs` (a writer blocked on a full pipe), or `done()`. */
export async function untilStalled(value: () => number, what: string, quietMs = 300, done: () => boolean = () => false): Promise<void> {
  let last = value();
  let since = Date.now();
  await until(
    () => {
      const now = value();
      if (now !== last) {
        last = now;
        since = Date.now();
      }
      return done() || Date.now() - since >= quietMs;
    },
    what,
  );
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------
// The app

export interface AppHit {
  path: string;
  headers: IncomingMessage['headers'];
  /** Body bytes received so far, and their chunks' sizes. */
  received: number;
  chunks: number[];
  /** 'complete': the body ended; 'aborted': the connection closed before it did. */
  outcome: 'pending' | 'complete' | 'aborted';
  /** Answer bytes the app has handed to its socket (routes that stream). */
  sent: number;
  /** The app's response closed before it finished (its client went away). */
  responseClosedEarly: boolean;
  /** Sends the next lockstep event (`/lockstep`). */
  step?: () => void;
}

export interface StreamApp {
  url: string;
  hits: AppHit[];
  /** `/held` requests waiting; `releaseHeld()` answers them. */
  releaseHeld(): void;
  close(): Promise<void>;
}

/** Writes `total` bytes (or forever with Infinity) in 64 KiB pieces, waiting for 'drain' like a well-behaved app. */
async function writeWithBackpressure(res: ServerResponse, hit: AppHit, total: number): Promise<void> {
  const piece = Buffer.from(pattern(65_536, 3));
  while (hit.sent < total && !res.destroyed) {
    const size = Math.min(piece.length, total - hit.sent);
    hit.sent += size;
    if (!res.write(size === piece.length ? piece : piece.subarray(0, size))) {
      const closed = await new Promise<boolean>((resolve) => {
        const done = (value: boolean) => () => {
          res.off('drain', onDrain).off('close', onClose);
          resolve(value);
        };
        const onDrain = done(false);
        const onClose = done(true);
        res.on('drain', onDrain).on('close', onClose);
      });
      if (closed) return;
    }
  }
  if (!res.destroyed) res.end();
}

/**
 * Routes: `/hello` 200 `hello`; `/sink` reads the body and answers {bytes, sha256} at its end;
 * `/echo-stream` answers its head at once and echoes each chunk; `/sse` five events 200 ms apart;
 * `/lockstep` an event each time the test calls `hit.step()`, five in all; `/endless` 64 KiB pieces
 * forever; `/big/N` N bytes; `/held` waits for releaseHeld().
 */
export async function startStreamApp(): Promise<StreamApp> {
  const hits: AppHit[] = [];
  const held = createHeldResponses();
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    const hit: AppHit = { path, headers: req.headers, received: 0, chunks: [], outcome: 'pending', sent: 0, responseClosedEarly: false };
    hits.push(hit);
    res.on('close', () => {
      if (!res.writableFinished) hit.responseClosedEarly = true;
    });
    const body: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      hit.received += chunk.length;
      hit.chunks.push(chunk.length);
      body.push(chunk);
      if (path === '/echo-stream') res.write(chunk);
    });
    req.on('end', () => {
      hit.outcome = 'complete';
      if (path === '/sink') {
        const all = Buffer.concat(body);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ bytes: all.length, sha256: sha256Hex(all) }));
      } else if (path === '/echo-stream') res.end();
    });
    req.on('close', () => {
      if (hit.outcome === 'pending') hit.outcome = 'aborted';
    });
    if (path === '/hello') {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-app': 'hello' });
      res.end('hello');
    } else if (path === '/echo-stream') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.flushHeaders();
    } else if (path === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let n = 0;
      const tick = (): void => {
        if (res.destroyed) return;
        n += 1;
        res.write(`data: event ${n}\n\n`);
        if (n === 5) res.end();
        else setTimeout(tick, 200);
      };
      setTimeout(tick, 200);
    } else if (path === '/lockstep') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      let n = 0;
      hit.step = () => {
        n += 1;
        res.write(`data: step ${n}\n\n`);
        hit.sent = n;
        if (n === 5) res.end();
      };
    } else if (path === '/endless') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      void writeWithBackpressure(res, hit, Infinity);
    } else if (path.startsWith('/big/')) {
      const total = Number(path.slice('/big/'.length));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      void writeWithBackpressure(res, hit, total);
    } else if (path === '/held') {
      held.hold(res);
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    hits,
    releaseHeld() {
      held.release();
    },
    async close() {
      held.destroyAll();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The client

export type StreamHead = Omit<AppRequest, 'body'>;

/** The client's records for one exchange: preamble, then HEAD, DATA per chunk (split at 64 KiB), END. */
export function streamRequest(session: ClientSession, head: StreamHead, chunks: Uint8Array[] = [], options: { sequence?: number; end?: boolean } = {}) {
  const sequence = options.sequence ?? session.nextSequence++;
  const writer: StreamWriter = createStreamWriter(nodeAesGcm, session.keys.streamC2sKey, { direction: DIRECTION.C2S, sessionId: session.id, sequence });
  const records = [writer.head(encodeAppRequest({ ...head, body: null })), ...chunks.flatMap((chunk) => writer.data(chunk))];
  if (options.end !== false) records.push(writer.end());
  return { sequence, preamble: encodeStreamPreamble(session.id, sequence), records, writer };
}

/** A request body the test feeds piece by piece; `fail` makes undici abort the connection (a truncated upload). */
export function createFeed() {
  const queue: Array<Uint8Array | Error | null> = [];
  let wake: (() => void) | null = null;
  async function* body(): AsyncGenerator<Uint8Array> {
    for (;;) {
      while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      const item = queue.shift()!;
      if (item === null) return;
      if (item instanceof Error) throw item;
      yield item;
    }
  }
  const put = (item: Uint8Array | Error | null): void => {
    queue.push(item);
    const w = wake;
    wake = null;
    w?.();
  };
  return { body: body(), push: (...items: Uint8Array[]) => items.forEach(put), end: () => put(null), fail: () => put(new Error('client cut the upload')) };
}

export interface ReceivedRecord {
  kind: number;
  /** performance.now() when the record opened. */
  at: number;
  plaintext?: Uint8Array;
  error?: string;
}

export interface StreamReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The outer JSON error code when the status is not 200. */
  error?: string;
  /** The opened records; the response head decoded. */
  records: ReceivedRecord[];
  head?: AppResponse;
  bodyBytes: number;
  bodySha256: string;
  /** The response broke off without its last record (the server closed the connection). */
  cut: boolean;
}

export const streamDispatcher = new UndiciAgent({ connections: 64, keepAliveTimeout: 10_000, bodyTimeout: 0, headersTimeout: REQUEST_TIMEOUT_MS });

/** Starts the POST; resolves once the outer response head arrived, with the body not yet read. */
export async function postStream(base: string, body: AsyncIterable<Uint8Array> | Uint8Array, headers: Record<string, string> = {}): Promise<Dispatcher.ResponseData> {
  return request(`${base}/e2p/v2/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/steve-stream', ...headers },
    body: body as Uint8Array,
    dispatcher: streamDispatcher,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS * 3),
  });
}

/**
 * Reads an outer response: JSON error code, or the records opened one by one with their arrival times.
 * `onRecord` may wait (the body is then not read: the client stops taking bytes).
 */
export async function readStream(session: ClientSession, sequence: number, res: Dispatcher.ResponseData, onRecord?: (record: ReceivedRecord, reply: StreamReply) => Promise<void> | void): Promise<StreamReply> {
  const reply: StreamReply = { status: res.statusCode, headers: res.headers, records: [], bodyBytes: 0, bodySha256: '', cut: false };
  if (res.statusCode !== 200) {
    const text = await res.body.text();
    try {
      reply.error = (JSON.parse(text) as { error: string }).error;
    } catch {
      reply.error = text;
    }
    return reply;
  }
  const parser = createFrameParser();
  const reader = createStreamReader(nodeAesGcm, session.keys.streamS2cKey, { direction: DIRECTION.S2C, sessionId: session.id, sequence });
  const hash = (await import('node:crypto')).createHash('sha256');
  try {
    for await (const chunk of res.body) {
      for (const frame of parser.push(new Uint8Array(chunk as Buffer))) {
        const opened = reader.open(frame);
        const record: ReceivedRecord = { kind: opened.kind, at: performance.now() };
        if (opened.kind === FRAME_KIND.HEAD) reply.head = decodeAppResponse(opened.plaintext);
        else if (opened.kind === FRAME_KIND.DATA) {
          reply.bodyBytes += opened.plaintext.length;
          hash.update(opened.plaintext);
          if (reply.bodyBytes <= 1 << 20) record.plaintext = opened.plaintext;
        } else if (opened.kind === FRAME_KIND.ABORT) record.error = opened.error;
        reply.records.push(record);
        await onRecord?.(record, reply);
      }
    }
  } catch (err) {
    if ((err as { code?: string }).code === 'STEVE_PROTOCOL' || (err as { code?: string }).code === 'STEVE_DECRYPT') throw err;
    reply.cut = true;
  }
  if (!reader.finished) reply.cut = true;
  reply.bodySha256 = hash.digest('hex');
  return reply;
}

/** One whole exchange: all records at once, the reply read to its end. */
export async function streamOnce(session: ClientSession, head: StreamHead, chunks: Uint8Array[] = []): Promise<StreamReply> {
  const { sequence, preamble, records } = streamRequest(session, head, chunks);
  const res = await postStream(session.base, Buffer.concat([preamble, ...records]));
  return readStream(session, sequence, res);
}

export const dataText = (reply: StreamReply): string[] =>
  reply.records.filter((r) => r.kind === FRAME_KIND.DATA).map((r) => new TextDecoder().decode(r.plaintext));

/** Flips one bit of a frame's sealed bytes (past its 5-byte header). */
export function flipped(frame: Uint8Array, at = 7): Uint8Array {
  const copy = frame.slice();
  copy[at] = copy[at]! ^ 0x01;
  return copy;
}
