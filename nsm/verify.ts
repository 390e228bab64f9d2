/**
 * `verifyAttestationDocument`: decides whether an attestation document proves what it claims
 * (specs/nsm.md §3). Pure and browser-safe: the time is passed in, nothing is fetched, nothing logged.
 *
 * Checks run cheapest first and stop at the first failure, each with its own code:
 *   MALFORMED (shape) -> UNSUPPORTED_ALGORITHM (not exactly ES384) -> MALFORMED (AWS's field rules) -> ROOT (cabundle[0]
 *   is not the pinned root) -> BAD_SIGNATURE (COSE ES384 over the payload as received, leaf key, high-S
 *   accepted) -> CHAIN / EXPIRED (leaf -> cabundle[n-1] -> ... -> pinned root, by position) -> EXPIRED
 *   (document older than maxAgeMs) -> DEBUG (all-zero PCR0-2 unless allowed) -> NONCE -> PCR (profiles).
 * The trust anchor is always the caller's pinned root (default AWS Nitro Root-G1), never the bundle's copy.
 */

import { sha256 } from '@noble/hashes/sha2.js';
import { AWS_NITRO_ROOT_G1_DER } from './aws-root.js';
import { encodeSigStructure, parseAttestationDocument, type AttestationDocument, COSE_ALG_ES384, ES384_PROTECTED_HEADER } from './document.js';
import { nobleP384Verifier, type P384Verifier } from './ecdsa.js';
import { bytesToHex } from './encoding.js';
import { NsmError } from './errors.js';
import { constantTimeEqual, parseCertificate, verifyChain } from './x509.js';
import { NSM_FIELD_MAX_BYTES } from './codec.js';

/** AWS's rules: 1..32 PCRs, each 32, 48 or 64 bytes (specs/nsm.md §3). */
const MAX_PCRS = 32;
const PCR_SIZES = new Set([32, 48, 64]);
/** r || s of P-384 (RFC 9053 §2.1). */
const ES384_SIGNATURE_BYTES = 96;
/** The PCRs that identify the image; all zero in debug mode (specs/nsm.md §2). */
const IDENTITY_PCRS = [0, 1, 2] as const;

/** A set of expected PCR values; a document matches when every listed PCR is equal. */
export interface PcrProfile {
  name: string;
  pcrs: ReadonlyMap<number, Uint8Array>;
}

export interface VerifyOptions {
  /** Verification time in ms since the epoch: certificates must be valid then. Required (pure code reads no clock). */
  atMs: number;
  /** Trust anchor, DER. Default: AWS Nitro Enclaves Root-G1. */
  root?: Uint8Array;
  /** When given, the document's nonce must equal it. */
  expectedNonce?: Uint8Array;
  /** When given (and non-empty), at least one profile must match. */
  pcrProfiles?: readonly PcrProfile[];
  /** Accept debug-mode documents (all-zero PCR0-2). Default false. */
  allowDebug?: boolean;
  /** When given, reject documents whose timestamp is older than atMs - maxAgeMs (or in the future by more than it). */
  maxAgeMs?: number;
  /** Signature primitive; default noble (pure). Node callers pass `nodeP384Verifier`. */
  verifier?: P384Verifier;
}

export interface VerifiedDocument {
  document: AttestationDocument;
  moduleId: string;
  timestamp: number;
  pcrs: Map<number, Uint8Array>;
  userData: Uint8Array | null;
  publicKey: Uint8Array | null;
  nonce: Uint8Array | null;
  debug: boolean;
  /** Name of the first matching PCR profile, when profiles were given. */
  pcrProfile: string | undefined;
  /** Hex SHA-256 of the trust anchor's DER. */
  rootSha256: string;
  /** Subjects from leaf to root. */
  chain: string[];
}

function fail(code: ConstructorParameters<typeof NsmError>[0], message: string): never {
  throw new NsmError(code, message);
}

export function verifyAttestationDocument(bytes: Uint8Array, options: VerifyOptions): VerifiedDocument {
  if (!Number.isFinite(options.atMs)) throw new NsmError('NSM_BAD_ARGUMENT', '"atMs" expected a finite number of milliseconds');
  const ecdsa = options.verifier ?? nobleP384Verifier;
  const rootDer = options.root ?? AWS_NITRO_ROOT_G1_DER;
  const doc = parseAttestationDocument(bytes);
  // The algorithm first: QEMU's unsigned documents (alg -1) should say so, not "malformed".
  if (doc.algorithm !== COSE_ALG_ES384 || !constantTimeEqual(doc.protectedHeader, ES384_PROTECTED_HEADER)) {
    fail('ATTESTATION_UNSUPPORTED_ALGORITHM', `protected header is not ES384 (alg ${doc.algorithm})`);
  }
  assertAwsFieldRules(doc);
  if (doc.signature.length !== ES384_SIGNATURE_BYTES) fail('ATTESTATION_BAD_SIGNATURE', `signature expected ${ES384_SIGNATURE_BYTES} bytes`);
  if (!constantTimeEqual(doc.cabundle[0]!, rootDer)) fail('ATTESTATION_ROOT', 'cabundle does not start at the pinned root');

  const leaf = parseCertificate(doc.certificate, 'leaf');
  if (!ecdsa.verify(doc.signature, 'p1363', encodeSigStructure(doc.protectedHeader, doc.payload), leaf.publicKey)) {
    fail('ATTESTATION_BAD_SIGNATURE', 'COSE signature does not verify with the leaf key');
  }
  const anchor = parseCertificate(rootDer, 'root');
  const intermediates = doc.cabundle.slice(1).reverse().map((der, i) => parseCertificate(der, `cabundle[${doc.cabundle.length - 1 - i}]`));
  verifyChain([leaf, ...intermediates], anchor, options.atMs, ecdsa);

  if (options.maxAgeMs !== undefined && Math.abs(options.atMs - doc.timestamp) > options.maxAgeMs) {
    fail('ATTESTATION_EXPIRED', 'document timestamp is outside the allowed age');
  }
  const debug = IDENTITY_PCRS.every((i) => isAllZero(doc.pcrs.get(i)));
  if (debug && options.allowDebug !== true) fail('ATTESTATION_DEBUG', 'debug-mode document (PCR0-2 are zero)');
  if (options.expectedNonce !== undefined) {
    if (doc.nonce === null || !constantTimeEqual(doc.nonce, options.expectedNonce)) fail('ATTESTATION_NONCE', 'nonce does not match');
  }
  const pcrProfile = matchPcrProfiles(doc.pcrs, options.pcrProfiles);
  return {
    document: doc,
    moduleId: doc.moduleId,
    timestamp: doc.timestamp,
    pcrs: doc.pcrs,
    userData: doc.userData,
    publicKey: doc.publicKey,
    nonce: doc.nonce,
    debug,
    pcrProfile,
    rootSha256: bytesToHex(sha256(rootDer)),
    chain: [leaf, ...intermediates, anchor].map((c) => c.subject),
  };
}

/** AWS's "verifying the root of trust" field rules (specs/nsm.md §3), with 1024-byte fields. */
function assertAwsFieldRules(doc: AttestationDocument): void {
  if (doc.moduleId.length === 0) fail('ATTESTATION_MALFORMED', 'module_id is empty');
  if (doc.digest !== 'SHA384') fail('ATTESTATION_MALFORMED', 'digest is not SHA384');
  if (doc.timestamp === 0) fail('ATTESTATION_MALFORMED', 'timestamp is zero');
  if (doc.pcrs.size === 0 || doc.pcrs.size > MAX_PCRS) fail('ATTESTATION_MALFORMED', `pcrs expected 1..${MAX_PCRS} entries`);
  for (const [index, value] of doc.pcrs) {
    if (index >= MAX_PCRS || !PCR_SIZES.has(value.length)) fail('ATTESTATION_MALFORMED', `PCR${index} has a bad index or size`);
  }
  if (doc.cabundle.length === 0) fail('ATTESTATION_MALFORMED', 'cabundle is empty');
  for (const [name, value] of [['public_key', doc.publicKey], ['user_data', doc.userData], ['nonce', doc.nonce]] as const) {
    if (value !== null && value.length > NSM_FIELD_MAX_BYTES) fail('ATTESTATION_MALFORMED', `${name} is larger than ${NSM_FIELD_MAX_BYTES} bytes`);
  }
}

function isAllZero(value: Uint8Array | undefined): boolean {
  if (value === undefined) return false;
  let acc = 0;
  for (const byte of value) acc |= byte;
  return acc === 0;
}

function matchPcrProfiles(pcrs: Map<number, Uint8Array>, profiles: readonly PcrProfile[] | undefined): string | undefined {
  if (profiles === undefined || profiles.length === 0) return undefined;
  for (const profile of profiles) {
    let matches = profile.pcrs.size > 0;
    for (const [index, expected] of profile.pcrs) {
      const actual = pcrs.get(index);
      // Evaluate every PCR of the profile (no early exit) so timing does not reveal which one differed.
      matches = (actual !== undefined && constantTimeEqual(actual, expected)) && matches;
    }
    if (matches) return profile.name;
  }
  return fail('ATTESTATION_PCR', `no PCR profile matches (${profiles.map((p) => p.name).join(', ')})`);
}
