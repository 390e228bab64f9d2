/**
 * The page side (bundled to /register.js): `registerEnclaveServiceWorker({ config })` installs the enclave
 * worker at its plain URL, waits until it controls the page, sends it the config (`steve/configure`,
 * config.ts) and waits for its answer; then it returns a client whose `send(path, init)` is a fetch to the
 * enclave origin that the worker carries through STEVE. Every page load configures the worker again (the
 * same config changes nothing), so the worker always runs the config of the page that loaded last.
 *
 * Fail closed on the page too: `send` refuses (STEVE_BROWSER_NOT_CONTROLLED, nothing sent) when this page
 * is not controlled by the worker (a hard reload bypasses workers; `initialize` asks the worker to claim
 * the page again), refuses paths the agent serves outside STEVE (they would not be encrypted), names its
 * config in `x-steve-config` so a worker configured otherwise since refuses the request, and turns the
 * worker's 502/504 into a SteveBrowserError with the STEVE client's code and stage. Web-standard only.
 */

import { encodeWorkerConfig, normaliseConfig, workerConfigId, type EnclaveConfig, type WorkerConfig } from './config.js';
import { SteveBrowserError, type SteveBrowserErrorCode, type SteveBrowserStage } from './errors.js';
import { CONFIG_HEADER, ERROR_HEADER, SESSION_HEADER, STAGE_HEADER, type ChannelStatus, type WorkerCommand, type WorkerReply } from './messages.js';
// The rule alone, not the protocol's index: this page script stays small (build.test.ts).
import { passesThrough } from '../protocol/routing.js';

/** How long the worker may take to install, activate and control the page (the §5 establishment deadline's size). */
const DEFAULT_READY_TIMEOUT_MS = 10_000;
/** How long a command may wait for the worker's answer (configure and reset wait for IndexedDB). */
const DEFAULT_COMMAND_TIMEOUT_MS = 5_000;
/** How often readiness is re-checked while waiting for the worker. */
const READY_POLL_MS = 25;

export interface RegisterOptions {
  config: EnclaveConfig;
  /** The bundled worker, same origin as the page, without query or fragment. Default `/enclave-sw.js` (specs/steve.md §6). */
  scriptUrl?: string;
  /** The worker's scope. Default `/`. */
  scope?: string;
  readyTimeoutMs?: number;
  commandTimeoutMs?: number;
}

export interface EnclaveServiceWorkerClient {
  /** The validated config, as the worker receives it. */
  readonly config: WorkerConfig;
  /** Registers the worker, waits until it controls the page and configures it; resolves with its status. Idempotent. */
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
  /** workerConfigId(config), known once `initialize` resolved. */
  let configId: string | undefined;
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
    const url = new URL(options.scriptUrl ?? '/enclave-sw.js', location.href);
    // The agent serves the worker in plaintext only as a bootstrap request, which has no query (steve/protocol/routing.ts).
    if (url.search !== '' || url.hash !== '') throw new SteveBrowserError('STEVE_BROWSER_CONFIG', 'config', '"scriptUrl" expected a path without query or fragment');
    scriptUrl = url.href;
    const id = await workerConfigId(config);
    let registration: ServiceWorkerRegistration;
    try {
      registration = await navigator.serviceWorker.register(scriptUrl, { scope, updateViaCache: 'none' });
    } catch (error) {
      throw new SteveBrowserError('STEVE_BROWSER_REGISTER', 'register', `the enclave worker could not be registered (${(error as Error)?.name ?? 'error'})`, { cause: error });
    }
    const worker = await waitForControl(registration);
    // The worker validates and stores the config, and answers with the status of the config it now uses.
    const status = await sendCommand(worker, { type: 'steve/configure', config: encodeWorkerConfig(config) }, commandTimeoutMs);
    if (status.configId !== id) throw new SteveBrowserError('STEVE_BROWSER_WORKER', 'worker', 'the worker did not take this page\'s config');
    configId = id;
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
      // The worker refuses it when it has been configured otherwise since (another page), and drops the header.
      const headers = new Headers(init.headers);
      headers.set(CONFIG_HEADER, configId!);
      let response: Response;
      try {
        response = await fetch(url, { ...init, headers });
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
