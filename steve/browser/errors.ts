/**
 * SteveBrowserError: what the page-side client (register.ts) rejects with. It carries the STEVE client's
 * own codes and stages when the channel failed inside the worker (STEVE_CLIENT_PCR at stage `pcr`, ...),
 * and adds the browser's: no service worker support, a bad config, a worker that did not take control or
 * did not answer. Match on `code` and `stage`, never on the message.
 */

import type { SteveClientErrorCode, SteveClientStage } from '../client/index.js';

export type SteveBrowserErrorCode =
  | SteveClientErrorCode
  /** No service workers here: an insecure context (plain http other than localhost), or an old browser. */
  | 'STEVE_BROWSER_UNSUPPORTED'
  /** The config given to registerEnclaveServiceWorker is invalid (checked before anything is registered). */
  | 'STEVE_BROWSER_CONFIG'
  /** The worker could not be registered, or did not take control of the page in time. */
  | 'STEVE_BROWSER_REGISTER'
  /** The worker did not answer a command, or answered something unexpected. */
  | 'STEVE_BROWSER_WORKER'
  /** The page is not controlled by the enclave worker, so a request would leave in plaintext: refused. */
  | 'STEVE_BROWSER_NOT_CONTROLLED';

/** The STEVE client's stages, plus `register` (installing the worker) and `worker` (talking to it). */
export type SteveBrowserStage = SteveClientStage | 'register' | 'worker';

export class SteveBrowserError extends Error {
  readonly code: SteveBrowserErrorCode;
  readonly stage: SteveBrowserStage;
  /** The HTTP status the worker answered with (502 or 504) when the channel failed. */
  readonly status: number | undefined;

  constructor(code: SteveBrowserErrorCode, stage: SteveBrowserStage, message: string, options: { cause?: unknown; status?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SteveBrowserError';
    this.code = code;
    this.stage = stage;
    this.status = options.status;
  }
}
