/**
 * `enclave-agent eif build` and `eif describe`: in process on temporary files (deterministic bytes,
 * SOURCE_DATE_EPOCH in the metadata and not in the PCRs, the stable describe JSON, a changed byte or CRC,
 * streaming a file larger than one read chunk, usage and I/O errors), then through the built CLI for the
 * exit statuses other tools rely on: 0 valid, 1 invalid or unreadable (its code printed), 2 usage.
 */

import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixCrc, flipByte, pcrOf, signatureSection } from '../test/eif-images.js';
import { runCli } from '../test/run-cli.js';
import { buildEif, parseEif } from '../eif/index.js';
import { AgentError } from './errors.js';
import { EIF_READ_CHUNK_BYTES, loadEif } from './eif-file.js';
import { ENCLAVE_AGENT_VERSION, runEifBuild, runEifDescribe, sourceDateEpoch } from './eif-command.js';

const utf8 = (text: string) => new TextEncoder().encode(text);
const KERNEL = utf8('kernel bytes for the CLI tests');
const BOOT = utf8('bootstrap ramdisk');
const APP = utf8('application ramdisk');
const CMDLINE = 'console=ttyS0 reboot=k';
const SPAWN_TIMEOUT_MS = 20_000;

let work: string;
let out: string[];
const sink = { write: (text: string) => out.push(text) };

function paths(name: string) {
  return { kernel: join(work, 'kernel'), boot: join(work, 'boot.cpio'), app: join(work, 'app.cpio'), out: join(work, name) };
}

async function build(name: string, env: Record<string, string | undefined> = {}, extra: Record<string, unknown> = {}): Promise<Uint8Array> {
  const p = paths(name);
  out = [];
  expect(await runEifBuild({ kernel: p.kernel, cmdline: CMDLINE, ramdisk: [p.boot, p.app], out: p.out, ...extra }, env, sink)).toBe(0);
  return new Uint8Array(await readFile(p.out));
}

async function usageError(promise: Promise<unknown>, message: RegExp): Promise<void> {
  const err = await promise.then(
    () => {
      throw new Error('expected AGENT_USAGE');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentError);
  expect((err as AgentError).code).toBe('AGENT_USAGE');
  expect((err as AgentError).message).toMatch(message);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'enclave-agent-eif-'));
  await writeFile(join(work, 'kernel'), KERNEL);
  await writeFile(join(work, 'boot.cpio'), BOOT);
  await writeFile(join(work, 'app.cpio'), APP);
});

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('eif build', () => {
  it('gives the same bytes twice; the PCRs are those of kernel, cmdline and ramdisks', async () => {
    const first = await build('a.eif');
    const second = await build('b.eif');
    expect(Buffer.from(second).equals(Buffer.from(first))).toBe(true);
    const eif = parseEif(first);
    expect(Buffer.from(eif.pcrs.get(0)!).toString('hex')).toBe(pcrOf([KERNEL, utf8(CMDLINE), BOOT, APP]));
    expect(Buffer.from(eif.pcrs.get(1)!).toString('hex')).toBe(pcrOf([KERNEL, utf8(CMDLINE), BOOT]));
    expect(Buffer.from(eif.pcrs.get(2)!).toString('hex')).toBe(pcrOf([APP]));
    expect(out.join('')).toContain(`PCR2            ${pcrOf([APP])}`);
    expect(eif.metadata).toEqual({
      ImageName: 'enclave',
      ImageVersion: '1.0',
      BuildMetadata: { BuildTime: '1970-01-01T00:00:00Z', BuildTool: 'enclave-agent', BuildToolVersion: ENCLAVE_AGENT_VERSION, OperatingSystem: 'linux', KernelVersion: 'unknown' },
      DockerInfo: null,
      CustomMetadata: null,
    });
  });

  it('SOURCE_DATE_EPOCH and --name change the metadata, not the PCRs', async () => {
    const plain = parseEif(await build('plain.eif'));
    const dated = parseEif(await build('dated.eif', { SOURCE_DATE_EPOCH: '1700000000' }, { name: 'demo' }));
    expect(dated.metadata).toMatchObject({ ImageName: 'demo', BuildMetadata: { BuildTime: '2023-11-14T22:13:20Z' } });
    expect(dated.pcrs).toEqual(plain.pcrs);
    expect(dated.totalBytes).not.toBe(0);
  });

  it('--json prints what describe --json prints', async () => {
    await build('json.eif', {}, { json: true });
    const built = JSON.parse(out.join(''));
    out = [];
    expect(await runEifDescribe({ json: true }, [paths('json.eif').out], sink)).toBe(0);
    expect(JSON.parse(out.join(''))).toEqual(built);
  });

  it('SOURCE_DATE_EPOCH must be whole seconds', async () => {
    expect(sourceDateEpoch({})).toBe(0);
    expect(sourceDateEpoch({ SOURCE_DATE_EPOCH: '' })).toBe(0);
    expect(sourceDateEpoch({ SOURCE_DATE_EPOCH: '1700000000' })).toBe(1_700_000_000);
    for (const bad of ['-1', '1.5', ' 1', '0x10', 'now', '1'.repeat(13)]) {
      expect(() => sourceDateEpoch({ SOURCE_DATE_EPOCH: bad }), bad).toThrow(expect.objectContaining({ code: 'AGENT_USAGE' }));
    }
    await usageError(build('bad.eif', { SOURCE_DATE_EPOCH: 'yesterday' }), /SOURCE_DATE_EPOCH expected whole seconds/);
  });

  it('refuses missing flags, an empty kernel, a directory, an overlong command line; writes nothing', async () => {
    const p = paths('never.eif');
    const base = { kernel: p.kernel, cmdline: CMDLINE, ramdisk: [p.boot], out: p.out };
    await usageError(runEifBuild({ ...base, kernel: undefined }, {}, sink), /--kernel FILE is required/);
    await usageError(runEifBuild({ ...base, cmdline: undefined }, {}, sink), /--cmdline TEXT is required/);
    await usageError(runEifBuild({ ...base, ramdisk: undefined }, {}, sink), /--ramdisk FILE is required/);
    await usageError(runEifBuild({ ...base, out: undefined }, {}, sink), /--out FILE is required/);
    await writeFile(join(work, 'empty'), new Uint8Array(0));
    await usageError(runEifBuild({ ...base, kernel: join(work, 'empty') }, {}, sink), /"kernel" expected at least 1 byte/);
    await usageError(runEifBuild({ ...base, ramdisk: [work] }, {}, sink), /--ramdisk .* is not a regular file/);
    await usageError(runEifBuild({ ...base, cmdline: 'x'.repeat(4097) }, {}, sink), /4097 bytes/);
    await expect(runEifBuild({ ...base, kernel: join(work, 'missing') }, {}, sink)).rejects.toMatchObject({ code: 'AGENT_IO', message: expect.stringContaining('ENOENT') });
    await expect(readFile(p.out)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a directory that does not exist for --out is AGENT_IO, and no temporary file is left', async () => {
    const p = paths('x');
    await expect(runEifBuild({ kernel: p.kernel, cmdline: '', ramdisk: [p.boot], out: join(work, 'no', 'such', 'a.eif') }, {}, sink)).rejects.toMatchObject({ code: 'AGENT_IO' });
  });
});

describe('eif describe', () => {
  it('prints sections, CRC and PCRs; the JSON has a fixed shape', async () => {
    const bytes = await build('d.eif');
    const eif = parseEif(bytes);
    out = [];
    expect(await runEifDescribe({}, [paths('d.eif').out], sink)).toBe(0);
    const text = out.join('');
    expect(text).toMatch(/^VALID EIF .*d\.eif\n/);
    expect(text).toContain(`size            ${bytes.length} bytes, CRC-32 ${eif.crc32.toString(16).padStart(8, '0')} (matches)`);
    expect(text).toContain(`cmdline         "${CMDLINE}"`);
    expect(text).toMatch(/ 0 {2}kernel {4}offset {10}548 {2}size 30\n/);
    for (const index of [0, 1, 2]) expect(text).toContain(`PCR${index}            ${Buffer.from(eif.pcrs.get(index)!).toString('hex')}`);
    out = [];
    expect(await runEifDescribe({ json: true }, [paths('d.eif').out], sink)).toBe(0);
    const json = JSON.parse(out.join(''));
    expect(Object.keys(json)).toEqual(['valid', 'file', 'version', 'arch', 'sizeBytes', 'crc32', 'defaultMemoryBytes', 'defaultCpus', 'sections', 'cmdline', 'signature', 'metadata', 'pcrs']);
    expect(json).toMatchObject({ valid: true, version: 4, arch: 'x86_64', sizeBytes: bytes.length, defaultMemoryBytes: 1024 ** 3, defaultCpus: 2, cmdline: CMDLINE, signature: null });
    expect(json.sections.map((s: { type: string }) => s.type)).toEqual(['kernel', 'cmdline', 'metadata', 'ramdisk', 'ramdisk']);
    expect(json.pcrs).toEqual({ 0: pcrOf([KERNEL, utf8(CMDLINE), BOOT, APP]), 1: pcrOf([KERNEL, utf8(CMDLINE), BOOT]), 2: pcrOf([APP]) });
  });

  it('an image with a bad CRC is INVALID EIF_CRC (exit 1), in text and JSON', async () => {
    const bytes = Buffer.from(await build('crc.eif'));
    flipByte(bytes, bytes.length - 1, 0x01);
    await writeFile(join(work, 'bad-crc.eif'), bytes);
    out = [];
    expect(await runEifDescribe({}, [join(work, 'bad-crc.eif')], sink)).toBe(1);
    expect(out.join('')).toMatch(/^INVALID EIF_CRC: CRC-32 mismatch: the file's is [0-9a-f]{8}, its header says [0-9a-f]{8}\n$/);
    out = [];
    expect(await runEifDescribe({ json: true }, [join(work, 'bad-crc.eif')], sink)).toBe(1);
    expect(JSON.parse(out.join(''))).toMatchObject({ valid: false, code: 'EIF_CRC' });
  });

  it('streams a file larger than one read chunk, with the same result as reading it whole', async () => {
    const big = new Uint8Array(EIF_READ_CHUNK_BYTES * 2 + 12345).map((_, i) => (i * 31) & 0xff);
    await writeFile(join(work, 'big.cpio'), big);
    const p = paths('big.eif');
    out = [];
    expect(await runEifBuild({ kernel: p.kernel, cmdline: CMDLINE, ramdisk: [p.boot, join(work, 'big.cpio')], out: p.out }, {}, sink)).toBe(0);
    const streamed = await loadEif(p.out);
    expect(streamed).toEqual(parseEif(new Uint8Array(await readFile(p.out))));
    expect(Buffer.from(streamed.pcrs.get(2)!).toString('hex')).toBe(pcrOf([big]));
  });

  it('a signed image: PCR8 and the certificate\'s SHA-384 in text and JSON', async () => {
    const pem = await readFile(new URL('../test/vectors/nitro/aws_nitro_root_g1.pem', import.meta.url), 'utf8');
    const der = new Uint8Array(new X509Certificate(pem).raw);
    const signed = buildEif({ kernel: KERNEL, cmdline: CMDLINE, ramdisks: [BOOT], signature: signatureSection(pem) });
    await writeFile(join(work, 'signed.eif'), signed);
    out = [];
    expect(await runEifDescribe({}, [join(work, 'signed.eif')], sink)).toBe(0);
    const certificateSha384 = createHash('sha384').update(der).digest('hex');
    expect(out.join('')).toContain(`signed          yes: 1 PCR signature(s), certificate sha384:${certificateSha384}`);
    expect(out.join('')).toContain(`PCR8            ${pcrOf([der])}`);
    out = [];
    expect(await runEifDescribe({ json: true }, [join(work, 'signed.eif')], sink)).toBe(0);
    const json = JSON.parse(out.join(''));
    expect(json.signature).toEqual({ entries: 1, certificateSha384 });
    expect(json.pcrs['8']).toBe(pcrOf([der]));
  });

  it('a directory is a usage error; a missing file is AGENT_IO', async () => {
    await mkdir(join(work, 'dir.eif'));
    await usageError(runEifDescribe({}, [join(work, 'dir.eif')], sink), /is not a regular file/);
    await expect(runEifDescribe({}, [join(work, 'missing.eif')], sink)).rejects.toMatchObject({ code: 'AGENT_IO' });
  });
});

describe('the version recorded as BuildToolVersion', () => {
  it('is package.json\'s', async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(ENCLAVE_AGENT_VERSION).toBe(pkg.version);
  });
});

describe('the built CLI: exit statuses', () => {
  /** Spawns the CLI; `env` is added to this process's environment for the spawn only (runCli copies it). */
  const cli = (args: string[], env: Record<string, string> = {}) => {
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      return runCli(args, { cwd: work, timeoutMs: SPAWN_TIMEOUT_MS });
    } finally {
      for (const key of Object.keys(env)) {
        if (saved[key] === undefined) delete process.env[key];
        else process.env[key] = saved[key];
      }
    }
  };

  it('build twice gives identical bytes (exit 0); describe is 0, a bad CRC 1, a missing file 1, bad flags 2', { timeout: 60_000 }, async () => {
    const args = (name: string) => ['eif', 'build', '--kernel', 'kernel', '--cmdline', CMDLINE, '--ramdisk', 'boot.cpio', '--ramdisk', 'app.cpio', '--out', name];
    const [one, two] = await Promise.all([cli(args('cli-1.eif'), { SOURCE_DATE_EPOCH: '1700000000' }), cli(args('cli-2.eif'), { SOURCE_DATE_EPOCH: '1700000000' })]);
    expect(one.status, one.stderr).toBe(0);
    expect(two.status, two.stderr).toBe(0);
    const bytes = await readFile(join(work, 'cli-1.eif'));
    expect(bytes.equals(await readFile(join(work, 'cli-2.eif')))).toBe(true);
    expect(one.stdout).toMatch(/^EIF written to cli-1\.eif \(\d+ bytes\)\n/);

    await writeFile(join(work, 'cli-bad.eif'), fixCrc(Buffer.from(bytes)).fill(0x00, 544, 548));
    const results = await Promise.all([
      cli(['eif', 'describe', 'cli-1.eif']),
      cli(['eif', 'describe', 'cli-bad.eif']),
      cli(['eif', 'describe', 'missing.eif']),
      cli(['eif', 'describe']),
      cli(['eif', 'build', '--kernel', 'kernel']),
      cli(['eif', 'frobnicate']),
      cli(['eif', 'describe', '--help']),
    ]);
    const [valid, badCrc, missing, noFile, noFlags, unknown, help] = results;
    expect(valid!.status, valid!.stderr).toBe(0);
    expect(valid!.stdout).toContain(`PCR0            ${pcrOf([KERNEL, utf8(CMDLINE), BOOT, APP])}`);
    expect(badCrc!.status).toBe(1);
    expect(badCrc!.stdout).toMatch(/^INVALID EIF_CRC: /);
    expect(missing!.status).toBe(1);
    expect(missing!.stderr).toMatch(/AGENT_IO: cannot read EIF missing\.eif: ENOENT/);
    for (const run of [noFile!, noFlags!, unknown!]) {
      expect(run.status, run.stderr).toBe(2);
      expect(run.stderr).not.toMatch(/^\s+at /m);
    }
    expect(noFlags!.stderr).toMatch(/enclave-agent eif build: --cmdline TEXT is required/);
    expect(unknown!.stderr).toMatch(/unknown subcommand "frobnicate"/);
    expect(help!.status).toBe(0);
    expect(help!.stdout).toMatch(/^Usage: enclave-agent eif describe FILE \[--json\]/);
  });
});
