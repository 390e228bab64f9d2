/**
 * The STEVE client's public surface (specs/steve.md §5-§6): `createSteveClient`, its options, receipts
 * and coded errors. Web-standard APIs only, so it runs in a browser, a service worker and Node alike; it
 * imports the protocol core and the browser-safe verifier (nsm/verifier.ts), nothing that touches Node.
 */

export {
  createSteveClient,
  STEVE_CLIENT_DEFAULTS,
  type SteveClient,
  type SteveClientOptions,
  type SteveReceipt,
} from './client.js';
export type { SteveRequestBody, SteveRequestInit } from './application.js';
export type { FetchFunction } from './http.js';
export { TOFU_PCRS, type TofuStore, type PcrTrust } from './pcr-policy.js';
export { SteveClientError, STEVE_CLIENT_ERROR_CODES, type SteveClientErrorCode, type SteveClientStage } from './errors.js';
