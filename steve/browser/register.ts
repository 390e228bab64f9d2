/**
 * The page side (bundled to /register.js): `registerEnclaveServiceWorker({ config })` installs the enclave
 * worker with its config in the script URL (config.ts), waits until it controls the page, and returns a
 * client whose `send(path, init)` is a fetch to the enclave origin that the worker carries through STEVE.
 *
 * Fail closed on the page too: `send` refuses (STEVE_BROWSER_NOT_CONTROLLED, nothing sent) when this page
 * is not controlled by the configured worker (a hard reload bypasses workers; `initialize` asks the worker
 * to claim the page again), refuses paths the agent serves outside STEVE (they would not be encrypted),
 * and turns the worker's 502/504 into a SteveBrowserError with the STEVE client's code and stage.
 * Web-standard only.
 */

import { normaliseConfig, workerScriptUrl, type EnclaveConfig, type WorkerConfig } from './config.js';
import { SteveBrowserError, type SteveBrowserErrorCode, type SteveBrowserStage } from './errors.js';
import { ERROR_HEADER, SESSION_HEADER, STAGE_HEADER, type ChannelStatus, type WorkerCommand, type WorkerReply } from './messages.js';
// The rule alone, not the protocol's index: this page script stays small (build.test.ts).
import { passesThrough } from '../protocol/routing.js';

/** How long the worker may take to install, activate and control the page (the §5 establishment deadline's size). */
const DEFAULT_READY_TIMEOUT_MS = 10_000;
/** How long a command may wait for the worker's answer (a reset waits for IndexedDB). */
const DEFAULT_COMMAND_TIMEOUT_MS = 5_000;
/** How often readiness is re-checked while waiting for the worker. */
const READY_POLL_MS = 25;

export interface RegisterOptions {
  config: EnclaveConfig;
  /** The bundled worker, same origin as the page. Default `/enclave-sw.js` (specs/steve.md §6). */
  scriptUrl?: string;
  /** The worker's scope. Default `/`. */
  scope?: string;
  readyTimeoutMs?: number;
  commandTimeoutMs?: number;
}

export interface EnclaveServiceWorkerClient {
  /** The validated config, as the worker receives it. */
  readonly config: WorkerConfig;
  /** Registers the worker and waits until it controls the page; resolves with its status. Idempotent. */
  initialize(): Promise<ChannelStatus>;
  /** A fetch to `path` on the enclave origin, carried through STEVE by the worker; rejects with a coded error. */
  send(path: string, init?: RequestInit): Promise<Response>;
  getStatus(): Promise<ChannelStatus>;
  /** Ends the current session; the next `send` establishes and verifies a new one. */
  rotateSession(): Promise<ChannelStatus>;
  /** Ends the session and forgets this enclave's TOFU record (the next session records anew). */
  reset(): Promise<ChannelStatus>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One command to `target` over a fresh MessageChannel, answered within `timeoutMs`. */
function sendCommand(target: ServiceWorker, command: WorkerCommand, timeoutMs: number): Promise<ChannelStatus> {
  const channel = new MessageChannel();
  return new Promise<ChannelStatus>((resolve, reject) => {
    const timer = setTimeout(() => {
      channel.port1.close();
      reject(new SteveBrowserError('STEVE_BROWSER_WORKER', 'worker', `the worker did not answer ${command.type} within ${timeoutMs} ms`));
    }, timeoutMs);
    channel.port1.onmessage = (event: MessageEvent<WorkerReply>) => {
      clearTimeout(timer);
      channel.port1.close();
      const reply = event.data;
      if (reply?.ok === true) resolve(reply.status);
      else if (reply?.ok === false) reject(new SteveBrowserError(reply.error.code as SteveBrowserErrorCode, reply.error.stage as SteveBrowserStage, reply.error.message));
      else reject(new SteveBrowserError('STEVE_BROWSER_WORKER', 'worker', `the worker's answer to ${command.type} is malformed`));
    };
    target.postMessage(command, [channel.port2]);
  });
}

export function registerEnclaveServiceWorker(options: RegisterOptions): EnclaveServiceWorkerClient {
  const config = normaliseConfig(options.config);
  const scope = options.scope ?? '/';
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  const commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  let scriptUrl: string | undefined;
  let ready: Promise<ChannelStatus> | undefined;

  function controller(): ServiceWorker | null {
    const current = navigator.serviceWorker.controller;
    return current !== null && current.scriptURL === scriptUrl ? current : null;
  }

  async function waitForControl(registration: ServiceWorkerRegistration): Promise<ServiceWorker> {
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      const current = controller();
      if (current !== null) return current;
      // Active but not controlling (a hard reload, or activated before this page loaded): ask it to claim.
      const active = registration.active;
      if (active !== null && active.scriptURL === scriptUrl) await sendCommand(active, { type: 'steve/claim' }, commandTimeoutMs).catch(() => undefined);
      if (controller() !== null) continue;
      if (Date.now() > deadline) {
        throw new SteveBrowserError('STEVE_BROWSER_REGISTER', 'register', `the enclave worker did not take control of this page within ${readyTimeoutMs} ms`);
      }
      await sleep(READY_POLL_MS);
    }
  }

  async function start(): Promise<ChannelStatus> {
    if (typeof navigator === 'undefined' || !('serviceWorker' in navigator) || !globalThis.isSecureContext) {
      throw new SteveBrowserError('STEVE_BROWSER_UNSUPPORTED', 'register', 'service workers are not available here (they need https:, or http on localhost)');
    }
    scriptUrl = workerScriptUrl(options.scriptUrl ?? '/enclave-sw.js', config, location.href);
    let registration: ServiceWorkerRegistration;
    try {
      registration = await navigator.serviceWorker.register(scriptUrl, { scope, updateViaCache: 'none' });
    } catch (error) {
      throw new SteveBrowserError('STEVE_BROWSER_REGISTER', 'register', `the enclave worker could not be registered (${(error as Error)?.name ?? 'error'})`, { cause: error });
    }
    const worker = await waitForControl(registration);
    const status = await sendCommand(worker, { type: 'steve/status' }, commandTimeoutMs);
    const failure = status.lastError;
    // A worker whose config it could not use would fail every request: say so now.
    if (failure !== null && failure.stage === 'config') throw new SteveBrowserError(failure.code as SteveBrowserErrorCode, 'config', failure.message);
    return status;
  }

  function initialize(): Promise<ChannelStatus> {
    ready ??= start().catch((error: unknown) => {
      ready = undefined; // A later call may try again.
      throw error;
    });
    return ready;
  }

  async function command(type: WorkerCommand['type']): Promise<ChannelStatus> {
    await initialize();
    const worker = controller();
    if (worker === null) throw new SteveBrowserError('STEVE_BROWSER_NOT_CONTROLLED', 'worker', 'this page is no longer controlled by the enclave worker');
    return sendCommand(worker, { type } as WorkerCommand, commandTimeoutMs);
  }

  return {
    config,
    initialize,
    async send(path, init = {}) {
      await initialize();
      let url: URL;
      try {
        url = new URL(path, `${config.origin}/`);
      } catch (error) {
        throw new SteveBrowserError('STEVE_CLIENT_BAD_REQUEST', 'request', 'the path is not a valid URL', { cause: error });
      }
      if (url.origin !== config.origin) throw new SteveBrowserError('STEVE_CLIENT_BAD_REQUEST', 'request', `the target is not on the enclave origin ${config.origin}`);
      const method = (init.method ?? 'GET').toUpperCase();
      if (passesThrough(method, url)) {
        throw new SteveBrowserError('STEVE_CLIENT_BAD_REQUEST', 'request', `${method} ${url.pathname} is served outside STEVE; use fetch for it`);
      }
      // Checked right before sending: without the worker this request would leave in plaintext.
      if (controller() === null) throw new SteveBrowserError('STEVE_BROWSER_NOT_CONTROLLED', 'worker', 'this page is not controlled by the enclave worker; nothing was sent');
      let response: Response;
      try {
        response = await fetch(url, init);
      } catch (error) {
        throw new SteveBrowserError('STEVE_CLIENT_NETWORK', 'request', `the request failed (${(error as Error)?.name ?? 'error'})`, { cause: error });
      }
      const code = response.headers.get(ERROR_HEADER);
      if (code !== null) {
        response.body?.cancel().catch(() => undefined);
        const stage = (response.headers.get(STAGE_HEADER) ?? 'request') as SteveBrowserStage;
        throw new SteveBrowserError(code as SteveBrowserErrorCode, stage, `secure channel failed: ${code} at ${stage}`, { status: response.status });
      }
      if (!response.headers.has(SESSION_HEADER)) {
        response.body?.cancel().catch(() => undefined);
        throw new SteveBrowserError('STEVE_BROWSER_NOT_CONTROLLED', 'worker', 'the answer did not come through the enclave worker');
      }
      return response;
    },
    getStatus: () => command('steve/status'),
    rotateSession: () => command('steve/rotate'),
    reset: () => command('steve/reset'),
  };
}

export { SteveBrowserError } from './errors.js';
export type { SteveBrowserErrorCode, SteveBrowserStage } from './errors.js';
export type { EnclaveConfig, EnclavePcrPolicy, PinnedProfile, PcrValues, WorkerConfig } from './config.js';
export type { ChannelStatus, ChannelFailure, VerifiedSession, TrustResult } from './messages.js';
