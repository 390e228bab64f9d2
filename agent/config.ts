/**
 * The agent's configuration: every setting as one row of data (flag, environment names, default,
 * description), loaded once from flags and the environment, validated as a whole so that every problem
 * is reported at once, then frozen. Security switches are explicit values: the NSM mode has no default
 * and the mock is chosen by name. The README's configuration table is checked against `SETTINGS`.
 *
 * Precedence: a flag, then the first environment name that is set (ours, then the names existing
 * STEVE deployments use, specs/agent-http.md §1 and specs/steve.md §6).
 */

import { AgentError } from './errors.js';

export interface HostPort {
  host: string;
  port: number;
}

export interface AgentConfig {
  listen: HostPort;
  /** A second public listener serving only /attestation and health (existing images' BOOTPROOFD_LISTEN_ADDR). */
  attestationListen: HostPort | null;
  internalListen: HostPort;
  /** The app's base URL (http://host:port), validated; a string so the frozen config cannot be edited through URL setters. */
  upstream: string;
  manifestPath: string;
  metadataPath: string | null;
  /** `production` accepts only the real device; `test` also the mock NSMs (tests, demos, the QEMU rig). */
  deployment: 'production' | 'test';
  nsm: 'device' | 'mock' | 'mock-signed-device';
  nsmDevicePath: string;
  mockPkiDir: string | null;
  corsOrigins: readonly string[];
  allowPlaintextFallback: boolean;
  /** The STEVE suite this deployment pins (specs/steve.md §1: no negotiation). */
  keyExchange: 'X25519' | 'XWING-DRAFT10';
  /** Capacity of the STEVE session table (specs/steve.md §7). */
  maxSessions: number;
  /** Pending (unconfirmed) STEVE sessions held at once; the oldest is evicted for a new one. */
  maxPendingSessions: number;
  /** Bytes of STEVE request bodies and answers held in memory at once, server-wide. */
  maxBufferedBytes: number;
  /** A client socket that takes no answer bytes for this long is closed. */
  sendTimeoutMs: number;
  /** Our STEVE stream extension `stream-1` (/e2p/v2/stream, steve/protocol/stream.md); on by default. */
  streaming: boolean;
  /** A STEVE stream on which no record moved either way for this long is ended (stream.md §5). */
  streamIdleTimeoutMs: number;
  /** Legacy STEVE v1 (specs/steve.md §8): off unless explicitly on. */
  legacyV1: boolean;
  nsmConcurrency: number;
  nsmQueueMax: number;
  nsmTimeoutMs: number;
  shutdownTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
}

type Parser = (value: string) => unknown;

interface Setting {
  key: keyof AgentConfig;
  flag: string;
  env: readonly string[];
  /** Text default, parsed like any other value; `undefined` means required, `null` means unset. */
  default: string | null | undefined;
  doc: string;
  parse: Parser;
  boolean?: boolean;
}

class Invalid extends Error {}

function hostPort(value: string): HostPort {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  const port = Number(match?.[2]);
  if (match === null || port > 65535) throw new Invalid('expected HOST:PORT');
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}

function integer(min: number, max: number): Parser {
  return (value) => {
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) throw new Invalid(`expected an integer ${min}..${max}`);
    return Number(value);
  };
}

function oneOf<T extends string>(...values: T[]): Parser {
  return (value) => {
    if (!(values as string[]).includes(value)) throw new Invalid(`expected one of ${values.join(', ')}`);
    return value;
  };
}

const path: Parser = (value) => {
  if (value.length === 0 || value.includes('\0')) throw new Invalid('expected a file path');
  return value;
};

const bool: Parser = (value) => {
  if (value !== 'true' && value !== 'false') throw new Invalid('expected true or false');
  return value === 'true';
};

function httpUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Invalid('expected an http:// URL');
  }
  if (url.protocol !== 'http:' || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new Invalid('expected an http:// URL without credentials, query or fragment');
  }
  return url.href;
}

/** Exact origins only (scheme, host, optional port); a wildcard is refused (specs/steve.md §6). */
function origins(value: string): string[] {
  if (value.trim() === '') return [];
  return value.split(',').map((item) => {
    const origin = item.trim();
    if (origin.includes('*')) throw new Invalid('wildcards are not allowed');
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      throw new Invalid(`not an origin: ${JSON.stringify(origin)}`);
    }
    if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.origin !== origin) {
      throw new Invalid(`expected scheme://host[:port] exactly, got ${JSON.stringify(origin)}`);
    }
    return origin;
  });
}

export const SETTINGS: readonly Setting[] = [
  { key: 'nsm', flag: '--nsm', env: ['ENCLAVE_AGENT_NSM'], default: undefined, parse: oneOf('device', 'mock', 'mock-signed-device'), doc: 'NSM implementation: `device` (/dev/nsm), `mock` (no device; documents signed by a mock PKI) or `mock-signed-device` (the device answers, a mock PKI re-signs its documents: rigs whose device cannot sign, such as QEMU). The mocks log a warning and need `--deployment test`. No default.' },
  { key: 'deployment', flag: '--deployment', env: ['ENCLAVE_AGENT_DEPLOYMENT'], default: 'production', parse: oneOf('production', 'test'), doc: '`production` refuses every mock NSM; `test` allows them (tests, demos, the QEMU rig)' },
  { key: 'manifestPath', flag: '--manifest', env: ['ENCLAVE_AGENT_MANIFEST'], default: undefined, parse: path, doc: 'the build manifest (JSON) served with every document; its SHA-256 is signed into `user_data`' },
  { key: 'listen', flag: '--listen', env: ['ENCLAVE_AGENT_LISTEN', 'STEVE_LISTEN_ADDR'], default: '0.0.0.0:8080', parse: hostPort, doc: 'public listener: `/attestation`, health, and the STEVE proxy' },
  { key: 'attestationListen', flag: '--attestation-listen', env: ['ENCLAVE_AGENT_ATTESTATION_LISTEN', 'BOOTPROOFD_LISTEN_ADDR'], default: null, parse: hostPort, doc: 'optional second listener with only `/attestation` and health' },
  { key: 'internalListen', flag: '--internal-listen', env: ['ENCLAVE_AGENT_INTERNAL_LISTEN'], default: '127.0.0.1:9090', parse: hostPort, doc: 'internal listener: `/metrics` (never bridged)' },
  { key: 'upstream', flag: '--upstream', env: ['ENCLAVE_AGENT_UPSTREAM', 'STEVE_APP_UPSTREAM'], default: 'http://127.0.0.1:8083', parse: httpUrl, doc: 'the app, on enclave loopback' },
  { key: 'metadataPath', flag: '--metadata', env: ['ENCLAVE_AGENT_METADATA'], default: null, parse: path, doc: 'operator metadata (JSON object) merged into `user_data`; re-read when it changes' },
  { key: 'mockPkiDir', flag: '--mock-pki', env: ['ENCLAVE_AGENT_MOCK_PKI'], default: null, parse: path, doc: 'mock PKI directory (from `enclave-agent mock-pki`); required with `--nsm mock` and `--nsm mock-signed-device`' },
  { key: 'nsmDevicePath', flag: '--nsm-device', env: ['ENCLAVE_AGENT_NSM_DEVICE'], default: '/dev/nsm', parse: path, doc: 'NSM device node' },
  { key: 'corsOrigins', flag: '--cors-origins', env: ['ENCLAVE_AGENT_CORS_ORIGINS', 'STEVE_CORS_ORIGINS'], default: '', parse: origins, doc: 'comma-separated exact origins allowed to call `/attestation` and `/e2p/v2/*` from a browser; no wildcards' },
  { key: 'allowPlaintextFallback', flag: '--allow-plaintext-fallback', env: ['ENCLAVE_AGENT_ALLOW_PLAINTEXT_FALLBACK', 'STEVE_ALLOW_PLAINTEXT_FALLBACK'], default: 'false', parse: bool, boolean: true, doc: 'forward ordinary requests to the app in plaintext instead of refusing them with 403 `e2e_required`' },
  { key: 'keyExchange', flag: '--key-exchange', env: ['ENCLAVE_AGENT_KEY_EXCHANGE', 'STEVE_KEY_EXCHANGE'], default: 'X25519', parse: oneOf('X25519', 'XWING-DRAFT10'), doc: 'the one STEVE suite this deployment pins: `X25519` or `XWING-DRAFT10` (no negotiation)' },
  { key: 'maxSessions', flag: '--max-sessions', env: ['ENCLAVE_AGENT_MAX_SESSIONS'], default: '10000', parse: integer(1, 1_000_000), doc: 'STEVE sessions held at once, pending and confirmed; when full, a new session evicts the least recently used confirmed session with no request in flight (its client re-establishes), else the oldest pending one' },
  { key: 'maxPendingSessions', flag: '--max-pending-sessions', env: ['ENCLAVE_AGENT_MAX_PENDING_SESSIONS'], default: '1000', parse: integer(1, 1_000_000), doc: 'STEVE sessions awaiting their confirmation held at once (at most `--max-sessions`); a new one evicts the oldest' },
  { key: 'maxBufferedBytes', flag: '--max-buffered-bytes', env: ['ENCLAVE_AGENT_MAX_BUFFERED_BYTES'], default: '268435456', parse: integer(1_048_576, 2 ** 40), doc: 'bytes of STEVE request bodies and answers in memory at once, server-wide (256 MiB: eight 32 MiB envelopes); an answer counts until it is written or its connection closed; over it, 429 busy' },
  { key: 'sendTimeoutMs', flag: '--send-timeout-ms', env: ['ENCLAVE_AGENT_SEND_TIMEOUT_MS'], default: '30000', parse: integer(100, 600_000), doc: 'a client connection that takes no bytes of its answer for this long is closed and its memory released' },
  { key: 'streaming', flag: '--streaming', env: ['ENCLAVE_AGENT_STREAMING'], default: 'true', parse: bool, boolean: true, doc: 'serve STEVE streams (`/e2p/v2/stream`, our extension `stream-1`: bodies passed on record by record, both ways); the binding of every session then lists `stream-1`; off, that path is 404 and the binding has the five fields of v2' },
  { key: 'streamIdleTimeoutMs', flag: '--stream-idle-timeout-ms', env: ['ENCLAVE_AGENT_STREAM_IDLE_TIMEOUT_MS'], default: '60000', parse: integer(100, 3_600_000), doc: 'a STEVE stream on which no record moved either way for this long is ended (ABORT `stream_idle`)' },
  { key: 'legacyV1', flag: '--legacy-v1', env: ['ENCLAVE_AGENT_LEGACY_V1'], default: 'false', parse: bool, boolean: true, doc: 'serve legacy STEVE v1 (`/e2p/v1/create_shared_key` and requests carrying `X-E2P-Key`); off, those are 404 and plaintext requests; v1 answers are not bound to their requests: use v2' },
  { key: 'nsmConcurrency', flag: '--nsm-concurrency', env: ['ENCLAVE_AGENT_NSM_CONCURRENCY'], default: '4', parse: integer(1, 64), doc: 'NSM requests in flight at once (the driver serialises them anyway)' },
  { key: 'nsmQueueMax', flag: '--nsm-queue', env: ['ENCLAVE_AGENT_NSM_QUEUE'], default: '256', parse: integer(0, 100_000), doc: 'NSM requests waiting beyond those in flight; more get 429' },
  { key: 'nsmTimeoutMs', flag: '--nsm-timeout-ms', env: ['ENCLAVE_AGENT_NSM_TIMEOUT_MS'], default: '10000', parse: integer(1, 120_000), doc: 'an NSM call taking longer is answered 503 (the driver gives up after 120 s)' },
  { key: 'shutdownTimeoutMs', flag: '--shutdown-timeout-ms', env: ['ENCLAVE_AGENT_SHUTDOWN_TIMEOUT_MS'], default: '10000', parse: integer(0, 600_000), doc: 'on SIGTERM, how long in-flight requests may finish' },
  { key: 'logLevel', flag: '--log-level', env: ['ENCLAVE_AGENT_LOG_LEVEL'], default: 'info', parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace'), doc: 'pino log level' },
];

/** parseArgs options for every setting: all take a value, booleans too (`--allow-plaintext-fallback=true`). */
export function settingFlags(): Record<string, { type: 'string' }> {
  return Object.fromEntries(SETTINGS.map((s) => [s.flag.slice(2), { type: 'string' as const }]));
}

/** One setting as `loadConfig` reads it: the parsed value and where it came from, or the problem. */
export type SettingResult<T> = { readonly value: T; readonly source: string } | { readonly problem: string };

/**
 * Precedence (a string flag, then the first environment name set and non-empty, then the default) and
 * parsing of one setting. `source` is the flag (`--upstream`), the environment name, or `--flag default`.
 */
function readSetting(setting: Setting, flags: Record<string, unknown>, env: Record<string, string | undefined>): SettingResult<unknown> {
  const flagValue = flags[setting.flag.slice(2)];
  const envName = setting.env.find((name) => env[name] !== undefined && env[name] !== '');
  const source = typeof flagValue === 'string' ? setting.flag : (envName ?? `${setting.flag} default`);
  const raw = typeof flagValue === 'string' ? flagValue : envName !== undefined ? env[envName]! : setting.default;
  if (raw === undefined) return { problem: `${setting.flag} (or ${setting.env.join(' / ')}) is required: ${setting.doc}` };
  if (raw === null) return { value: null, source };
  try {
    return { value: setting.parse(raw), source };
  } catch (err) {
    if (!(err instanceof Invalid)) throw err;
    // URLs may carry credentials: never echo them.
    const shown = setting.parse === httpUrl ? '' : `, got ${JSON.stringify(raw)}`;
    return { problem: `${source}: ${err.message}${shown}` };
  }
}

/**
 * One setting exactly as `loadConfig` would resolve it (same precedence, same parser), without requiring
 * the rest of the configuration to be valid: init cross-checks the agent's ports (agent/init-cross-check.ts)
 * where the agent's other settings, such as its NSM or manifest, need not be in place yet.
 */
export function resolveSetting<K extends keyof AgentConfig>(key: K, flags: Record<string, unknown>, env: Record<string, string | undefined>): SettingResult<AgentConfig[K]> {
  const setting = SETTINGS.find((s) => s.key === key)!;
  return readSetting(setting, flags, env) as SettingResult<AgentConfig[K]>;
}

/**
 * Builds the configuration from parsed flag values and an environment. Throws one
 * `AgentError('AGENT_CONFIG')` listing every problem.
 */
export function loadConfig(flags: Record<string, unknown>, env: Record<string, string | undefined>): Readonly<AgentConfig> {
  const problems: string[] = [];
  const config: Record<string, unknown> = {};
  for (const setting of SETTINGS) {
    const result = readSetting(setting, flags, env);
    if ('problem' in result) problems.push(result.problem);
    else config[setting.key] = result.value;
  }
  const mock = config.nsm === 'mock' || config.nsm === 'mock-signed-device';
  if (mock && config.mockPkiDir === null) problems.push(`--nsm ${String(config.nsm)} needs --mock-pki DIR (create one with: enclave-agent mock-pki --out DIR)`);
  if (config.nsm === 'device' && config.mockPkiDir !== null && config.mockPkiDir !== undefined) problems.push('--mock-pki goes with --nsm mock only');
  if (mock && config.deployment === 'production') {
    problems.push(`--nsm ${String(config.nsm)} is refused in a production deployment: its documents prove nothing (set --deployment test for tests and demos)`);
  }
  if (problems.length > 0) {
    throw new AgentError('AGENT_CONFIG', `invalid configuration:\n  - ${problems.join('\n  - ')}`, { problems });
  }
  for (const value of Object.values(config)) if (typeof value === 'object' && value !== null) Object.freeze(value);
  return Object.freeze(config as unknown as AgentConfig);
}
