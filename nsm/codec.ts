/**
 * The NSM request/response codec: the exact CBOR shapes of AWS's Rust API types as serde_cbor writes
 * them (specs/nsm.md §2). Requests are encoded byte-for-byte as the real driver's users send them;
 * responses are parsed strictly (they may come from a device we do not trust to be well-formed) into
 * typed values, and `{"Error": "<name>"}` replies become coded `NsmError`s. Pure: no I/O.
 */

import { CborError, decodeCbor, encodeCbor, type CborMap, type CborValue } from '../cbor/index.js';
import { NSM_REPLY_ERROR_CODES, NsmError } from './errors.js';
import type { NsmDescription, PcrDescription } from './types.js';
import { PCR_BYTES } from './types.js';

/** Largest request the driver passes on (specs/nsm.md §1: 0x1000; larger fails with EMSGSIZE). */
export const NSM_REQUEST_MAX_BYTES = 0x1000;
/** The response buffer the driver is always given (specs/nsm.md §1: 0x3000). */
export const NSM_RESPONSE_MAX_BYTES = 0x3000;
/** Per-field limit of user_data, nonce and public_key on real hardware (specs/nsm.md §2). */
export const NSM_FIELD_MAX_BYTES = 1024;
/** GetRandom returns at most 256 bytes per call (specs/nsm.md §2). */
export const NSM_RANDOM_MAX_BYTES = 256;

export type NsmRequest =
  | { type: 'DescribeNSM' }
  | { type: 'GetRandom' }
  | { type: 'DescribePCR'; index: number }
  | { type: 'ExtendPCR'; index: number; data: Uint8Array }
  | { type: 'LockPCR'; index: number }
  | { type: 'LockPCRs'; range: number }
  | { type: 'Attestation'; userData: Uint8Array | null; nonce: Uint8Array | null; publicKey: Uint8Array | null };

export type NsmResponse =
  | { type: 'DescribeNSM'; description: NsmDescription }
  | { type: 'GetRandom'; random: Uint8Array }
  | { type: 'DescribePCR'; pcr: PcrDescription }
  | { type: 'ExtendPCR'; value: Uint8Array }
  | { type: 'LockPCR' }
  | { type: 'LockPCRs' }
  | { type: 'Attestation'; document: Uint8Array }
  | { type: 'Error'; error: string };

/** Encodes a request exactly as serde_cbor would (unit variants as bare text, others as a 1-entry map). */
export function encodeNsmRequest(request: NsmRequest): Uint8Array {
  switch (request.type) {
    case 'DescribeNSM':
    case 'GetRandom':
      return encodeCbor(request.type);
    case 'DescribePCR':
    case 'LockPCR':
      return encodeCbor({ [request.type]: { index: request.index } });
    case 'ExtendPCR':
      return encodeCbor({ ExtendPCR: { index: request.index, data: request.data } });
    case 'LockPCRs':
      return encodeCbor({ LockPCRs: { range: request.range } });
    case 'Attestation':
      return encodeCbor({
        Attestation: { user_data: request.userData, nonce: request.nonce, public_key: request.publicKey },
      });
  }
}

/** Parses a request (the mock NSM's side of the wire). Throws `NsmError('NSM_INVALID_OPERATION')`. */
export function decodeNsmRequest(bytes: Uint8Array): NsmRequest {
  let value: CborValue;
  try {
    value = decodeCbor(bytes);
  } catch (cause) {
    throw new NsmError('NSM_INVALID_OPERATION', 'request is not valid CBOR', { cause });
  }
  if (value === 'DescribeNSM' || value === 'GetRandom') return { type: value };
  if (!(value instanceof Map) || value.size !== 1) throw invalidRequest('unknown request');
  const [name, body] = value.entries().next().value as [string | number, CborValue];
  if (!(body instanceof Map)) throw invalidRequest('request body is not a map');
  switch (name) {
    case 'DescribePCR':
    case 'LockPCR':
      return { type: name, index: requestUint(body, 'index') };
    case 'LockPCRs':
      return { type: name, range: requestUint(body, 'range') };
    case 'ExtendPCR':
      return { type: name, index: requestUint(body, 'index'), data: requestBytes(body, 'data', false)! };
    case 'Attestation':
      return {
        type: name,
        userData: requestBytes(body, 'user_data', true),
        nonce: requestBytes(body, 'nonce', true),
        publicKey: requestBytes(body, 'public_key', true),
      };
    default:
      throw invalidRequest('unknown request');
  }
}

function invalidRequest(message: string): NsmError {
  return new NsmError('NSM_INVALID_OPERATION', message);
}

function requestUint(body: CborMap, key: string): number {
  const value = body.get(key);
  if (typeof value !== 'number' || value < 0) throw invalidRequest(`"${key}" expected an unsigned integer`);
  return value;
}

function requestBytes(body: CborMap, key: string, optional: boolean): Uint8Array | null {
  const value = body.get(key);
  if (value instanceof Uint8Array) return value;
  if (optional && (value === null || value === undefined)) return null;
  throw invalidRequest(`"${key}" expected bytes`);
}

/** Encodes a response the way the NSM does (used by the mock). */
export function encodeNsmResponse(response: NsmResponse): Uint8Array {
  switch (response.type) {
    case 'LockPCR':
    case 'LockPCRs':
      return encodeCbor(response.type);
    case 'Error':
      return encodeCbor({ Error: response.error });
    case 'GetRandom':
      return encodeCbor({ GetRandom: { random: response.random } });
    case 'ExtendPCR':
      return encodeCbor({ ExtendPCR: { data: response.value } });
    case 'DescribePCR':
      return encodeCbor({ DescribePCR: { lock: response.pcr.locked, data: response.pcr.value } });
    case 'Attestation':
      return encodeCbor({ Attestation: { document: response.document } });
    case 'DescribeNSM': {
      const d = response.description;
      return encodeCbor({
        DescribeNSM: {
          version_major: d.versionMajor,
          version_minor: d.versionMinor,
          version_patch: d.versionPatch,
          module_id: d.moduleId,
          max_pcrs: d.maxPcrs,
          locked_pcrs: d.lockedPcrs,
          digest: d.digest,
        },
      });
    }
  }
}

/**
 * Parses the reply to a request of type `expected`. An `{"Error": name}` reply throws the matching
 * coded `NsmError` (`NSM_INVALID_INDEX`, ...); anything else unexpected throws `NSM_BAD_RESPONSE`.
 */
export function decodeNsmResponse(bytes: Uint8Array, expected: NsmRequest['type']): NsmResponse {
  let value: CborValue;
  try {
    // Device replies are small definite CBOR; QEMU's libcbor may use wide integers, so not canonical.
    value = decodeCbor(bytes);
  } catch (cause) {
    throw badResponse(`reply is not valid CBOR (${(cause as CborError).code})`, cause);
  }
  if (typeof value === 'string') {
    if ((expected === 'LockPCR' || expected === 'LockPCRs') && value === expected) return { type: expected };
    throw badResponse(`unexpected reply "${value.slice(0, 32)}"`);
  }
  if (!(value instanceof Map) || value.size !== 1) throw badResponse('reply is not a one-entry map');
  const [name, body] = value.entries().next().value as [string | number, CborValue];
  if (name === 'Error') {
    // Own properties only: a reply naming `toString` or `__proto__` is not a known error.
    const code = typeof body === 'string' && Object.hasOwn(NSM_REPLY_ERROR_CODES, body) ? NSM_REPLY_ERROR_CODES[body] : undefined;
    if (code === undefined) throw badResponse('unknown NSM error reply');
    throw new NsmError(code, `NSM replied ${String(body)}`);
  }
  if (name !== expected || !(body instanceof Map)) throw badResponse(`expected a ${expected} reply`);
  switch (expected) {
    case 'GetRandom': {
      const random = field(body, 'random', isBytes);
      if (random.length === 0 || random.length > NSM_RANDOM_MAX_BYTES) throw badResponse('random has a bad length');
      return { type: expected, random };
    }
    case 'ExtendPCR':
      return { type: expected, value: pcrValue(field(body, 'data', isBytes)) };
    case 'DescribePCR':
      // QEMU emits `data` before `lock`: look fields up by key, never by position.
      return { type: expected, pcr: { locked: field(body, 'lock', isBoolean), value: pcrValue(field(body, 'data', isBytes)) } };
    case 'Attestation':
      return { type: expected, document: field(body, 'document', isBytes) };
    case 'DescribeNSM': {
      const lockedPcrs = field(body, 'locked_pcrs', Array.isArray);
      if (!lockedPcrs.every((i) => typeof i === 'number' && i >= 0)) throw badResponse('locked_pcrs expected integers');
      return {
        type: expected,
        description: {
          versionMajor: field(body, 'version_major', isUint),
          versionMinor: field(body, 'version_minor', isUint),
          versionPatch: field(body, 'version_patch', isUint),
          moduleId: field(body, 'module_id', isText),
          maxPcrs: field(body, 'max_pcrs', isUint),
          lockedPcrs: lockedPcrs as number[],
          digest: field(body, 'digest', isText),
        },
      };
    }
    default:
      throw badResponse(`expected a ${expected} reply`);
  }
}

function badResponse(message: string, cause?: unknown): NsmError {
  return new NsmError('NSM_BAD_RESPONSE', message, cause === undefined ? undefined : { cause });
}

const isBytes = (v: CborValue | undefined): v is Uint8Array => v instanceof Uint8Array;
const isBoolean = (v: CborValue | undefined): v is boolean => typeof v === 'boolean';
const isText = (v: CborValue | undefined): v is string => typeof v === 'string';
const isUint = (v: CborValue | undefined): v is number => typeof v === 'number' && v >= 0;

function field<T extends CborValue>(body: CborMap, key: string, check: (v: CborValue | undefined) => v is T): T {
  const value = body.get(key);
  if (!check(value)) throw badResponse(`"${key}" missing or of the wrong type`);
  return value;
}

function pcrValue(value: Uint8Array): Uint8Array {
  if (value.length !== PCR_BYTES) throw badResponse(`PCR value expected ${PCR_BYTES} bytes, got ${value.length}`);
  return value;
}
