/**
 * The app-state messages between init and the agent: a snapshot round-trips through JSON (what Node's
 * IPC does), and the agent's parser takes only well-formed messages, rebuilt from known fields; random
 * values are ignored (null) or give a state within the bounds.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { appStateFromSnapshot, appStateMessage, isAppStateRequest, parseAppStateMessage, type AppState } from './app-state.js';

const RUNNING: AppState = { state: 'running', pid: 4242, restarts: 3, lastExit: { code: null, signal: 'SIGKILL', uptimeMs: 1500 } };

describe('app-state messages', () => {
  it('a snapshot goes through JSON and back unchanged', () => {
    const state = appStateFromSnapshot({ name: 'app', state: 'backoff', pid: null, restarts: 2, lastExit: { code: 1, signal: null, uptimeMs: 12, error: 'ENOENT' }, backoffMs: 400 });
    expect(state).toEqual({ state: 'backoff', pid: null, restarts: 2, lastExit: { code: 1, signal: null, uptimeMs: 12 } });
    expect(parseAppStateMessage(JSON.parse(JSON.stringify(appStateMessage(state))))).toEqual(state);
    expect(parseAppStateMessage(appStateMessage(RUNNING))).toEqual(RUNNING);
  });

  it('keeps known fields only', () => {
    const parsed = parseAppStateMessage({ type: 'app-state', app: { ...RUNNING, secret: 'x'.repeat(10_000), lastExit: { ...RUNNING.lastExit, extra: 1 } }, more: 1 });
    expect(parsed).toEqual(RUNNING);
  });

  it.each([
    ['another type', { type: 'other', app: RUNNING }],
    ['no app', { type: 'app-state' }],
    ['an unknown state', { type: 'app-state', app: { ...RUNNING, state: 'zombie' } }],
    ['a negative restart count', { type: 'app-state', app: { ...RUNNING, restarts: -1 } }],
    ['a fractional pid', { type: 'app-state', app: { ...RUNNING, pid: 1.5 } }],
    ['a missing lastExit', { type: 'app-state', app: { state: 'running', pid: 1, restarts: 0 } }],
    ['a bad signal name', { type: 'app-state', app: { ...RUNNING, lastExit: { code: null, signal: 'rm -rf', uptimeMs: 1 } } }],
    ['a long signal name', { type: 'app-state', app: { ...RUNNING, lastExit: { code: null, signal: `SIG${'X'.repeat(20)}`, uptimeMs: 1 } } }],
    ['a string code', { type: 'app-state', app: { ...RUNNING, lastExit: { code: '1', signal: null, uptimeMs: 1 } } }],
    ['an array', [RUNNING]],
    ['null', null],
  ])('ignores %s', (_, message) => {
    expect(parseAppStateMessage(message)).toBeNull();
  });

  it('random values: null or a bounded state', () => {
    const app = fc.record({
      state: fc.oneof(fc.constantFrom('starting', 'running', 'backoff', 'stopping', 'stopped', 'failed'), fc.string()),
      pid: fc.oneof(fc.constant(null), fc.integer(), fc.double()),
      restarts: fc.oneof(fc.nat(), fc.integer(), fc.string()),
      lastExit: fc.oneof(fc.constant(null), fc.record({ code: fc.oneof(fc.constant(null), fc.integer()), signal: fc.oneof(fc.constant(null), fc.constantFrom('SIGTERM', 'SIGKILL'), fc.string()), uptimeMs: fc.oneof(fc.nat(), fc.double()) }), fc.anything()),
    });
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.record({ type: fc.constant('app-state'), app })), (message) => {
        const parsed = parseAppStateMessage(message);
        if (parsed === null) return;
        expect(Object.keys(parsed).sort()).toEqual(['lastExit', 'pid', 'restarts', 'state']);
        expect(JSON.stringify(parsed).length).toBeLessThan(200);
      }),
      { seed: 5, numRuns: 3000 },
    );
  });

  it('recognises the request', () => {
    expect(isAppStateRequest({ type: 'app-state-request' })).toBe(true);
    expect(isAppStateRequest({ type: 'app-state' })).toBe(false);
    expect(isAppStateRequest('app-state-request')).toBe(false);
  });
});
