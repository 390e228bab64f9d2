/**
 * The attestation document codec (specs/nsm.md §3): `parseAttestationDocument` reads a COSE_Sign1
 * envelope and its payload from untrusted bytes into typed fields, keeping the payload and protected
 * header exactly as received (signatures are checked over those bytes, never a re-encoding).
 * `encodeAttestationDocument` builds the same shape for the mock NSM.
 *
 * The parser checks structure only, so it reads QEMU's unsigned documents too (no PCRs, zero-filled
 * certificate); the trust decisions are verify.ts's. Every failure is `ATTESTATION_MALFORMED` with the
 * CBOR error as its cause. Pure: no I/O, no clock.
 */

import { CborError, decodeCbor, encodeCbor, type CborMap, type CborValue } from '../cbor/index.js';
import { NsmError } from './errors.js';
import { NSM_RESPONSE_MAX_BYTES } from './codec.js';

/** COSE algorithm id of ES384 (RFC 9053 §2.1); real documents' protected header is `a1 01 38 22`. */
export const COSE_ALG_ES384 = -35;
/** The COSE_Sign1 tag (RFC 9052 §4.2). Nitro does not emit it; other producers may: accepted. */
const COSE_SIGN1_TAG_BYTE = 0xd2;
/** A document travels inside a 0x3000-byte NSM reply (specs/nsm.md §1), so it can never be larger. */
export const DOCUMENT_MAX_BYTES = NSM_RESPONSE_MAX_BYTES;

export interface AttestationDocument {
  /** The protected header bytes (the content of the first bstr). */
  protectedHeader: Uint8Array;
  /** The `alg` from the protected header (-35 on real documents, -1 on QEMU's). */
  algorithm: number;
  /** The payload bytes as received. */
  payload: Uint8Array;
  signature: Uint8Array;
  moduleId: string;
  digest: string;
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
  /** PCR index -> value, in payload order. */
  pcrs: Map<number, Uint8Array>;
  certificate: Uint8Array;
  /** DER certificates, root first. */
  cabundle: Uint8Array[];
  publicKey: Uint8Array | null;
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
}

const PAYLOAD_KEYS = new Set(['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce']);

function malformed(message: string, cause?: unknown): NsmError {
  return new NsmError('ATTESTATION_MALFORMED', message, cause === undefined ? undefined : { cause });
}

function decodeStrict(bytes: Uint8Array, what: string, allowIndefinite: boolean): CborValue {
  try {
    return decodeCbor(bytes, { allowIndefinite });
  } catch (cause) {
    throw malformed(`${what}: ${(cause as CborError).code ?? 'bad CBOR'}`, cause);
  }
}

export function parseAttestationDocument(bytes: Uint8Array): AttestationDocument {
  if (!(bytes instanceof Uint8Array)) throw malformed('document expected Uint8Array');
  if (bytes.length > DOCUMENT_MAX_BYTES) throw malformed(`document larger than ${DOCUMENT_MAX_BYTES} bytes`);
  const untagged = bytes[0] === COSE_SIGN1_TAG_BYTE ? bytes.subarray(1) : bytes;
  const envelope = decodeStrict(untagged, 'envelope', false);
  if (!Array.isArray(envelope) || envelope.length !== 4) throw malformed('envelope is not a 4-element array');
  const [protectedHeader, unprotected, payload, signature] = envelope;
  if (!(protectedHeader instanceof Uint8Array)) throw malformed('protected header is not a byte string');
  if (!(unprotected instanceof Map) || unprotected.size !== 0) throw malformed('unprotected header is not an empty map');
  if (!(payload instanceof Uint8Array)) throw malformed('payload is not a byte string');
  if (!(signature instanceof Uint8Array)) throw malformed('signature is not a byte string');

  const header = decodeStrict(protectedHeader, 'protected header', false);
  if (!(header instanceof Map) || header.size !== 1 || typeof header.get(1) !== 'number') {
    throw malformed('protected header is not {1: alg}');
  }

  // Real documents since 2025 use an indefinite-length payload map (specs/nsm.md §3).
  const body = decodeStrict(payload, 'payload', true);
  if (!(body instanceof Map)) throw malformed('payload is not a map');
  for (const key of body.keys()) {
    if (typeof key !== 'string' || !PAYLOAD_KEYS.has(key)) throw malformed('payload has an unknown key');
  }
  return {
    protectedHeader,
    algorithm: header.get(1) as number,
    payload,
    signature,
    moduleId: required(body, 'module_id', isText),
    digest: required(body, 'digest', isText),
    timestamp: required(body, 'timestamp', isUint),
    pcrs: parsePcrs(required(body, 'pcrs', isMap)),
    certificate: required(body, 'certificate', isBytes),
    cabundle: parseCabundle(required(body, 'cabundle', Array.isArray)),
    publicKey: optional(body, 'public_key'),
    userData: optional(body, 'user_data'),
    nonce: optional(body, 'nonce'),
  };
}

const isText = (v: CborValue | undefined): v is string => typeof v === 'string';
const isUint = (v: CborValue | undefined): v is number => typeof v === 'number' && v >= 0;
const isBytes = (v: CborValue | undefined): v is Uint8Array => v instanceof Uint8Array;
const isMap = (v: CborValue | undefined): v is CborMap => v instanceof Map;

function required<T extends CborValue>(body: CborMap, key: string, check: (v: CborValue | undefined) => v is T): T {
  const value = body.get(key);
  if (!check(value)) throw malformed(`"${key}" missing or of the wrong type`);
  return value;
}

/** `public_key`, `user_data` and `nonce` are bytes or null; absent counts as null (specs/nsm.md §3). */
function optional(body: CborMap, key: string): Uint8Array | null {
  const value = body.get(key);
  if (value === undefined || value === null) return null;
  if (!(value instanceof Uint8Array)) throw malformed(`"${key}" is neither bytes nor null`);
  return value;
}

function parsePcrs(map: CborMap): Map<number, Uint8Array> {
  const pcrs = new Map<number, Uint8Array>();
  for (const [index, value] of map) {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) throw malformed('PCR index is not an unsigned integer');
    if (!(value instanceof Uint8Array)) throw malformed('PCR value is not a byte string');
    pcrs.set(index, value);
  }
  return pcrs;
}

function parseCabundle(items: CborValue[]): Uint8Array[] {
  return items.map((item) => {
    if (!(item instanceof Uint8Array)) throw malformed('cabundle entry is not a byte string');
    return item;
  });
}

/** The bytes ES384 signs: `["Signature1", protected, h'', payload]` (RFC 9052 §4.4). */
export function encodeSigStructure(protectedHeader: Uint8Array, payload: Uint8Array): Uint8Array {
  return encodeCbor(['Signature1', protectedHeader, new Uint8Array(0), payload]);
}

export interface DocumentFields {
  moduleId: string;
  timestamp: number;
  pcrs: ReadonlyMap<number, Uint8Array>;
  certificate: Uint8Array;
  cabundle: readonly Uint8Array[];
  publicKey: Uint8Array | null;
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
}

/** The payload map in the order real documents use (specs/nsm.md §3). */
export function encodeDocumentPayload(fields: DocumentFields): Uint8Array {
  return encodeCbor(
    new Map<string, CborValue>([
      ['module_id', fields.moduleId],
      ['digest', 'SHA384'],
      ['timestamp', fields.timestamp],
      ['pcrs', new Map<number, CborValue>(fields.pcrs)],
      ['certificate', fields.certificate],
      ['cabundle', [...fields.cabundle]],
      ['public_key', fields.publicKey],
      ['user_data', fields.userData],
      ['nonce', fields.nonce],
    ]),
  );
}

/** The protected header of ES384 documents: exactly `a1 01 38 22`. */
export const ES384_PROTECTED_HEADER: Uint8Array = encodeCbor(new Map([[1, COSE_ALG_ES384]]));

/** Assembles an untagged COSE_Sign1 document from a signed payload. */
export function encodeAttestationDocument(protectedHeader: Uint8Array, payload: Uint8Array, signature: Uint8Array): Uint8Array {
  return encodeCbor([protectedHeader, new Map(), payload, signature]);
}
