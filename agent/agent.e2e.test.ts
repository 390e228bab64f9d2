/**
 * End to end on loopback: a real agent (mock NSM, real manifest and user_data) answers `/attestation`,
 * and `verify` (agent/verify-remote.ts) checks it, called directly and through the built CLI. A helper
 * server on 127.0.0.1 plays the hostile network: a proxy that rewrites the manifest, one that replays a
 * document fetched earlier for another nonce, a redirect, an endless body, a server that never answers.
 * Every listener binds port 0 on 127.0.0.1 and is closed in afterAll; every request has a deadline.
 */

import { CLI, runCli, type CliRun } from '../test/run-cli.js';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesToHex, createMockPki, defaultMockPcrs, openMockNsm, writeMockPki, type MockPki, type Nsm } from '../nsm/index.js';
import { silentLogger } from '../test/mock-documents.js';
import { testAgentConfig } from '../test/agent-config.js';
import { startAgent, type RunningAgent } from './agent.js';
import { DEMO_MANIFEST_JSON } from './demo/manifest.js';
import { parseManifest, type Manifest } from './manifest.js';
import { REMOTE_RESPONSE_MAX_BYTES, verifyRemote, type PcrPolicy, type RemoteVerifyOptions } from './verify-remote.js';

/** Each test's bound; loopback answers take milliseconds, so only a hang comes near it. */
const TEST_TIMEOUT_MS = 20_000;
/** Deadline for a verification inside a test: a coded failure, well before the test's own bound. */
const VERIFY_TIMEOUT_MS = 10_000;
/** The endless body stops here even if the client never hangs up: 64 x the verifier's 1 MiB cap. */
const ENDLESS_BODY_STOP_BYTES = 64 * REMOTE_RESPONSE_MAX_BYTES;

const utf8 = (text: string) => new TextEncoder().encode(text);
const b64 = (bytes: Uint8Array | string) => Buffer.from(bytes).toString('base64');

let work: string;
let pki: MockPki;
let rootPem: string;
let manifest: Manifest;
const nsms: Nsm[] = [];
let agent: RunningAgent;
/** An agent on the same PKI whose image measures differently (other PCR0-2). */
let otherAgent: RunningAgent;
/** An agent whose PCR0-2 are zero: a debug-mode enclave. */
let debugAgent: RunningAgent;
let helper: Server;
let helperUrl: string;
let agentUrl: string;
let otherAgentUrl: string;
/** An /attestation answer fetched in beforeAll for a nonce no later run uses. */
let replayed: Uint8Array;
let redirectTargetHits = 0;
let endless: { written: number; closedByClient: Promise<boolean> } | undefined;

const OTHER_PCRS = new Map([0, 1, 2].map((i) => [i, new Uint8Array(48).fill(0x11 * (i + 1))]));
const METADATA = { tls: { mode: 'tls', domain: 'enclave.example', certfp: 'ab'.repeat(32) } };

function agentConfig(metadataPath: string | null) {
  return testAgentConfig({ metadataPath, nsmQueueMax: 64 });
}

async function startMockAgent(pcrs?: Map<number, Uint8Array>, metadataPath: string | null = null): Promise<RunningAgent> {
  const nsm = openMockNsm({ pki, logger: silentLogger, ...(pcrs !== undefined ? { pcrs } : {}) });
  nsms.push(nsm);
  return startAgent({ config: agentConfig(metadataPath), nsm, manifest, logger: pino({ level: 'silent' }) });
}

/** POSTs `body` to the agent and returns the answer's bytes (the proxy's upstream leg). */
async function askAgent(body: string): Promise<Uint8Array> {
  const answer = await request(agentUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(VERIFY_TIMEOUT_MS) });
  if (answer.statusCode !== 200) throw new Error(`agent answered ${answer.statusCode}`);
  return new Uint8Array(await answer.body.arrayBuffer());
}

function sendJson(res: ServerResponse, status: number, body: Uint8Array | string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

/** Streams `{"document":"AAAA...` until the client hangs up (or ENDLESS_BODY_STOP_BYTES). */
function streamEndlessly(res: ServerResponse): void {
  const chunk = Buffer.alloc(64 * 1024, 'A');
  const state = { written: 0, closedByClient: new Promise<boolean>((resolve) => res.on('close', () => resolve(state.written < ENDLESS_BODY_STOP_BYTES))) };
  endless = state;
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write('{"document":"');
  const pump = () => {
    while (!res.destroyed && state.written < ENDLESS_BODY_STOP_BYTES) {
      state.written += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    if (!res.destroyed) res.end('"}');
  };
  pump();
}

/** The hostile network: one loopback server, one behaviour per path. */
function createHelper(): Server {
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const path = new URL(req.url ?? '/', 'http://helper.invalid').pathname;
      const fail = (err: unknown) => sendJson(res, 502, JSON.stringify({ errors: [String(err)] }));
      switch (path) {
        case '/pass':
          askAgent(body).then((answer) => sendJson(res, 200, answer), fail);
          break;
        case '/tamper-manifest':
          // The signed bytes stay; the object a person reads says something else.
          askAgent(body).then((answer) => {
            const json = JSON.parse(Buffer.from(answer).toString('utf8')) as { manifest: Record<string, unknown> };
            json.manifest.run_command = 'node exfiltrate.js';
            sendJson(res, 200, JSON.stringify(json));
          }, fail);
          break;
        case '/tamper-base64':
          // Object and bytes agree with each other, but not with the manifest_sha256 the enclave signed.
          askAgent(body).then((answer) => {
            const json = JSON.parse(Buffer.from(answer).toString('utf8')) as Record<string, unknown>;
            const other = DEMO_MANIFEST_JSON.replace('node demo-app.js', 'node exfiltrate.js');
            json.manifest = JSON.parse(other);
            json.manifest_base64 = b64(other);
            sendJson(res, 200, JSON.stringify(json));
          }, fail);
          break;
        case '/replay':
          sendJson(res, 200, replayed);
          break;
        case '/redirect':
          res.writeHead(302, { location: `${helperUrl}/redirect-target` });
          res.end();
          break;
        case '/redirect-target':
          redirectTargetHits++;
          askAgent(body).then((answer) => sendJson(res, 200, answer), fail);
          break;
        case '/endless':
          streamEndlessly(res);
          break;
        case '/declared-huge':
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(REMOTE_RESPONSE_MAX_BYTES + 1) });
          res.write('{');
          break;
        case '/hang':
          break;
        case '/busy':
          sendJson(res, 429, JSON.stringify({ errors: ['too many attestation requests', '\u001b[2Jescape'] }));
          break;
        case '/html':
          res.writeHead(200, { 'content-type': 'text/html' });
          res.end('<html>hello</html>');
          break;
        default:
          sendJson(res, 404, '{"errors":["not found"]}');
      }
    });
  });
}

function verify(url: string, policy: PcrPolicy = { kind: 'none' }, extra: Partial<RemoteVerifyOptions> = {}) {
  return verifyRemote({ url: new URL(url), root: pki.root.der, policy, timeoutMs: VERIFY_TIMEOUT_MS, ...extra });
}

async function expectVerdict(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code, ...(message !== undefined ? { message: expect.stringMatching(message) } : {}) });
}

async function pcrsFile(name: string, pcrs: ReadonlyMap<number, Uint8Array>): Promise<string> {
  const path = join(work, name);
  await writeFile(path, JSON.stringify({ pcr0: bytesToHex(pcrs.get(0)!), pcr1: bytesToHex(pcrs.get(1)!), pcr2: bytesToHex(pcrs.get(2)!), verified_at: '2025-01-01T00:00:00Z' }));
  return path;
}

// ---------------------------------------------------------------------------------------------------
// The built CLI (test/global-setup.ts builds it once per run)



/** Runs the CLI without blocking this process's event loop (the agent it talks to lives here). */
const cli = (args: readonly string[]): Promise<CliRun> => runCli(args, { cwd: work, timeoutMs: TEST_TIMEOUT_MS - 2000 });

// ---------------------------------------------------------------------------------------------------

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'enclave-agent-e2e-'));
  pki = createMockPki();
  await writeMockPki(join(work, 'pki'), pki);
  rootPem = join(work, 'pki', 'root.pem');
  manifest = parseManifest(utf8(DEMO_MANIFEST_JSON), 'e2e manifest');
  await writeFile(join(work, 'metadata.json'), JSON.stringify(METADATA));
  agent = await startMockAgent(undefined, join(work, 'metadata.json'));
  otherAgent = await startMockAgent(OTHER_PCRS);
  debugAgent = await startMockAgent(new Map([0, 1, 2].map((i) => [i, new Uint8Array(48)])));
  agentUrl = `http://${agent.addresses.public}/attestation`;
  otherAgentUrl = `http://${otherAgent.addresses.public}/attestation`;
  helper = createHelper();
  helper.listen(0, '127.0.0.1');
  await once(helper, 'listening');
  helperUrl = `http://127.0.0.1:${(helper.address() as AddressInfo).port}`;
  replayed = await askAgent(JSON.stringify({ nonce: b64(new Uint8Array(32).fill(0x5a)) }));
}, 120_000);

afterAll(async () => {
  if (helper !== undefined) {
    helper.closeAllConnections();
    await new Promise<void>((resolve) => helper.close(() => resolve()));
  }
  await Promise.all([agent?.stop(), otherAgent?.stop(), debugAgent?.stop()]);
  await Promise.all(nsms.map((nsm) => nsm.close()));
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('verify against a running agent', () => {
  it('passes with the mock root and reports what it checked', { timeout: TEST_TIMEOUT_MS }, async () => {
    const report = await verify(agentUrl);
    expect(report.url).toBe(agentUrl);
    expect(report.document.moduleId).toBe(pki.moduleId);
    expect(report.document.chain).toHaveLength(5);
    expect(report.document.debug).toBe(false);
    expect(report.document.nonce).toEqual(report.nonce);
    expect(report.nonce).toHaveLength(32);
    expect(report.rootName).toBeNull();
    for (const [index, value] of defaultMockPcrs()) expect(report.document.pcrs.get(index)).toEqual(value);
    expect(report.pcrPolicy).toEqual({ kind: 'none' });
    expect(report.binding).toEqual({ manifestSha256: manifest.sha256, verifyingKey: agent.verifyingKey, metadataKeys: ['tls'] });
    expect(report.manifest).toEqual(manifest.value);
  });

  it('sends a fresh nonce every time', { timeout: TEST_TIMEOUT_MS }, async () => {
    const [a, b] = await Promise.all([verify(agentUrl), verify(agentUrl)]);
    expect(bytesToHex(a.nonce)).not.toBe(bytesToHex(b.nonce));
  });

  it('passes through an honest proxy; fails AGENT_VERIFY_MANIFEST when the manifest object or its bytes are replaced', { timeout: TEST_TIMEOUT_MS }, async () => {
    expect((await verify(`${helperUrl}/pass`)).binding.manifestSha256).toBe(manifest.sha256);
    await expectVerdict(verify(`${helperUrl}/tamper-manifest`), 'AGENT_VERIFY_MANIFEST', /"manifest" differs from the signed manifest_base64/);
    await expectVerdict(verify(`${helperUrl}/tamper-base64`), 'AGENT_VERIFY_MANIFEST', new RegExp(`but the document signed ${manifest.sha256}`));
  });

  it('pins PCRs with --pcrs files: a wrong file fails ATTESTATION_PCR, the right one matches by name', { timeout: TEST_TIMEOUT_MS }, async () => {
    const right = await pcrsFile('right.json', defaultMockPcrs());
    const wrong = await pcrsFile('wrong.json', OTHER_PCRS);
    await expectVerdict(verify(agentUrl, { kind: 'pinned', profiles: [{ name: wrong, pcrs: OTHER_PCRS }] }), 'ATTESTATION_PCR');
    const report = await verify(agentUrl, { kind: 'pinned', profiles: [{ name: wrong, pcrs: OTHER_PCRS }, { name: right, pcrs: defaultMockPcrs() }] });
    expect(report.pcrPolicy).toEqual({ kind: 'pinned', profile: right });
    await expectVerdict(verify(otherAgentUrl, { kind: 'pinned', profiles: [{ name: right, pcrs: defaultMockPcrs() }] }), 'ATTESTATION_PCR');
  });

  it('a replayed document (fetched earlier for another nonce) fails ATTESTATION_NONCE', { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectVerdict(verify(`${helperUrl}/replay`), 'ATTESTATION_NONCE');
  });

  it('the default AWS root refuses a mock document: ATTESTATION_ROOT', { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectVerdict(verifyRemote({ url: new URL(agentUrl), policy: { kind: 'none' }, timeoutMs: VERIFY_TIMEOUT_MS }), 'ATTESTATION_ROOT');
  });

  it('TOFU: the first run records, the second matches, other PCRs fail and leave the file unchanged', { timeout: TEST_TIMEOUT_MS }, async () => {
    const path = join(work, 'tofu.json');
    const first = await verify(agentUrl, { kind: 'tofu', path });
    expect(first.pcrPolicy).toEqual({ kind: 'tofu', path, result: 'recorded' });
    const recorded = await readFile(path, 'utf8');
    const state = JSON.parse(recorded) as Record<string, string>;
    expect(Object.keys(state)).toEqual(['pcr0', 'pcr1', 'pcr2', 'verified_at']);
    for (const index of [0, 1, 2]) expect(state[`pcr${index}`]).toBe(bytesToHex(defaultMockPcrs().get(index)!));
    for (const index of [0, 1, 2]) expect(state[`pcr${index}`]).toMatch(/^[0-9a-f]{96}$/);
    expect(state.verified_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(Math.abs(Date.parse(state.verified_at!) - first.verifiedAtMs)).toBeLessThan(1000);
    expect(((await stat(path)).mode & 0o777).toString(8)).toBe('600');

    expect((await verify(agentUrl, { kind: 'tofu', path })).pcrPolicy).toEqual({ kind: 'tofu', path, result: 'matched' });
    const before = await stat(path);
    await expectVerdict(verify(otherAgentUrl, { kind: 'tofu', path }), 'ATTESTATION_PCR');
    expect(await readFile(path, 'utf8')).toBe(recorded);
    expect((await stat(path)).mtimeMs).toBe(before.mtimeMs);
  });

  it('TOFU records nothing when anything else fails', { timeout: TEST_TIMEOUT_MS }, async () => {
    const path = join(work, 'tofu-never.json');
    await expectVerdict(verify(`${helperUrl}/tamper-manifest`, { kind: 'tofu', path }), 'AGENT_VERIFY_MANIFEST');
    await expectVerdict(verify(`${helperUrl}/replay`, { kind: 'tofu', path }), 'ATTESTATION_NONCE');
    await expectVerdict(verifyRemote({ url: new URL(agentUrl), policy: { kind: 'tofu', path }, timeoutMs: VERIFY_TIMEOUT_MS }), 'ATTESTATION_ROOT');
    expect(existsSync(path)).toBe(false);
  });

  it('TOFU: a malformed state file is a usage error, found before anything is sent', { timeout: TEST_TIMEOUT_MS }, async () => {
    const path = join(work, 'tofu-corrupt.json');
    await writeFile(path, '{"pcr0":"not hex"}');
    await expectVerdict(verify(`${helperUrl}/redirect`, { kind: 'tofu', path }), 'AGENT_USAGE', /--tofu .*tofu-corrupt\.json: "pcr0" expected 96 hex digits/);
    expect(redirectTargetHits).toBe(0);
    expect(await readFile(path, 'utf8')).toBe('{"pcr0":"not hex"}');
  });

  it('debug mode: refused without --allow-debug; with it, verified but never recorded as a TOFU pin', { timeout: TEST_TIMEOUT_MS }, async () => {
    const url = `http://${debugAgent.addresses.public}/attestation`;
    const path = join(work, 'tofu-debug.json');
    await expectVerdict(verify(url), 'ATTESTATION_DEBUG');
    expect((await verify(url, { kind: 'none' }, { allowDebug: true })).document.debug).toBe(true);
    await expectVerdict(verify(url, { kind: 'tofu', path }, { allowDebug: true }), 'AGENT_VERIFY_TOFU', /debug-mode/);
    expect(existsSync(path)).toBe(false);
  });
});

describe('verify refuses what a client must not accept', () => {
  it('a redirect (302) is refused and not followed', { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectVerdict(verify(`${helperUrl}/redirect`), 'AGENT_VERIFY_FETCH', /HTTP 302: redirects are not followed/);
    expect(redirectTargetHits).toBe(0);
  });

  it('a body beyond 1 MiB is cut off: AGENT_VERIFY_FETCH, and the connection is closed', { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectVerdict(verify(`${helperUrl}/endless`), 'AGENT_VERIFY_FETCH', /larger than 1048576 bytes/);
    expect(endless).toBeDefined();
    expect(await endless!.closedByClient, `server wrote ${endless!.written} bytes`).toBe(true);
    expect(endless!.written).toBeGreaterThan(REMOTE_RESPONSE_MAX_BYTES);
  });

  it('a declared Content-Length beyond 1 MiB is refused before reading', { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectVerdict(verify(`${helperUrl}/declared-huge`), 'AGENT_VERIFY_FETCH', /larger than 1048576 bytes/);
  });

  it('a server that never answers runs into the deadline', { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectVerdict(verify(`${helperUrl}/hang`, { kind: 'none' }, { timeoutMs: 300 }), 'AGENT_VERIFY_FETCH', /no complete answer within 0\.3 s/);
  });

  it('an error status carries the server\'s errors, escaped', { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectVerdict(verify(`${helperUrl}/busy`), 'AGENT_VERIFY_FETCH', /^HTTP 429; the server says: too many attestation requests; \\u\{1b\}\[2Jescape$/);
    await expectVerdict(verify(`${helperUrl}/nowhere`), 'AGENT_VERIFY_FETCH', /^HTTP 404; the server says: not found$/);
  });

  it('a 200 that is not the JSON answer is AGENT_VERIFY_RESPONSE', { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectVerdict(verify(`${helperUrl}/html`), 'AGENT_VERIFY_RESPONSE', /not UTF-8 JSON/);
  });

  it('nothing listening is AGENT_VERIFY_FETCH', { timeout: TEST_TIMEOUT_MS }, async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await expectVerdict(verify(`http://127.0.0.1:${port}/attestation`), 'AGENT_VERIFY_FETCH', /ECONNREFUSED/);
  });
});

describe('the built CLI: enclave-agent verify', () => {
  it('exit 0 with the report (text and --json) with the mock root', { timeout: TEST_TIMEOUT_MS }, async () => {
    const [text, json] = await Promise.all([cli(['verify', '--url', agentUrl, '--root', rootPem]), cli(['verify', '--url', agentUrl, '--root', rootPem, '--json'])]);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^VALID attestation from ${agentUrl.replace(/\./g, '\\.')}\n`));
    expect(text.stdout).toContain(`module          ${pki.moduleId}`);
    expect(text.stdout).toContain('PCR policy      NOT CHECKED');
    expect(text.stdout).toContain(`manifest        sha256:${manifest.sha256} matches`);
    expect(json.status, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      valid: true,
      url: agentUrl,
      moduleId: pki.moduleId,
      chainLength: 5,
      debug: false,
      nonceMatched: true,
      root: { name: null },
      pcrs: { '0': bytesToHex(defaultMockPcrs().get(0)!) },
      pcrPolicy: { kind: 'none' },
      manifestSha256: manifest.sha256,
      manifestMatched: true,
      verifyingKey: bytesToHex(agent.verifyingKey),
      metadataKeys: ['tls'],
      manifest: manifest.value,
    });
  });

  it('exit 1 with the code: AWS root, wrong --pcrs, tampered manifest; TOFU records then matches', { timeout: TEST_TIMEOUT_MS }, async () => {
    const wrong = await pcrsFile('cli-wrong.json', OTHER_PCRS);
    const tofu = join(work, 'cli-tofu.json');
    const [awsRoot, awsRootJson, wrongPcrs, tampered, redirect, endlessBody] = await Promise.all([
      cli(['verify', '--url', agentUrl]),
      cli(['verify', '--url', agentUrl, '--json']),
      cli(['verify', '--url', agentUrl, '--root', rootPem, '--pcrs', wrong]),
      cli(['verify', '--url', `${helperUrl}/tamper-manifest`, '--root', rootPem]),
      cli(['verify', '--url', `${helperUrl}/redirect`, '--root', rootPem]),
      cli(['verify', '--url', `${helperUrl}/endless`, '--root', rootPem, '--json']),
    ]);
    expect(awsRoot.status, awsRoot.stderr).toBe(1);
    expect(awsRoot.stdout).toMatch(/^INVALID ATTESTATION_ROOT: /);
    expect(awsRootJson.status).toBe(1);
    expect(JSON.parse(awsRootJson.stdout)).toMatchObject({ valid: false, code: 'ATTESTATION_ROOT' });
    expect(wrongPcrs.status).toBe(1);
    expect(wrongPcrs.stdout).toMatch(/^INVALID ATTESTATION_PCR: /);
    expect(tampered.status).toBe(1);
    expect(tampered.stdout).toMatch(/^INVALID AGENT_VERIFY_MANIFEST: /);
    expect(redirect.status, redirect.stderr).toBe(1);
    expect(redirect.stdout).toMatch(/^INVALID AGENT_VERIFY_FETCH: HTTP 302: redirects are not followed/);
    expect(redirect.stderr).toBe('');
    expect(endlessBody.status, endlessBody.stderr).toBe(1);
    expect(JSON.parse(endlessBody.stdout)).toMatchObject({ valid: false, code: 'AGENT_VERIFY_FETCH' });
    expect(redirectTargetHits).toBe(0);

    const first = await cli(['verify', '--url', agentUrl, '--root', rootPem, '--tofu', tofu]);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toContain(`PCR policy      TOFU recorded in ${tofu}`);
    const second = await cli(['verify', '--url', agentUrl, '--root', rootPem, '--tofu', tofu]);
    expect(second.stdout).toContain(`PCR policy      TOFU matched ${tofu}`);
  });

  it('exit 2 for usage errors', { timeout: TEST_TIMEOUT_MS }, async () => {
    const pcrs = await pcrsFile('cli-usage.json', defaultMockPcrs());
    await writeFile(join(work, 'cli-bad.json'), '{"pcr0":"00"}');
    const runs = await Promise.all([
      cli(['verify']),
      cli(['verify', '--url', 'ftp://127.0.0.1/attestation']),
      cli(['verify', '--url', agentUrl, '--pcrs', pcrs, '--tofu', join(work, 'cli-usage-tofu.json')]),
      cli(['verify', '--url', agentUrl, '--pcrs', join(work, 'cli-bad.json')]),
      cli(['verify', '--url', agentUrl, '--frobnicate']),
    ]);
    for (const [i, message] of [/--url URL is required/, /http: or https:/, /--pcrs and --tofu exclude each other/, /"pcr0" expected 96 hex digits/, /frobnicate/].entries()) {
      expect(runs[i]!.status, runs[i]!.stderr).toBe(2);
      expect(runs[i]!.stderr).toMatch(message);
      expect(runs[i]!.stderr).toContain('Usage: enclave-agent verify');
      expect(runs[i]!.stdout).toBe('');
    }
  });
});
