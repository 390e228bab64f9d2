/**
 * readHead on in-memory streams: a head split at any points comes out whole and the bytes after it stay
 * in the stream, in order (fast-check over random splits); oversized, slow, truncated and bare-LF heads
 * each fail with their code; an abort rejects with its reason; nothing is left listening.
 */

import { once } from 'node:events';
import { PassThrough } from 'node:stream';

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { readHead } from './read-head.js';

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

/** Feeds `chunks` into a fresh stream, one per tick, optionally ending it. */
function streamOf(chunks: readonly Uint8Array[], end = false): PassThrough {
  const stream = new PassThrough();
  void (async () => {
    for (const chunk of chunks) {
      stream.write(chunk);
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (end) stream.end();
  })();
  return stream;
}

async function rest(stream: PassThrough): Promise<string> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.resume();
  await once(stream, 'end');
  return Buffer.concat(chunks).toString('latin1');
}

function splitAt(data: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (data.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let start = 0;
  for (const point of points) {
    if (point > start) pieces.push(data.subarray(start, point));
    start = Math.max(start, point);
  }
  pieces.push(data.subarray(start));
  return pieces.filter((piece) => piece.length > 0);
}

describe('readHead', () => {
  it('returns the head and leaves what follows in the stream, however it is split', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { maxLength: 8 }), fc.string({ maxLength: 40 }), async (cuts, tail) => {
        const head = 'CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n';
        const stream = streamOf(splitAt(bytes(head + tail), cuts), true);
        const got = await readHead(stream, { maxBytes: 8192, timeoutMs: 5_000 });
        expect(Buffer.from(got).toString('latin1')).toBe(head);
        expect(stream.listenerCount('data')).toBe(0);
        expect(await rest(stream)).toBe(tail);
      }),
      { seed: 23, numRuns: 200 },
    );
  });

  it('fails with BRIDGE_HEAD_TOO_LARGE when no head ends within maxBytes', async () => {
    const stream = streamOf([bytes('CONNECT a.example:443 HTTP/1.1\r\n'), bytes('X: '.padEnd(100, 'a'))]);
    await expect(readHead(stream, { maxBytes: 64, timeoutMs: 5_000 })).rejects.toMatchObject({ code: 'BRIDGE_HEAD_TOO_LARGE' });
  });

  it('takes a head of exactly maxBytes', async () => {
    const head = 'CONNECT a.example:443 HTTP/1.1\r\n\r\n';
    const got = await readHead(streamOf([bytes(head), bytes('after')]), { maxBytes: head.length, timeoutMs: 5_000 });
    expect(Buffer.from(got).toString('latin1')).toBe(head);
  });

  it('fails with BRIDGE_HEAD_TIMEOUT when the head is slow', async () => {
    await expect(readHead(streamOf([bytes('CONNECT a.example:443 HTTP/1.1\r\n')]), { maxBytes: 8192, timeoutMs: 50 })).rejects.toMatchObject({
      code: 'BRIDGE_HEAD_TIMEOUT',
    });
  });

  it('fails with BRIDGE_HEAD_MALFORMED at a bare LF, without waiting', async () => {
    await expect(readHead(streamOf([bytes('CONNECT a.example:443 HTTP/1.1\n')]), { maxBytes: 8192, timeoutMs: 60_000 })).rejects.toMatchObject({
      code: 'BRIDGE_HEAD_MALFORMED',
    });
  });

  it('tells a truncated head from a silent peer', async () => {
    await expect(readHead(streamOf([bytes('CONNECT a')], true), { maxBytes: 8192, timeoutMs: 5_000 })).rejects.toMatchObject({ code: 'BRIDGE_HEAD_MALFORMED' });
    await expect(readHead(streamOf([], true), { maxBytes: 8192, timeoutMs: 5_000 })).rejects.toMatchObject({ code: 'BRIDGE_PEER_CLOSED' });
  });

  it('rejects with the abort reason', async () => {
    const controller = new AbortController();
    const reading = readHead(streamOf([bytes('CONNECT')]), { maxBytes: 8192, timeoutMs: 5_000, signal: controller.signal });
    controller.abort(new Error('stop'));
    await expect(reading).rejects.toThrow('stop');
  });
});
