/**
 * Which request headers reach the app, for every path the agent forwards (specs/steve.md §7): the
 * decrypted STEVE request (upstream.ts), the plaintext bootstrap files and the plaintext fallback (the
 * agent). One policy in one place, so no path can forget a rule:
 *
 * - Hop-by-hop headers never go on (RFC 9110 §7.6.1: connection, keep-alive, te, trailer,
 *   transfer-encoding, upgrade, proxy-*, and every name the Connection header lists), nor `host` (set to
 *   the app's), `content-length` (the client of the app sets it from the body) and `expect`.
 * - Forwarding headers are the proxy's to set, never the client's (ours, from the hardening round): an app
 *   behind a loopback proxy it trusts builds links, redirects and IP rules from `Forwarded`,
 *   `X-Forwarded-*`, `X-Real-IP` and the like, and the client or the host could otherwise choose them. They
 *   are all dropped, on every path, and the app sees exactly one `x-forwarded-proto`, the agent's: `https`
 *   for STEVE (the client spoke over a confidential channel from a secure context), `http` for plaintext.
 * - Bootstrap requests (`GET /` and the four files, steve/protocol/routing.ts) travel through the host in
 *   plaintext, so they carry only what a browser needs to fetch a static file: the allow-list below. No
 *   cookie, no credential, no custom header the host would see and the app might act on.
 */

/** RFC 9110 §7.6.1 and specs/steve.md §7; `proxy-*` is matched by prefix. */
const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
/** Set by the proxy or its HTTP client, never copied from the request. */
const NOT_FORWARDED: ReadonlySet<string> = new Set(['host', 'content-length', 'expect']);
/**
 * Headers by which proxies tell an app who asked and how (RFC 7239 `Forwarded`, the de facto `X-Forwarded-*`
 * family, matched by prefix, and the client-address and original-URL headers common proxies and CDNs set).
 */
const FORWARDING: ReadonlySet<string> = new Set([
  'forwarded',
  'x-real-ip',
  'x-original-url',
  'x-rewrite-url',
  'x-original-host',
  'x-client-ip',
  'client-ip',
  'true-client-ip',
  'x-cluster-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
  'x-envoy-external-address',
]);
/** Exactly the request headers a bootstrap request passes on (plus the agent's own host and x-forwarded-proto). */
export const BOOTSTRAP_REQUEST_HEADERS: ReadonlySet<string> = new Set(['accept', 'accept-encoding', 'accept-language', 'user-agent', 'if-none-match', 'if-modified-since']);

/** Most messages have no Connection header: one shared empty set for them. */
const NO_TOKENS: ReadonlySet<string> = new Set<string>();

/** The lower-case names a Connection header lists (RFC 9110 §7.6.1). */
export function connectionTokens(value: string | readonly string[] | undefined): ReadonlySet<string> {
  if (value === undefined) return NO_TOKENS;
  const out = new Set<string>();
  for (const line of typeof value === 'string' ? [value] : value) {
    for (const token of line.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '') out.add(name);
    }
  }
  return out;
}

/** Hop-by-hop for this message: the fixed ones, `proxy-*`, and what its Connection header lists. */
export function isHopByHop(name: string, listed: ReadonlySet<string>): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith('proxy-') || listed.has(name);
}

/** A header by which a proxy describes the request to the app; only the agent sets those. */
export function isForwardingHeader(name: string): boolean {
  return name.startsWith('x-forwarded-') || FORWARDING.has(name);
}

export type ForwardedProto = 'https' | 'http';

/**
 * The headers the app receives, from lower-case request headers (Node's IncomingMessage, or a decrypted
 * request's map): the policy above, `host` set to the app's, `x-forwarded-proto` set to `proto`. With
 * `bootstrap`, only BOOTSTRAP_REQUEST_HEADERS pass.
 */
export function appRequestHeaders(
  headers: Readonly<Record<string, string | readonly string[] | undefined>>,
  options: { host: string; proto: ForwardedProto; bootstrap?: boolean },
): Record<string, string | string[]> {
  const listed = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (options.bootstrap === true) {
      if (!BOOTSTRAP_REQUEST_HEADERS.has(name)) continue;
    } else if (isHopByHop(name, listed) || NOT_FORWARDED.has(name) || isForwardingHeader(name)) continue;
    out[name] = typeof value === 'string' ? value : [...value];
  }
  out.host = options.host;
  out['x-forwarded-proto'] = options.proto;
  return out;
}
