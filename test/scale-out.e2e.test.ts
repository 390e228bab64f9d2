/**
 * Scale-out (README "Scale-out"): Debian's nginx, on the config the README shows
 * (bench/lib/scale-out-nginx.mjs), in front of two real agents (mock NSM, one mock PKI as all enclaves
 * share the AWS root) and the demo app, all on loopback. Clients bind distinct source addresses 127.0.0.x,
 * as distinct machines would reach a balancer.
 *
 * What is shown:
 * - the README's nginx.conf is the one rendered here (one source for both);
 * - every request of a client (session, confirmation, requests, streams), over several TCP connections,
 *   goes to one agent (nginx's access log: $remote_addr, $connection and $upstream_addr), and both agents
 *   get clients; hashed per connection instead ($remote_addr$remote_port), one client's requests are
 *   split over both agents and refused (401) there, which is why the recipe hashes on the address;
 * - the Node client works through nginx: requests, and a stream whose first record arrives while the app
 *   is still producing the answer (nginx does not buffer it);
 * - one agent restarts (its sessions are gone, it answers 401 session_invalid): each of its clients'
 *   next request succeeds on its own, on a new session verified from scratch, and the other agent's
 *   clients keep their sessions; with the agent down, its clients move to the other one by themselves;
 * - the browser worker (Chromium, when installed) through nginx: its session survives a restart of its agent.
 *
 * Without nginx the suite is skipped with a message; in CI (CI=true) a missing nginx fails (.ci/run
 * installs it through bench/setup.sh).
 */

import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent as UndiciAgent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoApp } from '../agent/demo/app.js';
import { certificateToPem } from '../nsm/encoding.js';
import { createMockPki, defaultMockPcrs, nodeP384Verifier, type MockPki } from '../nsm/index.js';
import { createSteveClient, SteveClientError, type SteveClient } from '../steve/client/index.js';
import { scaleOutNginxConfig, startScaleOutNginx, type ScaleOutNginx } from '../bench/lib/scale-out-nginx.mjs';
import { chromiumAvailable, launchChromium } from './browser/chromium.js';
import { freePort } from './free-port.js';
import { startTestAgent, type TestAgent } from './steve-client-agent.js';
import { buildBrowserBundles } from './browser/bundles.js';

const REPO = dirname(dirname(fileURLToPath(import.meta.url)));
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((path) => existsSync(path));
/** Client source addresses: 127.0.0.2 .. 127.0.0.13 (Linux routes all of 127/8 to lo). */
const CLIENT_ADDRESSES = Array.from({ length: 12 }, (_, i) => `127.0.0.${i + 2}`);
/** Requests each client sends at once in the first round: more than one TCP connection per client. */
const BURST = 4;

if (NGINX === undefined) {
  console.warn('[scale-out] nginx not found (/usr/sbin/nginx): skipping; `bash bench/setup.sh` installs it from Debian');
}

// CI installs nginx (.ci/run runs bench/setup.sh): there a missing nginx is a failure, not a skip.
describe.runIf(NGINX === undefined && process.env.CI === 'true')('scale-out in CI', () => {
  it('has nginx', () => {
    expect(NGINX, 'nginx is missing in CI: .ci/run must run `bash bench/setup.sh` before the tests').toBeDefined();
  });
});

interface LogLine {
  client: string;
  connection: string;
  method: string;
  uri: string;
  status: number;
  /** The agent(s) nginx tried, in order ("a, b" when the first failed). */
  upstreams: string[];
}

interface TestClient {
  address: string;
  client: SteveClient;
  dispatcher: UndiciAgent;
}

let work: string;
let pki: MockPki;
let app: Server;
let appOrigin: string;
let nginx: ScaleOutNginx;
let accessLog: string;
/** The two agents by their host:port (the one nginx's config names; a restart keeps it). */
const agents = new Map<string, TestAgent>();
let agentAddresses: string[];
const clients: TestClient[] = [];
/** Each client's agent, from the first round. */
const agentOf = new Map<string, string>();

const profile = { name: 'mock-image', pcrs: defaultMockPcrs() };


async function startAgentAt(port: number): Promise<TestAgent> {
  return startTestAgent({ pki, suite: 'X25519', upstream: appOrigin, config: { listen: { host: '127.0.0.1', port } } });
}

function readLog(): LogLine[] {
  return readFileSync(accessLog, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [client, connection, method, uri, status, ...rest] = line.split(' ');
      return { client: client!, connection: connection!, method: method!, uri: uri!, status: Number(status), upstreams: rest.join(' ').split(', ') };
    });
}

/** A client that reaches nginx from `address`, with up to BURST connections, each closed after 1 s idle. */
function clientFrom(address: string): TestClient {
  const dispatcher = new UndiciAgent({ localAddress: address, connections: BURST, keepAliveTimeout: 1000 });
  const client = createSteveClient({
    origin: `http://127.0.0.1:${nginx.port}`,
    keyExchange: 'X25519',
    pcrPolicy: [{ name: profile.name, pcrs: profile.pcrs }],
    root: pki.root.der,
    verifier: nodeP384Verifier,
    fetch: (input, init) => undiciFetch(input, { ...(init as object), dispatcher }) as unknown as Promise<Response>,
  });
  return { address, client, dispatcher };
}

async function echo(test: TestClient, message: string, method = 'PUT'): Promise<{ sessionId: string; body: { method: string; body: string } }> {
  // stream: false, so this path is /e2p/v2/request (generate() below takes /e2p/v2/stream). PUT by default:
  // an idempotent method, which the client sends once more after an unknown-session 401 (a POST it does not).
  const response = await test.client.request('/api/echo', { method, headers: { 'content-type': 'text/plain' }, body: new TextEncoder().encode(message), stream: false });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { method: string; body: string };
  return { sessionId: test.client.receiptFor(response)!.sessionId, body };
}

/**
 * GET /api/generate through a stream: the first DATA record's arrival (Date.now, the app's clock too)
 * and the app's emission time of the last token, from the events themselves.
 */
async function generate(test: TestClient, tokens: number, delayMs: number): Promise<{ sessionId: string; firstAtMs: number; lastEmittedAtMs: number; events: number; streamed: boolean }> {
  const response = await test.client.request(`/api/generate?prompt=scale&tokens=${tokens}&delay_ms=${delayMs}`);
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let firstAtMs = 0;
  for (let next = await reader.read(); !next.done; next = await reader.read()) {
    if (firstAtMs === 0) firstAtMs = Date.now();
    text += decoder.decode(next.value, { stream: true });
  }
  const events = text
    .split('\n')
    .filter((line) => line.startsWith('data: {'))
    .map((line) => JSON.parse(line.slice('data: '.length)) as { index: number; emittedAtMs: number });
  const receipt = test.client.receiptFor(response)!;
  return { sessionId: receipt.sessionId, firstAtMs, lastEmittedAtMs: events.at(-1)!.emittedAtMs, events: events.length, streamed: receipt.stream !== undefined };
}

describe.skipIf(NGINX === undefined)('scale-out: nginx in front of two agents', () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'scale-out-'));
    pki = createMockPki();
    app = createDemoApp({});
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    appOrigin = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
    for (let i = 0; i < 2; i++) {
      const agent = await startAgentAt(0);
      agents.set(agent.agent.addresses.public, agent);
    }
    agentAddresses = [...agents.keys()];
    accessLog = join(work, 'access.log');
    nginx = await startScaleOutNginx({ command: NGINX!, dir: work, port: await freePort(), agents: agentAddresses, accessLog });
    for (const address of CLIENT_ADDRESSES) clients.push(clientFrom(address));
  }, 30_000);

  afterAll(async () => {
    for (const { client, dispatcher } of clients) {
      client.close();
      await dispatcher.close().catch(() => undefined);
    }
    await nginx?.stop();
    for (const agent of agents.values()) await agent.stop().catch(() => undefined);
    app?.closeAllConnections();
    if (app) await new Promise((resolve) => app.close(resolve));
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('runs the config the README shows', () => {
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('\n## Scale-out'));
    const block = /```nginx\n([\s\S]*?)```/.exec(section);
    expect(block, 'README "Scale-out" has an nginx block').not.toBeNull();
    const documented = scaleOutNginxConfig({
      listen: '443',
      agents: ['10.0.1.11:8080', '10.0.1.12:8080'],
      tls: { certPath: '/etc/nginx/tls/enclave.crt', keyPath: '/etc/nginx/tls/enclave.key' },
      accessLog: '/var/log/nginx/enclave-agents.log',
    });
    expect(block![1]).toBe(documented);
  });

  it('keeps every request of a client, over several connections, on one agent; both agents get clients', async () => {
    for (const test of clients) {
      const answers = await Promise.all(Array.from({ length: BURST }, (_, i) => echo(test, `${test.address} ${i}`)));
      expect(answers.map((a) => a.body.body)).toEqual(Array.from({ length: BURST }, (_, i) => `${test.address} ${i}`));
      expect(new Set(answers.map((a) => a.sessionId)).size, 'one session per client').toBe(1);
      // One more request, after the burst: the session is kept.
      await echo(test, 'again');
    }
    const lines = readLog();
    for (const test of clients) {
      const mine = lines.filter((line) => line.client === test.address);
      expect(mine.map((line) => `${line.method} ${line.uri} ${line.status}`).sort()).toEqual(
        ['POST /e2p/v2/session 200', 'POST /e2p/v2/confirm 200', ...Array(BURST + 1).fill('POST /e2p/v2/request 200')].sort(),
      );
      const upstreams = new Set(mine.flatMap((line) => line.upstreams));
      expect(upstreams.size, `${test.address} reached ${[...upstreams].join(' and ')}`).toBe(1);
      agentOf.set(test.address, [...upstreams][0]!);
      const used = new Set(mine.map((line) => line.connection));
      expect(used.size, `${test.address} used more than one TCP connection`).toBeGreaterThan(1);
    }
    expect(new Set(agentOf.values())).toEqual(new Set(agentAddresses));
  }, 30_000);

  it('why not per connection: hashed on $remote_addr$remote_port, one client with a new connection per request is split over both agents and refused', async () => {
    const splitLog = join(work, 'per-connection.log');
    const split = await startScaleOutNginx({ command: NGINX!, dir: join(work, 'per-connection'), port: await freePort(), agents: agentAddresses, accessLog: splitLog, hashKey: '$remote_addr$remote_port' });
    // What a browser or a pool does over time: each request on a connection of its own.
    const dispatchers: UndiciAgent[] = [];
    const client = createSteveClient({
      origin: `http://127.0.0.1:${split.port}`,
      keyExchange: 'X25519',
      pcrPolicy: [{ name: profile.name, pcrs: profile.pcrs }],
      root: pki.root.der,
      verifier: nodeP384Verifier,
      fetch: (input, init) => {
        const dispatcher = new UndiciAgent({ localAddress: '127.0.0.200' });
        dispatchers.push(dispatcher);
        return undiciFetch(input, { ...(init as object), dispatcher }) as unknown as Promise<Response>;
      },
    });
    try {
      // Each ends in an answer or a coded failure (a confirmation that reached the other agent fails the establishment).
      for (let i = 0; i < 12; i++) {
        await client.request('/api/echo', { method: 'POST', body: new TextEncoder().encode(`split ${i}`), stream: false }).then(
          (response) => response.arrayBuffer(),
          (error: unknown) => expect(error).toBeInstanceOf(SteveClientError),
        );
      }
      const lines = readFileSync(splitLog, 'utf8').split('\n').filter((line) => line !== '');
      const upstreams = new Set(lines.map((line) => line.split(' ')[5]));
      const refused = lines.filter((line) => line.split(' ')[4] === '401').length;
      expect(upstreams, 'one client at both agents').toEqual(new Set(agentAddresses));
      expect(refused, 'requests and confirmations refused as for an unknown session').toBeGreaterThan(0);
    } finally {
      client.close();
      for (const dispatcher of dispatchers) await dispatcher.close().catch(() => undefined);
      await split.stop();
    }
  }, 30_000);

  it('streams through nginx unbuffered: the first record arrives before the app has finished', async () => {
    for (const agent of agentAddresses) {
      const test = clients.find((c) => agentOf.get(c.address) === agent)!;
      const before = readLog().length;
      // 8 tokens 150 ms apart: the app finishes about a second after its first token.
      const answer = await generate(test, 8, 150);
      expect(answer.streamed).toBe(true);
      expect(answer.events).toBe(8);
      expect(answer.firstAtMs, 'first record before the last token was emitted').toBeLessThan(answer.lastEmittedAtMs);
      const lines = readLog().slice(before);
      expect(lines.map((line) => `${line.client} ${line.uri} ${line.status} ${line.upstreams.join(',')}`)).toEqual([`${test.address} /e2p/v2/stream 200 ${agent}`]);
    }
  }, 30_000);

  it('one agent restarts: its clients re-establish on their own and their next request succeeds; the other agent\'s keep their sessions', async () => {
    const [restarted, kept] = agentAddresses as [string, string];
    const sessions = new Map<string, string>();
    for (const test of clients) sessions.set(test.address, (await echo(test, 'before')).sessionId);

    const port = Number(restarted.split(':')[1]);
    await agents.get(restarted)!.stop();
    agents.set(restarted, await startAgentAt(port));

    const before = readLog().length;
    let streamedRetry = false;
    for (const test of clients) {
      const mine = agentOf.get(test.address);
      // Of the restarted agent's clients, the first sends a stream (the /e2p/v2/stream path's retry), the others requests.
      const streams: boolean = mine === restarted && !streamedRetry;
      streamedRetry ||= streams;
      const sessionId = streams ? (await generate(test, 2, 10)).sessionId : (await echo(test, 'after')).sessionId;
      if (mine === restarted) expect(sessionId, `${test.address} has a new session`).not.toBe(sessions.get(test.address));
      else expect(sessionId, `${test.address} kept its session`).toBe(sessions.get(test.address));
    }
    const lines = readLog().slice(before);
    for (const test of clients) {
      const mine = lines.filter((line) => line.client === test.address);
      const path = mine.at(-1)!.uri;
      if (agentOf.get(test.address) === restarted) {
        // Refused as unknown (the app never saw it), established again (document verified), sent once more: all at the same agent.
        expect(mine.map((line) => `${line.uri} ${line.status} ${line.upstreams.join(',')}`)).toEqual([
          `${path} 401 ${restarted}`,
          `/e2p/v2/session 200 ${restarted}`,
          `/e2p/v2/confirm 200 ${restarted}`,
          `${path} 200 ${restarted}`,
        ]);
      } else {
        expect(mine.map((line) => `${line.uri} ${line.status} ${line.upstreams.join(',')}`)).toEqual([`/e2p/v2/request 200 ${kept}`]);
      }
    }
  }, 30_000);

  it('one agent restarts again: a POST is not sent twice, its caller gets the 401 and the next request a new session', async () => {
    const [restarted] = agentAddresses as [string, string];
    const test = clients.find((c) => agentOf.get(c.address) === restarted)!;
    const before = (await echo(test, 'before')).sessionId;
    const port = Number(restarted.split(':')[1]);
    await agents.get(restarted)!.stop();
    agents.set(restarted, await startAgentAt(port));
    const refused = await test.client.request('/api/echo', { method: 'POST', body: new TextEncoder().encode('once'), stream: false }).then(
      () => null,
      (error: { code?: string; status?: number; serverError?: string }) => ({ code: error.code, status: error.status, serverError: error.serverError }),
    );
    expect(refused).toEqual({ code: 'STEVE_CLIENT_HTTP', status: 401, serverError: 'session_invalid' });
    const after = await echo(test, 'after', 'POST');
    expect(after.body.method).toBe('POST');
    expect(after.sessionId).not.toBe(before);
  }, 30_000);

  it('one agent down: its clients move to the other agent by themselves', async () => {
    const [down, other] = agentAddresses as [string, string];
    await agents.get(down)!.stop();
    agents.delete(down);
    const before = readLog().length;
    for (const test of clients) await echo(test, 'while down');
    const lines = readLog().slice(before);
    for (const test of clients.filter((c) => agentOf.get(c.address) === down)) {
      const served = lines.filter((line) => line.client === test.address && line.status === 200).map((line) => `${line.uri} ${line.upstreams.at(-1)}`);
      expect(served).toEqual([`/e2p/v2/session ${other}`, `/e2p/v2/confirm ${other}`, `/e2p/v2/request ${other}`]);
    }
  }, 30_000);
});

describe.skipIf(NGINX === undefined || !chromiumAvailable)('scale-out: the browser worker through nginx (Chromium)', () => {
  let browserWork: string;
  let browserApp: Server;
  let browserNginx: ScaleOutNginx;
  let browserPki: MockPki;
  const browserAgents: TestAgent[] = [];
  let browser: Awaited<ReturnType<typeof launchChromium>>;

  beforeAll(async () => {
    browserWork = await mkdtemp(join(tmpdir(), 'scale-out-browser-'));
    const bundleDir = join(browserWork, 'bundles');
    buildBrowserBundles(bundleDir);
    browserPki = createMockPki();
    const pcrs = Object.fromEntries([0, 1, 2].map((i) => [String(i), Buffer.from(defaultMockPcrs().get(i)!).toString('hex')]));
    browserApp = createDemoApp({ bundleDir, root: certificateToPem(browserPki.root.der), keyExchange: 'X25519', pcrPolicy: { kind: 'pinned', profiles: [{ name: 'demo-image', pcrs }] } });
    browserApp.listen(0, '127.0.0.1');
    await once(browserApp, 'listening');
    const upstream = `http://127.0.0.1:${(browserApp.address() as AddressInfo).port}`;
    for (let i = 0; i < 2; i++) browserAgents.push(await startTestAgent({ pki: browserPki, suite: 'X25519', upstream }));
    browserNginx = await startScaleOutNginx({
      command: NGINX!,
      dir: browserWork,
      port: await freePort(),
      agents: browserAgents.map((a) => a.agent.addresses.public),
      accessLog: join(browserWork, 'access.log'),
    });
    browser = await launchChromium();
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await browserNginx?.stop();
    for (const agent of browserAgents) await agent.stop().catch(() => undefined);
    browserApp?.closeAllConnections();
    if (browserApp) await new Promise((resolve) => browserApp.close(resolve));
    if (browserWork) await rm(browserWork, { recursive: true, force: true });
  });

  it('the page keeps working when its agent restarts: the worker re-establishes on its own (a POST fails once)', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${browserNginx.port}/`);
      const first = (await page.evaluate(() => (window as any).steveDemo.ready)) as { ok: boolean; session: string };
      expect(first).toMatchObject({ ok: true });
      // Which agent the browser's address hashes to: the one that saw its session.
      const log = readFileSync(join(browserWork, 'access.log'), 'utf8');
      const served = /POST \/e2p\/v2\/session 200 (\S+)/.exec(log)![1]!;
      const index = browserAgents.findIndex((a) => a.agent.addresses.public === served);
      expect(index).toBeGreaterThanOrEqual(0);
      await browserAgents[index]!.stop();
      browserAgents[index] = await startTestAgent({
        pki: browserPki,
        suite: 'X25519',
        upstream: `http://127.0.0.1:${(browserApp.address() as AddressInfo).port}`,
        config: { listen: { host: '127.0.0.1', port: Number(served.split(':')[1]) } },
      });
      // The page's echo is a POST: the worker's client does not send it twice (a host could forge the
      // unknown-session 401), so the page sees that one fail, and its next request has a new session.
      const refused = (await page.evaluate(() => (window as any).steveDemo.echo('refused after the restart'))) as { ok: boolean; code: string; status: number };
      expect(refused).toMatchObject({ ok: false, code: 'STEVE_CLIENT_HTTP' });
      const after = (await page.evaluate(() => (window as any).steveDemo.echo('after the restart'))) as { ok: boolean; status: number; session: string; body: { body: string } };
      expect({ ok: after.ok, status: after.status }).toEqual({ ok: true, status: 200 });
      expect(JSON.parse(after.body.body)).toEqual({ message: 'after the restart' });
      expect(after.session).not.toBe(first.session);
      // The worker sends the page's requests over a stream on a stream-1 session (steve/browser/README.md).
      const expected = [`POST /e2p/v2/stream 401 ${served}`, `POST /e2p/v2/session 200 ${served}`, `POST /e2p/v2/confirm 200 ${served}`, `POST /e2p/v2/stream 200 ${served}`];
      // nginx logs a request once it has finalized it, which may be after the page has the whole answer:
      // the log is read again for up to two seconds until its last line is the last request's.
      let tail: string[] = [];
      for (const started = Date.now(); Date.now() - started < 2000; await new Promise((resolve) => setTimeout(resolve, 20))) {
        tail = readFileSync(join(browserWork, 'access.log'), 'utf8').split('\n').filter((line) => line.includes('/e2p/v2/')).slice(-4).map((line) => line.split(' ').slice(2).join(' '));
        if (tail.at(-1) === expected.at(-1) && tail.length === expected.length) break;
      }
      expect(tail).toEqual(expected);
    } finally {
      await context.close();
    }
  }, 60_000);
});
