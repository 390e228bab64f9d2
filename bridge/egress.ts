/**
 * The egress proxy's two halves, as OpenTarget handlers for startForwarder:
 * - enclave side (`createEgressProxyOpen`): the app connects to 127.0.0.1:3128 (its HTTP(S)_PROXY) and sends
 *   one CONNECT. The head is read (bounded in size and time) and parsed strictly, the target checked against
 *   the allowlist, and only then is the host dialled (over vsock in production) and sent a canonical CONNECT
 *   carrying the target alone (never the app's header lines). The host's answer is parsed in turn: the app
 *   gets our own `200 Connection Established`, or the mapped status (403, 502, 504).
 * - host side (`createEgressUpstreamOpen`): reads the CONNECT again without trusting the enclave's checks,
 *   applies its own optional allowlist, connects to the target with a deadline and answers 200, 502 or 504.
 * Every refusal is answered with fixed bytes from connect-head.ts and then ends the connection (the
 * forwarder drops what the client still sends and closes). Bytes that follow a head are kept for the tunnel.
 */

import type { Duplex } from 'node:stream';

import { BridgeError } from './errors.js';
import {
  MAX_HEAD_BYTES,
  connectResponse,
  encodeConnectRequest,
  parseConnectRequest,
  parseConnectResponse,
  statusForError,
  type Allowlist,
  type ConnectTarget,
} from './connect-head.js';
import type { OpenTarget } from './forwarder.js';
import { readHead } from './read-head.js';
import { dialWithin, type Dial } from './transports.js';

/** How long a client may take to send its CONNECT head: as long as the agent gives a small request body. */
export const HEAD_TIMEOUT_MS = 10_000;
/** How long the host may take to connect to a target. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** How long the enclave waits for the host's answer: the host's connect deadline plus time to say so. */
export const REPLY_TIMEOUT_MS = CONNECT_TIMEOUT_MS + 5_000;

/** Answers `status` and ends our side (the forwarder closes the connection after). Never throws. */
function answer(client: Duplex, status: number): void {
  if (!client.destroyed && !client.writableEnded) client.end(connectResponse(status));
}

/** Reads and parses the client's CONNECT; on a refusal answers its status and rethrows. */
async function readConnect(client: Duplex, signal: AbortSignal, headTimeoutMs: number, allowlist: Allowlist | null): Promise<ConnectTarget> {
  try {
    const target = parseConnectRequest(await readHead(client, { maxBytes: MAX_HEAD_BYTES, timeoutMs: headTimeoutMs, signal }));
    if (allowlist !== null && !allowlist.allows(target)) throw new BridgeError('BRIDGE_CONNECT_DENIED', 'target not in the allowlist');
    return target;
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'BRIDGE_PEER_CLOSED' && !signal.aborted) answer(client, statusForError(error));
    throw error;
  }
}

export interface EgressProxyOptions {
  /** Exact host:port targets the app may reach. */
  readonly allowlist: Allowlist;
  /** Opens a stream to the host's egress listener (vsock CID 3 in an enclave). */
  readonly dialHost: Dial;
  readonly headTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly replyTimeoutMs?: number;
}

/** The enclave side: the app's CONNECT, checked here, then again by the host. */
export function createEgressProxyOpen(options: EgressProxyOptions): OpenTarget {
  const { allowlist, dialHost, headTimeoutMs = HEAD_TIMEOUT_MS, connectTimeoutMs = CONNECT_TIMEOUT_MS, replyTimeoutMs = REPLY_TIMEOUT_MS } = options;
  return async (client, signal) => {
    const target = await readConnect(client, signal, headTimeoutMs, allowlist);
    let upstream: Duplex;
    try {
      upstream = await dialWithin(dialHost, connectTimeoutMs, signal);
    } catch (error) {
      if (!signal.aborted) answer(client, statusForError(error));
      throw error;
    }
    upstream.on('error', () => {});
    let status: number;
    try {
      upstream.write(encodeConnectRequest(target));
      const reply = await readHead(upstream, { maxBytes: MAX_HEAD_BYTES, timeoutMs: replyTimeoutMs, signal });
      status = parseConnectResponse(reply);
    } catch (error) {
      upstream.destroy();
      if (!signal.aborted) answer(client, (error as { code?: unknown }).code === 'BRIDGE_HEAD_TIMEOUT' ? 504 : 502);
      throw new BridgeError('BRIDGE_CONNECT_REFUSED_UPSTREAM', 'no valid answer from the host', { cause: error });
    }
    if (status !== 200) {
      upstream.destroy();
      // The host's refusals keep their meaning; anything else it says is a bad gateway.
      answer(client, status === 403 || status === 504 ? status : 502);
      throw new BridgeError('BRIDGE_CONNECT_REFUSED_UPSTREAM', `the host answered ${status}`);
    }
    client.write(connectResponse(200));
    return upstream;
  };
}

export interface EgressUpstreamOptions {
  /** The host's own allowlist; null forwards to any target the enclave asks for. */
  readonly allowlist: Allowlist | null;
  /** Opens a stream to a target (TCP in production). */
  readonly dialTarget: (target: ConnectTarget) => Dial;
  readonly headTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
}

/** The host side: the enclave's CONNECT, checked again, then the target. */
export function createEgressUpstreamOpen(options: EgressUpstreamOptions): OpenTarget {
  const { allowlist, dialTarget, headTimeoutMs = HEAD_TIMEOUT_MS, connectTimeoutMs = CONNECT_TIMEOUT_MS } = options;
  return async (client, signal) => {
    const target = await readConnect(client, signal, headTimeoutMs, allowlist);
    let upstream: Duplex;
    try {
      upstream = await dialWithin(dialTarget(target), connectTimeoutMs, signal);
    } catch (error) {
      if (!signal.aborted) answer(client, statusForError(error));
      throw error;
    }
    client.write(connectResponse(200));
    return upstream;
  };
}
