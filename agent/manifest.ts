/**
 * The build manifest (specs/agent-http.md §3): read once from the image, checked against the existing
 * schema, and then served exactly as the file holds it (unknown keys round-trip, no re-serialisation).
 * Its SHA-256 goes into every document's `user_data`, which turns it into signed evidence.
 */

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { AgentError } from './errors.js';

/** A manifest travels inside every /attestation response; clients cap those at 1 MiB (specs/agent-http.md §2). */
export const MANIFEST_MAX_BYTES = 256 * 1024;

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
  return problems;
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
