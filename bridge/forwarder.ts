/**
 * startForwarder: for every stream a listener accepts, opens a target stream (`open`: a plain dial, or the
 * egress proxy's CONNECT handling) and joins the two (pipe.ts). It holds the limits every bridge shares:
 * - a connection cap: at `maxConnections` open connections a new one is closed at once and counted, never
 *   queued;
 * - a setup deadline (`openTimeoutMs`) for `open`, and the idle timeout for the join;
 * - no retries and no loops: one accepted connection causes at most one `open`, and accept errors only
 *   count and log (the listeners themselves back off: vsock/server.ts pauses, libuv's EMFILE reserve fd);
 * - `close()`: stop accepting, let open connections finish for a grace period, then destroy the rest;
 * - the relay: joinStreamsNative (bytes moved in C) by default where the addon loads, pipe.ts's
 *   joinStreams when `relay: 'js'` is chosen; `relay: 'native'` without the addon refuses to start;
 * - a listener that hands over raw fds (`handsOverFds`, the ingress bridges): each goes to the relay's
 *   own dial (joinNativeDialFd) under the same cap and counters, with no stream or promise per connection.
 * Logs are pino records with constant messages; per-connection records are debug level, repeated warnings
 * are rate limited, and no payload byte is ever logged.
 */

import type { Duplex } from 'node:stream';

import type { Logger } from 'pino';

import { BridgeError, errorCode } from './errors.js';
import { closeFd, type DialTarget } from '../vsock/index.js';
import { joinNativeDial, joinNativeDialFd, joinStreamsNative, resolveRelay, type RelayKind } from './native-pipe.js';
import { joinStreams, type Join, type JoinResult } from './pipe.js';
import { dialOwned, dialTimeoutError, dialWithin, type Dial, type StreamListener } from './transports.js';

/**
 * Opens the target for one accepted stream; rejects when it will not (it may have answered the client first).
 * `plainDial`, set by `dialTarget`, says the open is that dial and nothing more: the forwarder then runs it
 * with its own per-connection controller and one deadline (transports.ts dialOwned) instead of a second
 * controller, timer and promise inside the open, a cost every connection paid.
 */
export interface OpenTarget {
  (client: Duplex, signal: AbortSignal): Promise<Duplex>;
  readonly plainDial?: { readonly dial: Dial; readonly timeoutMs: number };
}

/** The plain bridge's open: one dial per client, bounded by `timeoutMs` (BRIDGE_DIAL_TIMEOUT, BRIDGE_DIAL_FAILED). */
export function dialTarget(dial: Dial, timeoutMs: number): OpenTarget {
  const open = (_client: Duplex, signal: AbortSignal): Promise<Duplex> => dialWithin(dial, timeoutMs, signal);
  return Object.assign(open, { plainDial: { dial, timeoutMs } });
}

/** How long a client that was answered and refused may take to close its side before it is destroyed. */
export const LINGER_MS = 1_000;

/** Repeated warnings of one kind (refusals at the cap, failed dials) are logged at most this often. */
export const WARN_INTERVAL_MS = 10_000;

export interface ForwarderOptions {
  /** For logs: 'ingress', 'egress', ... */
  readonly name: string;
  readonly listener: StreamListener;
  readonly open: OpenTarget;
  readonly maxConnections: number;
  readonly idleTimeoutMs: number;
  /** Deadline for `open` (dial, CONNECT exchange). */
  readonly openTimeoutMs: number;
  readonly logger: Logger;
  /** The relay for joined connections (native-pipe.ts's resolveRelay: native where the addon loads). */
  readonly relay?: RelayKind;
  /** Native relay only: splice(2) through pipes instead of read/write (vsock/native/relay.c). */
  readonly relaySplice?: boolean;
}

export interface ForwarderStats {
  /** Connections being opened or joined now. */
  readonly active: number;
  /** Connections accepted, refusals included. */
  readonly accepted: number;
  /** Closed at once because `maxConnections` were open, or because the forwarder was closing. */
  readonly refused: number;
  /** `open` failed or timed out. */
  readonly openFailures: number;
  /** Joins that ended (cleanly or not). */
  readonly completed: number;
  readonly idleTimeouts: number;
  readonly acceptErrors: number;
  /** Bytes from accepted clients to targets, over finished connections. */
  readonly bytesIn: number;
  /** Bytes from targets to accepted clients, over finished connections. */
  readonly bytesOut: number;
}

export interface Forwarder {
  readonly name: string;
  readonly description: StreamListener['description'];
  stats(): ForwarderStats;
  /** Stops accepting, waits up to `graceMs` (default 0) for open connections, destroys the rest. */
  close(options?: { graceMs?: number }): Promise<ForwarderStats>;
}

type Counters = { -readonly [K in keyof ForwarderStats]: ForwarderStats[K] };

function assertLimit(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new BridgeError('BRIDGE_CONFIG_INVALID', `"${name}" expected an integer >= ${min}, got ${String(value)}`);
}

/** The 'error' listener of streams whose errors surface elsewhere: one function, not a closure per connection. */
const ignoreError = (): void => {};

/** Resolves on 'close', whether or not an error came first. */
function closed(stream: Duplex): Promise<void> {
  return new Promise((resolve) => (stream.closed ? resolve() : stream.once('close', () => resolve())));
}

export function startForwarder(options: ForwarderOptions): Forwarder {
  const { name, listener, open, maxConnections, idleTimeoutMs, openTimeoutMs } = options;
  assertLimit('maxConnections', maxConnections, 1);
  assertLimit('idleTimeoutMs', idleTimeoutMs, 0);
  assertLimit('openTimeoutMs', openTimeoutMs, 1);
  const relay = resolveRelay(options.relay);
  const relaySplice = options.relaySplice ?? false;
  const logger = options.logger.child({ bridge: name, ...listener.description });
  const counters: Counters = { active: 0, accepted: 0, refused: 0, openFailures: 0, completed: 0, idleTimeouts: 0, acceptErrors: 0, bytesIn: 0, bytesOut: 0 };
  const setups = new Set<AbortController>();
  const joins = new Set<Join>();
  const idleWaiters = new Set<() => void>();
  let closing = false;
  let closedStats: Promise<ForwarderStats> | undefined;

  const lastWarnMs = new Map<string, number>();
  const suppressed = new Map<string, number>();
  /** A warning at most once per WARN_INTERVAL_MS per kind, carrying how many were held back. */
  const warn = (kind: string, data: Record<string, unknown>, message: string): void => {
    const now = performance.now();
    const last = lastWarnMs.get(kind);
    if (last !== undefined && now - last < WARN_INTERVAL_MS) {
      suppressed.set(kind, (suppressed.get(kind) ?? 0) + 1);
      return;
    }
    lastWarnMs.set(kind, now);
    logger.warn({ ...data, suppressed: suppressed.get(kind) ?? 0 }, message);
    suppressed.set(kind, 0);
  };

  const release = (): void => {
    counters.active -= 1;
    if (counters.active === 0) for (const wake of idleWaiters) wake();
  };

  const setupTimeoutError = (): Error => new BridgeError('BRIDGE_SETUP_TIMEOUT', `not connected within ${openTimeoutMs} ms`);
  // A plain dial runs under the setup controller with the earlier of the two deadlines, and its code.
  const plainDial = open.plainDial;
  const plainDialMs = plainDial === undefined ? 0 : Math.min(plainDial.timeoutMs, openTimeoutMs);
  const plainTimeoutError = plainDial !== undefined && plainDial.timeoutMs <= openTimeoutMs ? undefined : setupTimeoutError;

  /** A plain dial the native relay can make itself: dial and join in C (native-pipe.ts joinNativeDial). */
  const nativeTarget = relay === 'native' ? plainDial?.dial.nativeTarget : undefined;
  const nativeTimeoutError = plainTimeoutError ?? (() => dialTimeoutError(plainDialMs));
  const nativeDialOptions = { idleTimeoutMs, splice: relaySplice, connectTimeoutMs: plainDialMs, timeoutError: nativeTimeoutError };
  const nativeDialEnded = (result: JoinResult): void => {
    if (result.end === 'dial-failed') openFailed(result.error);
    else recordJoin(result);
  };
  const handleNativeDial = async (client: Duplex, target: DialTarget): Promise<void> => {
    const join = joinNativeDial(client, target, nativeDialOptions);
    joins.add(join);
    const result = await join.done;
    joins.delete(join);
    nativeDialEnded(result);
  };
  /** An accepted fd (a listener with `handsOverFds`): counted, joined and released with no promise in between. */
  const handleFd = (fd: number, target: DialTarget): void => {
    // The join may end before joinNativeDialFd returns (a dial refused at once): then it is never added.
    let join: Join | undefined;
    let ended = false;
    try {
      join = joinNativeDialFd(fd, target, nativeDialOptions, (result) => {
        ended = true;
        if (join !== undefined) joins.delete(join);
        nativeDialEnded(result);
        release();
      });
    } catch (error) {
      // Not expected (joinNativeDialFd turns every failure into its result); the count must not leak.
      logger.error({ err: error }, 'bridge connection handler failed');
      if (!ended) release();
      return;
    }
    if (!ended) joins.add(join);
  };
  if (listener.handsOverFds === true && nativeTarget === undefined) {
    void listener.close();
    throw new BridgeError('BRIDGE_CONFIG_INVALID', 'a listener that hands over fds needs the native relay and a plain dial it can make itself (tcpDialer to an IPv4 address, vsockDialer)');
  }

  const openFailed = (error: unknown): void => {
    counters.openFailures += 1;
    warn('open', { code: errorCode(error), causeCode: errorCode((error as { cause?: unknown } | undefined)?.cause) }, 'bridge connection not opened');
  };

  const recordJoin = (result: JoinResult): void => {
    counters.completed += 1;
    counters.bytesIn += result.bytesAToB;
    counters.bytesOut += result.bytesBToA;
    if (result.end === 'idle-timeout') counters.idleTimeouts += 1;
    // Checked first: the record object would be built for every connection even with debug off.
    if (logger.isLevelEnabled('debug')) logger.debug({ end: result.end, code: result.error === undefined ? undefined : errorCode(result.error), bytesIn: result.bytesAToB, bytesOut: result.bytesBToA }, 'bridge connection closed');
  };

  const handle = async (client: Duplex): Promise<void> => {
    if (nativeTarget !== undefined) return handleNativeDial(client, nativeTarget);
    const controller = new AbortController();
    setups.add(controller);
    const timer = plainDial === undefined ? setTimeout(() => controller.abort(setupTimeoutError()), openTimeoutMs) : undefined;
    const onClientClose = (): void => controller.abort(new BridgeError('BRIDGE_PEER_CLOSED', 'the client closed during setup'));
    client.once('close', onClientClose);
    let target: Duplex;
    try {
      target = await (plainDial === undefined ? open(client, controller.signal) : dialOwned(plainDial.dial, plainDialMs, controller, undefined, plainTimeoutError));
    } catch (error) {
      openFailed(error);
      if (client.writableEnded) {
        // The handler answered (a CONNECT status) and ended its side: read and drop whatever the client
        // still sends, so closing with unread bytes does not turn into a reset that loses the answer.
        client.resume();
        const linger = setTimeout(() => client.destroy(), LINGER_MS);
        await closed(client);
        clearTimeout(linger);
      } else {
        client.destroy();
        await closed(client);
      }
      return;
    } finally {
      clearTimeout(timer);
      client.off('close', onClientClose);
      setups.delete(controller);
    }
    target.on('error', ignoreError); // the join reports errors; this covers the gap until it listens
    const join = relay === 'native' ? joinStreamsNative(client, target, { idleTimeoutMs, splice: relaySplice }) : joinStreams(client, target, { idleTimeoutMs });
    joins.add(join);
    const result = await join.done;
    joins.delete(join);
    recordJoin(result);
  };

  /** Counts an accepted connection; false (and counted as refused) at the cap or while closing. */
  const admit = (): boolean => {
    counters.accepted += 1;
    if (closing || counters.active >= maxConnections) {
      counters.refused += 1;
      if (!closing) warn('cap', { maxConnections, refused: counters.refused }, 'bridge connection refused at the cap');
      return false;
    }
    counters.active += 1;
    return true;
  };
  listener.events.on('connection', (client: Duplex) => {
    client.on('error', ignoreError); // errors surface through open() or the join; never as an uncaught 'error'
    if (!admit()) {
      client.destroy();
      return;
    }
    handle(client).then(release, (error: unknown) => {
      logger.error({ err: error }, 'bridge connection handler failed');
      client.destroy();
      release();
    });
  });
  // A listener with `handsOverFds`: the raw fd goes to the relay's dial (which owns it from then on), or is closed.
  listener.events.on('fd', (fd: number) => {
    if (!admit()) {
      closeFd(fd);
      return;
    }
    handleFd(fd, nativeTarget!);
  });
  listener.events.on('error', (error: Error) => {
    counters.acceptErrors += 1;
    warn('accept', { code: errorCode(error) }, 'bridge accept failed');
  });
  logger.info({ maxConnections, idleTimeoutMs, relay }, 'bridge listening');

  const stats = (): ForwarderStats => ({ ...counters });

  const close = async (graceMs: number): Promise<ForwarderStats> => {
    closing = true;
    await listener.close();
    if (counters.active > 0 && graceMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, graceMs);
        function done(): void {
          clearTimeout(timer);
          idleWaiters.delete(done);
          resolve();
        }
        idleWaiters.add(done);
      });
    }
    if (counters.active > 0) {
      const reason = new BridgeError('BRIDGE_CLOSED', 'the bridge is closing');
      for (const controller of setups) controller.abort(reason);
      for (const join of joins) join.destroy(reason);
      await new Promise<void>((resolve) => {
        if (counters.active === 0) resolve();
        else idleWaiters.add(resolve);
      });
    }
    logger.info(stats(), 'bridge closed');
    return stats();
  };

  return {
    name,
    description: listener.description,
    stats,
    close(closeOptions = {}) {
      closedStats ??= close(closeOptions.graceMs ?? 0);
      return closedStats;
    },
  };
}
