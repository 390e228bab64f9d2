/**
 * The enclave worker's configuration and how it gets from the page to the worker.
 *
 * The handshake (ours): the page validates its config, normalises it to JSON (PCRs as hex, the root as
 * base64 DER), encodes that as base64url and registers the worker at `/enclave-sw.js?config=<that>`. The
 * worker reads it from its own script URL (`self.location`) each time it starts. Why the URL and not a
 * postMessage: a browser stops an idle worker and starts it again for the next fetch, without the page;
 * a config that came by message would be gone then, and that fetch could only fail. The script URL
 * survives every restart, only a same-origin page can register it, and a different config is a different
 * script URL, so the browser installs it as a new worker version instead of mixing two configs. The
 * config holds nothing secret (expected PCRs, a public root). Messages carry commands only (messages.ts).
 *
 * Both ends validate: the page to fail early with STEVE_BROWSER_CONFIG, the worker because its URL is
 * input like any other. Web-standard only.
 */

import type { Suite } from '../protocol/index.js';
import { base64ToBytes, bytesToBase64, bytesToBase64Url, bytesToHex, hexToBytes, pemToCertificates } from './encoding.js';
import { SteveBrowserError } from './errors.js';

/**
 * specs/steve.md §1's suites, spelled out rather than imported: importing steve/protocol's value here
 * would put its crypto into register.js, which needs none (a test keeps the two lists equal).
 */
export const BROWSER_SUITES: readonly Suite[] = ['X25519', 'XWING-DRAFT10'];
const isSuite = (value: unknown): value is Suite => BROWSER_SUITES.includes(value as Suite);
/** The query parameter of the worker's script URL that carries the config. */
export const CONFIG_PARAMETER = 'config';
/** Version of the JSON in the worker URL; a worker refuses any other. */
export const WORKER_CONFIG_VERSION = 1;
/** PCR indexes and sizes an attestation document can hold (specs/nsm.md §3: 32 PCRs of 32, 48 or 64 bytes). */
const MAX_PCR_INDEX = 31;
const PCR_SIZES = new Set([32, 48, 64]);
/** A DER certificate is a SEQUENCE; 16 KiB is far above any root's size and keeps the URL bounded. */
const MAX_ROOT_BYTES = 16_384;
/** Longest config text the worker will parse (a few profiles and a root fit in a small fraction). */
const MAX_CONFIG_CHARS = 65_536;

/** PCR values as hex strings or bytes, by index (an object `{ 0: '..', 1: '..' }` or a Map). */
export type PcrValues = Readonly<Record<number | string, string | Uint8Array>> | ReadonlyMap<number, string | Uint8Array>;

export interface PinnedProfile {
  /** Shown in the widget ("pinned profile prod-2026-05"). */
  name: string;
  pcrs: PcrValues;
}

export type EnclavePcrPolicy =
  /** Pinned images: one profile per image the page accepts (several during a rotation). */
  | { kind: 'pinned'; profiles: readonly PinnedProfile[] }
  /** Trust on first use, recorded in IndexedDB per worker scope, enclave origin and suite. */
  | { kind: 'tofu' };

/** What a page passes to registerEnclaveServiceWorker. */
export interface EnclaveConfig {
  /** The enclave's origin, `https://host[:port]`; requests to it are sent through STEVE. */
  origin: string;
  /** The deployment's suite (specs/steve.md §1: pinned, never negotiated). */
  keyExchange: Suite;
  pcrPolicy: EnclavePcrPolicy;
  /** Trust anchor: PEM text or DER bytes. Default: the AWS Nitro Enclaves root (only tests pass another). */
  root?: string | Uint8Array;
  /** Accept debug-mode documents (all-zero PCR0-2). Default false. */
  allowDebug?: boolean;
  /** Per-request timeout inside the worker; default the STEVE client's 30 s. */
  requestTimeoutMs?: number;
}

/** The normalised, JSON-safe config the worker URL carries. */
export interface WorkerConfig {
  version: typeof WORKER_CONFIG_VERSION;
  origin: string;
  keyExchange: Suite;
  pcrPolicy: { kind: 'pinned'; profiles: Array<{ name: string; pcrs: Record<string, string> }> } | { kind: 'tofu' };
  /** Base64 DER, or null for the AWS root. */
  root: string | null;
  allowDebug: boolean;
  requestTimeoutMs: number | null;
}

function configError(message: string, cause?: unknown): SteveBrowserError {
  return new SteveBrowserError('STEVE_BROWSER_CONFIG', 'config', `enclave config: ${message}`, cause === undefined ? {} : { cause });
}

function normaliseOrigin(origin: unknown): string {
  let url: URL;
  try {
    url = new URL(String(origin));
  } catch (error) {
    throw configError('"origin" expected an absolute http: or https: URL', error);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw configError('"origin" expected http: or https:');
  if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    throw configError('"origin" expected scheme://host[:port] only');
  }
  return url.origin;
}

function normalisePcr(profile: string, index: unknown, value: unknown): [string, string] {
  const number = typeof index === 'string' && /^\d{1,2}$/.test(index) ? Number(index) : index;
  if (typeof number !== 'number' || !Number.isInteger(number) || number < 0 || number > MAX_PCR_INDEX) {
    throw configError(`profile ${JSON.stringify(profile)}: PCR index ${String(index)} is not 0..${MAX_PCR_INDEX}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = value instanceof Uint8Array ? value : hexToBytes(String(value));
  } catch (error) {
    throw configError(`profile ${JSON.stringify(profile)}: PCR${number} expected hex`, error);
  }
  if (!PCR_SIZES.has(bytes.length)) throw configError(`profile ${JSON.stringify(profile)}: PCR${number} expected 32, 48 or 64 bytes, got ${bytes.length}`);
  return [String(number), bytesToHex(bytes)];
}

function normalisePolicy(policy: unknown): WorkerConfig['pcrPolicy'] {
  const p = policy as { kind?: unknown; profiles?: unknown } | null;
  if (typeof p !== 'object' || p === null) throw configError('"pcrPolicy" expected { kind: "pinned", profiles } or { kind: "tofu" }');
  if (p.kind === 'tofu') return { kind: 'tofu' };
  if (p.kind !== 'pinned') throw configError('"pcrPolicy.kind" expected "pinned" or "tofu"');
  if (!Array.isArray(p.profiles) || p.profiles.length === 0) throw configError('"pcrPolicy.profiles" expected a non-empty array');
  return {
    kind: 'pinned',
    profiles: (p.profiles as unknown[]).map((entry) => {
      const profile = entry as { name?: unknown; pcrs?: unknown } | null;
      if (typeof profile !== 'object' || profile === null || typeof profile.name !== 'string' || profile.name === '') {
        throw configError('each pinned profile needs a non-empty "name"');
      }
      const name = profile.name;
      const entries = profile.pcrs instanceof Map ? [...profile.pcrs] : typeof profile.pcrs === 'object' && profile.pcrs !== null ? Object.entries(profile.pcrs) : [];
      if (entries.length === 0) throw configError(`profile ${JSON.stringify(name)} has no PCRs`);
      const pcrs: Record<string, string> = {};
      for (const [index, value] of entries) {
        const [key, hex] = normalisePcr(name, index, value);
        pcrs[key] = hex;
      }
      return { name, pcrs };
    }),
  };
}

function normaliseRoot(root: unknown): string | null {
  if (root === undefined || root === null) return null;
  let der: Uint8Array;
  if (root instanceof Uint8Array) der = root;
  else if (typeof root === 'string') {
    let certificates: Uint8Array[];
    try {
      certificates = pemToCertificates(root);
    } catch (error) {
      throw configError('"root" PEM does not decode', error);
    }
    if (certificates.length !== 1) throw configError(`"root" expected exactly one PEM certificate, found ${certificates.length}`);
    der = certificates[0]!;
  } else throw configError('"root" expected PEM text or DER bytes');
  if (der.length === 0 || der.length > MAX_ROOT_BYTES || der[0] !== 0x30) throw configError('"root" is not a DER certificate');
  return bytesToBase64(der);
}

/** Validates a page's config and turns it into what the worker URL carries. Throws STEVE_BROWSER_CONFIG. */
export function normaliseConfig(config: EnclaveConfig): WorkerConfig {
  if (typeof config !== 'object' || config === null) throw configError('expected an object');
  if (!isSuite(config.keyExchange)) throw configError('"keyExchange" expected X25519 or XWING-DRAFT10');
  const timeout = config.requestTimeoutMs;
  if (timeout !== undefined && (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0)) {
    throw configError('"requestTimeoutMs" expected a positive number of milliseconds');
  }
  if (config.allowDebug !== undefined && typeof config.allowDebug !== 'boolean') throw configError('"allowDebug" expected a boolean');
  return {
    version: WORKER_CONFIG_VERSION,
    origin: normaliseOrigin(config.origin),
    keyExchange: config.keyExchange,
    pcrPolicy: normalisePolicy(config.pcrPolicy),
    root: normaliseRoot(config.root),
    allowDebug: config.allowDebug ?? false,
    requestTimeoutMs: timeout ?? null,
  };
}

/** The worker's script URL for `config`: `scriptUrl?config=<base64url JSON>`, resolved against `base`. */
export function workerScriptUrl(scriptUrl: string, config: WorkerConfig, base: string): string {
  const url = new URL(scriptUrl, base);
  url.searchParams.set(CONFIG_PARAMETER, bytesToBase64Url(new TextEncoder().encode(JSON.stringify(config))));
  return url.href;
}

/** The worker's side: the config from its own script URL, validated again. Throws STEVE_BROWSER_CONFIG. */
export function parseWorkerConfig(scriptUrl: string): WorkerConfig {
  const encoded = new URL(scriptUrl).searchParams.get(CONFIG_PARAMETER);
  if (encoded === null || encoded === '') throw configError(`the worker URL has no "${CONFIG_PARAMETER}" parameter`);
  if (encoded.length > MAX_CONFIG_CHARS) throw configError('the worker URL config is too long');
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(base64ToBytes(encoded)));
  } catch (error) {
    throw configError('the worker URL config is not base64url JSON', error);
  }
  const c = value as Partial<WorkerConfig> | null;
  if (typeof c !== 'object' || c === null || c.version !== WORKER_CONFIG_VERSION) throw configError(`expected config version ${WORKER_CONFIG_VERSION}`);
  let root: Uint8Array | undefined;
  if (c.root !== null && c.root !== undefined) {
    try {
      root = base64ToBytes(String(c.root));
    } catch (error) {
      throw configError('"root" is not base64', error);
    }
  }
  return normaliseConfig({
    origin: String(c.origin),
    keyExchange: c.keyExchange as Suite,
    pcrPolicy: c.pcrPolicy as EnclavePcrPolicy,
    ...(root !== undefined ? { root } : {}),
    ...(c.allowDebug !== undefined ? { allowDebug: c.allowDebug } : {}),
    ...(c.requestTimeoutMs !== null && c.requestTimeoutMs !== undefined ? { requestTimeoutMs: c.requestTimeoutMs } : {}),
  });
}

/** The pinned profiles as the STEVE client takes them (index -> bytes). */
export function profilesForClient(policy: Extract<WorkerConfig['pcrPolicy'], { kind: 'pinned' }>): Array<{ name: string; pcrs: Map<number, Uint8Array> }> {
  return policy.profiles.map((profile) => ({
    name: profile.name,
    pcrs: new Map(Object.entries(profile.pcrs).map(([index, hex]) => [Number(index), hexToBytes(hex)])),
  }));
}
