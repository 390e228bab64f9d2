/**
 * `POST /e2p/v2/stream`, the server side of our stream extension `stream-1` (steve/protocol/stream.md):
 * one HTTP exchange as sealed records both ways, so an app's answer (LLM tokens, server-sent events, a
 * large file) reaches the client as it is produced and an upload reaches the app as it is sent, with no
 * body ever held whole and no cap on the total.
 *
 * Per stream, cheapest checks first (as server.ts does for `/e2p/v2/request`): the media type (400), the
 * 40-byte preamble under the request-body deadline with its magic checked on the first bytes (400), the
 * session (401 unknown, 425 unconfirmed), the replay window on the preamble's sequence (409, before
 * anything is opened), the session's open streams (429 over MAX_STREAMS_PER_SESSION) and in-flight
 * places, a fixed memory reservation from the server's budget (429). Then the head record (401 when it
 * does not open; its sequence is recorded only now), the §3 request map with a null body (400), and the
 * second record, which decides: END calls the app with no body, DATA with a body pulled record by record
 * (chunked, or with the head's `content-length`, which must then match).
 *
 * The app's answer goes out as it arrives: 200 `application/steve-stream` on its head, then HEAD, DATA
 * (at most 64 KiB each) and END records. Failures before the 200 are the outer replies (replies.ts);
 * after it, an ABORT record (stream.md §5) ends the response. The app being unreachable or slow before
 * its head is a 200 stream whose HEAD is the proxy's made-up 502/504, as v2 seals one.
 *
 * Decisions (ours):
 * - A request record that fails after the app was called (does not open, wrong order, the upload ends
 *   before END, bytes after END) aborts the app's request: its connection is closed, so the app never
 *   sees a complete body the client did not send. With a declared `content-length`, the record that
 *   completes the body is passed on only once the END after it has opened, since the app would take the
 *   last byte as the end.
 * - Backpressure both ways: the upload is read from the socket only as undici asks for the next chunk
 *   (it waits for the app's socket to drain), and the app's answer is paused while the client's socket
 *   does not drain. A socket that takes nothing for `sendTimeoutMs` is destroyed (send.ts), which aborts
 *   the app's request. Each direction may run a few records ahead (READ_AHEAD_BYTES, WRITE_AHEAD_BYTES),
 *   and the reservation covers all a stream can hold.
 * - Idle (stream.md §5): no record moved either way for `idleTimeoutMs` is ABORT `stream_idle` after the
 *   200, and 408 timeout (then the connection closes) before it.
 * - A client that goes away aborts the app's request at once.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import {
  DIRECTION,
  FRAME_HEADER_BYTES,
  FRAME_KIND,
  MAX_STREAM_CHUNK_BYTES,
  MAX_STREAM_SEALED_BYTES,
  MAX_STREAMS_PER_SESSION,
  STREAM_MEDIA_TYPE,
  STREAM_PREAMBLE_BYTES,
  createFrameParser,
  createStreamReader,
  createStreamWriter,
  decodeAppRequest,
  decodeStreamPreamble,
  encodeAppResponse,
  streamMagic,
  type AppRequest,
  type Frame,
  type OpenedRecord,
} from '../protocol/index.js';
import { SteveError } from '../errors.js';
import type { ServerAead } from './aead-node.js';
import type { MemoryBudget } from './body.js';
import { ReplyError, SERVER_REPLIES } from './replies.js';
import { progress } from './send.js';
import type { Session, SessionTable } from './session-table.js';
import type { StreamCall, StreamHandlers, Upstream, UpstreamAnswer } from './upstream.js';

/** stream.md §5: `--stream-idle-timeout-ms` default, 60 s. */
export const DEFAULT_STREAM_IDLE_TIMEOUT_MS = 60_000;
/** A full frame: header, 64 KiB of plaintext, tag. */
const FRAME_MAX_BYTES = FRAME_HEADER_BYTES + MAX_STREAM_SEALED_BYTES;
/**
 * Ours: answer bytes queued on the client's socket before the app's answer is paused: four full records.
 * Node calls a socket full past 16 KiB, less than one record; pausing there stalled every record on a
 * round trip (bench/stream.mjs: download 0.36 to 0.46 of the plain proxy at one record, 0.73 to 0.81 at four).
 */
const WRITE_AHEAD_BYTES = 4 * FRAME_MAX_BYTES;
/**
 * Ours: request bytes read ahead of the parser (ChunkSource): two full records. Reading one socket read at
 * a time made every record wait for a round trip through the event loop and the socket.
 */
const READ_AHEAD_BYTES = 2 * FRAME_MAX_BYTES;
/**
 * Ours: memory reserved from the server's budget per open stream, what it can hold at once: the upload's
 * read-ahead, one frame being parsed and one plaintext on its way to the app; the answer's write-ahead and
 * one app chunk being sealed. Nine full records, about 576 KiB.
 */
export const STREAM_RESERVATION_BYTES = READ_AHEAD_BYTES + 2 * FRAME_MAX_BYTES + WRITE_AHEAD_BYTES + FRAME_MAX_BYTES;
/** Ours: after an ABORT, how long an unfinished upload may go on (read and discarded) before the socket closes. */
const LINGER_MS = 2000;
const MAGIC = streamMagic();
/** A `content-length` the head may carry (as body.ts reads the outer one). */
const CONTENT_LENGTH_RE = /^\d{1,16}$/;

export interface StreamEndpointOptions {
  table: SessionTable;
  budget: MemoryBudget;
  /** Seals and opens the records (server.ts's `aead`). */
  aead: ServerAead;
  upstream: Upstream;
  logger: Logger;
  sendTimeoutMs: number;
  idleTimeoutMs: number;
  /** The preamble must arrive within this (the request-body deadline of /e2p/v2/request). */
  preambleTimeoutMs: number;
  /** The session for an id; throws STEVE_SESSION_INVALID (401) when there is none. */
  lookup(sessionId: Uint8Array): Session;
  /**
   * Bytes all open streams may reserve together (the server gives half its budget): a client holding
   * many slow streams open cannot take the memory that /e2p/v2/request needs.
   */
  maxReservedBytes: number;
}

export interface StreamEndpoint {
  /** Resolves 200 once a started stream's response has closed; rejects (before the 200) with what to answer. */
  run(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): Promise<number>;
  /** Streams open now. */
  readonly open: number;
  /** Whether `socket` carries an open stream (its upload may outlast the server's request deadline). */
  carries(socket: unknown): boolean;
  /** Ends every open stream (the server is closing; its session keys are about to be wiped). */
  closeAll(): void;
}

function protocol(message: string): SteveError {
  return new SteveError('STEVE_PROTOCOL', message);
}

/** The caller ended the stream (client gone, answer complete, server closing): not a failure of the app. */
class Stopped extends Error {}
/**
 * The reasons every finished stream cancels its request source with, made once: an Error captures a
 * stack trace when it is made (about 25 us, the largest single cost of a short stream in a profile).
 */
const STREAM_OVER = new Stopped('stream over');
const ANSWER_COMPLETE = new Stopped('answer complete');

/**
 * The request body as socket reads, read ahead by at most READ_AHEAD_BYTES: the client's socket is paused
 * while that much waits here (TCP then holds the rest), and resumed when a reader takes it below.
 */
interface ChunkSource {
  /** The next chunk, null at the end of the body; rejects when the body broke off or after cancel(). */
  next(): Promise<Buffer | null>;
  /** Wakes a waiting next() with `err`; every later next() rejects with it. */
  cancel(err: Error): void;
  /** Leaves `req` paused with none of these listeners (an answer may still read and discard it). */
  detach(): void;
}

function createChunkSource(req: IncomingMessage): ChunkSource {
  const queue: Buffer[] = [];
  let queued = 0;
  let ended = false;
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  const notify = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  const onData = (c: Buffer): void => {
    queue.push(c);
    queued += c.length;
    if (queued >= READ_AHEAD_BYTES) req.pause();
    notify();
  };
  const onEnd = (): void => {
    ended = true;
    notify();
  };
  const onBroken = (): void => {
    if (!ended && !req.complete) failure ??= protocol('the request stream broke off before its end');
    notify();
  };
  req.on('data', onData).on('end', onEnd).on('error', onBroken).on('aborted', onBroken).on('close', onBroken);
  return {
    async next() {
      for (;;) {
        if (failure !== null) throw failure;
        const c = queue.shift();
        if (c !== undefined) {
          queued -= c.length;
          if (queued < READ_AHEAD_BYTES && !ended) req.resume();
          return c;
        }
        if (ended) return null;
        await new Promise<void>((resolve) => {
          wake = resolve;
          req.resume();
        });
      }
    },
    cancel(err) {
      failure = err;
      queue.length = 0;
      queued = 0;
      notify();
    },
    detach() {
      req.off('data', onData).off('end', onEnd).off('error', onBroken).off('aborted', onBroken).off('close', onBroken);
      req.pause();
    },
  };
}

/** The 40-byte preamble and the bytes after it; the magic is checked on the first bytes, the whole within `timeoutMs`. */
async function readPreamble(source: ChunkSource, timeoutMs: number): Promise<{ sessionId: Uint8Array; sequence: number; rest: Buffer }> {
  const timer = setTimeout(() => source.cancel(new ReplyError(SERVER_REPLIES.timeout, `stream preamble not received within ${timeoutMs} ms`)), timeoutMs);
  try {
    let have: Buffer = Buffer.alloc(0);
    while (have.length < STREAM_PREAMBLE_BYTES) {
      const chunk = await source.next();
      if (chunk === null) throw protocol(`a stream body starts with a ${STREAM_PREAMBLE_BYTES}-byte preamble`);
      const checkedTo = Math.min(MAGIC.length, have.length + chunk.length);
      have = have.length === 0 ? chunk : Buffer.concat([have, chunk]);
      // Refused on its first bytes: nothing more of a body that is not a stream is read.
      for (let i = 0; i < checkedTo; i++) if (have[i] !== MAGIC[i]) throw protocol('not a stream preamble');
    }
    const { sessionId, sequence } = decodeStreamPreamble(have.subarray(0, STREAM_PREAMBLE_BYTES));
    return { sessionId, sequence, rest: have.subarray(STREAM_PREAMBLE_BYTES) };
  } finally {
    clearTimeout(timer);
  }
}

/** The head's `content-length`, if it has one (a decimal integer; anything else is 400). */
function declaredLength(request: AppRequest): number | null {
  const value = request.headers['content-length'];
  if (value === undefined) return null;
  if (!CONTENT_LENGTH_RE.test(value)) throw protocol('a stream head with a malformed content-length');
  return Number(value);
}

export function createStreamEndpoint(options: StreamEndpointOptions): StreamEndpoint {
  const { table, budget, upstream, logger, sendTimeoutMs, idleTimeoutMs } = options;
  /** Open streams per session (stream.md §5: at most 16). */
  const perSession = new Map<Session, number>();
  /** How to end each open stream at once. */
  const openStreams = new Set<() => void>();
  /** Bytes the open streams have taken from the budget. */
  let reserved = 0;
  /** The sockets of the open streams (an HTTP/1.1 socket carries one request at a time). */
  const sockets = new WeakSet<object>();

  async function run(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): Promise<number> {
    const source = createChunkSource(req);
    let session: Session;
    let sequence: number;
    let rest: Buffer;
    try {
      let sessionId: Uint8Array;
      ({ sessionId, sequence, rest } = await readPreamble(source, options.preambleTimeoutMs));
      session = options.lookup(sessionId);
      if (!session.confirmed) throw new SteveError('STEVE_SESSION_UNCONFIRMED', 'stream before confirmation');
      // §7: duplicate, too old, or 0 -> 409, on the public sequence before any record is opened.
      session.replay.check(sequence);
      if ((perSession.get(session) ?? 0) >= MAX_STREAMS_PER_SESSION) throw new SteveError('STEVE_BUSY', 'too many streams open on this session');
      if (reserved + STREAM_RESERVATION_BYTES > options.maxReservedBytes) throw new SteveError('STEVE_BUSY', 'streams hold their share of the memory budget');
      if (!table.retain(session)) throw new SteveError('STEVE_BUSY', 'too many requests in flight on this session');
      if (!budget.take(STREAM_RESERVATION_BYTES)) {
        table.release(session);
        throw new SteveError('STEVE_BUSY', 'stream memory would pass the budget');
      }
      reserved += STREAM_RESERVATION_BYTES;
    } catch (err) {
      source.detach();
      throw err;
    }
    perSession.set(session, (perSession.get(session) ?? 0) + 1);
    return exchange(req, res, headers, source, session, sequence, rest);
  }

  function exchange(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>, source: ChunkSource, session: Session, sequence: number, rest: Buffer): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const reader = createStreamReader(options.aead, session.keys.streamC2sKey, { direction: DIRECTION.C2S, sessionId: session.id, sequence });
      const writer = createStreamWriter(options.aead, session.keys.streamS2cKey, { direction: DIRECTION.S2C, sessionId: session.id, sequence });
      const parser = createFrameParser();
      const frames: Frame[] = [];
      /** The 200 went out: failures are ABORT records from now on. */
      let started = false;
      /** The last record is written (or the stream failed): nothing more goes out. */
      let finished = false;
      let call: StreamCall | null = null;
      let released = false;
      /** Waiting for the client's socket to drain (the app's answer is paused). */
      let draining = false;
      const idle = setTimeout(onIdle, idleTimeoutMs);
      const stop = (): void => {
        if (!finished) failRequestSide(new Stopped('server closing'));
        res.destroy();
      };
      openStreams.add(stop);
      sockets.add(req.socket);

      function release(): void {
        if (released) return;
        released = true;
        clearTimeout(idle);
        openStreams.delete(stop);
        sockets.delete(req.socket);
        source.cancel(STREAM_OVER);
        source.detach();
        budget.give(STREAM_RESERVATION_BYTES);
        reserved -= STREAM_RESERVATION_BYTES;
        table.release(session);
        const count = (perSession.get(session) ?? 1) - 1;
        if (count === 0) perSession.delete(session);
        else perSession.set(session, count);
      }

      // A write after the connection broke must not become an unhandled 'error'.
      res.on('error', () => undefined);
      res.once('close', () => {
        if (!finished) {
          finished = true;
          call?.abort(new Stopped('client went away'));
          logger.info({ route: 'steve_stream', started }, 'stream client went away; app request aborted');
        }
        release();
        if (started) resolve(200);
        else reject(protocol('client went away before the answer'));
      });

      function send(frame: Uint8Array): boolean {
        if (res.destroyed) return false;
        idle.refresh();
        return res.write(frame);
      }

      function endWith(frame: Uint8Array): void {
        finished = true;
        source.cancel(ANSWER_COMPLETE);
        if (res.destroyed) return;
        idle.refresh();
        res.end(frame);
        if (!res.writableFinished) void progress(res, 'finish', sendTimeoutMs);
      }

      function start(): void {
        started = true;
        res.writeHead(200, { ...headers, 'content-type': STREAM_MEDIA_TYPE, 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
      }

      /** After the 200: the ABORT record, then the response's end (stream.md §5). */
      function abortWith(code: 'upstream_aborted' | 'upstream_timeout' | 'stream_idle' | 'request_stream_invalid', err: unknown): void {
        if (finished) return;
        call?.abort(err instanceof Error ? err : new Stopped(code));
        logger.info({ route: 'steve_stream', code, err: { message: (err as Error | null)?.message } }, 'stream aborted');
        endWith(writer.abort(code));
        if (!req.complete) {
          // The rest of an upload that will not be used: read and discarded briefly, then the socket closes.
          res.once('finish', () => {
            req.resume();
            setTimeout(() => {
              if (!req.complete) req.socket.destroy();
            }, LINGER_MS).unref();
          });
        }
      }

      /** A request record failed (or the stream was stopped): before the 200 the outer reply, after it an ABORT. */
      function failRequestSide(err: unknown): void {
        if (finished) return;
        if (started) {
          abortWith('request_stream_invalid', err);
          return;
        }
        finished = true;
        call?.abort(err instanceof Error ? err : new Stopped('request failed'));
        release();
        reject(err);
      }

      function onIdle(): void {
        if (finished) return;
        if (started) abortWith('stream_idle', new Stopped('idle'));
        else failRequestSide(new ReplyError(SERVER_REPLIES.timeout, `no stream record moved for ${idleTimeoutMs} ms`));
      }

      /** The next request record, opened (kind, order, session, sequence and index checked by the reader). */
      async function nextRecord(): Promise<OpenedRecord> {
        while (frames.length === 0) {
          const chunk = await source.next();
          if (chunk === null) throw protocol(parser.buffered > 0 ? 'the request stream ends inside a frame' : 'the request stream ended before its end record');
          frames.push(...parser.push(chunk));
        }
        const record = reader.open(frames.shift()!);
        idle.refresh();
        return record;
      }

      /** After the request's END: nothing may follow (stream.md §4), now or later. */
      function checkTail(): void {
        if (frames.length > 0 || parser.buffered > 0) throw protocol('bytes after the request end record');
        source.next().then(
          (chunk) => {
            if (chunk !== null) failRequestSide(protocol('bytes after the request end record'));
          },
          () => undefined,
        );
      }

      /** The request body for the app, one opened record at a time, pulled by undici as the app takes it. */
      async function* body(first: Uint8Array, declared: number | null): AsyncGenerator<Uint8Array> {
        try {
          let pending = first;
          let total = first.length;
          for (;;) {
            if (declared !== null && total > declared) throw protocol('a stream body longer than its content-length');
            if (declared !== null && total === declared) {
              // The app reads this record's last byte as the end of the body: it goes only after END.
              const last = await nextRecord();
              if (last.kind !== FRAME_KIND.END) throw protocol('a stream body longer than its content-length');
              checkTail();
              yield pending;
              return;
            }
            yield pending;
            const next = await nextRecord();
            if (next.kind === FRAME_KIND.END) {
              if (declared !== null) throw protocol('a stream body shorter than its content-length');
              checkTail();
              return;
            }
            if (next.kind !== FRAME_KIND.DATA) throw protocol('a request stream carries HEAD, DATA and END only');
            pending = next.plaintext;
            total += pending.length;
          }
        } catch (err) {
          failRequestSide(err);
          throw err;
        }
      }

      const handlers: StreamHandlers = {
        onHead(status, appHeaders) {
          if (finished) return;
          const head = encodeAppResponse({ status, headers: appHeaders, body: null });
          if (head.length > MAX_STREAM_CHUNK_BYTES) {
            // stream.md §5: a head is one record of at most 64 KiB.
            call?.abort(new Stopped('head too large'));
            madeUp({ status: 502, error: 'upstream_response_too_large' });
            return;
          }
          start();
          // The HEAD waits for the end of this tick: an app's first body chunk usually arrives in the
          // same read as its head (undici calls onData at once), and then both leave in one write, so the
          // client wakes once for its first byte rather than twice.
          res.cork();
          process.nextTick(() => res.uncork());
          send(writer.head(head));
        },
        onData(chunk) {
          if (finished) return;
          // The records' pieces (header, ciphertext, tag) go out unjoined, in one corked write: no buffer
          // of a whole record is made (each is one more 64 KiB of external memory for V8 to collect).
          const pieces = writer.dataPieces(chunk);
          if (res.destroyed) return;
          idle.refresh();
          res.cork();
          for (const piece of pieces) res.write(piece);
          res.uncork();
          // WRITE_AHEAD_BYTES (four records) may wait in the socket's buffer: Node reports "full" past
          // 16 KiB, less than one record, and pausing there would stall the stream on each round trip.
          if (res.writableLength < WRITE_AHEAD_BYTES || res.destroyed || draining) return;
          // The client is not taking records: stop reading the app until it does (the app's socket fills).
          // undici may still hand over what it had already read; it joins the same wait.
          draining = true;
          call?.pause();
          void progress(res, 'drain', sendTimeoutMs).then((outcome) => {
            draining = false;
            if (outcome === 'ready') call?.resume();
            else if (outcome === 'stalled') logger.info({ route: 'steve_stream', sendTimeoutMs }, 'client took no stream bytes in time; connection closed');
          });
        },
        onEnd() {
          if (finished) return;
          endWith(writer.end());
        },
        onError(answer: UpstreamAnswer, _reason, byCaller) {
          if (finished || byCaller) return;
          if (!started) madeUp({ status: answer.status, error: answer.error ?? 'upstream_unavailable' });
          else abortWith(answer.error === 'upstream_timeout' ? 'upstream_timeout' : 'upstream_aborted', _reason);
        },
      };

      /** The proxy's own answer as a whole stream: HEAD (status and `error`, as v2 seals one), then END. */
      function madeUp(answer: { status: number; error: NonNullable<UpstreamAnswer['error']> }): void {
        start();
        send(writer.head(encodeAppResponse({ status: answer.status, headers: [], body: null, error: answer.error })));
        endWith(writer.end());
      }

      // Before the app is called: the head, then the second record decides (stream.md §4).
      void (async () => {
        if (rest.length > 0) frames.push(...parser.push(rest));
        const head = await nextRecord();
        // Recorded only now that the head opened; accept re-checks, so a sequence taken meanwhile is 409.
        session.replay.accept(sequence);
        if (head.kind !== FRAME_KIND.HEAD) throw protocol('a stream starts with its head');
        const request = decodeAppRequest(head.plaintext);
        if (request.body !== null) throw protocol('a stream head carries no body');
        const declared = declaredLength(request);
        const second = await nextRecord();
        if (finished) return;
        // Used only now: a request goes to the app (session-table.ts).
        table.touch(session);
        if (second.kind === FRAME_KIND.END) {
          if (declared !== null && declared !== 0) throw protocol('a stream body shorter than its content-length');
          checkTail();
          call = upstream.stream(request, null, handlers, declared);
        } else if (second.kind === FRAME_KIND.DATA) {
          call = upstream.stream(request, body(second.plaintext, declared), handlers, declared);
        } else throw protocol('a request stream carries HEAD, DATA and END only');
      })().catch(failRequestSide);
    });
  }

  return {
    run,
    get open() {
      return openStreams.size;
    },
    carries(socket) {
      return typeof socket === 'object' && socket !== null && sockets.has(socket);
    },
    closeAll() {
      for (const stop of [...openStreams]) stop();
    },
  };
}
