/**
 * The agent's routing around STEVE (specs/steve.md §6): fail closed (403 exactly `{"error":"e2e_required"}`,
 * no-store, the app never contacted) for every ordinary request except the bootstrap files a browser
 * needs first (forwarded in plaintext, without the caller's cookie or authorization); `/attestation` and
 * health stay the agent's; the explicit plaintext fallback forwards ordinary requests but changes nothing
 * under `/e2p/`; CORS on `/e2p/v2/*` only, for exact origins; methods and unknown endpoints.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, establish, postCbor, send, sessionRequest, startDemoApp, startStack, text, type DemoApp, type Stack } from './harness.js';

let app: DemoApp;
const stacks: Stack[] = [];

beforeAll(async () => {
  app = await startDemoApp();
});

afterAll(async () => {
  await Promise.all(stacks.map((s) => s.stop()));
  await app.close();
});

async function stack(config: NonNullable<Parameters<typeof startStack>[0]>['config'] = {}): Promise<Stack> {
  const s = await startStack({ suite: 'X25519', upstream: app.url, config });
  stacks.push(s);
  return s;
}

describe('fail-closed routing (the default)', () => {
  let s: Stack;
  beforeAll(async () => {
    s = await stack();
  });

  it('refuses ordinary requests with 403 e2e_required and never contacts the app', async () => {
    const before = app.hits.length;
    for (const [method, path] of [
      ['HEAD', '/'],
      ['POST', '/'],
      ['GET', '/index.html'],
      ['GET', '/api/data?q=1'],
      ['POST', '/submit'],
      ['PUT', '/x'],
      ['DELETE', '/enclave-sw.js'],
      ['POST', '/register.js'],
      ['GET', '/enclave-sw.js/more'],
      ['GET', '/xwing/other.wasm'],
      ['GET', '/e2p'],
      ['GET', '/metrics'],
      // A query makes a bootstrap path an ordinary request (steve/protocol/routing.ts).
      ['GET', '/?card=4111111111111111'],
      ['GET', '/register.js?v=2'],
      ['HEAD', '/enclave-sw.js?x'],
    ] as const) {
      const reply = await call(`${s.base}${path}`, { method, body: method === 'GET' || method === 'HEAD' ? null : 'secret plaintext' });
      expect(reply.status, `${method} ${path}`).toBe(403);
      if (method !== 'HEAD') expect(text(reply.body), `${method} ${path}`).toBe('{"error":"e2e_required"}');
      expect(reply.headers['cache-control']).toBe('no-store');
      expect(reply.headers['access-control-allow-origin']).toBeUndefined();
    }
    expect(app.hits.length).toBe(before);
    const metrics = text((await call(`${s.internal}/metrics`)).body);
    expect(metrics).toContain('enclave_agent_http_requests_total{route="e2e_required",status="403"} 15');
  });

  it('forwards the bootstrap files in plaintext: GET /, and GET or HEAD of the four scripts, with only the headers a static file needs', async () => {
    for (const [method, path] of [
      ['GET', '/'],
      ['GET', '/?'],
      ['GET', '/enclave-sw.js'],
      ['HEAD', '/enclave-sw.js'],
      ['GET', '/register.js'],
      ['HEAD', '/register.js'],
      ['GET', '/attestation-widget.js'],
      ['GET', '/xwing/steve_xwing_wasm_bg.wasm'],
      ['HEAD', '/xwing/steve_xwing_wasm_bg.wasm'],
    ] as const) {
      const before = app.hits.length;
      const reply = await call(`${s.base}${path}`, {
        method,
        headers: {
          cookie: 'sid=1',
          authorization: 'Bearer x',
          'x-api-key': 'secret-key',
          'x-other': 'dropped',
          'x-forwarded-for': '10.9.8.7',
          'x-forwarded-proto': 'https',
          accept: 'text/html',
          'accept-encoding': 'gzip',
          'accept-language': 'en',
          'user-agent': 'test-agent',
          'if-none-match': '"etag-1"',
          'if-modified-since': 'Mon, 01 Jan 2024 00:00:00 GMT',
        },
      });
      expect(reply.status, `${method} ${path}`).toBe(200);
      // `/?` has the empty query (WHATWG URL): the app is asked for `/`.
      if (method === 'GET') expect(text(reply.body)).toBe(`app:${path === '/?' ? '/' : path}`);
      expect(app.hits.length).toBe(before + 1);
      const hit = app.hits[before]!;
      expect(hit.method).toBe(method);
      // Exactly the allow-list (steve/server/headers.ts), the agent's host and its one x-forwarded-proto.
      expect(Object.keys(hit.headers).sort()).toEqual(['accept', 'accept-encoding', 'accept-language', 'connection', 'host', 'if-modified-since', 'if-none-match', 'user-agent', 'x-forwarded-proto']);
      expect(hit.headers['x-forwarded-proto']).toBe('http');
      expect(hit.headers['user-agent']).toBe('test-agent');
    }
  });

  it('keeps /attestation, health and /healthz the agent\'s', async () => {
    const before = app.hits.length;
    expect((await call(`${s.base}/attestation?nonce=aabb`)).status).toBe(200);
    expect(text((await call(`${s.base}/.well-known/caution/health`)).body)).toBe('OK');
    expect(text((await call(`${s.base}/healthz`)).body)).toBe('{"status":"ok"}');
    const health = JSON.parse(text((await call(`${s.internal}/healthz`)).body)) as { sessions: number };
    expect(typeof health.sessions).toBe('number');
    expect(app.hits.length).toBe(before);
  });

  it('answers unknown /e2p/ paths 404 and other methods 405, without the app', async () => {
    const before = app.hits.length;
    for (const path of ['/e2p/v2/unknown', '/e2p/v3/session', '/e2p/', '/e2p/v1/other']) {
      const reply = await postCbor(s.base, path, new Uint8Array(0));
      expect(reply.status, path).toBe(404);
      expect(text(reply.body)).toBe('{"error":"not_found"}');
    }
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const reply = await call(`${s.base}/e2p/v2/session`, { method });
      expect(reply.status).toBe(405);
      expect(reply.headers.allow).toBe('POST, OPTIONS');
      expect(text(reply.body)).toBe('{"error":"method_not_allowed"}');
    }
    expect(app.hits.length).toBe(before);
  });

  it('the session gauge follows the table', async () => {
    const read = async () => Number(/\nenclave_agent_steve_sessions (\d+)/.exec(text((await call(`${s.internal}/metrics`)).body))?.[1]);
    const start = await read();
    await establish(s);
    await establish(s);
    expect(await read()).toBe(start + 2);
    expect((JSON.parse(text((await call(`${s.internal}/healthz`)).body)) as { sessions: number }).sessions).toBe(start + 2);
  });
});

describe('with --allow-plaintext-fallback=true', () => {
  it('forwards ordinary requests in plaintext; /e2p/ behaves exactly as without it', async () => {
    const s = await stack({ allowPlaintextFallback: true });
    const before = app.hits.length;
    const reply = await call(`${s.base}/api/data?q=1`, { method: 'POST', body: 'plain' });
    expect(reply.status).toBe(200);
    expect(text(reply.body)).toBe('app:/api/data?q=1');
    expect(app.hits.length).toBe(before + 1);
    // E2P is unchanged: garbage is refused, unknown /e2p/ paths are 404, and nothing of it reaches the app.
    expect((await postCbor(s.base, '/e2p/v2/request', Uint8Array.of(0xff))).status).toBe(400);
    expect((await postCbor(s.base, '/e2p/v2/nope', Uint8Array.of(0xff))).status).toBe(404);
    expect(app.hits.length).toBe(before + 1);
    const session = await establish(s);
    expect((await send(session, { path: '/through-steve' })).status).toBe(200);
  });
});

/** Headers a client or the host could use to lie to an app about who asked and how (the hardening round). */
const FORWARDING_HEADERS = {
  forwarded: 'for=10.1.2.3;proto=https;host=evil.example',
  'x-forwarded-for': '10.1.2.3',
  'x-forwarded-host': 'evil.example',
  'x-forwarded-port': '443',
  'x-forwarded-proto': 'https',
  'x-forwarded-prefix': '/admin',
  'x-real-ip': '10.1.2.3',
  'x-original-url': '/admin',
  'x-rewrite-url': '/admin',
  'x-client-ip': '10.1.2.3',
  'true-client-ip': '10.1.2.3',
};

describe('forwarding headers are the agent\'s on every path', () => {
  const forwardingSeen = (hit: { headers: Record<string, unknown> }) => Object.keys(hit.headers).filter((name) => name.startsWith('x-forwarded-') || name in FORWARDING_HEADERS);

  it('STEVE: none of the client\'s reach the app; it sees exactly one x-forwarded-proto, https', async () => {
    const s = await stack();
    const session = await establish(s);
    const before = app.hits.length;
    expect((await send(session, { path: '/echo', headers: { ...FORWARDING_HEADERS, 'x-kept': 'yes' } })).status).toBe(200);
    const hit = app.hits[before]!;
    expect(forwardingSeen(hit)).toEqual(['x-forwarded-proto']);
    expect(hit.headers['x-forwarded-proto']).toBe('https');
    expect(hit.headers['x-kept']).toBe('yes');
  });

  it('plaintext fallback and bootstrap: none of the client\'s reach the app; it sees exactly one x-forwarded-proto, http', async () => {
    const s = await stack({ allowPlaintextFallback: true });
    for (const path of ['/api/data', '/']) {
      const before = app.hits.length;
      // Repeated lines too: Node joins them, the agent must drop them whole.
      const reply = await call(`${s.base}${path}`, { headers: { ...FORWARDING_HEADERS, 'x-kept': 'yes' } });
      expect(reply.status, path).toBe(200);
      const hit = app.hits[before]!;
      expect(forwardingSeen(hit), path).toEqual(['x-forwarded-proto']);
      expect(hit.headers['x-forwarded-proto'], path).toBe('http');
      // The fallback passes ordinary headers; a bootstrap request only the allow-list.
      expect(hit.headers['x-kept'], path).toBe(path === '/' ? undefined : 'yes');
    }
  });
});

describe('CORS on /e2p/v2/* (§6)', () => {
  const ORIGIN = 'https://app.example';

  it('with a list: preflight allows POST and Content-Type for an exact origin, Vary: Origin, no credentials', async () => {
    const s = await stack({ corsOrigins: [ORIGIN, 'http://localhost:5173'] });
    for (const path of ['/e2p/v2/session', '/e2p/v2/confirm', '/e2p/v2/request']) {
      const preflight = await call(`${s.base}${path}`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
      expect(preflight.status).toBe(204);
      expect(preflight.headers['access-control-allow-origin']).toBe(ORIGIN);
      expect(preflight.headers['access-control-allow-methods']).toBe('POST');
      expect(preflight.headers['access-control-allow-headers']).toBe('content-type');
      expect(preflight.headers.vary).toBe('Origin');
      expect(preflight.headers['access-control-allow-credentials']).toBeUndefined();
      expect(preflight.headers['cache-control']).toBe('no-store');
    }
    for (const origin of ['https://evil.example', 'https://app.example.evil', 'https://app.example:443', 'null', 'HTTPS://APP.EXAMPLE']) {
      const preflight = await call(`${s.base}/e2p/v2/session`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
      expect(preflight.status, origin).toBe(204);
      expect(preflight.headers['access-control-allow-origin'], origin).toBeUndefined();
      expect(preflight.headers['access-control-allow-methods'], origin).toBeUndefined();
      expect(preflight.headers.vary).toBe('Origin');
    }
    // Actual answers carry the origin too, errors included, so the browser can read the status.
    const ok = await postCbor(s.base, '/e2p/v2/session', sessionRequest('X25519').bytes, { origin: ORIGIN });
    expect(ok.status).toBe(200);
    expect(ok.headers['access-control-allow-origin']).toBe(ORIGIN);
    const bad = await postCbor(s.base, '/e2p/v2/request', Uint8Array.of(0xff), { origin: ORIGIN });
    expect(bad.status).toBe(400);
    expect(bad.headers['access-control-allow-origin']).toBe(ORIGIN);
    // Not outside /e2p/v2/.
    const outside = await call(`${s.base}/api`, { headers: { origin: ORIGIN } });
    expect(outside.headers['access-control-allow-origin']).toBeUndefined();
    const v1 = await call(`${s.base}/e2p/v1/create_shared_key`, { method: 'OPTIONS', headers: { origin: ORIGIN } });
    expect(v1.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('without a list: no CORS headers at all', async () => {
    const s = await stack();
    const preflight = await call(`${s.base}/e2p/v2/session`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(204);
    for (const name of ['access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers', 'vary']) expect(preflight.headers[name], name).toBeUndefined();
    const reply = await postCbor(s.base, '/e2p/v2/session', sessionRequest('X25519').bytes, { origin: ORIGIN });
    expect(reply.headers['access-control-allow-origin']).toBeUndefined();
  });
});
