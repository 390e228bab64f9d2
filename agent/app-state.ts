/**
 * The app's state as the agent knows it, for `/healthz`: when init (init/main.ts) runs the agent, it
 * opens an IPC channel and sets ENCLAVE_INIT_IPC=1; this holder then listens for init's `app-state`
 * messages (init/app-state.ts), asks once for the current state (it may have started after the last
 * change), and keeps the last valid one. Anything malformed is ignored; what is kept is rebuilt from known
 * fields, so it is small and bounded.
 *
 * It must not keep the agent alive: the IPC channel is unref'd, so the agent still exits when its servers
 * close. Without init (no channel, or the variable unset, as under vitest's own IPC) it does nothing and
 * `/healthz` has no `app` field.
 */

import { APP_STATE_REQUEST, INIT_IPC_ENV, parseAppStateMessage, type AppState } from '../init/app-state.js';

/** The parts of `process` the holder uses. */
export interface AppStateSource {
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  send?(message: unknown, callback?: (error: Error | null) => void): boolean;
  channel?: { unref(): void } | undefined;
}

export interface AppStateHolder {
  /** The last state init sent, or null when none came (or there is no init). */
  current(): AppState | null;
  close(): void;
}

export function createAppStateHolder(source: AppStateSource | null): AppStateHolder {
  let state: AppState | null = null;
  if (source === null || typeof source.send !== 'function') return { current: () => null, close() {} };
  const listener = (message: unknown) => {
    const parsed = parseAppStateMessage(message);
    if (parsed !== null) state = parsed;
  };
  source.on('message', listener);
  source.channel?.unref();
  try {
    source.send({ type: APP_STATE_REQUEST }, () => {});
  } catch {
    // The channel is already closed: init is gone, and there is nothing to learn.
  }
  return {
    current: () => state,
    close() {
      source.off('message', listener);
    },
  };
}

/** This process's holder: live only when init started the agent with its IPC channel. */
export const appState: AppStateHolder = createAppStateHolder(process.env[INIT_IPC_ENV] === '1' ? (process as AppStateSource) : null);
