/**
 * The server's sessions (specs/steve.md §7): a bounded table keyed by session id. A pending session
 * waits at most 30 s for its confirmation; a confirmed one lives 30 minutes from creation; both are
 * then gone (401 session_invalid).
 *
 * Nobody can hold the table (ours, against a client that opens sessions only to fill it):
 * - Pending sessions have a cap of their own, well below the table's: when it is reached, the oldest
 *   pending session is evicted. A legitimate client confirms within a round trip, so only a flood's
 *   sessions grow old there.
 * - When the table is full, a new session evicts the least recently used confirmed session with no
 *   request in flight (its client re-establishes: a 401 ends a session for every v2 client, §6), else the
 *   oldest pending one. So a new session is refused (429 busy) only when every slot has a request at the
 *   app, which costs the app, not the table.
 * - A confirmed session counts as used (moves to the recent end) only when one of its requests decodes and
 *   goes to the app (`touch`), not when a record merely decrypts: records that carry junk keep a session
 *   old. Confirmation itself counts as a use.
 * - Each session may have a bounded number of requests in flight (§5: a client keeps at most 64).
 *
 * Each session holds its directional keys, its transcript hash, its 64-wide replay window (the
 * protocol's) and a count of requests in flight. Keys are wiped when a session leaves the table, but
 * only after its last in-flight request has sealed its answer, so an eviction or expiry during an
 * upstream call never seals with a zeroed key. Time comes from the injected `now()`; lookups check
 * expiry themselves, and a periodic sweep (in server.ts) only reclaims memory.
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
 * Ours: pending sessions held at once by default. Each costs the server one attestation, so a flood is
 * bounded by the NSM's rate (a few hundred documents a second): at that rate a legitimate pending session
 * still has seconds to confirm before it is the oldest, where it needs one round trip.
 */
export const DEFAULT_MAX_PENDING_SESSIONS = 1000;
/** §5: "a client keeps at most 64 outstanding"; more in flight on one session is refused 429 busy. */
export const MAX_IN_FLIGHT_PER_SESSION = 64;
/** Ours: a full purge of expired sessions runs at most this often when the table is full (each is O(n)). */
const PURGE_INTERVAL_MS = 1000;

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
  /** Default min(DEFAULT_MAX_PENDING_SESSIONS, maxSessions); never more than maxSessions. */
  maxPendingSessions?: number;
  now: () => number;
}

export interface SessionTable {
  /**
   * Holds a slot for a session being created (it counts as pending), evicting as described above; false
   * when every slot is a session with requests in flight or a session still being created.
   */
  reserve(): boolean;
  /** Gives back a slot whose creation failed. */
  unreserve(): void;
  /** Fills a reserved slot with a pending session. */
  insert(fields: { id: Uint8Array; suite: Suite; keys: SessionKeys; transcriptHash: Uint8Array }): Session;
  /** A pending session is confirmed: it moves to the confirmed sessions, as just used. */
  confirm(session: Session): void;
  /** The live session with this id, or undefined (unknown, or expired now and dropped). */
  get(id: Uint8Array): Session | undefined;
  has(id: Uint8Array): boolean;
  /** Marks a confirmed session used now: a request of it decoded and goes to the app. */
  touch(session: Session): void;
  /**
   * Counts a request in flight; false (nothing counted) when the session already has
   * MAX_IN_FLIGHT_PER_SESSION. `release` when its answer is sealed.
   */
  retain(session: Session): boolean;
  release(session: Session): void;
  drop(session: Session): void;
  /** Drops every expired session. */
  purgeExpired(): number;
  /** Drops everything (shutdown). */
  clear(): void;
  /** Sessions in the table, pending and confirmed. */
  readonly size: number;
  readonly pending: number;
  readonly reserved: number;
  /** Sessions evicted to make room since the table was made (metrics). */
  readonly evicted: number;
}

function idKey(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');
}

export function expiresAt(session: Pick<Session, 'createdAt' | 'confirmed'>): number {
  return session.createdAt + (session.confirmed ? SESSION_LIFETIME_MS : PENDING_TTL_SECONDS * 1000);
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new SteveError('STEVE_BAD_ARGUMENT', `"${name}" expected a positive integer`);
  return value;
}

export function createSessionTable(options: SessionTableOptions): SessionTable {
  const { now } = options;
  const maxSessions = positive(options.maxSessions, 'maxSessions');
  const maxPending = Math.min(positive(options.maxPendingSessions ?? DEFAULT_MAX_PENDING_SESSIONS, 'maxPendingSessions'), maxSessions);
  // Two maps, each oldest first: pending by creation, confirmed by last use (touch moves an entry to the end).
  const pending = new Map<string, Session>();
  const confirmed = new Map<string, Session>();
  let reserved = 0;
  let evicted = 0;
  let lastPurgeAt = Number.NEGATIVE_INFINITY;

  const wipeIfIdle = (session: Session): void => {
    if (session.closed && session.inFlight === 0) wipeSessionKeys(session.keys);
  };
  const drop = (session: Session): void => {
    const map = session.confirmed ? confirmed : pending;
    if (map.get(session.key) === session) map.delete(session.key);
    session.closed = true;
    wipeIfIdle(session);
  };
  const purgeExpired = (): number => {
    const at = now();
    let purged = 0;
    for (const map of [pending, confirmed]) {
      for (const session of map.values()) {
        if (at >= expiresAt(session)) {
          drop(session);
          purged += 1;
        }
      }
    }
    return purged;
  };
  /** Drops the oldest pending session; false when there is none. */
  const evictPending = (): boolean => {
    for (const session of pending.values()) {
      drop(session);
      evicted += 1;
      return true;
    }
    return false;
  };
  /** Drops the least recently used confirmed session with nothing in flight; false when there is none. */
  const evictConfirmed = (): boolean => {
    for (const session of confirmed.values()) {
      if (session.inFlight > 0) continue;
      drop(session);
      evicted += 1;
      return true;
    }
    return false;
  };
  const used = (): number => pending.size + confirmed.size + reserved;

  return {
    reserve() {
      if (used() >= maxSessions && now() - lastPurgeAt >= PURGE_INTERVAL_MS) {
        lastPurgeAt = now();
        purgeExpired();
      }
      if (pending.size + reserved >= maxPending && !evictPending()) return false;
      if (used() >= maxSessions && !evictConfirmed() && !evictPending()) return false;
      reserved += 1;
      return true;
    },
    unreserve() {
      if (reserved > 0) reserved -= 1;
    },
    insert(fields) {
      const key = idKey(fields.id);
      if (pending.has(key) || confirmed.has(key)) throw new SteveError('STEVE_BAD_ARGUMENT', 'session id already in use');
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
      pending.set(key, session);
      return session;
    },
    confirm(session) {
      if (session.confirmed || session.closed || pending.get(session.key) !== session) return;
      pending.delete(session.key);
      session.confirmed = true;
      session.lastUsedAt = now();
      confirmed.set(session.key, session);
    },
    get(id) {
      const key = idKey(id);
      const session = confirmed.get(key) ?? pending.get(key);
      if (session === undefined) return undefined;
      if (now() >= expiresAt(session)) {
        drop(session);
        return undefined;
      }
      return session;
    },
    has(id) {
      const key = idKey(id);
      return pending.has(key) || confirmed.has(key);
    },
    touch(session) {
      session.lastUsedAt = now();
      if (session.confirmed && confirmed.get(session.key) === session) {
        confirmed.delete(session.key);
        confirmed.set(session.key, session);
      }
    },
    retain(session) {
      if (session.inFlight >= MAX_IN_FLIGHT_PER_SESSION) return false;
      session.inFlight += 1;
      return true;
    },
    release(session) {
      session.inFlight -= 1;
      wipeIfIdle(session);
    },
    drop,
    purgeExpired,
    clear() {
      for (const map of [pending, confirmed]) for (const session of map.values()) drop(session);
    },
    get size() {
      return pending.size + confirmed.size;
    },
    get pending() {
      return pending.size;
    },
    get reserved() {
      return reserved;
    },
    get evicted() {
      return evicted;
    },
  };
}
