/**
 * The client's stream-1 (../protocol/stream.md) against the fake server (test/steve-client-fixtures.ts,
 * whose binding lists the extension when asked to): which path a request takes (no stream-1 in the
 * binding, `streaming: false`, `stream: false` keep /e2p/v2/request byte for byte), the request frames on
 * the wire for bytes and stream bodies, the answer as a pull-based body, and the attacks: every byte
 * flipped, every record dropped, duplicated, swapped with its neighbour or replaced by one of another
 * response or session, the body cut at every byte. Each gives a coded error after exactly the plaintexts
 * of the records that opened before the damaged one: never an unauthenticated byte, never a short success.
 */

import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { createFakeServer, createMockAttester, createTestClient, type FakeServer, type MockAttester, type StreamAnswer } from '../../test/steve-client-fixtures.js';
import {
  joinBytes,
  DIRECTION,
  FRAME_KIND,
  STREAM_PREAMBLE_BYTES,
  createFrameParser,
  createStreamReader,
  decodeAppRequest,
  decodeEnvelope,
  decodeStreamPreamble,
  nobleAesGcm,
  type SessionKeys,
} from '../protocol/index.js';
import { SteveClientError, type SteveClient, type SteveClientErrorCode } from './index.js';

let attester: MockAttester;
beforeAll(() => {
  attester = createMockAttester();
});

const text = (value: string): Uint8Array => new TextEncoder().encode(value);
const concat = joinBytes;

async function failure(run: Promise<unknown>): Promise<SteveClientError> {
  const error = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SteveClientError);
  return error as SteveClientError;
}

/** Reads a body chunk by chunk: what arrived, and the error that ended it (undefined: it closed). */
async function drain(response: Response): Promise<{ chunks: Uint8Array[]; error: SteveClientError | undefined }> {
  const reader = response.body!.getReader();
  const chunks: Uint8Array[] = [];
  try {
    for (let next = await reader.read(); !next.done; next = await reader.read()) chunks.push(next.value);
  } catch (error) {
    expect(error).toBeInstanceOf(SteveClientError);
    return { chunks, error: error as SteveClientError };
  }
  return { chunks, error: undefined };
}

function streamingServer(answer: (path: string, sequence: number) => StreamAnswer): FakeServer {
  return createFakeServer({ suite: 'X25519', attester, extensions: ['stream-1'], streamApp: (request, sequence) => answer(request.path, sequence) });
}

const THREE: StreamAnswer = { head: { status: 200, headers: [['content-type', 'text/plain']], body: null }, chunks: [text('one'), text('two!'), text('three')] };

describe('which path a request takes', () => {
  it('a binding with stream-1: POST /e2p/v2/stream, application/steve-stream; the body arrives record by record', async () => {
    const server = streamingServer(() => THREE);
    const client = createTestClient(server, attester);
    const response = await client.request('/s');
    expect({ status: response.status, type: response.headers.get('content-type') }).toEqual({ status: 200, type: 'text/plain' });
    expect(client.receiptFor(response)).toMatchObject({ stream: 'open', sequence: 1, responseBodyBytes: 0 });
    const { chunks, error } = await drain(response);
    expect(error).toBeUndefined();
    expect(chunks).toEqual([text('one'), text('two!'), text('three')]);
    expect(client.receiptFor(response)).toMatchObject({ stream: 'ended', sequence: 1, responseBodyBytes: 12 });
    expect(client.lastReceipt).toBe(client.receiptFor(response));
    const call = server.calls.at(-1)!;
    expect({ url: call.url, type: (call.init.headers as Record<string, string>)['content-type'], credentials: call.init.credentials, redirect: call.init.redirect }).toEqual({
      url: 'https://enclave.test/e2p/v2/stream',
      type: 'application/steve-stream',
      credentials: 'omit',
      redirect: 'error',
    });
    expect(server.hits).toMatchObject({ session: 1, stream: 1, request: 0 });
  });

  it('an idempotent stream refused as for an unknown session (401 session_invalid) is sent once more on a new session; a ReadableStream upload is not', async () => {
    const server = streamingServer(() => THREE);
    const client = createTestClient(server, attester);
    await drain(await client.request('/s'));
    const first = client.lastReceipt!.sessionId;
    server.sessions.clear();
    const again = await client.request('/s', { method: 'PUT', body: text('bytes') });
    expect((await drain(again)).chunks).toEqual([text('one'), text('two!'), text('three')]);
    expect(client.receiptFor(again)).toMatchObject({ stream: 'ended', sequence: 1 });
    expect(client.receiptFor(again)!.sessionId).not.toBe(first);
    expect(server.hits).toMatchObject({ session: 2, confirm: 2, stream: 3, request: 0 });
    expect(server.streams.map((stream) => stream.request.path)).toEqual(['/s', '/s']);

    server.sessions.clear();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(text('once'));
        controller.close();
      },
    });
    // PUT, so that only the consumed body keeps it from being sent again.
    const error = await failure(client.request('/s', { method: 'PUT', body }));
    expect({ code: error.code, status: error.status, serverError: error.serverError }).toEqual({ code: 'STEVE_CLIENT_HTTP', status: 401, serverError: 'session_invalid' });
    expect(server.hits).toMatchObject({ session: 2, stream: 4 });
  });

  it('a binding without extensions: /e2p/v2/request exactly as before (one CBOR envelope)', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    const response = await client.request('/echo', { method: 'POST', body: text('hello') });
    expect(await response.text()).toBe('hello');
    const call = server.calls.at(-1)!;
    expect({ url: call.url, type: (call.init.headers as Record<string, string>)['content-type'] }).toEqual({ url: 'https://enclave.test/e2p/v2/request', type: 'application/cbor' });
    expect(decodeEnvelope(call.init.body as Uint8Array).sequence).toBe(1);
    expect(client.receiptFor(response)!.stream).toBeUndefined();
    expect(server.hits).toMatchObject({ request: 1, stream: 0 });
  });

  it('streaming: false (client) and stream: false (request) keep /e2p/v2/request on a stream-1 session', async () => {
    const server = createFakeServer({ suite: 'X25519', attester, extensions: ['stream-1'] });
    const off = createTestClient(server, attester, { streaming: false });
    expect(await (await off.request('/echo', { method: 'POST', body: text('a') })).text()).toBe('a');
    expect(server.hits).toMatchObject({ request: 1, stream: 0 });
    const on = createTestClient(server, attester);
    expect(await (await on.request('/echo', { method: 'POST', body: text('b'), stream: false })).text()).toBe('b');
    expect(server.hits).toMatchObject({ request: 2, stream: 0 });
    expect(await (await on.request('/echo', { method: 'POST', body: text('c') })).text()).toBe('c');
    expect(server.hits).toMatchObject({ request: 2, stream: 1 });
    expect(server.calls.filter((c) => c.url.endsWith('/e2p/v2/request')).every((c) => c.init.body instanceof Uint8Array)).toBe(true);
  });

  it('an unknown extension alone does not make the client stream', async () => {
    const server = createFakeServer({ suite: 'X25519', attester, extensions: ['stream-2'] });
    const client = createTestClient(server, attester);
    await client.request('/');
    expect(server.hits).toMatchObject({ request: 1, stream: 0 });
  });

  it('a ReadableStream body on a session without stream-1 is read whole and sent as one record', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    const body = new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(text('ab')), c.enqueue(text('cd')), c.close()) });
    expect(await (await client.request('/echo', { method: 'POST', body })).text()).toBe('abcd');
    expect(server.hits).toMatchObject({ request: 1, stream: 0 });
  });
});

/** Opens the request frames the fake server received, with the session's keys, independently of the client. */
function openRequestFrames(server: FakeServer, index: number): { kinds: number[]; sizes: number[]; sequence: number; head: ReturnType<typeof decodeAppRequest> } {
  const received = server.streams[index]!;
  const { sessionId, sequence } = decodeStreamPreamble(received.wire);
  const keys: SessionKeys = [...server.sessions.values()].find((s) => s.sessionId.every((b, i) => b === sessionId[i]))!.keys;
  const reader = createStreamReader(nobleAesGcm, keys.streamC2sKey, { direction: DIRECTION.C2S, sessionId, sequence });
  const kinds: number[] = [];
  const sizes: number[] = [];
  let head: ReturnType<typeof decodeAppRequest> | undefined;
  const parser = createFrameParser();
  const frames = parser.push(received.wire.subarray(STREAM_PREAMBLE_BYTES));
  expect(parser.buffered).toBe(0);
  for (const frame of frames) {
    const record = reader.open(frame);
    kinds.push(record.kind);
    if (record.kind === FRAME_KIND.HEAD) head = decodeAppRequest(record.plaintext);
    if (record.kind === FRAME_KIND.DATA) sizes.push(record.plaintext.length);
  }
  expect(reader.finished).toBe(true);
  return { kinds, sizes, sequence, head: head! };
}

describe('the request on the wire', () => {
  it('a Uint8Array body: preamble, HEAD (null body, content-length), DATA of at most 64 KiB, END, in one buffer', async () => {
    const server = streamingServer(() => THREE);
    const client = createTestClient(server, attester);
    const body = new Uint8Array(150_000).map((_, i) => i & 0xff);
    await drain(await client.request('/up', { method: 'POST', body, headers: { 'content-length': '1', 'x-a': 'b' } }));
    const wire = openRequestFrames(server, 0);
    expect(wire).toMatchObject({ kinds: [1, 2, 2, 2, 3], sizes: [65_536, 65_536, 18_928], sequence: 1 });
    expect({ ...wire.head.headers }).toEqual({ 'content-length': '150000', 'x-a': 'b' });
    expect(wire.head.body).toBeNull();
    expect(server.streams[0]!.request.body).toEqual(body);
    expect(server.streams[0]!.init.body).toBeInstanceOf(Uint8Array);
    expect((server.streams[0]!.init as { duplex?: string }).duplex).toBeUndefined();
    const receipt = client.lastReceipt!;
    expect({ requestBodyBytes: receipt.requestBodyBytes, requestBytes: receipt.requestBytes }).toEqual({ requestBodyBytes: 150_000, requestBytes: server.streams[0]!.wire.length });
  });

  it('no body: HEAD then END, no content-length', async () => {
    const server = streamingServer(() => THREE);
    const client = createTestClient(server, attester);
    await drain(await client.request('/get', { headers: { 'content-length': '5' } }));
    const wire = openRequestFrames(server, 0);
    expect(wire.kinds).toEqual([1, 3]);
    expect({ ...wire.head.headers }).toEqual({});
  });

  it('a ReadableStream body: framed per chunk as it is pulled, duplex half, its own content-length kept', async () => {
    const server = streamingServer(() => THREE);
    const client = createTestClient(server, attester);
    const parts = [text('abc'), new Uint8Array(70_000).fill(7), new Uint8Array(0), text('xyzzy')];
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = parts.shift();
        if (next === undefined) controller.close();
        else controller.enqueue(next);
      },
    });
    await drain(await client.request('/up', { method: 'PUT', body, headers: { 'content-length': '70008' } }));
    const wire = openRequestFrames(server, 0);
    expect(wire).toMatchObject({ kinds: [1, 2, 2, 2, 2, 3], sizes: [3, 65_536, 4_464, 5] });
    expect({ ...wire.head.headers }).toEqual({ 'content-length': '70008' });
    expect(server.streams[0]!.init.body).toBeInstanceOf(ReadableStream);
    expect((server.streams[0]!.init as { duplex?: string }).duplex).toBe('half');
    expect(client.lastReceipt).toMatchObject({ requestBodyBytes: 70_008, requestBytes: server.streams[0]!.wire.length });
  });

  it('an async iterable body is streamed the same way', async () => {
    const server = streamingServer(() => THREE);
    const client = createTestClient(server, attester);
    async function* chunks(): AsyncGenerator<Uint8Array> {
      yield text('12');
      yield text('345');
    }
    await drain(await client.request('/up', { method: 'POST', body: chunks() }));
    expect(openRequestFrames(server, 0)).toMatchObject({ kinds: [1, 2, 2, 3], sizes: [2, 3] });
  });

  it('a failing source: the request never reaches END (the fetch rejects coded), the session is kept', async () => {
    const server = streamingServer(() => THREE);
    const client = createTestClient(server, attester);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(text('partial'));
        controller.error(new Error('disk gone'));
      },
    });
    const error = await failure(client.request('/up', { method: 'POST', body }));
    expect({ code: error.code, sessionEnded: error.sessionEnded }).toEqual({ code: 'STEVE_CLIENT_BAD_REQUEST', sessionEnded: false });
    expect(server.streams).toEqual([]);
    await drain(await client.request('/after'));
    expect(server.hits.session).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------------
// Attacks on the answer

interface Outcome {
  /** Bytes the consumer received. */
  bytes: Uint8Array;
  error: SteveClientError | undefined;
  /** request() itself rejected (nothing was handed out). */
  beforeHead: boolean;
}

async function attempt(client: SteveClient, server: FakeServer, mutate: (frames: Uint8Array[], sequence: number) => Uint8Array[] | Response): Promise<Outcome> {
  server.hooks.streamFrames = (frames, context) => mutate(frames, context.sequence);
  try {
    let response: Response;
    try {
      response = await client.request('/attack');
    } catch (error) {
      expect(error).toBeInstanceOf(SteveClientError);
      return { bytes: new Uint8Array(0), error: error as SteveClientError, beforeHead: true };
    }
    const { chunks, error } = await drain(response);
    return { bytes: concat(chunks), error, beforeHead: false };
  } finally {
    delete server.hooks.streamFrames;
  }
}

/** Plaintexts of THREE's records before record `damaged` (0 HEAD, 1..3 DATA, 4 END). */
function before(damaged: number): Uint8Array {
  return concat(THREE.chunks.slice(0, Math.max(0, Math.min(damaged, 4) - 1)));
}

const FAILURE_CODES: SteveClientErrorCode[] = ['STEVE_CLIENT_PROTOCOL', 'STEVE_CLIENT_TRUNCATED'];

function expectFailed(outcome: Outcome, damaged: number, what: string, codes: SteveClientErrorCode[] = FAILURE_CODES): void {
  expect(outcome.error, `${what}: never a success`).toBeInstanceOf(SteveClientError);
  expect(codes, `${what}: ${outcome.error!.code} ${outcome.error!.message}`).toContain(outcome.error!.code);
  expect(outcome.bytes, `${what}: exactly the records before the damaged one`).toEqual(before(damaged));
  expect(outcome.beforeHead, `${what}: request() rejects iff the head is damaged`).toBe(damaged === 0);
  if (outcome.error!.code === 'STEVE_CLIENT_PROTOCOL') expect(outcome.error!.sessionEnded, what).toBe(true);
  if (outcome.error!.code === 'STEVE_CLIENT_TRUNCATED') expect(outcome.error!.sessionEnded, what).toBe(false);
}

describe('attacks on a streamed answer', () => {
  let server: FakeServer;
  let client: SteveClient;
  beforeAll(() => {
    server = streamingServer(() => THREE);
    client = createTestClient(server, attester);
  });

  it('the undamaged answer goes through (the baseline of every attack below)', async () => {
    const outcome = await attempt(client, server, (frames) => frames);
    expect({ bytes: outcome.bytes, error: outcome.error }).toEqual({ bytes: concat(THREE.chunks), error: undefined });
  });

  it('every single byte flipped, in turn', async () => {
    const sample = server.streamAnswers.values().next().value!;
    const offsets = sample.map((frame) => frame.length);
    let position = 0;
    for (let frame = 0; frame < offsets.length; frame++) {
      for (let at = 0; at < offsets[frame]!; at++, position++) {
        const outcome = await attempt(client, server, (frames) => {
          frames[frame]![at]! ^= 0x01;
          return frames;
        });
        expectFailed(outcome, frame, `byte ${position} (frame ${frame}, offset ${at})`);
      }
    }
    expect(position).toBe(sample.reduce((n, f) => n + f.length, 0));
  });

  it('every record dropped, duplicated, or swapped with the next', async () => {
    for (let i = 0; i < 5; i++) {
      expectFailed(await attempt(client, server, (frames) => frames.filter((_, j) => j !== i)), i, `drop ${i}`);
      // The copy sits at i + 1: it does not open there (or follows END).
      expectFailed(await attempt(client, server, (frames) => [...frames.slice(0, i + 1), frames[i]!, ...frames.slice(i + 1)]), i + 1, `duplicate ${i}`, ['STEVE_CLIENT_PROTOCOL']);
      if (i < 4) {
        expectFailed(await attempt(client, server, (frames) => [...frames.slice(0, i), frames[i + 1]!, frames[i]!, ...frames.slice(i + 2)]), i, `swap ${i}`, ['STEVE_CLIENT_PROTOCOL']);
      }
    }
  });

  it('a record of another response (other sequence) or of another session, spliced in at each position', async () => {
    const other = createTestClient(server, attester, { random: (n) => crypto.getRandomValues(new Uint8Array(n)) });
    await drain(await other.request('/other'));
    const fromOtherSession = server.streamAnswers.get(other.lastReceipt!.sequence)!;
    expect(other.lastReceipt!.sessionId).not.toBe(client.lastReceipt?.sessionId);
    for (let i = 0; i < 5; i++) {
      // A good exchange first, on the session the attack then uses: its records are the "other response".
      await drain(await client.request('/good'));
      const earlier = server.streamAnswers.get(client.lastReceipt!.sequence)!;
      const outcome = await attempt(client, server, (frames, sequence) => {
        expect(sequence).toBe(client.lastReceipt!.sequence + 1);
        return frames.map((frame, j) => (j === i ? earlier[i]! : frame));
      });
      expectFailed(outcome, i, `another sequence's record ${i}`, ['STEVE_CLIENT_PROTOCOL']);
      expectFailed(await attempt(client, server, (frames) => frames.map((frame, j) => (j === i ? fromOtherSession[i]! : frame))), i, `another session's record ${i}`, ['STEVE_CLIENT_PROTOCOL']);
    }
  });

  it('the body cut at every byte offset: TRUNCATED after the records that were whole, never a short success', async () => {
    const sample = server.streamAnswers.values().next().value!;
    const total = sample.reduce((n, f) => n + f.length, 0);
    for (let cut = 0; cut < total; cut++) {
      let damaged = 0;
      for (let seen = 0; seen + sample[damaged]!.length <= cut; damaged++) seen += sample[damaged]!.length;
      const outcome = await attempt(client, server, (frames) => {
        const out: Uint8Array[] = [];
        let left = cut;
        for (const frame of frames) {
          if (left === 0) break;
          out.push(frame.subarray(0, Math.min(left, frame.length)));
          left -= Math.min(left, frame.length);
        }
        return out;
      });
      expectFailed(outcome, damaged, `cut at ${cut}`, ['STEVE_CLIENT_TRUNCATED']);
    }
  });

  it('a byte after END, or a frame longer than the cap, is PROTOCOL and ends the session', async () => {
    expectFailed(await attempt(client, server, (frames) => [...frames, new Uint8Array([0])]), 5, 'a byte after END', ['STEVE_CLIENT_PROTOCOL']);
    const long = Uint8Array.from([FRAME_KIND.DATA, 0x00, 0x01, 0x00, 0x11]);
    expectFailed(await attempt(client, server, (frames) => [frames[0]!, frames[1]!, long]), 2, 'length 65,553', ['STEVE_CLIENT_PROTOCOL']);
  });

  it('the answer delivered in any chunking gives the same body (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 200 }), { maxLength: 20 }), async (cuts) => {
        const outcome = await attempt(client, server, (frames) => {
          const whole = concat(frames);
          const pieces: Uint8Array[] = [];
          let at = 0;
          for (const cut of cuts) {
            if (at >= whole.length) break;
            pieces.push(whole.subarray(at, Math.min(whole.length, at + cut)));
            at += cut;
          }
          if (at < whole.length) pieces.push(whole.subarray(at));
          return new Response(new ReadableStream({ pull: (c) => (pieces.length > 0 ? c.enqueue(pieces.shift()!) : c.close()) }), { status: 200 });
        });
        expect({ bytes: outcome.bytes, error: outcome.error }).toEqual({ bytes: concat(THREE.chunks), error: undefined });
      }),
      { seed: 15, numRuns: 40 },
    );
  });

  it('a random byte flipped in a randomly chunked answer: a coded error after a prefix of the body (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.integer({ min: 1, max: 64 }), async (seed, chunk) => {
        const outcome = await attempt(client, server, (frames) => {
          const whole = concat(frames);
          whole[seed % whole.length]! ^= 1 << seed % 8;
          const pieces: Uint8Array[] = [];
          for (let at = 0; at < whole.length; at += chunk) pieces.push(whole.subarray(at, at + chunk));
          return new Response(new ReadableStream({ pull: (c) => (pieces.length > 0 ? c.enqueue(pieces.shift()!) : c.close()) }), { status: 200 });
        });
        expect(outcome.error).toBeInstanceOf(SteveClientError);
        expect(FAILURE_CODES).toContain(outcome.error!.code);
        const body = concat(THREE.chunks);
        // A prefix (a damaged END comes after the whole body: still an error, never a success).
        expect(outcome.bytes).toEqual(body.subarray(0, outcome.bytes.length));
      }),
      { seed: 16, numRuns: 60 },
    );
  });
});

describe('ABORT, statuses, backpressure, timeouts', () => {
  it('ABORT after two records: STREAM_ABORTED with the server\'s code after exactly their bytes; the session is kept', async () => {
    const server = streamingServer((path) => (path === '/abort' ? { ...THREE, chunks: THREE.chunks.slice(0, 2), abort: 'upstream_aborted' } : THREE));
    const client = createTestClient(server, attester);
    const response = await client.request('/abort');
    const { chunks, error } = await drain(response);
    expect(concat(chunks)).toEqual(concat(THREE.chunks.slice(0, 2)));
    expect({ code: error!.code, serverError: error!.serverError, sessionEnded: error!.sessionEnded }).toEqual({ code: 'STEVE_CLIENT_STREAM_ABORTED', serverError: 'upstream_aborted', sessionEnded: false });
    expect(client.receiptFor(response)).toMatchObject({ stream: 'failed', responseBodyBytes: 7 });
    await drain(await client.request('/next'));
    expect(client.lastReceipt).toMatchObject({ sequence: 2, stream: 'ended' });
    expect(server.hits.session).toBe(1);
  });

  it.each([400, 401, 409, 425])('outer %i before the stream ends the session, as on /e2p/v2/request', async (status) => {
    const server = streamingServer(() => THREE);
    const client = createTestClient(server, attester);
    await drain(await client.request('/'));
    server.hooks.streamStatus = (sequence) => (sequence === 2 ? status : undefined);
    const error = await failure(client.request('/'));
    expect({ code: error.code, status: error.status, sessionEnded: error.sessionEnded }).toEqual({ code: 'STEVE_CLIENT_HTTP', status, sessionEnded: true });
    await drain(await client.request('/'));
    expect(server.hits.session).toBe(2);
  });

  it.each([403, 413, 429, 503])('outer %i before the stream fails only that request', async (status) => {
    const server = streamingServer(() => THREE);
    const client = createTestClient(server, attester);
    server.hooks.streamStatus = (sequence) => (sequence === 1 ? status : undefined);
    const error = await failure(client.request('/'));
    expect({ code: error.code, status: error.status, sessionEnded: error.sessionEnded }).toEqual({ code: 'STEVE_CLIENT_HTTP', status, sessionEnded: false });
    await drain(await client.request('/'));
    expect(server.hits.session).toBe(1);
  });

  it('backpressure: a consumer that does not read makes the client pull at most the head and one record', async () => {
    const many: StreamAnswer = { head: THREE.head, chunks: Array.from({ length: 50 }, (_, i) => text(`chunk ${i};`)) };
    const server = streamingServer(() => many);
    const client = createTestClient(server, attester);
    const response = await client.request('/many');
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 1));
    expect(server.streamPulls()).toBeLessThanOrEqual(2);
    const reader = response.body!.getReader();
    expect(await reader.read()).toEqual({ done: false, value: text('chunk 0;') });
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 1));
    expect(server.streamPulls()).toBeLessThanOrEqual(3);
    await reader.cancel();
    expect(client.receiptFor(response)).toMatchObject({ stream: 'failed', responseBodyBytes: 8 });
  });

  it('a body holds its sequence and one of 16 stream places until it ends or is cancelled (16 open bodies hold the 17th stream back)', async () => {
    const server = streamingServer(() => THREE);
    const client = createTestClient(server, attester);
    const open = await Promise.all(Array.from({ length: 16 }, (_, i) => client.request(`/open/${i}`)));
    let sent = false;
    const next = client.request('/17').then((r) => ((sent = true), r));
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 1));
    expect({ sent, streams: server.hits.stream }).toEqual({ sent: false, streams: 16 });
    await open[0]!.body!.cancel();
    const last = await next;
    expect(client.receiptFor(last)!.sequence).toBe(17);
    for (const response of open.slice(1)) await drain(response);
    await drain(last);
  });

  it('the idle timeout between records: TIMEOUT, the session kept', async () => {
    const server = streamingServer(() => THREE);
    const client = createTestClient(server, attester, { streamIdleTimeoutMs: 30 });
    server.hooks.streamFrames = (frames) => {
      let sent = 0;
      return new Response(new ReadableStream({ pull: (c) => (sent < 2 ? c.enqueue(frames[sent++]!) : new Promise(() => undefined)) }, { highWaterMark: 0 }), { status: 200 });
    };
    const { chunks, error } = await drain(await client.request('/stall'));
    expect({ bytes: concat(chunks), code: error!.code, sessionEnded: error!.sessionEnded }).toEqual({ bytes: text('one'), code: 'STEVE_CLIENT_TIMEOUT', sessionEnded: false });
  });

  it('requestTimeoutMs bounds the wait for the head', async () => {
    const server = streamingServer(() => THREE);
    const client = createTestClient(server, attester);
    server.hooks.streamFrames = () => new Response(new ReadableStream({ pull: () => new Promise(() => undefined) }, { highWaterMark: 0 }), { status: 200 });
    const error = await failure(client.request('/', { timeoutMs: 30 }));
    expect({ code: error.code, sessionEnded: error.sessionEnded }).toEqual({ code: 'STEVE_CLIENT_TIMEOUT', sessionEnded: false });
  });

  it('the caller\'s signal aborts a body being read', async () => {
    const server = streamingServer(() => THREE);
    const client = createTestClient(server, attester);
    const controller = new AbortController();
    const response = await client.request('/', { signal: controller.signal });
    const reader = response.body!.getReader();
    expect((await reader.read()).value).toEqual(text('one'));
    controller.abort();
    const error = await reader.read().then(
      () => undefined,
      (e: unknown) => e as SteveClientError,
    );
    expect(error?.code).toBe('STEVE_CLIENT_ABORTED');
  });

  it('204 and an answer the proxy made up (error, no body) read as buildResponse gives them', async () => {
    const server = streamingServer((path) =>
      path === '/204' ? { head: { status: 204, headers: [], body: null }, chunks: [] } : { head: { status: 502, headers: [], body: null, error: 'upstream_unreachable' }, chunks: [] },
    );
    const client = createTestClient(server, attester);
    const empty = await client.request('/204');
    expect({ status: empty.status, body: empty.body }).toEqual({ status: 204, body: null });
    expect(client.receiptFor(empty)).toMatchObject({ stream: 'ended' });
    const failed = await client.request('/502');
    expect({ status: failed.status, type: failed.headers.get('content-type'), body: await failed.json() }).toEqual({ status: 502, type: 'application/json', body: { error: 'upstream_unreachable' } });
    // A 204 is read to END before it resolves, so it holds no stream place: 20 more at once go through
    // (a held place would stop them at 16 open streams).
    const more = await Promise.all(Array.from({ length: 20 }, () => client.request('/204')));
    expect(more.map((r) => client.receiptFor(r)!.sequence)).toEqual(Array.from({ length: 20 }, (_, i) => i + 3));
  });
});
