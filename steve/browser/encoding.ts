/**
 * Byte encodings the browser side needs for its configuration: hex for PCRs and the config's id, base64 for
 * the root certificate, and PEM -> DER. Web-standard only (atob/btoa exist
 * in pages and workers). Kept here rather than imported from nsm/: steve/ must not import nsm/ beyond the
 * verifier surface, which steve/client/ alone may use (test/boundaries.test.ts).
 */

export function bytesToHex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

/** Lower- or upper-case hex of even length; throws TypeError otherwise. */
export function hexToBytes(hex: string): Uint8Array {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new TypeError('"hex" expected an even number of hex digits');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToBase64(bytes: Uint8Array): string {
  let binary = '';
  // Chunked: String.fromCharCode with a spread of a large array overflows the argument stack.
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** Standard or URL-safe base64, padding optional; throws TypeError on anything else. */
export function base64ToBytes(text: string): Uint8Array {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/\-_]*={0,2}$/.test(text)) throw new TypeError('"base64" has characters outside the alphabet');
  const standard = text.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  if (standard.length % 4 === 1) throw new TypeError('"base64" has a bad length');
  const binary = atob(standard + '='.repeat((4 - (standard.length % 4)) % 4));
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g;

/** The DER of every CERTIFICATE block in `pem`, in order. */
export function pemToCertificates(pem: string): Uint8Array[] {
  return [...pem.matchAll(PEM_CERTIFICATE)].map((match) => base64ToBytes(match[1]!.replace(/\s+/g, '')));
}
