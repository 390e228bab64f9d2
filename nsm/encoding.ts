/**
 * Small, strict text encodings for bytes used across the NSM layer and the CLIs: hex, base64 and PEM.
 * Web-standard APIs only (atob/btoa), so the verifier keeps running in a browser. Each decoder rejects
 * what is not exactly its alphabet, with a message that names the input but never echoes it.
 */

import { NsmError } from './errors.js';

const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64URL_RE = /^[A-Za-z0-9_-]*$/;

export function hexToBytes(hex: string, name = 'hex'): Uint8Array {
  if (typeof hex !== 'string' || !HEX_RE.test(hex)) throw new NsmError('NSM_BAD_ARGUMENT', `"${name}" expected an even-length hex string`);
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

export function bytesToHex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

/** Standard base64 with padding (RFC 4648 §4). */
export function base64ToBytes(text: string, name = 'base64'): Uint8Array {
  if (typeof text !== 'string' || text.length % 4 !== 0 || !BASE64_RE.test(text)) {
    throw new NsmError('NSM_BAD_ARGUMENT', `"${name}" expected standard padded base64`);
  }
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function bytesToBase64(bytes: Uint8Array): string {
  let binary = '';
  const CHUNK = 0x8000;
  for (let i = 0; i < bytes.length; i += CHUNK) binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  return btoa(binary);
}

/** base64url without padding (RFC 4648 §5), as STEVE's user_data binding uses. */
export function base64UrlToBytes(text: string, name = 'base64url'): Uint8Array {
  if (typeof text !== 'string' || !BASE64URL_RE.test(text) || text.length % 4 === 1) {
    throw new NsmError('NSM_BAD_ARGUMENT', `"${name}" expected unpadded base64url`);
  }
  const standard = text.replace(/-/g, '+').replace(/_/g, '/');
  return base64ToBytes(standard + '='.repeat((4 - (standard.length % 4)) % 4), name);
}

export function bytesToBase64Url(bytes: Uint8Array): string {
  return bytesToBase64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The DER of every `-----BEGIN CERTIFICATE-----` block in `pem`, in order. */
export function pemToCertificates(pem: string, name = 'PEM'): Uint8Array[] {
  const blocks = [...pem.matchAll(/-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g)];
  if (blocks.length === 0) throw new NsmError('NSM_BAD_ARGUMENT', `"${name}" holds no CERTIFICATE block`);
  return blocks.map((block) => base64ToBytes(block[1]!.replace(/\s+/g, ''), name));
}

/** PEM 'CERTIFICATE' (RFC 7468 §5): base64 in 64-character lines. */
export function certificateToPem(der: Uint8Array): string {
  if (!(der instanceof Uint8Array) || der.length === 0) throw new NsmError('NSM_BAD_ARGUMENT', '"der" expected a non-empty Uint8Array');
  const lines = bytesToBase64(der).match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}
