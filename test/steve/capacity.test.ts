/**
 * What a client that floods, stalls or stops reading can hold, and what it cannot (the hardening round):
 *
 * - the session table: a flood of pending sessions, or of confirmed sessions whose records decrypt but
 *   carry junk, never keeps a new legitimate session out (pending sessions have their own cap, the least
 *   recently used confirmed session is evicted, and only a request that reaches the app counts as use);
 *   a full table whose every session has a request at the app is 429 busy, and room comes back with them;
 * - one session cannot have more than 64 requests in flight (§5);
 * - answers count against the server's memory budget until they have left the process: clients that do
 *   not read hold it, the next answer that would pass it is 429 busy, and a socket that takes no bytes for
 *   the send timeout is closed, which gives its answer's memory back.
 *
 * Each with the real agent (startAgent, mock NSM) in front of an app on loopback that can hold requests.
 */

import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeEnvelope, decodeEnvelope } from '../../steve/index.js';
import {
  createHeldResponses,
  call,
  confirmSession,
  establish,
  openSession,
  postCbor,
  sealBytes,
  sealRequest,
  send,
  sessionRequest,
  startStack,
  text,
  type ClientSession,
  type Stack,
} from './harness.js';

/** An app whose `/held` requests wait until `releaseHeld()`, and whose `/big/N` answers N bytes. */
async function startHoldingApp() {
  const held = createHeldResponses();
  let arrivals = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const path = (req.url ?? '').split('?')[0]!;
      if (path === '/held') {
        arrivals += 1;
        held.hold(res);
      } else if (path.startsWith('/big/')) {
        const body = Buffer.alloc(Number(path.slice('/big/'.length)), 0x5a);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
        res.end(body);
      } else {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`app:${path}`);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    get arrivals() {
      return arrivals;
    },
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

type HoldingApp = Awaited<ReturnType<typeof startHoldingApp>>;

let app: HoldingApp;
const stacks: Stack[] = [];

beforeAll(async () => {
  app = await startHoldingApp();
});

afterAll(async () => {
  app.releaseHeld();
  for (const stack of stacks) await stack.stop();
  await app.close();
});

type StackOptions = NonNullable<Parameters<typeof startStack>[0]>;

async function stackWith(config: StackOptions['config']): Promise<Stack> {
  const stack = await startStack({ suite: 'X25519', upstream: app.url, ...(config !== undefined ? { config } : {}) });
  stacks.push(stack);
  return stack;
}

/** Waits until `check()` holds (polling), at most `ms`. */
async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A request record that decrypts under the session but is not an application request (junk plaintext). */
async function sendJunk(session: ClientSession): Promise<number> {
  const reply = await postCbor(session.base, '/e2p/v2/request', sealBytes(session, new Uint8Array([0x01, 0x02, 0x03])).bytes);
  return reply.status;
}

describe('the session table cannot be held', () => {
  it('a flood of pending sessions: the oldest pending ones go, and a new client gets in at once', async () => {
    const stack = await stackWith({ maxSessions: 20, maxPendingSessions: 5 });
    const flood: ClientSession[] = [];
    // More pending sessions than the whole table holds, all from this address.
    for (let i = 0; i < 25; i++) flood.push(await openSession(stack));
    const legit = await establish(stack);
    expect((await send(legit, { path: '/after-flood' })).status).toBe(200);
    // The oldest flooders were evicted: their confirmation finds no session.
    const evicted = await postCbor(stack.base, '/e2p/v2/confirm', encodeEnvelope({ sessionId: flood[0]!.id, sequence: 0, ciphertext: new Uint8Array(16) }));
    expect(evicted.status).toBe(401);
    expect(text(evicted.body)).toBe('{"error":"session_invalid"}');
    // The newest pending one is still there and can confirm.
    await confirmSession(flood[24]!);
  });

  it('confirmed sessions that only send junk stay least recently used: they go before a session the app served', async () => {
    const stack = await stackWith({ maxSessions: 3 });
    const legit = await establish(stack);
    const junk = [await establish(stack), await establish(stack)];
    expect((await send(legit, { path: '/used' })).status).toBe(200);
    // Records that decrypt but are not requests (400): they do not make their sessions recent.
    for (const session of junk) for (let i = 0; i < 3; i++) expect(await sendJunk(session)).toBe(400);
    // The table is full; a new session takes the least recently used slot: a junk sender's.
    const newcomer = await establish(stack);
    expect((await send(newcomer, { path: '/newcomer' })).status).toBe(200);
    expect((await send(legit, { path: '/legit-still-here' })).status).toBe(200);
    const reply = await postCbor(stack.base, '/e2p/v2/request', sealRequest(junk[0]!, { method: 'GET', path: '/x', headers: {}, body: null }).bytes);
    expect(reply.status).toBe(401);
  });

  it('a full table whose every session has a request at the app refuses new sessions 429; room comes back with the answers', async () => {
    const stack = await stackWith({ maxSessions: 2 });
    const a = await establish(stack);
    const b = await establish(stack);
    const before = app.arrivals;
    const pending = [a, b].map((session) => send(session, { path: '/held' }));
    await until(() => app.arrivals === before + 2);
    const refused = await postCbor(stack.base, '/e2p/v2/session', sessionRequest('X25519').bytes);
    expect(refused.status).toBe(429);
    expect(text(refused.body)).toBe('{"error":"busy"}');
    app.releaseHeld();
    for (const answer of await Promise.all(pending)) expect(answer.status).toBe(200);
    const later = await establish(stack);
    expect((await send(later, { path: '/room-again' })).status).toBe(200);
  });

  it('one session has at most 64 requests in flight (§5): the 65th is 429 busy and the session goes on', async () => {
    const stack = await stackWith({});
    const session = await establish(stack);
    const before = app.arrivals;
    const inFlight = Array.from({ length: 64 }, () => send(session, { path: '/held' }));
    await until(() => app.arrivals === before + 64);
    const extra = await postCbor(stack.base, '/e2p/v2/request', sealRequest(session, { method: 'GET', path: '/held', headers: {}, body: null }).bytes);
    expect(extra.status).toBe(429);
    expect(text(extra.body)).toBe('{"error":"busy"}');
    expect(app.arrivals).toBe(before + 64);
    app.releaseHeld();
    for (const answer of await Promise.all(inFlight)) expect(answer.status).toBe(200);
    expect((await send(session, { path: '/after' })).status).toBe(200);
  }, 30_000);
});

/**
 * Sends one sealed request on a raw socket and never reads the answer. Resolves with the socket once the
 * answer's headers are known to be out (the app was asked); `closed` settles when the server closes it.
 */
async function nonReadingRequest(stack: Stack, session: ClientSession, path: string): Promise<{ socket: Socket; closed: Promise<void> }> {
  const address = stack.agent.addresses.public;
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const closed = once(socket, 'close').then(() => undefined);
  socket.on('error', () => undefined);
  const body = sealRequest(session, { method: 'GET', path, headers: {}, body: null }).bytes;
  socket.write(`POST /e2p/v2/request HTTP/1.1\r\nHost: agent\r\nContent-Type: application/cbor\r\nContent-Length: ${body.length}\r\n\r\n`);
  socket.write(body);
  // Read only the first bytes (so the answer is known to have started), then stop reading for good.
  await once(socket, 'data');
  socket.pause();
  return { socket, closed };
}

describe('answers count against the memory budget until they are gone', () => {
  const ANSWER_BYTES = 24 * 1024 * 1024;

  it('clients that stop reading hold the budget: the next large answer is 429 busy; the send timeout closes them and frees it', async () => {
    // 40 MiB: one 24 MiB answer fits, two do not. The kernel takes a few MiB of a stalled answer at most.
    const stack = await stackWith({ maxBufferedBytes: 40 * 1024 * 1024, sendTimeoutMs: 1500 });
    const session = await establish(stack);
    const stalled = await nonReadingRequest(stack, session, `/big/${ANSWER_BYTES}`);
    const started = Date.now();
    const refused = await postCbor(stack.base, '/e2p/v2/request', sealRequest(session, { method: 'GET', path: `/big/${ANSWER_BYTES}`, headers: {}, body: null }).bytes);
    expect(refused.status).toBe(429);
    expect(text(refused.body)).toBe('{"error":"busy"}');
    // The server closes the socket that took nothing for the send timeout, and its answer's bytes leave
    // the budget (bounded wait: well before 20 s). A paused socket does not see the close itself.
    const buffered = async () => Number(/\nenclave_agent_steve_buffered_bytes (\d+)/.exec(text((await call(`${stack.internal}/metrics`)).body))?.[1]);
    expect(await buffered()).toBeGreaterThanOrEqual(ANSWER_BYTES);
    const deadline = Date.now() + 20_000;
    while ((await buffered()) !== 0) {
      if (Date.now() > deadline) throw new Error('the stalled answer still holds the budget');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    // The stalled client, reading again, finds a cut answer and a closed connection.
    const received: Buffer[] = [];
    stalled.socket.on('data', (chunk: Buffer) => received.push(chunk));
    stalled.socket.resume();
    await stalled.closed;
    expect(Buffer.concat(received).length).toBeLessThan(ANSWER_BYTES);
    // The memory is back: the same answer now goes through, intact, to a client that reads.
    const answer = await send(session, { path: `/big/${ANSWER_BYTES}` });
    expect(answer.status).toBe(200);
    expect(answer.body!.length).toBe(ANSWER_BYTES);
    // Small answers are unaffected throughout.
    expect((await send(session, { path: '/small' })).status).toBe(200);
  }, 60_000);

  it('a client that reads slowly but steadily is not cut off', async () => {
    const stack = await stackWith({ sendTimeoutMs: 1000 });
    const session = await establish(stack);
    const address = stack.agent.addresses.public;
    const socket = connect(Number(address.slice(address.lastIndexOf(':') + 1)), '127.0.0.1');
    await once(socket, 'connect');
    const body = sealRequest(session, { method: 'GET', path: `/big/${8 * 1024 * 1024}`, headers: {}, body: null }).bytes;
    socket.write(`POST /e2p/v2/request HTTP/1.1\r\nHost: agent\r\nContent-Type: application/cbor\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
    socket.write(body);
    // One chunk at a time with a pause after each: the whole answer takes longer than the send timeout,
    // but the server makes progress all along.
    const started = Date.now();
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      socket.pause();
      setTimeout(() => socket.resume(), 15);
    });
    await once(socket, 'end');
    expect(Date.now() - started).toBeGreaterThan(1000);
    const raw = Buffer.concat(chunks);
    const headEnd = raw.indexOf('\r\n\r\n');
    expect(raw.subarray(0, 12).toString('latin1')).toBe('HTTP/1.1 200');
    const envelope = decodeEnvelope(new Uint8Array(raw.subarray(headEnd + 4)));
    expect(envelope.ciphertext.length).toBeGreaterThan(8 * 1024 * 1024);
  }, 30_000);
});
