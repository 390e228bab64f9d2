/**
 * The four bridges of an enclave deployment, each a forwarder over the right pair of transports:
 * - enclave ingress: vsock port P -> TCP 127.0.0.1:P, one per ingress port (default 8080);
 * - host ingress: TCP HOST:PORT -> vsock CID:PORT (`enclave-agent host-bridge`), or through a hybrid
 *   vsock backend's Unix socket (`--uds`: CONNECT PORT, hybrid-vsock.ts);
 * - enclave egress: TCP 127.0.0.1:3128 (the app's HTTP(S)_PROXY) -> CONNECT checked -> vsock parent CID;
 * - host egress: vsock port -> CONNECT checked again -> TCP target (`enclave-agent host-bridge --egress`),
 *   or the Unix socket `UDS_<port>` where a hybrid vsock backend delivers the guest's connections.
 * The `dial`/`listen` seams default to the production transports; tests inject TCP on loopback.
 */

import type { Logger } from 'pino';

import type { Allowlist } from './connect-head.js';
import { CONNECT_TIMEOUT_MS, createEgressProxyOpen, createEgressUpstreamOpen } from './egress.js';
import { BridgeError } from './errors.js';
import { dialTarget, startForwarder, type Forwarder, type OpenTarget } from './forwarder.js';
import { RELAY_SPLICE, resolveRelay, type RelayKind } from './native-pipe.js';
import { hybridVsockDialer, hybridVsockListenPath, listenUnixStreams } from './hybrid-vsock.js';
import { listenTcp, listenTcpFds, listenVsockFds, listenVsockStreams, tcpDialer, vsockDialer, type Dial, type StreamListener } from './transports.js';
import { ipv4Bytes } from '../vsock/index.js';

/** Connections each bridge holds at once (two fds each; Node raises its soft fd limit to the hard one). */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** A connection with no byte either way for 5 minutes is closed: longer than common load balancers' 60 s. */
export const DEFAULT_IDLE_TIMEOUT_MS = 300_000;
/** Setup deadline: a CONNECT head, the dial and the host's answer each have their own, shorter ones. */
export const OPEN_TIMEOUT_MS = 30_000;
/** The parent instance's CID, as an enclave sees it (AWS Nitro Enclaves: the parent is always CID 3). */
export const PARENT_CID = 3;
/** The default ingress port: the agent's public listener (specs/agent-http.md §1). */
export const DEFAULT_INGRESS_PORTS: readonly number[] = [8080];
/** The default egress proxy address inside the enclave (the conventional proxy port). */
export const DEFAULT_EGRESS_LISTEN = { host: '127.0.0.1', port: 3128 } as const;

export interface Limits {
  readonly maxConnections: number;
  readonly idleTimeoutMs: number;
  /** forwarder.ts: native (the default where the addon loads) or js. */
  readonly relay: RelayKind;
  /** Native relay: splice(2) instead of read/write (benchmarks; the default is RELAY_SPLICE). */
  readonly relaySplice: boolean;
}

const DEFAULT_LIMITS = { maxConnections: DEFAULT_MAX_CONNECTIONS, idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS };

/** The relay options a forwarder gets from a bridge's Partial<Limits>. */
function relayOptions(options: Partial<Limits>): { relay?: RelayKind; relaySplice: boolean } {
  return { ...(options.relay !== undefined ? { relay: options.relay } : {}), relaySplice: options.relaySplice ?? RELAY_SPLICE };
}

/**
 * Whether the forwarder will dial in C (the native relay, and a dial it can make itself): then the
 * listener hands accepted connections over as raw fds and no stream is made for them (transports.ts).
 */
function dialsInC(options: Partial<Limits>, dial: Dial): boolean {
  return dial.nativeTarget !== undefined && resolveRelay(options.relay) === 'native';
}

/** The plain bridge: every client gets one dial, bounded by `connectTimeoutMs`. */
export function dialOpen(dial: Dial, connectTimeoutMs = CONNECT_TIMEOUT_MS): OpenTarget {
  return dialTarget(dial, connectTimeoutMs);
}

/** Closes every forwarder, each with the same grace period for its open connections. */
export async function closeAll(forwarders: readonly Forwarder[], graceMs = 0): Promise<void> {
  await Promise.all(forwarders.map((forwarder) => forwarder.close({ graceMs })));
}

export interface HostIngressOptions extends Partial<Limits> {
  readonly listen: { readonly host: string; readonly port: number };
  /** The enclave: vsock `cid`, or `uds`, the Unix socket of a hybrid vsock backend (exactly one). */
  readonly cid?: number;
  readonly uds?: string;
  readonly vsockPort: number;
  readonly connectTimeoutMs?: number;
  readonly logger: Logger;
  /** Tests: another transport than vsock. */
  readonly dial?: Dial;
}

/** The enclave's `vsockPort` over vsock, or through the hybrid vsock backend at `uds`. */
function enclaveDialer(options: HostIngressOptions): Dial {
  if (options.dial !== undefined) return options.dial;
  if ((options.cid === undefined) === (options.uds === undefined)) throw new BridgeError('BRIDGE_CONFIG_INVALID', 'host ingress needs exactly one of "cid" and "uds"');
  // One deadline for the user to set: the reply's is the connect timeout too (dialWithin bounds the whole dial).
  if (options.uds !== undefined) return hybridVsockDialer({ path: options.uds, port: options.vsockPort, replyTimeoutMs: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS });
  return vsockDialer({ cid: options.cid!, port: options.vsockPort });
}

/** TCP `listen` -> vsock `cid:vsockPort` (or the guest's `vsockPort` through `uds`). */
export async function startHostIngress(options: HostIngressOptions): Promise<Forwarder> {
  const dial = enclaveDialer(options);
  const listener = dialsInC(options, dial) && ipv4Bytes(options.listen.host) !== undefined ? await listenTcpFds(options.listen) : await listenTcp(options.listen);
  return startForwarder({
    name: 'host-ingress',
    listener,
    open: dialOpen(dial, options.connectTimeoutMs),
    maxConnections: options.maxConnections ?? DEFAULT_LIMITS.maxConnections,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_LIMITS.idleTimeoutMs,
    openTimeoutMs: OPEN_TIMEOUT_MS,
    logger: options.logger,
    ...relayOptions(options),
  });
}

export interface EnclaveIngressOptions extends Partial<Limits> {
  /** Each port P is bridged vsock P -> 127.0.0.1:P. */
  readonly ports: readonly number[];
  readonly logger: Logger;
  /** Tests: other transports (defaults: vsock listener, TCP to 127.0.0.1:P). */
  readonly listen?: (port: number) => Promise<StreamListener>;
  readonly dial?: (port: number) => Dial;
}

/** vsock P -> TCP 127.0.0.1:P for every port; on a failure the ones already started are closed. */
export async function startEnclaveIngress(options: EnclaveIngressOptions): Promise<Forwarder[]> {
  const dial = options.dial ?? ((port: number) => tcpDialer({ host: '127.0.0.1', port }));
  const forwarders: Forwarder[] = [];
  try {
    for (const port of options.ports) {
      const portDial = dial(port);
      // The enclave's side of every ingress connection: its fd goes to the relay's dial when it can.
      const listener = options.listen !== undefined ? await options.listen(port) : dialsInC(options, portDial) ? await listenVsockFds({ port }) : await listenVsockStreams({ port });
      forwarders.push(
        startForwarder({
          name: 'enclave-ingress',
          listener,
          open: dialOpen(portDial),
          maxConnections: options.maxConnections ?? DEFAULT_LIMITS.maxConnections,
          idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_LIMITS.idleTimeoutMs,
          openTimeoutMs: OPEN_TIMEOUT_MS,
          logger: options.logger,
          ...relayOptions(options),
        }),
      );
    }
  } catch (error) {
    await closeAll(forwarders);
    throw error;
  }
  return forwarders;
}

export interface EnclaveEgressOptions extends Partial<Limits> {
  readonly listen: { readonly host: string; readonly port: number };
  readonly allowlist: Allowlist;
  /** Where the host's egress bridge listens: vsock `cid:vsockPort` (cid defaults to PARENT_CID). */
  readonly cid?: number;
  readonly vsockPort: number;
  readonly logger: Logger;
  /** Tests: another transport than vsock. */
  readonly dialHost?: Dial;
}

/** The app's CONNECT proxy on TCP `listen` -> vsock to the host's egress bridge. */
export async function startEnclaveEgress(options: EnclaveEgressOptions): Promise<Forwarder> {
  if (options.allowlist.entries.length === 0) throw new BridgeError('BRIDGE_CONFIG_INVALID', 'the egress allowlist is empty');
  const listener = await listenTcp(options.listen);
  return startForwarder({
    name: 'enclave-egress',
    listener,
    open: createEgressProxyOpen({
      allowlist: options.allowlist,
      dialHost: options.dialHost ?? vsockDialer({ cid: options.cid ?? PARENT_CID, port: options.vsockPort }),
    }),
    maxConnections: options.maxConnections ?? DEFAULT_LIMITS.maxConnections,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_LIMITS.idleTimeoutMs,
    openTimeoutMs: OPEN_TIMEOUT_MS,
    logger: options.logger,
    ...relayOptions(options),
  });
}

export interface HostEgressOptions extends Partial<Limits> {
  /** The host's own allowlist, or null for any target the enclave asks for. */
  readonly allowlist: Allowlist | null;
  readonly vsockPort: number;
  /**
   * A hybrid vsock backend's Unix socket: the guest's connections to `vsockPort` arrive on `uds_<vsockPort>`,
   * which is listened on instead of vsock; the socket file (owner only) admits whom `fromCid` would.
   */
  readonly uds?: string;
  /** Only connections from this vsock CID are served (others are closed unanswered); null or absent: any. */
  readonly fromCid?: number | null;
  readonly connectTimeoutMs?: number;
  readonly logger: Logger;
  /** Tests: other transports (defaults: a vsock listener on any CID, TCP to the target). */
  readonly listener?: StreamListener;
  readonly dialTarget?: (target: { host: string; port: number }) => Dial;
}

/** vsock `vsockPort` (or `uds_<vsockPort>`) -> the CONNECT target over TCP. */
export async function startHostEgress(options: HostEgressOptions): Promise<Forwarder> {
  if (options.uds !== undefined && options.fromCid !== undefined && options.fromCid !== null) {
    throw new BridgeError('BRIDGE_CONFIG_INVALID', 'host egress: "fromCid" is a vsock check; with "uds" the socket file admits one guest');
  }
  const listener =
    options.listener ??
    (options.uds !== undefined ? await listenUnixStreams({ path: hybridVsockListenPath(options.uds, options.vsockPort) }) : await listenVsockStreams({ port: options.vsockPort }));
  if (options.allowlist === null) options.logger.warn({ vsockPort: options.vsockPort }, 'egress bridge has no allowlist: any target the enclave names is connected');
  const upstreamOpen = createEgressUpstreamOpen({
    allowlist: options.allowlist,
    dialTarget: options.dialTarget ?? tcpDialer,
    ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
  });
  const { fromCid } = options;
  const open: OpenTarget =
    fromCid === undefined || fromCid === null
      ? upstreamOpen
      : async (client, signal) => {
          const peerCid = (client as { remoteCid?: unknown }).remoteCid;
          if (peerCid !== fromCid) throw new BridgeError('BRIDGE_CONNECT_DENIED', `peer CID ${String(peerCid)} is not the enclave's`);
          return upstreamOpen(client, signal);
        };
  return startForwarder({
    name: 'host-egress',
    listener,
    open,
    maxConnections: options.maxConnections ?? DEFAULT_LIMITS.maxConnections,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_LIMITS.idleTimeoutMs,
    openTimeoutMs: OPEN_TIMEOUT_MS,
    logger: options.logger,
    ...relayOptions(options),
  });
}
