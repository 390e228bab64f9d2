/**
 * EIF images for tests, assembled by hand from the numbers in specs/nitro-enclave.md §1 with Buffer and
 * node:zlib's crc32, independently of eif/writer.ts, so the writer and the reader are each checked against
 * something they did not produce. Also the PCRs of §2 computed directly with node:crypto, and signature
 * sections in the CBOR layout AWS's builder writes (serde_cbor of [PcrSignature]). Any section types,
 * order, flags and sizes can be written, so tests can build the malformed images a reader must refuse.
 */

import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const TYPE = { kernel: 1, cmdline: 2, ramdisk: 3, signature: 4, metadata: 5 } as const;
/** Header field offsets (specs/nitro-enclave.md §1), written out rather than taken from eif/format.ts. */
export const AT = { version: 4, flags: 6, mem: 8, cpus: 16, reserved: 24, count: 26, offsets: 28, sizes: 284, unused: 540, crc: 544 } as const;
export const HEADER_BYTES = 548;

export interface HandSection {
  type: number;
  data: Uint8Array;
  flags?: number;
  /** The size written in the section header, if not the data's. */
  headerSize?: number;
}

/** Recomputes the CRC field of an EIF in place (everything except bytes 544..547) and returns it. */
export function fixCrc(file: Buffer): Buffer {
  file.writeUInt32BE(crc32(Buffer.concat([file.subarray(0, AT.crc), file.subarray(HEADER_BYTES)])), AT.crc);
  return file;
}

/** XORs one byte in place. */
export function flipByte(bytes: Uint8Array, at: number, mask: number): void {
  bytes[at] = bytes[at]! ^ mask;
}

/** An EIF with these sections in this order, the offset and size tables filled in, and a correct CRC. */
export function handBuildEif(sections: readonly HandSection[], header: { version?: number; flags?: number; mem?: bigint; cpus?: bigint } = {}): Buffer {
  const head = Buffer.alloc(HEADER_BYTES);
  head.write('.eif', 0, 'latin1');
  head.writeUInt16BE(header.version ?? 4, AT.version);
  head.writeUInt16BE(header.flags ?? 0, AT.flags);
  head.writeBigUInt64BE(header.mem ?? 1n << 30n, AT.mem);
  head.writeBigUInt64BE(header.cpus ?? 2n, AT.cpus);
  head.writeUInt16BE(sections.length, AT.count);
  const parts: Buffer[] = [head];
  let offset = HEADER_BYTES;
  sections.forEach((section, i) => {
    head.writeBigUInt64BE(BigInt(offset), AT.offsets + 8 * i);
    head.writeBigUInt64BE(BigInt(section.data.length), AT.sizes + 8 * i);
    const sectionHeader = Buffer.alloc(12);
    sectionHeader.writeUInt16BE(section.type, 0);
    sectionHeader.writeUInt16BE(section.flags ?? 0, 2);
    sectionHeader.writeBigUInt64BE(BigInt(section.headerSize ?? section.data.length), 4);
    parts.push(sectionHeader, Buffer.from(section.data));
    offset += 12 + section.data.length;
  });
  return fixCrc(Buffer.concat(parts));
}

const utf8 = (text: string) => new TextEncoder().encode(text);

/** A small valid image's parts: kernel, command line, metadata, two ramdisks. */
export const SMALL = {
  kernel: utf8('a kernel: only its bytes matter here'),
  cmdline: 'console=ttyS0 quiet',
  metadata: utf8('{"ImageName":"small","BuildMetadata":{"BuildTime":"1970-01-01T00:00:00Z"}}'),
  ramdisks: [utf8('bootstrap ramdisk'), utf8('app ramdisk, the measured application')],
};

/** SMALL as AWS's builder orders it: kernel, cmdline, metadata, ramdisks. */
export function smallEif(): Buffer {
  return handBuildEif([
    { type: TYPE.kernel, data: SMALL.kernel },
    { type: TYPE.cmdline, data: utf8(SMALL.cmdline) },
    { type: TYPE.metadata, data: SMALL.metadata },
    ...SMALL.ramdisks.map((data) => ({ type: TYPE.ramdisk, data })),
  ]);
}

/** SHA-384(48 zero bytes || SHA-384(parts...)) with node:crypto (specs/nitro-enclave.md §2), as hex. */
export function pcrOf(parts: readonly Uint8Array[]): string {
  const d = createHash('sha384');
  for (const part of parts) d.update(part);
  return createHash('sha384').update(Buffer.alloc(48)).update(d.digest()).digest('hex');
}

// CBOR by hand (RFC 8949 §3), for signature sections: heads of major types 0 (unsigned), 2 (bytes),
// 3 (text), 4 (array) and 5 (map), shortest form.
export function cborHead(major: number, n: number): number[] {
  if (n < 24) return [(major << 5) | n];
  if (n < 0x100) return [(major << 5) | 24, n];
  if (n < 0x10000) return [(major << 5) | 25, n >> 8, n & 0xff];
  return [(major << 5) | 26, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}
export const cborText = (s: string): number[] => [...cborHead(3, s.length), ...utf8(s)];
/** A byte vector as serde_cbor writes Vec<u8>: an array of unsigned integers. */
export const cborIntArray = (bytes: Uint8Array): number[] => [...cborHead(4, bytes.length), ...[...bytes].flatMap((b) => cborHead(0, b))];
/** One PcrSignature: {"signing_certificate": [...], "signature": [...]}. */
export const cborSignatureEntry = (certificate: Uint8Array, signature: Uint8Array): number[] => [
  ...cborHead(5, 2),
  ...cborText('signing_certificate'),
  ...cborIntArray(certificate),
  ...cborText('signature'),
  ...cborIntArray(signature),
];
/** Stands in for the COSE_Sign1 over PCR0, which nothing here verifies. */
export const FAKE_COSE = Uint8Array.from([0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x40, 0x40]);
/** A signature section holding one entry for this PEM certificate. */
export function signatureSection(pem: string): Uint8Array {
  return Uint8Array.from([...cborHead(4, 1), ...cborSignatureEntry(utf8(pem), FAKE_COSE)]);
}
