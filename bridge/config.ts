/**
 * The bridges' settings, from command-line flags (and, for the enclave side, the environment the agent
 * already reads), validated as a whole: every problem is reported at once as one BRIDGE_CONFIG_INVALID,
 * before any socket exists. Results are frozen.
 *
 * Rules beyond the shapes: the parent's end reaches the enclave over vsock (`--cid`) or through a hybrid
 * vsock backend's Unix socket (`--uds`, bridge/hybrid-vsock.ts), never both; inside the enclave the app's
 * port is never bridged while STEVE is on (`--e2e true`, the default: the app must be reached only through
 * the agent), the internal listener's port never
 * (specs/agent-http.md §1), the egress proxy listens on loopback only and needs a non-empty allowlist.
 * The bridge knows the agent's ports only through its own flags and environment; under init, the agent's
 * effective settings are cross-checked with the bridge's when the configuration is loaded
 * (agent/init-cross-check.ts). Pure: no I/O; the environment is an argument.
 */

import { BridgeError } from './errors.js';
import { DEFAULT_EGRESS_LISTEN, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_INGRESS_PORTS, DEFAULT_MAX_CONNECTIONS, PARENT_CID } from './bridges.js';
import { createAllowlist, type Allowlist } from './connect-head.js';
import { CONNECT_TIMEOUT_MS } from './egress.js';
import { UNIX_PATH_MAX_BYTES, hybridVsockListenPath } from './hybrid-vsock.js';
import type { RelayKind } from './native-pipe.js';

export type FlagValues = Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;
export type Environment = Readonly<Record<string, string | undefined>>;
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

interface CommonConfig {
  readonly maxConnections: number;
  readonly idleTimeoutMs: number;
  /** `--relay`: null leaves the choice to the forwarder (native where the addon loads). */
  readonly relay: RelayKind | null;
  readonly logLevel: LogLevel;
}

export interface HostIngressConfig extends CommonConfig {
  readonly mode: 'ingress';
  readonly listen: HostPort;
  /** The enclave: vsock `cid`, or the Unix socket `uds` of a hybrid vsock backend; exactly one is set. */
  readonly cid: number | null;
  readonly uds: string | null;
  readonly vsockPort: number;
  readonly connectTimeoutMs: number;
}

export interface HostEgressConfig extends CommonConfig {
  readonly mode: 'egress';
  readonly vsockPort: number;
  /** With a hybrid vsock backend: its Unix socket; the enclave's connections arrive on `uds_<vsockPort>`. */
  readonly uds: string | null;
  /** Only connections from this CID are served; null serves any. */
  readonly fromCid: number | null;
  readonly allowlist: Allowlist | null;
  readonly connectTimeoutMs: number;
}

export type HostBridgeConfig = HostIngressConfig | HostEgressConfig;

export interface EnclaveBridgeConfig extends CommonConfig {
  readonly ingressPorts: readonly number[];
  /** STEVE on: the app's port is never bridged. */
  readonly e2e: boolean;
  /**
   * Where `ingressPorts` and `e2e` came from: the flag (`--ingress-port`, `--e2e`), the environment name,
   * or `default`. init's cross-check with the agent's own settings names them (agent/init-cross-check.ts).
   */
  readonly sources: { readonly ingressPorts: string; readonly e2e: string };
  readonly egress: null | {
    readonly listen: HostPort;
    readonly cid: number;
    readonly vsockPort: number;
    readonly allowlist: Allowlist;
  };
}

/** vsock ports and CIDs are u32; VMADDR_*_ANY (-1U) is not a target. CID 0 is the hypervisor. */
const MAX_CID = 0xffff_fffe;
const MAX_VSOCK_PORT = 0xffff_fffe;
/** setTimeout's largest delay (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 0x7fff_ffff;
/** Far more than a bridge should hold; keeps a typo from meaning "unlimited". */
const MAX_CONNECTIONS_LIMIT = 1_000_000;
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];
const HOST_PORT_RE = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

class Problems {
  readonly list: string[] = [];
  add(message: string): void {
    this.list.push(message);
  }
  throwIfAny(): void {
    if (this.list.length > 0) throw new BridgeError('BRIDGE_CONFIG_INVALID', this.list.join('; '), { problems: this.list });
  }
}

const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : typeof value === 'string' ? [value] : []);

function integer(problems: Problems, name: string, text: string | undefined, min: number, max: number, fallback: number): number;
function integer(problems: Problems, name: string, text: string | undefined, min: number, max: number, fallback?: undefined): number | undefined;
function integer(problems: Problems, name: string, text: string | undefined, min: number, max: number, fallback?: number): number | undefined {
  if (text === undefined) return fallback;
  if (!/^\d{1,10}$/.test(text) || Number(text) < min || Number(text) > max) {
    problems.add(`${name} expected an integer ${min}..${max}, got ${JSON.stringify(text)}`);
    return fallback ?? min;
  }
  return Number(text);
}

function hostPort(problems: Problems, name: string, text: string, allowPortZero: boolean): HostPort {
  const match = HOST_PORT_RE.exec(text);
  const port = Number(match?.[2]);
  if (match === null || port > 65_535 || (port === 0 && !allowPortZero)) {
    problems.add(`${name} expected HOST:PORT, got ${JSON.stringify(text)}`);
    return { host: '', port: 0 };
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}

/** A Unix socket path: non-empty, no NUL, and `socketPath(text)` (the file bound or dialled) within sun_path. */
function unixPath(problems: Problems, name: string, text: string | undefined, socketPath: (path: string) => string): string | null {
  if (text === undefined) return null;
  if (text === '' || text.includes('\0')) {
    problems.add(`${name} expected a Unix socket path, got ${JSON.stringify(text)}`);
    return null;
  }
  const bound = socketPath(text);
  if (new TextEncoder().encode(bound).length > UNIX_PATH_MAX_BYTES) problems.add(`${name}: the socket path ${JSON.stringify(bound)} is longer than ${UNIX_PATH_MAX_BYTES} bytes`);
  return text;
}

function allowlist(problems: Problems, name: string, entries: readonly string[]): Allowlist | null {
  try {
    return createAllowlist(entries);
  } catch (error) {
    problems.add(`${name}: ${(error as Error).message}`);
    return null;
  }
}

function common(problems: Problems, values: FlagValues): CommonConfig {
  const logLevel = str(values['log-level']) ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) problems.add(`--log-level expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
  const relay = str(values.relay) ?? null;
  if (relay !== null && relay !== 'native' && relay !== 'js') problems.add(`--relay expected native or js, got ${JSON.stringify(relay)}`);
  return {
    relay: relay as RelayKind | null,
    maxConnections: integer(problems, '--max-connections', str(values['max-connections']), 1, MAX_CONNECTIONS_LIMIT, DEFAULT_MAX_CONNECTIONS),
    idleTimeoutMs: integer(problems, '--idle-timeout-ms', str(values['idle-timeout-ms']), 1, MAX_TIMER_MS, DEFAULT_IDLE_TIMEOUT_MS),
    logLevel: logLevel as LogLevel,
  };
}

/** `enclave-agent host-bridge` flags (see HOST_BRIDGE_USAGE in command.ts). */
export function parseHostBridgeFlags(values: FlagValues): HostBridgeConfig {
  const problems = new Problems();
  const base = common(problems, values);
  const connectTimeoutMs = integer(problems, '--connect-timeout-ms', str(values['connect-timeout-ms']), 1, MAX_TIMER_MS, CONNECT_TIMEOUT_MS);
  const cid = integer(problems, '--cid', str(values.cid), 1, MAX_CID);
  const udsText = str(values.uds);
  if (cid !== undefined && udsText !== undefined) problems.add('--cid and --uds: one or the other (vsock, or a hybrid vsock backend\'s Unix socket)');
  if (values.egress === true) {
    for (const flag of ['listen', 'port']) if (values[flag] !== undefined) problems.add(`--${flag} is for the ingress bridge, not with --egress`);
    const vsockPort = integer(problems, '--vsock-port', str(values['vsock-port']), 0, MAX_VSOCK_PORT);
    if (values['vsock-port'] === undefined) problems.add('--egress needs --vsock-port PORT (the vsock port the enclave dials)');
    const uds = unixPath(problems, '--uds', udsText, (path) => hybridVsockListenPath(path, vsockPort ?? MAX_VSOCK_PORT));
    const allowed = strings(values.allow);
    // Fail closed: the parent relays only to targets its operator listed, as the enclave's end does.
    if (allowed.length === 0) problems.add('--egress needs at least one --allow HOST:PORT (the parent connects only to listed targets)');
    const list = allowed.length === 0 ? null : allowlist(problems, '--allow', allowed);
    problems.throwIfAny();
    return Object.freeze({ ...base, mode: 'egress', vsockPort: vsockPort!, uds, fromCid: cid ?? null, allowlist: list, connectTimeoutMs });
  }
  for (const flag of ['vsock-port', 'allow']) if (values[flag] !== undefined) problems.add(`--${flag} goes with --egress only`);
  const listenText = str(values.listen);
  if (listenText === undefined) problems.add('--listen HOST:PORT is required');
  const listen = listenText === undefined ? { host: '', port: 0 } : hostPort(problems, '--listen', listenText, true);
  if (values.cid === undefined && udsText === undefined) problems.add('--cid CID or --uds PATH is required (the enclave\'s CID, or a hybrid vsock backend\'s Unix socket)');
  const uds = unixPath(problems, '--uds', udsText, (path) => path);
  const vsockPort = integer(problems, '--port', str(values.port), 0, MAX_VSOCK_PORT);
  if (values.port === undefined) problems.add('--port PORT is required (the enclave\'s vsock port)');
  problems.throwIfAny();
  return Object.freeze({ ...base, mode: 'ingress', listen: Object.freeze(listen), cid: cid ?? null, uds, vsockPort: vsockPort!, connectTimeoutMs });
}

/** The first of `names` set in `env`. */
function fromEnv(env: Environment, ...names: string[]): string | undefined {
  for (const name of names) if (env[name] !== undefined) return env[name];
  return undefined;
}

const commaList = (text: string | undefined): string[] | undefined =>
  text === undefined ? undefined : text.split(',').map((item) => item.trim()).filter((item) => item !== '');

function isLoopback(host: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === '::1' || host === 'localhost';
}

/** The port of the app's URL (the agent's `--upstream`), or undefined when the text is no http URL. */
function upstreamPort(problems: Problems, text: string): number | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    problems.add(`--upstream expected an http:// URL, got ${JSON.stringify(text)}`);
    return undefined;
  }
  if (url.protocol !== 'http:') {
    problems.add(`--upstream expected an http:// URL, got ${JSON.stringify(text)}`);
    return undefined;
  }
  return url.port === '' ? 80 : Number(url.port);
}

/**
 * `enclave-agent enclave-bridge` flags, with the environment as fallback (a flag wins). The app and
 * internal ports come from the agent's own settings (`--upstream`, `--internal-listen` and their
 * variables), so one environment configures both processes.
 */
export function parseEnclaveBridgeFlags(values: FlagValues, env: Environment): EnclaveBridgeConfig {
  const problems = new Problems();
  const base = common(problems, values);

  const portFlags = strings(values['ingress-port']);
  const portTexts = portFlags.length > 0 ? portFlags : commaList(env.ENCLAVE_AGENT_INGRESS_PORTS);
  const portsSource = portFlags.length > 0 ? '--ingress-port' : portTexts !== undefined ? 'ENCLAVE_AGENT_INGRESS_PORTS' : 'default';
  const ingressPorts = portTexts === undefined ? [...DEFAULT_INGRESS_PORTS] : portTexts.map((text) => integer(problems, '--ingress-port', text, 1, 65_535, 0));
  if (new Set(ingressPorts).size !== ingressPorts.length) problems.add('--ingress-port: a port is listed twice');

  const e2eFlag = str(values.e2e);
  const e2eEnv = fromEnv(env, 'ENCLAVE_AGENT_E2E');
  const e2eText = e2eFlag ?? e2eEnv ?? 'true';
  const e2eSource = e2eFlag !== undefined ? '--e2e' : e2eEnv !== undefined ? 'ENCLAVE_AGENT_E2E' : 'default';
  if (e2eText !== 'true' && e2eText !== 'false') problems.add(`--e2e expected true or false, got ${JSON.stringify(e2eText)}`);
  const e2e = e2eText !== 'false';
  const appPort = upstreamPort(problems, str(values.upstream) ?? fromEnv(env, 'ENCLAVE_AGENT_UPSTREAM', 'STEVE_APP_UPSTREAM') ?? 'http://127.0.0.1:8083');
  const internal = hostPort(problems, '--internal-listen', str(values['internal-listen']) ?? fromEnv(env, 'ENCLAVE_AGENT_INTERNAL_LISTEN') ?? '127.0.0.1:9090', false);
  for (const port of ingressPorts) {
    if (e2e && port === appPort) problems.add(`--ingress-port ${port} is the app's port: with --e2e true the app is reached only through the agent`);
    if (port === internal.port) problems.add(`--ingress-port ${port} is the internal listener's port, which is never bridged`);
  }

  let egress: EnclaveBridgeConfig['egress'] = null;
  const egressPortText = str(values['egress-vsock-port']) ?? fromEnv(env, 'ENCLAVE_AGENT_EGRESS_VSOCK_PORT');
  const egressFlags = ['egress-listen', 'egress-cid', 'egress-allow'].filter((flag) => values[flag] !== undefined);
  if (egressPortText === undefined) {
    for (const flag of egressFlags) problems.add(`--${flag} needs --egress-vsock-port (egress is off without it)`);
  } else {
    const vsockPort = integer(problems, '--egress-vsock-port', egressPortText, 0, MAX_VSOCK_PORT, 0);
    const cid = integer(problems, '--egress-cid', str(values['egress-cid']) ?? fromEnv(env, 'ENCLAVE_AGENT_EGRESS_CID'), 1, MAX_CID, PARENT_CID);
    const listenText = str(values['egress-listen']) ?? fromEnv(env, 'ENCLAVE_AGENT_EGRESS_LISTEN');
    const listen = listenText === undefined ? DEFAULT_EGRESS_LISTEN : hostPort(problems, '--egress-listen', listenText, false);
    if (listenText !== undefined && listen.host !== '' && !isLoopback(listen.host)) problems.add(`--egress-listen must be a loopback address, got ${JSON.stringify(listenText)}`);
    const allowed = strings(values['egress-allow']).length > 0 ? strings(values['egress-allow']) : (commaList(fromEnv(env, 'ENCLAVE_AGENT_EGRESS_ALLOW')) ?? []);
    if (allowed.length === 0) problems.add('egress needs at least one --egress-allow HOST:PORT');
    const list = allowed.length === 0 ? null : allowlist(problems, '--egress-allow', allowed);
    if (list !== null) egress = Object.freeze({ listen: Object.freeze({ ...listen }), cid, vsockPort, allowlist: list });
  }
  problems.throwIfAny();
  const sources = Object.freeze({ ingressPorts: portsSource, e2e: e2eSource });
  return Object.freeze({ ...base, ingressPorts: Object.freeze(ingressPorts), e2e, sources, egress });
}

