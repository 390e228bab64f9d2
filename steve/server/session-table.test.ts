/**
 * session-table.ts on an injected clock: the §7 lifetimes (pending 30 s, confirmed 30 minutes from
 * creation), the bound with its reservations, purging and eviction under pressure (the least recently
 * used confirmed session with nothing in flight, else the oldest pending one; pending sessions under a cap
 * of their own), the per-session in-flight cap, and keys wiped only once the last in-flight request let go.
 */

import { describe, expect, it } from 'vitest';
import { code } from '../../test/steve-codes.js';
import type { SessionKeys } from '../protocol/index.js';
import { MAX_IN_FLIGHT_PER_SESSION, PENDING_TTL_SECONDS, SESSION_LIFETIME_MS, createSessionTable } from './session-table.js';

function keys(): SessionKeys {
  return { c2sKey: new Uint8Array(32).fill(1), s2cKey: new Uint8Array(32).fill(2), c2sIv: new Uint8Array(4).fill(3), s2cIv: new Uint8Array(4).fill(4), binder: new Uint8Array(32), streamC2sKey: new Uint8Array(32).fill(5), streamS2cKey: new Uint8Array(32).fill(6) };
}

function id(n: number): Uint8Array {
  const out = new Uint8Array(16);
  new DataView(out.buffer).setUint32(12, n);
  return out;
}

function setup(maxSessions = 4) {
  const clock = { t: 1_000_000 };
  const table = createSessionTable({ maxSessions, now: () => clock.t });
  const add = (n: number, confirmed = true) => {
    expect(table.reserve()).toBe(true);
    const session = table.insert({ id: id(n), suite: 'X25519', keys: keys(), transcriptHash: new Uint8Array(32) });
    if (confirmed) table.confirm(session);
    return session;
  };
  return { clock, table, add };
}

describe('session table', () => {
  it('a pending session lives 30 s, a confirmed one 30 minutes from creation', () => {
    const { clock, table, add } = setup();
    const pending = add(1, false);
    const confirmed = add(2, true);
    clock.t += PENDING_TTL_SECONDS * 1000 - 1;
    expect(table.get(id(1))).toBe(pending);
    clock.t += 1;
    expect(table.get(id(1))).toBeUndefined();
    expect(pending.closed).toBe(true);
    expect(pending.keys.c2sKey.every((b) => b === 0)).toBe(true);
    // Use does not extend the lifetime.
    table.touch(confirmed);
    clock.t = 1_000_000 + SESSION_LIFETIME_MS - 1;
    expect(table.get(id(2))).toBe(confirmed);
    clock.t += 1;
    expect(table.get(id(2))).toBeUndefined();
    expect(table.size).toBe(0);
  });

  it('is bounded, counting reservations; a failed creation gives its slot back', () => {
    const { table, add } = setup(2);
    // A session with a request in flight cannot be evicted, nor can a session being created.
    expect(table.retain(add(1))).toBe(true);
    expect(table.reserve()).toBe(true);
    expect(table.reserve()).toBe(false);
    table.unreserve();
    expect(table.reserve()).toBe(true);
    expect(table.reserved).toBe(1);
    expect(code(() => table.insert({ id: id(1), suite: 'X25519', keys: keys(), transcriptHash: new Uint8Array(32) }))).toBe('STEVE_BAD_ARGUMENT');
  });

  it('when full: purges expired sessions, then evicts the least recently used confirmed session', () => {
    const { clock, table, add } = setup(3);
    const a = add(1);
    const b = add(2);
    const c = add(3);
    clock.t += 1;
    table.touch(a);
    // No idle minimum: b was used least recently, so it goes at once.
    expect(table.reserve()).toBe(true);
    expect(b.closed).toBe(true);
    expect(b.keys.c2sKey.every((byte) => byte === 0)).toBe(true);
    expect(c.closed).toBe(false);
    expect(table.get(id(2))).toBeUndefined();
    expect(table.get(id(1))).toBe(a);
    expect(table.evicted).toBe(1);
    // An expired session is purged before anyone live is evicted.
    table.unreserve();
    clock.t = 1_000_000 + SESSION_LIFETIME_MS;
    add(4);
    // Full with a and c expired: the purge makes room, nobody is evicted.
    add(5);
    expect(table.size).toBe(2);
    expect(a.closed && c.closed).toBe(true);
    expect(table.evicted).toBe(1);
  });

  it('never evicts sessions with requests in flight; evicts the oldest pending one when no confirmed one can go', () => {
    const { table, add } = setup(2);
    const busy = add(1);
    expect(table.retain(busy)).toBe(true);
    const pending = add(2, false);
    // Full: the confirmed session is busy, so the pending one makes room.
    expect(table.reserve()).toBe(true);
    expect(pending.closed).toBe(true);
    expect(busy.closed).toBe(false);
    // Full again (busy and the reservation): nothing can go.
    expect(table.reserve()).toBe(false);
    // Once its request is done, the confirmed session may go.
    table.release(busy);
    expect(table.reserve()).toBe(true);
    expect(busy.closed).toBe(true);
  });

  it('pending sessions have their own cap: a new one evicts the oldest pending, never a confirmed one', () => {
    const clock = { t: 0 };
    const table = createSessionTable({ maxSessions: 10, maxPendingSessions: 3, now: () => clock.t });
    const make = (n: number) => {
      expect(table.reserve()).toBe(true);
      return table.insert({ id: id(n), suite: 'X25519', keys: keys(), transcriptHash: new Uint8Array(32) });
    };
    const kept = make(100);
    table.confirm(kept);
    const flood = [1, 2, 3].map(make);
    expect(table.pending).toBe(3);
    const fresh = make(4);
    expect(flood[0]!.closed).toBe(true);
    expect(flood[1]!.closed).toBe(false);
    expect(table.pending).toBe(3);
    expect(table.get(id(100))).toBe(kept);
    // A confirmed session leaves the pending count.
    table.confirm(fresh);
    expect(table.pending).toBe(2);
    expect(fresh.confirmed).toBe(true);
    // The pending cap never exceeds the table's.
    expect(createSessionTable({ maxSessions: 2, maxPendingSessions: 5, now: () => 0 }).reserve()).toBe(true);
  });

  it('a session that only confirmed or sent junk stays old: only touch() makes it recent', () => {
    const { table, add } = setup(3);
    const legit = add(1);
    const idle = add(2);
    add(3);
    // A request of `legit` decoded and went to the app.
    table.touch(legit);
    expect(table.reserve()).toBe(true);
    expect(idle.closed).toBe(true);
    expect(legit.closed).toBe(false);
  });

  it('caps the requests in flight of one session at 64 (§5)', () => {
    const { table, add } = setup();
    const session = add(1);
    for (let i = 0; i < MAX_IN_FLIGHT_PER_SESSION; i++) expect(table.retain(session)).toBe(true);
    expect(table.retain(session)).toBe(false);
    expect(session.inFlight).toBe(MAX_IN_FLIGHT_PER_SESSION);
    table.release(session);
    expect(table.retain(session)).toBe(true);
  });

  it('keeps keys of a dropped session until its last in-flight request is released', () => {
    const { table, add } = setup();
    const session = add(1);
    expect(table.retain(session)).toBe(true);
    expect(table.retain(session)).toBe(true);
    table.drop(session);
    expect(table.get(id(1))).toBeUndefined();
    expect(session.keys.s2cKey[0]).toBe(2);
    table.release(session);
    expect(session.keys.s2cKey[0]).toBe(2);
    table.release(session);
    expect(session.keys.s2cKey.every((b) => b === 0)).toBe(true);
    expect(session.keys.s2cIv.every((b) => b === 0)).toBe(true);
  });

  it('purgeExpired and clear drop what they should', () => {
    const { clock, table, add } = setup();
    add(1, false);
    add(2, true);
    clock.t += PENDING_TTL_SECONDS * 1000;
    expect(table.purgeExpired()).toBe(1);
    expect(table.size).toBe(1);
    table.clear();
    expect(table.size).toBe(0);
  });

  it('refuses a bad capacity', () => {
    for (const maxSessions of [0, -1, 1.5, Number.NaN]) expect(code(() => createSessionTable({ maxSessions, now: () => 0 }))).toBe('STEVE_BAD_ARGUMENT');
    for (const maxPendingSessions of [0, -1, 1.5]) expect(code(() => createSessionTable({ maxSessions: 5, maxPendingSessions, now: () => 0 }))).toBe('STEVE_BAD_ARGUMENT');
  });
});
