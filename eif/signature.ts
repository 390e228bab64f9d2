/**
 * The signature section of a signed EIF, read only as far as PCR8 needs (specs/nitro-enclave.md §2:
 * PCR8 measures the signing certificate's DER). Layout, checked against two readers (AWS's
 * aws-nitro-enclaves-image-format, whose PcrSignature struct serde_cbor writes, and QEMU's
 * hw/core/eif.c, which parses it for its PCR8): a CBOR array of maps, each with exactly the keys
 * `signing_certificate` then `signature`, both byte strings written as CBOR arrays of integers 0..255
 * (serde's default for a byte vector). The certificate is PEM text; both readers take the first
 * certificate in it, convert it to DER and measure that. Only the first entry counts (AWS writes one, for
 * PCR0). The COSE_Sign1 in `signature` is not verified here: PCR8 is a measurement of the certificate,
 * and Nitro checks the signature when it launches the image.
 *
 * Anything else is refused with EIF_SIGNATURE rather than guessed at: byte strings where QEMU wants
 * integer arrays, integers wider than one byte (QEMU wants 8-bit ones), extra keys, a certificate that is
 * not PEM. Pure and browser-safe.
 */

import { CborError, decodeCbor, type CborValue } from '../cbor/index.js';
import { EifError } from './errors.js';

/** At most one signature per PCR, of which there are 32. */
export const EIF_SIGNATURE_MAX_ENTRIES = 32;
const KEYS = ['signing_certificate', 'signature'] as const;
const PEM_BEGIN = '-----BEGIN CERTIFICATE-----';
const PEM_END = '-----END CERTIFICATE-----';
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export interface EifSignature {
  /** DER of the signing certificate of the first entry: what PCR8 measures. */
  certificateDer: Uint8Array;
  /** Entries in the section (PCR signatures); AWS writes one. */
  entries: number;
}

function fail(message: string, cause?: unknown): never {
  throw new EifError('EIF_SIGNATURE', `signature section: ${message}`, cause === undefined ? undefined : { cause });
}

/** A CBOR array of integers 0..255 as bytes (serde's encoding of Vec<u8>). */
function byteArray(value: CborValue | undefined, name: string): Uint8Array {
  if (!Array.isArray(value) || value.length === 0) fail(`"${name}" expected a non-empty array of integers 0..255`);
  const bytes = new Uint8Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const n = value[i];
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 255) fail(`"${name}" expected a non-empty array of integers 0..255`);
    bytes[i] = n;
  }
  return bytes;
}

/** The DER of the first CERTIFICATE block of PEM text, checked to be one complete DER SEQUENCE. */
export function pemCertificateToDer(pem: Uint8Array): Uint8Array {
  let text = '';
  for (const byte of pem) {
    if (byte >= 0x80) fail('the signing certificate is not ASCII PEM');
    text += String.fromCharCode(byte);
  }
  const begin = text.indexOf(PEM_BEGIN);
  const end = begin < 0 ? -1 : text.indexOf(PEM_END, begin);
  if (begin < 0 || end < 0) fail('the signing certificate holds no PEM CERTIFICATE block');
  const body = text.slice(begin + PEM_BEGIN.length, end).replace(/[ \t\r\n]/g, '');
  if (body.length === 0 || body.length % 4 !== 0 || !BASE64_RE.test(body)) fail('the signing certificate\'s PEM body is not base64');
  const binary = atob(body);
  const der = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) der[i] = binary.charCodeAt(i);
  if (!isDerSequence(der)) fail('the signing certificate is not one DER SEQUENCE');
  return der;
}

/** Whether `der` is exactly one DER SEQUENCE (tag 0x30, definite length in shortest form, nothing after). */
function isDerSequence(der: Uint8Array): boolean {
  if (der.length < 2 || der[0] !== 0x30) return false;
  const first = der[1]!;
  if (first < 0x80) return der.length === 2 + first;
  const count = first & 0x7f;
  // Certificates are far below 2^32 bytes; 0x80 (indefinite) is not DER.
  if (count === 0 || count > 4 || der.length < 2 + count || der[2] === 0) return false;
  let length = 0;
  for (let i = 0; i < count; i++) length = length * 256 + der[2 + i]!;
  return length >= 0x80 && der.length === 2 + count + length;
}

/** Parses a signature section (see the file comment). Throws EIF_SIGNATURE. */
export function parseEifSignature(section: Uint8Array): EifSignature {
  let value: CborValue;
  try {
    // Depth 3: the array, its maps, their byte arrays. Every item takes at least one byte of input.
    value = decodeCbor(section, { canonical: true, maxDepth: 3, maxItems: section.length + 1 });
  } catch (cause) {
    if (cause instanceof CborError) fail(`not the expected CBOR (${cause.code})`, cause);
    throw cause;
  }
  if (!Array.isArray(value) || value.length === 0 || value.length > EIF_SIGNATURE_MAX_ENTRIES) {
    fail(`expected an array of 1 to ${EIF_SIGNATURE_MAX_ENTRIES} PCR signatures`);
  }
  let certificateDer: Uint8Array | undefined;
  for (const entry of value) {
    if (!(entry instanceof Map) || entry.size !== KEYS.length || [...entry.keys()].some((key, i) => key !== KEYS[i])) {
      fail('each entry expected exactly the keys "signing_certificate" and "signature", in that order');
    }
    const certificate = byteArray(entry.get('signing_certificate'), 'signing_certificate');
    byteArray(entry.get('signature'), 'signature');
    certificateDer ??= pemCertificateToDer(certificate);
  }
  return { certificateDer: certificateDer!, entries: value.length };
}
