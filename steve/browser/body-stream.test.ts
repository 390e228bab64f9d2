/**
 * passBody (body-stream.ts), the worker's hand-over of an answer's body to the page: chunk by chunk and
 * only on demand (no read-ahead, so nothing is held in the worker), a source error errors the page's
 * stream after exactly the chunks before it (never a short success) and is reported once, and the page's
 * cancel reaches the source.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { passBody } from './body-stream.js';

/** A source that yields `chunks`, then ends or errors with `failure`, and counts how often it was pulled. */
function source(chunks: Uint8Array[], failure?: Error): { body: ReadableStream<Uint8Array>; pulls(): number; cancelled(): unknown } {
  let pulls = 0;
  let cancelled: unknown = 'not cancelled';
  let at = 0;
  const body = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        pulls++;
        if (at < chunks.length) controller.enqueue(chunks[at++]!);
        else if (failure !== undefined) controller.error(failure);
        else controller.close();
      },
      cancel(reason) {
        cancelled = reason;
      },
    },
    { highWaterMark: 0 },
  );
  return { body, pulls: () => pulls, cancelled: () => cancelled };
}

/** Everything `body` delivers, then how it ended. */
async function drain(body: ReadableStream<Uint8Array>): Promise<{ chunks: Uint8Array[]; error: unknown }> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { chunks, error: null };
      chunks.push(value);
    }
  } catch (error) {
    return { chunks, error };
  }
}

const bytes = (...values: number[]) => new Uint8Array(values);

describe('passBody', () => {
  it('keeps a null body null', () => {
    expect(passBody(null, () => undefined)).toBeNull();
  });

  it('passes the same chunk objects in order and ends when the source ends, reporting nothing', async () => {
    const chunks = [bytes(1), bytes(2, 3), bytes(4, 5, 6)];
    const errors: unknown[] = [];
    const out = await drain(passBody(source(chunks).body, (error) => errors.push(error))!);
    expect(out.error).toBeNull();
    expect(out.chunks).toHaveLength(3);
    out.chunks.forEach((chunk, i) => expect(chunk).toBe(chunks[i])); // The same objects: nothing copied.
    expect(errors).toEqual([]);
  });

  it('reads the source only when the page asks: no chunk is taken ahead of the reader', async () => {
    const src = source([bytes(1), bytes(2), bytes(3), bytes(4)]);
    const reader = passBody(src.body, () => undefined)!.getReader();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(src.pulls()).toBe(0);
    expect((await reader.read()).value).toEqual(bytes(1));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(src.pulls()).toBe(1);
    expect((await reader.read()).value).toEqual(bytes(2));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(src.pulls()).toBe(2);
  });

  it('errors the page stream with the source error after the chunks before it, and reports it once', async () => {
    const failure = Object.assign(new Error('record did not open'), { code: 'STEVE_CLIENT_PROTOCOL' });
    const errors: unknown[] = [];
    const out = await drain(passBody(source([bytes(1), bytes(2)], failure).body, (error) => errors.push(error))!);
    expect(out.chunks).toEqual([bytes(1), bytes(2)]);
    expect(out.error).toBe(failure);
    expect(errors).toEqual([failure]);
  });

  it('cancels the source with the page\'s reason, and does not report a cancel as a failure', async () => {
    const src = source([bytes(1), bytes(2), bytes(3)]);
    const errors: unknown[] = [];
    const reader = passBody(src.body, (error) => errors.push(error))!.getReader();
    await reader.read();
    await reader.cancel('page closed');
    expect(src.cancelled()).toBe('page closed');
    expect(errors).toEqual([]);
  });

  it('delivers exactly the chunks before an error, for any chunks and any error position', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { maxLength: 20 }), fc.boolean(), async (chunks, fails) => {
        const failure = fails ? new Error('broke off') : undefined;
        const errors: unknown[] = [];
        const out = await drain(passBody(source(chunks, failure).body, (error) => errors.push(error))!);
        expect(out.chunks).toEqual(chunks);
        expect(out.error).toBe(failure ?? null);
        expect(errors).toEqual(failure === undefined ? [] : [failure]);
      }),
      { seed: 1515, numRuns: 200 },
    );
  });
});
