/**
 * verify's bootstrap step (agent/verify-bootstrap.ts) in parts: reading the attested hashes from a signed
 * manifest (a malformed field is a verdict), which paths each mode fetches, the verdict per path under
 * each mode, the failure lines and report, and fetchAndHash against a loopback server that misbehaves
 * (redirect, error status, encoded body, oversized and endless bodies, a hang). The whole step against a
 * real agent is in agent/verify-bootstrap.e2e.test.ts.
 */

import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOOTSTRAP_PATHS } from '../steve/index.js';
import { AgentError } from './errors.js';
import {
  attestedBootstrap,
  bootstrapFailures,
  bootstrapReportJson,
  fetchAndHash,
  formatBootstrapReport,
  judgeBootstrap,
  pathsToFetch,
  type BootstrapReport,
  type Fetched,
} from './verify-bootstrap.js';

const sha256Hex = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');
const A = sha256Hex('a');
const B = sha256Hex('b');
const ALL = [...BOOTSTRAP_PATHS];
const body = (text: string): Fetched => ({ kind: 'body', status: 200, sha256: sha256Hex(text), bytes: text.length });
const failed = (status: number | null, reason: string): Fetched => ({ kind: 'failed', status, reason });

describe('attestedBootstrap', () => {
  it('null without the field; the hashes with it', () => {
    expect(attestedBootstrap({ version: '1.0' })).toBeNull();
    expect([...attestedBootstrap({ bootstrap: { '/register.js': A, '/': B } })!]).toEqual([
      ['/register.js', A],
      ['/', B],
    ]);
  });

  it.each([
    ['null', null],
    ['an empty object', {}],
    ['an unknown path', { '/app.js': A }],
    ['upper-case hex', { '/': A.toUpperCase() }],
  ])('a signed manifest with a malformed field (%s) is AGENT_VERIFY_BOOTSTRAP', (_, bootstrap) => {
    expect(() => attestedBootstrap({ bootstrap })).toThrow(expect.objectContaining({ code: 'AGENT_VERIFY_BOOTSTRAP', message: expect.stringMatching(/"bootstrap" field is malformed/) }));
  });
});

describe('pathsToFetch', () => {
  const attested = new Map([['/register.js', A]]);
  it('check: only the attested paths; require: every bootstrap path; skip: none', () => {
    expect(pathsToFetch('check', attested)).toEqual(['/register.js']);
    expect(pathsToFetch('check', null)).toEqual([]);
    expect(pathsToFetch('require', attested)).toEqual(ALL);
    expect(pathsToFetch('require', null)).toEqual(ALL);
    expect(pathsToFetch('skip', attested)).toEqual([]);
  });
});

describe('judgeBootstrap', () => {
  const attested = new Map([
    ['/', sha256Hex('a')],
    ['/enclave-sw.js', sha256Hex('b')],
  ]);
  const report = (mode: 'check' | 'require', fetched: Map<string, Fetched>): BootstrapReport => ({ mode, origin: 'http://o', attested: true, results: judgeBootstrap(mode, attested, fetched) });

  it('check: attested paths match, the rest are not attested and pass', () => {
    const results = judgeBootstrap('check', attested, new Map([['/', body('a')], ['/enclave-sw.js', body('b')]]));
    expect(results.map((r) => [r.path, r.outcome, r.passed])).toEqual(ALL.map((path) => [path, attested.has(path) ? 'match' : 'not_attested', true]));
    expect(results[0]).toEqual({ path: '/', outcome: 'match', passed: true, expected: A, actual: A, bytes: 1, status: 200, reason: null });
    expect(bootstrapFailures(report('check', new Map([['/', body('a')], ['/enclave-sw.js', body('b')]])))).toEqual([]);
  });

  it('a changed file is a MISMATCH naming the path, the attested and the served hash', () => {
    const r = report('check', new Map([['/', body('a')], ['/enclave-sw.js', body('evil')]]));
    expect(r.results[1]).toEqual({ path: '/enclave-sw.js', outcome: 'mismatch', passed: false, expected: B, actual: sha256Hex('evil'), bytes: 4, status: 200, reason: null });
    expect(bootstrapFailures(r)).toEqual([`/enclave-sw.js: MISMATCH: the manifest attests sha256 ${B}, the origin served sha256 ${sha256Hex('evil')} (4 bytes)`]);
  });

  it('an attested path that cannot be fetched fails, with the reason', () => {
    const r = report('check', new Map([['/', failed(404, 'HTTP 404')], ['/enclave-sw.js', failed(null, 'the request failed (ECONNRESET)')]]));
    expect(r.results.slice(0, 2).map((x) => [x.outcome, x.passed, x.status, x.actual])).toEqual([
      ['fetch_failed', false, 404, null],
      ['fetch_failed', false, null, null],
    ]);
    expect(bootstrapFailures(r)).toEqual([`/: attested (sha256 ${A}) but not fetched: HTTP 404`, `/enclave-sw.js: attested (sha256 ${B}) but not fetched: the request failed (ECONNRESET)`]);
  });

  it('require: an unattested path passes only when answered 404', () => {
    const fetched = new Map<string, Fetched>([
      ['/', body('a')],
      ['/enclave-sw.js', body('b')],
      ['/register.js', failed(404, 'HTTP 404')],
      ['/attestation-widget.js', body('widget')],
      ['/xwing/steve_xwing_wasm_bg.wasm', failed(500, 'HTTP 500')],
    ]);
    const r = report('require', fetched);
    expect(r.results.map((x) => [x.path, x.outcome, x.passed])).toEqual([
      ['/', 'match', true],
      ['/enclave-sw.js', 'match', true],
      ['/register.js', 'not_served', true],
      ['/attestation-widget.js', 'not_attested', false],
      ['/xwing/steve_xwing_wasm_bg.wasm', 'not_attested', false],
    ]);
    expect(bootstrapFailures(r)).toEqual([
      `/attestation-widget.js: served (HTTP 200, sha256 ${sha256Hex('widget')}) but not attested`,
      '/xwing/steve_xwing_wasm_bg.wasm: not attested, and not answered 404: HTTP 500',
    ]);
  });

  it('require without the field: everything served fails, all 404 passes', () => {
    const all404 = new Map(ALL.map((path) => [path, failed(404, 'HTTP 404')]));
    expect(judgeBootstrap('require', null, all404).every((r) => r.outcome === 'not_served' && r.passed)).toBe(true);
    const served = new Map(ALL.map((path) => [path, body(path)]));
    expect(judgeBootstrap('require', null, served).every((r) => r.outcome === 'not_attested' && !r.passed)).toBe(true);
  });

  it('skip judges nothing', () => {
    expect(judgeBootstrap('skip', attested, new Map())).toEqual([]);
  });
});

describe('the bootstrap report', () => {
  it('lists each path with its outcome; a failing run says FAILED', () => {
    const results = judgeBootstrap('check', new Map([['/register.js', A]]), new Map([['/register.js', body('x')]]));
    const lines = formatBootstrapReport({ mode: 'check', origin: 'http://127.0.0.1:1', attested: true, results });
    expect(lines[0]).toBe('  bootstrap       FAILED: 1 path of http://127.0.0.1:1 did not pass (--bootstrap check)');
    expect(lines).toContain(`    ${'/register.js'.padEnd(34)} MISMATCH        attested sha256:${A}, served sha256:${sha256Hex('x')} (1 bytes)`);
    expect(lines).toContain(`    ${'/'.padEnd(34)} not attested`);
    expect(bootstrapReportJson({ mode: 'check', origin: 'http://127.0.0.1:1', attested: true, results })).toMatchObject({ passed: false, results: expect.arrayContaining([expect.objectContaining({ path: '/register.js', outcome: 'mismatch' })]) });
  });

  it('says when nothing was checked', () => {
    expect(formatBootstrapReport({ mode: 'skip', origin: null, attested: true, results: [] })).toEqual(['  bootstrap       NOT CHECKED (--bootstrap skip): what a browser loads from this origin was not compared']);
    const none = judgeBootstrap('check', null, new Map());
    expect(formatBootstrapReport({ mode: 'check', origin: 'http://o', attested: false, results: none })).toEqual([
      '  bootstrap       NOT CHECKED: the manifest attests no bootstrap files, so what a browser loads from this origin is unchecked',
    ]);
  });
});

describe('fetchAndHash', () => {
  let server: Server;
  let origin: string;
  let dispatcher: Agent;
  const requests: { path: string; headers: Record<string, string | string[] | undefined> }[] = [];
  let endlessClosed: Promise<number> | undefined;
  /** The endless body stops here even if the client never hangs up. */
  const ENDLESS_STOP_BYTES = 64 * 1024 * 1024;
  const MAX = 64 * 1024;
  const LIMITS = { timeoutMs: 10_000, maxBytes: MAX };

  function endless(res: ServerResponse): void {
    const chunk = Buffer.alloc(16 * 1024, 'x');
    let written = 0;
    endlessClosed = new Promise((resolve) => res.on('close', () => resolve(written)));
    res.writeHead(200, { 'content-type': 'text/javascript' });
    const pump = () => {
      while (!res.destroyed && written < ENDLESS_STOP_BYTES) {
        written += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      if (!res.destroyed) res.end();
    };
    pump();
  }

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests.push({ path: req.url ?? '', headers: req.headers });
      switch (req.url) {
        case '/ok':
          res.writeHead(200, { 'content-type': 'text/javascript' });
          res.end('console.log(1)');
          break;
        case '/redirect':
          res.writeHead(302, { location: '/ok' });
          res.end();
          break;
        case '/gone':
          res.writeHead(500);
          res.end('\u001b[2Jboom');
          break;
        case '/gzip':
          res.writeHead(200, { 'content-encoding': 'gzip "<b>injected</b>"' });
          res.end('x');
          break;
        case '/br':
          res.writeHead(200, { 'content-encoding': 'br' });
          res.end('x');
          break;
        case '/exact':
          res.writeHead(200);
          res.end(Buffer.alloc(MAX, 1));
          break;
        case '/declared-huge':
          res.writeHead(200, { 'content-length': String(MAX + 1) });
          res.write('x');
          break;
        case '/endless':
          endless(res);
          break;
        case '/hang':
          break;
        default:
          res.writeHead(404);
          res.end();
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    dispatcher = new Agent();
  });

  afterAll(async () => {
    await dispatcher?.destroy();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const get = (path: string, limits = LIMITS) => fetchAndHash(new URL(path, origin), limits, dispatcher);

  it('hashes a 200 body, asking for identity encoding, sending no cookie or credentials', async () => {
    expect(await get('/ok')).toEqual({ kind: 'body', status: 200, sha256: sha256Hex('console.log(1)'), bytes: 14 });
    const seen = requests.find((r) => r.path === '/ok')!;
    expect(seen.headers['accept-encoding']).toBe('identity');
    expect(seen.headers.cookie).toBeUndefined();
    expect(seen.headers.authorization).toBeUndefined();
  });

  it('a body of exactly the limit is hashed', async () => {
    expect(await get('/exact')).toEqual({ kind: 'body', status: 200, sha256: sha256Hex(Buffer.alloc(MAX, 1)), bytes: MAX });
  });

  it('does not follow a redirect', async () => {
    const before = requests.filter((r) => r.path === '/ok').length;
    expect(await get('/redirect')).toEqual(failed(302, 'HTTP 302: redirects are not followed'));
    expect(requests.filter((r) => r.path === '/ok').length).toBe(before);
  });

  it('an error status is a failure with the status only (the body is not echoed)', async () => {
    expect(await get('/gone')).toEqual(failed(500, 'HTTP 500'));
    expect(await get('/nowhere')).toEqual(failed(404, 'HTTP 404'));
  });

  it('an encoded body is refused; a hostile encoding name is not echoed', async () => {
    expect(await get('/br')).toEqual(failed(200, 'content-encoding br although identity was asked for'));
    expect(await get('/gzip')).toEqual(failed(200, 'content-encoding other although identity was asked for'));
  });

  it('a declared length past the limit is refused before reading', async () => {
    expect(await get('/declared-huge')).toEqual(failed(200, `larger than ${MAX} bytes (declared); not read`));
  });

  it('an endless body is cut off past the limit and the connection closed', async () => {
    expect(await get('/endless')).toEqual(failed(200, `larger than ${MAX} bytes; cut off`));
    expect(await endlessClosed!).toBeLessThan(ENDLESS_STOP_BYTES);
  });

  it('a server that never answers runs into the deadline', async () => {
    expect(await get('/hang', { timeoutMs: 300, maxBytes: MAX })).toEqual(failed(null, 'no complete answer within 0.3 s'));
  });

  it('nothing listening is a failure with the error code', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    expect(await fetchAndHash(new URL(`http://127.0.0.1:${port}/`), LIMITS, dispatcher)).toEqual(failed(null, 'the request failed (ECONNREFUSED)'));
  });
});

describe('AgentError detail', () => {
  it('carries structured facts beside the message', () => {
    const err = new AgentError('AGENT_VERIFY_BOOTSTRAP', 'x', { detail: { bootstrap: 1 } });
    expect(err.detail).toEqual({ bootstrap: 1 });
    expect(new AgentError('AGENT_USAGE', 'y').detail).toBeUndefined();
  });
});
