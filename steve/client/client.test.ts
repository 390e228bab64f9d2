/**
 * The client after establishment, against the fake server (test/steve-client-fixtures.ts): answers as
 * web Responses, answers for another session or sequence refused, §6 status handling (which statuses end
 * the session), no automatic retry but one (server hits counted: a request refused with 401
 * session_invalid is sent once more on a fresh, verified session), the 64-outstanding limit as the replay
 * window sees it, rotation after the configured age, response caps read incrementally, timeouts and aborts.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import {
  createFakeServer,
  createMockAttester,
  createTestClient,
  deferred,
  endlessBody,
  type FakeServer,
  type MockAttester,
} from '../../test/steve-client-fixtures.js';
import { MAX_APPLICATION_RESPONSE_BYTES, MAX_CONFIRMATION_RESPONSE_BYTES, MAX_SESSION_RESPONSE_BYTES, type AppResponse } from '../protocol/index.js';
import { SteveClientError, STEVE_CLIENT_DEFAULTS, type SteveClientErrorCode } from './index.js';

let attester: MockAttester;
beforeAll(() => {
  attester = createMockAttester();
});

async function failure(run: Promise<unknown>): Promise<SteveClientError> {
  const error = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SteveClientError);
  return error as SteveClientError;
}

/** Waits until `condition` holds, letting the event loop run (the fake server answers asynchronously). */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 1));
  expect(condition(), what).toBe(true);
}

const text = (value: string): Uint8Array => new TextEncoder().encode(value);

describe('answers', () => {
  it('keeps repeated fields, redirects as they are, and renders an error-only answer as JSON', async () => {
    const answers: Record<string, AppResponse> = {
      '/cookies': { status: 200, headers: [['set-cookie', 'a=1; Path=/'], ['set-cookie', 'b=2; Path=/'], ['x-many', 'one'], ['x-many', 'two']], body: text('ok') },
      '/moved': { status: 302, headers: [['location', '/elsewhere']], body: null },
      '/failed': { status: 502, headers: [], body: null, error: 'upstream_unreachable' },
      '/failed-with-type': { status: 504, headers: [['content-type', 'application/problem+json']], body: null, error: { code: 'timeout', after: 30 } },
      '/empty': { status: 204, headers: [], body: null },
      '/not-modified': { status: 304, headers: [['etag', '"x"']], body: null },
    };
    const server = createFakeServer({ suite: 'X25519', attester, app: (request) => answers[request.path]! });
    const client = createTestClient(server, attester);

    const cookies = await client.request('/cookies');
    expect(cookies.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; Path=/']);
    expect(cookies.headers.get('x-many')).toBe('one, two');
    expect(await cookies.text()).toBe('ok');

    const moved = await client.request('/moved');
    expect({ status: moved.status, location: moved.headers.get('location'), redirected: moved.redirected }).toEqual({ status: 302, location: '/elsewhere', redirected: false });

    const failed = await client.request('/failed');
    expect(failed.status).toBe(502);
    expect(failed.headers.get('content-type')).toBe('application/json');
    expect(await failed.json()).toEqual({ error: 'upstream_unreachable' });
    const typed = await client.request('/failed-with-type');
    expect(typed.headers.get('content-type')).toBe('application/problem+json');
    expect(await typed.json()).toEqual({ error: { code: 'timeout', after: 30 } });

    expect((await client.request('/empty')).status).toBe(204);
    const notModified = await client.request('/not-modified');
    expect({ status: notModified.status, body: notModified.body }).toEqual({ status: 304, body: null });
    // One session for all of them, sequences 1..6 in order.
    expect(server.hits.session).toBe(1);
    expect(server.appSequences).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('refuses an answer carrying another sequence or session id, and ends the session', async () => {
    for (const change of ['sequence', 'sessionId'] as const) {
      const server = createFakeServer({ suite: 'X25519', attester });
      const client = createTestClient(server, attester);
      await client.request('/');
      server.hooks.responseEnvelope = (envelope) =>
        change === 'sequence' ? { ...envelope, sequence: envelope.sequence + 1 } : { ...envelope, sessionId: envelope.sessionId.map((b) => b ^ 1) };
      const error = await failure(client.request('/'));
      expect({ code: error.code, stage: error.stage, sessionEnded: error.sessionEnded }).toEqual({ code: 'STEVE_CLIENT_PROTOCOL', stage: 'request', sessionEnded: true });
      delete server.hooks.responseEnvelope;
      await client.request('/');
      expect(server.hits.session, 'a new session after the refused answer').toBe(2);
    }
  });

  it('refuses an answer that does not open or is not CBOR', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    server.hooks.requestAnswer = (bytes) => {
      const copy = bytes.slice();
      copy[copy.length - 3]! ^= 1;
      return copy;
    };
    expect((await failure(client.request('/'))).code).toBe('STEVE_CLIENT_PROTOCOL');
    server.hooks.requestAnswer = () => text('<html>captive portal</html>');
    expect((await failure(client.request('/'))).code).toBe('STEVE_CLIENT_PROTOCOL');
  });
});

describe('outer statuses (specs/steve.md §6)', () => {
  it.each([400, 401, 409, 425])('%i ends the session: the next request establishes a new one', async (status) => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    await client.request('/');
    server.hooks.requestStatus = (sequence) => (sequence === 2 ? status : undefined);
    const error = await failure(client.request('/'));
    expect({ code: error.code, status: error.status, sessionEnded: error.sessionEnded, serverError: error.serverError }).toEqual({
      code: 'STEVE_CLIENT_HTTP',
      status,
      sessionEnded: true,
      serverError: `status_${status}`,
    });
    const first = client.lastReceipt!.sessionId;
    const next = await client.request('/');
    expect(client.receiptFor(next)).toMatchObject({ sequence: 1 });
    expect(client.receiptFor(next)!.sessionId).not.toBe(first);
    expect(server.hits).toMatchObject({ session: 2, confirm: 2, request: 3 });
  });

  it.each([403, 404, 408, 413, 429, 500, 502, 503, 504])('%i fails only that request: the session is kept', async (status) => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    await client.request('/');
    server.hooks.requestStatus = (sequence) => (sequence === 2 ? status : undefined);
    const error = await failure(client.request('/'));
    expect({ code: error.code, status: error.status, sessionEnded: error.sessionEnded }).toEqual({ code: 'STEVE_CLIENT_HTTP', status, sessionEnded: false });
    const next = await client.request('/');
    expect(client.receiptFor(next)).toMatchObject({ sequence: 3 });
    expect(server.hits).toMatchObject({ session: 1, confirm: 1, request: 3 });
  });

  it('never retries on its own: one hit per failed request, one per failed establishment', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    await client.request('/');
    server.hooks.requestStatus = () => 503;
    for (let i = 0; i < 3; i++) await failure(client.request('/'));
    expect(server.hits.request).toBe(4);
    server.hooks.requestStatus = () => 401;
    await failure(client.request('/'));
    expect(server.hits).toMatchObject({ session: 1, request: 5 });
    // Establishment failing: one session hit per request that needed it, never more.
    server.hooks.sessionAnswer = () => new Response(null, { status: 503 });
    await failure(client.request('/'));
    await failure(client.request('/'));
    expect(server.hits).toMatchObject({ session: 3, confirm: 1, request: 5 });
  });

  it('a session the server no longer knows (401 session_invalid): re-established, verified again, and an idempotent request sent once more', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    await client.request('/');
    const first = client.lastReceipt!.sessionId;
    // The agent restarted (or a balancer moved the client): every session it had is gone.
    server.sessions.clear();
    const answer = await client.request('/after-restart', { method: 'PUT', body: text('payload') });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-path')).toBe('/after-restart');
    expect(await answer.text()).toBe('payload');
    expect(client.receiptFor(answer)).toMatchObject({ sequence: 1 });
    expect(client.receiptFor(answer)!.sessionId).not.toBe(first);
    // One refused send on the lost session (the app never saw it), one new session with its document, one send.
    expect(server.hits).toMatchObject({ session: 2, confirm: 2, request: 3 });
    expect(server.appSequences).toEqual([1, 1]);
  });

  it('a POST is not sent again after that 401 (a host could forge it to have the app run the POST twice): the caller gets it, the next request gets a new session', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    await client.request('/');
    server.sessions.clear();
    const error = await failure(client.request('/pay', { method: 'POST', body: text('once') }));
    expect({ code: error.code, status: error.status, serverError: error.serverError, sessionEnded: error.sessionEnded }).toEqual({
      code: 'STEVE_CLIENT_HTTP',
      status: 401,
      serverError: 'session_invalid',
      sessionEnded: true,
    });
    expect(server.hits).toMatchObject({ session: 1, request: 2 });
    const next = await client.request('/next');
    expect(next.status).toBe(200);
    expect(server.hits).toMatchObject({ session: 2, confirm: 2, request: 3 });
    expect(server.appSequences).toEqual([1, 1]);
  });

  it("resendOnUnknownSession: 'all' resends a POST, 'none' not even a GET; anything else is refused", async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const all = createTestClient(server, attester, { resendOnUnknownSession: 'all' });
    await all.request('/');
    server.sessions.clear();
    expect((await all.request('/pay', { method: 'POST', body: text('keyed') })).status).toBe(200);
    const none = createTestClient(server, attester, { resendOnUnknownSession: 'none' });
    await none.request('/');
    server.sessions.clear();
    expect((await failure(none.request('/'))).status).toBe(401);
    expect(() => createTestClient(server, attester, { resendOnUnknownSession: 'sometimes' as never })).toThrow(/resendOnUnknownSession/);
  });

  it('the new session is verified from scratch: a document that does not verify fails the request, which the app never saw', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    await client.request('/');
    server.sessions.clear();
    server.hooks.attestNonce = (nonce) => nonce.map((b) => b ^ 1);
    const error = await failure(client.request('/after-restart'));
    expect({ code: error.code, stage: error.stage }).toEqual({ code: 'STEVE_CLIENT_ATTESTATION', stage: 'attestation' });
    expect(server.hits).toMatchObject({ session: 2, confirm: 1, request: 2 });
    expect(server.appSequences).toEqual([1]);
  });

  it('requests in flight on a lost session share one new session, and each is sent once more', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    await client.request('/');
    server.sessions.clear();
    const answers = await Promise.all([0, 1, 2, 3].map((i) => client.request(`/r${i}`)));
    expect(answers.map((a) => a.headers.get('x-path'))).toEqual(['/r0', '/r1', '/r2', '/r3']);
    expect(new Set(answers.map((a) => client.receiptFor(a)!.sessionId)).size).toBe(1);
    expect(server.hits).toMatchObject({ session: 2, confirm: 2, request: 9 });
  });

  it('sends a request at most twice: a server that forgets again gets the 401 to the caller', async () => {
    const always = createFakeServer({ suite: 'X25519', attester, hooks: {} });
    const stubborn = createTestClient(always, attester, {
      fetch: async (url, init) => {
        const response = await always.fetch(url, init);
        if (url.endsWith('/e2p/v2/confirm')) always.sessions.clear();
        return response;
      },
    });
    const error = await failure(stubborn.request('/'));
    expect({ code: error.code, status: error.status, serverError: error.serverError, sessionEnded: error.sessionEnded }).toEqual({
      code: 'STEVE_CLIENT_HTTP',
      status: 401,
      serverError: 'session_invalid',
      sessionEnded: true,
    });
    expect(always.hits).toMatchObject({ session: 2, confirm: 2, request: 2 });
    expect(always.appSequences).toEqual([]);
  });

  it('does not send a ReadableStream body twice (the first send consumed it)', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    await client.request('/');
    server.sessions.clear();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(text('once'));
        controller.close();
      },
    });
    const error = await failure(client.request('/upload', { method: 'POST', body }));
    expect({ code: error.code, status: error.status, sessionEnded: error.sessionEnded }).toEqual({ code: 'STEVE_CLIENT_HTTP', status: 401, sessionEnded: true });
    expect(server.hits).toMatchObject({ session: 1, request: 2 });
  });

  it('a network failure fails only that request', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    let broken = false;
    const client = createTestClient(server, attester, {
      fetch: (url, init) => (broken ? Promise.reject(new TypeError('fetch failed')) : server.fetch(url, init)),
    });
    await client.request('/');
    broken = true;
    const error = await failure(client.request('/'));
    expect({ code: error.code, sessionEnded: error.sessionEnded }).toEqual({ code: 'STEVE_CLIENT_NETWORK', sessionEnded: false });
    broken = false;
    expect(client.receiptFor(await client.request('/'))).toMatchObject({ sequence: 3 });
    expect(server.hits.session).toBe(1);
  });
});

describe('outstanding requests', () => {
  it('keeps at most 64 outstanding; the rest wait in order', async () => {
    const gates = new Map<number, { resolve(): void }>();
    const server = createFakeServer({
      suite: 'X25519',
      attester,
      app: async (_request, sequence) => {
        const gate = deferred();
        gates.set(sequence, gate);
        await gate.promise;
        return { status: 200, headers: [], body: text(String(sequence)) };
      },
    });
    const client = createTestClient(server, attester);
    const all = Array.from({ length: 100 }, (_, i) => client.request(`/item/${i}`));
    await until(() => server.appSequences.length === 64, '64 requests reach the app');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(server.hits.request).toBe(64);
    expect(server.appSequences).toEqual(Array.from({ length: 64 }, (_, i) => i + 1));

    // Sequences 2..64 finish, 1 stays out: 65 would be 64 above it, outside the server's window.
    for (let sequence = 2; sequence <= 64; sequence++) gates.get(sequence)!.resolve();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(server.hits.request).toBe(64);

    gates.get(1)!.resolve();
    await until(() => server.appSequences.length === 100, 'the queued requests go once 1 is done');
    for (const gate of gates.values()) gate.resolve();
    const responses = await Promise.all(all);
    // In call order: request i got sequence i + 1.
    expect(await Promise.all(responses.map((r) => r.text()))).toEqual(Array.from({ length: 100 }, (_, i) => String(i + 1)));
    expect(server.hits.session).toBe(1);
    expect(STEVE_CLIENT_DEFAULTS.maxOutstanding).toBe(64);
  });

  it('requests made while the session is being established wait for it, and share it', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    const responses = await Promise.all(Array.from({ length: 10 }, () => client.request('/')));
    expect(responses.map((r) => client.receiptFor(r)!.sequence).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(server.hits).toMatchObject({ session: 1, confirm: 1, request: 10 });
  });

  it('a failed establishment fails every request waiting for it, once', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    server.hooks.confirmPlaintext = (hash) => hash.map((b) => b ^ 1);
    const client = createTestClient(server, attester);
    const errors = await Promise.all(Array.from({ length: 5 }, () => failure(client.request('/'))));
    expect(errors.map((e) => e.code)).toEqual(Array(5).fill('STEVE_CLIENT_CONFIRMATION'));
    expect(server.hits).toMatchObject({ session: 1, confirm: 1, request: 0 });
  });
});

describe('rotation', () => {
  it('establishes a fresh session for the next request after rotateAfterMs; in-flight requests finish on the old one', async () => {
    let clock = Date.now();
    const hold = deferred();
    const server = createFakeServer({
      suite: 'X25519',
      attester,
      app: async (request) => {
        if (request.path === '/slow') await hold.promise;
        return { status: 200, headers: [], body: null };
      },
    });
    const client = createTestClient(server, attester, { now: () => clock, rotateAfterMs: 60_000 });
    const first = client.receiptFor(await client.request('/'))!;
    const slow = client.request('/slow');
    await until(() => server.appSequences.length === 2, 'the slow request is in flight');
    clock += 59_999;
    expect(client.receiptFor(await client.request('/'))!.sessionId).toBe(first.sessionId);
    clock += 1;
    const rotated = client.receiptFor(await client.request('/'))!;
    expect(rotated.sessionId).not.toBe(first.sessionId);
    expect(rotated.sequence).toBe(1);
    hold.resolve();
    const slowReceipt = client.receiptFor(await slow)!;
    expect({ sessionId: slowReceipt.sessionId, sequence: slowReceipt.sequence }).toEqual({ sessionId: first.sessionId, sequence: 2 });
    expect(server.hits).toMatchObject({ session: 2, confirm: 2, request: 4 });
  });

  it('defaults to 25 minutes', () => {
    expect(STEVE_CLIENT_DEFAULTS.rotateAfterMs).toBe(25 * 60 * 1000);
  });
});

describe('size caps, read incrementally', () => {
  async function capped(server: FakeServer, run: () => Promise<unknown>, body: ReturnType<typeof endlessBody>, cap: number, stage: string): Promise<void> {
    const error = await failure(run());
    expect({ code: error.code, stage: error.stage }).toEqual({ code: 'STEVE_CLIENT_TOO_LARGE' as SteveClientErrorCode, stage });
    expect(body.pulled(), 'stopped reading soon after the cap').toBeLessThanOrEqual(cap + 2 * 1024 * 1024);
    await until(() => body.cancelled(), 'the body was cancelled');
    void server;
  }

  it('application answers over 33,619,968 bytes', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    await client.request('/');
    const body = endlessBody();
    server.hooks.requestAnswer = () => new Response(body.stream, { status: 200 });
    await capped(server, () => client.request('/'), body, MAX_APPLICATION_RESPONSE_BYTES, 'request');
    // A declared length over the cap is refused before reading.
    const declared = endlessBody();
    server.hooks.requestAnswer = () => new Response(declared.stream, { status: 200, headers: { 'content-length': String(MAX_APPLICATION_RESPONSE_BYTES + 1) } });
    expect((await failure(client.request('/'))).code).toBe('STEVE_CLIENT_TOO_LARGE');
    expect(declared.pulled()).toBeLessThanOrEqual(2 * 1024 * 1024);
  });

  it('session answers over 65,536 bytes and confirmations over 4,096 bytes', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const body = endlessBody(1024);
    server.hooks.sessionAnswer = () => new Response(body.stream, { status: 200 });
    await capped(server, () => createTestClient(server, attester).request('/'), body, MAX_SESSION_RESPONSE_BYTES, 'session');
    delete server.hooks.sessionAnswer;
    const confirmBody = endlessBody(512);
    server.hooks.confirmAnswer = () => new Response(confirmBody.stream, { status: 200 });
    await capped(server, () => createTestClient(server, attester).request('/'), confirmBody, MAX_CONFIRMATION_RESPONSE_BYTES, 'confirm');
    expect(server.hits.request).toBe(0);
  });

  it('refuses to send a request envelope over 32 MiB, without using a sequence', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    // With streaming off, refused before anything is sent.
    const off = createTestClient(server, attester, { streaming: false });
    const offError = await failure(off.request('/', { method: 'POST', body: new Uint8Array(32 * 1024 * 1024) }));
    expect({ code: offError.code, stage: offError.stage }).toEqual({ code: 'STEVE_CLIENT_TOO_LARGE', stage: 'request' });
    expect(server.calls).toEqual([]);
    // Streaming on (the default): a stream could carry it, so the session is established first; this
    // server's binding offers no stream-1, so it is refused there, before a sequence is used.
    const client = createTestClient(server, attester);
    const error = await failure(client.request('/', { method: 'POST', body: new Uint8Array(32 * 1024 * 1024) }));
    expect({ code: error.code, stage: error.stage }).toEqual({ code: 'STEVE_CLIENT_TOO_LARGE', stage: 'request' });
    expect(server.hits).toMatchObject({ session: 1, confirm: 1, request: 0 });
    // The largest body that fits goes through (the server's own envelope cap is the same 32 MiB).
    const fits = 32 * 1024 * 1024 - 200;
    const response = await client.request('/', { method: 'POST', body: new Uint8Array(fits) });
    expect((await response.arrayBuffer()).byteLength).toBe(fits);
    expect(client.receiptFor(response)!.sequence).toBe(1);
  });
});

describe('timeouts and aborts', () => {
  it('the establishment deadline', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const never = createTestClient(server, attester, { establishTimeoutMs: 50, fetch: (_url, init) => new Promise((_resolve, reject) => init.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')))) });
    const error = await failure(never.request('/'));
    expect({ code: error.code, stage: error.stage }).toEqual({ code: 'STEVE_CLIENT_TIMEOUT', stage: 'session' });
    expect(STEVE_CLIENT_DEFAULTS.establishTimeoutMs).toBe(10_000);
  });

  it('the request timeout fails that request only', async () => {
    const hold = deferred();
    const server = createFakeServer({ suite: 'X25519', attester, app: async (request) => (request.path === '/slow' ? hold.promise.then(() => ({ status: 200, headers: [], body: null })) : { status: 200, headers: [], body: null }) });
    const client = createTestClient(server, attester, { requestTimeoutMs: 30_000 });
    await client.request('/');
    const error = await failure(client.request('/slow', { timeoutMs: 50 }));
    expect({ code: error.code, stage: error.stage, sessionEnded: error.sessionEnded }).toEqual({ code: 'STEVE_CLIENT_TIMEOUT', stage: 'request', sessionEnded: false });
    hold.resolve();
    expect(client.receiptFor(await client.request('/'))).toMatchObject({ sequence: 3 });
    expect(server.hits.session).toBe(1);
    expect(STEVE_CLIENT_DEFAULTS.requestTimeoutMs).toBe(30_000);
  });

  it('the caller\'s signal aborts a queued or in-flight request', async () => {
    const hold = deferred();
    const server = createFakeServer({ suite: 'X25519', attester, app: async () => hold.promise.then(() => ({ status: 200, headers: [], body: null })) });
    const client = createTestClient(server, attester);
    const before = new AbortController();
    before.abort();
    expect((await failure(client.request('/', { signal: before.signal }))).code).toBe('STEVE_CLIENT_ABORTED');
    expect(server.calls).toEqual([]);
    const during = new AbortController();
    const pending = client.request('/', { signal: during.signal });
    await until(() => server.appSequences.length === 1, 'in flight');
    during.abort();
    expect((await failure(pending)).code).toBe('STEVE_CLIENT_ABORTED');
    hold.resolve();
  });

  it('close() refuses new requests', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    await client.request('/');
    client.close();
    expect((await failure(client.request('/'))).code).toBe('STEVE_CLIENT_CLOSED');
  });
});
