/**
 * Strict reading of STEVE's CBOR maps (specs/steve.md §2-§3): the bytes are decoded by the shared strict
 * codec in canonical mode (definite lengths, shortest integers, no floats, no tags, no duplicate keys, no
 * trailing bytes), then a message must be a map with exactly its allowed text keys, each of the right
 * type. Every failure is a SteveError (STEVE_PROTOCOL, or STEVE_TOO_LARGE before any parsing); a
 * CborError stays as `cause`. Pure: no I/O.
 *
 * The work done on a body that is not a message is bounded by what it takes to see that: the first
 * bytes must be the head of a definite map of at most the message's number of entries
 * (`expectMapPrefix`, which a server can also run on a body's first chunk before reading the rest),
 * and the codec gets an item budget per message (`MapShape.maxItems`), so an array of 33 million
 * one-byte items is refused at its 5-byte head instead of being built.
 */

import { decodeCbor, CborError, type CborMap, type CborValue } from '../../cbor/index.js';
import { SteveError } from '../errors.js';
import { VERSION } from './constants.js';

/**
 * Nesting we accept: our deepest message is the application response (map -> headers array -> pair
 * array, 3 levels) plus a JSON-able `error` value; 16 is the codec's default and plenty for `error`.
 */
const MAX_DEPTH = 16;

/** What a message may hold before its fields are read: its top-level entries and all its CBOR items. */
export interface MapShape {
  /** The message's number of keys (§3): more entries than that can never be valid. */
  maxEntries: number;
  /** Every CBOR data item, the map itself and its keys included (the codec's `maxItems`). */
  maxItems: number;
}

/**
 * The shape of a flat message, whose values are all single items (text, integers, byte strings): the
 * map, then a key and a value per entry. The session request, session response and envelope (§3).
 */
export function flatMapShape(entries: number): MapShape {
  return { maxEntries: entries, maxItems: 1 + 2 * entries };
}

/**
 * Refuses, from its first bytes alone, a body that cannot be a STEVE message: every message is a CBOR
 * map of definite length in shortest form (§2) with at most `maxEntries` keys (§3; SESSION_REQUEST_ENTRIES,
 * ENVELOPE_ENTRIES, ...). It reads the head only (1 byte when `maxEntries` < 24, as for every message;
 * at most 9), never the rest, so a server can call it on the first chunk of a request body before
 * reading or buffering more: a 32 MiB body that starts with an array head is answered after one byte.
 * A prefix too short to tell (empty, or a head cut short) passes; the decoder decides later. Throws
 * STEVE_PROTOCOL (the server's 400, as for any malformed message), or STEVE_BAD_ARGUMENT for a
 * `prefix` that is not a Uint8Array or a `maxEntries` that is not a non-negative integer.
 */
export function expectMapPrefix(prefix: Uint8Array, maxEntries: number, what = 'message'): void {
  if (!(prefix instanceof Uint8Array)) throw new SteveError('STEVE_BAD_ARGUMENT', '"prefix" expected Uint8Array');
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 0) throw new SteveError('STEVE_BAD_ARGUMENT', '"maxEntries" expected a non-negative integer');
  if (prefix.length === 0) return;
  const initial = prefix[0]!;
  const info = initial & 0x1f;
  let fits: boolean;
  if (initial >> 5 !== 5 || info > 27) {
    // Not a map, or an indefinite map (31, never canonical, §2) or reserved additional information.
    fits = false;
  } else if (info < 24) {
    fits = info <= maxEntries;
  } else {
    // A 1, 2, 4 or 8-byte count, in shortest form at least 24, 2^8, 2^16 or 2^32: decided here when
    // that is already over maxEntries, else from the count once its bytes are in.
    const width = 1 << (info - 24);
    const smallest = [24, 0x100, 0x1_0000, 0x1_0000_0000][info - 24]!;
    if (smallest > maxEntries) {
      fits = false;
    } else if (prefix.length < 1 + width) {
      return;
    } else {
      let count = 0;
      for (let i = 1; i <= width; i++) count = count * 256 + prefix[i]!;
      fits = count >= smallest && count <= maxEntries;
    }
  }
  if (!fits) throw new SteveError('STEVE_PROTOCOL', `${what} is not a definite CBOR map of at most ${maxEntries} entries`);
}

/**
 * Decodes one top-level CBOR map of at most `maxBytes` bytes and `shape`: the size first, then the
 * head (expectMapPrefix), then the codec under the shape's item budget.
 */
export function decodeMap(bytes: Uint8Array, what: string, maxBytes: number, shape: MapShape): CborMap {
  if (!(bytes instanceof Uint8Array)) throw new SteveError('STEVE_BAD_ARGUMENT', `"${what}" expected Uint8Array`);
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new SteveError('STEVE_BAD_ARGUMENT', '"maxBytes" expected a non-negative integer');
  if (bytes.length > maxBytes) throw new SteveError('STEVE_TOO_LARGE', `${what} of ${bytes.length} bytes is over ${maxBytes}`);
  expectMapPrefix(bytes, shape.maxEntries, what);
  let value: CborValue;
  try {
    value = decodeCbor(bytes, { canonical: true, allowIndefinite: false, maxDepth: MAX_DEPTH, maxItems: shape.maxItems });
  } catch (error) {
    if (error instanceof CborError) throw new SteveError('STEVE_PROTOCOL', `${what}: ${error.code}`, { cause: error });
    throw error;
  }
  // The head check leaves only an empty input (CBOR_TRUNCATED above) or a map.
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
