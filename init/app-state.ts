/**
 * The app's state as init tells it to the agent over the agent's IPC channel, so `/healthz` can show it.
 * Both ends use this file: init builds the messages, the agent parses them (agent/app-state.ts).
 *
 * Messages (JSON over Node's IPC channel):
 *   init -> agent  { type: 'app-state', app: AppState }    on every change of the app, and when asked
 *   agent -> init  { type: 'app-state-request' }           once the agent listens (it may have missed some)
 *
 * The parser is strict and bounded: anything else is ignored (null), and what is kept is rebuilt from
 * known fields only, so a malformed or oversized message cannot put arbitrary data into `/healthz`. Pure.
 */

import type { ChildState, SupervisorSnapshot } from './supervisor.js';

export const APP_STATE_MESSAGE = 'app-state';
export const APP_STATE_REQUEST = 'app-state-request';
/** The environment variable init sets for the agent it spawns with an IPC channel. */
export const INIT_IPC_ENV = 'ENCLAVE_INIT_IPC';

export interface AppState {
  state: ChildState;
  pid: number | null;
  restarts: number;
  lastExit: { code: number | null; signal: string | null; uptimeMs: number } | null;
}

const STATES: readonly ChildState[] = ['starting', 'running', 'backoff', 'stopping', 'stopped', 'failed'];
/** Longest signal name (`SIGVTALRM`, `SIGSTKFLT`: 9 characters); 16 leaves room. */
const SIGNAL_MAX_CHARS = 16;
const MAX_COUNT = 2 ** 31 - 1;
const MAX_UPTIME_MS = Number.MAX_SAFE_INTEGER;

export function appStateFromSnapshot(snapshot: SupervisorSnapshot): AppState {
  const exit = snapshot.lastExit;
  return {
    state: snapshot.state,
    pid: snapshot.pid,
    restarts: snapshot.restarts,
    lastExit: exit === null ? null : { code: exit.code, signal: exit.signal, uptimeMs: exit.uptimeMs },
  };
}

export function appStateMessage(state: AppState): { type: typeof APP_STATE_MESSAGE; app: AppState } {
  return { type: APP_STATE_MESSAGE, app: state };
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isInt = (value: unknown, min: number, max: number): value is number => typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;

/** The app state an `app-state` message carries, or null for anything else. */
export function parseAppStateMessage(message: unknown): AppState | null {
  if (!isRecord(message) || message.type !== APP_STATE_MESSAGE || !isRecord(message.app)) return null;
  const { state, pid, restarts, lastExit } = message.app;
  if (typeof state !== 'string' || !(STATES as readonly string[]).includes(state)) return null;
  if (pid !== null && !isInt(pid, 1, MAX_COUNT)) return null;
  if (!isInt(restarts, 0, MAX_COUNT)) return null;
  let exit: AppState['lastExit'] = null;
  if (lastExit !== null) {
    if (!isRecord(lastExit)) return null;
    const { code, signal, uptimeMs } = lastExit;
    if (code !== null && !isInt(code, -MAX_COUNT, MAX_COUNT)) return null;
    if (signal !== null && (typeof signal !== 'string' || !/^SIG[A-Z0-9]+$/.test(signal) || signal.length > SIGNAL_MAX_CHARS)) return null;
    if (!isInt(uptimeMs, 0, MAX_UPTIME_MS)) return null;
    exit = { code, signal, uptimeMs };
  }
  return { state: state as ChildState, pid, restarts, lastExit: exit };
}

export function isAppStateRequest(message: unknown): boolean {
  return isRecord(message) && message.type === APP_STATE_REQUEST;
}
