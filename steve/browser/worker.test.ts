/**
 * The enclave worker's logic (worker.ts) in Node, against the real agent with the mock NSM: routing (what
 * passes through, what goes through STEVE), the answers it hands the page (the app's `x-steve-*` headers
 * replaced by its own), the status it keeps for the widget, its commands, and failing closed with
 * 502 + code + stage when the config is unusable or the enclave unreachable. The same code runs in
 * Chromium in test/browser/browser.e2e.test.ts.
 */

import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAgent, type TestAgent } from '../../test/steve-client-agent.js';
import { createMockAttester, memoryTofuStore, type MockAttester } from '../../test/steve-client-fixtures.js';
import { normaliseConfig, workerScriptUrl, type EnclavePcrPolicy } from './config.js';
import { bytesToHex } from './encoding.js';
import { CHANNEL_FAILED_BODY } from './messages.js';
import { createEnclaveWorker, type EnclaveWorker } from './worker.js';

let attester: MockAttester;
let app: Server;
let agent: TestAgent;
const appHits: string[] = [];

beforeAll(async () => {
  attester = createMockAttester();
  app = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      appHits.push(`${req.method} ${req.url}`);
      // The app tries to pose as the worker: these must not reach the page.
      res.writeHead(200, { 'content-type': 'text/plain', 'x-steve-error': 'forged', 'x-steve-session': 'forged', 'x-app': 'kept' });
      res.end(`${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`);
    });
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  agent = await startTestAgent({ pki: attester.pki, suite: 'X25519', upstream: `http://127.0.0.1:${(app.address() as AddressInfo).port}` });
});

afterAll(async () => {
  await agent?.stop();
  app?.close();
  await attester?.nsm.close();
});

function workerFor(origin: string, pcrPolicy: EnclavePcrPolicy = { kind: 'tofu' }) {
  const inner = memoryTofuStore();
  const store = Object.assign(inner, { async clear() { inner.value = null; } });
  const config = normaliseConfig({ origin, keyExchange: 'X25519', pcrPolicy, root: attester.root, requestTimeoutMs: 5_000 });
  const worker = createEnclaveWorker({ scriptUrl: workerScriptUrl('/enclave-sw.js', config, `${origin}/`), scope: `${origin}/`, createTofuStore: () => store });
  return { worker, store };
}

async function protectedFetch(worker: EnclaveWorker, url: string, init?: RequestInit): Promise<Response> {
  const answer = worker.handleFetch(new Request(url, init));
  expect(answer, `${url} should go through STEVE`).not.toBeNull();
  return answer!;
}

describe('enclave worker', () => {
  it('lets the bootstrap files, /attestation, /e2p/, health and other origins through, and takes the rest', async () => {
    const { worker } = workerFor(agent.origin);
    const taken: Promise<Response>[] = [];
    const passes = (path: string, method = 'GET', origin = agent.origin) => {
      const answer = worker.handleFetch(new Request(`${origin}${path}`, { method }));
      if (answer !== null) taken.push(answer);
      return answer === null;
    };
    for (const path of ['/', '/?', '/enclave-sw.js', '/register.js', '/attestation-widget.js', '/xwing/steve_xwing_wasm_bg.wasm', '/healthz', '/.well-known/caution/health']) {
      expect(passes(path), path).toBe(true);
    }
    expect(passes('/register.js', 'HEAD')).toBe(true);
    expect(passes('/attestation', 'POST')).toBe(true);
    expect(passes('/e2p/v2/session', 'POST')).toBe(true);
    expect(passes('/api', 'GET', 'https://elsewhere.example')).toBe(true);
    expect(passes('/', 'POST')).toBe(false);
    // A query makes a bootstrap path an ordinary request (steve/protocol/routing.ts): it goes through STEVE.
    expect(passes('/?card=4111111111111111')).toBe(false);
    expect(passes('/register.js?v=2')).toBe(false);
    // The agent serves HEAD only for the four files, not for / (specs/steve.md §6): so does the worker.
    expect(passes('/', 'HEAD')).toBe(false);
    expect(passes('/register.js', 'POST')).toBe(false);
    expect(passes('/index.html')).toBe(false);
    expect(passes('/api/echo')).toBe(false);
    // Those went through STEVE (and reached the app, encrypted): let them finish before the next test counts.
    expect((await Promise.all(taken)).map((response) => response.status)).toEqual([200, 200, 200, 200, 200, 200, 200]);
  });

  it('carries requests through STEVE, replaces the app\'s x-steve-* headers, and reports what it verified', async () => {
    const { worker, store } = workerFor(agent.origin);
    const before = appHits.length;
    const get = await protectedFetch(worker, `${agent.origin}/api/echo?x=1`);
    expect(get.status).toBe(200);
    expect(await get.text()).toBe('GET /api/echo?x=1 ');
    expect(get.headers.get('x-app')).toBe('kept');
    expect(get.headers.get('x-steve-error')).toBeNull();
    const session = get.headers.get('x-steve-session');
    expect(session).toMatch(/^[0-9a-f]{32}$/);
    expect(get.headers.get('x-steve-sequence')).toBe('1');

    const post = await protectedFetch(worker, `${agent.origin}/api/echo`, { method: 'POST', body: 'sealed body' });
    expect(await post.text()).toBe('POST /api/echo sealed body');
    expect(post.headers.get('x-steve-session')).toBe(session);
    expect(post.headers.get('x-steve-sequence')).toBe('2');
    expect(appHits.slice(before)).toEqual(['GET /api/echo?x=1', 'POST /api/echo']);

    const status = worker.status;
    expect(status).toMatchObject({ state: 'verified', origin: agent.origin, suite: 'X25519', policy: 'tofu', lastError: null, requests: { succeeded: 2, failed: 0 } });
    expect(status.session).toMatchObject({ sessionId: session, trust: { policy: 'tofu', result: 'tofu-recorded' }, moduleId: attester.pki.moduleId });
    expect(status.session!.pcrs).toEqual([0, 1, 2].map((index) => ({ index, hex: bytesToHex(attester.profile.pcrs.get(index)!) })));
    expect(store.saved).toHaveLength(1);

    // rotate: a new session, matched against the record; reset: the record is forgotten.
    expect((await worker.handleCommand({ type: 'steve/rotate' })).ok).toBe(true);
    const third = await protectedFetch(worker, `${agent.origin}/api/echo`);
    expect(third.headers.get('x-steve-session')).not.toBe(session);
    expect(worker.status.session!.trust).toEqual({ policy: 'tofu', result: 'tofu-matched' });
    const reset = await worker.handleCommand({ type: 'steve/reset' });
    expect(reset).toMatchObject({ ok: true, status: { state: 'idle', session: null, requests: { succeeded: 0, failed: 0 } } });
    expect(store.value).toBeNull();
    await protectedFetch(worker, `${agent.origin}/api/echo`);
    expect(worker.status.session!.trust).toEqual({ policy: 'tofu', result: 'tofu-recorded' });
  });

  it('fails closed with 502 and the code and stage: wrong pinned PCRs, an unreachable enclave', async () => {
    const before = appHits.length;
    const pinned = workerFor(agent.origin, { kind: 'pinned', profiles: [{ name: 'other', pcrs: { 0: 'ab'.repeat(48) } }] }).worker;
    const refused = await protectedFetch(pinned, `${agent.origin}/api/echo`, { method: 'POST', body: 'secret' });
    expect(refused.status).toBe(502);
    expect(await refused.text()).toBe(CHANNEL_FAILED_BODY);
    expect([refused.headers.get('x-steve-error'), refused.headers.get('x-steve-stage'), refused.headers.get('cache-control')]).toEqual(['STEVE_CLIENT_PCR', 'pcr', 'no-store']);
    expect(pinned.status).toMatchObject({ state: 'failed', session: null, lastError: { code: 'STEVE_CLIENT_PCR', stage: 'pcr', status: 502 }, requests: { failed: 1 } });
    expect(appHits.length).toBe(before);

    const unreachable = workerFor('http://127.0.0.1:9').worker;
    const down = await protectedFetch(unreachable, 'http://127.0.0.1:9/api/echo');
    expect([down.status, down.headers.get('x-steve-error'), down.headers.get('x-steve-stage')]).toEqual([502, 'STEVE_CLIENT_NETWORK', 'session']);
  });

  it('without a usable config, fails every request to its own origin and says so in its status', async () => {
    const worker = createEnclaveWorker({ scriptUrl: `${agent.origin}/enclave-sw.js?config=broken`, scope: `${agent.origin}/` });
    expect(worker.status).toMatchObject({ state: 'failed', origin: null, lastError: { code: 'STEVE_BROWSER_CONFIG', stage: 'config' } });
    const answer = await protectedFetch(worker, `${agent.origin}/api/echo`);
    expect([answer.status, answer.headers.get('x-steve-error'), answer.headers.get('x-steve-stage')]).toEqual([502, 'STEVE_BROWSER_CONFIG', 'config']);
    expect(worker.handleFetch(new Request(`${agent.origin}/register.js`))).toBeNull();
    expect(await worker.handleCommand({ type: 'nope' } as never)).toMatchObject({ ok: false, error: { code: 'STEVE_BROWSER_WORKER' } });
  });
});
