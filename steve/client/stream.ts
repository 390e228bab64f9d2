/**
 * The client's half of our stream extension `stream-1` (../protocol/stream.md): the request body as it
 * goes on the wire (preamble, HEAD, DATA records of at most 64 KiB, END), either framed at once for known
 * bytes or framed chunk by chunk as a ReadableStream source is pulled; and the answer read record by
 * record (`createRecordReader`), each frame's length checked before its bytes are waited for and each
 * record opened before a byte of it is handed on. Nothing here buffers more than the frame being read
 * and the frames of the one network chunk that completed it.
 *
 * Errors come out as SteveClientError: STEVE_CLIENT_PROTOCOL for anything the server's records got wrong
 * (the caller ends the session), STEVE_CLIENT_TRUNCATED for a body that ends before its END record, and
 * whatever the caller's `readFailure` makes of a failed read. Web-standard only.
 */

import {
  DIRECTION,
  FRAME_KIND,
  createFrameParser,
  createStreamReader,
  joinBytes,
  type Aead,
  type Frame,
  type OpenedRecord,
  type StreamWriter,
} from '../protocol/index.js';
import { SteveError } from '../errors.js';
import { SteveClientError } from './errors.js';

/** The whole request body for a body known up front: preamble, HEAD, DATA..., END (stream.md §3-§4). */
export function frameRequest(preamble: Uint8Array, writer: StreamWriter, head: Uint8Array, body: Uint8Array | null): Uint8Array {
  return joinBytes([preamble, writer.head(head), ...(body === null ? [] : writer.data(body)), writer.end()]);
}

/** What a streamed upload has done so far (for the receipt), and why it failed, if it did. */
export interface UploadProgress {
  /** Preamble and frame bytes handed to fetch. */
  wireBytes: number;
  /** Plaintext body bytes framed. */
  bodyBytes: number;
  /** The source failed or gave something other than Uint8Array chunks: the request is not complete. */
  failure: SteveClientError | undefined;
}

/**
 * The request body as a pull-based ReadableStream: the preamble and HEAD first, then one source chunk
 * framed per pull (at most 64 KiB per DATA record), END once the source is done. A source that fails ends
 * this stream with an error before END, so the server never sees a complete request (stream.md §4).
 */
export function streamRequest(preamble: Uint8Array, writer: StreamWriter, head: Uint8Array, source: ReadableStream<Uint8Array>, progress: UploadProgress): ReadableStream<Uint8Array> {
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const fail = (message: string, cause?: unknown): SteveClientError => {
    progress.failure ??= new SteveClientError('STEVE_CLIENT_BAD_REQUEST', 'request', message, cause === undefined ? {} : { cause });
    return progress.failure;
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (reader === undefined) {
          reader = source.getReader();
          const first = joinBytes([preamble, writer.head(head)]);
          progress.wireBytes += first.length;
          controller.enqueue(first);
          return;
        }
        for (;;) {
          let next: ReadableStreamReadResult<Uint8Array>;
          try {
            next = await reader.read();
          } catch (error) {
            controller.error(fail('the request body stream failed', error));
            return;
          }
          if (next.done) {
            const end = writer.end();
            progress.wireBytes += end.length;
            controller.enqueue(end);
            controller.close();
            return;
          }
          if (!(next.value instanceof Uint8Array)) {
            reader.cancel().catch(() => undefined);
            controller.error(fail('the request body stream gave a chunk that is not a Uint8Array'));
            return;
          }
          if (next.value.length === 0) continue;
          const frames = writer.data(next.value);
          progress.bodyBytes += next.value.length;
          for (const frame of frames) {
            progress.wireBytes += frame.length;
            controller.enqueue(frame);
          }
          return;
        }
      },
      async cancel(reason) {
        await (reader ?? source).cancel(reason).catch(() => undefined);
      },
    },
    { highWaterMark: 0 },
  );
}

/** The answer of one stream, one record at a time. */
export interface RecordReader {
  /** The next record that opened (HEAD first, then DATA*, then END or ABORT; the order is checked). */
  next(): Promise<OpenedRecord>;
  /** After END: the body must end here; a byte more is STEVE_CLIENT_PROTOCOL. */
  expectEnd(): Promise<void>;
  /** Bytes read off the wire so far. */
  readonly wireBytes: number;
  /** Stops reading: cancels the body; the pending and every later call rejects with `error`. */
  stop(error: SteveClientError): void;
  /** What a failed read of the body becomes (network error before the head, truncation after it). */
  readFailure: (error: unknown) => SteveClientError;
}

export interface RecordTarget {
  sessionId: Uint8Array;
  sequence: number;
  /** For messages: `METHOD /path`. */
  what: string;
}

export function createRecordReader(body: ReadableStream<Uint8Array> | null, aead: Aead, key: Uint8Array, target: RecordTarget): RecordReader {
  const parser = createFrameParser();
  const records = createStreamReader(aead, key, { direction: DIRECTION.S2C, sessionId: target.sessionId, sequence: target.sequence });
  const reader = body?.getReader();
  const frames: Frame[] = [];
  let wireBytes = 0;
  let ended = false;
  let stopped: SteveClientError | undefined;
  let stopRejection!: (error: unknown) => void;
  const stopPromise = new Promise<never>((_resolve, reject) => (stopRejection = reject));
  stopPromise.catch(() => undefined);

  const protocol = (message: string, cause?: unknown): SteveClientError => {
    const detail = cause instanceof SteveError ? `${cause.code}: ${cause.message}` : message;
    return new SteveClientError('STEVE_CLIENT_PROTOCOL', 'request', `${target.what}: stream: ${detail}`, cause === undefined ? {} : { cause });
  };

  const self: RecordReader = {
    readFailure: (error) => new SteveClientError('STEVE_CLIENT_TRUNCATED', 'request', `${target.what}: the stream broke off before its END record`, { cause: error }),
    get wireBytes() {
      return wireBytes;
    },
    stop(error) {
      if (stopped !== undefined) return;
      stopped = error;
      stopRejection(error);
      reader?.cancel().catch(() => undefined);
    },
    async next() {
      for (;;) {
        if (stopped !== undefined) throw stopped;
        const frame = frames.shift();
        if (frame !== undefined) {
          try {
            return records.open(frame);
          } catch (error) {
            throw protocol('a record did not open', error);
          }
        }
        if (ended) {
          throw new SteveClientError('STEVE_CLIENT_TRUNCATED', 'request', `${target.what}: the stream ended ${parser.buffered > 0 ? 'inside a record' : 'between records'}, before its END record`);
        }
        const chunk = await read();
        if (chunk === null) {
          ended = true;
          continue;
        }
        try {
          frames.push(...parser.push(chunk));
        } catch (error) {
          throw protocol('a frame is malformed', error);
        }
      }
    },
    async expectEnd() {
      if (!records.finished || records.index === 0) throw protocol('expectEnd before the END record');
      if (frames.length > 0 || parser.buffered > 0) throw protocol('bytes after the END record');
      while (!ended) {
        const chunk = await read();
        if (chunk === null) ended = true;
        else if (chunk.length > 0) throw protocol('bytes after the END record');
      }
    },
  };

  /** One chunk off the body, null at its end; the stop and the read race, so a stop is never waited out. */
  async function read(): Promise<Uint8Array | null> {
    if (stopped !== undefined) throw stopped;
    if (reader === undefined) return null;
    let result: ReadableStreamReadResult<Uint8Array>;
    try {
      result = await Promise.race([reader.read(), stopPromise]);
    } catch (error) {
      if (stopped !== undefined) throw stopped;
      throw self.readFailure(error);
    }
    if (stopped !== undefined) throw stopped;
    if (result.done) return null;
    if (!(result.value instanceof Uint8Array)) throw protocol('the body gave something other than bytes');
    wireBytes += result.value.length;
    return result.value;
  }

  return self;
}

/** An opened record that must be the head (the reader refuses anything else at index 0). */
export function headPlaintext(record: OpenedRecord): Uint8Array {
  if (record.kind !== FRAME_KIND.HEAD) throw new SteveClientError('STEVE_CLIENT_PROTOCOL', 'request', 'stream: the first record is not the head');
  return record.plaintext;
}
