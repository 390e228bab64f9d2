/**
 * The enclave worker's logic (worker.ts) in Node, against the real agent with the mock NSM: routing (what
 * passes through, what goes through STEVE), the answers it hands the page (the app's `x-steve-*` headers
 * replaced by its own), the status it keeps for the widget, its commands, its config (configured by
 * command, kept in a store across restarts, replaced whole) and failing closed with 502 + code + stage
 * when it has no usable config or the enclave is unreachable. A restart is a new worker over the same
 * stores, as the browser's is a new worker over the same IndexedDB. The same code runs in Chromium in
 * test/browser/browser.e2e.test.ts.
 */

import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAgent, type TestAgent } from '../../test/steve-client-agent.js';
import { createMockAttester, memoryTofuStore, type MockAttester } from '../../test/steve-client-fixtures.js';
import { encodeWorkerConfig, normaliseConfig, workerConfigId, type EnclavePcrPolicy, type WorkerConfig } from './config.js';
import type { WorkerConfigStore } from './config-store.js';
import { bytesToHex } from './encoding.js';
import { CHANNEL_FAILED_BODY, CONFIG_HEADER } from './messages.js';
import type { IndexedDbTofuStore } from './tofu-store.js';
import { createEnclaveWorker, type EnclaveWorker, type EnclaveWorkerOptions } from './worker.js';

let attester: MockAttester;
let app: Server;
let agent: TestAgent;
const appHits: string[] = [];
/** How each /stream/* answer ended on the app's side: `finished` false when it was cut before its end. */
const streamsClosed: Array<{ url: string; finished: boolean }> = [];
/** Holds the rest of /stream/gated until `openGate`. */
let openGate: () => void = () => undefined;
let gate: Promise<void> = new Promise<void>((resolve) => (openGate = resolve));

beforeAll(async () => {
  attester = createMockAttester();
  app = createServer((req, res) => {
    if (req.url === '/stream/gated' || req.url === '/stream/broken') {
      appHits.push(`${req.method} ${req.url}`);
      // A streamed answer: a first chunk, then (gated) the rest, or the connection cut in the middle.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.on('close', () => streamsClosed.push({ url: req.url!, finished: res.writableFinished }));
      res.write('first ');
      if (req.url === '/stream/broken') setTimeout(() => res.destroy(), 50);
      else void gate.then(() => res.end('second'));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      appHits.push(`${req.method} ${req.url}`);
      // The app tries to pose as the worker: these must not reach the page. x-app-config: what it saw of the page's config header.
      res.writeHead(200, {
        'content-type': 'text/plain',
        'x-steve-error': 'forged',
        'x-steve-session': 'forged',
        'x-app': 'kept',
        'x-app-config': String(req.headers[CONFIG_HEADER] ?? 'none'),
      });
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

/** A config store in memory; `hold` makes `load` wait until `release`, `failSave` makes `save` fail. */
class MemoryConfigStore implements WorkerConfigStore {
  saves = 0;
  failSave = false;
  #gate: Promise<void> | null = null;
  #release: () => void = () => undefined;
  constructor(public text: string | null = null) {}
  hold(): void {
    this.#gate = new Promise<void>((resolve) => (this.#release = resolve));
  }
  release(): void {
    this.#release();
  }
  async load(): Promise<string | null> {
    if (this.#gate !== null) await this.#gate;
    return this.text;
  }
  async save(value: string): Promise<void> {
    if (this.failSave) throw new Error('disk full');
    this.text = value;
    this.saves++;
  }
}
const memoryConfigStore = (text: string | null = null) => new MemoryConfigStore(text);

function memoryIndexedDbTofuStore(): IndexedDbTofuStore & ReturnType<typeof memoryTofuStore> {
  const inner = memoryTofuStore();
  return Object.assign(inner, {
    async clear() {
      inner.value = null;
    },
  });
}

const configFor = (origin: string, pcrPolicy: EnclavePcrPolicy = { kind: 'tofu' }): WorkerConfig =>
  normaliseConfig({ origin, keyExchange: 'X25519', pcrPolicy, root: attester.root, requestTimeoutMs: 5_000 });

/** A worker (a start of it) over `stores`; pass the same stores again for a restart. */
function startWorker(origin: string, stores: { configs: WorkerConfigStore; tofu: IndexedDbTofuStore }, extra: Partial<EnclaveWorkerOptions> = {}): EnclaveWorker {
  return createEnclaveWorker({ scope: `${origin}/`, configStore: stores.configs, createTofuStore: () => stores.tofu, ...extra });
}

async function configure(worker: EnclaveWorker, config: WorkerConfig) {
  return worker.handleCommand({ type: 'steve/configure', config: encodeWorkerConfig(config) });
}

/** A worker configured the way register.ts does it: start, then `steve/configure`. */
async function workerFor(origin: string, pcrPolicy: EnclavePcrPolicy = { kind: 'tofu' }) {
  const store = memoryIndexedDbTofuStore();
  const configs = memoryConfigStore();
  const config = configFor(origin, pcrPolicy);
  const worker = startWorker(origin, { configs, tofu: store });
  expect(await configure(worker, config)).toMatchObject({ ok: true, status: { configId: await workerConfigId(config), origin, state: 'idle' } });
  return { worker, store, configs, config };
}

const settled = async (promise: Promise<unknown>): Promise<boolean> => {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  // Let every already-resolved continuation run (no clock involved).
  for (let i = 0; i < 20; i++) await Promise.resolve();
  return done;
};

async function protectedFetch(worker: EnclaveWorker, url: string, init?: RequestInit): Promise<Response> {
  const answer = worker.handleFetch(new Request(url, init));
  expect(answer, `${url} should go through STEVE`).not.toBeNull();
  return answer!;
}

describe('enclave worker', () => {
  it('lets the bootstrap files, /attestation, /e2p/, health and other origins through, and takes the rest', async () => {
    const { worker } = await workerFor(agent.origin);
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
    const { worker, store } = await workerFor(agent.origin);
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
    const pinned = (await workerFor(agent.origin, { kind: 'pinned', profiles: [{ name: 'other', pcrs: { 0: 'ab'.repeat(48) } }] })).worker;
    const refused = await protectedFetch(pinned, `${agent.origin}/api/echo`, { method: 'POST', body: 'secret' });
    expect(refused.status).toBe(502);
    expect(await refused.text()).toBe(CHANNEL_FAILED_BODY);
    expect([refused.headers.get('x-steve-error'), refused.headers.get('x-steve-stage'), refused.headers.get('cache-control')]).toEqual(['STEVE_CLIENT_PCR', 'pcr', 'no-store']);
    expect(pinned.status).toMatchObject({ state: 'failed', session: null, lastError: { code: 'STEVE_CLIENT_PCR', stage: 'pcr', status: 502 }, requests: { failed: 1 } });
    expect(appHits.length).toBe(before);

    const unreachable = (await workerFor('http://127.0.0.1:9')).worker;
    const down = await protectedFetch(unreachable, 'http://127.0.0.1:9/api/echo');
    expect([down.status, down.headers.get('x-steve-error'), down.headers.get('x-steve-stage')]).toEqual([502, 'STEVE_CLIENT_NETWORK', 'session']);
  });

  it('without a config, fails every request to its own origin with STEVE_BROWSER_CONFIG and says so in its status', async () => {
    const before = appHits.length;
    const configs = memoryConfigStore();
    const worker = startWorker(agent.origin, { configs, tofu: memoryIndexedDbTofuStore() });
    await worker.ready;
    expect(worker.status).toMatchObject({ state: 'failed', origin: null, configId: null, policy: null, lastError: { code: 'STEVE_BROWSER_CONFIG', stage: 'config', status: 502 } });
    const answer = await protectedFetch(worker, `${agent.origin}/api/echo`, { method: 'POST', body: 'secret' });
    expect([answer.status, answer.headers.get('x-steve-error'), answer.headers.get('x-steve-stage')]).toEqual([502, 'STEVE_BROWSER_CONFIG', 'config']);
    expect(await answer.text()).toBe(CHANNEL_FAILED_BODY);
    // A request naming a config is refused too, whatever its origin; the bootstrap files and other origins pass.
    const named = await protectedFetch(worker, 'https://elsewhere.example/api', { headers: { [CONFIG_HEADER]: 'ab'.repeat(32) } });
    expect([named.status, named.headers.get('x-steve-error')]).toEqual([502, 'STEVE_BROWSER_CONFIG']);
    expect(worker.handleFetch(new Request(`${agent.origin}/register.js`))).toBeNull();
    expect(worker.handleFetch(new Request('https://elsewhere.example/api'))).toBeNull();
    // A config the worker cannot use is refused and changes nothing (the page validated it too, but the worker does not rely on that).
    expect(await worker.handleCommand({ type: 'steve/configure', config: '{"version":1}' })).toMatchObject({ ok: false, error: { code: 'STEVE_BROWSER_CONFIG', stage: 'config' } });
    expect(await worker.handleCommand({ type: 'steve/configure' } as never)).toMatchObject({ ok: false, error: { code: 'STEVE_BROWSER_CONFIG' } });
    expect(configs.saves).toBe(0);
    expect((await protectedFetch(worker, `${agent.origin}/api/echo`)).headers.get('x-steve-error')).toBe('STEVE_BROWSER_CONFIG');
    expect(await worker.handleCommand({ type: 'nope' } as never)).toMatchObject({ ok: false, error: { code: 'STEVE_BROWSER_WORKER' } });

    // A stored config it cannot use (another version), or a store that fails, leaves it unconfigured the same way.
    for (const broken of [memoryConfigStore(JSON.stringify({ ...configFor(agent.origin), version: 2 })), { load: async () => Promise.reject(new Error('broken')), save: async () => undefined }]) {
      const restarted = startWorker(agent.origin, { configs: broken, tofu: memoryIndexedDbTofuStore() });
      const refused = await protectedFetch(restarted, `${agent.origin}/api/echo`);
      expect([refused.status, refused.headers.get('x-steve-error'), refused.headers.get('x-steve-stage')]).toEqual([502, 'STEVE_BROWSER_CONFIG', 'config']);
      expect(restarted.status).toMatchObject({ state: 'failed', configId: null, lastError: { code: 'STEVE_BROWSER_CONFIG' } });
    }
    expect(appHits.length).toBe(before);
  });

  it('keeps its config across a restart: a new start reads it from the store, and fetches that arrive meanwhile wait', async () => {
    const { worker, store, configs, config } = await workerFor(agent.origin);
    const first = await protectedFetch(worker, `${agent.origin}/api/echo`);
    expect(first.status).toBe(200);
    expect(configs.saves).toBe(1);

    // The browser stopped the idle worker; the next fetch starts it again, without any page involved.
    configs.hold();
    const network: string[] = [];
    const restarted = startWorker(agent.origin, { configs, tofu: store }, {
      networkFetch: async (request) => {
        network.push(request.url);
        return new Response('from the network');
      },
    });
    const held = restarted.handleFetch(new Request(`${agent.origin}/api/echo`, { method: 'POST', body: 'after restart' }));
    // Another origin is held too while the enclave origin is unknown (it could be the enclave's), then sent on as it was.
    const elsewhere = restarted.handleFetch(new Request('https://elsewhere.example/img.png'));
    expect(held).not.toBeNull();
    expect(elsewhere).not.toBeNull();
    expect(await settled(held!)).toBe(false);
    configs.release();
    const answer = await held!;
    expect(answer.status).toBe(200);
    expect(await answer.text()).toBe('POST /api/echo after restart');
    expect(answer.headers.get('x-steve-session')).toMatch(/^[0-9a-f]{32}$/);
    expect(answer.headers.get('x-steve-session')).not.toBe(first.headers.get('x-steve-session'));
    expect(await (await elsewhere!).text()).toBe('from the network');
    expect(network).toEqual(['https://elsewhere.example/img.png']);
    // Once it knows its config, other origins are left to the browser again.
    expect(restarted.handleFetch(new Request('https://elsewhere.example/img.png'))).toBeNull();
    expect(restarted.status).toMatchObject({ state: 'verified', origin: agent.origin, policy: 'tofu', configId: await workerConfigId(config), session: { trust: { policy: 'tofu', result: 'tofu-matched' } } });
    // The page configuring it again with the same config changes nothing and stores nothing.
    expect(await configure(restarted, config)).toMatchObject({ ok: true, status: { state: 'verified', requests: { succeeded: 1 } } });
    expect(configs.saves).toBe(1);
  });

  it('takes a new config whole: stored first, a new client and status, and requests naming the old config refused', async () => {
    const { worker, configs, config: tofu } = await workerFor(agent.origin);
    const tofuId = await workerConfigId(tofu);
    const first = await protectedFetch(worker, `${agent.origin}/api/echo`, { headers: { [CONFIG_HEADER]: tofuId } });
    expect(first.status).toBe(200);
    // The header told the worker which config the page expects; the app never sees it.
    expect(first.headers.get('x-app-config')).toBe('none');
    const before = appHits.length;

    const wrong = configFor(agent.origin, { kind: 'pinned', profiles: [{ name: 'other', pcrs: { 0: 'ab'.repeat(48) } }] });
    const wrongId = await workerConfigId(wrong);
    expect(await configure(worker, wrong)).toMatchObject({
      ok: true,
      status: { state: 'idle', policy: 'pinned', profiles: ['other'], configId: wrongId, session: null, lastError: null, requests: { succeeded: 0, failed: 0 } },
    });
    expect(configs.text).toBe(encodeWorkerConfig(wrong));
    // The new config is in force at once: its PCRs do not match, so nothing reaches the app.
    const refused = await protectedFetch(worker, `${agent.origin}/api/echo`);
    expect([refused.status, refused.headers.get('x-steve-error')]).toEqual([502, 'STEVE_CLIENT_PCR']);
    // A page still on the old config is refused, not carried under the new one; the status is the new config's.
    const stale = await protectedFetch(worker, `${agent.origin}/api/echo`, { method: 'POST', body: 'stale page', headers: { [CONFIG_HEADER]: tofuId } });
    expect([stale.status, stale.headers.get('x-steve-error'), stale.headers.get('x-steve-stage')]).toEqual([502, 'STEVE_BROWSER_CONFIG', 'config']);
    expect(worker.status).toMatchObject({ configId: wrongId, requests: { failed: 1 }, lastError: { code: 'STEVE_CLIENT_PCR' } });
    expect(appHits.length).toBe(before);

    // A config it cannot store is not used: a restart would bring the stored one back.
    configs.failSave = true;
    expect(await configure(worker, tofu)).toMatchObject({ ok: false, error: { code: 'STEVE_BROWSER_WORKER', stage: 'worker' } });
    expect(worker.status.configId).toBe(wrongId);
    configs.failSave = false;

    // Back to TOFU: a new client, so a new session (the old config's first session is not reused).
    expect(await configure(worker, tofu)).toMatchObject({ ok: true, status: { configId: tofuId, policy: 'tofu' } });
    const again = await protectedFetch(worker, `${agent.origin}/api/echo`, { headers: { [CONFIG_HEADER]: tofuId } });
    expect(again.status).toBe(200);
    expect(again.headers.get('x-steve-session')).not.toBe(first.headers.get('x-steve-session'));
    // A restart reads the last config stored.
    const restarted = startWorker(agent.origin, { configs, tofu: memoryIndexedDbTofuStore() });
    await restarted.ready;
    expect(restarted.status.configId).toBe(tofuId);
  });

  it('applies a configure that arrives while the stored config is read after it, so the page\'s config wins', async () => {
    const configs = memoryConfigStore(encodeWorkerConfig(configFor(agent.origin)));
    configs.hold();
    const worker = startWorker(agent.origin, { configs, tofu: memoryIndexedDbTofuStore() });
    const pinned = configFor(agent.origin, { kind: 'pinned', profiles: [{ name: 'mock', pcrs: Object.fromEntries([...attester.profile.pcrs].filter(([i]) => i <= 2).map(([i, v]) => [i, bytesToHex(v)])) }] });
    const reply = configure(worker, pinned);
    configs.release();
    expect(await reply).toMatchObject({ ok: true, status: { policy: 'pinned', profiles: ['mock'], configId: await workerConfigId(pinned) } });
    const answer = await protectedFetch(worker, `${agent.origin}/api/echo`);
    expect(answer.status).toBe(200);
    expect(worker.status.session!.trust).toEqual({ policy: 'pinned', profile: 'mock' });
  });
});

describe('enclave worker, streamed answers (steve/protocol/stream.md)', () => {
  const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);
  /** `promise`, or a rejection naming `what` after 5 s (so a held-back chunk fails the test instead of hanging it). */
  const within = <T>(promise: Promise<T>, what: string): Promise<T> =>
    Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: nothing within 5 s`)), 5_000))]);

  it('hands the page each chunk as the app writes it, before the app has finished', async () => {
    gate = new Promise<void>((resolve) => (openGate = resolve));
    const { worker } = await workerFor(agent.origin);
    const answer = await protectedFetch(worker, `${agent.origin}/stream/gated`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-steve-session')).toMatch(/^[0-9a-f]{32}$/);
    const reader = answer.body!.getReader();
    // The app is still waiting on the gate: this chunk can only have come through as it was written.
    expect(text((await within(reader.read(), 'the first chunk')).value)).toBe('first ');
    openGate();
    let rest = '';
    for (;;) {
      const { done, value } = await within(reader.read(), 'the rest');
      if (done) break;
      rest += text(value);
    }
    expect(rest).toBe('second');
    expect(worker.status).toMatchObject({ state: 'verified', lastError: null, requests: { succeeded: 1, failed: 0 } });
  });

  it('passes the page\'s cancel on: the app\'s answer is cut, and the request is not a failure', async () => {
    gate = new Promise<void>((resolve) => (openGate = resolve));
    const { worker } = await workerFor(agent.origin);
    const answer = await protectedFetch(worker, `${agent.origin}/stream/gated`);
    const reader = answer.body!.getReader();
    expect(text((await within(reader.read(), 'the first chunk')).value)).toBe('first ');
    const closedBefore = streamsClosed.length;
    await reader.cancel('the page went away');
    const deadline = Date.now() + 5_000;
    while (streamsClosed.length === closedBefore && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(streamsClosed.slice(closedBefore)).toEqual([{ url: '/stream/gated', finished: false }]);
    openGate();
    expect(worker.status).toMatchObject({ state: 'verified', lastError: null, requests: { succeeded: 1, failed: 0 } });
  });

  it('errors the page\'s stream when the answer breaks off in the middle (never a short success), and records it', async () => {
    const { worker } = await workerFor(agent.origin);
    const answer = await protectedFetch(worker, `${agent.origin}/stream/broken`);
    expect(answer.status).toBe(200);
    const reader = answer.body!.getReader();
    let received = '';
    let failure: unknown;
    try {
      for (;;) {
        const { done, value } = await within(reader.read(), 'the broken answer');
        if (done) break;
        received += text(value);
      }
    } catch (error) {
      failure = error;
    }
    expect(received).toBe('first ');
    expect(failure).toMatchObject({ code: 'STEVE_CLIENT_STREAM_ABORTED', stage: 'request' });
    expect(worker.status).toMatchObject({ state: 'failed', lastError: { code: 'STEVE_CLIENT_STREAM_ABORTED', stage: 'request', status: 502 }, requests: { succeeded: 1, failed: 1 } });
  });
});
