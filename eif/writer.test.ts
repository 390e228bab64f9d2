/**
 * The EIF writer: its bytes equal an image assembled by hand from the spec's numbers
 * (test/eif-images.ts), it is deterministic, the reader reads back what it wrote, the metadata JSON is
 * byte-exact with its keys in AWS's order, and every input a reader would refuse is refused here with
 * EIF_BAD_ARGUMENT. Also the bzImage version string the CLI records as KernelVersion.
 */

import { describe, expect, it } from 'vitest';
import { handBuildEif, pcrOf, SMALL, TYPE } from '../test/eif-images.js';
import { buildEif, bzImageKernelVersion, EifError, encodeEifMetadata, parseEif, type EifBuildInput } from './index.js';

const utf8 = (text: string) => new TextEncoder().encode(text);
const hex = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? []).toString('hex');
const SMALL_INPUT: EifBuildInput = { kernel: SMALL.kernel, cmdline: SMALL.cmdline, metadata: SMALL.metadata, ramdisks: SMALL.ramdisks };

function badArgument(fn: () => unknown, message: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(EifError);
  expect((thrown as EifError).code).toBe('EIF_BAD_ARGUMENT');
  expect((thrown as EifError).message).toMatch(message);
}

describe('buildEif', () => {
  it('writes exactly the hand-assembled image: kernel, cmdline, metadata, ramdisks, AWS\'s defaults, the CRC', () => {
    const expected = handBuildEif([
      { type: TYPE.kernel, data: SMALL.kernel },
      { type: TYPE.cmdline, data: utf8(SMALL.cmdline) },
      { type: TYPE.metadata, data: SMALL.metadata },
      ...SMALL.ramdisks.map((data) => ({ type: TYPE.ramdisk, data })),
    ]);
    expect(hex(buildEif(SMALL_INPUT))).toBe(expected.toString('hex'));
  });

  it('without metadata, with a signature section last, for aarch64 with other launch defaults', () => {
    const signature = Uint8Array.of(0x80);
    const expected = handBuildEif(
      [
        { type: TYPE.kernel, data: SMALL.kernel },
        { type: TYPE.cmdline, data: utf8('') },
        { type: TYPE.ramdisk, data: SMALL.ramdisks[0]! },
        { type: TYPE.signature, data: signature },
      ],
      { flags: 1, mem: 512n * 1024n * 1024n, cpus: 4n },
    );
    const built = buildEif({ kernel: SMALL.kernel, cmdline: '', ramdisks: [SMALL.ramdisks[0]!], signature, arch: 'aarch64', defaultMemoryBytes: 512 * 1024 * 1024, defaultCpus: 4 });
    expect(hex(built)).toBe(expected.toString('hex'));
  });

  it('is deterministic, and the reader reads back what it wrote', () => {
    const first = buildEif(SMALL_INPUT);
    expect(buildEif(SMALL_INPUT)).toEqual(first);
    const eif = parseEif(first);
    expect(eif.cmdline).toBe(SMALL.cmdline);
    expect(eif.sections.map((s) => s.type)).toEqual(['kernel', 'cmdline', 'metadata', 'ramdisk', 'ramdisk']);
    expect(hex(eif.pcrs.get(0))).toBe(pcrOf([SMALL.kernel, utf8(SMALL.cmdline), ...SMALL.ramdisks]));
  });

  it('writes the most sections an EIF holds: kernel, cmdline, metadata and 29 ramdisks', () => {
    const ramdisks = Array.from({ length: 29 }, (_, i) => utf8(`ramdisk ${i}`));
    const eif = parseEif(buildEif({ ...SMALL_INPUT, ramdisks }));
    expect(eif.sections).toHaveLength(32);
    expect(hex(eif.pcrs.get(2))).toBe(pcrOf(ramdisks.slice(1)));
    badArgument(() => buildEif({ ...SMALL_INPUT, ramdisks: [...ramdisks, utf8('one more')] }), /33 sections/);
  });

  it('refuses inputs a reader would refuse', () => {
    badArgument(() => buildEif({ ...SMALL_INPUT, kernel: new Uint8Array(0) }), /"kernel" expected at least 1 byte/);
    badArgument(() => buildEif({ ...SMALL_INPUT, kernel: 'k' as unknown as Uint8Array }), /"kernel" expected a Uint8Array/);
    badArgument(() => buildEif({ ...SMALL_INPUT, ramdisks: [] }), /at least one ramdisk/);
    badArgument(() => buildEif({ ...SMALL_INPUT, ramdisks: [SMALL.kernel, new Uint8Array(0)] }), /"ramdisks\[1\]" expected at least 1 byte/);
    badArgument(() => buildEif({ ...SMALL_INPUT, cmdline: 'a\0b' }), /NUL/);
    badArgument(() => buildEif({ ...SMALL_INPUT, cmdline: 'x'.repeat(4097) }), /4097 bytes/);
    badArgument(() => buildEif({ ...SMALL_INPUT, metadata: new Uint8Array(1024 * 1024 + 1) }), /"metadata" is 1048577 bytes/);
    badArgument(() => buildEif({ ...SMALL_INPUT, signature: new Uint8Array(64 * 1024 + 1) }), /"signature" is 65537 bytes/);
    badArgument(() => buildEif({ ...SMALL_INPUT, arch: 'riscv64' as 'x86_64' }), /"arch"/);
    badArgument(() => buildEif({ ...SMALL_INPUT, defaultCpus: -1 }), /"defaultCpus"/);
    badArgument(() => buildEif({ ...SMALL_INPUT, maxBytes: 600 }), /more than 600/);
  });
});

describe('encodeEifMetadata', () => {
  const input = { imageName: 'demo', imageVersion: '1.0', buildTimeSeconds: 1_700_000_000, buildTool: 'enclave-agent', buildToolVersion: '0.1.0' };

  it('writes compact JSON with AWS\'s keys in a fixed order and the time from the seconds given', () => {
    expect(new TextDecoder().decode(encodeEifMetadata(input))).toBe(
      '{"ImageName":"demo","ImageVersion":"1.0","BuildMetadata":{"BuildTime":"2023-11-14T22:13:20Z","BuildTool":"enclave-agent",' +
        '"BuildToolVersion":"0.1.0","OperatingSystem":"linux","KernelVersion":"unknown"},"DockerInfo":null,"CustomMetadata":null}',
    );
    const full = JSON.parse(new TextDecoder().decode(encodeEifMetadata({ ...input, buildTimeSeconds: 0, kernelVersion: '6.1.0', operatingSystem: 'Linux', customMetadata: { b: 1, a: 2 } })));
    expect(full.BuildMetadata).toEqual({ BuildTime: '1970-01-01T00:00:00Z', BuildTool: 'enclave-agent', BuildToolVersion: '0.1.0', OperatingSystem: 'Linux', KernelVersion: '6.1.0' });
    expect(full.CustomMetadata).toEqual({ b: 1, a: 2 });
  });

  it('refuses times it cannot write and values of the wrong type', () => {
    badArgument(() => encodeEifMetadata({ ...input, buildTimeSeconds: -1 }), /buildTimeSeconds/);
    badArgument(() => encodeEifMetadata({ ...input, buildTimeSeconds: 1.5 }), /buildTimeSeconds/);
    badArgument(() => encodeEifMetadata({ ...input, buildTimeSeconds: 253_402_300_800 }), /buildTimeSeconds/);
    badArgument(() => encodeEifMetadata({ ...input, imageName: 3 as unknown as string }), /"imageName" expected a string/);
    badArgument(() => encodeEifMetadata({ ...input, customMetadata: [1] as unknown as Record<string, unknown> }), /customMetadata/);
    badArgument(() => encodeEifMetadata({ ...input, customMetadata: { big: 'x'.repeat(1024 * 1024) } }), /more than the 1048576/);
  });
});

describe('bzImageKernelVersion', () => {
  /** A bzImage's first bytes as the boot protocol lays them out, with `version` at 0x200 + `pointer`. */
  function fakeBzImage(version: string, protocol = 0x20f, pointer = 0x3e0): Uint8Array {
    const image = Buffer.alloc(0x200 + pointer + version.length + 16);
    image.write('HdrS', 0x202, 'latin1');
    image.writeUInt16LE(protocol, 0x206);
    image.writeUInt16LE(pointer, 0x20e);
    image.write(`${version}\0`, 0x200 + pointer, 'latin1');
    return image;
  }

  it('reads the first word of the version string', () => {
    expect(bzImageKernelVersion(fakeBzImage('6.12.38+deb13-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP'))).toBe('6.12.38+deb13-cloud-amd64');
    expect(bzImageKernelVersion(fakeBzImage('6.1.0'))).toBe('6.1.0');
  });

  it('gives null for anything unexpected', () => {
    expect(bzImageKernelVersion(SMALL.kernel)).toBeNull();
    expect(bzImageKernelVersion(fakeBzImage('6.1.0', 0x1ff))).toBeNull();
    expect(bzImageKernelVersion(fakeBzImage('6.1.0', 0x20f, 0))).toBeNull();
    expect(bzImageKernelVersion(fakeBzImage('6.1\x1b[31m'))).toBeNull();
    expect(bzImageKernelVersion(fakeBzImage('v'.repeat(65)))).toBeNull();
    expect(bzImageKernelVersion(fakeBzImage('6.1.0').subarray(0, 0x210))).toBeNull();
  });
});
