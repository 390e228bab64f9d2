/**
 * STEVE end to end on loopback, for both suites: a real agent (mock NSM) in front of a demo app, and
 * the low-level client of harness.ts, which verifies the document (nodeP384Verifier, mock root, nonce)
 * and the user_data binding and confirms before it sends any application data (§5). Then: GET and
 * POST, binary bodies, 32 MiB both ways, repeated set-cookie, redirects passed through, headers to the
 * app (§7: hop-by-hop dropped, host and x-forwarded-proto set, only the encrypted request's cookies and
 * authorization), the app down (sealed 502) or hanging (sealed 504), and 64 concurrent requests within
 * the replay window. Sessions show in the internal /healthz and the metrics gauge.
 */

import { once } from 'node:events';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_SERVER_RESPONSE_ENVELOPE_BYTES, MAX_UPSTREAM_BODY_BYTES, type Suite } from '../../steve/index.js';
import {
  call,
  establish,
  header,
  openResponse,
  openSession,
  pattern,
  postCbor,
  send,
  sealRequest,
  sha256Hex,
  startDemoApp,
  startStack,
  text,
  utf8,
  type DemoApp,
  type Stack,
} from './harness.js';

let app: DemoApp;
const stacks: Stack[] = [];

beforeAll(async () => {
  app = await startDemoApp();
});

afterAll(async () => {
  await Promise.all(stacks.map((s) => s.stop()));
  await app.close();
});

async function stack(options: Parameters<typeof startStack>[0]): Promise<Stack> {
  const started = await startStack(options);
  stacks.push(started);
  return started;
}

describe.each(['X25519', 'XWING-DRAFT10'] as Suite[])('STEVE v2 with %s', (suite) => {
  let s: Stack;
  beforeAll(async () => {
    s = await stack({ suite, upstream: app.url });
  });

  it('establishes: document and binding verified, confirmed, before the app sees anything', async () => {
    const before = app.hits.length;
    const session = await openSession(s);
    expect(session.id.length).toBe(16);
    // Establishment never contacts the app.
    expect(app.hits.length).toBe(before);
    const health = JSON.parse(text((await call(`${s.internal}/healthz`)).body)) as { sessions: number };
    expect(health.sessions).toBeGreaterThanOrEqual(1);
    const metrics = text((await call(`${s.internal}/metrics`)).body);
    expect(Number(/\nenclave_agent_steve_sessions (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    // Request before confirmation: 425, nothing forwarded.
    const early = await postCbor(s.base, '/e2p/v2/request', sealRequest(session, { method: 'GET', path: '/echo', headers: {}, body: null }).bytes);
    expect(early.status).toBe(425);
    expect(text(early.body)).toBe('{"error":"session_unconfirmed"}');
    expect(app.hits.length).toBe(before);
  });

  it('GET and POST with text and binary bodies; the answer carries the same session id and sequence', async () => {
    const session = await establish(s);
    const get = await send(session, { method: 'GET', path: '/echo?q=1&r=2' });
    expect(get.status).toBe(200);
    const seenGet = JSON.parse(text(get.body)) as { method: string; url: string; bodyBytes: number };
    expect(seenGet).toMatchObject({ method: 'GET', url: '/echo?q=1&r=2', bodyBytes: 0 });

    const binary = pattern(70_000, 3);
    const post = await send(session, { method: 'POST', path: '/echo-body', headers: { 'content-type': 'application/octet-stream' }, body: binary });
    expect(post.status).toBe(200);
    expect(sha256Hex(post.body!)).toBe(sha256Hex(binary));
    expect(header(post, 'x-app')).toEqual(['echo-body']);

    const put = await send(session, { method: 'PUT', path: '/echo', headers: { 'content-type': 'text/plain; charset=utf-8' }, body: utf8('héllo ✓') });
    const seenPut = JSON.parse(text(put.body)) as { method: string; headers: Record<string, string>; bodySha256: string };
    expect(seenPut.method).toBe('PUT');
    expect(seenPut.bodySha256).toBe(sha256Hex(utf8('héllo ✓')));

    const empty = await send(session, { method: 'GET', path: '/bytes/0' });
    expect(empty.body).toBeNull();
    const small = await send(session, { method: 'GET', path: '/bytes/300' });
    expect(sha256Hex(small.body!)).toBe(sha256Hex(pattern(300, 7)));

    const head = await send(session, { method: 'HEAD', path: '/bytes/300' });
    expect(head.status).toBe(200);
    expect(head.body).toBeNull();
  });

  it('headers to the app (§7): hop-by-hop dropped, host and x-forwarded-proto set, cookies only from inside', async () => {
    const session = await establish(s);
    const sealed = sealRequest(session, {
      method: 'GET',
      path: '/echo/headers',
      headers: {
        cookie: 'inner=1',
        authorization: 'Bearer inner',
        connection: 'x-hop-listed',
        'x-hop-listed': 'must not pass',
        'keep-alive': 'timeout=1',
        te: 'trailers',
        'proxy-authorization': 'Basic x',
        host: 'evil.example',
        'x-forwarded-proto': 'gopher',
        'x-end-to-end': 'kept',
      },
      body: null,
    });
    // The OUTER request's credentials must never reach the app.
    const reply = await postCbor(s.base, '/e2p/v2/request', sealed.bytes, { cookie: 'outer=1', authorization: 'Bearer outer' });
    expect(reply.status).toBe(200);
    const seen = JSON.parse(text(openResponse(session, reply.body, sealed.sequence).body)) as { headers: Record<string, string> };
    expect(seen.headers.cookie).toBe('inner=1');
    expect(seen.headers.authorization).toBe('Bearer inner');
    expect(seen.headers['x-end-to-end']).toBe('kept');
    expect(seen.headers.host).toBe(new URL(app.url).host);
    expect(seen.headers['x-forwarded-proto']).toBe('https');
    for (const name of ['x-hop-listed', 'keep-alive', 'te', 'proxy-authorization']) expect(seen.headers[name], name).toBeUndefined();
  });

  it('response headers: repeated set-cookie kept as pairs, hop-by-hop dropped; 3xx and 4xx/5xx returned as they are', async () => {
    const session = await establish(s);
    const cookies = await send(session, { path: '/cookies' });
    expect(header(cookies, 'set-cookie')).toEqual(['session=abc; Path=/; HttpOnly', 'theme=dark; Path=/']);
    const hop = await send(session, { path: '/hop' });
    expect(header(hop, 'x-kept')).toEqual(['yes']);
    for (const name of ['connection', 'keep-alive', 'x-hop-secret', 'proxy-authenticate']) expect(header(hop, name), name).toEqual([]);
    const redirect = await send(session, { path: '/redirect' });
    expect(redirect.status).toBe(302);
    expect(header(redirect, 'location')).toEqual(['/elsewhere']);
    expect(text(redirect.body)).toBe('moved');
    expect(app.hits.some((hit) => hit.url === '/elsewhere')).toBe(false);
    for (const status of [404, 500, 503]) expect((await send(session, { path: `/status/${status}` })).status).toBe(status);
  });

  it('64 concurrent requests within the replay window, in any order', async () => {
    const session = await establish(s);
    const sealed = Array.from({ length: 64 }, (_, i) => ({ i, ...sealRequest(session, { method: 'POST', path: `/echo-body?i=${i}`, headers: {}, body: pattern(1024 + i, i) }) }));
    // Sent in reverse: the highest sequence first, the rest arrive "late" but inside the 64-wide window.
    const replies = await Promise.all(sealed.reverse().map(async (r) => ({ ...r, reply: await postCbor(s.base, '/e2p/v2/request', r.bytes) })));
    for (const { i, sequence, reply } of replies) {
      expect(reply.status, `request ${i}`).toBe(200);
      expect(sha256Hex(openResponse(session, reply.body, sequence).body!)).toBe(sha256Hex(pattern(1024 + i, i)));
    }
  });
});

describe('large bodies and app failures (X25519)', () => {
  let s: Stack;
  /** The same app behind an agent that gives it only 300 ms (the hang test; 25 s is the default). */
  let impatient: Stack;
  beforeAll(async () => {
    s = await stack({ suite: 'X25519', upstream: app.url });
    impatient = await stack({ suite: 'X25519', upstream: app.url, steve: { upstreamTimeoutMs: 300 } });
  });

  it('32 MiB bodies (the §6 caps): requests and answers up to the caps go through intact; no envelope is over 32 MiB', async () => {
    const session = await establish(s);
    const big = pattern(MAX_UPSTREAM_BODY_BYTES - 1024, 5);
    // A request envelope is at most 32 MiB (§6): the body leaves room for the CBOR around it.
    const echoed = await send(session, { method: 'POST', path: '/echo', headers: { 'content-type': 'application/octet-stream' }, body: big });
    expect(JSON.parse(text(echoed.body))).toMatchObject({ bodyBytes: big.length, bodySha256: sha256Hex(big) });
    /** The answer to GET /bytes/N, with the size of its envelope as it came off the wire. */
    const download = async (bytes: number) => {
      const sealed = sealRequest(session, { method: 'GET', path: `/bytes/${bytes}`, headers: {}, body: null });
      const reply = await postCbor(s.base, '/e2p/v2/request', sealed.bytes);
      expect(reply.status).toBe(200);
      return { envelopeBytes: reply.body.length, answer: openResponse(session, reply.body, sealed.sequence) };
    };
    // Just under the cap, with room for the envelope: intact.
    const under = MAX_SERVER_RESPONSE_ENVELOPE_BYTES - 65_536;
    const down = await download(under);
    expect(down.answer.status).toBe(200);
    expect(down.answer.body!.length).toBe(under);
    expect(sha256Hex(down.answer.body!)).toBe(sha256Hex(pattern(under, 7)));
    expect(down.envelopeBytes).toBeLessThanOrEqual(MAX_SERVER_RESPONSE_ENVELOPE_BYTES);
    // A body at the authors' cap fits the body check but not the envelope the clients accept: a sealed
    // 502 the client handles as a failed request, never an envelope over 32 MiB that drops its session.
    for (const bytes of [MAX_UPSTREAM_BODY_BYTES, MAX_UPSTREAM_BODY_BYTES + 1]) {
      const over = await download(bytes);
      expect(over.answer.status, String(bytes)).toBe(502);
      expect(over.answer.error).toBe('upstream_response_too_large');
      expect(over.answer.body).toBeNull();
      expect(over.envelopeBytes).toBeLessThan(1024);
    }
    // The session goes on.
    expect((await send(session, { path: '/after-too-large' })).status).toBe(200);
  }, 60_000);

  it('the app hanging: a sealed 504 with an error field; the outer status stays 200', async () => {
    const session = await establish(impatient);
    const sealed = sealRequest(session, { method: 'GET', path: '/hang', headers: {}, body: null });
    const reply = await postCbor(impatient.base, '/e2p/v2/request', sealed.bytes);
    expect(reply.status).toBe(200);
    const answer = openResponse(session, reply.body, sealed.sequence);
    expect(answer.status).toBe(504);
    expect(answer.error).toBe('upstream_timeout');
    expect(answer.body).toBeNull();
    // The session is intact.
    expect((await send(session, { path: '/after-timeout' })).status).toBe(200);
  });

  it('a client that hangs up mid-request: the app request is aborted at once, not left to the deadline', async () => {
    // An app of its own that records when its hanging request's connection closes.
    let closed!: () => void;
    const appClosed = new Promise<void>((resolve) => (closed = resolve));
    let received!: () => void;
    const appReceived = new Promise<void>((resolve) => (received = resolve));
    const slow = createServer((req, res) => {
      received();
      res.on('close', () => closed());
    });
    slow.listen(0, '127.0.0.1');
    await once(slow, 'listening');
    try {
      // The default 25 s upstream deadline: only the client's hang-up can end the app's request early.
      const patient = await stack({ suite: 'X25519', upstream: `http://127.0.0.1:${(slow.address() as AddressInfo).port}/` });
      const session = await establish(patient);
      const sealed = sealRequest(session, { method: 'GET', path: '/slow', headers: {}, body: null });
      const outer = httpRequest(`${patient.base}/e2p/v2/request`, { method: 'POST', agent: false, headers: { 'content-type': 'application/cbor', 'content-length': String(sealed.bytes.length) } });
      outer.on('error', () => {});
      outer.end(Buffer.from(sealed.bytes));
      await appReceived;
      const hungUpAt = Date.now();
      outer.destroy();
      await appClosed;
      // Bounded by the test's own timeout; what matters is that it happens long before 25 s.
      expect(Date.now() - hungUpAt).toBeLessThan(10_000);
      const metrics = text((await call(`${patient.internal}/metrics`)).body);
      expect(metrics).toContain('enclave_agent_upstream_errors_total{kind="client_gone"} 1');
    } finally {
      slow.closeAllConnections();
      await new Promise<void>((resolve) => slow.close(() => resolve()));
    }
  }, 20_000);

  it('the app down: a sealed 502 with an error field, counted in the metrics', async () => {
    const down = await startDemoApp();
    const downUrl = down.url;
    await down.close();
    const dead = await stack({ suite: 'X25519', upstream: downUrl });
    const session = await establish(dead);
    const sealed = sealRequest(session, { method: 'POST', path: '/anything', headers: {}, body: utf8('x') });
    const reply = await postCbor(dead.base, '/e2p/v2/request', sealed.bytes);
    expect(reply.status).toBe(200);
    const answer = openResponse(session, reply.body, sealed.sequence);
    expect(answer).toMatchObject({ status: 502, error: 'upstream_unavailable', body: null, headers: [] });
    const metrics = text((await call(`${dead.internal}/metrics`)).body);
    expect(metrics).toContain('enclave_agent_upstream_errors_total{kind="ECONNREFUSED"} 1');
    expect(metrics).toContain('enclave_agent_http_requests_total{route="steve_request",status="200"} 1');
  });
});
