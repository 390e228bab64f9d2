/**
 * The client against the real agent on loopback (test/steve-client-agent.ts: mock NSM, both suites, a
 * small upstream app on 127.0.0.1:0), with the global fetch: GET and POST, binary bodies both ways,
 * repeated set-cookie, a redirect returned as it is, app error statuses, and the session surviving many
 * requests; then `enclave-agent fetch` through the built dist/ (pinned PCRs, TOFU recorded then matched,
 * the wrong root and the wrong suite as exit 1, usage errors as exit 2).
 */

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAgent, type TestAgent } from '../../test/steve-client-agent.js';
import { createMockAttester, createMockPki, nodeP384Verifier, type MockAttester } from '../../test/steve-client-fixtures.js';
import { SUITES, type Suite } from '../protocol/index.js';
import { createSteveClient, SteveClientError, type SteveClient } from './index.js';

const REPO = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const CLI = join(REPO, 'dist', 'agent', 'cli.js');
const SPAWN_TIMEOUT_MS = 20_000;

let work: string;
let attester: MockAttester;
let app: Server;
let appOrigin: string;
const agents = new Map<Suite, TestAgent>();
const appHits: string[] = [];
/** /drip's "client has it, send the next chunk" callbacks. */
const dripWaiters: Array<() => void> = [];

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** The app behind the proxy: a few routes that show what crossed the channel. */
function createApp(): Server {
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      appHits.push(`${req.method} ${req.url}`);
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', 'http://app');
      if (url.pathname === '/hello') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`hello ${url.searchParams.get('name') ?? 'world'}`);
      } else if (url.pathname === '/echo') {
        res.writeHead(200, {
          'content-type': req.headers['content-type'] ?? 'application/octet-stream',
          'x-method': req.method ?? '',
          'x-cookie': req.headers.cookie ?? '',
          'x-custom': req.headers['x-custom'] ?? '',
        });
        res.end(body);
      } else if (url.pathname === '/cookies') {
        res.writeHead(200, [['set-cookie', 'a=1; Path=/'], ['set-cookie', 'b=2; HttpOnly'], ['content-type', 'text/plain']]);
        res.end('cookies');
      } else if (url.pathname === '/drip') {
        // One chunk, then the next only once the test says the client has the previous one: an answer
        // that arrives whole at the end would hang here.
        res.writeHead(200, { 'content-type': 'text/plain' });
        let sent = 0;
        const next = (): void => {
          if (sent === 3) {
            res.end();
            return;
          }
          res.write(`drip ${sent++};`);
          dripWaiters.push(next);
        };
        next();
      } else if (url.pathname === '/redirect') {
        res.writeHead(302, { location: '/elsewhere' });
        res.end();
      } else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"missing":true}');
      }
    });
  });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'steve-client-e2e-'));
  attester = createMockAttester({ pki: createMockPki() });
  app = createApp();
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  appOrigin = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
  for (const suite of SUITES) agents.set(suite, await startTestAgent({ pki: attester.pki, suite, upstream: appOrigin }));
  await writeFile(join(work, 'root.pem'), pemOf(attester.root));
  await writeFile(join(work, 'pcrs.json'), trustedState(attester.profile.pcrs));
  await writeFile(join(work, 'other-pcrs.json'), trustedState(new Map([0, 1, 2].map((i) => [i, new Uint8Array(48).fill(i + 1)]))));
});

afterAll(async () => {
  for (const agent of agents.values()) await agent.stop();
  app?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

function pemOf(der: Uint8Array): string {
  const base64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE-----\n${base64}${base64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`;
}

function trustedState(pcrs: ReadonlyMap<number, Uint8Array>): string {
  return `${JSON.stringify({ pcr0: hex(pcrs.get(0)!), pcr1: hex(pcrs.get(1)!), pcr2: hex(pcrs.get(2)!), verified_at: '2025-01-01T00:00:00Z' })}\n`;
}

function clientFor(suite: Suite): SteveClient {
  return createSteveClient({
    origin: agents.get(suite)!.origin,
    keyExchange: suite,
    pcrPolicy: [attester.profile],
    root: attester.root,
    verifier: nodeP384Verifier,
  });
}

describe.each(SUITES)('the client against the real agent, %s', (suite) => {
  it('GET and POST with binary bodies, headers and cookies inside the channel', async () => {
    const client = clientFor(suite);
    const hello = await client.request('/hello?name=enclave');
    expect({ status: hello.status, text: await hello.text() }).toEqual({ status: 200, text: 'hello enclave' });
    const receipt = client.receiptFor(hello)!;
    expect(receipt).toMatchObject({ suite, sequence: 1, pcrTrust: 'mock', status: 200 });

    const binary = new Uint8Array(256 * 1024).map((_, i) => (i * 7) & 0xff);
    const echo = await client.request(`${agents.get(suite)!.origin}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', cookie: 'session=inner', 'x-custom': 'yes' },
      body: binary,
    });
    expect(echo.status).toBe(200);
    expect(Buffer.from(await echo.arrayBuffer()).equals(Buffer.from(binary))).toBe(true);
    expect({ method: echo.headers.get('x-method'), cookie: echo.headers.get('x-cookie'), custom: echo.headers.get('x-custom') }).toEqual({ method: 'POST', cookie: 'session=inner', custom: 'yes' });
    const second = client.receiptFor(echo)!;
    expect({ sessionId: second.sessionId, sequence: second.sequence }).toEqual({ sessionId: receipt.sessionId, sequence: 2 });
    client.close();
  });

  it('keeps repeated set-cookie, returns a 3xx as it is and app error statuses as answers', async () => {
    const client = clientFor(suite);
    const cookies = await client.request('/cookies');
    expect(cookies.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; HttpOnly']);
    const redirect = await client.request('/redirect');
    expect({ status: redirect.status, location: redirect.headers.get('location') }).toEqual({ status: 302, location: '/elsewhere' });
    const missing = await client.request('/nowhere');
    expect({ status: missing.status, body: await missing.json() }).toEqual({ status: 404, body: { missing: true } });
    client.close();
  });

  it('many requests at once share one session', async () => {
    const client = clientFor(suite);
    // Each body is read as its answer comes: a streamed body holds its sequence (and one of the session's
    // 16 stream places) until it ends, as fetch's unread bodies hold their connections.
    const responses = await Promise.all(Array.from({ length: 100 }, (_, i) => client.request(`/hello?name=${i}`).then(async (r) => ({ r, text: await r.text() }))));
    expect(responses.map(({ text }) => text)).toEqual(Array.from({ length: 100 }, (_, i) => `hello ${i}`));
    expect(new Set(responses.map(({ r }) => client.receiptFor(r)!.sessionId)).size).toBe(1);
    client.close();
  });

  it('streams (stream-1, on by default in the agent): chunks reach the client while the app is still answering; a ReadableStream upload', async () => {
    const client = clientFor(suite);
    const response = await client.request('/drip');
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    const seen: string[] = [];
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      seen.push(decoder.decode(next.value));
      dripWaiters.shift()?.();
    }
    expect(seen.join('')).toBe('drip 0;drip 1;drip 2;');
    expect(client.receiptFor(response)).toMatchObject({ stream: 'ended', responseBodyBytes: 21 });

    const parts = [new Uint8Array(100_000).fill(1), new Uint8Array(0), new Uint8Array([2, 3])];
    const body = new ReadableStream<Uint8Array>({ pull: (c) => (parts.length > 0 ? c.enqueue(parts.shift()!) : c.close()) });
    const echo = await client.request('/echo', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body });
    const echoed = new Uint8Array(await echo.arrayBuffer());
    expect({ status: echo.status, length: echoed.length, tail: [...echoed.subarray(-3)] }).toEqual({ status: 200, length: 100_002, tail: [1, 2, 3] });
    expect(client.receiptFor(echo)).toMatchObject({ stream: 'ended', requestBodyBytes: 100_002, responseBodyBytes: 100_002 });
    // Our client against an agent without streams (--streaming=false): its binding has the five v2 fields,
    // so the client stays on /e2p/v2/request and every kind of body still works.
    const v2Agent = await startTestAgent({ pki: attester.pki, suite, upstream: appOrigin, config: { streaming: false } });
    try {
      const onV2 = createSteveClient({ origin: v2Agent.origin, keyExchange: suite, pcrPolicy: [attester.profile], root: attester.root, verifier: nodeP384Verifier });
      const greeting = await onV2.request('/hello?name=v2');
      const upload = new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(new Uint8Array(70_000).fill(5)), c.close()) });
      const echoedV2 = await onV2.request('/echo', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: upload });
      expect({
        text: await greeting.text(),
        stream: onV2.receiptFor(greeting)!.stream,
        echoed: (await echoedV2.arrayBuffer()).byteLength,
        echoStream: onV2.receiptFor(echoedV2)!.stream,
      }).toEqual({ text: 'hello v2', stream: undefined, echoed: 70_000, echoStream: undefined });
      onV2.close();
    } finally {
      await v2Agent.stop();
    }
    // streaming: false keeps the v2 path against the same agent.
    const plain = createSteveClient({ origin: agents.get(suite)!.origin, keyExchange: suite, pcrPolicy: [attester.profile], root: attester.root, verifier: nodeP384Verifier, streaming: false });
    const hello = await plain.request('/hello');
    expect({ text: await hello.text(), stream: plain.receiptFor(hello)!.stream }).toEqual({ text: 'hello world', stream: undefined });
    plain.close();
    client.close();
  });

  it('refuses the wrong root and the other suite before anything reaches the app', async () => {
    const before = appHits.length;
    const wrongRoot = createSteveClient({ origin: agents.get(suite)!.origin, keyExchange: suite, pcrPolicy: [attester.profile], verifier: nodeP384Verifier });
    const error = await wrongRoot.request('/hello').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SteveClientError);
    expect((error as SteveClientError).code).toBe('STEVE_CLIENT_ATTESTATION');
    const other = suite === 'X25519' ? 'XWING-DRAFT10' : 'X25519';
    const wrongSuite = createSteveClient({ origin: agents.get(suite)!.origin, keyExchange: other, pcrPolicy: [attester.profile], root: attester.root, verifier: nodeP384Verifier });
    const suiteError = (await wrongSuite.request('/hello').catch((e: unknown) => e)) as SteveClientError;
    expect({ code: suiteError.code, status: suiteError.status, stage: suiteError.stage }).toMatchObject({ code: 'STEVE_CLIENT_HTTP', status: 400, stage: 'session' });
    expect(appHits.length).toBe(before);
  });
});

// ---------------------------------------------------------------------------------------------------
// The CLI

interface Run {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

function cli(args: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const child = spawn(process.execPath, [CLI, ...args], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), SPAWN_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout: Buffer.concat(out), stderr });
    });
  });
}

const STACK_FRAME = /^\s+at .+/m;

describe('enclave-agent fetch (built CLI)', () => {
  it.each(SUITES)('pinned PCRs, %s: body to stdout, status and receipt to stderr', async (suite) => {
    const origin = agents.get(suite)!.origin;
    const run = await cli(['fetch', `${origin}/hello?name=cli`, '--pcrs', 'pcrs.json', '--root', 'root.pem', '--key-exchange', suite]);
    expect({ status: run.status, stdout: run.stdout.toString() }, run.stderr).toEqual({ status: 0, stdout: 'hello cli' });
    expect(run.stderr).toMatch(/^HTTP 200\n/);
    expect(run.stderr).toContain(`steve: ${suite} session `);
    expect(run.stderr).toContain('sequence 1');
    expect(run.stderr).toContain('PCRs match the pinned pcrs.json');
  });

  it('POST with --data, -X, -H, repeated set-cookie and a redirect on stderr; app statuses exit 0', async () => {
    const origin = agents.get('X25519')!.origin;
    const post = await cli(['fetch', `${origin}/echo`, '--pcrs', 'pcrs.json', '--root', 'root.pem', '--data', 'a=1&b=2', '-H', 'X-Custom: from-cli']);
    expect({ status: post.status, stdout: post.stdout.toString() }, post.stderr).toEqual({ status: 0, stdout: 'a=1&b=2' });
    expect(post.stderr).toContain('< x-method: POST');
    expect(post.stderr).toContain('< x-custom: from-cli');
    expect(post.stderr).toContain('< content-type: application/x-www-form-urlencoded');
    const json = await cli(['fetch', `${origin}/echo`, '--pcrs', 'pcrs.json', '--root', 'root.pem', '-X', 'PUT', '--json', '{"k":1}']);
    expect({ status: json.status, stdout: json.stdout.toString() }).toEqual({ status: 0, stdout: '{"k":1}' });
    expect(json.stderr).toContain('< x-method: PUT');
    const cookies = await cli(['fetch', `${origin}/cookies`, '--pcrs', 'pcrs.json', '--root', 'root.pem']);
    expect(cookies.stderr).toContain('< set-cookie: a=1; Path=/\n< set-cookie: b=2; HttpOnly');
    const redirect = await cli(['fetch', `${origin}/redirect`, '--pcrs', 'pcrs.json', '--root', 'root.pem']);
    expect({ status: redirect.status }).toEqual({ status: 0 });
    expect(redirect.stderr).toMatch(/^HTTP 302\n/);
    expect(redirect.stderr).toContain('\n< location: /elsewhere\n');
    const missing = await cli(['fetch', `${origin}/nowhere`, '--pcrs', 'pcrs.json', '--root', 'root.pem']);
    expect({ status: missing.status, stdout: missing.stdout.toString() }).toEqual({ status: 0, stdout: '{"missing":true}' });
    expect(missing.stderr).toMatch(/^HTTP 404\n/);
  });

  it('TOFU: recorded on first use (0600), matched later, a different pin refused', async () => {
    const origin = agents.get('X25519')!.origin;
    const path = join(work, 'tofu.json');
    const first = await cli(['fetch', `${origin}/hello`, '--tofu', 'tofu.json', '--root', 'root.pem']);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stderr).toContain('PCRs recorded in tofu.json');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const recorded = JSON.parse(await readFile(path, 'utf8')) as Record<string, string>;
    expect(recorded.pcr0).toBe(hex(attester.profile.pcrs.get(0)!));
    const again = await cli(['fetch', `${origin}/hello`, '--tofu', 'tofu.json', '--root', 'root.pem']);
    expect(again.status).toBe(0);
    expect(again.stderr).toContain('PCRs match tofu.json (trust on first use)');
    const other = await cli(['fetch', `${origin}/hello`, '--tofu', 'other-pcrs.json', '--root', 'root.pem']);
    expect({ status: other.status, stdout: other.stdout.length }).toEqual({ status: 1, stdout: 0 });
    expect(other.stderr).toContain('STEVE_CLIENT_PCR');
  });

  it('channel failures exit 1 with the code, never a stack trace, and reach no app', async () => {
    const origin = agents.get('X25519')!.origin;
    const before = appHits.length;
    const wrongRoot = await cli(['fetch', `${origin}/hello`, '--pcrs', 'pcrs.json']);
    expect(wrongRoot.status).toBe(1);
    expect(wrongRoot.stderr).toContain('STEVE_CLIENT_ATTESTATION (attestation): attestation document: ATTESTATION_ROOT');
    const wrongPcrs = await cli(['fetch', `${origin}/hello`, '--pcrs', 'other-pcrs.json', '--root', 'root.pem']);
    expect(wrongPcrs.status).toBe(1);
    expect(wrongPcrs.stderr).toContain('STEVE_CLIENT_PCR (pcr)');
    const wrongSuite = await cli(['fetch', `${origin}/hello`, '--pcrs', 'pcrs.json', '--root', 'root.pem', '--key-exchange', 'XWING-DRAFT10']);
    expect(wrongSuite.status).toBe(1);
    expect(wrongSuite.stderr).toContain('STEVE_CLIENT_HTTP (session): POST /e2p/v2/session: HTTP 400');
    const refused = await cli(['fetch', 'http://127.0.0.1:9/hello', '--pcrs', 'pcrs.json', '--root', 'root.pem']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('STEVE_CLIENT_NETWORK');
    for (const run of [wrongRoot, wrongPcrs, wrongSuite, refused]) {
      expect(run.stderr).not.toMatch(STACK_FRAME);
      expect(run.stdout.length).toBe(0);
    }
    expect(appHits.length).toBe(before);
  });

  it('usage errors exit 2', async () => {
    const origin = agents.get('X25519')!.origin;
    const cases: string[][] = [
      ['fetch'],
      ['fetch', `${origin}/hello`],
      ['fetch', `${origin}/hello`, '--pcrs', 'pcrs.json', '--tofu', 'tofu.json'],
      ['fetch', 'ftp://x/', '--pcrs', 'pcrs.json'],
      ['fetch', `${origin}/hello`, '--pcrs', 'missing.json'],
      ['fetch', `${origin}/hello`, '--pcrs', 'pcrs.json', '--key-exchange', 'P256'],
      ['fetch', `${origin}/hello`, '--pcrs', 'pcrs.json', '-H', 'no colon'],
      ['fetch', `${origin}/hello`, '--pcrs', 'pcrs.json', '--data', 'x', '--json', '{}'],
      ['fetch', `${origin}/hello`, '--pcrs', 'pcrs.json', '-X', 'GET', '--data', 'x'],
      ['fetch', `${origin}/hello`, '--pcrs', 'pcrs.json', '--bogus'],
    ];
    const runs = await Promise.all(cases.map((args) => cli(args)));
    runs.forEach((run, i) => {
      expect(run.status, `${cases[i]!.join(' ')}\n${run.stderr}`).toBe(2);
      expect(run.stderr).not.toMatch(STACK_FRAME);
    });
    const help = await cli(['fetch', '--help']);
    expect({ status: help.status, usage: help.stdout.toString().startsWith('Usage: enclave-agent fetch URL') }).toEqual({ status: 0, usage: true });
  });
});
