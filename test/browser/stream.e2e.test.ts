/**
 * Streams end to end in Debian's Chromium (steve/protocol/stream.md): the demo page asks the demo app's
 * fake LLM (GET /api/generate, server-sent events) through the enclave service worker and STEVE's
 * streams, against the real agent (mock NSM) behind a recording TCP proxy.
 *
 * What is shown:
 * - the answer arrives while it is being generated, not at its end: the page notes each chunk's arrival
 *   time, the app writes its emission time into each event, and the first token arrives before the app
 *   emitted its last, at least half the chunks before the app finished; a screenshot is taken mid-answer
 *   (test-output/browser/stream-mid-answer.png);
 * - an EventSource on the enclave origin goes through the worker too (its request reaches the app only
 *   through STEVE) and gets the same events;
 * - the host carried only ciphertext: no marker from the prompt and no event text crossed the proxy;
 * - a host that flips one bit of a DATA frame in flight makes the page's read fail with an error; what the
 *   page shows is exactly the tokens before that frame, none after, and the worker's status names the
 *   failure.
 */

import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoApp } from '../../agent/demo/app.js';
import { generateTokens } from '../../agent/demo/generate.js';
import { certificateToPem } from '../../nsm/encoding.js';
import { createMockPki, defaultMockPcrs, type MockPki } from '../../nsm/index.js';
import { startTestAgent, type TestAgent } from '../steve-client-agent.js';
import { chromiumAvailable, launchChromium } from './chromium.js';
import { startTamperStreamProxy, startTcpProxy, type TcpProxy } from './proxies.js';
import { buildBrowserBundles } from './bundles.js';

const REPO = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const SCREENSHOT_DIR = join(REPO, 'test-output', 'browser');

/** What the demo page's `generate` resolves with (agent/demo/page.ts). */
interface Generated {
  ok: boolean;
  text: string;
  chunks: Array<{ atMs: number; bytes: number; indexes: number[] }>;
  tokens: Array<{ index: number; emittedAtMs: number; arrivedAtMs: number }>;
  error?: { name: string; code: string | null; message: string };
}

interface Stack {
  origin: string;
  agent: TestAgent;
  app: Server;
  appTargets: string[];
  tcp: TcpProxy;
  stop(): Promise<void>;
}

let work: string;
let bundleDir: string;
let pki: MockPki;
let browser: Browser;
const stacks: Stack[] = [];

/** Demo app (pinning the mock image) + real agent + recording TCP proxy; the browser talks to the proxy. */
async function startStack(): Promise<Stack> {
  const pcrs = defaultMockPcrs();
  const app = createDemoApp({
    bundleDir,
    root: certificateToPem(pki.root.der),
    keyExchange: 'X25519',
    pcrPolicy: { kind: 'pinned', profiles: [{ name: 'demo-image', pcrs: Object.fromEntries([0, 1, 2].map((i) => [String(i), Buffer.from(pcrs.get(i)!).toString('hex')])) }] },
  });
  const appTargets: string[] = [];
  app.prependListener('request', (req) => appTargets.push(`${req.method} ${req.url} ${req.headers['x-forwarded-proto'] ?? '-'}`));
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  const agent = await startTestAgent({ pki, suite: 'X25519', upstream: `http://127.0.0.1:${(app.address() as AddressInfo).port}` });
  const tcp = await startTcpProxy(Number(new URL(agent.origin).port));
  const stack: Stack = {
    origin: tcp.origin,
    agent,
    app,
    appTargets,
    tcp,
    async stop() {
      await tcp.close();
      await agent.stop();
      app.closeAllConnections();
      await new Promise<void>((resolve) => app.close(() => resolve()));
    },
  };
  stacks.push(stack);
  return stack;
}

async function openDemo(context: BrowserContext, origin: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  const first = (await page.evaluate(() => (window as any).steveDemo.ready)) as { ok: boolean };
  expect(first).toMatchObject({ ok: true });
  return page;
}

/** Starts `generate` in the page without waiting for it; `finish` waits for its result. */
async function startGenerate(page: Page, prompt: string, tokens: number, delayMs: number): Promise<{ finish(): Promise<Generated> }> {
  await page.fill('#prompt', prompt); // Only for the screenshot: generate() takes the prompt as given.
  await page.evaluate(({ p, t, d }) => {
    (window as any).pendingAnswer = (window as any).steveDemo.generate(p, { tokens: t, delayMs: d });
  }, { p: prompt, t: tokens, d: delayMs });
  return { finish: () => page.evaluate(() => (window as any).pendingAnswer) as Promise<Generated> };
}

const words = (text: string): number => text.split(' ').filter((word) => word !== '').length;

describe.skipIf(!chromiumAvailable)('streamed answers through the enclave worker (Chromium)', () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'steve-stream-browser-'));
    bundleDir = join(work, 'bundles');
    buildBrowserBundles(bundleDir);
    pki = createMockPki();
    browser = await launchChromium();
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    for (const stack of stacks) await stack.stop().catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('shows the answer while the app generates it, token by token, and the host sees only ciphertext', async () => {
    const stack = await startStack();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const page = await openDemo(context, stack.origin);
      const marker = `marker-${randomBytes(12).toString('hex')}`;
      const prompt = `Tell me about streams (${marker})`;
      const count = 30;
      const expected = generateTokens(prompt, count);
      const pending = await startGenerate(page, prompt, count, 100);

      // Mid-answer: some words shown, not all; the screenshot shows the answer growing beside the widget.
      await page.waitForFunction((n) => (document.getElementById('answer')?.textContent ?? '').split(' ').length >= n, 12, { timeout: 10_000 });
      const midText = (await page.textContent('#answer')) ?? '';
      await mkdir(SCREENSHOT_DIR, { recursive: true });
      await page.screenshot({ path: join(SCREENSHOT_DIR, 'stream-mid-answer.png'), fullPage: true });
      expect(words(midText)).toBeLessThan(count);
      expect(expected.join('').startsWith(midText)).toBe(true);

      const answer = await pending.finish();
      expect(answer.error).toBeUndefined();
      expect(answer.ok).toBe(true);
      expect(answer.text).toBe(expected.join(''));
      expect(answer.tokens.map((token) => token.index)).toEqual([...Array(count).keys()]);
      expect(await page.getAttribute('#answer', 'data-state')).toBe('done');

      // Spread: arrivals follow emissions, not the end of the answer.
      const emitted = answer.tokens.map((token) => token.emittedAtMs);
      const firstEmission = emitted[0]!;
      const lastEmission = emitted.at(-1)!;
      const arrivals = answer.chunks.map((chunk) => chunk.atMs);
      const latencies = answer.tokens.map((token) => token.arrivedAtMs - token.emittedAtMs).sort((a, b) => a - b);
      const figures = {
        tokens: count,
        chunks: arrivals.length,
        emissionSpanMs: Math.round(lastEmission - firstEmission),
        arrivalSpanMs: Math.round(arrivals.at(-1)! - arrivals[0]!),
        firstArrivalAfterFirstEmissionMs: Math.round(arrivals[0]! - firstEmission),
        firstArrivalBeforeLastEmissionMs: Math.round(lastEmission - arrivals[0]!),
        chunksBeforeLastEmission: arrivals.filter((at) => at < lastEmission).length,
        latencyMedianMs: Math.round(latencies[Math.floor(latencies.length / 2)]!),
        latencyMaxMs: Math.round(latencies.at(-1)!),
      };
      console.log(`stream arrival spread: ${JSON.stringify(figures)}`);
      expect(arrivals[0]!).toBeLessThan(lastEmission);
      expect(figures.chunksBeforeLastEmission).toBeGreaterThanOrEqual(Math.ceil(arrivals.length / 2));

      // The app saw one request, through STEVE; the host saw the stream endpoint and none of the plaintext.
      expect(stack.appTargets.filter((target) => target.startsWith('GET /api/generate'))).toEqual([`GET /api/generate?${new URLSearchParams({ prompt, tokens: String(count), delay_ms: '100' })} https`]);
      const seen = stack.tcp.seen().toString('latin1');
      expect(seen.includes('POST /e2p/v2/stream')).toBe(true);
      expect(seen.includes(marker), 'the prompt crossed the host').toBe(false);
      // (The page itself, served in plaintext, names the fields and [DONE]; the events' JSON is not in it.)
      expect(seen.includes('"emittedAtMs":'), 'an event crossed the host').toBe(false);
      const status = await page.evaluate(() => (window as any).steveDemo.client.getStatus());
      expect(status).toMatchObject({ state: 'verified', lastError: null, requests: { failed: 0 } });
    } finally {
      await context.close();
    }
  });

  it('carries an EventSource on the enclave origin through the worker', async () => {
    const stack = await startStack();
    const context = await browser.newContext();
    try {
      const page = await openDemo(context, stack.origin);
      const prompt = 'event source';
      const result = await page.evaluate(
        (p) =>
          new Promise<{ data: string[]; arrivals: number[] }>((resolve, reject) => {
            const data: string[] = [];
            const arrivals: number[] = [];
            const source = new EventSource(`/api/generate?${new URLSearchParams({ prompt: p, tokens: '8', delay_ms: '50' })}`);
            const timer = setTimeout(() => {
              source.close();
              reject(new Error(`no [DONE] within 10 s; got ${JSON.stringify(data)}`));
            }, 10_000);
            source.onmessage = (event) => {
              data.push(event.data);
              arrivals.push(performance.timeOrigin + performance.now());
              if (event.data === '[DONE]') {
                clearTimeout(timer);
                source.close();
                resolve({ data, arrivals });
              }
            };
            source.onerror = () => {
              clearTimeout(timer);
              source.close();
              reject(new Error(`EventSource failed after ${JSON.stringify(data)}`));
            };
          }),
        prompt,
      );
      expect(result.data.at(-1)).toBe('[DONE]');
      const tokens = result.data.slice(0, -1).map((text) => JSON.parse(text) as { index: number; token: string; emittedAtMs: number });
      expect(tokens.map((token) => token.token)).toEqual(generateTokens(prompt, 8));
      expect(result.arrivals[0]!).toBeLessThan(tokens.at(-1)!.emittedAtMs);
      // Through the worker and STEVE: the app got it forwarded by the agent, and the host saw no plaintext request.
      expect(stack.appTargets.filter((target) => target.startsWith('GET /api/generate'))).toEqual([`GET /api/generate?${new URLSearchParams({ prompt, tokens: '8', delay_ms: '50' })} https`]);
      const seen = stack.tcp.seen().toString('latin1');
      expect(seen.includes('POST /e2p/v2/stream')).toBe(true);
      expect(seen.includes('GET /api/generate?prompt=')).toBe(false);
    } finally {
      await context.close();
    }
  });

  it('fails the page\'s read when the host flips a bit of a DATA frame, showing only the tokens before it', async () => {
    const stack = await startStack();
    const tamper = await startTamperStreamProxy(stack.origin, 5);
    const context = await browser.newContext();
    try {
      const page = await openDemo(context, tamper.origin);
      const prompt = 'tamper with me';
      const expected = generateTokens(prompt, 20);
      const answer = await (await startGenerate(page, prompt, 20, 30)).finish();
      expect(tamper.flipped).toBe(1);
      expect(answer.ok).toBe(false);
      // The page's read failed (a service worker's errored stream reaches the page as a network TypeError).
      expect(answer.error).toMatchObject({ name: 'TypeError' });
      // Each event is one DATA record here, so the page shows exactly the five before the flipped one.
      expect(answer.tokens.map((token) => token.index)).toEqual([0, 1, 2, 3, 4]);
      expect(answer.text).toBe(expected.slice(0, 5).join(''));
      expect(await page.textContent('#answer')).toBe(expected.slice(0, 5).join(''));
      expect(await page.getAttribute('#answer', 'data-state')).toBe('failed');
      const status = await page.evaluate(() => (window as any).steveDemo.client.getStatus());
      expect(status).toMatchObject({ state: 'failed', requests: { failed: 1 }, lastError: { stage: 'request', status: 502 } });
      expect(status.lastError.code).toMatch(/^STEVE_CLIENT_/);
      console.log(`tampered stream: page error ${JSON.stringify(answer.error)}; worker status ${JSON.stringify(status.lastError)}`);
    } finally {
      await context.close();
      await tamper.close();
    }
  });
});
