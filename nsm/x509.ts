/**
 * The X.509 facts the attestation verifier needs, read with @peculiar/asn1-x509 (pure, browser-safe),
 * and the position-based chain walk of specs/nsm.md §3: real Nitro leaves lack AKI/SKI, so a strict
 * RFC 5280 path builder rejects every real document; instead each certificate must be signed by the
 * next one up, be inside its validity window at the given time, and carry the right basicConstraints
 * and keyUsage. No CRLs. Every certificate must be P-384 with ecdsa-with-SHA384. Pure: time is passed in.
 */

import { AsnConvert } from '@peculiar/asn1-schema';
import { BasicConstraints, Certificate, KeyUsage, KeyUsageFlags, Name, id_ce_basicConstraints, id_ce_keyUsage } from '@peculiar/asn1-x509';
import type { P384Verifier } from './ecdsa.js';
import { NsmError } from './errors.js';

const OID_ECDSA_WITH_SHA384 = '1.2.840.10045.4.3.3';
const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
/** namedCurve parameter of a P-384 key: DER of OID 1.3.132.0.34 (secp384r1, RFC 5480 §2.1.1.1). */
const NAMED_CURVE_SECP384R1_DER = Uint8Array.of(0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22);
/** specs/nsm.md §3: each cabundle entry is 1..1024 bytes (AWS's verification rules). */
export const CERTIFICATE_MAX_BYTES = 1024;

export interface ParsedCertificate {
  der: Uint8Array;
  /** The to-be-signed bytes exactly as received. */
  tbs: Uint8Array;
  signature: Uint8Array;
  subject: string;
  subjectDer: Uint8Array;
  issuerDer: Uint8Array;
  notBefore: number;
  notAfter: number;
  /** Uncompressed P-384 point. */
  publicKey: Uint8Array;
  isCa: boolean;
  /** basicConstraints pathLenConstraint, when present. */
  pathLength: number | undefined;
  /** KeyUsage bits (KeyUsageFlags), or undefined when the extension is absent. */
  keyUsage: number | undefined;
}

function chainError(message: string, cause?: unknown): NsmError {
  return new NsmError('ATTESTATION_CHAIN', message, cause === undefined ? undefined : { cause });
}

/**
 * Parsed certificates by DER. Parsing costs about 1 ms here, and the root and intermediates recur in
 * every document of an enclave, so parses are memoised. Only successful parses are stored, as deep
 * copies owned by the cache; the cache holds facts about bytes, never a trust decision.
 */
const PARSE_CACHE_LIMIT = 64;
const parseCache = new Map<string, ParsedCertificate>();

/** Parses one DER certificate; anything unexpected is `ATTESTATION_CHAIN`. */
export function parseCertificate(der: Uint8Array, label: string): ParsedCertificate {
  if (der.length === 0 || der.length > CERTIFICATE_MAX_BYTES) throw chainError(`${label}: size ${der.length} outside 1..${CERTIFICATE_MAX_BYTES}`);
  let key = '';
  for (const byte of der) key += String.fromCharCode(byte);
  const cached = parseCache.get(key);
  if (cached !== undefined) return cached;
  const parsed = parseUncached(der.slice(), label);
  Object.freeze(parsed);
  if (parseCache.size >= PARSE_CACHE_LIMIT) parseCache.delete(parseCache.keys().next().value!);
  parseCache.set(key, parsed);
  return parsed;
}

function parseUncached(der: Uint8Array, label: string): ParsedCertificate {
  const tbs = firstElementOfSequence(der);
  if (tbs === null) throw chainError(`${label}: not a DER certificate`);
  let cert: Certificate;
  try {
    cert = AsnConvert.parse(der, Certificate);
  } catch (cause) {
    throw chainError(`${label}: not a DER certificate`, cause);
  }
  const t = cert.tbsCertificate;
  if (cert.signatureAlgorithm.algorithm !== OID_ECDSA_WITH_SHA384 || t.signature.algorithm !== OID_ECDSA_WITH_SHA384) {
    throw chainError(`${label}: signature algorithm is not ecdsa-with-SHA384`);
  }
  const spki = t.subjectPublicKeyInfo;
  if (spki.algorithm.algorithm !== OID_EC_PUBLIC_KEY || spki.algorithm.parameters === undefined || spki.algorithm.parameters === null) {
    throw chainError(`${label}: key is not an EC key`);
  }
  if (!sameBytes(new Uint8Array(spki.algorithm.parameters), NAMED_CURVE_SECP384R1_DER)) throw chainError(`${label}: key is not P-384`);

  let isCa = false;
  let pathLength: number | undefined;
  let keyUsage: number | undefined;
  const seen = new Set<string>();
  for (const extension of t.extensions ?? []) {
    if (seen.has(extension.extnID)) throw chainError(`${label}: duplicate extension ${extension.extnID}`);
    seen.add(extension.extnID);
    try {
      if (extension.extnID === id_ce_basicConstraints) {
        const bc = AsnConvert.parse(extension.extnValue, BasicConstraints);
        isCa = bc.cA;
        pathLength = bc.pathLenConstraint;
      } else if (extension.extnID === id_ce_keyUsage) {
        keyUsage = AsnConvert.parse(extension.extnValue, KeyUsage).toNumber();
      }
    } catch (cause) {
      throw chainError(`${label}: bad extension ${extension.extnID}`, cause);
    }
  }
  let names: { subject: string; subjectDer: Uint8Array; issuerDer: Uint8Array };
  try {
    names = { subject: nameToString(t.subject), subjectDer: new Uint8Array(AsnConvert.serialize(t.subject)), issuerDer: new Uint8Array(AsnConvert.serialize(t.issuer)) };
  } catch (cause) {
    // A name that parsed but does not encode again (a character its string type forbids, ...).
    throw chainError(`${label}: malformed subject or issuer name`, cause);
  }
  return {
    der,
    tbs,
    signature: new Uint8Array(cert.signatureValue),
    ...names,
    notBefore: t.validity.notBefore.getTime().getTime(),
    notAfter: t.validity.notAfter.getTime().getTime(),
    publicKey: new Uint8Array(spki.subjectPublicKey),
    isCa,
    pathLength,
    keyUsage,
  };
}

/** `Name` as `CN=...,O=...` for messages and reports. */
function nameToString(name: Name): string {
  return name
    .map((rdn) => rdn.map((attribute) => `${SHORT_NAMES[attribute.type] ?? attribute.type}=${attribute.value.toString()}`).join('+'))
    .join(',');
}

const SHORT_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
};

/**
 * Returns the bytes of the first element of the DER SEQUENCE in `der` (a certificate's TBSCertificate),
 * or null when `der` is not exactly one definite-length SEQUENCE. Signatures are checked over these
 * received bytes, never over a re-encoding.
 */
export function firstElementOfSequence(der: Uint8Array): Uint8Array | null {
  const outer = readTlv(der, 0);
  if (outer === null || der[0] !== 0x30 || outer.end !== der.length) return null;
  const inner = readTlv(der, outer.contentStart);
  if (inner === null || inner.end > outer.end) return null;
  return der.subarray(outer.contentStart, inner.end);
}

function readTlv(der: Uint8Array, at: number): { contentStart: number; end: number } | null {
  if (at + 2 > der.length) return null;
  let length = der[at + 1]!;
  let contentStart = at + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 3 || contentStart + count > der.length) return null;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + der[contentStart + i]!;
    contentStart += count;
  }
  const end = contentStart + length;
  return end > der.length ? null : { contentStart, end };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * Walks `chain` = [leaf, cabundle[n-1], ..., cabundle[1]] up to `anchor` (the pinned root), checking
 * each link at time `atMs`. Throws `ATTESTATION_CHAIN` or `ATTESTATION_EXPIRED`.
 */
export function verifyChain(chain: readonly ParsedCertificate[], anchor: ParsedCertificate, atMs: number, ecdsa: P384Verifier): void {
  const path = [...chain, anchor];
  for (let i = 0; i < path.length; i++) {
    const cert = path[i]!;
    const label = i === 0 ? 'leaf' : i === path.length - 1 ? 'root' : `intermediate ${path.length - 1 - i}`;
    if (atMs < cert.notBefore || atMs > cert.notAfter) {
      throw new NsmError('ATTESTATION_EXPIRED', `${label} certificate not valid at ${new Date(atMs).toISOString()}`);
    }
    if (i === 0) {
      if (cert.isCa) throw chainError('leaf certificate is a CA');
      if (cert.keyUsage !== undefined && !(cert.keyUsage & KeyUsageFlags.digitalSignature)) throw chainError('leaf keyUsage lacks digitalSignature');
    } else {
      if (!cert.isCa) throw chainError(`${label} certificate is not a CA`);
      if (cert.keyUsage === undefined || !(cert.keyUsage & KeyUsageFlags.keyCertSign)) throw chainError(`${label} keyUsage lacks keyCertSign`);
      // pathLenConstraint counts the CA certificates that may follow this one (RFC 5280 §4.2.1.9).
      const casBelow = i - 1;
      if (cert.pathLength !== undefined && casBelow > cert.pathLength) throw chainError(`${label} pathLenConstraint exceeded`);
    }
    const issuer = i + 1 < path.length ? path[i + 1]! : cert;
    if (!sameBytes(cert.issuerDer, issuer.subjectDer)) throw chainError(`${label} issuer does not match the next certificate`);
    if (!ecdsa.verify(cert.signature, 'der', cert.tbs, issuer.publicKey)) throw chainError(`${label} certificate signature does not verify`);
  }
}

export { sameBytes as constantTimeEqual };
