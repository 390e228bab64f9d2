/**
 * The public surface of steve/ (specs/steve.md). For now the pure protocol core and the error class;
 * the Node server and the web client will be added here. steve/ never imports agent/ or nsm/.
 */

export * from './protocol/index.js';
export { STEVE_ERROR_CODES, SteveError, type SteveErrorCode } from './errors.js';
/** The web-standard client (browser, service worker, Node): steve/client/index.ts. */
export * from './client/index.js';
