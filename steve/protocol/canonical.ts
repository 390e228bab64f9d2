/**
 * A cursor for reading CBOR that is in canonical form only (shortest heads, definite lengths), used
 * by the decoders' in-place fast paths (messages.ts, application.ts). Every read checks the bytes left
 * first and answers "no" (false, -1 or null) instead of throwing: anything it does not recognise is
 * left to the strict codec, which decides and names the error. Pure: no I/O.
 */

export class CanonicalReader {
  at = 0;

  constructor(readonly bytes: Uint8Array) {}

  /** True when every byte has been read. */
  get done(): boolean {
    return this.at === this.bytes.length;
  }

  /** Consumes `expected` when the next bytes are exactly it. */
  literal(expected: Uint8Array): boolean {
    const { bytes, at } = this;
    if (at + expected.length > bytes.length) return false;
    for (let i = 0; i < expected.length; i++) if (bytes[at + i] !== expected[i]) return false;
    this.at = at + expected.length;
    return true;
  }

  /** Consumes `length` bytes and returns them as a view, or null when fewer are left. */
  take(length: number): Uint8Array | null {
    if (length < 0 || this.at + length > this.bytes.length) return null;
    this.at += length;
    return this.bytes.subarray(this.at - length, this.at);
  }

  /** The argument of a head of `major` type (0..7) in its shortest form, up to 4 bytes long; -1 otherwise. */
  head(major: number): number {
    const { bytes, at } = this;
    const end = bytes.length;
    if (at >= end) return -1;
    const initial = bytes[at]!;
    if (initial >> 5 !== major) return -1;
    const info = initial & 0x1f;
    if (info < 24) {
      this.at = at + 1;
      return info;
    }
    if (info === 24 && at + 2 <= end && bytes[at + 1]! >= 24) {
      this.at = at + 2;
      return bytes[at + 1]!;
    }
    if (info === 25 && at + 3 <= end) {
      const value = (bytes[at + 1]! << 8) | bytes[at + 2]!;
      if (value <= 0xff) return -1;
      this.at = at + 3;
      return value;
    }
    if (info === 26 && at + 5 <= end) {
      const value = ((bytes[at + 1]! << 24) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 8) | bytes[at + 4]!) >>> 0;
      if (value <= 0xffff) return -1;
      this.at = at + 5;
      return value;
    }
    return -1;
  }

  /** A text string of ASCII only (always valid UTF-8), or null. */
  ascii(): string | null {
    const length = this.head(3);
    const { bytes, at } = this;
    if (length < 0 || at + length > bytes.length) return null;
    let out = '';
    for (let i = at; i < at + length; i++) {
      const byte = bytes[i]!;
      if (byte >= 0x80) return null;
      out += String.fromCharCode(byte);
    }
    this.at = at + length;
    return out;
  }

  /** A byte string, as a view, or null. */
  byteString(): Uint8Array | null {
    return this.take(this.head(2));
  }
}
