/**
 * `enclave-agent verify --url`: the user's side of /attestation (specs/agent-http.md §2-§3). Sends a fresh
 * 32-byte nonce, and accepts the answer only if the document verifies (pinned root, chain, signature, our
 * nonce, the PCR policy) and the manifest shown is the one signed: `manifest_base64`'s SHA-256 is
 * `user_data.manifest_sha256`, and the `manifest` object is exactly what those bytes parse to. Then the
 * bootstrap files the origin serves are compared with the hashes that manifest attests
 * (agent/verify-bootstrap.ts). Only then is a trust-on-first-use file recorded. With `--eif FILE`, the
 * document's PCR0-2 (and PCR8 of a signed image) must also equal those computed from that local EIF
 * (eif/, specs/nitro-enclave.md §2), beside whatever `--pcrs` or `--tofu` pins.
 *
 * Pure parts (response parsing, the manifest binding, the report) take bytes and return values; the I/O
 * (one HTTP request, reading flag files, recording TOFU state) sits in the functions at the bottom. It must
 * not follow redirects, read more than 1 MiB or wait more than 60 s, trust the server's `manifest` object
 * without the signed bytes, or print a server-controlled string without escaping control characters.
 */

import { createHash, timingSafeEqual } from 'node:crypto';
import type { ParseArgsConfig } from 'node:util';
import { Agent, request, type Dispatcher } from 'undici';
import {
  AWS_NITRO_ROOT_G1_SHA256,
  NsmError,
  base64ToBytes,
  bytesToBase64,
  bytesToHex,
  nodeP384Verifier,
  verifyAttestationDocument,
  type PcrProfile,
  type VerifiedDocument,
} from '../nsm/index.js';
import { EifError, jsonDepthWithin } from '../eif/index.js';
import { loadEif } from './eif-file.js';
import { AgentError } from './errors.js';
import { loadRootFlag } from './root-flag.js';
import { BOOTSTRAP_MODES, bootstrapReportJson, formatBootstrapReport, verifyBootstrap, type BootstrapMode, type BootstrapReport } from './verify-bootstrap.js';
import { encodeTrustedState, IDENTITY_PCRS, loadPcrPolicyFiles, loadTrustedStateFile, parseTrustedState, writeTrustedStateFile } from './trusted-state.js';

/** specs/agent-http.md §2: clients send 32 random bytes. */
export const NONCE_BYTES = 32;
/** specs/agent-http.md §2: clients cap the response at 1 MiB... */
export const REMOTE_RESPONSE_MAX_BYTES = 1024 * 1024;
/** ...and 60 s, request to last byte. */
export const REMOTE_TIMEOUT_MS = 60_000;
/** An error answer is read only for its `errors`; 64 KiB is far more than any explanation needs. */
const ERROR_BODY_MAX_BYTES = 64 * 1024;
/**
 * Deepest JSON accepted in a response. A manifest is 3 levels deep (specs/agent-http.md §3); 32 leaves
 * room for unknown keys, while 1 MiB of `[` would otherwise overflow the stack of every recursive walk.
 */
const JSON_MAX_DEPTH = 32;
/** The name people know the default root by (specs/nsm.md §3). */
export const AWS_ROOT_NAME = 'AWS Nitro Enclaves Root-G1';

/** What the PCRs must be: nothing (shown, not checked), one of the pinned profiles, or trust on first use. */
export type PcrPolicy = { kind: 'none' } | { kind: 'pinned'; profiles: readonly PcrProfile[] } | { kind: 'tofu'; path: string };

export interface RemoteVerifyOptions {
  /** The /attestation endpoint; http: or https: only. */
  url: URL;
  /** Trust anchor, DER. Default: AWS Nitro Enclaves Root-G1. */
  root?: Uint8Array;
  policy: PcrPolicy;
  allowDebug?: boolean;
  /** Default REMOTE_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Default REMOTE_RESPONSE_MAX_BYTES. */
  maxResponseBytes?: number;
  /** Clock in ms; default Date.now. */
  now?: () => number;
  /** The bootstrap step: mode (default `check`) and the origin to fetch from (default `url`'s). */
  bootstrap?: { mode: BootstrapMode; origin?: URL };
  /** `--eif`: the PCRs computed from a local EIF, which the document's must equal. */
  eif?: { path: string; pcrs: ReadonlyMap<number, Uint8Array> };
}

/** One PCR of the `--eif` check: what the EIF gives, what the document holds. */
export interface EifPcrComparison {
  index: number;
  expected: Uint8Array;
  /** null when the document has no such PCR. */
  actual: Uint8Array | null;
  match: boolean;
}

export interface EifCheck {
  path: string;
  pcrs: EifPcrComparison[];
}

/** The JSON body of a 200 answer, decoded but not yet trusted. */
export interface AttestationResponse {
  document: Uint8Array;
  manifest: Record<string, unknown>;
  manifestBytes: Uint8Array;
}

/** What `user_data` binds, once the binding checked out. */
export interface ManifestBinding {
  manifestSha256: string;
  /** `verifying_key` as bytes, or null when user_data has none. */
  verifyingKey: Uint8Array | null;
  /** user_data keys besides manifest_sha256 and verifying_key (operator metadata), in order. */
  metadataKeys: string[];
}

export type PcrPolicyResult =
  | { kind: 'none' }
  | { kind: 'pinned'; profile: string }
  | { kind: 'tofu'; path: string; result: 'recorded' | 'matched' };

export interface RemoteReport {
  url: string;
  nonce: Uint8Array;
  verifiedAtMs: number;
  document: VerifiedDocument;
  /** AWS_ROOT_NAME when the root is the AWS root, null for any other. */
  rootName: string | null;
  pcrPolicy: PcrPolicyResult;
  manifest: Record<string, unknown>;
  binding: ManifestBinding;
  bootstrap: BootstrapReport;
  /** The `--eif` check (every PCR matched), or null without `--eif`. */
  eif: EifCheck | null;
}

function usage(message: string): AgentError {
  return new AgentError('AGENT_USAGE', message);
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Escapes control and format characters (terminal escapes, bidi overrides) and caps the length. */
export function printable(text: string, maxChars = 200): string {
  const escaped = text.replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
  return escaped.length > maxChars ? `${escaped.slice(0, maxChars)}...` : escaped;
}

/** Structural equality of two JSON values (object key order ignored, as JSON gives it no meaning). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((item, i) => jsonEqual(item, (b as unknown[])[i]));
  const aKeys = Object.keys(a);
  const bRecord = b as Record<string, unknown>;
  if (aKeys.length !== Object.keys(bRecord).length) return false;
  return aKeys.every((key) => Object.hasOwn(bRecord, key) && jsonEqual((a as Record<string, unknown>)[key], bRecord[key]));
}

function decodeJson(bytes: Uint8Array): unknown {
  return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
}

/** `--bootstrap-origin`: an http: or https: origin (scheme, host, optional port), nothing more. */
export function parseOriginUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage(`--bootstrap-origin expected an http: or https: origin, got ${JSON.stringify(printable(text))}`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    throw usage(`--bootstrap-origin expected an http: or https: origin like https://host[:port], got ${JSON.stringify(printable(text))}`);
  }
  return url;
}

/** The endpoint URL: absolute, http: or https:, without credentials (they would be printed in reports). */
export function parseAttestationUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage(`--url expected an absolute http: or https: URL, got ${JSON.stringify(printable(text))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw usage(`--url expected an http: or https: URL, got ${url.protocol}`);
  if (url.username !== '' || url.password !== '') throw usage('--url must not carry credentials');
  url.hash = '';
  return url;
}

/**
 * Parses a 200 answer strictly: a JSON object with `document` (standard base64, non-empty), optionally
 * `attestation_document` equal to it, an object `manifest` and a string `manifest_base64` (specs/agent-http.md §2).
 * Other keys are ignored. Throws `AGENT_VERIFY_RESPONSE`.
 */
export function parseAttestationResponse(bytes: Uint8Array): AttestationResponse {
  const fail = (message: string, cause?: unknown) => new AgentError('AGENT_VERIFY_RESPONSE', message, cause === undefined ? undefined : { cause });
  let value: unknown;
  try {
    value = decodeJson(bytes);
  } catch (cause) {
    throw fail('the answer is not UTF-8 JSON', cause);
  }
  if (!isObject(value)) throw fail('the answer is not a JSON object');
  if (!jsonDepthWithin(value, JSON_MAX_DEPTH)) throw fail(`the answer is nested deeper than ${JSON_MAX_DEPTH} levels`);
  const { document, attestation_document: attestationDocument, manifest, manifest_base64: manifestBase64 } = value;
  if (typeof document !== 'string' || document.length === 0) throw fail('"document" expected a non-empty base64 string');
  if (attestationDocument !== undefined && attestationDocument !== document) throw fail('"attestation_document" differs from "document"');
  if (!isObject(manifest)) throw fail('"manifest" expected a JSON object');
  if (typeof manifestBase64 !== 'string') throw fail('"manifest_base64" expected a base64 string');
  let documentBytes: Uint8Array;
  let manifestBytes: Uint8Array;
  try {
    documentBytes = base64ToBytes(document, 'document');
    manifestBytes = base64ToBytes(manifestBase64, 'manifest_base64');
  } catch (cause) {
    throw fail((cause as Error).message, cause);
  }
  return { document: documentBytes, manifest, manifestBytes };
}

/**
 * Checks that the manifest shown is the one the enclave signed: `user_data` (from a verified document) is a
 * UTF-8 JSON object whose `manifest_sha256` is the SHA-256 of `manifestBytes`, and `manifestBytes` parse to
 * exactly `manifest`. Also decodes `verifying_key` (32 integers 0..255) when present. Throws
 * `AGENT_VERIFY_MANIFEST`.
 */
export function checkManifestBinding(userData: Uint8Array | null, response: Pick<AttestationResponse, 'manifest' | 'manifestBytes'>): ManifestBinding {
  const fail = (message: string, cause?: unknown) => new AgentError('AGENT_VERIFY_MANIFEST', message, cause === undefined ? undefined : { cause });
  if (userData === null) throw fail('the document has no user_data, so nothing binds the manifest');
  let bound: unknown;
  try {
    bound = decodeJson(userData);
  } catch (cause) {
    throw fail('user_data is not UTF-8 JSON', cause);
  }
  if (!isObject(bound)) throw fail('user_data is not a JSON object');
  const claimed = bound.manifest_sha256;
  if (typeof claimed !== 'string' || !/^[0-9a-fA-F]{64}$/.test(claimed)) throw fail('user_data.manifest_sha256 expected 64 hex digits');
  const actual = createHash('sha256').update(response.manifestBytes).digest('hex');
  if (actual !== claimed.toLowerCase()) throw fail(`manifest_base64 has SHA-256 ${actual}, but the document signed ${claimed.toLowerCase()}`);
  let parsed: unknown;
  try {
    parsed = decodeJson(response.manifestBytes);
  } catch (cause) {
    throw fail('manifest_base64 is not UTF-8 JSON', cause);
  }
  if (!jsonDepthWithin(parsed, JSON_MAX_DEPTH) || !jsonEqual(parsed, response.manifest)) {
    throw fail('"manifest" differs from the signed manifest_base64 bytes');
  }
  let verifyingKey: Uint8Array | null = null;
  if (bound.verifying_key !== undefined) {
    const key = bound.verifying_key;
    if (!Array.isArray(key) || key.length !== 32 || !key.every((n) => Number.isInteger(n) && n >= 0 && n <= 255)) {
      throw fail('user_data.verifying_key expected 32 integers 0..255');
    }
    verifyingKey = Uint8Array.from(key as number[]);
  }
  return {
    manifestSha256: actual,
    verifyingKey,
    metadataKeys: Object.keys(bound).filter((key) => key !== 'manifest_sha256' && key !== 'verifying_key'),
  };
}

// ---------------------------------------------------------------------------------------------------
// The --eif check

/**
 * Compares the document's PCRs with those computed from the EIF, every one of them (no early exit; PCRs
 * are public, but the habit costs nothing). PCRs the document lacks compare unequal.
 */
export function compareEifPcrs(expected: ReadonlyMap<number, Uint8Array>, actual: ReadonlyMap<number, Uint8Array>): EifPcrComparison[] {
  return [...expected.keys()]
    .sort((a, b) => a - b)
    .map((index) => {
      const want = expected.get(index)!;
      const got = actual.get(index) ?? null;
      return { index, expected: want, actual: got, match: got !== null && got.length === want.length && timingSafeEqual(got, want) };
    });
}

/**
 * Throws AGENT_VERIFY_EIF naming every differing PCR with both values (the check in `detail.eif`), or
 * returns the check when all match.
 */
export function checkEifPcrs(path: string, expected: ReadonlyMap<number, Uint8Array>, actual: ReadonlyMap<number, Uint8Array>): EifCheck {
  const check: EifCheck = { path, pcrs: compareEifPcrs(expected, actual) };
  const differing = check.pcrs.filter((pcr) => !pcr.match);
  if (differing.length > 0) {
    const what = differing.map((pcr) => `PCR${pcr.index} expected ${bytesToHex(pcr.expected)} (from the EIF), got ${pcr.actual === null ? 'none' : bytesToHex(pcr.actual)}`);
    throw new AgentError('AGENT_VERIFY_EIF', `the document's PCRs differ from the EIF ${path}: ${what.join('; ')}`, { detail: { eif: check } });
  }
  return check;
}

export function eifCheckJson(check: EifCheck): object {
  return {
    file: check.path,
    matched: check.pcrs.every((pcr) => pcr.match),
    pcrs: Object.fromEntries(
      check.pcrs.map((pcr) => [String(pcr.index), { expected: bytesToHex(pcr.expected), actual: pcr.actual === null ? null : bytesToHex(pcr.actual), match: pcr.match }]),
    ),
  };
}

/** The check's report lines: expected and actual for each PCR. */
export function formatEifCheck(check: EifCheck): string[] {
  const all = check.pcrs.every((pcr) => pcr.match);
  return [
    `  EIF             ${all ? 'every PCR matches' : 'PCRs DIFFER from'} ${printable(check.path)} (${check.pcrs.map((pcr) => `PCR${pcr.index}`).join(', ')} computed from the file)`,
    ...check.pcrs.flatMap((pcr) => [
      `    PCR${String(pcr.index).padEnd(2)} expected ${bytesToHex(pcr.expected)}`,
      `          actual   ${pcr.actual === null ? 'absent' : bytesToHex(pcr.actual)}${pcr.match ? '' : '  DIFFERS'}`,
    ]),
  ];
}

// ---------------------------------------------------------------------------------------------------
// Reports

function pcrHex(document: VerifiedDocument): Record<string, string> {
  return Object.fromEntries([...document.pcrs].map(([index, value]) => [String(index), bytesToHex(value)]));
}

export function remoteReportJson(report: RemoteReport): object {
  const { document, binding } = report;
  return {
    valid: true,
    url: report.url,
    verifiedAt: new Date(report.verifiedAtMs).toISOString(),
    moduleId: document.moduleId,
    timestamp: new Date(document.timestamp).toISOString(),
    root: { sha256: document.rootSha256, name: report.rootName },
    chainLength: document.chain.length,
    chain: document.chain,
    debug: document.debug,
    nonce: bytesToBase64(report.nonce),
    nonceMatched: true,
    pcrs: pcrHex(document),
    pcrPolicy: report.pcrPolicy,
    manifestSha256: binding.manifestSha256,
    manifestMatched: true,
    verifyingKey: binding.verifyingKey === null ? null : bytesToHex(binding.verifyingKey),
    metadataKeys: binding.metadataKeys,
    bootstrap: bootstrapReportJson(report.bootstrap),
    eif: report.eif === null ? null : eifCheckJson(report.eif),
    manifest: report.manifest,
  };
}

function describePolicy(policy: PcrPolicyResult, eif: EifCheck | null): string {
  switch (policy.kind) {
    case 'none':
      return eif !== null ? 'no --pcrs or --tofu; the PCRs are checked against the EIF only (below)' : 'NOT CHECKED: no --pcrs or --tofu, so any enclave image would pass';
    case 'pinned':
      return `match the pinned profile ${printable(policy.profile)}`;
    case 'tofu':
      return policy.result === 'recorded'
        ? `TOFU recorded in ${printable(policy.path)} (first use: later runs must match these values)`
        : `TOFU matched ${printable(policy.path)}`;
  }
}

/** The report a person reads: what was checked and what it matched. Server-chosen strings are escaped. */
export function formatRemoteReport(report: RemoteReport): string {
  const { document, binding } = report;
  const others = [...document.pcrs].filter(([index, value]) => index > 2 && value.some((b) => b !== 0));
  const manifestFields = Object.entries(report.manifest).map(([key, value]) => `    ${printable(key, 40).padEnd(24)} ${printable(JSON.stringify(value), 100)}`);
  return [
    `VALID attestation from ${printable(report.url)}`,
    `  module          ${printable(document.moduleId)}`,
    `  timestamp       ${new Date(document.timestamp).toISOString()} (checked at ${new Date(report.verifiedAtMs).toISOString()})`,
    `  root            sha256:${document.rootSha256} (${report.rootName ?? 'not the AWS root: the --root given'})`,
    `  chain           ${document.chain.length} certificates to the root, validity and signatures verified; document signed ES384 by the leaf`,
    `  debug mode      ${document.debug ? 'YES (PCR0-2 are zero: allowed by --allow-debug)' : 'no'}`,
    `  nonce           matches the fresh ${report.nonce.length}-byte nonce sent (${bytesToBase64(report.nonce)})`,
    ...IDENTITY_PCRS.map((index) => `  PCR${index}            ${document.pcrs.has(index) ? bytesToHex(document.pcrs.get(index)!) : 'absent'}`),
    `  PCR policy      ${describePolicy(report.pcrPolicy, report.eif)}`,
    ...(report.eif === null ? [] : formatEifCheck(report.eif)),
    ...(others.length > 0 ? [`  other PCRs      ${others.map(([index]) => `PCR${index}`).join(', ')} non-zero (see --json)`] : []),
    `  manifest        sha256:${binding.manifestSha256} matches user_data.manifest_sha256; the manifest below is the signed one`,
    `  verifying_key   ${binding.verifyingKey === null ? 'absent' : `present (${bytesToHex(binding.verifyingKey)})`}`,
    `  metadata keys   ${binding.metadataKeys.length === 0 ? 'none' : binding.metadataKeys.map((key) => printable(key, 40)).join(', ')}`,
    ...formatBootstrapReport(report.bootstrap),
    '  manifest fields:',
    ...manifestFields,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------
// I/O

/** Drops a body unread. undici reports the destroy as an 'error' event, which is expected here. */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

/**
 * Reads `body` to the end, or returns null (and destroys it) as soon as more than `maxBytes` arrived or
 * were declared. Chunks are counted as they come, so an endless body costs at most `maxBytes` of memory.
 */
async function readCapped(body: Dispatcher.ResponseData['body'], maxBytes: number, declaredLength: string | string[] | undefined): Promise<Uint8Array | null> {
  if (typeof declaredLength === 'string' && Number(declaredLength) > maxBytes) {
    discard(body);
    return null;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Leaving the loop destroys the stream, and with it the connection.
    if (size > maxBytes) return null;
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks, size));
}

/** The server's `{"errors": [...]}` (or `{"error": ...}`), escaped and shortened, for a failure message. */
function serverErrors(bytes: Uint8Array): string {
  let value: unknown;
  try {
    value = decodeJson(bytes);
  } catch {
    return '';
  }
  if (!isObject(value)) return '';
  const list = Array.isArray(value.errors) ? value.errors : value.error !== undefined ? [value.error] : [];
  const texts = list.slice(0, 5).map((item) => printable(typeof item === 'string' ? item : JSON.stringify(item) ?? '', 200));
  return texts.length === 0 ? '' : `; the server says: ${texts.join('; ')}`;
}

/**
 * POSTs `{"nonce": base64}` and returns the 200 body. One connection of its own, closed afterwards;
 * redirects are refused, the body is capped at `maxResponseBytes` and the whole exchange at `timeoutMs`.
 * Throws `AGENT_VERIFY_FETCH`.
 */
export async function fetchAttestation(url: URL, nonce: Uint8Array, limits: { timeoutMs: number; maxResponseBytes: number }): Promise<Uint8Array> {
  const signal = AbortSignal.timeout(limits.timeoutMs);
  const dispatcher = new Agent();
  const fail = (message: string, cause?: unknown) => new AgentError('AGENT_VERIFY_FETCH', message, cause === undefined ? undefined : { cause });
  const why = (cause: unknown) =>
    signal.aborted ? `no complete answer within ${limits.timeoutMs / 1000} s` : `the request failed (${(cause as { code?: string }).code ?? (cause as Error).name ?? 'error'})`;
  try {
    let answer: Dispatcher.ResponseData;
    try {
      answer = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ nonce: bytesToBase64(nonce) }),
        signal,
        dispatcher,
      });
    } catch (cause) {
      throw fail(why(cause), cause);
    }
    const status = answer.statusCode;
    if (status >= 300 && status < 400) {
      discard(answer.body);
      const location = answer.headers.location;
      throw fail(`HTTP ${status}: redirects are not followed${typeof location === 'string' ? ` (to ${printable(location)})` : ''}`);
    }
    let bytes: Uint8Array | null;
    try {
      bytes = await readCapped(answer.body, status === 200 ? limits.maxResponseBytes : ERROR_BODY_MAX_BYTES, answer.headers['content-length']);
    } catch (cause) {
      throw fail(why(cause), cause);
    }
    if (status !== 200) throw fail(`HTTP ${status}${bytes === null ? '' : serverErrors(bytes)}`);
    if (bytes === null) throw fail(`the answer is larger than ${limits.maxResponseBytes} bytes; cut off`);
    return bytes;
  } finally {
    await dispatcher.destroy().catch(() => undefined);
  }
}

/**
 * Asks `options.url` for a document bound to a fresh nonce and verifies everything (see the file comment).
 * Throws a coded error on the first failure: `AGENT_VERIFY_*` or `NsmError` `ATTESTATION_*` (the verdict),
 * `AGENT_USAGE` for an unreadable or malformed `--tofu` file.
 */
export async function verifyRemote(options: RemoteVerifyOptions): Promise<RemoteReport> {
  const { policy } = options;
  const url = parseAttestationUrl(options.url.href);
  const now = options.now ?? Date.now;
  // The TOFU file is read before anything is sent: a bad file stops the run, a missing one means first use.
  let profiles: readonly PcrProfile[] = [];
  let firstUse = false;
  if (policy.kind === 'pinned') {
    if (policy.profiles.length === 0) throw usage('a pinned PCR policy needs at least one profile');
    profiles = policy.profiles;
  } else if (policy.kind === 'tofu') {
    const source = `--tofu ${policy.path}`;
    const bytes = await loadTrustedStateFile(policy.path, source);
    if (bytes === null) firstUse = true;
    else profiles = [{ name: policy.path, pcrs: parseTrustedState(bytes, source) }];
  }

  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const body = await fetchAttestation(url, nonce, {
    timeoutMs: options.timeoutMs ?? REMOTE_TIMEOUT_MS,
    maxResponseBytes: options.maxResponseBytes ?? REMOTE_RESPONSE_MAX_BYTES,
  });
  const response = parseAttestationResponse(body);
  const verifiedAtMs = now();
  let document: VerifiedDocument;
  try {
    document = verifyAttestationDocument(response.document, {
      atMs: verifiedAtMs,
      verifier: nodeP384Verifier,
      expectedNonce: nonce,
      allowDebug: options.allowDebug === true,
      pcrProfiles: profiles,
      ...(options.root !== undefined ? { root: options.root } : {}),
    });
  } catch (err) {
    // Every verdict on the document is ATTESTATION_*; anything else means the answer was unusable.
    if (err instanceof NsmError && !err.code.startsWith('ATTESTATION_')) throw new AgentError('AGENT_VERIFY_RESPONSE', `document: ${err.message}`, { cause: err });
    throw err;
  }
  // Right after the document verified (its PCRs are then the enclave's) and before anything is recorded.
  const eif = options.eif === undefined ? null : checkEifPcrs(options.eif.path, options.eif.pcrs, document.pcrs);
  const binding = checkManifestBinding(document.userData, response);
  // After the binding: only a manifest the enclave signed says which bytes to expect. Before TOFU: a
  // rewritten bootstrap fails the run, and a failed run records nothing.
  const bootstrap = await verifyBootstrap(response.manifest, {
    mode: options.bootstrap?.mode ?? 'check',
    origin: options.bootstrap?.origin ?? url,
    timeoutMs: options.timeoutMs ?? REMOTE_TIMEOUT_MS,
  });

  let pcrPolicy: PcrPolicyResult;
  if (policy.kind === 'tofu' && firstUse) {
    // Everything else has verified by now; only then does this document become the pin.
    if (document.debug) throw new AgentError('AGENT_VERIFY_TOFU', 'refusing to record the all-zero PCRs of a debug-mode document: every debug enclave would match them');
    await writeTrustedStateFile(policy.path, encodeTrustedState(document.pcrs, verifiedAtMs));
    pcrPolicy = { kind: 'tofu', path: policy.path, result: 'recorded' };
  } else if (policy.kind === 'tofu') {
    pcrPolicy = { kind: 'tofu', path: policy.path, result: 'matched' };
  } else if (policy.kind === 'pinned') {
    pcrPolicy = { kind: 'pinned', profile: document.pcrProfile! };
  } else {
    pcrPolicy = { kind: 'none' };
  }
  return {
    url: url.href,
    nonce,
    verifiedAtMs,
    document,
    rootName: document.rootSha256 === AWS_NITRO_ROOT_G1_SHA256 ? AWS_ROOT_NAME : null,
    pcrPolicy,
    manifest: response.manifest,
    binding,
    bootstrap,
    eif,
  };
}

// ---------------------------------------------------------------------------------------------------
// The `verify` command

export const VERIFY_USAGE =
  'Usage: enclave-agent verify --url URL [--pcrs FILE]... [--tofu FILE] [--eif FILE] [--root PEM]\n' +
  '                             [--allow-debug] [--bootstrap require|check|skip] [--bootstrap-origin URL] [--json]\n\n' +
  'Asks a running agent for an attestation document bound to a fresh 32-byte nonce (POST {"nonce"} to\n' +
  'URL) and checks it: the certificate chain up to the pinned root, the signature, the nonce, the PCRs\n' +
  'against your policy, and that the manifest shown is the one whose SHA-256 the enclave signed. Then it\n' +
  'fetches the bootstrap files a browser loads in plaintext (/, /enclave-sw.js, ...) and compares their\n' +
  'SHA-256 with the manifest\'s "bootstrap" hashes. This shows what this run was served, not what\n' +
  'another client is served.\n\n' +
  '--url URL      the /attestation endpoint, http: or https: (https://host/attestation); redirects are\n' +
  '               not followed; the answer must come within 60 s and be at most 1 MiB\n' +
  '--pcrs FILE    pinned PCRs, a trusted-state file {"pcr0":hex,"pcr1":hex,"pcr2":hex[,"pcrN":hex...]}\n' +
  '               (a "tls" pin in it is accepted and not checked) or PCR sets with cutoffs\n' +
  '               {"sets":[{"pcrs":{"0":hex,"1":hex,"2":hex},"expires_at_unix_seconds":N}]} (expired sets\n' +
  '               are ignored); repeat to accept any one of several images\n' +
  '--tofu FILE    trust on first use: if FILE exists its PCRs are pinned; if not, PCR0-2 are recorded\n' +
  '               there (mode 0600) once everything else verified. Not with --pcrs\n' +
  '--eif FILE     the enclave image file you built or were given: its PCR0-2 (and PCR8 if signed) are\n' +
  '               computed locally and the document\'s must equal them (beside --pcrs or --tofu); the\n' +
  '               report shows expected and actual for each\n' +
  '--root PEM     trust anchor (default: the pinned AWS Nitro Enclaves Root-G1)\n' +
  '--allow-debug  accept debug-mode documents (PCR0-2 all zero)\n' +
  '--bootstrap M  check (default): every file the manifest attests must be served (200) with its hash;\n' +
  '               other paths are reported "not attested" and not fetched. require: also every other\n' +
  '               bootstrap path must be answered 404. skip: fetch nothing\n' +
  '--bootstrap-origin URL  where to fetch them (default: the origin of --url)\n' +
  '--json         print the result as JSON\n\n' +
  'Without --pcrs, --tofu or --eif the PCRs are shown but not checked: any enclave image would pass.\n\n' +
  'Exit status: 0 valid, 1 invalid (its code is printed), 2 usage error.';

export const VERIFY_OPTIONS = {
  url: { type: 'string' },
  pcrs: { type: 'string', multiple: true },
  tofu: { type: 'string' },
  eif: { type: 'string' },
  root: { type: 'string' },
  'allow-debug': { type: 'boolean' },
  bootstrap: { type: 'string' },
  'bootstrap-origin': { type: 'string' },
  json: { type: 'boolean' },
} satisfies NonNullable<ParseArgsConfig['options']>;

type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/**
 * `--eif FILE`: the PCRs of a local EIF, read before anything is sent. An invalid image is the user's input
 * to fix (AGENT_USAGE naming its EIF_* code), not a verdict on the enclave.
 */
async function loadEifFlag(path: string): Promise<{ path: string; pcrs: ReadonlyMap<number, Uint8Array> }> {
  if (path === '') throw usage('--eif expected a file path');
  try {
    return { path, pcrs: (await loadEif(path, { what: '--eif' })).pcrs };
  } catch (err) {
    if (err instanceof EifError) throw usage(`--eif ${path}: ${err.code}: ${err.message}`);
    throw err;
  }
}

/** Turns `verify`'s flags into options, reading the --pcrs and --root files. Bad input is `AGENT_USAGE`. */
export async function parseVerifyFlags(values: FlagValues): Promise<{ options: RemoteVerifyOptions; json: boolean }> {
  if (typeof values.url !== 'string') throw usage('--url URL is required (the agent\'s /attestation endpoint)');
  const url = parseAttestationUrl(values.url);
  const pcrFiles = Array.isArray(values.pcrs) ? values.pcrs.filter((v): v is string => typeof v === 'string') : [];
  const tofu = typeof values.tofu === 'string' ? values.tofu : undefined;
  if (pcrFiles.length > 0 && tofu !== undefined) throw usage('--pcrs and --tofu exclude each other: pin PCRs or trust on first use, not both');
  let policy: PcrPolicy = { kind: 'none' };
  if (pcrFiles.length > 0) {
    policy = { kind: 'pinned', profiles: await loadPcrPolicyFiles(pcrFiles, Date.now()) };
  } else if (tofu !== undefined) {
    if (tofu.length === 0) throw usage('--tofu expected a file path');
    policy = { kind: 'tofu', path: tofu };
  }
  const mode = values.bootstrap ?? 'check';
  if (typeof mode !== 'string' || !(BOOTSTRAP_MODES as readonly string[]).includes(mode)) throw usage(`--bootstrap expected require, check or skip, got ${JSON.stringify(printable(String(mode)))}`);
  const origin = typeof values['bootstrap-origin'] === 'string' ? parseOriginUrl(values['bootstrap-origin']) : undefined;
  if (origin !== undefined && mode === 'skip') throw usage('--bootstrap-origin goes with --bootstrap check or require, not skip');
  const root = typeof values.root === 'string' ? await loadRootFlag(values.root) : undefined;
  const eif = typeof values.eif === 'string' ? await loadEifFlag(values.eif) : undefined;
  return {
    options: {
      url,
      policy,
      ...(eif !== undefined ? { eif } : {}),
      allowDebug: values['allow-debug'] === true,
      bootstrap: { mode: mode as BootstrapMode, ...(origin !== undefined ? { origin } : {}) },
      ...(root !== undefined ? { root } : {}),
    },
    json: values.json === true,
  };
}

/** Whether `err` is a verdict on the remote enclave (exit 1 with its code), not a usage or local error. */
function isVerdict(err: unknown): err is AgentError | NsmError {
  return (err instanceof AgentError && err.code.startsWith('AGENT_VERIFY_')) || (err instanceof NsmError && err.code.startsWith('ATTESTATION_'));
}

/** Runs `verify`: prints the report (0) or `INVALID <CODE>: message` (1); usage and local errors are thrown. */
export async function runVerifyCommand(values: FlagValues, out: { write(text: string): unknown } = process.stdout): Promise<number> {
  const { options, json } = await parseVerifyFlags(values);
  try {
    const report = await verifyRemote(options);
    out.write(json ? `${JSON.stringify(remoteReportJson(report), null, 2)}\n` : formatRemoteReport(report));
    return 0;
  } catch (err) {
    if (!isVerdict(err)) throw err;
    const message = printable(err.message, 2000);
    // A bootstrap or EIF failure carries every result, so the report shows what did match as well.
    const bootstrap = err instanceof AgentError && err.code === 'AGENT_VERIFY_BOOTSTRAP' ? (err.detail?.bootstrap as BootstrapReport | undefined) : undefined;
    const eif = err instanceof AgentError && err.code === 'AGENT_VERIFY_EIF' ? (err.detail?.eif as EifCheck | undefined) : undefined;
    if (json) {
      out.write(
        `${JSON.stringify(
          {
            valid: false,
            code: err.code,
            message,
            url: options.url.href,
            ...(bootstrap !== undefined ? { bootstrap: bootstrapReportJson(bootstrap) } : {}),
            ...(eif !== undefined ? { eif: eifCheckJson(eif) } : {}),
          },
          null,
          2,
        )}\n`,
      );
    } else {
      const details = [...(bootstrap !== undefined ? formatBootstrapReport(bootstrap) : []), ...(eif !== undefined ? formatEifCheck(eif) : [])];
      out.write(`INVALID ${err.code}: ${message}\n${details.map((line) => `${line}\n`).join('')}`);
    }
    return 1;
  }
}
