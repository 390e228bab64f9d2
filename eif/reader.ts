/**
 * Reads an EIF (specs/nitro-enclave.md §1-§2) from untrusted bytes and measures it: PCR0, PCR1, PCR2, and
 * PCR8 of a signed image. A push parser: `update(chunk)` as the bytes arrive, `finish()` at the end, so a
 * multi-GiB image streams through in bounded memory (the command line, metadata and signature sections,
 * each under its own cap, are the only bytes kept). `parseEif(bytes)` does both for bytes in memory.
 *
 * Fail closed, cheapest checks first, each with its code: the magic (from the first byte on), the
 * version (4 only: AWS's tools write 4 and QEMU's nitro-enclave machine refuses older ones; a later
 * version may change the layout), the header fields (flags bit 0 only, reserved and unused zero, unused
 * table entries zero), the section count (2..32), the offset table against a sequential walk from the end
 * of the header, the declared size against `maxBytes` (before any section is read), then each section
 * header as it arrives: a known type, zero flags, the size the table gives, under its type's cap, the
 * kernel first, the command line before any ramdisk, no second kernel, command line, metadata or
 * signature. At the end: nothing missing or after the last section, then the CRC-32, and only then are the
 * command line, metadata and signature parsed and the PCRs returned. Nothing is allocated from a size in
 * the file beyond those caps. Pure: the hash function is a parameter, no I/O, browser-safe.
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
  EIF_METADATA_MAX_DEPTH,
  EIF_MIN_SECTIONS,
  EIF_SECTION_HEADER_BYTES,
  EIF_SIGNATURE_MAX_BYTES,
  EIF_VERSION,
  HEADER,
  SECTION_TYPE_NAMES,
  type EifSectionType,
} from './format.js';
import { checkDigest, extendFromZero, nobleSha384, type Sha384, type Sha384Factory } from './hash.js';
import { parseEifSignature, type EifSignature } from './signature.js';

export interface EifReaderOptions {
  /** Largest image accepted, as its header declares it. Default EIF_DEFAULT_MAX_BYTES (16 GiB). */
  maxBytes?: number;
  /** SHA-384 implementation. Default @noble/hashes; Node callers pass node:crypto's for speed. */
  sha384?: Sha384Factory;
}

export interface EifSectionInfo {
  type: EifSectionType;
  /** Offset of the section's 12-byte header in the file. */
  offset: number;
  /** Size of the section's data (its header excluded). */
  size: number;
}

export interface EifDescription {
  version: number;
  arch: 'x86_64' | 'aarch64';
  /** The header's flags field (bit 0: aarch64). */
  flags: number;
  /** The header's default_mem and default_cpus: launch defaults, not measured. */
  defaultMemoryBytes: number;
  defaultCpus: number;
  totalBytes: number;
  /** The CRC-32 the header declares, which the file matched. */
  crc32: number;
  sections: readonly EifSectionInfo[];
  cmdline: string;
  /** The metadata section's JSON object (not measured), or null without one. */
  metadata: Record<string, unknown> | null;
  /** The signature section, or null for an unsigned image. */
  signature: EifSignature | null;
  /** PCR index -> 48-byte value: 0, 1 and 2, and 8 for a signed image (specs/nitro-enclave.md §2). */
  pcrs: ReadonlyMap<number, Uint8Array>;
}

export interface EifReader {
  /** Feeds the next bytes of the file. Throws an EifError as soon as they show the image is invalid. */
  update(chunk: Uint8Array): EifReader;
  /** Ends the file: checks that nothing is missing and the CRC, then describes the image. */
  finish(): EifDescription;
  /** Bytes consumed so far. */
  readonly bytesRead: number;
}

const u16 = (view: DataView, at: number) => view.getUint16(at, false);
const u32 = (view: DataView, at: number) => view.getUint32(at, false);
/** A u64 as a number; exact up to 2^53, and any larger value stays larger than every bound compared with. */
const u64 = (view: DataView, at: number) => view.getUint32(at, false) * 2 ** 32 + view.getUint32(at + 4, false);
const hex32 = (n: number) => n.toString(16).padStart(8, '0');

interface Plan {
  version: number;
  flags: number;
  defaultMemoryBytes: number;
  defaultCpus: number;
  crc32: number;
  offsets: number[];
  sizes: number[];
  totalBytes: number;
}

function fail(code: ConstructorParameters<typeof EifError>[0], message: string): never {
  throw new EifError(code, message);
}

/** Refuses a file whose first bytes (as many as have arrived, up to four) are not `.eif`. */
function checkMagic(start: Uint8Array): void {
  for (let i = 0; i < start.length; i++) if (start[i] !== EIF_MAGIC[i]) fail('EIF_MAGIC', 'not an EIF: the file does not start with ".eif"');
}

/** The header's checks (see the file comment). */
function parseHeader(bytes: Uint8Array, maxBytes: number): Plan {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  checkMagic(bytes.subarray(0, EIF_MAGIC.length));
  const version = u16(view, HEADER.version);
  if (version !== EIF_VERSION) fail('EIF_VERSION', `EIF version ${version}; only version ${EIF_VERSION} is read`);
  const flags = u16(view, HEADER.flags);
  if ((flags & ~EIF_FLAG_AARCH64) !== 0) fail('EIF_HEADER', `header flags 0x${flags.toString(16)}: only bit 0 (aarch64) is defined`);
  const defaultMemoryBytes = u64(view, HEADER.defaultMemory);
  const defaultCpus = u64(view, HEADER.defaultCpus);
  if (!Number.isSafeInteger(defaultMemoryBytes) || !Number.isSafeInteger(defaultCpus)) fail('EIF_HEADER', 'default_mem or default_cpus is beyond 2^53');
  if (u16(view, HEADER.reserved) !== 0) fail('EIF_HEADER', 'the reserved header field is not zero');
  if (u32(view, HEADER.unused) !== 0) fail('EIF_HEADER', 'the unused header field is not zero');
  const count = u16(view, HEADER.numSections);
  if (count < EIF_MIN_SECTIONS || count > EIF_MAX_SECTIONS) fail('EIF_SECTION', `num_sections is ${count}, expected ${EIF_MIN_SECTIONS} to ${EIF_MAX_SECTIONS}`);
  const offsets: number[] = [];
  const sizes: number[] = [];
  let end = EIF_HEADER_BYTES;
  for (let i = 0; i < EIF_MAX_SECTIONS; i++) {
    const offset = u64(view, HEADER.sectionOffsets + 8 * i);
    const size = u64(view, HEADER.sectionSizes + 8 * i);
    if (i >= count) {
      if (offset !== 0 || size !== 0) fail('EIF_HEADER', `section table entry ${i} is set, but num_sections is ${count}`);
      continue;
    }
    // Sections follow each other with no gap: each starts where the previous one's data ends.
    if (offset !== end) fail('EIF_HEADER', `section_offsets[${i}] is ${offset}, but the sections before it end at ${end}`);
    if (size > maxBytes) fail('EIF_TOO_LARGE', `section ${i} is ${size} bytes, more than the ${maxBytes} accepted`);
    end = offset + EIF_SECTION_HEADER_BYTES + size;
    if (end > maxBytes) fail('EIF_TOO_LARGE', `the header declares at least ${end} bytes, more than the ${maxBytes} accepted`);
    offsets.push(offset);
    sizes.push(size);
  }
  return { version, flags, defaultMemoryBytes, defaultCpus, crc32: u32(view, HEADER.crc), offsets, sizes, totalBytes: end };
}

/**
 * Whether every array and object in `value` nests at most `maxDepth` deep (iterative: no stack to blow).
 * Also the agent's check of JSON it fetches (agent/verify-remote.ts).
 */
export function jsonDepthWithin(value: unknown, maxDepth: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (typeof item !== 'object' || item === null) continue;
    if (depth >= maxDepth) return false;
    for (const child of Array.isArray(item) ? item : Object.values(item)) stack.push([child, depth + 1]);
  }
  return true;
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

function parseCmdline(bytes: Uint8Array): string {
  let text: string;
  try {
    // ignoreBOM keeps a leading U+FEFF: the text shown must be every measured byte.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    fail('EIF_CMDLINE', 'the command line is not UTF-8');
  }
  // The kernel reads the command line as a C string: text after a NUL would be measured but never seen.
  if (text.includes('\0')) fail('EIF_CMDLINE', 'the command line contains a NUL byte');
  return text;
}

function parseMetadata(bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    fail('EIF_METADATA', 'the metadata section is not UTF-8 JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('EIF_METADATA', 'the metadata section is not a JSON object');
  if (!jsonDepthWithin(value, EIF_METADATA_MAX_DEPTH)) fail('EIF_METADATA', `the metadata section nests deeper than ${EIF_METADATA_MAX_DEPTH} levels`);
  return value as Record<string, unknown>;
}

/** Largest size each kind of section may have, and the smallest. */
const SECTION_LIMITS: Record<EifSectionType, { min: number; max: number }> = {
  kernel: { min: 1, max: Number.MAX_SAFE_INTEGER },
  cmdline: { min: 0, max: EIF_CMDLINE_MAX_BYTES },
  ramdisk: { min: 1, max: Number.MAX_SAFE_INTEGER },
  signature: { min: 1, max: EIF_SIGNATURE_MAX_BYTES },
  metadata: { min: 1, max: EIF_METADATA_MAX_BYTES },
};

/** Creates a streaming reader (see the file comment). After it throws once, every later call throws the same error. */
export function createEifReader(options: EifReaderOptions = {}): EifReader {
  const maxBytes = options.maxBytes ?? EIF_DEFAULT_MAX_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < EIF_HEADER_BYTES) throw new EifError('EIF_BAD_ARGUMENT', `"maxBytes" expected an integer of at least ${EIF_HEADER_BYTES}`);
  const hash = options.sha384 ?? nobleSha384;
  const crc = createCrc32();
  /** PCR0's, PCR1's and PCR2's D (specs/nitro-enclave.md §2). */
  const image = hash();
  const bootstrap = hash();
  const app = hash();

  const header = new Uint8Array(EIF_HEADER_BYTES);
  const sectionHeader = new Uint8Array(EIF_SECTION_HEADER_BYTES);
  let fill = 0;
  let plan: Plan | undefined;
  let phase: 'header' | 'section-header' | 'section-data' | 'done' | 'finished' = 'header';
  let received = 0;
  let error: EifError | undefined;

  const sections: EifSectionInfo[] = [];
  let remaining = 0;
  let sinks: Sha384[] = [];
  let kept: Uint8Array[] | undefined;
  let ramdisks = 0;
  const keptSections: Partial<Record<EifSectionType, Uint8Array>> = {};

  function endSection(): void {
    const section = sections[sections.length - 1]!;
    if (kept !== undefined) keptSections[section.type] = concat(kept);
    kept = undefined;
    sinks = [];
    phase = sections.length === plan!.offsets.length ? 'done' : 'section-header';
    fill = 0;
  }

  function startSection(): void {
    const view = new DataView(sectionHeader.buffer);
    const index = sections.length;
    const typeNumber = u16(view, 0);
    const type = SECTION_TYPE_NAMES.get(typeNumber);
    if (type === undefined) fail('EIF_SECTION', `section ${index} has type ${typeNumber}, not one of 1 (kernel) to 5 (metadata)`);
    if (u16(view, 2) !== 0) fail('EIF_SECTION', `section ${index} (${type}) has flags 0x${u16(view, 2).toString(16)}; none are defined`);
    const size = u64(view, 4);
    if (size !== plan!.sizes[index]) fail('EIF_SECTION', `section ${index} (${type}) says ${size} bytes, the header's table ${plan!.sizes[index]}`);
    if (index === 0 && type !== 'kernel') fail('EIF_SECTION', `section 0 is ${type}; the kernel comes first`);
    const seen = (t: EifSectionType) => sections.some((s) => s.type === t);
    if (index > 0 && type !== 'ramdisk' && seen(type)) fail('EIF_SECTION', `section ${index} is a second ${type} section`);
    if (type === 'cmdline' && ramdisks > 0) fail('EIF_SECTION', `section ${index} is the command line, after a ramdisk; it comes before them`);
    const { min, max } = SECTION_LIMITS[type];
    if (size < min || size > max) fail('EIF_SECTION', `section ${index} (${type}) is ${size} bytes, expected ${min} to ${max}`);
    sections.push({ type, offset: plan!.offsets[index]!, size });
    // What each section's data feeds (specs/nitro-enclave.md §2): PCR0 everything measured, PCR1 the kernel,
    // command line and first ramdisk, PCR2 the later ramdisks. Metadata and signature are not measured.
    if (type === 'kernel' || type === 'cmdline') sinks = [image, bootstrap];
    else if (type === 'ramdisk') sinks = ramdisks++ === 0 ? [image, bootstrap] : [image, app];
    else sinks = [];
    kept = type === 'cmdline' || type === 'metadata' || type === 'signature' ? [] : undefined;
    remaining = size;
    phase = 'section-data';
    if (remaining === 0) endSection();
  }

  function consume(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      if (phase === 'header' || phase === 'section-header') {
        const target = phase === 'header' ? header : sectionHeader;
        const n = Math.min(target.length - fill, chunk.length - at);
        target.set(chunk.subarray(at, at + n), fill);
        fill += n;
        at += n;
        received += n;
        // The magic is judged on its first byte, so any other file is refused as what it is, not as "short".
        if (phase === 'header') checkMagic(header.subarray(0, Math.min(fill, EIF_MAGIC.length)));
        if (fill < target.length) continue;
        if (phase === 'header') {
          // The CRC covers the header without its own last field (specs/nitro-enclave.md §1).
          crc.update(header.subarray(0, HEADER.crc));
          plan = parseHeader(header, maxBytes);
          phase = 'section-header';
          fill = 0;
        } else {
          crc.update(sectionHeader);
          startSection();
        }
      } else if (phase === 'section-data') {
        const n = Math.min(remaining, chunk.length - at);
        const piece = chunk.subarray(at, at + n);
        crc.update(piece);
        for (const sink of sinks) sink.update(piece);
        // A copy: the caller may reuse its buffer for the next chunk.
        kept?.push(piece.slice());
        remaining -= n;
        at += n;
        received += n;
        if (remaining === 0) endSection();
      } else {
        fail('EIF_TRAILING_BYTES', `bytes after the last section, which ends at ${plan!.totalBytes}`);
      }
    }
  }

  function guarded<T>(fn: () => T): T {
    if (error !== undefined) throw error;
    if (phase === 'finished') throw new EifError('EIF_BAD_ARGUMENT', 'the reader has finished');
    try {
      return fn();
    } catch (err) {
      if (err instanceof EifError) error = err;
      throw err;
    }
  }

  function describe(): EifDescription {
    if (phase !== 'done') {
      fail('EIF_TRUNCATED', plan === undefined ? `the file ends after ${received} bytes, inside the ${EIF_HEADER_BYTES}-byte header` : `the file ends after ${received} bytes; its header declares ${plan.totalBytes}`);
    }
    phase = 'finished';
    if (!sections.some((s) => s.type === 'cmdline')) fail('EIF_SECTION', 'no command line section');
    if (ramdisks === 0) fail('EIF_SECTION', 'no ramdisk section');
    const actual = crc.value();
    if (actual !== plan!.crc32) fail('EIF_CRC', `CRC-32 mismatch: the file's is ${hex32(actual)}, its header says ${hex32(plan!.crc32)}`);
    // The CRC matched: only now are the kept sections read.
    const cmdline = parseCmdline(keptSections.cmdline!);
    const metadata = keptSections.metadata === undefined ? null : parseMetadata(keptSections.metadata);
    const signature = keptSections.signature === undefined ? null : parseEifSignature(keptSections.signature);
    const pcrs = new Map<number, Uint8Array>([
      [0, extendFromZero(checkDigest(image.digest()), hash)],
      [1, extendFromZero(checkDigest(bootstrap.digest()), hash)],
      [2, extendFromZero(checkDigest(app.digest()), hash)],
    ]);
    if (signature !== null) {
      const fingerprint = hash();
      fingerprint.update(signature.certificateDer);
      pcrs.set(8, extendFromZero(checkDigest(fingerprint.digest()), hash));
    }
    return {
      version: plan!.version,
      arch: (plan!.flags & EIF_FLAG_AARCH64) !== 0 ? 'aarch64' : 'x86_64',
      flags: plan!.flags,
      defaultMemoryBytes: plan!.defaultMemoryBytes,
      defaultCpus: plan!.defaultCpus,
      totalBytes: plan!.totalBytes,
      crc32: plan!.crc32,
      sections,
      cmdline,
      metadata,
      signature,
      pcrs,
    };
  }

  const reader: EifReader = {
    update(chunk) {
      if (!(chunk instanceof Uint8Array)) throw new EifError('EIF_BAD_ARGUMENT', '"chunk" expected a Uint8Array');
      guarded(() => consume(chunk));
      return reader;
    },
    finish() {
      return guarded(describe);
    },
    get bytesRead() {
      return received;
    },
  };
  return reader;
}

/** Reads and measures an EIF held in memory (see createEifReader). Throws an EifError. */
export function parseEif(bytes: Uint8Array, options: EifReaderOptions = {}): EifDescription {
  if (!(bytes instanceof Uint8Array)) throw new EifError('EIF_BAD_ARGUMENT', '"bytes" expected a Uint8Array');
  return createEifReader(options).update(bytes).finish();
}
