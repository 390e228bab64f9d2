/**
 * The server side of our stream extension `stream-1` (steve/protocol/stream.md, steve/server/
 * stream-endpoint.ts) through the real agent (mock NSM) in front of an app on loopback, with a stream
 * client built from the protocol core (stream-harness.ts):
 *
 * - the exchange: GET and POST, the binding's sixth field, the answer's records as the app produces
 *   them (lockstep and 200 ms apart), an upload reaching the app before its last record was sent;
 * - every failed request record after the app was called (flipped, dropped, repeated, reordered, from
 *   another sequence or session, a head in the middle, a cut upload, a content-length body cut after its
 *   last byte) aborts the app's request, which never sees a complete body; the client gets 401/400
 *   before the answer started and ABORT `request_stream_invalid` after;
 * - replay (409), the 17th stream of a session (429), the media type (400), streaming off (404 and the
 *   five-field binding);
 * - memory: a client that stops reading holds the app back (the app's socket fills) and is disconnected
 *   after the send timeout; 64 MiB pass through with the server's buffered bytes at one reservation.
 */

import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FRAME_KIND, MAX_STREAMS_PER_SESSION, decodeSessionResponse } from '../../steve/index.js';
import { STREAM_RESERVATION_BYTES } from '../../steve/server/stream-endpoint.js';
import { establish, openResponse, pattern, postCbor, rawExchange, sealRequest, sessionRequest, deriveClientSession, startStack, text, utf8, type ClientSession, type Stack } from './harness.js';
import {
  createFeed,
  dataText,
  flipped,
  postStream,
  readStream,
  sleep,
  startStreamApp,
  streamOnce,
  streamRequest,
  until,
  untilStalled,
  type StreamApp,
  type StreamReply,
} from './stream-harness.js';

/** Small, so the stalled-client test ends quickly; every other client here reads promptly. */
const SEND_TIMEOUT_MS = 1000;
/** What each open stream takes from the budget: nine records of 5 + 65,536 + 16 bytes. */
const RESERVATION = STREAM_RESERVATION_BYTES;

let app: StreamApp;
let stack: Stack;

beforeAll(async () => {
  app = await startStreamApp();
  stack = await startStack({ upstream: app.url, config: { sendTimeoutMs: SEND_TIMEOUT_MS } });
});

afterAll(async () => {
  await stack?.stop();
  await app?.close();
});

async function metric(name: string): Promise<number> {
  const body = stack.agent.metrics.render();
  const line = body.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? NaN);
}

function hitFor(path: string, from: number) {
  return () => app.hits.slice(from).find((h) => h.path === path);
}

describe('the exchange', () => {
  it('binds stream-1 into every session: the binding has the sixth field', async () => {
    const req = sessionRequest(stack.suite);
    const reply = await postCbor(stack.base, '/e2p/v2/session', req.bytes);
    expect(reply.status).toBe(200);
    const { userData } = deriveClientSession(stack.suite, req, decodeSessionResponse(reply.body), stack.pki.root.der);
    const fields = JSON.parse(text(userData));
    expect(Object.keys(fields)).toEqual(['protocol', 'key_exchange', 'session_id', 'transcript_hash', 'binder', 'extensions']);
    expect(fields.extensions).toEqual(['stream-1']);
  });

  it('GET: HEAD then END, and the app answer as HEAD, DATA, END with the stream headers', async () => {
    const session = await establish(stack);
    const reply = await streamOnce(session, { method: 'GET', path: '/hello', headers: {} });
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('application/steve-stream');
    expect(reply.headers['cache-control']).toBe('no-store');
    expect(reply.headers['x-accel-buffering']).toBe('no');
    expect(reply.records.map((r) => r.kind)).toEqual([FRAME_KIND.HEAD, FRAME_KIND.DATA, FRAME_KIND.END]);
    expect(reply.head!.status).toBe(200);
    expect(reply.head!.body).toBeNull();
    expect(reply.head!.headers).toContainEqual(['x-app', 'hello']);
    expect(dataText(reply)).toEqual(['hello']);
    expect(reply.cut).toBe(false);
  });

  it('POST: a chunked body and one with its content-length reach the app whole', async () => {
    const session = await establish(stack);
    const body = pattern(200_000, 5);
    const chunks = [body.subarray(0, 70_000), body.subarray(70_000, 70_001), body.subarray(70_001)];
    for (const headers of [{}, { 'content-length': String(body.length) }] as Array<Record<string, string>>) {
      const before = app.hits.length;
      const reply = await streamOnce(session, { method: 'POST', path: '/sink', headers }, chunks);
      expect(reply.status).toBe(200);
      expect(reply.head!.status).toBe(200);
      expect(JSON.parse(dataText(reply).join(''))).toEqual({ bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') });
      const hit = app.hits.slice(before).find((h) => h.path === '/sink')!;
      expect(hit.outcome).toBe('complete');
      if ('content-length' in headers) expect(hit.headers['content-length']).toBe(String(body.length));
      else expect(hit.headers['transfer-encoding']).toBe('chunked');
    }
  });

  it('each answer chunk goes out before the app produces the next (lockstep)', async () => {
    const session = await establish(stack);
    const before = app.hits.length;
    const { sequence, preamble, records } = streamRequest(session, { method: 'GET', path: '/lockstep', headers: {} });
    const res = await postStream(session.base, Buffer.concat([preamble, ...records]));
    await until(() => hitFor('/lockstep', before)()?.step !== undefined, 'the app');
    const hit = hitFor('/lockstep', before)()!;
    hit.step!();
    // The next event is produced only once the client has opened the previous one: a server that held
    // the answer would never deliver the first, and this would time out.
    const reply = await readStream(session, sequence, res, (record) => {
      if (record.kind === FRAME_KIND.DATA && hit.sent < 5) hit.step!();
    });
    expect(dataText(reply)).toEqual([1, 2, 3, 4, 5].map((n) => `data: step ${n}\n\n`));
    expect(reply.records.at(-1)!.kind).toBe(FRAME_KIND.END);
  });

  it('server-sent events 200 ms apart arrive as separate DATA records, spread in time', async () => {
    const session = await establish(stack);
    const reply = await streamOnce(session, { method: 'GET', path: '/sse', headers: { accept: 'text/event-stream' } });
    const data = reply.records.filter((r) => r.kind === FRAME_KIND.DATA);
    expect(data.map((r) => new TextDecoder().decode(r.plaintext))).toEqual([1, 2, 3, 4, 5].map((n) => `data: event ${n}\n\n`));
    // The app waits 800 ms between its first and last event; a buffering server would deliver them together.
    expect(data.at(-1)!.at - data[0]!.at).toBeGreaterThan(400);
    expect(reply.head!.headers).toContainEqual(['content-type', 'text/event-stream']);
  });

  it('an upload reaches the app before the client has sent its last record', async () => {
    const session = await establish(stack);
    const before = app.hits.length;
    const first = pattern(10_000, 1);
    const second = pattern(20_000, 2);
    const { sequence, preamble, records } = streamRequest(session, { method: 'POST', path: '/sink', headers: {} }, [first, second]);
    const feed = createFeed();
    feed.push(preamble, records[0]!, records[1]!);
    const pending = postStream(session.base, feed.body);
    // A server that held the body until END would never let the app see these bytes: this would time out.
    await until(() => (hitFor('/sink', before)()?.received ?? 0) === first.length, 'the first chunk at the app');
    expect(hitFor('/sink', before)()!.outcome).toBe('pending');
    feed.push(records[2]!, records[3]!);
    feed.end();
    const reply = await readStream(session, sequence, await pending);
    expect(JSON.parse(dataText(reply).join('')).bytes).toBe(30_000);
    expect(hitFor('/sink', before)()!.outcome).toBe('complete');
  });
});

describe("the HTTP server's deadline for a whole request", () => {
  // 600 ms here (120 s shipped), checked every 100 ms (30 s shipped).
  const DEADLINE = { timeoutMs: 600, checkEveryMs: 100 };

  it('does not cut a stream upload that outlasts it: every record reaches the app', async () => {
    const short = await startStack({ upstream: app.url, requestDeadline: DEADLINE });
    try {
      const session = await establish(short);
      const before = app.hits.length;
      const chunks = Array.from({ length: 8 }, (_, i) => pattern(5000, i + 1));
      const { sequence, preamble, records } = streamRequest(session, { method: 'POST', path: '/sink', headers: {} }, chunks);
      const feed = createFeed();
      feed.push(preamble, records[0]!);
      const pending = postStream(session.base, feed.body);
      // Eight DATA records 250 ms apart: two seconds, more than three deadlines.
      for (const record of records.slice(1, -1)) {
        await sleep(250);
        feed.push(record);
      }
      feed.push(records.at(-1)!);
      feed.end();
      const reply = await readStream(session, sequence, await pending);
      expect(reply.status).toBe(200);
      expect(JSON.parse(dataText(reply).join('')).bytes).toBe(40_000);
      expect(hitFor('/sink', before)()!.outcome).toBe('complete');
    } finally {
      await short.stop();
    }
  });

  it('still ends any other request that outlasts it: 408 and the connection closed', async () => {
    const short = await startStack({ upstream: app.url, requestDeadline: DEADLINE });
    try {
      const started = Date.now();
      // A stream whose preamble never completes is no open stream yet: Node's deadline answers first.
      const answer = await rawExchange(short.agent.addresses.public, 'POST /e2p/v2/stream HTTP/1.1\r\nhost: x\r\ncontent-type: application/steve-stream\r\ntransfer-encoding: chunked\r\n\r\n', (write) => {
        write('5\r\nSTEVE\r\n');
      });
      expect(answer.status).toBe(408);
      expect(answer.raw).toContain('Connection: close');
      expect(Date.now() - started).toBeLessThan(5000);
      // Malformed bytes keep Node's own answer, 400.
      const malformed = await rawExchange(short.agent.addresses.public, 'GET / HTTP/1.1\r\nbad header line\r\n\r\n');
      expect(malformed.status).toBe(400);
    } finally {
      await short.stop();
    }
  });
});

describe('request records that fail abort the app request', () => {
  /**
   * Sends the preamble, HEAD and the first DATA of a 4-DATA chunked upload to `path`, waits until the app
   * has that DATA, then `attack` decides what follows. Returns the client's reply and the app's record.
   */
  async function attack(path: string, send: (ctx: { records: Uint8Array[]; session: ClientSession; sequence: number; feed: ReturnType<typeof createFeed> }) => void, headers: Record<string, string> = {}) {
    const session = await establish(stack);
    const before = app.hits.length;
    const chunks = [pattern(1000, 1), pattern(1000, 2), pattern(1000, 3), pattern(1000, 4)];
    const { sequence, preamble, records } = streamRequest(session, { method: 'POST', path, headers }, chunks);
    const feed = createFeed();
    feed.push(preamble, records[0]!, records[1]!);
    const pending = postStream(session.base, feed.body);
    await until(() => (hitFor(path, before)()?.received ?? 0) === 1000, 'the first chunk at the app');
    send({ records, session, sequence, feed });
    let reply: StreamReply | null = null;
    try {
      reply = await readStream(session, sequence, await pending);
    } catch {
      reply = null; // the connection was cut (a truncated upload): no answer at all
    }
    const hit = hitFor(path, before)()!;
    await until(() => hit.outcome !== 'pending', 'the app request to end');
    return { reply, hit };
  }

  // records: [HEAD, D1, D2, D3, D4, END]; D1 is at the app when each of these is sent.
  const beforeTheAnswer: Array<[string, (ctx: { records: Uint8Array[]; session: ClientSession; sequence: number; feed: ReturnType<typeof createFeed> }) => void | Promise<void>, number, string]> = [
    ['a flipped byte in a DATA record', ({ records, feed }) => feed.push(flipped(records[2]!)), 401, 'session_invalid'],
    ['a dropped record', ({ records, feed }) => feed.push(records[3]!), 401, 'session_invalid'],
    ['a duplicated record', ({ records, feed }) => feed.push(records[1]!), 401, 'session_invalid'],
    ['reordered records', ({ records, feed }) => feed.push(records[3]!, records[2]!), 401, 'session_invalid'],
    ['an END in place of the next DATA, taken from a later position', ({ records, feed }) => feed.push(records[5]!), 401, 'session_invalid'],
    [
      'a record of another sequence',
      ({ session, sequence, feed }) => feed.push(streamRequest(session, { method: 'POST', path: '/sink', headers: {} }, [pattern(1000, 1), pattern(1000, 2)], { sequence: sequence + 1 }).records[2]!),
      401,
      'session_invalid',
    ],
    ['a second HEAD', ({ records, feed }) => feed.push(records[0]!), 400, 'protocol_error'],
  ];

  for (const [name, send, status, code] of beforeTheAnswer) {
    it(`${name}: ${status} ${code}, and the app never completes the body`, async () => {
      const { reply, hit } = await attack('/sink', send);
      expect(reply!.status).toBe(status);
      expect(reply!.error).toBe(code);
      expect(hit.outcome).toBe('aborted');
      expect(hit.received).toBe(1000);
    });
  }

  it('a record sealed for another session: 401, and the app never completes the body', async () => {
    const other = await establish(stack);
    const { reply, hit } = await attack('/sink', ({ sequence, feed }) => {
      feed.push(streamRequest(other, { method: 'POST', path: '/sink', headers: {} }, [pattern(1000, 1), pattern(1000, 2)], { sequence }).records[2]!);
    });
    expect(reply!.status).toBe(401);
    expect(reply!.error).toBe('session_invalid');
    expect(hit.outcome).toBe('aborted');
  });

  it('an upload cut before END (the socket closes): the app request is aborted', async () => {
    const { reply, hit } = await attack('/sink', ({ records, feed }) => {
      feed.push(records[2]!);
      feed.fail();
    });
    expect(reply).toBeNull();
    expect(hit.outcome).toBe('aborted');
  });

  it('an upload whose body ends before END (the connection stays open): 400, the app request aborted', async () => {
    const { reply, hit } = await attack('/sink', ({ records, feed }) => {
      feed.push(records[2]!);
      feed.end();
    });
    expect(reply!.status).toBe(400);
    expect(reply!.error).toBe('protocol_error');
    expect(hit.outcome).toBe('aborted');
  });

  it('a content-length body that ends right after its last DATA, without END: the app never gets that last record', async () => {
    // 4 x 1000 bytes declared, all four DATA records sent, then the body ends: the app must not see 4000
    // bytes, which it would take for the whole body.
    const { reply, hit } = await attack(
      '/sink',
      ({ records, feed }) => {
        feed.push(records[2]!, records[3]!, records[4]!);
        feed.end();
      },
      { 'content-length': '4000' },
    );
    expect(reply!.status).toBe(400);
    expect(reply!.error).toBe('protocol_error');
    expect(hit.outcome).toBe('aborted');
    expect(hit.received).toBe(3000);
  });

  it('a content-length the records do not match: 400, the app request aborted', async () => {
    const { reply, hit } = await attack('/sink', ({ records, feed }) => feed.push(records[2]!, records[3]!, records[4]!, records[5]!), { 'content-length': '3000' });
    expect(reply!.status).toBe(400);
    expect(reply!.error).toBe('protocol_error');
    expect(hit.outcome).toBe('aborted');
  });

  it('after the answer started: ABORT request_stream_invalid, the app request aborted', async () => {
    const { reply, hit } = await attack('/echo-stream', ({ records, feed }) => feed.push(flipped(records[2]!)));
    expect(reply!.status).toBe(200);
    const last = reply!.records.at(-1)!;
    expect(last.kind).toBe(FRAME_KIND.ABORT);
    expect(last.error).toBe('request_stream_invalid');
    expect(reply!.bodyBytes).toBe(1000);
    expect(hit.outcome).toBe('aborted');
  });
});

describe('refusals', () => {
  it("replaying a stream's preamble and head: 409 replay, the app called once", async () => {
    const session = await establish(stack);
    const before = app.hits.length;
    const { sequence, preamble, records } = streamRequest(session, { method: 'GET', path: '/hello', headers: {} });
    const bytes = Buffer.concat([preamble, ...records]);
    const first = await readStream(session, sequence, await postStream(session.base, bytes));
    expect(first.status).toBe(200);
    const again = await readStream(session, sequence, await postStream(session.base, bytes));
    expect(again.status).toBe(409);
    expect(again.error).toBe('replay');
    expect(app.hits.slice(before).filter((h) => h.path === '/hello')).toHaveLength(1);
  });

  it(`the ${MAX_STREAMS_PER_SESSION + 1}th stream open on one session: 429 busy; another session is not affected`, async () => {
    const session = await establish(stack);
    const before = app.hits.length;
    const open: Array<{ sequence: number; res: Promise<Awaited<ReturnType<typeof postStream>>> }> = [];
    for (let i = 0; i < MAX_STREAMS_PER_SESSION; i++) {
      const { sequence, preamble, records } = streamRequest(session, { method: 'GET', path: '/held', headers: {} });
      open.push({ sequence, res: postStream(session.base, Buffer.concat([preamble, ...records])) });
    }
    await until(() => app.hits.slice(before).filter((h) => h.path === '/held').length === MAX_STREAMS_PER_SESSION, 'the held streams at the app');
    const extra = await streamOnce(session, { method: 'GET', path: '/hello', headers: {} });
    expect(extra.status).toBe(429);
    expect(extra.error).toBe('busy');
    const other = await streamOnce(await establish(stack), { method: 'GET', path: '/hello', headers: {} });
    expect(other.status).toBe(200);
    app.releaseHeld();
    for (const { sequence, res } of open) expect(dataText(await readStream(session, sequence, await res))).toEqual(['released']);
    // Room again once they closed.
    await until(() => stack.agent.metrics.render().includes('enclave_agent_steve_open_streams 0'), 'the streams to close');
    expect((await streamOnce(session, { method: 'GET', path: '/hello', headers: {} })).status).toBe(200);
  });

  it('streams hold at most half the memory budget: past it 429 busy, and /e2p/v2/request still answers', async () => {
    // Room for four reservations: two streams, then the streams' half is spent.
    const small = await startStack({ upstream: app.url, config: { maxBufferedBytes: 4 * RESERVATION } });
    try {
      const session = await establish(small);
      const before = app.hits.length;
      const open: Array<{ sequence: number; res: Promise<Awaited<ReturnType<typeof postStream>>> }> = [];
      for (let i = 0; i < 2; i++) {
        const { sequence, preamble, records } = streamRequest(session, { method: 'GET', path: '/held', headers: {} });
        open.push({ sequence, res: postStream(session.base, Buffer.concat([preamble, ...records])) });
      }
      await until(() => app.hits.slice(before).filter((h) => h.path === '/held').length === 2, 'the held streams at the app');
      const third = await streamOnce(await establish(small), { method: 'GET', path: '/hello', headers: {} });
      expect({ status: third.status, error: third.error }).toEqual({ status: 429, error: 'busy' });
      const { bytes, sequence } = sealRequest(session, { method: 'GET', path: '/hello', headers: {}, body: null });
      const reply = await postCbor(small.base, '/e2p/v2/request', bytes);
      expect(reply.status).toBe(200);
      expect(openResponse(session, reply.body, sequence).status).toBe(200);
      app.releaseHeld();
      for (const { sequence: s, res } of open) expect(dataText(await readStream(session, s, await res))).toEqual(['released']);
    } finally {
      await small.stop();
    }
  });

  it('another media type: 400 protocol_error', async () => {
    const session = await establish(stack);
    const { preamble, records } = streamRequest(session, { method: 'GET', path: '/hello', headers: {} });
    const res = await postStream(session.base, Buffer.concat([preamble, ...records]), { 'content-type': 'application/cbor' });
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(await res.body.text())).toEqual({ error: 'protocol_error' });
  });

  it('a body that is not a stream: 400 on its first bytes; an unknown session 401', async () => {
    const res = await postStream(stack.base, utf8('GET / HTTP/1.1\r\n\r\n'.padEnd(64, ' ')));
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(await res.body.text())).toEqual({ error: 'protocol_error' });
    const session = await establish(stack);
    const stranger = { ...session, id: new Uint8Array(16).fill(7) };
    const reply = await streamOnce(stranger, { method: 'GET', path: '/hello', headers: {} });
    expect(reply.status).toBe(401);
    expect(reply.error).toBe('session_invalid');
  });
});

describe('memory', () => {
  it('a client that stops reading holds the app back and is disconnected after the send timeout', async () => {
    const session = await establish(stack);
    const before = app.hits.length;
    const { sequence, preamble, records } = streamRequest(session, { method: 'GET', path: '/endless', headers: {} });
    const res = await postStream(session.base, Buffer.concat([preamble, ...records]));
    expect(res.statusCode).toBe(200);
    const hit = hitFor('/endless', before)()!;
    // The client reads nothing: the app's writes stall once the sockets and buffers between are full.
    await untilStalled(() => hit.sent, 'the app to stall');
    expect(await metric('enclave_agent_steve_buffered_bytes')).toBeLessThanOrEqual(RESERVATION);
    // Only the kernel's socket buffers (a few MiB each on loopback) hold the rest; an endless answer.
    expect(hit.sent).toBeLessThan(48 * 1024 * 1024);
    // The send timeout closes the client's connection, which ends the app's request.
    await until(() => hit.responseClosedEarly, 'the app request to be closed');
    res.body.destroy();
    await until(() => stack.agent.metrics.render().includes('enclave_agent_steve_buffered_bytes 0'), 'the reservation back');
    expect(await metric('enclave_agent_steve_open_streams')).toBe(0);
    void sequence;
  });

  it('64 MiB pass through: the app is held to what the client took, buffered bytes stay at one reservation', async () => {
    const total = 64 * 1024 * 1024;
    const session = await establish(stack);
    const before = app.hits.length;
    const { sequence, preamble, records } = streamRequest(session, { method: 'GET', path: `/big/${total}`, headers: {} });
    const res = await postStream(session.base, Buffer.concat([preamble, ...records]));
    const hit = hitFor(`/big/${total}`, before)()!;
    let maxAhead = 0;
    let maxBuffered = 0;
    let paused = false;
    const reply = await readStream(session, sequence, res, async (record, so) => {
      if (record.kind !== FRAME_KIND.DATA) return;
      maxAhead = Math.max(maxAhead, hit.sent - so.bodyBytes);
      maxBuffered = Math.max(maxBuffered, await metric('enclave_agent_steve_buffered_bytes'));
      if (!paused && so.bodyBytes >= 1 << 20) {
        // The client stops for a while: the app must stop too (a server that buffered would take it all).
        paused = true;
        await untilStalled(() => hit.sent, 'the app to stall', 300, () => hit.sent === total);
        maxAhead = Math.max(maxAhead, hit.sent - so.bodyBytes);
      }
    });
    expect(reply.cut).toBe(false);
    expect(reply.bodyBytes).toBe(total);
    expect(reply.bodySha256).toBe(createHash('sha256').update(Buffer.concat(Array.from({ length: total / 65_536 }, () => Buffer.from(pattern(65_536, 3))))).digest('hex'));
    expect(maxBuffered).toBeLessThanOrEqual(RESERVATION);
    // Socket buffers only (loopback: a few MiB per socket, four sockets in the path).
    expect(maxAhead).toBeLessThan(32 * 1024 * 1024);
  }, 60_000);
});

describe('streaming off', () => {
  it('404 not_found, and the binding has the five fields of v2', async () => {
    const off = await startStack({ upstream: app.url, config: { streaming: false } });
    try {
      const req = sessionRequest(off.suite);
      const reply = await postCbor(off.base, '/e2p/v2/session', req.bytes);
      const { userData } = deriveClientSession(off.suite, req, decodeSessionResponse(reply.body), off.pki.root.der);
      expect(Object.keys(JSON.parse(text(userData)))).toEqual(['protocol', 'key_exchange', 'session_id', 'transcript_hash', 'binder']);
      const session = await establish(off);
      const res = await streamOnce(session, { method: 'GET', path: '/hello', headers: {} });
      expect(res.status).toBe(404);
      expect(res.error).toBe('not_found');
    } finally {
      await off.stop();
    }
  });
});

describe('the proxy ends streams itself', () => {
  it('no record moved for the idle timeout: ABORT stream_idle after the HEAD, the app request closed', async () => {
    const idle = await startStack({ upstream: app.url, config: { streamIdleTimeoutMs: 300 } });
    try {
      const session = await establish(idle);
      const before = app.hits.length;
      const reply = await streamOnce(session, { method: 'GET', path: '/lockstep', headers: {} });
      expect(reply.status).toBe(200);
      expect(reply.records.map((r) => r.kind)).toEqual([FRAME_KIND.HEAD, FRAME_KIND.ABORT]);
      expect(reply.records[1]!.error).toBe('stream_idle');
      const hit = hitFor('/lockstep', before)()!;
      await until(() => hit.responseClosedEarly, 'the app request to be closed');
    } finally {
      await idle.stop();
    }
  });

  it('an unreachable app: a 200 stream whose HEAD is the proxy\'s 502 upstream_unavailable, then END', async () => {
    const nowhere = await startStack({ upstream: 'http://127.0.0.1:9/' });
    try {
      const session = await establish(nowhere);
      const reply = await streamOnce(session, { method: 'GET', path: '/hello', headers: {} });
      expect(reply.status).toBe(200);
      expect(reply.records.map((r) => r.kind)).toEqual([FRAME_KIND.HEAD, FRAME_KIND.END]);
      expect(reply.head).toEqual({ status: 502, headers: [], body: null, error: 'upstream_unavailable' });
    } finally {
      await nowhere.stop();
    }
  });
});
