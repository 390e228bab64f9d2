/**
 * Which requests to the enclave origin are served outside STEVE (specs/steve.md §6), in one place for
 * the three parties that must agree on it: the agent (which forwards the bootstrap files to the app in
 * plaintext and refuses everything else with 403 e2e_required), the service worker (which lets exactly
 * those requests through unchanged and carries every other one through STEVE) and the page-side client
 * (which refuses to `send` them, since they would not be end-to-end encrypted). Pure: no I/O.
 *
 * A bootstrap request is `GET /`, or `GET`/`HEAD` of one of the bootstrap files, with an empty query
 * string. Ours: a query makes it an ordinary request (a page can put anything in one, such as a card
 * number), so the worker encrypts it and the agent refuses it in plaintext. "Empty" is the WHATWG URL
 * parser's: `/?` has the empty query and means `/`.
 */

/** What a browser fetches in plaintext before it can speak STEVE. */
export const BOOTSTRAP_PATHS: ReadonlySet<string> = new Set(['/', '/enclave-sw.js', '/register.js', '/attestation-widget.js', '/xwing/steve_xwing_wasm_bg.wasm']);
/** Public and outside STEVE, any method: the agent answers them itself. */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set(['/attestation', '/.well-known/caution/health', '/healthz']);
/** The channel's own endpoints. */
export const E2P_PREFIX = '/e2p/';

/**
 * True for a bootstrap request: `pathname` and `search` as the WHATWG URL parser gives them (`search` is
 * '' or starts with `?`).
 */
export function isBootstrapRequest(method: string | undefined, pathname: string, search: string): boolean {
  if (search !== '' || !BOOTSTRAP_PATHS.has(pathname)) return false;
  return method === 'GET' || (method === 'HEAD' && pathname !== '/');
}

/** True when the agent serves this request outside STEVE, so the worker lets the browser send it as it is. */
export function passesThrough(method: string, url: URL): boolean {
  if (url.pathname.startsWith(E2P_PREFIX) || PUBLIC_PATHS.has(url.pathname)) return true;
  return isBootstrapRequest(method, url.pathname, url.search);
}
