/**
 * CRC-32/ISO-HDLC (the zlib and PNG CRC: reflected polynomial 0xEDB88320, initial value and final XOR
 * 0xFFFFFFFF; check value of "123456789" is 0xCBF43926), which the EIF header's `eif_crc32` uses
 * (specs/nitro-enclave.md §1). Written here, not taken from node:zlib, so the reader stays browser-safe.
 *
 * Incremental (`createCrc32().update(...)`), because the EIF reader streams images far larger than memory
 * should hold. Slicing-by-8: eight 256-entry tables let the loop take eight bytes per step, several times
 * faster than the one-table loop on large sections. Pure: no I/O.
 */

const POLYNOMIAL = 0xedb88320;
/** TABLES[k][b]: the CRC of byte b followed by k zero bytes; TABLES[0] is the classic table. */
const TABLES: readonly Int32Array[] = (() => {
  const tables = Array.from({ length: 8 }, () => new Int32Array(256));
  const base = tables[0]!;
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? POLYNOMIAL ^ (c >>> 1) : c >>> 1;
    base[n] = c;
  }
  for (let k = 1; k < 8; k++) {
    const previous = tables[k - 1]!;
    const table = tables[k]!;
    for (let n = 0; n < 256; n++) table[n] = (previous[n]! >>> 8) ^ base[previous[n]! & 0xff]!;
  }
  return tables;
})();

export interface Crc32 {
  update(bytes: Uint8Array): Crc32;
  /** The CRC of everything given so far, as an unsigned 32-bit number. Does not end the computation. */
  value(): number;
}

export function createCrc32(): Crc32 {
  // The running register, kept inverted (initial value 0xFFFFFFFF) between updates.
  let crc = -1;
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array];
  const self: Crc32 = {
    update(bytes) {
      if (!(bytes instanceof Uint8Array)) throw new TypeError('"bytes" expected a Uint8Array');
      let c = crc;
      let i = 0;
      const end8 = bytes.length - (bytes.length % 8);
      for (; i < end8; i += 8) {
        const low = c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
        c =
          t7[low & 0xff]! ^
          t6[(low >>> 8) & 0xff]! ^
          t5[(low >>> 16) & 0xff]! ^
          t4[low >>> 24]! ^
          t3[bytes[i + 4]!]! ^
          t2[bytes[i + 5]!]! ^
          t1[bytes[i + 6]!]! ^
          t0[bytes[i + 7]!]!;
      }
      for (; i < bytes.length; i++) c = t0[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
      crc = c;
      return self;
    },
    value() {
      return (crc ^ -1) >>> 0;
    },
  };
  return self;
}

/** CRC-32/ISO-HDLC of `bytes` in one call. */
export function crc32(bytes: Uint8Array): number {
  return createCrc32().update(bytes).value();
}
