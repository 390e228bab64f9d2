/**
 * `enclave-agent host-bridge` and `enclave-agent enclave-bridge`: their flags, usage text and what they
 * run. agent/commands.ts registers them (the agent wires the parts; bridge/ never imports agent/), passing
 * the process logger's factory. Every flag is validated before any socket exists (BRIDGE_CONFIG_INVALID,
 * which the CLI reports as a usage error, exit 2); the bridges then run until SIGINT or SIGTERM and close
 * with a grace period for open connections.
 */

import { once } from 'node:events';
import type { ParseArgsConfig } from 'node:util';

import type { Logger } from 'pino';

import { closeAll, startEnclaveEgress, startEnclaveIngress, startHostEgress, startHostIngress } from './bridges.js';
import {
  parseEnclaveBridgeFlags,
  parseHostBridgeFlags,
  type EnclaveBridgeConfig,
  type Environment,
  type FlagValues,
  type LogLevel,
} from './config.js';
import type { Forwarder } from './forwarder.js';

/**
 * On SIGTERM, how long open connections may finish before they are cut: half of init's default 10 s
 * shutdown deadline, so a supervised bridge exits on its own before init would SIGKILL it.
 */
export const SHUTDOWN_GRACE_MS = 5_000;

export const HOST_BRIDGE_USAGE =
  'Usage: enclave-agent host-bridge --listen HOST:PORT (--cid CID | --uds PATH) --port PORT [limits]\n' +
  '       enclave-agent host-bridge --egress --vsock-port PORT --allow HOST:PORT... [--cid CID | --uds PATH] [limits]\n\n' +
  'Runs on the parent instance. Ingress (the first form): accepts TCP on --listen and joins each connection\n' +
  'to the enclave at vsock CID:PORT. Egress (--egress): listens on vsock --vsock-port for the enclave\'s\n' +
  'egress proxy, reads its HTTP CONNECT, checks it against --allow (exact HOST:PORT, repeatable, at least\n' +
  'one), connects to the target over TCP and answers 200, 403, 502 or 504.\n' +
  'With --uds, the enclave\'s vsock is a hybrid vsock backend\'s Unix socket (vhost-device-vsock --uds-path,\n' +
  'Firecracker) instead: ingress connects to PATH, sends "CONNECT PORT\\n" and expects "OK <n>\\n" within\n' +
  '--connect-timeout-ms; egress listens on the Unix socket PATH_<vsock-port> (mode 0600). Half-close does\n' +
  'not cross such a backend.\n\n' +
  '--listen HOST:PORT        TCP address to accept on (ingress)\n' +
  '--cid CID                 the enclave\'s CID (ingress: where to connect; egress: the only peer served)\n' +
  '--uds PATH                a hybrid vsock backend\'s Unix socket, in place of --cid\n' +
  '--port PORT               the enclave\'s vsock port (ingress)\n' +
  '--vsock-port PORT         vsock port to listen on (egress)\n' +
  '--allow HOST:PORT         a target the egress bridge may connect to; repeat for more\n' +
  '--max-connections N       connections held at once; more are closed at once (default 1024)\n' +
  '--idle-timeout-ms N       close a connection after N ms without a byte either way (default 300000)\n' +
  '--relay native|js         what moves the bytes: the native relay (default where the addon loads) or JS\n' +
  '--connect-timeout-ms N    deadline for each outgoing connect (default 10000)\n' +
  '--log-level LEVEL         fatal, error, warn, info (default), debug, trace\n\n' +
  'Exit status: 0 after SIGINT/SIGTERM, 1 when a listener cannot be opened, 2 usage error.';

export const HOST_BRIDGE_OPTIONS = {
  listen: { type: 'string' },
  cid: { type: 'string' },
  uds: { type: 'string' },
  port: { type: 'string' },
  egress: { type: 'boolean' },
  'vsock-port': { type: 'string' },
  allow: { type: 'string', multiple: true },
  'max-connections': { type: 'string' },
  'idle-timeout-ms': { type: 'string' },
  relay: { type: 'string' },
  'connect-timeout-ms': { type: 'string' },
  'log-level': { type: 'string' },
} satisfies NonNullable<ParseArgsConfig['options']>;

export const ENCLAVE_BRIDGE_USAGE =
  'Usage: enclave-agent enclave-bridge [--ingress-port PORT]... [--e2e true|false] [--upstream URL]\n' +
  '                                    [--internal-listen HOST:PORT] [--egress-vsock-port PORT\n' +
  '                                    --egress-allow HOST:PORT... [--egress-listen HOST:PORT] [--egress-cid CID]]\n' +
  '                                    [--max-connections N] [--idle-timeout-ms N] [--relay native|js] [--log-level LEVEL]\n\n' +
  'Runs inside the enclave. Ingress: each vsock port P is joined to TCP 127.0.0.1:P. Egress (with\n' +
  '--egress-vsock-port): an HTTP CONNECT proxy on --egress-listen for the app\'s HTTP(S)_PROXY; allowed\n' +
  'targets go to the parent\'s `host-bridge --egress` over vsock.\n\n' +
  '--ingress-port PORT       a port to bridge; repeat for more (ENCLAVE_AGENT_INGRESS_PORTS, comma list;\n' +
  '                          default 8080)\n' +
  '--e2e true|false          STEVE on: the app\'s port is never bridged (ENCLAVE_AGENT_E2E; default true)\n' +
  '--upstream URL            the app, whose port is refused with --e2e true (as `run`: ENCLAVE_AGENT_UPSTREAM,\n' +
  '                          STEVE_APP_UPSTREAM; default http://127.0.0.1:8083)\n' +
  '--internal-listen H:P     the agent\'s internal listener, whose port is never bridged\n' +
  '                          (ENCLAVE_AGENT_INTERNAL_LISTEN; default 127.0.0.1:9090)\n' +
  '--egress-vsock-port PORT  the parent\'s egress bridge port; egress is off without it\n' +
  '                          (ENCLAVE_AGENT_EGRESS_VSOCK_PORT)\n' +
  '--egress-allow HOST:PORT  a target the app may reach, exact; repeat for more (ENCLAVE_AGENT_EGRESS_ALLOW)\n' +
  '--egress-listen HOST:PORT the proxy\'s loopback address (ENCLAVE_AGENT_EGRESS_LISTEN; default 127.0.0.1:3128)\n' +
  '--egress-cid CID          the parent\'s CID (ENCLAVE_AGENT_EGRESS_CID; default 3)\n' +
  '--max-connections N       connections per bridge held at once (default 1024)\n' +
  '--idle-timeout-ms N       close a connection after N ms without a byte either way (default 300000)\n' +
  '--relay native|js         what moves the bytes: the native relay (default where the addon loads) or JS\n' +
  '--log-level LEVEL         fatal, error, warn, info (default), debug, trace\n\n' +
  'Exit status: 0 after SIGINT/SIGTERM, 1 when a listener cannot be opened, 2 usage error.';

export const ENCLAVE_BRIDGE_OPTIONS = {
  'ingress-port': { type: 'string', multiple: true },
  e2e: { type: 'string' },
  upstream: { type: 'string' },
  'internal-listen': { type: 'string' },
  'egress-vsock-port': { type: 'string' },
  'egress-allow': { type: 'string', multiple: true },
  'egress-listen': { type: 'string' },
  'egress-cid': { type: 'string' },
  'max-connections': { type: 'string' },
  'idle-timeout-ms': { type: 'string' },
  relay: { type: 'string' },
  'log-level': { type: 'string' },
} satisfies NonNullable<ParseArgsConfig['options']>;

export interface BridgeCommandIo {
  /** The process logger at `level` (agent/log.ts). */
  createLogger(level: LogLevel): Logger;
  /** Resolves with the signal's name when the process should stop; default SIGINT or SIGTERM. */
  waitForStop?: () => Promise<string>;
}

function waitForSignal(): Promise<string> {
  return Promise.race([once(process, 'SIGINT').then(() => 'SIGINT'), once(process, 'SIGTERM').then(() => 'SIGTERM')]);
}

/**
 * Waits for the stop the caller began listening for before it started the bridges (a signal that comes
 * right after "bridge listening" must stop them gracefully, not kill the process), then closes them.
 */
async function runUntilStopped(logger: Logger, forwarders: readonly Forwarder[], stopped: Promise<string>): Promise<number> {
  const signal = await stopped;
  logger.info({ signal }, 'signal received');
  await closeAll(forwarders, SHUTDOWN_GRACE_MS);
  return 0;
}

/** `host-bridge`: throws BRIDGE_CONFIG_INVALID for bad flags, BRIDGE_LISTEN_FAILED when it cannot listen. */
export async function runHostBridgeCommand(values: FlagValues, io: BridgeCommandIo): Promise<number> {
  const config = parseHostBridgeFlags(values);
  const logger = io.createLogger(config.logLevel);
  const stopped = (io.waitForStop ?? waitForSignal)();
  const limits = { maxConnections: config.maxConnections, idleTimeoutMs: config.idleTimeoutMs, ...(config.relay !== null ? { relay: config.relay } : {}) };
  let forwarder: Forwarder;
  if (config.mode === 'ingress') {
    forwarder = await startHostIngress({
      ...limits,
      listen: config.listen,
      ...(config.uds !== null ? { uds: config.uds } : { cid: config.cid! }),
      vsockPort: config.vsockPort,
      connectTimeoutMs: config.connectTimeoutMs,
      logger,
    });
  } else {
    forwarder = await startHostEgress({
      ...limits,
      allowlist: config.allowlist,
      vsockPort: config.vsockPort,
      ...(config.uds !== null ? { uds: config.uds } : {}),
      fromCid: config.fromCid,
      connectTimeoutMs: config.connectTimeoutMs,
      logger,
    });
  }
  return runUntilStopped(logger, [forwarder], stopped);
}

/** The enclave's bridges, started from a checked configuration; `stop()` closes them with the grace period. */
export interface RunningEnclaveBridges {
  readonly forwarders: readonly Forwarder[];
  stop(): Promise<void>;
}

/** The ingress bridges and, when configured, the egress proxy; on a failure the ones started are closed. */
export async function startEnclaveBridges(config: EnclaveBridgeConfig, logger: Logger): Promise<RunningEnclaveBridges> {
  const limits = { maxConnections: config.maxConnections, idleTimeoutMs: config.idleTimeoutMs, ...(config.relay !== null ? { relay: config.relay } : {}) };
  const forwarders = await startEnclaveIngress({ ...limits, ports: config.ingressPorts, logger });
  if (config.egress !== null) {
    try {
      forwarders.push(await startEnclaveEgress({ ...limits, ...config.egress, logger }));
    } catch (error) {
      await closeAll(forwarders);
      throw error;
    }
  }
  return { forwarders, stop: () => closeAll(forwarders, SHUTDOWN_GRACE_MS) };
}

/** `enclave-bridge`: the ingress bridges and, when configured, the egress proxy. */
export async function runEnclaveBridgeCommand(values: FlagValues, env: Environment, io: BridgeCommandIo): Promise<number> {
  const config = parseEnclaveBridgeFlags(values, env);
  const logger = io.createLogger(config.logLevel);
  const stopped = (io.waitForStop ?? waitForSignal)();
  const running = await startEnclaveBridges(config, logger);
  return runUntilStopped(logger, running.forwarders, stopped);
}
