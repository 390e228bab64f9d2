/**
 * The server's sessions (specs/steve.md §7): a bounded table keyed by session id. A pending session
 * waits at most 30 s for its confirmation; a confirmed one lives 30 minutes from creation; both are
 * then gone (401 session_invalid). When the table is full, expired sessions are purged and confirmed
 * sessions idle for a minute are evicted, least recently used first; if there is still no room, the new
 * session is refused (429 busy).
 *
 * Each session holds its directional keys, its transcript hash, its 64-wide replay window (the
 * protocol's) and a count of requests in flight. Keys are wiped when a session leaves the table, but
 * only after its last in-flight request has sealed its answer, so an expiry during an upstream call
 * never seals with a zeroed key. Time comes from the injected `now()`; lookups check expiry themselves,
 * and a periodic sweep (in server.ts) only reclaims memory.
 */

import { createReplayWindow, wipeSessionKeys, type ReplayWindow, type SessionKeys, type Suite } from '../protocol/index.js';
import { SteveError } from '../errors.js';

/** §7: `expires_in_seconds` = 30; unconfirmed sessions are dropped after it. */
export const PENDING_TTL_SECONDS = 30;
/** §7: a confirmed session lives 30 minutes from creation (the browser client rotates at 25, §5). */
export const SESSION_LIFETIME_MS = 30 * 60 * 1000;
/** §7 default capacity. */
export const DEFAULT_MAX_SESSIONS = 10_000;
/**
 * Ours: under pressure, a confirmed session unused for this long may be evicted. Re-establishing costs
 * the client one attestation round trip; refusing a new client costs it the service.
 */
export const IDLE_EVICTION_MS = 60_000;
/** Ours: a full purge of expired sessions runs at most this often when the table is full (each is O(n)). */
const PURGE_INTERVAL_MS = 1000;
/** Ours: how many least-recently-used entries one eviction attempt looks at (pending ones are skipped). */
const EVICTION_SCAN_LIMIT = 64;

export interface Session {
  readonly id: Uint8Array;
  /** The table's key for `id` (hex), computed once. */
  readonly key: string;
  readonly suite: Suite;
  readonly keys: SessionKeys;
  readonly transcriptHash: Uint8Array;
  readonly createdAt: number;
  readonly replay: ReplayWindow;
  confirmed: boolean;
  lastUsedAt: number;
  inFlight: number;
  closed: boolean;
}

export interface SessionTableOptions {
  maxSessions: number;
  now: () => number;
}

export interface SessionTable {
  /** Holds a slot for a session being created; false when the table is full even after purging and eviction. */
  reserve(): boolean;
  /** Gives back a slot whose creation failed. */
  unreserve(): void;
  /** Fills a reserved slot. */
  insert(fields: { id: Uint8Array; suite: Suite; keys: SessionKeys; transcriptHash: Uint8Array }): Session;
  /** The live session with this id, or undefined (unknown, or expired now and dropped). */
  get(id: Uint8Array): Session | undefined;
  has(id: Uint8Array): boolean;
  /** Marks a session used now (least-recently-used order). */
  touch(session: Session): void;
  /** Counts a request in flight; `release` when its answer is sealed. */
  retain(session: Session): void;
  release(session: Session): void;
  drop(session: Session): void;
  /** Drops every expired session. */
  purgeExpired(): number;
  /** Drops everything (shutdown). */
  clear(): void;
  readonly size: number;
  readonly reserved: number;
}

function idKey(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');
}

export function expiresAt(session: Pick<Session, 'createdAt' | 'confirmed'>): number {
  return session.createdAt + (session.confirmed ? SESSION_LIFETIME_MS : PENDING_TTL_SECONDS * 1000);
}

export function createSessionTable(options: SessionTableOptions): SessionTable {
  const { maxSessions, now } = options;
  if (!Number.isSafeInteger(maxSessions) || maxSessions < 1) throw new SteveError('STEVE_BAD_ARGUMENT', '"maxSessions" expected a positive integer');
  // Map order is least recently used first: touch() moves an entry to the end.
  const sessions = new Map<string, Session>();
  let reserved = 0;
  let lastPurgeAt = Number.NEGATIVE_INFINITY;

  const wipeIfIdle = (session: Session): void => {
    if (session.closed && session.inFlight === 0) wipeSessionKeys(session.keys);
  };
  const drop = (session: Session): void => {
    if (sessions.get(session.key) === session) sessions.delete(session.key);
    session.closed = true;
    wipeIfIdle(session);
  };
  const purgeExpired = (): number => {
    const at = now();
    let purged = 0;
    for (const session of sessions.values()) {
      if (at >= expiresAt(session)) {
        drop(session);
        purged += 1;
      }
    }
    return purged;
  };
  const evictIdle = (): boolean => {
    const at = now();
    let looked = 0;
    for (const session of sessions.values()) {
      if (looked++ >= EVICTION_SCAN_LIMIT) break;
      if (at >= expiresAt(session)) {
        drop(session);
        return true;
      }
      if (!session.confirmed || session.inFlight > 0) continue;
      // Least recently used first: once one is recent, all after it are too.
      if (at - session.lastUsedAt < IDLE_EVICTION_MS) break;
      drop(session);
      return true;
    }
    return false;
  };
  const hasRoom = (): boolean => sessions.size + reserved < maxSessions;

  return {
    reserve() {
      if (!hasRoom()) {
        if (now() - lastPurgeAt >= PURGE_INTERVAL_MS) {
          lastPurgeAt = now();
          purgeExpired();
        }
        if (!hasRoom()) evictIdle();
        if (!hasRoom()) return false;
      }
      reserved += 1;
      return true;
    },
    unreserve() {
      if (reserved > 0) reserved -= 1;
    },
    insert(fields) {
      const key = idKey(fields.id);
      if (sessions.has(key)) throw new SteveError('STEVE_BAD_ARGUMENT', 'session id already in use');
      if (reserved > 0) reserved -= 1;
      const at = now();
      const session: Session = {
        id: fields.id,
        key,
        suite: fields.suite,
        keys: fields.keys,
        transcriptHash: fields.transcriptHash,
        createdAt: at,
        replay: createReplayWindow(),
        confirmed: false,
        lastUsedAt: at,
        inFlight: 0,
        closed: false,
      };
      sessions.set(key, session);
      return session;
    },
    get(id) {
      const session = sessions.get(idKey(id));
      if (session === undefined) return undefined;
      if (now() >= expiresAt(session)) {
        drop(session);
        return undefined;
      }
      return session;
    },
    has(id) {
      return sessions.has(idKey(id));
    },
    touch(session) {
      session.lastUsedAt = now();
      if (sessions.get(session.key) === session) {
        sessions.delete(session.key);
        sessions.set(session.key, session);
      }
    },
    retain(session) {
      session.inFlight += 1;
    },
    release(session) {
      session.inFlight -= 1;
      wipeIfIdle(session);
    },
    drop,
    purgeExpired,
    clear() {
      for (const session of sessions.values()) drop(session);
    },
    get size() {
      return sessions.size;
    },
    get reserved() {
      return reserved;
    },
  };
}
