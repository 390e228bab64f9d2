/**
 * The build manifest (specs/agent-http.md §3): read once from the image, checked against the existing
 * schema, and then served exactly as the file holds it (unknown keys round-trip, no re-serialisation).
 * Its SHA-256 goes into every document's `user_data`, which turns it into signed evidence.
 *
 * Ours, on top of the existing schema: an optional `bootstrap` object giving the SHA-256 of each bootstrap
 * file the image's app serves (the files a browser fetches in plaintext before it can speak STEVE,
 * specs/steve.md §6), so `enclave-agent verify` can compare what the origin serves with what the enclave
 * signed. `addBootstrapHashes` writes it into a manifest without touching the manifest's other bytes.
 */

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { BOOTSTRAP_PATHS } from '../steve/protocol/routing.js';
import { AgentError } from './errors.js';

/** A manifest travels inside every /attestation response; clients cap those at 1 MiB (specs/agent-http.md §2). */
export const MANIFEST_MAX_BYTES = 256 * 1024;
/** A SHA-256 as the `bootstrap` field spells it: 64 lower-case hex digits, one spelling per hash. */
const SHA256_HEX_RE = /^[0-9a-f]{64}$/;
/**
 * Problems reported for one `bootstrap` value at most. The manifest is at most 256 KiB, so the list is
 * bounded anyway; past a handful, more lines only hide the first.
 */
const BOOTSTRAP_PROBLEMS_MAX = 8;

export interface Manifest {
  /** The file's bytes, served verbatim. */
  bytes: Uint8Array;
  /** Hex SHA-256 of `bytes`. */
  sha256: string;
  value: Record<string, unknown>;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** Every way `value` departs from the manifest schema (an empty list when it conforms). */
export function checkManifest(value: unknown): string[] {
  if (!isObject(value)) return ['the manifest is not a JSON object'];
  const problems: string[] = [];
  const need = (ok: boolean, message: string) => ok || problems.push(message);
  need(value.version === '1.0', '"version" must be "1.0"');
  need(typeof value.powered_by === 'string', '"powered_by" must be a string');
  const source = value.enclave_source;
  if (!isObject(source)) problems.push('"enclave_source" must be an object');
  else if (source.type === 'git_archive') need(isStringArray(source.urls) && (source.commit === null || typeof source.commit === 'string'), '"enclave_source" git_archive needs urls: [string] and commit: string|null');
  else if (source.type === 'git_repository') need(typeof source.url === 'string' && typeof source.branch === 'string' && (source.commit === null || typeof source.commit === 'string'), '"enclave_source" git_repository needs url, branch and commit: string|null');
  else if (source.type === 'local') need(typeof source.path === 'string', '"enclave_source" local needs path');
  else problems.push('"enclave_source.type" must be git_archive, git_repository or local');
  const framework = value.framework_source;
  need(isObject(framework) && framework.type === 'git_archive' && typeof framework.url === 'string' && (framework.commit === undefined || typeof framework.commit === 'string'), '"framework_source" must be {"type":"git_archive","url":string,"commit"?:string}');
  if (value.app_source !== undefined) {
    const app = value.app_source;
    need(isObject(app) && isStringArray(app.urls) && typeof app.commit === 'string' && (app.branch === undefined || typeof app.branch === 'string'), '"app_source" must be {urls: [string], commit: string, branch?: string}');
  }
  for (const key of ['binary', 'run_command', 'metadata', 'enclaveos_commit', 'bootproof_commit', 'steve_commit', 'locksmith_commit', 'steve_key_exchange']) {
    if (value[key] !== undefined) need(typeof value[key] === 'string', `"${key}" must be a string`);
  }
  for (const key of ['steve_allow_plaintext_fallback', 'locksmith']) {
    if (value[key] !== undefined) need(value[key] === true, `"${key}" must be true when present`);
  }
  if (value.bootstrap !== undefined) problems.push(...checkBootstrapField(value.bootstrap));
  return problems;
}

/**
 * Every way a `bootstrap` value departs from its schema: an object, at least one entry, each key one of
 * BOOTSTRAP_PATHS (steve/protocol/routing.ts, the one definition the agent's routing uses) and each value
 * the lower-case hex SHA-256 of the bytes the app serves for a GET of that path. Any subset of the paths
 * may be listed: an app whose page (`/`) is rendered per request cannot attest it, and an app may not
 * serve the X-Wing module. An empty object is refused: it attests nothing, and an image that attests no
 * file says so by leaving the field out (a build that found no files should fail, not ship `{}`).
 */
export function checkBootstrapField(value: unknown): string[] {
  if (!isObject(value)) return ['"bootstrap" must be an object mapping bootstrap paths to hex SHA-256'];
  const keys = Object.keys(value);
  if (keys.length === 0) return ['"bootstrap" must list at least one path (leave it out to attest none)'];
  const problems: string[] = [];
  for (const key of keys) {
    if (!BOOTSTRAP_PATHS.has(key)) problems.push(`"bootstrap" lists ${JSON.stringify(key)}, which is not a bootstrap path (${[...BOOTSTRAP_PATHS].join(', ')})`);
    else if (typeof value[key] !== 'string' || !SHA256_HEX_RE.test(value[key])) problems.push(`"bootstrap" ${JSON.stringify(key)} must be 64 lower-case hex digits (a SHA-256)`);
    if (problems.length === BOOTSTRAP_PROBLEMS_MAX) break;
  }
  return problems;
}

/** The hex SHA-256 of each bootstrap file, keyed by path, in sorted order (the order `bootstrap` lists them in). */
export function hashBootstrapFiles(files: ReadonlyMap<string, Uint8Array>): Map<string, string> {
  return new Map([...files.keys()].sort().map((path) => [path, createHash('sha256').update(files.get(path)!).digest('hex')]));
}

/**
 * `manifest` with a `bootstrap` field added: the input's bytes stay exactly as they are, and
 * `,"bootstrap":{...}` (paths sorted, compact JSON) is inserted before the top-level object's closing
 * brace. Nothing is re-serialised, so formatting, key order, large numbers and unknown keys survive, and
 * the same input and hashes always give the same bytes. The result is checked like any manifest the
 * agent loads. Throws `AGENT_MANIFEST` for an invalid input, one that already has `bootstrap` (start from
 * the manifest without it: replacing one in place would need a re-serialisation), or invalid hashes.
 */
export function addBootstrapHashes(manifest: Uint8Array, hashes: ReadonlyMap<string, string>, source = 'the manifest'): Uint8Array {
  const { value } = parseManifest(manifest, source);
  if (Object.hasOwn(value, 'bootstrap')) throw new AgentError('AGENT_MANIFEST', `${source} already has a "bootstrap" field; give the manifest without it`);
  const entries = Object.fromEntries([...hashes.keys()].sort().map((path) => [path, hashes.get(path)!]));
  const problems = checkBootstrapField(entries);
  if (problems.length > 0) throw new AgentError('AGENT_MANIFEST', problems.join('; '), { problems });
  // parseManifest accepted a JSON object, so the last byte other than JSON whitespace is its closing brace.
  let end = manifest.length;
  while (end > 0 && [0x20, 0x09, 0x0a, 0x0d].includes(manifest[end - 1]!)) end--;
  if (manifest[end - 1] !== 0x7d) throw new AgentError('AGENT_MANIFEST', `${source}: expected a JSON object ending in "}"`);
  const field = new TextEncoder().encode(`${Object.keys(value).length > 0 ? ',' : ''}"bootstrap":${JSON.stringify(entries)}`);
  const out = new Uint8Array(manifest.length + field.length);
  out.set(manifest.subarray(0, end - 1), 0);
  out.set(field, end - 1);
  out.set(manifest.subarray(end - 1), end - 1 + field.length);
  parseManifest(out, `${source} with "bootstrap"`);
  return out;
}

export function parseManifest(bytes: Uint8Array, source: string): Manifest {
  if (bytes.length > MANIFEST_MAX_BYTES) throw new AgentError('AGENT_MANIFEST', `${source}: larger than ${MANIFEST_MAX_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new AgentError('AGENT_MANIFEST', `${source}: not UTF-8 JSON`, { cause });
  }
  const problems = checkManifest(value);
  if (problems.length > 0) throw new AgentError('AGENT_MANIFEST', `${source}: ${problems.join('; ')}`, { problems });
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex'), value: value as Json };
}

export async function loadManifest(path: string): Promise<Manifest> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (cause) {
    throw new AgentError('AGENT_MANIFEST', `cannot read the manifest ${path}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
  }
  return parseManifest(bytes, path);
}
