/**
 * The HTTP CONNECT wire of the egress proxy (RFC 9110 §9.3.6, RFC 9112 §2-§5), parsed strictly because
 * both ends read untrusted bytes: the enclave side reads the app's request, the host side reads what the
 * enclave forwards and the enclave reads the host's answer. Every refusal is a BridgeError whose code maps
 * to exactly one status (`CONNECT_STATUS`), answered with fixed bytes (`connectResponse`).
 *
 * Accepted: `CONNECT host:port HTTP/1.1` (or HTTP/1.0), then header lines `name: value`, then an empty
 * line, all lines ending in CRLF, the whole head at most MAX_HEAD_BYTES. Header fields are checked for
 * form and otherwise ignored. `host` is a DNS name (letters, digits, hyphens; the last label starts with a
 * letter, so `2130706433` or `0x7f.1` can never reach a resolver as a number), a dotted-quad IPv4 address
 * without leading zeros, or a bracketed IPv6 address; port 1..65535 without leading zeros.
 * Pure: no `node:` imports, no I/O, no clock.
 */

import { BridgeError, type BridgeErrorCode } from './errors.js';

/**
 * Largest request or response head accepted, CRLFCRLF included: 8 KiB, the line budget of common
 * front proxies (nginx `large_client_header_buffers 8k`); a CONNECT head needs under 300 bytes.
 */
export const MAX_HEAD_BYTES = 8 * 1024;

/** RFC 1035 §2.3.4: 253 characters for a name written without its trailing dot, 63 per label. */
const MAX_NAME_LENGTH = 253;
const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const PORT_RE = /^[1-9][0-9]{0,4}$/;
const IPV4_OCTET_RE = /^(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$/;
/** RFC 9110 §5.6.2 token. */
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE_RE = /^([^ ]+) ([^ ]+) HTTP\/1\.[01]$/;
const STATUS_LINE_RE = /^HTTP\/1\.[01] ([1-9][0-9]{2})(?: [\t !-~\x80-\xff]*)?$/;

/** The status each refusal is answered with (one table for both sides of the egress proxy). */
export const CONNECT_STATUS: Readonly<Partial<Record<BridgeErrorCode, number>>> = {
  BRIDGE_HEAD_MALFORMED: 400,
  BRIDGE_CONNECT_DENIED: 403,
  BRIDGE_CONNECT_METHOD: 405,
  BRIDGE_HEAD_TIMEOUT: 408,
  BRIDGE_HEAD_TOO_LARGE: 431,
  BRIDGE_DIAL_FAILED: 502,
  BRIDGE_CONNECT_REFUSED_UPSTREAM: 502,
  BRIDGE_DIAL_TIMEOUT: 504,
};

const REASONS: Readonly<Record<number, string>> = {
  200: 'Connection Established',
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  504: 'Gateway Timeout',
};

/** A CONNECT target in canonical form: names lower-cased, IPv6 as the URL standard writes it. */
export interface ConnectTarget {
  /** The name or address as a resolver takes it (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** `host:port` (`[v6]:port`), what allowlists compare. */
  readonly authority: string;
}

function malformed(message: string): BridgeError {
  return new BridgeError('BRIDGE_HEAD_MALFORMED', message);
}

const ascii = (bytes: Uint8Array, from: number, to: number): string => {
  let text = '';
  for (let i = from; i < to; i++) text += String.fromCharCode(bytes[i]!);
  return text;
};

/**
 * Where the head ends: the index just past the first CRLFCRLF in `bytes[0, length)`, or -1 when it has not
 * arrived yet. `from` is how many bytes were already scanned (each call looks only at the new ones and the
 * three before them). A LF without its CR is refused at once (BRIDGE_HEAD_MALFORMED) rather than waited on.
 */
export function findHeadEnd(bytes: Uint8Array, from: number, length: number): number {
  for (let i = Math.max(0, from); i < length; i++) {
    if (bytes[i] !== 0x0a) continue;
    if (i === 0 || bytes[i - 1] !== 0x0d) throw malformed('a line ends in LF without CR');
    if (i >= 3 && bytes[i - 2] === 0x0a && bytes[i - 3] === 0x0d) return i + 1;
  }
  return -1;
}

/** Splits a complete head (ending in CRLFCRLF) into its lines, checking every byte. */
function headLines(head: Uint8Array): string[] {
  if (head.length > MAX_HEAD_BYTES) throw new BridgeError('BRIDGE_HEAD_TOO_LARGE', `head over ${MAX_HEAD_BYTES} bytes`);
  const end = findHeadEnd(head, 0, head.length);
  if (end !== head.length) throw malformed(end === -1 ? 'head does not end in CRLF CRLF' : 'bytes after the head');
  const lines: string[] = [];
  let start = 0;
  for (let i = 0; i < head.length; i++) {
    const byte = head[i]!;
    if (byte === 0x0d) {
      if (head[i + 1] !== 0x0a) throw malformed('CR without LF');
      lines.push(ascii(head, start, i));
      i += 1;
      start = i + 1;
    } else if ((byte < 0x20 && byte !== 0x09) || byte === 0x7f) {
      throw malformed('control byte in the head');
    }
  }
  // The last "line" is the empty one that ends the head.
  lines.pop();
  if (lines.length === 0 || lines[0] === '') throw malformed('no request line');
  return lines;
}

/** RFC 9112 §5.1: `name:` with no space before the colon; §5.2: no obs-fold. Values are not interpreted. */
function checkHeaderLines(lines: readonly string[]): void {
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0 || !TOKEN_RE.test(line.slice(0, colon))) throw malformed('malformed header line');
  }
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!PORT_RE.test(text) || port > 65_535) throw malformed('port expected 1..65535');
  return port;
}

function isIpv4(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((part) => IPV4_OCTET_RE.test(part));
}

/** RFC 3986 IP-literal content (IPv6 only, no zone, no IPvFuture), canonicalised by the URL standard. */
function canonicalIpv6(text: string): string {
  if (!/^[0-9A-Fa-f:.]{2,45}$/.test(text)) throw malformed('bad IPv6 address');
  let hostname: string;
  try {
    hostname = new URL(`http://[${text}]/`).hostname;
  } catch {
    throw malformed('bad IPv6 address');
  }
  return hostname.slice(1, -1);
}

function canonicalName(text: string): string {
  const name = text.toLowerCase();
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) throw malformed('host name length');
  const labels = name.split('.');
  if (!labels.every((label) => LABEL_RE.test(label))) throw malformed('bad host name');
  if (isIpv4(name)) return name;
  // A name whose last label starts with a digit would be read as a number by inet_aton and URL parsers.
  if (!/^[a-z]/.test(labels[labels.length - 1]!)) throw malformed('host is neither a name nor a dotted-quad address');
  return name;
}

/** Parses `host:port` (authority-form, RFC 9112 §3.2.3) into its canonical target. */
export function parseAuthority(text: string): ConnectTarget {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1 || text[close + 1] !== ':') throw malformed('expected [IPv6]:port');
    const host = canonicalIpv6(text.slice(1, close));
    const port = parsePort(text.slice(close + 2));
    return { host, port, authority: `[${host}]:${port}` };
  }
  const colon = text.lastIndexOf(':');
  if (colon <= 0) throw malformed('expected host:port');
  const host = canonicalName(text.slice(0, colon));
  const port = parsePort(text.slice(colon + 1));
  return { host, port, authority: `${host}:${port}` };
}

/**
 * Parses a complete CONNECT request head (from its first byte through CRLFCRLF). Throws
 * BRIDGE_HEAD_TOO_LARGE, BRIDGE_HEAD_MALFORMED or, for a well-formed request with another method,
 * BRIDGE_CONNECT_METHOD.
 */
export function parseConnectRequest(head: Uint8Array): ConnectTarget {
  const [requestLine, ...headers] = headLines(head);
  const match = REQUEST_LINE_RE.exec(requestLine!);
  if (match === null || !TOKEN_RE.test(match[1]!)) throw malformed('malformed request line');
  checkHeaderLines(headers);
  if (match[1] !== 'CONNECT') throw new BridgeError('BRIDGE_CONNECT_METHOD', 'only CONNECT is proxied');
  return parseAuthority(match[2]!);
}

/** Parses a complete response head to a CONNECT and returns its status (100..999). */
export function parseConnectResponse(head: Uint8Array): number {
  const [statusLine, ...headers] = headLines(head);
  const match = STATUS_LINE_RE.exec(statusLine!);
  if (match === null) throw malformed('malformed status line');
  checkHeaderLines(headers);
  return Number(match[1]);
}

const encoder = new TextEncoder();

/** The request the enclave side sends on: only the target, never the app's own header lines. */
export function encodeConnectRequest(target: ConnectTarget): Uint8Array {
  return encoder.encode(`CONNECT ${target.authority} HTTP/1.1\r\nHost: ${target.authority}\r\n\r\n`);
}

/** The exact answer for `status`: 200 opens the tunnel; every other one closes the connection. */
export function connectResponse(status: number): Uint8Array {
  const reason = REASONS[status];
  if (reason === undefined) throw new BridgeError('BRIDGE_CONFIG_INVALID', `no CONNECT answer for status ${status}`);
  if (status === 200) return encoder.encode(`HTTP/1.1 200 ${reason}\r\n\r\n`);
  const allow = status === 405 ? 'Allow: CONNECT\r\n' : '';
  return encoder.encode(`HTTP/1.1 ${status} ${reason}\r\n${allow}Content-Length: 0\r\nConnection: close\r\n\r\n`);
}

/** The status for a refusal: CONNECT_STATUS for coded errors, 502 for anything else. */
export function statusForError(error: unknown): number {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return (typeof code === 'string' ? CONNECT_STATUS[code as BridgeErrorCode] : undefined) ?? 502;
}

/** Exact `host:port` entries (names case-insensitive); no wildcards. */
export interface Allowlist {
  readonly entries: readonly string[];
  allows(target: ConnectTarget): boolean;
}

/** Builds an allowlist from `host:port` texts; a bad entry is BRIDGE_CONFIG_INVALID naming it. */
export function createAllowlist(entries: readonly string[]): Allowlist {
  const canonical = new Set<string>();
  for (const entry of entries) {
    try {
      canonical.add(parseAuthority(entry).authority);
    } catch {
      throw new BridgeError('BRIDGE_CONFIG_INVALID', `allowlist entry ${JSON.stringify(entry)} expected host:port (no wildcards)`);
    }
  }
  return { entries: [...canonical], allows: (target) => canonical.has(target.authority) };
}
