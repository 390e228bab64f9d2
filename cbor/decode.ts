/**
 * A strict CBOR (RFC 8949) decoder for untrusted bytes: NSM replies, attestation documents, STEVE
 * messages. It is deliberately small and refuses what those protocols never use, instead of guessing:
 * floats, tags, `undefined`, simple values other than false/true/null, map keys other than text and
 * integers, duplicate keys, integers beyond ±2^53-1, invalid UTF-8, nesting deeper than a limit, and any
 * byte after the one top-level item. Indefinite-length maps and arrays are accepted only when the caller
 * asks for them (real NSM documents since 2025 use an indefinite payload map, specs/nsm.md §3; STEVE
 * forbids them, specs/steve.md §2). With `canonical`, integers and lengths must use their shortest form.
 * The number of data items is capped too (`maxItems`): without it, 32 MiB of one-byte items in one array
 * would become 33 million JS values before any caller could look at the shape.
 *
 * Why not cbor-x: it silently keeps the last of duplicate keys and accepts floats, tags and
 * non-shortest integers, so a peer could smuggle a second `nonce` past a check. This decoder fails
 * closed with a coded `CborError`. Lengths are checked against the remaining input before anything is
 * allocated, so a 5-byte header cannot ask for 4 GiB, and item counts against the remaining item budget
 * before anything is iterated, so a 5-byte array head cannot ask for 33 million items either: a
 * malformed input costs time in proportion to what is read before it is refused. Pure: no I/O, no clock.
 */

import { CborError } from './errors.js';

/** A decoded value. Maps keep wire order and use `number` or `string` keys. */
export type CborValue = number | string | boolean | null | Uint8Array | CborValue[] | CborMap;
export type CborMap = Map<number | string, CborValue>;

export interface DecodeOptions {
  /** Accept indefinite-length maps and arrays (`0xbf`, `0x9f` ... `0xff`). Default false. */
  allowIndefinite?: boolean;
  /** Require shortest-form integers and lengths (RFC 8949 §4.2.1). Default false. */
  canonical?: boolean;
  /** Maximum nesting of arrays and maps. Default 16: our deepest message nests 4 levels. */
  maxDepth?: number;
  /**
   * Maximum number of data items in the whole input, counting every item: the top-level one, each
   * array element, each map key and each map value, at every depth (a map of n entries holds 2n). A
   * definite-length array or map whose declared count does not fit in what is left is refused at its
   * head, before anything is read or allocated for it; indefinite ones are counted item by item.
   * Default DEFAULT_MAX_ITEMS (4,096).
   */
  maxItems?: number;
}

const DEFAULT_MAX_DEPTH = 16;
/**
 * Ours. The largest input any caller decodes with the default is an attestation document's payload: 55
 * items in every real AWS document in test/vectors/nitro (9 keys, 16 PCRs, a cabundle of 4
 * certificates), 87 with all 32 PCRs; its COSE_Sign1 envelope is 5, an NSM reply fewer than 40 (at most
 * 32 locked PCRs). 4,096 is over 40 times the largest and decodes in well under a millisecond. STEVE
 * passes a tighter budget of its own per message (steve/protocol/fields.ts).
 */
export const DEFAULT_MAX_ITEMS = 4_096;
/** Recursion stays far below V8's stack limit (about 5,000 levels of readItem measured here). */
const MAX_DEPTH_LIMIT = 512;
const BREAK = 0xff;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/**
 * Short text strings that are pure ASCII (header names, methods, paths, STEVE's map keys) are built
 * without TextDecoder, whose per-call cost dominates at these sizes; ASCII is always valid UTF-8, so
 * the result is the same. Longer ones, or any byte >= 0x80, go through the validating decoder.
 */
const ASCII_FAST_PATH_MAX_BYTES = 64;

function readAscii(bytes: Uint8Array, offset: number, length: number): string | null {
  let text = '';
  for (let i = offset; i < offset + length; i++) {
    const byte = bytes[i]!;
    if (byte >= 0x80) return null;
    text += String.fromCharCode(byte);
  }
  return text;
}

interface State {
  readonly bytes: Uint8Array;
  offset: number;
  readonly allowIndefinite: boolean;
  readonly canonical: boolean;
  readonly maxDepth: number;
  readonly maxItems: number;
  /**
   * The item budget not yet spent. Spent when an item is promised, not when it is read: a definite
   * array or map pays for all its entries at its head, an indefinite one for each entry before it is read.
   */
  itemsLeft: number;
}

/** Decodes exactly one CBOR item that must span all of `bytes`. Throws `CborError`. */
export function decodeCbor(bytes: Uint8Array, options: DecodeOptions = {}): CborValue {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('"bytes" expected Uint8Array');
  const maxItems = options.maxItems ?? DEFAULT_MAX_ITEMS;
  if (!Number.isSafeInteger(maxItems) || maxItems < 0) throw new TypeError('"maxItems" expected a non-negative integer');
  const state: State = {
    bytes,
    offset: 0,
    allowIndefinite: options.allowIndefinite ?? false,
    canonical: options.canonical ?? false,
    // The decoder recurses once per level: a cap keeps a caller's large maxDepth off the stack limit.
    maxDepth: Math.min(options.maxDepth ?? DEFAULT_MAX_DEPTH, MAX_DEPTH_LIMIT),
    maxItems,
    itemsLeft: maxItems,
  };
  spend(state, 1);
  const value = readItem(state, 0);
  if (state.offset !== bytes.length) {
    throw new CborError('CBOR_TRAILING_BYTES', `${bytes.length - state.offset} bytes after the item`, state.offset);
  }
  return value;
}

function fail(state: State, code: ConstructorParameters<typeof CborError>[0], message: string): never {
  throw new CborError(code, message, state.offset);
}

function need(state: State, count: number): void {
  if (count > state.bytes.length - state.offset) fail(state, 'CBOR_TRUNCATED', `need ${count} more bytes`);
}

/** Takes `count` items from the budget, or refuses: called before the items are read. */
function spend(state: State, count: number): void {
  if (count > state.itemsLeft) fail(state, 'CBOR_TOO_MANY_ITEMS', `more than ${state.maxItems} data items`);
  state.itemsLeft -= count;
}

/** Reads the argument of an initial byte; returns -1 for "indefinite" (additional info 31). */
function readArgument(state: State, info: number): number {
  if (info < 24) return info;
  const { bytes } = state;
  let value: number;
  switch (info) {
    case 24:
      need(state, 1);
      value = bytes[state.offset]!;
      state.offset += 1;
      if (state.canonical && value < 24) fail(state, 'CBOR_NON_CANONICAL', 'integer not in shortest form');
      return value;
    case 25:
      need(state, 2);
      value = (bytes[state.offset]! << 8) | bytes[state.offset + 1]!;
      state.offset += 2;
      if (state.canonical && value <= 0xff) fail(state, 'CBOR_NON_CANONICAL', 'integer not in shortest form');
      return value;
    case 26:
      need(state, 4);
      value =
        bytes[state.offset]! * 0x1000000 +
        ((bytes[state.offset + 1]! << 16) | (bytes[state.offset + 2]! << 8) | bytes[state.offset + 3]!);
      state.offset += 4;
      if (state.canonical && value <= 0xffff) fail(state, 'CBOR_NON_CANONICAL', 'integer not in shortest form');
      return value;
    case 27: {
      need(state, 8);
      const high = readUint32(bytes, state.offset);
      const low = readUint32(bytes, state.offset + 4);
      state.offset += 8;
      // Number.MAX_SAFE_INTEGER is 2^53 - 1: the high word may use at most 21 bits.
      if (high > 0x1fffff) fail(state, 'CBOR_INTEGER_RANGE', 'integer beyond 2^53 - 1');
      value = high * 0x100000000 + low;
      if (state.canonical && value <= 0xffffffff) fail(state, 'CBOR_NON_CANONICAL', 'integer not in shortest form');
      return value;
    }
    case 31:
      return -1;
    default:
      return fail(state, 'CBOR_MALFORMED', `reserved additional information ${info}`);
  }
}

function readUint32(bytes: Uint8Array, at: number): number {
  return bytes[at]! * 0x1000000 + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!);
}

function readItem(state: State, depth: number): CborValue {
  need(state, 1);
  const initial = state.bytes[state.offset]!;
  state.offset += 1;
  const major = initial >> 5;
  const info = initial & 0x1f;
  // Additional information 28-30 is reserved for every major type (RFC 8949 §3): not well-formed.
  if (info >= 28 && info <= 30) fail(state, 'CBOR_MALFORMED', `reserved additional information ${info}`);

  switch (major) {
    case 0: {
      const value = readArgument(state, info);
      if (value < 0) fail(state, 'CBOR_MALFORMED', 'indefinite length on an integer');
      return value;
    }
    case 1: {
      const value = readArgument(state, info);
      if (value < 0) fail(state, 'CBOR_MALFORMED', 'indefinite length on an integer');
      // -1 - value must stay a safe integer: -(2^53 - 1) at the most.
      if (value >= Number.MAX_SAFE_INTEGER) fail(state, 'CBOR_INTEGER_RANGE', 'integer beyond -(2^53 - 1)');
      return -1 - value;
    }
    case 2:
    case 3: {
      const length = readArgument(state, info);
      if (length < 0) fail(state, 'CBOR_UNSUPPORTED', 'indefinite-length strings are not accepted');
      need(state, length);
      if (major === 3 && length <= ASCII_FAST_PATH_MAX_BYTES) {
        const text = readAscii(state.bytes, state.offset, length);
        if (text !== null) {
          state.offset += length;
          return text;
        }
      }
      const chunk = state.bytes.subarray(state.offset, state.offset + length);
      state.offset += length;
      if (major === 2) return chunk;
      try {
        return utf8.decode(chunk);
      } catch {
        return fail(state, 'CBOR_INVALID_UTF8', 'text string is not valid UTF-8');
      }
    }
    case 4:
      return readArray(state, info, depth + 1);
    case 5:
      return readMap(state, info, depth + 1);
    case 6:
      return fail(state, 'CBOR_UNSUPPORTED', 'tags are not accepted');
    default:
      // major 7: simple values and floats
      if (info === 20) return false;
      if (info === 21) return true;
      if (info === 22) return null;
      if (info === 31) return fail(state, 'CBOR_MALFORMED', 'unexpected break');
      return fail(state, 'CBOR_UNSUPPORTED', info >= 25 && info <= 27 ? 'floats are not accepted' : 'simple value not accepted');
  }
}

function enter(state: State, depth: number): void {
  if (depth > state.maxDepth) fail(state, 'CBOR_TOO_DEEP', `nesting deeper than ${state.maxDepth}`);
}

function readLength(state: State, info: number): number {
  const count = readArgument(state, info);
  if (count < 0 && !state.allowIndefinite) fail(state, 'CBOR_INDEFINITE_LENGTH', 'indefinite lengths are not accepted');
  return count;
}

/** True (and consumes it) when the next byte is the break of an indefinite container. */
function atBreak(state: State): boolean {
  need(state, 1);
  if (state.bytes[state.offset] !== BREAK) return false;
  state.offset += 1;
  return true;
}

function readArray(state: State, info: number, depth: number): CborValue[] {
  enter(state, depth);
  const count = readLength(state, info);
  if (count < 0) {
    const items: CborValue[] = [];
    while (!atBreak(state)) {
      spend(state, 1);
      items.push(readItem(state, depth));
    }
    return items;
  }
  // The whole count is paid at the head, so a huge one is refused before the first item is read.
  spend(state, count);
  // Every item takes at least one byte: a count beyond the remaining input is a lie.
  need(state, count);
  const items: CborValue[] = [];
  for (let i = 0; i < count; i++) items.push(readItem(state, depth));
  return items;
}

function readMap(state: State, info: number, depth: number): CborMap {
  enter(state, depth);
  const count = readLength(state, info);
  if (count < 0) {
    const map: CborMap = new Map();
    while (!atBreak(state)) {
      spend(state, 2);
      readEntry(state, map, depth);
    }
    return map;
  }
  // A key and a value per entry, all paid at the head.
  spend(state, count * 2);
  need(state, count * 2);
  const map: CborMap = new Map();
  for (let i = 0; i < count; i++) readEntry(state, map, depth);
  return map;
}

function readEntry(state: State, map: CborMap, depth: number): void {
  const keyOffset = state.offset;
  const key = readItem(state, depth);
  if (typeof key !== 'string' && typeof key !== 'number') {
    throw new CborError('CBOR_BAD_KEY', 'map keys must be text or integers', keyOffset);
  }
  if (map.has(key)) throw new CborError('CBOR_DUPLICATE_KEY', 'duplicate map key', keyOffset);
  map.set(key, readItem(state, depth));
}
