/**
 * Strict reading of STEVE's CBOR maps (specs/steve.md §2-§3): the bytes are decoded by the shared strict
 * codec in canonical mode (definite lengths, shortest integers, no floats, no tags, no duplicate keys, no
 * trailing bytes), then a message must be a map with exactly its allowed text keys, each of the right
 * type. Every failure is a SteveError (STEVE_PROTOCOL, or STEVE_TOO_LARGE before any parsing); a
 * CborError stays as `cause`. Pure: no I/O.
 */

import { decodeCbor, CborError, type CborMap, type CborValue } from '../../cbor/index.js';
import { SteveError } from '../errors.js';
import { VERSION } from './constants.js';

/**
 * Nesting we accept: our deepest message is the application response (map -> headers array -> pair
 * array, 3 levels) plus a JSON-able `error` value; 16 is the codec's default and plenty for `error`.
 */
const MAX_DEPTH = 16;

/** Decodes one top-level CBOR map of at most `maxBytes` bytes. */
export function decodeMap(bytes: Uint8Array, what: string, maxBytes: number): CborMap {
  if (!(bytes instanceof Uint8Array)) throw new SteveError('STEVE_BAD_ARGUMENT', `"${what}" expected Uint8Array`);
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new SteveError('STEVE_BAD_ARGUMENT', '"maxBytes" expected a non-negative integer');
  if (bytes.length > maxBytes) throw new SteveError('STEVE_TOO_LARGE', `${what} of ${bytes.length} bytes is over ${maxBytes}`);
  let value: CborValue;
  try {
    value = decodeCbor(bytes, { canonical: true, allowIndefinite: false, maxDepth: MAX_DEPTH });
  } catch (error) {
    if (error instanceof CborError) throw new SteveError('STEVE_PROTOCOL', `${what}: ${error.code}`, { cause: error });
    throw error;
  }
  if (!(value instanceof Map)) throw new SteveError('STEVE_PROTOCOL', `${what} is not a CBOR map`);
  return value;
}

/**
 * Checks that `map` has every key in `required`, nothing outside `required` and `optional`, and only
 * text keys. Returns the values by key (optional ones may be absent).
 */
export function readFields<R extends string, O extends string = never>(
  map: CborMap,
  what: string,
  required: readonly R[],
  optional: readonly O[] = [],
): Record<R, CborValue> & Partial<Record<O, CborValue>> {
  // A message has a handful of keys: a scan of the two lists is cheaper than building a Set per call.
  for (const key of map.keys()) {
    if (!(required as readonly (string | number)[]).includes(key) && !(optional as readonly (string | number)[]).includes(key)) {
      throw new SteveError('STEVE_PROTOCOL', `${what} has an unknown key`);
    }
  }
  const out: Record<string, CborValue> = Object.create(null) as Record<string, CborValue>;
  for (const key of required) {
    if (!map.has(key)) throw new SteveError('STEVE_PROTOCOL', `${what} lacks "${key}"`);
    out[key] = map.get(key)!;
  }
  for (const key of optional) if (map.has(key)) out[key] = map.get(key)!;
  return out as Record<R, CborValue> & Partial<Record<O, CborValue>>;
}

/** `version` must be the integer 2 (§3); 1 is the legacy JSON protocol (§8), 3 does not exist. */
export function expectVersion(value: CborValue, what: string): void {
  if (value !== VERSION) throw new SteveError('STEVE_PROTOCOL', `${what}: "version" must be ${VERSION}`);
}

export function expectText(value: CborValue, name: string): string {
  if (typeof value !== 'string') throw new SteveError('STEVE_PROTOCOL', `"${name}" expected text`);
  return value;
}

/** A byte string, optionally of exactly `length` bytes. The result is a view into the input. */
export function expectBytes(value: CborValue, name: string, length?: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new SteveError('STEVE_PROTOCOL', `"${name}" expected a byte string`);
  if (length !== undefined && value.length !== length) {
    throw new SteveError('STEVE_PROTOCOL', `"${name}" expected ${length} bytes, got ${value.length}`);
  }
  return value;
}

/** A non-negative CBOR integer (major type 0) in [min, max]. */
export function expectUint(value: CborValue, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new SteveError('STEVE_PROTOCOL', `"${name}" expected an integer in ${min}..${max}`);
  }
  return value;
}
