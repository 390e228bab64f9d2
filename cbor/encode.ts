/**
 * The CBOR encoder for what we send: NSM requests, mock attestation documents, STEVE messages. It emits
 * only the deterministic subset that strict peers accept (specs/steve.md §2, RFC 8949 §4.2.1 without key
 * sorting): definite lengths, shortest integers, no floats, no tags. Map entries keep insertion order,
 * because the NSM expects fields in the declaration order of AWS's Rust types (specs/nsm.md §2).
 * Pure: no I/O.
 */

import { CborError } from './errors.js';
import type { CborValue } from './decode.js';

/** What the encoder takes: decoded values, plus plain objects as text-keyed maps. */
export type CborInput =
  | number
  | string
  | boolean
  | null
  | Uint8Array
  | readonly CborInput[]
  | ReadonlyMap<number | string, CborInput>
  | { readonly [key: string]: CborInput };

const utf8 = new TextEncoder();
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

class Writer {
  private buffer = new Uint8Array(256);
  length = 0;

  private reserve(count: number): void {
    if (this.length + count <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + count) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buffer.subarray(0, this.length));
    this.buffer = next;
  }

  byte(value: number): void {
    this.reserve(1);
    this.buffer[this.length++] = value;
  }

  /**
   * A text string that is pure ASCII (header names and values, paths, STEVE's map keys), written in place:
   * one byte per UTF-16 unit, with no TextEncoder call and no intermediate array, whose per-call cost
   * dominates at these sizes. False, with nothing written, when the text holds any unit >= 0x80.
   */
  ascii(value: string): boolean {
    const length = value.length;
    for (let i = 0; i < length; i++) if (value.charCodeAt(i) >= 0x80) return false;
    this.head(3, length);
    this.reserve(length);
    const buffer = this.buffer;
    let at = this.length;
    for (let i = 0; i < length; i++) buffer[at++] = value.charCodeAt(i);
    this.length = at;
    return true;
  }

  bytes(value: Uint8Array): void {
    this.reserve(value.length);
    this.buffer.set(value, this.length);
    this.length += value.length;
  }

  head(major: number, value: number): void {
    const type = major << 5;
    if (value < 24) {
      this.byte(type | value);
    } else if (value <= 0xff) {
      this.byte(type | 24);
      this.byte(value);
    } else if (value <= 0xffff) {
      this.byte(type | 25);
      this.byte(value >>> 8);
      this.byte(value & 0xff);
    } else if (value <= 0xffffffff) {
      this.byte(type | 26);
      this.uint32(value);
    } else {
      this.byte(type | 27);
      this.uint32(Math.floor(value / 0x100000000));
      this.uint32(value >>> 0);
    }
  }

  private uint32(value: number): void {
    this.byte((value >>> 24) & 0xff);
    this.byte((value >>> 16) & 0xff);
    this.byte((value >>> 8) & 0xff);
    this.byte(value & 0xff);
  }

  result(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

/** Encodes `value` as deterministic CBOR. Throws `CborError('CBOR_ENCODE')` for what it cannot encode. */
export function encodeCbor(value: CborInput | CborValue): Uint8Array {
  const writer = new Writer();
  write(writer, value, 0);
  return writer.result();
}

function write(writer: Writer, value: unknown, depth: number): void {
  if (depth > 64) throw new CborError('CBOR_ENCODE', 'value nests too deeply');
  if (value === null) return writer.byte(0xf6);
  if (value === false) return writer.byte(0xf4);
  if (value === true) return writer.byte(0xf5);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new CborError('CBOR_ENCODE', 'only safe integers are encoded');
    return value >= 0 ? writer.head(0, value) : writer.head(1, -1 - value);
  }
  if (typeof value === 'string') {
    // ASCII holds no surrogate, and its UTF-8 is itself.
    if (writer.ascii(value)) return;
    // TextEncoder would turn a lone surrogate into U+FFFD: refuse instead of changing the value.
    if (LONE_SURROGATE.test(value)) throw new CborError('CBOR_ENCODE', 'text with a lone surrogate');
    const encoded = utf8.encode(value);
    writer.head(3, encoded.length);
    return writer.bytes(encoded);
  }
  if (value instanceof Uint8Array) {
    writer.head(2, value.length);
    return writer.bytes(value);
  }
  if (Array.isArray(value)) {
    writer.head(4, value.length);
    for (const item of value) write(writer, item, depth + 1);
    return;
  }
  if (value instanceof Map) {
    writer.head(5, value.size);
    for (const [key, item] of value) {
      if (typeof key !== 'string' && typeof key !== 'number') throw new CborError('CBOR_ENCODE', 'map keys must be text or integers');
      write(writer, key, depth + 1);
      write(writer, item, depth + 1);
    }
    return;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    if (Object.getOwnPropertySymbols(value).length > 0) throw new CborError('CBOR_ENCODE', 'symbol keys cannot be encoded');
    const entries = Object.entries(value as Record<string, unknown>);
    writer.head(5, entries.length);
    for (const [key, item] of entries) {
      write(writer, key, depth + 1);
      write(writer, item, depth + 1);
    }
    return;
  }
  throw new CborError('CBOR_ENCODE', `cannot encode ${typeof value}`);
}
