/**
 * Small byte helpers for the STEVE protocol core: argument checks with one message pattern, big-endian
 * u64, concatenation, constant-time comparison, wiping, and strict unpadded base64url (specs/steve.md §5
 * uses it in the attestation binding). Web-standard APIs only (atob/btoa): no `node:` imports, no Buffer.
 * Messages name the argument and its length, never its bytes.
 */

import { SteveError, type SteveErrorCode } from '../errors.js';

/** Throws `code` unless `value` is a Uint8Array of exactly `length` bytes (any length when omitted). */
export function assertBytes(value: unknown, name: string, length?: number, code: SteveErrorCode = 'STEVE_BAD_ARGUMENT'): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new SteveError(code, `"${name}" expected Uint8Array, got ${typeName(value)}`);
  if (length !== undefined && value.length !== length) {
    throw new SteveError(code, `"${name}" expected ${length} bytes, got ${value.length}`);
  }
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  return joinBytes(parts);
}

/** `parts` joined into one new array (as concatBytes, for a list of any length: no argument spread). */
export function joinBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Writes `value` (0..2^53-1, already checked by the caller) as 8 big-endian bytes into `out` at `at`.
 * Two 32-bit halves, because bitwise operators in JS work on 32 bits; byte by byte rather than through
 * a DataView, which costs an allocation per call on the per-request path (nonce, AAD, envelope).
 */
export function writeU64(out: Uint8Array, at: number, value: number): void {
  const high = Math.floor(value / 0x1_0000_0000);
  const low = value >>> 0;
  out[at] = high >>> 24;
  out[at + 1] = (high >>> 16) & 0xff;
  out[at + 2] = (high >>> 8) & 0xff;
  out[at + 3] = high & 0xff;
  out[at + 4] = low >>> 24;
  out[at + 5] = (low >>> 16) & 0xff;
  out[at + 6] = (low >>> 8) & 0xff;
  out[at + 7] = low & 0xff;
}

/** Compares two byte arrays without an early exit on the first difference. Lengths are not secret. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i]!;
  return acc === 0;
}

export function wipe(...arrays: readonly Uint8Array[]): void {
  for (const array of arrays) array.fill(0);
}

const utf8Encoder = new TextEncoder();
export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * base64url without padding (RFC 4648 §5), as the §5 `user_data` binding uses: each 3 bytes are four
 * characters, and a last 1 or 2 bytes are two or three. Written out, where btoa would need a binary string
 * made a character at a time and three replacements after it: the server renders three fields per handshake.
 */
export function toBase64Url(bytes: Uint8Array): string {
  const a = BASE64URL_ALPHABET;
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += a[n >>> 18]! + a[(n >>> 12) & 63]! + a[(n >>> 6) & 63]! + a[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest > 0) {
    const n = (bytes[i]! << 16) | (rest === 2 ? bytes[i + 1]! << 8 : 0);
    out += a[n >>> 18]! + a[(n >>> 12) & 63]!;
    if (rest === 2) out += a[(n >>> 6) & 63]!;
  }
  return out;
}

const BASE64URL_RE = /^[A-Za-z0-9_-]*$/;

/**
 * Strict unpadded base64url: only the URL-safe alphabet, no padding, no whitespace, and canonical
 * (unused trailing bits zero), so exactly one text decodes to a given byte string. Returns undefined
 * for anything else; the caller picks the error code.
 */
export function fromBase64Url(text: string): Uint8Array | undefined {
  if (!BASE64URL_RE.test(text) || text.length % 4 === 1) return undefined;
  const standard = text.replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(standard + '='.repeat((4 - (standard.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  // atob ignores non-zero unused bits: re-encoding shows whether this was the one canonical text.
  return toBase64Url(bytes) === text ? bytes : undefined;
}
