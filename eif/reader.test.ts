/**
 * The EIF reader: PCRs against the spec's vector and an independent node:crypto computation, images
 * assembled by hand (test/eif-images.ts) including every malformation it must refuse with its code, the
 * streaming interface against the one-shot one, and hostile bytes (fast-check, fixed seeds): random
 * bytes, every single-byte change and every truncation of a small image, and random mutations with and
 * without the CRC recomputed.
 */

import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AT, fixCrc, flipByte, handBuildEif, HEADER_BYTES, pcrOf, SMALL, smallEif, TYPE, type HandSection } from '../test/eif-images.js';
import { mutate, mutationArbitrary } from '../test/mutations.js';
import { createEifReader, EifError, parseEif, type EifErrorCode, type Sha384Factory } from './index.js';

const utf8 = (text: string) => new TextEncoder().encode(text);
const hex = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? []).toString('hex');
/** specs/nitro-enclave.md §2: PCR2 of any image with a single ramdisk. */
const SINGLE_RAMDISK_PCR2 = '21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a';
const nodeSha384: Sha384Factory = () => {
  const h = createHash('sha384');
  return { update: (data: Uint8Array) => h.update(data), digest: () => new Uint8Array(h.digest()) };
};

function refusal(fn: () => unknown): EifError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(EifError);
    return err as EifError;
  }
  throw new Error('expected an EifError, but the image was accepted');
}

function expectRefused(bytes: Uint8Array, code: EifErrorCode, message?: RegExp, options?: { maxBytes?: number }): void {
  const err = refusal(() => parseEif(bytes, options));
  expect(err.code, err.message).toBe(code);
  if (message !== undefined) expect(err.message).toMatch(message);
}

const kernel: HandSection = { type: TYPE.kernel, data: SMALL.kernel };
const cmdline: HandSection = { type: TYPE.cmdline, data: utf8(SMALL.cmdline) };
const metadata: HandSection = { type: TYPE.metadata, data: SMALL.metadata };
const ramdisk0: HandSection = { type: TYPE.ramdisk, data: SMALL.ramdisks[0]! };
const ramdisk1: HandSection = { type: TYPE.ramdisk, data: SMALL.ramdisks[1]! };

describe('parseEif: PCRs', () => {
  it('a single ramdisk gives the spec\'s PCR2 constant, and PCR0 == PCR1', () => {
    const eif = parseEif(handBuildEif([kernel, cmdline, ramdisk0]));
    expect(hex(eif.pcrs.get(2))).toBe(SINGLE_RAMDISK_PCR2);
    expect(hex(eif.pcrs.get(0))).toBe(hex(eif.pcrs.get(1)));
    expect(hex(eif.pcrs.get(0))).toBe(pcrOf([SMALL.kernel, utf8(SMALL.cmdline), SMALL.ramdisks[0]!]));
    expect([...eif.pcrs.keys()]).toEqual([0, 1, 2]);
  });

  it('PCR0 covers kernel, cmdline and every ramdisk, PCR1 the first ramdisk, PCR2 the rest; metadata is not measured', () => {
    const eif = parseEif(smallEif());
    const [r0, r1] = SMALL.ramdisks as [Uint8Array, Uint8Array];
    expect(hex(eif.pcrs.get(0))).toBe(pcrOf([SMALL.kernel, utf8(SMALL.cmdline), r0, r1]));
    expect(hex(eif.pcrs.get(1))).toBe(pcrOf([SMALL.kernel, utf8(SMALL.cmdline), r0]));
    expect(hex(eif.pcrs.get(2))).toBe(pcrOf([r1]));
    const otherMetadata = parseEif(handBuildEif([kernel, cmdline, { type: TYPE.metadata, data: utf8('{"other":true}') }, ramdisk0, ramdisk1]));
    expect(otherMetadata.pcrs).toEqual(eif.pcrs);
    const noMetadata = parseEif(handBuildEif([kernel, cmdline, ramdisk0, ramdisk1]));
    expect(noMetadata.pcrs).toEqual(eif.pcrs);
    expect(noMetadata.metadata).toBeNull();
  });

  it('three ramdisks: PCR2 covers the second and third in order', () => {
    const r2 = utf8('third');
    const eif = parseEif(handBuildEif([kernel, cmdline, metadata, ramdisk0, ramdisk1, { type: TYPE.ramdisk, data: r2 }]));
    expect(hex(eif.pcrs.get(2))).toBe(pcrOf([SMALL.ramdisks[1]!, r2]));
  });

  it('one changed byte of the app ramdisk (CRC recomputed) moves PCR0 and PCR2, not PCR1', () => {
    const file = smallEif();
    const before = parseEif(file);
    const last = file.length - 1; // the last byte of the last ramdisk
    flipByte(file, last, 0x01);
    const after = parseEif(fixCrc(file));
    expect(hex(after.pcrs.get(0))).not.toBe(hex(before.pcrs.get(0)));
    expect(hex(after.pcrs.get(1))).toBe(hex(before.pcrs.get(1)));
    expect(hex(after.pcrs.get(2))).not.toBe(hex(before.pcrs.get(2)));
  });

  it('the default (noble) and a node:crypto hasher give the same PCRs', () => {
    const file = smallEif();
    expect(parseEif(file, { sha384: nodeSha384 }).pcrs).toEqual(parseEif(file).pcrs);
  });

  it('refuses a hasher that does not return 48 bytes', () => {
    const short: Sha384Factory = () => ({ update: () => undefined, digest: () => new Uint8Array(32) });
    expect(() => parseEif(smallEif(), { sha384: short })).toThrow(TypeError);
  });
});

describe('parseEif: what it reports', () => {
  it('header fields, sections with offsets and sizes, the command line and the metadata', () => {
    const file = smallEif();
    const eif = parseEif(file);
    expect(eif.version).toBe(4);
    expect(eif.arch).toBe('x86_64');
    expect(eif.defaultMemoryBytes).toBe(1024 ** 3);
    expect(eif.defaultCpus).toBe(2);
    expect(eif.totalBytes).toBe(file.length);
    expect(eif.crc32).toBe(file.readUInt32BE(AT.crc));
    expect(eif.cmdline).toBe(SMALL.cmdline);
    expect(eif.metadata).toEqual(JSON.parse(new TextDecoder().decode(SMALL.metadata)));
    expect(eif.signature).toBeNull();
    let offset = HEADER_BYTES;
    const expected = [
      ['kernel', SMALL.kernel.length],
      ['cmdline', SMALL.cmdline.length],
      ['metadata', SMALL.metadata.length],
      ['ramdisk', SMALL.ramdisks[0]!.length],
      ['ramdisk', SMALL.ramdisks[1]!.length],
    ] as const;
    expect(eif.sections).toEqual(
      expected.map(([type, size]) => {
        const section = { type, offset, size };
        offset += 12 + size;
        return section;
      }),
    );
  });

  it('flags bit 0 is aarch64; an empty command line is allowed', () => {
    const eif = parseEif(handBuildEif([kernel, { type: TYPE.cmdline, data: new Uint8Array(0) }, ramdisk0], { flags: 1 }));
    expect(eif.arch).toBe('aarch64');
    expect(eif.cmdline).toBe('');
  });

  it('keeps a leading byte-order mark in the command line: every measured byte is shown', () => {
    const eif = parseEif(handBuildEif([kernel, { type: TYPE.cmdline, data: utf8('\uFEFFquiet') }, ramdisk0]));
    expect(eif.cmdline).toBe('\uFEFFquiet');
  });
});

describe('createEifReader: streaming', () => {
  it('any split into chunks gives the same description as one call', () => {
    const file = smallEif();
    const whole = parseEif(file);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: file.length }), { maxLength: 12 }), (cuts) => {
        const points = [...new Set([0, ...cuts, file.length])].sort((a, b) => a - b);
        const reader = createEifReader();
        for (let i = 1; i < points.length; i++) reader.update(file.subarray(points[i - 1], points[i]));
        expect(reader.bytesRead).toBe(file.length);
        expect(reader.finish()).toEqual(whole);
      }),
      { seed: 14, numRuns: 300 },
    );
  });

  it('copies what it keeps: a caller reusing its buffer does not change the result', () => {
    const file = smallEif();
    const reader = createEifReader();
    const buffer = new Uint8Array(7);
    for (let at = 0; at < file.length; at += buffer.length) {
      const n = Math.min(buffer.length, file.length - at);
      buffer.set(file.subarray(at, at + n));
      reader.update(buffer.subarray(0, n));
      buffer.fill(0xee);
    }
    expect(reader.finish()).toEqual(parseEif(file));
  });

  it('refuses as soon as the bytes show a problem, and keeps refusing with the same error', () => {
    const file = smallEif();
    file[0] = 0x00;
    const reader = createEifReader();
    const first = refusal(() => reader.update(file.subarray(0, 10)));
    expect(first.code).toBe('EIF_MAGIC');
    expect(refusal(() => reader.update(file.subarray(10)))).toBe(first);
    expect(refusal(() => reader.finish())).toBe(first);
  });

  it('a finished reader takes nothing more', () => {
    const reader = createEifReader().update(smallEif());
    reader.finish();
    expect(refusal(() => reader.finish()).code).toBe('EIF_BAD_ARGUMENT');
    expect(refusal(() => reader.update(new Uint8Array(1))).code).toBe('EIF_BAD_ARGUMENT');
  });

  it('refuses bad arguments', () => {
    expect(refusal(() => createEifReader({ maxBytes: 100 })).code).toBe('EIF_BAD_ARGUMENT');
    expect(refusal(() => createEifReader({ maxBytes: 2 ** 60 })).code).toBe('EIF_BAD_ARGUMENT');
    expect(refusal(() => createEifReader().update('text' as unknown as Uint8Array)).code).toBe('EIF_BAD_ARGUMENT');
    expect(refusal(() => parseEif([1, 2] as unknown as Uint8Array)).code).toBe('EIF_BAD_ARGUMENT');
  });
});

/** The small image with `change` applied to a copy, and the CRC recomputed unless `keepCrc`. */
function changed(change: (file: Buffer) => void, keepCrc = false): Buffer {
  const file = smallEif();
  change(file);
  return keepCrc ? file : fixCrc(file);
}

describe('parseEif: refusals, each with its code', () => {
  const sectionHeaderAt = (file: Buffer, index: number) => Number(file.readBigUInt64BE(AT.offsets + 8 * index));
  const cases: [string, () => Uint8Array, EifErrorCode, RegExp, { maxBytes?: number }?][] = [
    ['an empty file', () => new Uint8Array(0), 'EIF_TRUNCATED', /ends after 0 bytes, inside the 548-byte header/],
    ['a three-byte text file', () => utf8('hi\n'), 'EIF_MAGIC', /does not start with ".eif"/],
    ['the first two bytes of the magic only', () => utf8('.e'), 'EIF_TRUNCATED', /ends after 2 bytes/],
    ['a cut header', () => smallEif().subarray(0, 547), 'EIF_TRUNCATED', /inside the 548-byte header/],
    ['a cut last section', () => smallEif().subarray(0, -1), 'EIF_TRUNCATED', /header declares \d+/],
    ['a byte after the last section', () => Buffer.concat([smallEif(), Buffer.of(0)]), 'EIF_TRAILING_BYTES', /after the last section/],
    ['another magic', () => changed((f) => f.write('EIF.', 0, 'latin1')), 'EIF_MAGIC', /does not start with ".eif"/],
    ['version 3', () => changed((f) => f.writeUInt16BE(3, AT.version)), 'EIF_VERSION', /version 3/],
    ['version 5', () => changed((f) => f.writeUInt16BE(5, AT.version)), 'EIF_VERSION', /version 5/],
    ['an undefined flag', () => changed((f) => f.writeUInt16BE(2, AT.flags)), 'EIF_HEADER', /flags 0x2/],
    ['reserved set', () => changed((f) => f.writeUInt16BE(1, AT.reserved)), 'EIF_HEADER', /reserved/],
    ['unused set', () => changed((f) => f.writeUInt32BE(1, AT.unused)), 'EIF_HEADER', /unused/],
    ['default_mem beyond 2^53', () => changed((f) => f.writeBigUInt64BE(1n << 60n, AT.mem)), 'EIF_HEADER', /default_mem/],
    ['num_sections 1', () => changed((f) => f.writeUInt16BE(1, AT.count)), 'EIF_SECTION', /num_sections is 1/],
    ['num_sections 33', () => changed((f) => f.writeUInt16BE(33, AT.count)), 'EIF_SECTION', /num_sections is 33/],
    ['num_sections 0', () => changed((f) => f.writeUInt16BE(0, AT.count)), 'EIF_SECTION', /num_sections is 0/],
    ['a table entry past num_sections', () => changed((f) => f.writeBigUInt64BE(1n, AT.sizes + 8 * 31)), 'EIF_HEADER', /entry 31 is set/],
    ['fewer sections counted than written', () => changed((f) => f.writeUInt16BE(4, AT.count)), 'EIF_HEADER', /entry 4 is set/],
    ['an offset off by one', () => changed((f) => f.writeBigUInt64BE(f.readBigUInt64BE(AT.offsets + 16) + 1n, AT.offsets + 16)), 'EIF_HEADER', /section_offsets\[2\]/],
    ['the first offset not right after the header', () => changed((f) => f.writeBigUInt64BE(560n, AT.offsets)), 'EIF_HEADER', /section_offsets\[0\] is 560/],
    ['a huge size in the table', () => changed((f) => f.writeBigUInt64BE(1n << 62n, AT.sizes + 8 * 4)), 'EIF_TOO_LARGE', /section 4/],
    ['more than maxBytes declared', () => smallEif(), 'EIF_TOO_LARGE', /more than the 600 accepted/, { maxBytes: 600 }],
    ['a section header size differing from the table', () => changed((f) => f.writeBigUInt64BE(5n, sectionHeaderAt(f, 1) + 4)), 'EIF_SECTION', /section 1 \(cmdline\) says 5 bytes/],
    ['section type 0 (invalid)', () => changed((f) => f.writeUInt16BE(0, sectionHeaderAt(f, 2))), 'EIF_SECTION', /type 0/],
    ['section type 6 (unknown)', () => changed((f) => f.writeUInt16BE(6, sectionHeaderAt(f, 2))), 'EIF_SECTION', /type 6/],
    ['section flags', () => changed((f) => f.writeUInt16BE(1, sectionHeaderAt(f, 3) + 2)), 'EIF_SECTION', /flags 0x1/],
    ['the CRC field changed', () => changed((f) => flipByte(f, AT.crc + 3, 0x01), true), 'EIF_CRC', /CRC-32 mismatch/],
    ['one ramdisk byte changed without the CRC', () => changed((f) => flipByte(f, f.length - 1, 0x01), true), 'EIF_CRC', /CRC-32 mismatch/],
    ['the kernel not first', () => handBuildEif([cmdline, kernel, ramdisk0]), 'EIF_SECTION', /section 0 is cmdline/],
    ['a ramdisk first', () => handBuildEif([ramdisk0, kernel, cmdline]), 'EIF_SECTION', /section 0 is ramdisk/],
    ['two kernels', () => handBuildEif([kernel, cmdline, kernel, ramdisk0]), 'EIF_SECTION', /second kernel/],
    ['two command lines', () => handBuildEif([kernel, cmdline, cmdline, ramdisk0]), 'EIF_SECTION', /second cmdline/],
    ['two metadata sections', () => handBuildEif([kernel, cmdline, metadata, metadata, ramdisk0]), 'EIF_SECTION', /second metadata/],
    ['the command line after a ramdisk', () => handBuildEif([kernel, ramdisk0, cmdline]), 'EIF_SECTION', /after a ramdisk/],
    ['no command line', () => handBuildEif([kernel, ramdisk0]), 'EIF_SECTION', /no command line/],
    ['no ramdisk', () => handBuildEif([kernel, cmdline, metadata]), 'EIF_SECTION', /no ramdisk/],
    ['an empty kernel', () => handBuildEif([{ type: TYPE.kernel, data: new Uint8Array(0) }, cmdline, ramdisk0]), 'EIF_SECTION', /kernel\) is 0 bytes/],
    ['an empty ramdisk', () => handBuildEif([kernel, cmdline, { type: TYPE.ramdisk, data: new Uint8Array(0) }]), 'EIF_SECTION', /ramdisk\) is 0 bytes/],
    ['a command line over 4096 bytes', () => handBuildEif([kernel, { type: TYPE.cmdline, data: new Uint8Array(4097).fill(0x61) }, ramdisk0]), 'EIF_SECTION', /cmdline\) is 4097 bytes/],
    ['a NUL in the command line', () => handBuildEif([kernel, { type: TYPE.cmdline, data: utf8('quiet\0init=/evil') }, ramdisk0]), 'EIF_CMDLINE', /NUL/],
    ['a command line that is not UTF-8', () => handBuildEif([kernel, { type: TYPE.cmdline, data: Uint8Array.of(0x71, 0xff) }, ramdisk0]), 'EIF_CMDLINE', /not UTF-8/],
    ['metadata that is not JSON', () => handBuildEif([kernel, cmdline, { type: TYPE.metadata, data: utf8('{"a":') }, ramdisk0]), 'EIF_METADATA', /not UTF-8 JSON/],
    ['metadata that is a JSON array', () => handBuildEif([kernel, cmdline, { type: TYPE.metadata, data: utf8('[1]') }, ramdisk0]), 'EIF_METADATA', /not a JSON object/],
    ['metadata nested 33 deep', () => handBuildEif([kernel, cmdline, { type: TYPE.metadata, data: utf8(`{"a":${'['.repeat(32)}${']'.repeat(32)}}`) }, ramdisk0]), 'EIF_METADATA', /deeper than 32/],
    ['metadata over 1 MiB', () => handBuildEif([kernel, cmdline, { type: TYPE.metadata, data: new Uint8Array(1024 * 1024 + 1) }, ramdisk0]), 'EIF_SECTION', /metadata\) is 1048577 bytes/],
    ['a signature that is not CBOR', () => handBuildEif([kernel, cmdline, ramdisk0, { type: TYPE.signature, data: Uint8Array.of(0xff) }]), 'EIF_SIGNATURE', /not the expected CBOR/],
  ];
  it.each(cases)('%s', (_, make, code, message, options) => expectRefused(make(), code, message, options));

  it('a header that declares 15 GiB in a 700-byte file is refused as truncated, without reading or allocating that much', () => {
    const file = changed((f) => f.writeBigUInt64BE(15n * 1024n ** 3n, AT.sizes + 8 * 4));
    const sectionHeader = Number(file.readBigUInt64BE(AT.offsets + 8 * 4));
    file.writeBigUInt64BE(15n * 1024n ** 3n, sectionHeader + 4);
    expectRefused(fixCrc(file), 'EIF_TRUNCATED', /header declares 16106128\d+/);
  });

  it('the checks run in order: structure before the CRC, the CRC before section contents', () => {
    // A broken magic and a broken CRC: the magic is reported.
    expectRefused(changed((f) => f.write('xeif', 0, 'latin1'), true), 'EIF_MAGIC');
    // A NUL in the command line and a broken CRC: the CRC is reported, the contents are never read.
    const nul = handBuildEif([kernel, { type: TYPE.cmdline, data: utf8('quiet\0') }, ramdisk0]);
    flipByte(nul, nul.length - 1, 0x01);
    expectRefused(nul, 'EIF_CRC');
  });
});

describe('parseEif: hostile bytes (fast-check)', () => {
  const small = smallEif();
  const isEifError = (fn: () => unknown): EifErrorCode | 'accepted' => {
    try {
      fn();
      return 'accepted';
    } catch (err) {
      if (!(err instanceof EifError)) throw err;
      return err.code;
    }
  };

  it('random bytes, with and without a valid magic and version, are refused with an EifError', () => {
    const prefix = Buffer.from(small.subarray(0, 6));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.boolean(), (bytes, withPrefix) => {
        const input = withPrefix ? Buffer.concat([prefix, bytes]) : bytes;
        expect(isEifError(() => parseEif(input))).not.toBe('accepted');
      }),
      { seed: 1401, numRuns: 2000 },
    );
  });

  it('every single-byte change of a small image is refused (CRC-32 catches what structure does not)', () => {
    const codes = new Map<string, number>();
    for (let at = 0; at < small.length; at++) {
      for (const flip of [0x01, 0x80, 0xff]) {
        const copy = Buffer.from(small);
        flipByte(copy, at, flip);
        const code = isEifError(() => parseEif(copy));
        expect(code, `byte ${at} ^ 0x${flip.toString(16)}`).not.toBe('accepted');
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }
    // Changes in the sections' data are only caught by the CRC; changes in the header mostly by structure.
    expect(codes.get('EIF_CRC')).toBeGreaterThan(100);
    expect(codes.get('EIF_HEADER')).toBeGreaterThan(100);
  });

  it('every truncation of a small image is EIF_TRUNCATED', () => {
    for (let length = 0; length < small.length; length++) {
      expect(isEifError(() => parseEif(small.subarray(0, length))), `length ${length}`).toBe('EIF_TRUNCATED');
    }
  });

  it('random mutations are refused unless the CRC is recomputed; with it recomputed, anything accepted is a consistent image', () => {
    fc.assert(
      fc.property(fc.array(mutationArbitrary, { minLength: 1, maxLength: 4 }), fc.boolean(), (mutations, recompute) => {
        let bytes: Buffer = Buffer.from(mutations.reduce(mutate, new Uint8Array(small)));
        if (Buffer.compare(bytes, small) === 0) return;
        if (recompute && bytes.length >= HEADER_BYTES) bytes = fixCrc(bytes);
        let eif;
        try {
          eif = parseEif(bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(EifError);
          return;
        }
        expect(recompute).toBe(true);
        expect(eif.totalBytes).toBe(bytes.length);
        expect(eif.sections.reduce((n, s) => n + 12 + s.size, HEADER_BYTES)).toBe(bytes.length);
        expect(eif.sections[0]!.type).toBe('kernel');
        for (const value of eif.pcrs.values()) expect(value).toHaveLength(48);
      }),
      { seed: 1402, numRuns: 3000 },
    );
  });
});
