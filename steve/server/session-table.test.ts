/**
 * session-table.ts on an injected clock: the §7 lifetimes (pending 30 s, confirmed 30 minutes from
 * creation), the bound with its reservations, purging and idle eviction under pressure (least recently
 * used confirmed sessions idle for a minute, never pending or busy ones), and keys wiped only once the
 * last in-flight request let go.
 */

import { describe, expect, it } from 'vitest';
import { code } from '../../test/steve-codes.js';
import type { SessionKeys } from '../protocol/index.js';
import { IDLE_EVICTION_MS, PENDING_TTL_SECONDS, SESSION_LIFETIME_MS, createSessionTable } from './session-table.js';

function keys(): SessionKeys {
  return { c2sKey: new Uint8Array(32).fill(1), s2cKey: new Uint8Array(32).fill(2), c2sIv: new Uint8Array(4).fill(3), s2cIv: new Uint8Array(4).fill(4), binder: new Uint8Array(32) };
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
    session.confirmed = confirmed;
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
    add(1);
    expect(table.reserve()).toBe(true);
    expect(table.reserve()).toBe(false);
    table.unreserve();
    expect(table.reserve()).toBe(true);
    expect(table.reserved).toBe(1);
    expect(code(() => table.insert({ id: id(1), suite: 'X25519', keys: keys(), transcriptHash: new Uint8Array(32) }))).toBe('STEVE_BAD_ARGUMENT');
  });

  it('when full: purges expired sessions, then evicts the least recently used idle confirmed one', () => {
    const { clock, table, add } = setup(3);
    const a = add(1);
    const b = add(2);
    const c = add(3);
    clock.t += IDLE_EVICTION_MS - 1;
    table.touch(a);
    // Nobody idle long enough yet.
    expect(table.reserve()).toBe(false);
    clock.t += 2;
    // b and c are idle for a minute; b was used least recently.
    expect(table.reserve()).toBe(true);
    expect(b.closed).toBe(true);
    expect(c.closed).toBe(false);
    expect(table.get(id(2))).toBeUndefined();
    expect(table.get(id(1))).toBe(a);
  });

  it('never evicts pending sessions or sessions with requests in flight', () => {
    const { clock, table, add } = setup(2);
    const busy = add(1);
    table.retain(busy);
    clock.t += IDLE_EVICTION_MS * 2;
    const pending = add(2, false);
    expect(table.reserve()).toBe(false);
    expect(busy.closed || pending.closed).toBe(false);
    // Once its request is done, the idle confirmed session may go; the pending one stays.
    table.release(busy);
    expect(table.reserve()).toBe(true);
    expect(busy.closed).toBe(true);
    expect(table.get(id(2))).toBe(pending);
  });

  it('keeps keys of a dropped session until its last in-flight request is released', () => {
    const { table, add } = setup();
    const session = add(1);
    table.retain(session);
    table.retain(session);
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
  });
});
