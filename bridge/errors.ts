/**
 * BridgeError: the one error class of the vsock bridges. Callers match on `code`, never on `message`:
 * - `BRIDGE_CONFIG_INVALID`: a flag or setting failed validation (every problem listed in `problems`);
 * - `BRIDGE_LISTEN_FAILED`: a listener could not be opened (the lower layer's error is the `cause`);
 * - `BRIDGE_DIAL_FAILED`, `BRIDGE_DIAL_TIMEOUT`: the target refused, failed or did not answer in time;
 * - `BRIDGE_IDLE_TIMEOUT`: no byte moved either way for the idle timeout;
 * - `BRIDGE_HEAD_*`, `BRIDGE_CONNECT_*`: an HTTP CONNECT request or answer the egress proxy refused
 *   (connect-head.ts maps each to the one status the peer sees, `CONNECT_STATUS`);
 * - `BRIDGE_HYBRID_REFUSED`, `BRIDGE_HYBRID_MALFORMED`, `BRIDGE_HYBRID_TIMEOUT`: the Unix-socket ("hybrid
 *   vsock") backend closed without answering a CONNECT (no listener on that guest port), answered something
 *   other than `OK <port>\n`, or did not answer in time (hybrid-vsock.ts);
 * - `BRIDGE_RELAY_UNAVAILABLE`: the native relay was asked for but the addon (or a stream's fd) is missing;
 *   `BRIDGE_RELAY_FAILED`: it did not start (dup, pipe, memory; the lower error is the `cause`);
 * - `BRIDGE_CLOSED`: the bridge was closing and dropped the connection.
 * Pure: no `node:` imports, no I/O.
 */

export type BridgeErrorCode =
  | 'BRIDGE_CONFIG_INVALID'
  | 'BRIDGE_LISTEN_FAILED'
  | 'BRIDGE_DIAL_FAILED'
  | 'BRIDGE_DIAL_TIMEOUT'
  | 'BRIDGE_IDLE_TIMEOUT'
  | 'BRIDGE_SETUP_TIMEOUT'
  | 'BRIDGE_PEER_CLOSED'
  | 'BRIDGE_HEAD_TIMEOUT'
  | 'BRIDGE_HEAD_TOO_LARGE'
  | 'BRIDGE_HEAD_MALFORMED'
  | 'BRIDGE_CONNECT_METHOD'
  | 'BRIDGE_CONNECT_DENIED'
  | 'BRIDGE_CONNECT_REFUSED_UPSTREAM'
  | 'BRIDGE_HYBRID_REFUSED'
  | 'BRIDGE_HYBRID_MALFORMED'
  | 'BRIDGE_HYBRID_TIMEOUT'
  | 'BRIDGE_RELAY_UNAVAILABLE'
  | 'BRIDGE_RELAY_FAILED'
  | 'BRIDGE_CLOSED';

export class BridgeError extends Error {
  readonly code: BridgeErrorCode;
  /** Every problem found, for errors that gather several (configuration). */
  readonly problems: readonly string[];

  constructor(code: BridgeErrorCode, message: string, options?: { cause?: unknown; problems?: readonly string[] }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BridgeError';
    this.code = code;
    this.problems = options?.problems ?? [message];
  }
}

/** The `code` of any error that has a string one (BridgeError, VsockError, Node's `ECONNREFUSED`), else 'UNKNOWN'. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}
