/**
 * The enclave worker's configuration and how it gets from the page to the worker.
 *
 * The handshake (ours): the page validates its config and normalises it to JSON (PCRs as hex, the root as
 * base64 DER). It registers the worker at its plain URL, `/enclave-sw.js` (a bootstrap request must have
 * an empty query, steve/protocol/routing.ts), waits until the worker controls the page, and sends that
 * JSON in a `steve/configure` command (messages.ts) on every page load. The worker validates it again,
 * stores it in IndexedDB (config-store.ts) before using it, and answers with its status. Properties:
 *
 * - It survives restarts: a browser stops an idle worker and starts it again for the next fetch, without
 *   the page. The worker reads the stored config on every start, before it handles a fetch (a fetch that
 *   arrives meanwhile waits); with none stored, or one it cannot use, it fails every request to its origin
 *   with STEVE_BROWSER_CONFIG, never plaintext.
 * - A change is atomic: a different config is stored, then replaces the old one in one step, with a new
 *   STEVE client, so no session of the old config carries a new request. The same config again changes
 *   nothing (the session and status stay).
 * - No mixing across pages: the config's id (SHA-256 of its JSON) rides on each `send` as `x-steve-config`;
 *   when another page has since configured the worker differently, the worker refuses that request with
 *   STEVE_BROWSER_CONFIG instead of carrying it under a config the page did not ask for (or letting it out
 *   unencrypted when the enclave origins differ). The worker drops the header before the app sees anything.
 * - Only same-origin pages can configure (the worker checks the message's origin), and only they can
 *   register a worker for the scope. The config holds nothing secret (expected PCRs, a public root).
 *
 * Not in the script URL: its query is refused by the agent in plaintext (a bootstrap request carries no
 * query), and its fragment is ignored when the browser compares script URLs, so a new config would not
 * install a new worker. Both ends validate: the page to fail early, the worker because a message or a
 * stored record is input like any other. Web-standard only.
 */

import type { Suite } from '../protocol/index.js';
import { base64ToBytes, bytesToBase64, bytesToHex, hexToBytes, pemToCertificates } from './encoding.js';
import { SteveBrowserError } from './errors.js';

/**
 * specs/steve.md §1's suites, spelled out rather than imported: importing steve/protocol's value here
 * would put its crypto into register.js, which needs none (a test keeps the two lists equal).
 */
export const BROWSER_SUITES: readonly Suite[] = ['X25519', 'XWING-DRAFT10'];
const isSuite = (value: unknown): value is Suite => BROWSER_SUITES.includes(value as Suite);
/** Version of the config JSON; a worker refuses any other (a stored config of another version included). */
export const WORKER_CONFIG_VERSION = 1;
/** PCR indexes and sizes an attestation document can hold (specs/nsm.md §3: 32 PCRs of 32, 48 or 64 bytes). */
const MAX_PCR_INDEX = 31;
const PCR_SIZES = new Set([32, 48, 64]);
/** A DER certificate is a SEQUENCE; 16 KiB is far above any root's size and keeps the config bounded. */
const MAX_ROOT_BYTES = 16_384;
/**
 * Longest config text the worker will parse, checked before parsing (a few profiles and a 16 KiB root, as
 * base64, fit in a small fraction).
 */
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

/** The normalised, JSON-safe config the page sends and the worker stores. */
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

/** Validates a page's config and turns it into what the worker receives. Throws STEVE_BROWSER_CONFIG. */
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

/** The config as the page sends it and the worker stores it: JSON, in normaliseConfig's key order. */
export function encodeWorkerConfig(config: WorkerConfig): string {
  return JSON.stringify(config);
}

/**
 * The worker's side: a config text (from the page's message or from storage), validated again and
 * normalised, so `encodeWorkerConfig` of the result is canonical. Throws STEVE_BROWSER_CONFIG.
 */
export function parseWorkerConfig(text: unknown): WorkerConfig {
  if (typeof text !== 'string' || text === '') throw configError('expected the config as JSON text');
  if (text.length > MAX_CONFIG_CHARS) throw configError(`the config is longer than ${MAX_CONFIG_CHARS} characters`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw configError('the config is not JSON', error);
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

/**
 * The config's id: hex SHA-256 of its canonical JSON. The page sends it with each request (CONFIG_HEADER),
 * the worker compares it with its own config's; equal configs have equal ids on both ends.
 */
export async function workerConfigId(config: WorkerConfig): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(encodeWorkerConfig(config)));
  return bytesToHex(new Uint8Array(digest));
}

/** The pinned profiles as the STEVE client takes them (index -> bytes). */
export function profilesForClient(policy: Extract<WorkerConfig['pcrPolicy'], { kind: 'pinned' }>): Array<{ name: string; pcrs: Map<number, Uint8Array> }> {
  return policy.profiles.map((profile) => ({
    name: profile.name,
    pcrs: new Map(Object.entries(profile.pcrs).map(([index, hex]) => [Number(index), hexToBytes(hex)])),
  }));
}
