/**
 * The browser client end to end: Debian's Chromium (test/browser/setup.sh) loads the demo page from the
 * real agent (mock NSM) in front of the demo app; the page registers the enclave service worker, which
 * verifies the enclave and carries the page's fetches through STEVE.
 *
 * What is shown, and from which side:
 * - the page gets the right answers to protected GET and POST calls, and the widget says what was verified;
 * - the worker is fetched at its plain URL (a bootstrap request has no query) and configured by message:
 *   it keeps its config when the browser stops and restarts it (CDP), a worker never configured fails
 *   closed with STEVE_BROWSER_CONFIG, a new config takes effect at once while a page still on the old
 *   one is refused, and the TOFU records of the version 1 database survive the upgrade that adds the
 *   config store;
 * - the app is reached only through the STEVE server: its hits by path match the page's calls, an ordinary
 *   request to the agent without E2P gets 403 e2e_required and never reaches it, and a copy of every byte
 *   that crossed the host (a TCP proxy in front of the agent) holds none of the page's plaintext markers;
 * - the negatives fail closed with the STEVE client's code and stage, and the app sees nothing: wrong pinned
 *   PCRs (pcr), a session response carrying another session's document (binding), TOFU after the enclave's
 *   PCRs changed behind the same origin (pcr, until the user resets), and a stalled host (504 timeout);
 * - the bundles are byte-identical across two builds into two temp dirs.
 * A screenshot of the demo page is left in test-output/browser/ (git-ignored).
 */

import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoApp } from '../../agent/demo/app.js';
import type { DemoPcrPolicy } from '../../agent/demo/page.js';
import { createMockPki, defaultMockPcrs, type MockPki } from '../../nsm/index.js';
import type { Suite } from '../../steve/index.js';
import { certificateToPem } from '../../nsm/encoding.js';
import { startTestAgent, type TestAgent } from '../steve-client-agent.js';
import { chromiumAvailable, CHROMIUM_PATH, launchChromium } from './chromium.js';
import { startSwapProxy, startTcpProxy, type TcpProxy } from './proxies.js';
import { buildBrowserBundles } from './bundles.js';

const REPO = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const SCREENSHOT_DIR = join(REPO, 'test-output', 'browser');

if (!chromiumAvailable) {
  console.warn(`test/browser: SKIPPED: ${CHROMIUM_PATH} is missing; run \`bash test/browser/setup.sh\` (installs Debian's chromium)`);
}

// CI installs Chromium (.ci/run runs setup.sh): there a missing browser is a failure, not a skip.
describe.runIf(!chromiumAvailable && process.env.CI === 'true')('browser tests in CI', () => {
  it('have Chromium installed by test/browser/setup.sh', () => {
    expect(chromiumAvailable, `${CHROMIUM_PATH} is missing in CI: .ci/run must run \`bash test/browser/setup.sh\` before the tests`).toBe(true);
  });
});

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** What the demo page's `echo` resolves with (agent/demo/page.ts). */
type EchoResult =
  | { ok: true; status: number; body: { method: string; path: string; headers: Record<string, string>; body: string | null }; session: string }
  | { ok: false; code: string; stage: string; status: number | null };

interface Stack {
  /** The origin the browser uses (a proxy in front of the agent). */
  origin: string;
  agent: TestAgent;
  app: Server;
  /** `METHOD /path` of every request the app received, in order. */
  appHits: string[];
  /** `METHOD /path?query` (the request target as sent) of every request the app received, in order. */
  appTargets: string[];
  tcp: TcpProxy;
  stop(): Promise<void>;
}

let work: string;
let bundleDir: string;
let pki: MockPki;
let rootPem: string;
let browser: Browser;
const stacks: Stack[] = [];

async function startApp(policy: DemoPcrPolicy, suite: Suite, requestTimeoutMs?: number): Promise<{ app: Server; hits: string[]; targets: string[]; origin: string }> {
  const hits: string[] = [];
  const targets: string[] = [];
  const app = createDemoApp({ bundleDir, root: rootPem, keyExchange: suite, pcrPolicy: policy, ...(requestTimeoutMs ? { requestTimeoutMs } : {}) });
  app.prependListener('request', (req) => {
    hits.push(`${req.method} ${new URL(req.url ?? '/', 'http://app').pathname}`);
    targets.push(`${req.method} ${req.url}`);
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  return { app, hits, targets, origin: `http://127.0.0.1:${(app.address() as AddressInfo).port}` };
}

/** Demo app + real agent (mock NSM with `pcrs`) + recording TCP proxy; the browser talks to the proxy. */
async function startStack(policy: DemoPcrPolicy, options: { pcrs?: ReadonlyMap<number, Uint8Array>; requestTimeoutMs?: number; suite?: Suite } = {}): Promise<Stack> {
  const suite = options.suite ?? 'X25519';
  const { app, hits, targets, origin: upstream } = await startApp(policy, suite, options.requestTimeoutMs);
  const agent = await startTestAgent({ pki, suite, upstream, ...(options.pcrs ? { pcrs: options.pcrs } : {}) });
  const tcp = await startTcpProxy(Number(new URL(agent.origin).port));
  const stack: Stack = {
    origin: tcp.origin,
    agent,
    app,
    appHits: hits,
    appTargets: targets,
    tcp,
    async stop() {
      await tcp.close();
      await stack.agent.stop();
      app.closeAllConnections();
      await new Promise<void>((resolve) => app.close(() => resolve()));
    },
  };
  stacks.push(stack);
  return stack;
}

const pinned = (name: string, pcrs: ReadonlyMap<number, Uint8Array>): DemoPcrPolicy => ({
  kind: 'pinned',
  profiles: [{ name, pcrs: Object.fromEntries([...pcrs].filter(([index]) => index <= 2).map(([index, value]) => [String(index), hex(value)])) }],
});

const otherPcrs = (): Map<number, Uint8Array> => new Map([0, 1, 2].map((index) => [index, new Uint8Array(48).fill(0xa0 + index)]));

async function openDemo(context: BrowserContext, origin: string): Promise<{ page: Page; first: EchoResult }> {
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  const first = (await page.evaluate(() => (window as unknown as { steveDemo: { ready: Promise<unknown> } }).steveDemo.ready)) as EchoResult;
  return { page, first };
}

function echo(page: Page, message: string): Promise<EchoResult> {
  return page.evaluate((text) => (window as unknown as { steveDemo: { echo(t: string): Promise<unknown> } }).steveDemo.echo(text), message) as Promise<EchoResult>;
}

/** The worker's status, through the page-side client. */
function workerStatus(page: Page): Promise<any> {
  return page.evaluate(() => (window as unknown as { steveDemo: { client: { getStatus(): Promise<unknown> } } }).steveDemo.client.getStatus());
}

/** The widget's state (`verified` / `failed` / `pending`) once it shows one of `states`. */
async function widgetState(page: Page, states: string[]): Promise<string> {
  const handle = await page.waitForFunction(
    (wanted) => {
      const card = document.querySelector('steve-attestation')?.shadowRoot?.querySelector('.card') as HTMLElement | null;
      return card !== null && card !== undefined && wanted.includes(card.dataset.state ?? '') ? card.dataset.state : false;
    },
    states,
    { timeout: 10_000 },
  );
  return (await handle.jsonValue()) as string;
}

const countHits = (stack: Stack, hit: string): number => stack.appHits.filter((h) => h === hit).length;

/**
 * Stops every service worker of the page's browser the way Chromium stops an idle one (CDP
 * ServiceWorker.stopAllWorkers), and waits until each version reports `stopped`. The next fetch from a
 * controlled page starts the worker again, without the page doing anything.
 */
async function stopServiceWorkers(page: Page): Promise<void> {
  const cdp: CDPSession = await page.context().newCDPSession(page);
  const running = new Map<string, string>();
  cdp.on('ServiceWorker.workerVersionUpdated', ({ versions }) => {
    for (const version of versions) running.set(version.versionId, version.runningStatus);
  });
  try {
    await cdp.send('ServiceWorker.enable');
    await cdp.send('ServiceWorker.stopAllWorkers');
    const deadline = Date.now() + 10_000;
    while (running.size === 0 || [...running.values()].some((status) => status !== 'stopped')) {
      if (Date.now() > deadline) throw new Error(`the service workers did not stop: ${JSON.stringify([...running])}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  } finally {
    await cdp.detach();
  }
}

/** A page of `origin` that registers the worker and waits for its control, but never configures it. */
async function openUnconfigured(context: BrowserContext, origin: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${origin}/healthz`);
  await page.evaluate(async () => {
    await navigator.serviceWorker.register('/enclave-sw.js', { scope: '/', updateViaCache: 'none' });
    const deadline = Date.now() + 10_000;
    while (navigator.serviceWorker.controller === null) {
      if (Date.now() > deadline) throw new Error('the worker did not take control');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  });
  return page;
}

/** A plain fetch from the page (no register.js client), as the worker answers it. */
function rawFetch(page: Page, path: string, init: { method?: string; body?: string } = {}): Promise<{ status: number; body: string; code: string | null; stage: string | null }> {
  return page.evaluate(
    async ({ target, options }) => {
      const response = await fetch(target, options);
      return { status: response.status, body: await response.text(), code: response.headers.get('x-steve-error'), stage: response.headers.get('x-steve-stage') };
    },
    { target: path, options: init },
  );
}

describe.skipIf(!chromiumAvailable)('browser client through the real agent (Chromium)', () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'steve-browser-'));
    bundleDir = join(work, 'bundles-a');
    for (const dir of [bundleDir, join(work, 'bundles-b')]) {
      buildBrowserBundles(dir);
    }
    pki = createMockPki();
    rootPem = certificateToPem(pki.root.der);
    browser = await launchChromium();
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    for (const stack of stacks) await stack.stop().catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('builds byte-identical bundles in two different directories', async () => {
    const digests = async (dir: string) => {
      const names = (await readdir(dir)).sort();
      return Promise.all(names.map(async (name) => [name, createHash('sha256').update(await readFile(join(dir, name))).digest('hex')]));
    };
    const a = await digests(bundleDir);
    expect(a.map(([name]) => name)).toEqual(['attestation-widget.js', 'enclave-sw.js', 'register.js']);
    expect(await digests(join(work, 'bundles-b'))).toEqual(a);
    // Web-standard only: nothing Node-specific survives bundling.
    for (const name of ['enclave-sw.js', 'register.js', 'attestation-widget.js']) {
      expect(await readFile(join(bundleDir, name), 'utf8'), name).not.toMatch(/\brequire\(["']node:|from["']node:/);
    }
  });

  it('verifies the enclave, carries GET and POST end to end, and never lets plaintext cross the host', async () => {
    const stack = await startStack(pinned('demo-image', defaultMockPcrs()));
    const context = await browser.newContext();
    try {
      const { page, first } = await openDemo(context, stack.origin);
      expect(first).toMatchObject({ ok: true, status: 200, body: { method: 'POST', path: '/api/echo', body: JSON.stringify({ message: 'hello from the page' }) } });
      const session = (first as Extract<EchoResult, { ok: true }>).session;
      expect(session).toMatch(/^[0-9a-f]{32}$/);

      // Protected calls with plaintext markers in the path, a header and the body.
      const marker = `marker-${randomBytes(12).toString('hex')}`;
      const answers = await page.evaluate(async (mark) => {
        const { client } = (window as any).steveDemo;
        const get = await client.send(`/api/echo?q=${mark}-query`);
        const post = await client.send('/api/echo', { method: 'POST', headers: { 'x-demo-marker': `${mark}-header`, 'content-type': 'text/plain' }, body: `${mark}-body` });
        return {
          get: { status: get.status, session: get.headers.get('x-steve-session'), body: await get.json() },
          post: { status: post.status, session: post.headers.get('x-steve-session'), body: await post.json() },
        };
      }, marker);
      expect(answers.get).toMatchObject({ status: 200, session, body: { method: 'GET', path: `/api/echo?q=${marker}-query`, body: '' } });
      expect(answers.post).toMatchObject({ status: 200, session, body: { method: 'POST', path: '/api/echo', body: `${marker}-body` } });
      expect(answers.post.body.headers['x-demo-marker']).toBe(`${marker}-header`);
      expect(answers.post.body.headers['content-type']).toBe('text/plain');

      // What the worker verified, as the widget shows it.
      const status = await workerStatus(page);
      expect(status).toMatchObject({ state: 'verified', origin: stack.origin, suite: 'X25519', policy: 'pinned', profiles: ['demo-image'], lastError: null });
      expect(status.session).toMatchObject({ sessionId: session, suite: 'X25519', trust: { policy: 'pinned', profile: 'demo-image' }, moduleId: pki.moduleId });
      expect(status.session.pcrs).toEqual([0, 1, 2].map((index) => ({ index, hex: hex(defaultMockPcrs().get(index)!) })));
      expect(status.session.rootSha256).toBe(createHash('sha256').update(pki.root.der).digest('hex'));
      expect(Math.abs(status.session.documentTimeMs - Date.now())).toBeLessThan(60_000);
      expect(await widgetState(page, ['verified'])).toBe('verified');

      // The app side: exactly the three protected calls, all through STEVE.
      expect(countHits(stack, 'POST /api/echo')).toBe(2);
      expect(countHits(stack, 'GET /api/echo')).toBe(1);
      expect(stack.appHits).toEqual(expect.arrayContaining(['GET /', 'GET /register.js', 'GET /attestation-widget.js', 'GET /enclave-sw.js']));
      // The worker script is a bootstrap request only without a query (steve/protocol/routing.ts): the
      // browser fetched it at its plain URL, and never with a query (the agent would refuse that, 403).
      expect(stack.appTargets).toContain('GET /enclave-sw.js');
      expect(stack.appTargets.filter((target) => /^[A-Z]+ \/enclave-sw\.js./.test(target))).toEqual([]);
      // Without E2P the agent refuses and the app is not contacted.
      const before = stack.appHits.length;
      const direct = await fetch(`${stack.agent.origin}/api/echo`, { method: 'POST', body: 'plaintext' });
      expect(direct.status).toBe(403);
      expect(await direct.text()).toBe('{"error":"e2e_required"}');
      expect(stack.appHits.length).toBe(before);

      // The host's view: STEVE traffic and the bootstrap files, but none of the markers.
      const seen = stack.tcp.seen().toString('latin1');
      // (Booleans, so a failure does not print megabytes of ciphertext.)
      // The agent offers streams (stream-1), so our client carries each call as a stream.
      expect(seen.includes('POST /e2p/v2/stream')).toBe(true);
      expect(seen.includes('GET /register.js')).toBe(true);
      expect(seen.includes('GET /enclave-sw.js HTTP/1.1')).toBe(true);
      expect(seen.includes('/enclave-sw.js?')).toBe(false);
      expect(seen.includes(marker), 'a plaintext marker crossed the host').toBe(false);

      await mkdir(SCREENSHOT_DIR, { recursive: true });
      await page.setViewportSize({ width: 900, height: 1000 });
      await page.screenshot({ path: join(SCREENSHOT_DIR, 'demo-widget.png'), fullPage: true });
    } finally {
      await context.close();
    }
  });

  it('speaks the post-quantum suite (XWING-DRAFT10) when the deployment pins it', async () => {
    const stack = await startStack(pinned('demo-image', defaultMockPcrs()), { suite: 'XWING-DRAFT10' });
    const context = await browser.newContext();
    try {
      const { page, first } = await openDemo(context, stack.origin);
      expect(first).toMatchObject({ ok: true, status: 200, body: { method: 'POST', path: '/api/echo' } });
      expect((await workerStatus(page)).session).toMatchObject({ suite: 'XWING-DRAFT10', trust: { policy: 'pinned', profile: 'demo-image' } });
      expect(countHits(stack, 'POST /api/echo')).toBe(1);
    } finally {
      await context.close();
    }
  });

  it('refuses an enclave whose PCRs match no pinned profile (stage pcr); the app sees nothing', async () => {
    const stack = await startStack(pinned('expected-image', otherPcrs()));
    const context = await browser.newContext();
    try {
      const { page, first } = await openDemo(context, stack.origin);
      expect(first).toEqual({ ok: false, code: 'STEVE_CLIENT_PCR', stage: 'pcr', status: 502 });
      // A plain fetch from the page gets the worker's answer, never the app's.
      const raw = await page.evaluate(async () => {
        const response = await fetch('/api/echo', { method: 'POST', body: 'secret' });
        return { status: response.status, body: await response.text(), code: response.headers.get('x-steve-error'), stage: response.headers.get('x-steve-stage') };
      });
      expect(raw).toEqual({ status: 502, body: '{"error":"secure channel failed"}', code: 'STEVE_CLIENT_PCR', stage: 'pcr' });
      expect(await widgetState(page, ['failed'])).toBe('failed');
      await mkdir(SCREENSHOT_DIR, { recursive: true });
      await page.screenshot({ path: join(SCREENSHOT_DIR, 'demo-widget-failed.png'), fullPage: true });
      expect(stack.appHits.filter((hit) => hit.endsWith('/api/echo'))).toEqual([]);
      expect(stack.tcp.seen().toString('latin1').includes('POST /e2p/v2/request')).toBe(false);
      expect(stack.tcp.seen().toString('latin1').includes('POST /e2p/v2/stream')).toBe(false);
    } finally {
      await context.close();
    }
  });

  it('refuses a session response carrying another session\'s document (stage binding); the app sees nothing', async () => {
    const stack = await startStack(pinned('demo-image', defaultMockPcrs()));
    const swap = await startSwapProxy(stack.origin);
    const context = await browser.newContext();
    try {
      const { page, first } = await openDemo(context, swap.origin);
      expect(first).toEqual({ ok: false, code: 'STEVE_CLIENT_BINDING', stage: 'binding', status: 502 });
      expect(swap.swaps).toBeGreaterThanOrEqual(1);
      expect(await widgetState(page, ['failed'])).toBe('failed');
      expect(stack.appHits.filter((hit) => hit.endsWith('/api/echo'))).toEqual([]);
    } finally {
      await context.close();
      await swap.close();
    }
  });

  it('records the enclave on first use, matches it later, and refuses it once its PCRs change (stage pcr) until reset', async () => {
    const stack = await startStack({ kind: 'tofu' });
    const context = await browser.newContext();
    try {
      const { page, first } = await openDemo(context, stack.origin);
      expect(first.ok).toBe(true);
      expect((await workerStatus(page)).session.trust).toEqual({ policy: 'tofu', result: 'tofu-recorded' });
      await page.evaluate(() => (window as any).steveDemo.client.rotateSession());
      expect((await echo(page, 'second session')).ok).toBe(true);
      expect((await workerStatus(page)).session.trust).toEqual({ policy: 'tofu', result: 'tofu-matched' });
      const echoes = countHits(stack, 'POST /api/echo');
      expect(echoes).toBe(2);

      // The enclave restarts with other PCRs behind the same origin.
      await stack.agent.stop();
      stack.agent = await startTestAgent({ pki, suite: 'X25519', upstream: `http://127.0.0.1:${(stack.app.address() as AddressInfo).port}`, pcrs: otherPcrs() });
      stack.tcp.setTarget(Number(new URL(stack.agent.origin).port));
      await page.evaluate(() => (window as any).steveDemo.client.rotateSession());
      expect(await echo(page, 'after the change')).toEqual({ ok: false, code: 'STEVE_CLIENT_PCR', stage: 'pcr', status: 502 });
      // The record is in IndexedDB: a reload (same worker) is refused too.
      const reloaded = await openDemo(context, stack.origin);
      expect(reloaded.first).toEqual({ ok: false, code: 'STEVE_CLIENT_PCR', stage: 'pcr', status: 502 });
      expect(await widgetState(reloaded.page, ['failed'])).toBe('failed');
      expect(countHits(stack, 'POST /api/echo')).toBe(echoes);

      // The user's explicit reset forgets the record; the next session records the new image.
      await reloaded.page.evaluate(() => (window as any).steveDemo.client.reset());
      expect((await echo(reloaded.page, 'after reset')).ok).toBe(true);
      expect((await workerStatus(reloaded.page)).session.trust).toEqual({ policy: 'tofu', result: 'tofu-recorded' });
      expect(countHits(stack, 'POST /api/echo')).toBe(echoes + 1);
    } finally {
      await context.close();
    }
  });

  it('keeps its config when the browser stops the worker and starts it for the next fetch', async () => {
    const stack = await startStack(pinned('demo-image', defaultMockPcrs()));
    const context = await browser.newContext();
    try {
      const { page, first } = await openDemo(context, stack.origin);
      expect(first.ok).toBe(true);
      const echoes = countHits(stack, 'POST /api/echo');
      const scripts = countHits(stack, 'GET /enclave-sw.js');

      // Stopped as if idle; the page does nothing but send its next request.
      await stopServiceWorkers(page);
      const after = await echo(page, 'after a restart');
      expect(after).toMatchObject({ ok: true, status: 200, body: { method: 'POST', path: '/api/echo' } });
      // A new worker instance (so a new STEVE client and session), with the stored config, not a reconfigured one.
      expect((after as Extract<EchoResult, { ok: true }>).session).not.toBe((first as Extract<EchoResult, { ok: true }>).session);
      expect(await workerStatus(page)).toMatchObject({
        state: 'verified',
        origin: stack.origin,
        policy: 'pinned',
        profiles: ['demo-image'],
        lastError: null,
        requests: { succeeded: 1, failed: 0 },
        session: { trust: { policy: 'pinned', profile: 'demo-image' } },
      });
      expect(countHits(stack, 'POST /api/echo')).toBe(echoes + 1);
      expect(countHits(stack, 'GET /')).toBe(1);
      expect(countHits(stack, 'GET /enclave-sw.js')).toBe(scripts);
    } finally {
      await context.close();
    }
  });

  it('fails closed with STEVE_BROWSER_CONFIG when the worker was never configured, before and after a restart', async () => {
    const stack = await startStack(pinned('demo-image', defaultMockPcrs()));
    const context = await browser.newContext();
    try {
      const page = await openUnconfigured(context, stack.origin);
      const refused = { status: 502, body: '{"error":"secure channel failed"}', code: 'STEVE_BROWSER_CONFIG', stage: 'config' };
      expect(await rawFetch(page, '/api/echo', { method: 'POST', body: 'secret' })).toEqual(refused);
      await stopServiceWorkers(page);
      expect(await rawFetch(page, '/api/echo?card=4111111111111111')).toEqual(refused);
      // The bootstrap files still pass (the worker leaves them to the browser).
      expect((await rawFetch(page, '/register.js')).status).toBe(200);
      expect(stack.appHits.filter((hit) => hit.endsWith('/api/echo'))).toEqual([]);
      expect(stack.tcp.seen().toString('latin1').includes('POST /e2p/v2/')).toBe(false);
    } finally {
      await context.close();
    }
  });

  it('takes a new config at once, and refuses requests from a page still on the old one', async () => {
    const stack = await startStack(pinned('expected-image', otherPcrs()));
    const context = await browser.newContext();
    try {
      const { page, first } = await openDemo(context, stack.origin);
      expect(first).toEqual({ ok: false, code: 'STEVE_CLIENT_PCR', stage: 'pcr', status: 502 });

      // A second client in the same page configures the right profile: the worker switches to it at once.
      // (A string, so the test runner's transform leaves the dynamic import to the browser.)
      const config = { keyExchange: 'X25519', pcrPolicy: pinned('demo-image', defaultMockPcrs()), root: rootPem };
      const switched = (await page.evaluate(`(async () => {
        const { registerEnclaveServiceWorker } = await import('/register.js');
        const client = registerEnclaveServiceWorker({ config: { ...${JSON.stringify(config)}, origin: location.origin } });
        const status = await client.initialize();
        const response = await client.send('/api/echo', { method: 'POST', body: 'under the new config' });
        return { status, answer: { status: response.status, body: await response.json() } };
      })()`)) as { status: unknown; answer: unknown };
      expect(switched.status).toMatchObject({ state: 'idle', policy: 'pinned', profiles: ['demo-image'], session: null, lastError: null, requests: { succeeded: 0, failed: 0 } });
      expect(switched.answer).toMatchObject({ status: 200, body: { method: 'POST', path: '/api/echo', body: 'under the new config' } });
      expect((await workerStatus(page)).session).toMatchObject({ trust: { policy: 'pinned', profile: 'demo-image' } });
      await page.evaluate(() => (window as any).steveDemo.refresh(null));
      expect(await widgetState(page, ['verified'])).toBe('verified');
      const echoes = countHits(stack, 'POST /api/echo');
      expect(echoes).toBe(1);

      // The demo's own client still expects the old config: refused by the worker, nothing sent.
      expect(await echo(page, 'still on the old config')).toEqual({ ok: false, code: 'STEVE_BROWSER_CONFIG', stage: 'config', status: 502 });
      expect(countHits(stack, 'POST /api/echo')).toBe(echoes);

      // A reload configures the page's own config again (the last page loaded wins): refused by PCRs again.
      const reloaded = await openDemo(context, stack.origin);
      expect(reloaded.first).toEqual({ ok: false, code: 'STEVE_CLIENT_PCR', stage: 'pcr', status: 502 });
      expect(await workerStatus(reloaded.page)).toMatchObject({ policy: 'pinned', profiles: ['expected-image'] });
      expect(countHits(stack, 'POST /api/echo')).toBe(echoes);
    } finally {
      await context.close();
    }
  });

  it('keeps the TOFU records of a browser that has the version 1 database (the config store is added beside them)', async () => {
    const stack = await startStack({ kind: 'tofu' });
    const context = await browser.newContext();
    try {
      // What the previous release left: steve-tofu version 1 with one record, of another image, for this enclave.
      const setup = await context.newPage();
      await setup.goto(`${stack.origin}/healthz`);
      const other = [...otherPcrs()].map(([index, value]) => [index, [...value]] as [number, number[]]);
      await setup.evaluate(async (pcrs) => {
        const db = await new Promise<IDBDatabase>((resolve, reject) => {
          const request = indexedDB.open('steve-tofu', 1);
          request.onupgradeneeded = () => request.result.createObjectStore('records');
          request.onsuccess = () => resolve(request.result);
          request.onerror = () => reject(request.error);
        });
        await new Promise<void>((resolve, reject) => {
          const transaction = db.transaction('records', 'readwrite');
          transaction.objectStore('records').put({ pcrs: pcrs.map(([index, bytes]) => [index, new Uint8Array(bytes)]) }, [`${location.origin}/`, location.origin, 'X25519']);
          transaction.oncomplete = () => resolve();
          transaction.onerror = () => reject(transaction.error);
        });
        db.close();
      }, other);
      await setup.close();

      // The new worker upgrades the database and still holds the enclave to that record.
      const { page, first } = await openDemo(context, stack.origin);
      expect(first).toEqual({ ok: false, code: 'STEVE_CLIENT_PCR', stage: 'pcr', status: 502 });
      const database = await page.evaluate(
        () =>
          new Promise<{ version: number; stores: string[] }>((resolve, reject) => {
            const request = indexedDB.open('steve-tofu');
            request.onsuccess = () => {
              const result = { version: request.result.version, stores: Array.from(request.result.objectStoreNames).sort() };
              request.result.close();
              resolve(result);
            };
            request.onerror = () => reject(request.error);
          }),
      );
      expect(database).toEqual({ version: 2, stores: ['config', 'records'] });
      expect(stack.appHits.filter((hit) => hit.endsWith('/api/echo'))).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('answers 504 with STEVE_CLIENT_TIMEOUT when the host stalls, and never retries in plaintext', async () => {
    const stack = await startStack(pinned('demo-image', defaultMockPcrs()), { requestTimeoutMs: 2_000 });
    const context = await browser.newContext();
    try {
      const { page, first } = await openDemo(context, stack.origin);
      expect(first.ok).toBe(true);
      const echoes = countHits(stack, 'POST /api/echo');
      stack.tcp.stall = true;
      expect(await echo(page, 'stalled')).toEqual({ ok: false, code: 'STEVE_CLIENT_TIMEOUT', stage: 'request', status: 504 });
      stack.tcp.stall = false;
      expect(countHits(stack, 'POST /api/echo')).toBe(echoes);
    } finally {
      await context.close();
    }
  });
});
