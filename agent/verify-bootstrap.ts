/**
 * `enclave-agent verify`'s last step: compare the bootstrap files an origin serves with the hashes the
 * enclave signed (the attested manifest's `bootstrap` field, agent/manifest.ts). A browser fetches these
 * files in plaintext through the host before it can speak STEVE (specs/steve.md §6), so an active host
 * can rewrite them; this step shows whether what this client was served is what the image attests. It
 * proves nothing about what another client is served (README, "Threat model in a browser").
 *
 * Modes: `check` (the default) fetches every path the manifest lists and fails on a mismatch or on a path
 * it cannot fetch (the image promises those bytes; not getting them is either a rewriting host or a broken
 * deployment, and neither may pass); unlisted paths are reported "not attested" and not fetched, so images
 * without the field verify as before, with no extra requests. `require` also fetches the unlisted paths and
 * fails unless each is answered 404: everything the origin serves to bootstrap a browser must be attested.
 * `skip` fetches nothing.
 *
 * Pure parts (the attested hashes, the verdict, the report) take values; the I/O is one GET per path, all
 * at once on a connection pool of its own: no redirects followed, no cookies or credentials (none are
 * held), `Accept-Encoding: identity`, each body hashed as it streams (nothing kept) and cut off past
 * BOOTSTRAP_FILE_MAX_BYTES, each request under the verifier's deadline. No string the server chose reaches
 * a result: reasons are built from status numbers and error codes checked against a token pattern.
 */

import { createHash } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import { BOOTSTRAP_PATHS } from '../steve/index.js';
import { AgentError } from './errors.js';
import { checkBootstrapField } from './manifest.js';

/**
 * The most bytes read of one bootstrap file. The largest today is the service worker, about 260 KiB
 * (`node steve/browser/build.mjs` prints the sizes); the X-Wing module is of the same order. 16 MiB is
 * 60 times that, and the body is hashed as it arrives, so the bound is on time and traffic, not memory.
 */
export const BOOTSTRAP_FILE_MAX_BYTES = 16 * 1024 * 1024;

export const BOOTSTRAP_MODES = ['require', 'check', 'skip'] as const;
export type BootstrapMode = (typeof BOOTSTRAP_MODES)[number];

/**
 * What one path came to:
 * - `match` / `mismatch`: attested, fetched (200), and the hash equal / not equal to the attested one;
 * - `fetch_failed`: attested, but no 200 body to hash (`reason` says why);
 * - `not_attested`: the manifest lists no hash for it (under `require`, fetched and served: a failure);
 * - `not_served`: not attested, and answered 404 (`require` only).
 */
export type BootstrapOutcome = 'match' | 'mismatch' | 'fetch_failed' | 'not_attested' | 'not_served';

export interface BootstrapResult {
  path: string;
  outcome: BootstrapOutcome;
  /** Whether this path lets the step pass under the mode it was checked in. */
  passed: boolean;
  /** The attested hash (lower-case hex), or null when the manifest lists none. */
  expected: string | null;
  /** SHA-256 of the 200 body served, or null when there was none (or the path was not fetched). */
  actual: string | null;
  bytes: number | null;
  /** The HTTP status answered, or null when there was no answer (or the path was not fetched). */
  status: number | null;
  /** Why there is no hash, when fetched without a 200 body. */
  reason: string | null;
}

export interface BootstrapReport {
  mode: BootstrapMode;
  /** Where the files were fetched from; null under `skip`. */
  origin: string | null;
  /** Whether the attested manifest has a `bootstrap` field. */
  attested: boolean;
  /** One per bootstrap path, in BOOTSTRAP_PATHS order; empty under `skip`. */
  results: BootstrapResult[];
}

/** What one GET gave: a 200 body's hash and size, or why there is none. */
export type Fetched = { kind: 'body'; status: 200; sha256: string; bytes: number } | { kind: 'failed'; status: number | null; reason: string };

/**
 * The attested hashes from the signed manifest's `bootstrap` field: null when there is none. A field
 * that is there but malformed fails the step (`AGENT_VERIFY_BOOTSTRAP`): the image attests something,
 * and a verifier must not guess what.
 */
export function attestedBootstrap(manifest: Readonly<Record<string, unknown>>): ReadonlyMap<string, string> | null {
  if (!Object.hasOwn(manifest, 'bootstrap')) return null;
  const problems = checkBootstrapField(manifest.bootstrap);
  if (problems.length > 0) throw new AgentError('AGENT_VERIFY_BOOTSTRAP', `the signed manifest's "bootstrap" field is malformed: ${problems.join('; ')}`, { problems });
  return new Map(Object.entries(manifest.bootstrap as Record<string, string>));
}

/** The paths `mode` fetches: the attested ones, and under `require` every bootstrap path. */
export function pathsToFetch(mode: BootstrapMode, attested: ReadonlyMap<string, string> | null): string[] {
  if (mode === 'skip') return [];
  return [...BOOTSTRAP_PATHS].filter((path) => mode === 'require' || attested?.has(path) === true);
}

/** Judges each path from what was fetched (`fetched` holds exactly the paths `pathsToFetch` named). */
export function judgeBootstrap(mode: BootstrapMode, attested: ReadonlyMap<string, string> | null, fetched: ReadonlyMap<string, Fetched>): BootstrapResult[] {
  if (mode === 'skip') return [];
  return [...BOOTSTRAP_PATHS].map((path): BootstrapResult => {
    const expected = attested?.get(path) ?? null;
    const got = fetched.get(path);
    const seen =
      got === undefined
        ? { actual: null, bytes: null, status: null, reason: null }
        : got.kind === 'body'
          ? { actual: got.sha256, bytes: got.bytes, status: got.status, reason: null }
          : { actual: null, bytes: null, status: got.status, reason: got.reason };
    if (expected !== null) {
      // Public hashes of public files: a plain comparison, exact (both are lower-case hex).
      if (got === undefined) throw new Error(`judgeBootstrap: attested path ${path} was not fetched`);
      if (got.kind === 'failed') return { path, outcome: 'fetch_failed', passed: false, expected, ...seen };
      const outcome = got.sha256 === expected ? 'match' : 'mismatch';
      return { path, outcome, passed: outcome === 'match', expected, ...seen };
    }
    if (mode === 'check') return { path, outcome: 'not_attested', passed: true, expected, ...seen };
    if (got === undefined) throw new Error(`judgeBootstrap: ${path} was not fetched under require`);
    // 404: the app has nothing there, and a browser runs no script from it.
    if (got.status === 404) return { path, outcome: 'not_served', passed: true, expected, ...seen };
    return { path, outcome: 'not_attested', passed: false, expected, ...seen };
  });
}

/** One line per failing path, for the error message; empty when the step passed. */
export function bootstrapFailures(report: BootstrapReport): string[] {
  return report.results
    .filter((result) => !result.passed)
    .map((r) => {
      switch (r.outcome) {
        case 'mismatch':
          return `${r.path}: MISMATCH: the manifest attests sha256 ${r.expected}, the origin served sha256 ${r.actual} (${r.bytes} bytes)`;
        case 'fetch_failed':
          return `${r.path}: attested (sha256 ${r.expected}) but not fetched: ${r.reason}`;
        default:
          return r.reason === null ? `${r.path}: served (HTTP ${r.status}, sha256 ${r.actual}) but not attested` : `${r.path}: not attested, and not answered 404: ${r.reason}`;
      }
    });
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The report's bootstrap lines: a summary, then one line per path. Only our own strings appear. */
export function formatBootstrapReport(report: BootstrapReport): string[] {
  if (report.mode === 'skip') return ['  bootstrap       NOT CHECKED (--bootstrap skip): what a browser loads from this origin was not compared'];
  const count = (outcome: BootstrapOutcome) => report.results.filter((r) => r.outcome === outcome).length;
  const failing = report.results.filter((r) => !r.passed).length;
  const listed = report.results.filter((r) => r.expected !== null).length;
  const summary =
    failing > 0
      ? `FAILED: ${plural(failing, 'path')} of ${report.origin} did not pass (--bootstrap ${report.mode})`
      : !report.attested && report.mode === 'check'
        ? 'NOT CHECKED: the manifest attests no bootstrap files, so what a browser loads from this origin is unchecked'
        : `${plural(count('match'), 'attested file')} match what ${report.origin} served` +
          (report.mode === 'require' ? `; ${plural(count('not_served'), 'other path')} not served (--bootstrap require)` : `; ${plural(count('not_attested'), 'path')} not attested (--bootstrap check)`);
  const lines = report.results.map((r) => {
    const label = (() => {
      switch (r.outcome) {
        case 'match':
          return `match           sha256:${r.actual} (${r.bytes} bytes)`;
        case 'mismatch':
          return `MISMATCH        attested sha256:${r.expected}, served sha256:${r.actual} (${r.bytes} bytes)`;
        case 'fetch_failed':
          return `FETCH FAILED    ${r.reason} (attested sha256:${r.expected})`;
        case 'not_served':
          return `not served      HTTP ${r.status}`;
        case 'not_attested':
          if (r.passed) return 'not attested';
          return `NOT ATTESTED    ${r.reason ?? `served HTTP ${r.status}${r.actual === null ? '' : ` sha256:${r.actual} (${r.bytes} bytes)`}`}`;
      }
    })();
    return `    ${r.path.padEnd(34)} ${label}`;
  });
  return [`  bootstrap       ${summary}`, ...(listed > 0 || report.mode === 'require' ? lines : [])];
}

/** The JSON form (`verify --json`): the report as it is. */
export function bootstrapReportJson(report: BootstrapReport): object {
  return { mode: report.mode, origin: report.origin, attested: report.attested, passed: report.results.every((r) => r.passed), results: report.results };
}

// ---------------------------------------------------------------------------------------------------
// I/O

/** An error code fit to print (ECONNREFUSED, UND_ERR_SOCKET), or `error`. */
function errorCode(cause: unknown): string {
  const code = (cause as { code?: unknown }).code ?? (cause as { name?: unknown }).name;
  return typeof code === 'string' && /^[A-Za-z0-9_]{1,40}$/.test(code) ? code : 'error';
}

function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

/**
 * GETs `url` and hashes a 200 body as it streams. Never throws: every failure is a `failed` result with
 * a reason. The dispatcher is the caller's, so the paths of one run share a pool.
 */
export async function fetchAndHash(url: URL, limits: { timeoutMs: number; maxBytes: number }, dispatcher: Dispatcher): Promise<Fetched> {
  const signal = AbortSignal.timeout(limits.timeoutMs);
  const why = (cause: unknown) => (signal.aborted ? `no complete answer within ${limits.timeoutMs / 1000} s` : `the request failed (${errorCode(cause)})`);
  let answer: Dispatcher.ResponseData;
  try {
    // Exactly a bootstrap request (GET, no query: steve/protocol/routing.ts), as a browser's first load sends it.
    answer = await request(url, { method: 'GET', headers: { accept: '*/*', 'accept-encoding': 'identity' }, signal, dispatcher });
  } catch (cause) {
    return { kind: 'failed', status: null, reason: why(cause) };
  }
  const status = answer.statusCode;
  const failed = (reason: string): Fetched => {
    discard(answer.body);
    return { kind: 'failed', status, reason };
  };
  if (status >= 300 && status < 400) return failed(`HTTP ${status}: redirects are not followed`);
  if (status !== 200) return failed(`HTTP ${status}`);
  const encoding = answer.headers['content-encoding'];
  // The hash is over the bytes of the file; an encoded body is other bytes, and we asked for none.
  if (encoding !== undefined && encoding !== 'identity') return failed(`content-encoding ${typeof encoding === 'string' && /^[A-Za-z0-9._-]{1,32}$/.test(encoding) ? encoding : 'other'} although identity was asked for`);
  const declared = answer.headers['content-length'];
  if (typeof declared === 'string' && Number(declared) > limits.maxBytes) return failed(`larger than ${limits.maxBytes} bytes (declared); not read`);
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of answer.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      // Leaving the loop destroys the stream, and with it the connection.
      if (size > limits.maxBytes) return { kind: 'failed', status, reason: `larger than ${limits.maxBytes} bytes; cut off` };
      hash.update(chunk);
    }
  } catch (cause) {
    return { kind: 'failed', status, reason: why(cause) };
  }
  return { kind: 'body', status: 200, sha256: hash.digest('hex'), bytes: size };
}

export interface BootstrapCheckOptions {
  mode: BootstrapMode;
  /** The origin the files are fetched from (only its origin is used). */
  origin: URL;
  /** Each request's deadline, request to last byte. */
  timeoutMs: number;
  /** Default BOOTSTRAP_FILE_MAX_BYTES. */
  maxBytes?: number;
}

/**
 * Runs the step against the signed manifest (already bound to the document by checkManifestBinding).
 * Returns the report when every path passed; throws `AGENT_VERIFY_BOOTSTRAP` naming each failing path,
 * with the report in `detail.bootstrap`.
 */
export async function verifyBootstrap(manifest: Readonly<Record<string, unknown>>, options: BootstrapCheckOptions): Promise<BootstrapReport> {
  const { mode } = options;
  if (mode === 'skip') return { mode, origin: null, attested: Object.hasOwn(manifest, 'bootstrap'), results: [] };
  const attested = attestedBootstrap(manifest);
  const origin = options.origin.origin;
  const paths = pathsToFetch(mode, attested);
  const dispatcher = new Agent();
  let fetched: Map<string, Fetched>;
  try {
    const limits = { timeoutMs: options.timeoutMs, maxBytes: options.maxBytes ?? BOOTSTRAP_FILE_MAX_BYTES };
    fetched = new Map(await Promise.all(paths.map(async (path) => [path, await fetchAndHash(new URL(path, origin), limits, dispatcher)] as const)));
  } finally {
    await dispatcher.destroy().catch(() => undefined);
  }
  const report: BootstrapReport = { mode, origin, attested: attested !== null, results: judgeBootstrap(mode, attested, fetched) };
  const failures = bootstrapFailures(report);
  if (failures.length > 0) throw new AgentError('AGENT_VERIFY_BOOTSTRAP', failures.join('; '), { problems: failures, detail: { bootstrap: report } });
  return report;
}
