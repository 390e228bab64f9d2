/**
 * What the widget shows about an attestation document: PCRs, module id, time, the root's hash. The
 * enclave worker copies the session response as it passes to the STEVE client and summarises it here;
 * the summary is used only once the client has accepted that same session (matched by session id), so
 * everything shown is from a document the client verified. Nothing is decided from it: this parser checks
 * structure only and throws on anything odd (the worker then shows nothing). Pure and web-standard.
 */

import { sha256 } from '@noble/hashes/sha2.js';
import { decodeCbor, type CborMap } from '../../cbor/index.js';
import { MAX_SESSION_RESPONSE_BYTES, decodeSessionResponse } from '../protocol/index.js';
import { bytesToHex } from './encoding.js';

/** The PCRs that identify the image (shown always); others are shown only when not all zero. */
const IDENTITY_PCRS = new Set([0, 1, 2]);
/** COSE_Sign1's tag byte (RFC 9052 §4.2): Nitro omits it, other producers may send it. */
const COSE_SIGN1_TAG_BYTE = 0xd2;

export interface DocumentSummary {
  sessionId: string;
  pcrs: Array<{ index: number; hex: string }>;
  moduleId: string;
  documentTimeMs: number;
  rootSha256: string;
}

function field<T>(map: CborMap, key: string, check: (value: unknown) => value is T): T {
  const value = map.get(key);
  if (!check(value)) throw new TypeError(`attestation document: "${key}" missing or of the wrong type`);
  return value;
}

/** Summarises a session response's document; throws TypeError or the decoders' errors when malformed. */
export function summariseSessionResponse(bytes: Uint8Array): DocumentSummary {
  const response = decodeSessionResponse(bytes, { maxBytes: MAX_SESSION_RESPONSE_BYTES });
  const document = response.attestationDocument;
  const envelope = decodeCbor(document[0] === COSE_SIGN1_TAG_BYTE ? document.subarray(1) : document);
  if (!Array.isArray(envelope) || envelope.length !== 4 || !(envelope[2] instanceof Uint8Array)) throw new TypeError('attestation document: not COSE_Sign1');
  // Real documents use an indefinite-length payload map (specs/nsm.md §3).
  const payload = decodeCbor(envelope[2], { allowIndefinite: true });
  if (!(payload instanceof Map)) throw new TypeError('attestation document: payload is not a map');
  const pcrMap = field(payload, 'pcrs', (v): v is CborMap => v instanceof Map);
  const cabundle = field(payload, 'cabundle', (v): v is unknown[] => Array.isArray(v));
  const root = cabundle[0];
  if (!(root instanceof Uint8Array)) throw new TypeError('attestation document: cabundle is empty');
  const pcrs: DocumentSummary['pcrs'] = [];
  for (const [index, value] of pcrMap) {
    if (typeof index !== 'number' || !(value instanceof Uint8Array)) throw new TypeError('attestation document: bad PCR entry');
    if (IDENTITY_PCRS.has(index) || value.some((byte) => byte !== 0)) pcrs.push({ index, hex: bytesToHex(value) });
  }
  pcrs.sort((a, b) => a.index - b.index);
  return {
    sessionId: bytesToHex(response.sessionId),
    pcrs,
    moduleId: field(payload, 'module_id', (v): v is string => typeof v === 'string'),
    documentTimeMs: field(payload, 'timestamp', (v): v is number => typeof v === 'number'),
    rootSha256: bytesToHex(sha256(root)),
  };
}
