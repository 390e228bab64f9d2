/**
 * stream.ts (stream.md): the preamble; records bound to key, direction, kind, session, sequence and
 * index; the frame parser (lengths refused at the header, any chunking gives the same frames, arbitrary
 * bytes give frames or STEVE_PROTOCOL and never hold more than one frame); the reader's order rules; and
 * tampering with a sealed exchange: every flipped byte, dropped, duplicated, swapped or spliced record and
 * every truncation is refused, and what was delivered before is exactly the records that opened.
 * Property tests use fast-check with fixed seeds.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { code } from '../../test/steve-codes.js';
import { joinBytes } from './bytes.js';
import { DIRECTION, TAG_BYTES } from './constants.js';
import { nobleAesGcm } from './record.js';
import {
  FRAME_HEADER_BYTES,
  FRAME_KIND,
  MAX_STREAM_CHUNK_BYTES,
  MAX_STREAM_SEALED_BYTES,
  STREAM_PREAMBLE_BYTES,
  createFrameParser,
  createStreamReader,
  createStreamWriter,
  decodeStreamAbort,
  decodeStreamPreamble,
  encodeStreamAbort,
  encodeStreamPreamble,
  openStreamRecord,
  sealStreamRecord,
  type Frame,
  type OpenedRecord,
  type StreamRecordHeader,
  type StreamRecordTarget,
} from './stream.js';

const seq = (length: number, start: number): Uint8Array => Uint8Array.from({ length }, (_, i) => (start + i) & 0xff);
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const key = seq(32, 1);
const otherKey = seq(32, 2);
const sessionId = seq(16, 0x40);
const otherSession = seq(16, 0x41);
const target: StreamRecordTarget = { direction: DIRECTION.S2C, sessionId, sequence: 9 };
const SEED = 20261206;

const concat = joinBytes;

/** A response: HEAD, the chunks as DATA, END; returns its frames. */
function response(chunks: readonly Uint8Array[], over = target, k = key): Uint8Array[] {
  const writer = createStreamWriter(nobleAesGcm, k, over);
  return [writer.head(utf8('head')), ...chunks.flatMap((c) => writer.data(c)), writer.end()];
}

/**
 * Reads `wire` as a client would: parse, open in order, deliver DATA. Returns what was delivered and
 * how it ended (the code of the error, 'end' at END, 'truncated' when the bytes ran out before).
 */
function consume(wire: Uint8Array, k = key, over = target): { delivered: Uint8Array[]; outcome: string } {
  const parser = createFrameParser();
  const reader = createStreamReader(nobleAesGcm, k, over);
  const delivered: Uint8Array[] = [];
  try {
    for (const frame of parser.push(wire)) {
      const record = reader.open(frame);
      if (record.kind === FRAME_KIND.DATA) delivered.push(record.plaintext);
    }
    // An error after the frames it returned comes with the next push.
    parser.push(new Uint8Array(0));
  } catch (error) {
    return { delivered, outcome: code(() => { throw error; }) ?? 'unknown' };
  }
  return { delivered, outcome: reader.finished ? 'end' : 'truncated' };
}

describe('the preamble (stream.md §3)', () => {
  it('is STEVE-STREAM-V1\\0 || session_id || u64be(sequence), and reads back', () => {
    const bytes = encodeStreamPreamble(sessionId, 0x0102_0304_05);
    expect(bytes).toHaveLength(STREAM_PREAMBLE_BYTES);
    expect(new TextDecoder().decode(bytes.subarray(0, 16))).toBe('STEVE-STREAM-V1\0');
    expect(Array.from(bytes.subarray(32))).toEqual([0, 0, 0, 1, 2, 3, 4, 5]);
    expect(decodeStreamPreamble(bytes)).toEqual({ sessionId, sequence: 0x0102_0304_05 });
  });

  it('refuses a wrong magic, a short preamble, sequence 0 and sequences over 2^53 - 1', () => {
    const bytes = encodeStreamPreamble(sessionId, 1);
    const flipped = bytes.slice();
    flipped[3]! ^= 1;
    const zero = bytes.slice();
    zero[39] = 0;
    const huge = bytes.slice();
    huge[32] = 0xff;
    for (const bad of [flipped, bytes.subarray(0, 39), zero, huge]) expect(code(() => decodeStreamPreamble(bad))).toBe('STEVE_PROTOCOL');
    expect(code(() => encodeStreamPreamble(sessionId, 0))).toBe('STEVE_BAD_ARGUMENT');
  });
});

describe('records (stream.md §4)', () => {
  const header: StreamRecordHeader = { ...target, kind: FRAME_KIND.DATA, index: 3 };
  const frame = sealStreamRecord(nobleAesGcm, key, header, utf8('token'));

  it('a frame is kind || u32be(length) || ciphertext || tag, and opens only under its own header and key', () => {
    expect(frame[0]).toBe(FRAME_KIND.DATA);
    expect(new DataView(frame.buffer).getUint32(1)).toBe(5 + TAG_BYTES);
    const sealed = frame.subarray(FRAME_HEADER_BYTES);
    expect(new TextDecoder().decode(openStreamRecord(nobleAesGcm, key, header, sealed))).toBe('token');
    for (const other of [
      { ...header, index: 4 },
      { ...header, sequence: 10 },
      { ...header, kind: FRAME_KIND.HEAD },
      { ...header, kind: FRAME_KIND.END },
      { ...header, direction: DIRECTION.C2S },
      { ...header, sessionId: otherSession },
    ]) {
      expect(code(() => openStreamRecord(nobleAesGcm, key, other, sealed))).toBe('STEVE_DECRYPT');
    }
    expect(code(() => openStreamRecord(nobleAesGcm, otherKey, header, sealed))).toBe('STEVE_DECRYPT');
  });

  it('a record holds at most 64 KiB; the writer splits larger chunks', () => {
    expect(code(() => sealStreamRecord(nobleAesGcm, key, header, new Uint8Array(MAX_STREAM_CHUNK_BYTES + 1)))).toBe('STEVE_BAD_ARGUMENT');
    const writer = createStreamWriter(nobleAesGcm, key, target);
    writer.head(utf8('h'));
    const frames = writer.data(new Uint8Array(2 * MAX_STREAM_CHUNK_BYTES + 1));
    expect(frames.map((f) => f.length - FRAME_HEADER_BYTES - TAG_BYTES)).toEqual([MAX_STREAM_CHUNK_BYTES, MAX_STREAM_CHUNK_BYTES, 1]);
    expect(writer.data(new Uint8Array(0))).toEqual([]);
  });

  it('ABORT carries {"error": text}; anything else is refused', () => {
    expect(decodeStreamAbort(encodeStreamAbort('upstream_aborted'))).toBe('upstream_aborted');
    for (const bad of [Uint8Array.of(0xa0), Uint8Array.of(0x60), Uint8Array.of(0xa1, 0x65, ...utf8('error'), 0x01), Uint8Array.of(0xa1, 0x65, ...utf8('error'), 0x60), new Uint8Array(2000)]) {
      expect(code(() => decodeStreamAbort(bad))).toBe('STEVE_PROTOCOL');
    }
    const writer = createStreamWriter(nobleAesGcm, key, { ...target, direction: DIRECTION.C2S });
    writer.head(utf8('h'));
    expect(code(() => writer.abort('x'))).toBe('STEVE_BAD_ARGUMENT');
  });
});

describe('the frame parser', () => {
  it('refuses a length outside 16..65,552 or an unknown kind from the 5-byte header alone', () => {
    for (const header of [
      [2, 0, 0, 0, 15],
      [2, 0, 1, 0, MAX_STREAM_SEALED_BYTES - 0x1_0000 + 1],
      [2, 0xff, 0xff, 0xff, 0xff],
      [0, 0, 0, 0, 16],
      [5, 0, 0, 0, 16],
    ]) {
      const parser = createFrameParser();
      expect(code(() => parser.push(Uint8Array.from(header))), String(header)).toBe('STEVE_PROTOCOL');
      // Spent: later bytes are refused too.
      expect(code(() => parser.push(new Uint8Array(1)))).toBe('STEVE_PROTOCOL');
    }
    const largest = createFrameParser();
    expect(largest.push(Uint8Array.of(2, 0, 1, 0, 16))).toEqual([]);
    expect(largest.buffered).toBe(0);
  });

  it('any chunking of a stream gives the same frames', () => {
    const frames = response([utf8('one'), new Uint8Array(70_000).fill(7), utf8('three')]);
    const wire = concat(frames);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: wire.length }), { maxLength: 30 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const parser = createFrameParser();
        const got: Frame[] = [];
        let last = 0;
        for (const point of [...points, wire.length]) {
          got.push(...parser.push(wire.subarray(last, point)));
          last = point;
        }
        expect(got.map((f) => concat([Uint8Array.of(f.kind, 0, 0, 0, 0), f.sealed]).length)).toEqual(frames.map((f) => f.length));
        expect(parser.buffered).toBe(0);
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('arbitrary bytes give frames or STEVE_PROTOCOL, and never more than one frame held', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), (chunks) => {
        const parser = createFrameParser();
        for (const chunk of chunks) {
          try {
            for (const frame of parser.push(chunk)) {
              expect(frame.sealed.length).toBeGreaterThanOrEqual(TAG_BYTES);
              expect(frame.sealed.length).toBeLessThanOrEqual(MAX_STREAM_SEALED_BYTES);
            }
          } catch (error) {
            expect(code(() => { throw error; })).toBe('STEVE_PROTOCOL');
            return;
          }
          expect(parser.buffered).toBeLessThanOrEqual(MAX_STREAM_SEALED_BYTES);
        }
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});

describe('the reader: order rules and tampering (stream.md §4)', () => {
  const chunks = [utf8('alpha'), utf8('beta'), utf8('gamma')];
  const frames = response(chunks);
  const wire = concat(frames);
  /** What a reader delivers from the frames before `k` (those open), as the expected prefix. */
  const before = (k: number): Uint8Array[] => chunks.slice(0, Math.max(0, k - 1));

  it('reads the exchange whole: DATA in order, then END', () => {
    expect(consume(wire)).toEqual({ delivered: chunks, outcome: 'end' });
  });

  it('refuses a missing head, a second head, a record after END, an empty DATA and client ABORTs', () => {
    const writer = createStreamWriter(nobleAesGcm, key, target);
    const head = writer.head(utf8('h'));
    const data = writer.data(utf8('x'))[0]!;
    expect(consume(data).outcome).toBe('STEVE_PROTOCOL');
    expect(consume(concat([head, head])).outcome).toBe('STEVE_PROTOCOL');
    expect(consume(concat([...frames, frames[1]!])).outcome).toBe('STEVE_PROTOCOL');
    const empty = sealStreamRecord(nobleAesGcm, key, { ...target, kind: FRAME_KIND.DATA, index: 1 }, new Uint8Array(0));
    expect(consume(concat([head, empty])).outcome).toBe('STEVE_PROTOCOL');
    const c2s: StreamRecordTarget = { ...target, direction: DIRECTION.C2S };
    const abort = sealStreamRecord(nobleAesGcm, key, { ...c2s, kind: FRAME_KIND.ABORT, index: 1 }, encodeStreamAbort('x'));
    const c2sHead = sealStreamRecord(nobleAesGcm, key, { ...c2s, kind: FRAME_KIND.HEAD, index: 0 }, utf8('h'));
    expect(consume(concat([c2sHead, abort]), key, c2s).outcome).toBe('STEVE_PROTOCOL');
  });

  it('every flipped byte is refused, after delivering only the records before it', () => {
    let at = 0;
    const starts = frames.map((f) => {
      const start = at;
      at += f.length;
      return start;
    });
    for (let i = 0; i < wire.length; i++) {
      const damaged = wire.slice();
      damaged[i]! ^= 0x01;
      let k = 0;
      while (k + 1 < starts.length && starts[k + 1]! <= i) k++;
      const result = consume(damaged);
      expect(['STEVE_DECRYPT', 'STEVE_PROTOCOL', 'truncated'], `byte ${i}`).toContain(result.outcome);
      expect(result.delivered, `byte ${i}`).toEqual(before(k));
    }
  });

  it('every dropped, duplicated or swapped record and every truncation is refused', () => {
    for (let k = 0; k < frames.length; k++) {
      const dropped = consume(concat(frames.filter((_, i) => i !== k)));
      expect(dropped.outcome, `drop ${k}`).not.toBe('end');
      expect(dropped.delivered).toEqual(before(k));
      const duplicated = consume(concat([...frames.slice(0, k + 1), frames[k]!, ...frames.slice(k + 1)]));
      expect(duplicated.outcome, `duplicate ${k}`).not.toBe('end');
      if (k + 1 < frames.length) {
        const swapped = [...frames];
        [swapped[k], swapped[k + 1]] = [swapped[k + 1]!, swapped[k]!];
        const result = consume(concat(swapped));
        expect(result.outcome, `swap ${k}`).not.toBe('end');
        expect(result.delivered).toEqual(before(k));
      }
    }
    for (let cut = 0; cut < wire.length; cut++) {
      const result = consume(wire.subarray(0, cut));
      expect(result.outcome, `cut at ${cut}`).toBe('truncated');
    }
  });

  it('a record from another response, session, direction or key is refused in place of its twin', () => {
    const others: Array<[string, Uint8Array[]]> = [
      ['another sequence', response(chunks, { ...target, sequence: 10 })],
      ['another session', response(chunks, { ...target, sessionId: otherSession })],
      ['the other direction', response(chunks, { ...target, direction: DIRECTION.C2S })],
      ['another key', response(chunks, target, otherKey)],
    ];
    for (const [name, foreign] of others) {
      for (let k = 0; k < frames.length; k++) {
        const spliced = [...frames];
        spliced[k] = foreign[k]!;
        const result = consume(concat(spliced));
        expect(result.outcome, `${name} at ${k}`).toBe('STEVE_DECRYPT');
        expect(result.delivered).toEqual(before(k));
      }
    }
  });

  it('an ABORT ends the body as an abort, after the records before it', () => {
    const writer = createStreamWriter(nobleAesGcm, key, target);
    const wireAborted = concat([writer.head(utf8('h')), ...writer.data(utf8('part')), writer.abort('upstream_aborted')]);
    const reader = createStreamReader(nobleAesGcm, key, target);
    const opened: OpenedRecord[] = createFrameParser().push(wireAborted).map((f) => reader.open(f));
    expect(opened.at(-1)).toEqual({ kind: FRAME_KIND.ABORT, error: 'upstream_aborted' });
    expect(reader.finished).toBe(true);
  });
});
