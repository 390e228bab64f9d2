/**
 * The browser side of STEVE (specs/steve.md §5-§6): the page-side client that installs the enclave
 * service worker (register.ts), the worker's logic (worker.ts; enclave-sw.ts is its entry point) and the
 * attestation widget. build.mjs bundles enclave-sw.ts, register.ts and attestation-widget.ts into the
 * bootstrap files the agent serves in plaintext. Web-standard only.
 */

export { registerEnclaveServiceWorker, type EnclaveServiceWorkerClient, type RegisterOptions } from './register.js';
export { SteveBrowserError, type SteveBrowserErrorCode, type SteveBrowserStage } from './errors.js';
export { normaliseConfig, parseWorkerConfig, encodeWorkerConfig, workerConfigId, type EnclaveConfig, type EnclavePcrPolicy, type PinnedProfile, type PcrValues, type WorkerConfig } from './config.js';
export { createEnclaveWorker, type EnclaveWorker, type EnclaveWorkerOptions } from './worker.js';
export { passesThrough, BOOTSTRAP_PATHS, PUBLIC_PATHS } from '../protocol/index.js';
export { createIndexedDbTofuStore, type IndexedDbTofuStore, type TofuKey } from './tofu-store.js';
export { createIndexedDbConfigStore, type WorkerConfigStore } from './config-store.js';
export { describeStatus, renderAttestationWidget, defineAttestationWidget, shorten, formatTime, type WidgetView, type WidgetRow, type WidgetError } from './attestation-widget.js';
export {
  CHANNEL_FAILED_BODY,
  CONFIG_HEADER,
  ERROR_HEADER,
  STAGE_HEADER,
  SESSION_HEADER,
  SEQUENCE_HEADER,
  type ChannelStatus,
  type ChannelFailure,
  type VerifiedSession,
  type TrustResult,
  type WorkerCommand,
  type WorkerReply,
} from './messages.js';
