/**
 * Which requests to the enclave origin the agent serves outside STEVE (specs/steve.md §6), shared by the
 * worker (which lets them through unchanged) and the page-side client (which refuses to `send` them, since
 * they would not be end-to-end encrypted). Everything else to the enclave origin goes through STEVE.
 */

/** What a browser fetches in plaintext before it can speak STEVE (GET or HEAD only). */
export const BOOTSTRAP_PATHS: ReadonlySet<string> = new Set(['/', '/enclave-sw.js', '/register.js', '/attestation-widget.js', '/xwing/steve_xwing_wasm_bg.wasm']);
/** Public and outside STEVE, any method: the agent answers them itself. */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set(['/attestation', '/.well-known/caution/health', '/healthz']);
/** The channel's own endpoints. */
export const E2P_PREFIX = '/e2p/';

/** True when the agent serves this request outside STEVE, so the worker lets the browser send it as it is. */
export function passesThrough(method: string, url: URL): boolean {
  if (url.pathname.startsWith(E2P_PREFIX) || PUBLIC_PATHS.has(url.pathname)) return true;
  return (method === 'GET' || method === 'HEAD') && BOOTSTRAP_PATHS.has(url.pathname);
}
