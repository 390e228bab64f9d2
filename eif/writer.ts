/**
 * Writes an EIF version 4 (specs/nitro-enclave.md §1) from bytes in memory: deterministic, so the same
 * inputs give the same file on any machine (the build time is an argument, never the clock). Sections in
 * the order AWS's builder writes them: kernel, command line, metadata, ramdisks, then a signature section
 * when one is given (this module does not sign; a caller or test may pass a prepared section). Default
 * memory and CPUs are AWS's builder's defaults (1 GiB, 2), which launchers may override; none of these
 * header fields is measured.
 *
 * `encodeEifMetadata` writes the metadata JSON with AWS's key names in a fixed order. `buildEif` is also the
 * way tests and the QEMU rig make small images from given bytes. Pure and browser-safe.
 */

import { createCrc32 } from './crc32.js';
import { EifError } from './errors.js';
import {
  EIF_CMDLINE_MAX_BYTES,
  EIF_DEFAULT_MAX_BYTES,
  EIF_FLAG_AARCH64,
  EIF_HEADER_BYTES,
  EIF_MAGIC,
  EIF_MAX_SECTIONS,
  EIF_METADATA_MAX_BYTES,
  EIF_SECTION_HEADER_BYTES,
  EIF_SIGNATURE_MAX_BYTES,
  EIF_VERSION,
  HEADER,
  SECTION_TYPES,
  type EifSectionType,
} from './format.js';

/** AWS's builder's launch defaults (aws-nitro-enclaves-image-format EifBuilder): 1 GiB and 2 CPUs. */
export const EIF_DEFAULT_MEMORY_BYTES = 1024 ** 3;
export const EIF_DEFAULT_CPUS = 2;

export interface EifBuildInput {
  /** The kernel image (bzImage on x86_64). */
  kernel: Uint8Array;
  /** The kernel command line, written without a trailing NUL. */
  cmdline: string;
  /** One or more ramdisks (newc cpio, optionally gzip); the first is PCR1's, the rest PCR2's. */
  ramdisks: readonly Uint8Array[];
  /** The metadata section's bytes (encodeEifMetadata); omitted: no metadata section. */
  metadata?: Uint8Array;
  /** A prepared signature section (CBOR, see signature.ts); omitted: an unsigned image. */
  signature?: Uint8Array;
  /** Default x86_64. */
  arch?: 'x86_64' | 'aarch64';
  /** Default EIF_DEFAULT_MEMORY_BYTES. */
  defaultMemoryBytes?: number;
  /** Default EIF_DEFAULT_CPUS. */
  defaultCpus?: number;
  /** Largest image written; default EIF_DEFAULT_MAX_BYTES, the reader's default. */
  maxBytes?: number;
}

export interface EifMetadataInput {
  imageName: string;
  imageVersion: string;
  /** Seconds since the epoch (SOURCE_DATE_EPOCH), written as RFC 3339 UTC. */
  buildTimeSeconds: number;
  buildTool: string;
  buildToolVersion: string;
  /** Default "linux". */
  operatingSystem?: string;
  /** Default "unknown". */
  kernelVersion?: string;
  /** Any JSON object the builder wants recorded; default null. */
  customMetadata?: Record<string, unknown> | null;
}

function bad(message: string): never {
  throw new EifError('EIF_BAD_ARGUMENT', message);
}

function checkBytes(value: unknown, name: string, minBytes: number): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) bad(`"${name}" expected a Uint8Array`);
  if (value.length < minBytes) bad(`"${name}" expected at least ${minBytes} byte(s), got ${value.length}`);
}

function checkCount(value: unknown, name: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) bad(`"${name}" expected a non-negative integer`);
  return value as number;
}

/**
 * The metadata JSON, compact, keys in AWS's order: ImageName, ImageVersion, BuildMetadata {BuildTime,
 * BuildTool, BuildToolVersion, OperatingSystem, KernelVersion}, DockerInfo (null: no Docker here),
 * CustomMetadata. Same input, same bytes.
 */
export function encodeEifMetadata(input: EifMetadataInput): Uint8Array {
  const text = (value: unknown, name: string): string => {
    if (typeof value !== 'string') bad(`"${name}" expected a string`);
    return value;
  };
  const seconds = input.buildTimeSeconds;
  // Up to 9999-12-31T23:59:59Z, the last instant RFC 3339's four-digit year can write.
  if (!Number.isSafeInteger(seconds) || seconds < 0 || seconds > 253_402_300_799) bad('"buildTimeSeconds" expected whole seconds from 0 to 253402300799');
  const custom = input.customMetadata ?? null;
  if (custom !== null && (typeof custom !== 'object' || Array.isArray(custom))) bad('"customMetadata" expected a JSON object or null');
  const metadata = {
    ImageName: text(input.imageName, 'imageName'),
    ImageVersion: text(input.imageVersion, 'imageVersion'),
    BuildMetadata: {
      BuildTime: new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z'),
      BuildTool: text(input.buildTool, 'buildTool'),
      BuildToolVersion: text(input.buildToolVersion, 'buildToolVersion'),
      OperatingSystem: text(input.operatingSystem ?? 'linux', 'operatingSystem'),
      KernelVersion: text(input.kernelVersion ?? 'unknown', 'kernelVersion'),
    },
    DockerInfo: null,
    CustomMetadata: custom,
  };
  const bytes = new TextEncoder().encode(JSON.stringify(metadata));
  if (bytes.length > EIF_METADATA_MAX_BYTES) bad(`the metadata is ${bytes.length} bytes, more than the ${EIF_METADATA_MAX_BYTES} a reader accepts`);
  return bytes;
}

/** Writes the image (see the file comment). Throws EIF_BAD_ARGUMENT for inputs a reader would refuse. */
export function buildEif(input: EifBuildInput): Uint8Array {
  checkBytes(input.kernel, 'kernel', 1);
  if (typeof input.cmdline !== 'string') bad('"cmdline" expected a string');
  if (input.cmdline.includes('\0')) bad('"cmdline" must not contain a NUL character');
  const cmdline = new TextEncoder().encode(input.cmdline);
  if (cmdline.length > EIF_CMDLINE_MAX_BYTES) bad(`"cmdline" is ${cmdline.length} bytes, more than ${EIF_CMDLINE_MAX_BYTES}`);
  if (!Array.isArray(input.ramdisks) || input.ramdisks.length === 0) bad('"ramdisks" expected at least one ramdisk');
  input.ramdisks.forEach((ramdisk, i) => checkBytes(ramdisk, `ramdisks[${i}]`, 1));
  if (input.metadata !== undefined) {
    checkBytes(input.metadata, 'metadata', 1);
    if (input.metadata.length > EIF_METADATA_MAX_BYTES) bad(`"metadata" is ${input.metadata.length} bytes, more than ${EIF_METADATA_MAX_BYTES}`);
  }
  if (input.signature !== undefined) {
    checkBytes(input.signature, 'signature', 1);
    if (input.signature.length > EIF_SIGNATURE_MAX_BYTES) bad(`"signature" is ${input.signature.length} bytes, more than ${EIF_SIGNATURE_MAX_BYTES}`);
  }
  const arch = input.arch ?? 'x86_64';
  if (arch !== 'x86_64' && arch !== 'aarch64') bad('"arch" expected x86_64 or aarch64');
  const defaultMemoryBytes = checkCount(input.defaultMemoryBytes ?? EIF_DEFAULT_MEMORY_BYTES, 'defaultMemoryBytes');
  const defaultCpus = checkCount(input.defaultCpus ?? EIF_DEFAULT_CPUS, 'defaultCpus');
  const maxBytes = checkCount(input.maxBytes ?? EIF_DEFAULT_MAX_BYTES, 'maxBytes');

  const sections: [EifSectionType, Uint8Array][] = [
    ['kernel', input.kernel],
    ['cmdline', cmdline],
    ...(input.metadata !== undefined ? [['metadata', input.metadata] as [EifSectionType, Uint8Array]] : []),
    ...input.ramdisks.map((ramdisk): [EifSectionType, Uint8Array] => ['ramdisk', ramdisk]),
    ...(input.signature !== undefined ? [['signature', input.signature] as [EifSectionType, Uint8Array]] : []),
  ];
  if (sections.length > EIF_MAX_SECTIONS) bad(`${sections.length} sections; an EIF holds at most ${EIF_MAX_SECTIONS}`);
  const total = sections.reduce((n, [, data]) => n + EIF_SECTION_HEADER_BYTES + data.length, EIF_HEADER_BYTES);
  if (total > maxBytes) bad(`the image would be ${total} bytes, more than ${maxBytes}`);

  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  const setU64 = (at: number, value: number) => {
    view.setUint32(at, Math.floor(value / 2 ** 32), false);
    view.setUint32(at + 4, value >>> 0, false);
  };
  out.set(EIF_MAGIC, HEADER.magic);
  view.setUint16(HEADER.version, EIF_VERSION, false);
  view.setUint16(HEADER.flags, arch === 'aarch64' ? EIF_FLAG_AARCH64 : 0, false);
  setU64(HEADER.defaultMemory, defaultMemoryBytes);
  setU64(HEADER.defaultCpus, defaultCpus);
  view.setUint16(HEADER.numSections, sections.length, false);
  let at = EIF_HEADER_BYTES;
  sections.forEach(([type, data], i) => {
    setU64(HEADER.sectionOffsets + 8 * i, at);
    setU64(HEADER.sectionSizes + 8 * i, data.length);
    view.setUint16(at, SECTION_TYPES[type], false);
    setU64(at + 4, data.length);
    out.set(data, at + EIF_SECTION_HEADER_BYTES);
    at += EIF_SECTION_HEADER_BYTES + data.length;
  });
  // Everything but the CRC field itself, in file order (specs/nitro-enclave.md §1).
  const crc = createCrc32().update(out.subarray(0, HEADER.crc)).update(out.subarray(EIF_HEADER_BYTES)).value();
  view.setUint32(HEADER.crc, crc, false);
  return out;
}
