/**
 * STEVE streams, extension `stream-1` (ours; the spec is stream.md beside this file): one HTTP exchange
 * as a head record, body records of at most 64 KiB and an explicit end, each sealed on its own under the
 * session's stream key with its sequence and index in the nonce and its kind in the AAD.
 *
 * What is here: the constants, the 40-byte preamble, the nonce and AAD, sealing and opening one record,
 * `createFrameParser` (bytes off the wire -> frames, with every length checked before the frame's bytes
 * are waited for), `createStreamReader` (the order rules: HEAD, DATA*, then END or ABORT, then nothing)
 * and `createStreamWriter` (the sender's counter). The heads' plaintexts are the §3 application maps with
 * a null body, read and written by application.ts. Pure and browser-safe: no I/O, the AEAD passed in.
 */

import { decodeCbor, encodeCbor, CborError } from '../../cbor/index.js';
import { SteveError } from '../errors.js';
import { assertBytes, writeU64 } from './bytes.js';
import { DIRECTION, MAX_SEQUENCE, RECORD_NONCE_BYTES, SEQUENCE_BYTES, SESSION_ID_BYTES, TAG_BYTES, type Direction } from './constants.js';
import type { Aead } from './record.js';
import { readSequence } from './sequence.js';

/** The name a server lists in its binding's `extensions` (stream.md §1). */
export const STREAM_EXTENSION = 'stream-1';
export const STREAM_PATH = '/e2p/v2/stream';
export const STREAM_MEDIA_TYPE = 'application/steve-stream';
/** ASCII `STEVE-STREAM-V1` followed by one 0x00 byte (stream.md §3). */
const STREAM_MAGIC_BYTES = Uint8Array.from([...'STEVE-STREAM-V1'].map((c) => c.charCodeAt(0)).concat(0));
export const STREAM_MAGIC_LENGTH = 16;
/** STREAM_MAGIC(16) || session_id(16) || u64be(sequence)(8) (stream.md §3). */
export const STREAM_PREAMBLE_BYTES = STREAM_MAGIC_LENGTH + SESSION_ID_BYTES + SEQUENCE_BYTES;
/** kind(1) || u32be(length)(4) (stream.md §3). */
export const FRAME_HEADER_BYTES = 5;
/** Plaintext bytes in one record, a head's CBOR included (stream.md §5). */
export const MAX_STREAM_CHUNK_BYTES = 65_536;
/** The largest `length` a frame may declare: a full chunk and its tag. */
export const MAX_STREAM_SEALED_BYTES = MAX_STREAM_CHUNK_BYTES + TAG_BYTES;
/** The index is a u32 in the nonce and the AAD (stream.md §4). */
export const MAX_STREAM_INDEX = 0xffff_ffff;
/** STREAM_MAGIC(16) || direction(1) || kind(1) || session_id(16) || u64be(sequence)(8) || u32be(index)(4) (stream.md §4). */
export const STREAM_AAD_BYTES = STREAM_MAGIC_LENGTH + 1 + 1 + SESSION_ID_BYTES + SEQUENCE_BYTES + 4;
/** Streams one session may have open at once (stream.md §5). */
export const MAX_STREAMS_PER_SESSION = 16;
/** Ours: an ABORT's `{"error": text}` map; codes are a few words, 1 KiB is plenty. */
const MAX_ABORT_BYTES = 1_024;
/** Ours: names in the binding's `extensions` (stream.md §1). */
export const MAX_EXTENSIONS = 8;
export const EXTENSION_NAME_RE = /^[a-z0-9-]{1,32}$/;

export const FRAME_KIND = Object.freeze({ HEAD: 1, DATA: 2, END: 3, ABORT: 4 } as const);
export type FrameKind = (typeof FRAME_KIND)[keyof typeof FRAME_KIND];

/** A fresh copy of STREAM_MAGIC. */
export function streamMagic(): Uint8Array {
  return STREAM_MAGIC_BYTES.slice();
}

function protocol(message: string, cause?: unknown): SteveError {
  return new SteveError('STEVE_PROTOCOL', message, cause === undefined ? undefined : { cause });
}

function isKind(value: unknown): value is FrameKind {
  return value === 1 || value === 2 || value === 3 || value === 4;
}

function assertHeader(header: StreamRecordHeader): void {
  if (header.direction !== DIRECTION.C2S && header.direction !== DIRECTION.S2C) throw new SteveError('STEVE_BAD_ARGUMENT', '"direction" must be 0 or 1');
  if (!isKind(header.kind)) throw new SteveError('STEVE_BAD_ARGUMENT', '"kind" must be 1..4');
  assertBytes(header.sessionId, 'sessionId', SESSION_ID_BYTES);
  if (!Number.isSafeInteger(header.sequence) || header.sequence < 1 || header.sequence > MAX_SEQUENCE) throw new SteveError('STEVE_BAD_ARGUMENT', '"sequence" expected an application sequence');
  if (!Number.isInteger(header.index) || header.index < 0 || header.index > MAX_STREAM_INDEX) throw new SteveError('STEVE_BAD_ARGUMENT', '"index" expected 0..2^32-1');
}

function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = (value >>> 16) & 0xff;
  out[at + 2] = (value >>> 8) & 0xff;
  out[at + 3] = value & 0xff;
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

// ---------------------------------------------------------------------------------------------------
// Preamble (stream.md §3)

export function encodeStreamPreamble(sessionId: Uint8Array, sequence: number): Uint8Array {
  assertBytes(sessionId, 'sessionId', SESSION_ID_BYTES);
  if (!Number.isSafeInteger(sequence) || sequence < 1 || sequence > MAX_SEQUENCE) throw new SteveError('STEVE_BAD_ARGUMENT', '"sequence" expected an application sequence');
  const out = new Uint8Array(STREAM_PREAMBLE_BYTES);
  out.set(STREAM_MAGIC_BYTES, 0);
  out.set(sessionId, STREAM_MAGIC_LENGTH);
  writeU64(out, STREAM_MAGIC_LENGTH + SESSION_ID_BYTES, sequence);
  return out;
}

/**
 * Reads the first STREAM_PREAMBLE_BYTES of `bytes` (more may follow: the frames). STEVE_PROTOCOL for a
 * wrong magic, or a sequence of 0 (§7: only for confirmation) or above 2^53 - 1.
 */
export function decodeStreamPreamble(bytes: Uint8Array): { sessionId: Uint8Array; sequence: number } {
  assertBytes(bytes, 'preamble');
  if (bytes.length < STREAM_PREAMBLE_BYTES) throw protocol(`a stream preamble is ${STREAM_PREAMBLE_BYTES} bytes`);
  for (let i = 0; i < STREAM_MAGIC_LENGTH; i++) if (bytes[i] !== STREAM_MAGIC_BYTES[i]) throw protocol('not a stream preamble');
  const sequence = readSequence(bytes, STREAM_MAGIC_LENGTH + SESSION_ID_BYTES);
  if (sequence === null || sequence < 1) throw protocol('a stream needs an application sequence (1..2^53-1)');
  return { sessionId: bytes.slice(STREAM_MAGIC_LENGTH, STREAM_MAGIC_LENGTH + SESSION_ID_BYTES), sequence };
}

// ---------------------------------------------------------------------------------------------------
// Records (stream.md §4)

/** Which record this is: what the nonce and AAD bind. */
export interface StreamRecordHeader {
  direction: Direction;
  kind: FrameKind;
  sessionId: Uint8Array;
  sequence: number;
  index: number;
}

/** u64be(sequence) || u32be(index). */
export function streamNonce(sequence: number, index: number): Uint8Array {
  const nonce = new Uint8Array(RECORD_NONCE_BYTES);
  writeU64(nonce, 0, sequence);
  writeU32(nonce, SEQUENCE_BYTES, index);
  return nonce;
}

export function streamAad(header: StreamRecordHeader): Uint8Array {
  assertHeader(header);
  const aad = new Uint8Array(STREAM_AAD_BYTES);
  aad.set(STREAM_MAGIC_BYTES, 0);
  let at = STREAM_MAGIC_LENGTH;
  aad[at++] = header.direction;
  aad[at++] = header.kind;
  aad.set(header.sessionId, at);
  at += SESSION_ID_BYTES;
  writeU64(aad, at, header.sequence);
  writeU32(aad, at + SEQUENCE_BYTES, header.index);
  return aad;
}

/** What sealing a record needs: its AAD, nonce and 5-byte frame header, the plaintext's size checked. */
function recordInputs(header: StreamRecordHeader, plaintext: Uint8Array): { aad: Uint8Array; nonce: Uint8Array; frameHeader: Uint8Array } {
  const aad = streamAad(header);
  assertBytes(plaintext, 'plaintext');
  if (plaintext.length > MAX_STREAM_CHUNK_BYTES) throw new SteveError('STEVE_BAD_ARGUMENT', `a stream record holds at most ${MAX_STREAM_CHUNK_BYTES} bytes`);
  const frameHeader = new Uint8Array(FRAME_HEADER_BYTES);
  frameHeader[0] = header.kind;
  writeU32(frameHeader, 1, plaintext.length + TAG_BYTES);
  return { aad, nonce: streamNonce(header.sequence, header.index), frameHeader };
}

/** The whole frame: kind || u32be(length) || AES-256-GCM(key, nonce, AAD, plaintext) || tag. */
export function sealStreamRecord(aead: Aead, key: Uint8Array, header: StreamRecordHeader, plaintext: Uint8Array): Uint8Array {
  const { aad, nonce, frameHeader } = recordInputs(header, plaintext);
  if (aead.sealPrefixed !== undefined) return aead.sealPrefixed(key, nonce, aad, plaintext, frameHeader);
  const sealed = aead.seal(key, nonce, aad, plaintext);
  const frame = new Uint8Array(FRAME_HEADER_BYTES + sealed.length);
  frame.set(frameHeader, 0);
  frame.set(sealed, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * The same frame as sealStreamRecord, as pieces to write one after another: the 5-byte header, then the
 * AEAD's ciphertext pieces and tag when it can give them unjoined (Aead.sealPieces), else the sealed record.
 */
export function sealStreamRecordPieces(aead: Aead, key: Uint8Array, header: StreamRecordHeader, plaintext: Uint8Array): Uint8Array[] {
  if (aead.sealPieces === undefined) return [sealStreamRecord(aead, key, header, plaintext)];
  const { aad, nonce, frameHeader } = recordInputs(header, plaintext);
  return [frameHeader, ...aead.sealPieces(key, nonce, aad, plaintext)];
}

/** The plaintext of a record; STEVE_DECRYPT when it does not open (never a partial plaintext). */
export function openStreamRecord(aead: Aead, key: Uint8Array, header: StreamRecordHeader, sealed: Uint8Array): Uint8Array {
  const aad = streamAad(header);
  assertBytes(sealed, 'sealed');
  const plaintext = aead.open(key, streamNonce(header.sequence, header.index), aad, sealed);
  if (plaintext === null) throw new SteveError('STEVE_DECRYPT', 'stream record did not open');
  return plaintext;
}

// ---------------------------------------------------------------------------------------------------
// Frames off the wire

export interface Frame {
  kind: FrameKind;
  /** ciphertext || tag, not yet opened. */
  sealed: Uint8Array;
}

export interface FrameParser {
  /** Takes the next bytes off the wire; returns the frames they completed, in order (see the error rule below). */
  push(chunk: Uint8Array): Frame[];
  /** Bytes held for a frame not yet complete (at most one frame's). */
  readonly buffered: number;
}

/**
 * Splits a byte stream into frames. Each frame's kind and declared length are checked as soon as its
 * 5-byte header is in (STEVE_PROTOCOL: an unknown kind, a length under the tag or over
 * MAX_STREAM_SEALED_BYTES), before any of its body is waited for, so the parser holds at most one frame.
 * After an error the parser is spent: a push returns the frames it completed before the error (if any)
 * and every later push, an empty one included, throws it.
 */
export function createFrameParser(): FrameParser {
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  let headerFilled = 0;
  let body: Uint8Array | null = null;
  let bodyFilled = 0;
  let kind: FrameKind = FRAME_KIND.HEAD;
  let failed: SteveError | null = null;

  function push(chunk: Uint8Array): Frame[] {
    if (failed !== null) throw failed;
    assertBytes(chunk, 'chunk');
    const frames: Frame[] = [];
    let at = 0;
    try {
      while (at < chunk.length) {
        if (body === null) {
          const take = Math.min(FRAME_HEADER_BYTES - headerFilled, chunk.length - at);
          header.set(chunk.subarray(at, at + take), headerFilled);
          headerFilled += take;
          at += take;
          if (headerFilled < FRAME_HEADER_BYTES) break;
          const k = header[0];
          if (!isKind(k)) throw protocol(`unknown stream frame kind ${String(k)}`);
          const length = readU32(header, 1);
          if (length < TAG_BYTES || length > MAX_STREAM_SEALED_BYTES) throw protocol(`a stream frame of ${length} bytes is outside ${TAG_BYTES}..${MAX_STREAM_SEALED_BYTES}`);
          kind = k;
          body = new Uint8Array(length);
          bodyFilled = 0;
          headerFilled = 0;
        }
        const take = Math.min(body.length - bodyFilled, chunk.length - at);
        body.set(chunk.subarray(at, at + take), bodyFilled);
        bodyFilled += take;
        at += take;
        if (bodyFilled === body.length) {
          frames.push({ kind, sealed: body });
          body = null;
        }
      }
    } catch (error) {
      failed = error as SteveError;
      // The frames completed before the bad header are still good; the error comes with the next push.
      if (frames.length > 0) return frames;
      throw error;
    }
    return frames;
  }

  return {
    push,
    get buffered() {
      return body === null ? headerFilled : bodyFilled;
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Order rules (stream.md §4)

export interface StreamRecordTarget {
  direction: Direction;
  sessionId: Uint8Array;
  sequence: number;
}

export type OpenedRecord =
  | { kind: typeof FRAME_KIND.HEAD; plaintext: Uint8Array }
  | { kind: typeof FRAME_KIND.DATA; plaintext: Uint8Array }
  | { kind: typeof FRAME_KIND.END }
  | { kind: typeof FRAME_KIND.ABORT; error: string };

export interface StreamReader {
  /** Opens the next frame of this direction; throws STEVE_PROTOCOL (order, shape) or STEVE_DECRYPT. */
  open(frame: Frame): OpenedRecord;
  /** An END or ABORT has opened: nothing may follow. */
  readonly finished: boolean;
  /** Records opened so far (the next index). */
  readonly index: number;
}

/**
 * The receiving side of one direction of one exchange: HEAD at index 0, then DATA (1..64 KiB each), then
 * one END (empty) or, server to client only, one ABORT; nothing after. The kind and order are checked
 * before the record is opened; after any error the reader is spent.
 */
export function createStreamReader(aead: Aead, key: Uint8Array, target: StreamRecordTarget): StreamReader {
  assertBytes(key, 'key', 32, 'STEVE_KEY');
  let index = 0;
  let finished = false;
  let failed: unknown = null;

  function open(frame: Frame): OpenedRecord {
    if (failed !== null) throw failed;
    try {
      if (finished) throw protocol('a stream record after the last one');
      const { kind } = frame;
      if (index === 0 ? kind !== FRAME_KIND.HEAD : kind === FRAME_KIND.HEAD) throw protocol(index === 0 ? 'a stream starts with its head' : 'a second stream head');
      if (kind === FRAME_KIND.ABORT && target.direction !== DIRECTION.S2C) throw protocol('only the server aborts a stream');
      if (index > MAX_STREAM_INDEX) throw protocol('a stream of more than 2^32 records');
      const plaintext = openStreamRecord(aead, key, { ...target, kind, index }, frame.sealed);
      index++;
      switch (kind) {
        case FRAME_KIND.HEAD:
          return { kind, plaintext };
        case FRAME_KIND.DATA:
          if (plaintext.length === 0) throw protocol('an empty stream data record');
          return { kind, plaintext };
        case FRAME_KIND.END:
          if (plaintext.length !== 0) throw protocol('a stream end record carries nothing');
          finished = true;
          return { kind };
        default:
          finished = true;
          return { kind: FRAME_KIND.ABORT, error: decodeStreamAbort(plaintext) };
      }
    } catch (error) {
      failed = error;
      throw error;
    }
  }

  return {
    open,
    get finished() {
      return finished;
    },
    get index() {
      return index;
    },
  };
}

export interface StreamWriter {
  /** The head record (index 0): the §3 application request or response map with a null body. */
  head(plaintext: Uint8Array): Uint8Array;
  /** Body bytes as DATA frames of at most 64 KiB each (none for an empty chunk). */
  data(chunk: Uint8Array): Uint8Array[];
  /** The same DATA frames as data(), as pieces to write in order (sealStreamRecordPieces): no frame is joined. */
  dataPieces(chunk: Uint8Array): Uint8Array[];
  end(): Uint8Array;
  /** Server to client only: the body is not complete. */
  abort(error: string): Uint8Array;
  readonly finished: boolean;
  readonly index: number;
}

/** The sending side of one direction of one exchange: numbers the records and refuses a wrong order. */
export function createStreamWriter(aead: Aead, key: Uint8Array, target: StreamRecordTarget): StreamWriter {
  assertBytes(key, 'key', 32, 'STEVE_KEY');
  let index = 0;
  let finished = false;

  function next(kind: FrameKind): StreamRecordHeader {
    if (finished) throw new SteveError('STEVE_BAD_ARGUMENT', 'the stream has ended');
    if (index === 0 ? kind !== FRAME_KIND.HEAD : kind === FRAME_KIND.HEAD) throw new SteveError('STEVE_BAD_ARGUMENT', 'the head comes first, once');
    if (index > MAX_STREAM_INDEX) throw new SteveError('STEVE_TOO_LARGE', 'a stream of more than 2^32 records');
    return { ...target, kind, index };
  }

  /** Numbers the record once it is sealed (a throw leaves the index where it was). */
  function sealed<T>(kind: FrameKind, frame: T): T {
    index++;
    if (kind === FRAME_KIND.END || kind === FRAME_KIND.ABORT) finished = true;
    return frame;
  }

  function seal(kind: FrameKind, plaintext: Uint8Array): Uint8Array {
    return sealed(kind, sealStreamRecord(aead, key, next(kind), plaintext));
  }

  /** `chunk` as DATA records of at most 64 KiB each, each sealed by `sealOne` (joined or in pieces). */
  function dataFrames<T>(chunk: Uint8Array, sealOne: (aead: Aead, key: Uint8Array, header: StreamRecordHeader, plaintext: Uint8Array) => T): T[] {
    assertBytes(chunk, 'chunk');
    const frames: T[] = [];
    for (let at = 0; at < chunk.length; at += MAX_STREAM_CHUNK_BYTES) {
      const plaintext = chunk.subarray(at, Math.min(chunk.length, at + MAX_STREAM_CHUNK_BYTES));
      frames.push(sealed(FRAME_KIND.DATA, sealOne(aead, key, next(FRAME_KIND.DATA), plaintext)));
    }
    return frames;
  }

  return {
    head: (plaintext) => seal(FRAME_KIND.HEAD, plaintext),
    data: (chunk) => dataFrames(chunk, sealStreamRecord),
    dataPieces: (chunk) => dataFrames(chunk, sealStreamRecordPieces).flat(),
    end: () => seal(FRAME_KIND.END, new Uint8Array(0)),
    abort(error) {
      if (target.direction !== DIRECTION.S2C) throw new SteveError('STEVE_BAD_ARGUMENT', 'only the server aborts a stream');
      return seal(FRAME_KIND.ABORT, encodeStreamAbort(error));
    },
    get finished() {
      return finished;
    },
    get index() {
      return index;
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// ABORT plaintext: {"error": text}

export function encodeStreamAbort(error: string): Uint8Array {
  if (typeof error !== 'string' || error.length === 0 || error.length > 256) throw new SteveError('STEVE_BAD_ARGUMENT', '"error" expected 1..256 characters');
  return encodeCbor(new Map([['error', error]]));
}

export function decodeStreamAbort(plaintext: Uint8Array): string {
  if (plaintext.length > MAX_ABORT_BYTES) throw protocol('a stream abort record is too long');
  let value: unknown;
  try {
    value = decodeCbor(plaintext, { canonical: true, allowIndefinite: false, maxDepth: 2, maxItems: 3 });
  } catch (error) {
    if (error instanceof CborError) throw protocol(`stream abort: ${error.code}`, error);
    throw error;
  }
  if (!(value instanceof Map) || value.size !== 1 || typeof value.get('error') !== 'string' || (value.get('error') as string).length === 0) {
    throw protocol('a stream abort record is {"error": text}');
  }
  return value.get('error') as string;
}
