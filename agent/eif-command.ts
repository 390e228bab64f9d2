/**
 * `enclave-agent eif build` and `enclave-agent eif describe`: the command-line face of eif/
 * (specs/nitro-enclave.md). `build` writes an EIF from a kernel, a command line and ramdisks, the same bytes
 * for the same inputs: the metadata's build time is SOURCE_DATE_EPOCH (0 when unset), never the clock.
 * `describe` reads any EIF and prints its sections, CRC and PCRs, as text or as the JSON other tools
 * (and `verify --eif`'s users) read; an invalid image is exit 1 with its EIF_* code.
 *
 * The JSON of `describe` is stable: keys as in eifDescriptionJson, PCRs as {"0": hex, ...} (the shape of
 * the PCR sets `verify --pcrs` reads), sizes in bytes, the CRC as 8 hex digits.
 */

import { createHash, randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import {
  buildEif,
  bzImageKernelVersion,
  EIF_DEFAULT_MAX_BYTES,
  EifError,
  encodeEifMetadata,
  parseEif,
  type EifDescription,
} from '../eif/index.js';
import { bytesToHex } from '../nsm/index.js';
import { AgentError } from './errors.js';
import { loadEif, nodeSha384, readInputFile } from './eif-file.js';
import { printable } from './verify-remote.js';

/** The version written as BuildToolVersion; a test keeps it equal to package.json's. */
export const ENCLAVE_AGENT_VERSION = '0.1.0';
/** BuildTool in the metadata, as AWS's builder names itself there. */
export const EIF_BUILD_TOOL = 'enclave-agent';
/** ImageName when --name is not given. */
export const EIF_DEFAULT_IMAGE_NAME = 'enclave';
/** SOURCE_DATE_EPOCH as the reproducible-builds spec defines it: decimal seconds, no sign, no fraction. */
const SOURCE_DATE_EPOCH_RE = /^\d{1,12}$/;

type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;
type Output = { write(text: string): unknown };

function usage(message: string): AgentError {
  return new AgentError('AGENT_USAGE', message);
}

const str = (value: unknown) => (typeof value === 'string' ? value : undefined);

export const EIF_USAGE =
  'Usage: enclave-agent eif build|describe ...\n\n' +
  '  build      write an EIF (version 4) from a kernel, a command line and ramdisks, deterministically\n' +
  '  describe   check an EIF (structure, CRC) and print its sections and PCR0, PCR1, PCR2 (PCR8 if signed)\n\n' +
  "Run 'enclave-agent eif build --help' or 'enclave-agent eif describe --help' for their options.";

export const EIF_BUILD_USAGE =
  'Usage: enclave-agent eif build --kernel FILE --cmdline TEXT --ramdisk FILE... --out FILE [--name NAME] [--json]\n\n' +
  'Writes an enclave image file: kernel, command line, metadata, then the ramdisks in the order given.\n' +
  'PCR0 measures kernel, command line and every ramdisk; PCR1 kernel, command line and the first ramdisk;\n' +
  'PCR2 the ramdisks after the first. The metadata (not measured) records NAME, the build tool and the\n' +
  'kernel version; its build time is SOURCE_DATE_EPOCH (seconds; 1970-01-01 when unset), so the same\n' +
  'inputs give the same bytes.\n\n' +
  '--kernel FILE   the kernel (bzImage on x86_64)\n' +
  '--cmdline TEXT  the kernel command line, written without a trailing NUL (at most 4096 bytes)\n' +
  '--ramdisk FILE  a ramdisk (newc cpio, optionally gzip); repeat, first the bootstrap, then the app\n' +
  '--out FILE      where to write the EIF (replaced whole, never left half-written)\n' +
  `--name NAME     the metadata's ImageName (default ${EIF_DEFAULT_IMAGE_NAME})\n` +
  '--json          print what `eif describe --json` prints for the written file\n\n' +
  'Exit status: 0 written, 1 a file could not be read or written, 2 usage error.';

export const EIF_BUILD_OPTIONS = {
  kernel: { type: 'string' },
  cmdline: { type: 'string' },
  ramdisk: { type: 'string', multiple: true },
  out: { type: 'string' },
  name: { type: 'string' },
  json: { type: 'boolean' },
} satisfies NonNullable<ParseArgsConfig['options']>;

export const EIF_DESCRIBE_USAGE =
  'Usage: enclave-agent eif describe FILE [--json]\n\n' +
  'Checks an EIF before trusting any of it (magic, version 4, header fields, the offset table, section\n' +
  'types, sizes and order, no trailing bytes, then the CRC-32) and prints its sections, command line,\n' +
  'metadata and the PCRs Nitro will measure: PCR0, PCR1, PCR2, and PCR8 for a signed image.\n\n' +
  '--json   print the result as JSON: {"valid", "file", "version", "arch", "sizeBytes", "crc32",\n' +
  '         "defaultMemoryBytes", "defaultCpus", "sections": [{"type", "offset", "sizeBytes"}], "cmdline",\n' +
  '         "signature": null | {"entries", "certificateSha384"}, "metadata", "pcrs": {"0": hex, ...}};\n' +
  '         an invalid image: {"valid": false, "code", "message"}\n\n' +
  'Exit status: 0 valid, 1 invalid (its EIF_* code is printed) or unreadable, 2 usage error.';

export const EIF_DESCRIBE_OPTIONS = { json: { type: 'boolean' } } satisfies NonNullable<ParseArgsConfig['options']>;

/** SOURCE_DATE_EPOCH from the environment: seconds, or 0 when unset. Anything else is a usage error. */
export function sourceDateEpoch(env: Record<string, string | undefined>): number {
  const value = env.SOURCE_DATE_EPOCH;
  if (value === undefined || value === '') return 0;
  if (!SOURCE_DATE_EPOCH_RE.test(value)) throw usage(`SOURCE_DATE_EPOCH expected whole seconds since 1970, got ${JSON.stringify(printable(value, 40))}`);
  return Number(value);
}

const sha384Hex = (bytes: Uint8Array) => createHash('sha384').update(bytes).digest('hex');
const pcrsJson = (eif: EifDescription) => Object.fromEntries([...eif.pcrs].map(([index, value]) => [String(index), bytesToHex(value)]));

/** The stable JSON of `eif describe --json` (see the file comment). */
export function eifDescriptionJson(eif: EifDescription, file: string): object {
  return {
    valid: true,
    file,
    version: eif.version,
    arch: eif.arch,
    sizeBytes: eif.totalBytes,
    crc32: eif.crc32.toString(16).padStart(8, '0'),
    defaultMemoryBytes: eif.defaultMemoryBytes,
    defaultCpus: eif.defaultCpus,
    sections: eif.sections.map((s) => ({ type: s.type, offset: s.offset, sizeBytes: s.size })),
    cmdline: eif.cmdline,
    signature: eif.signature === null ? null : { entries: eif.signature.entries, certificateSha384: sha384Hex(eif.signature.certificateDer) },
    metadata: eif.metadata,
    pcrs: pcrsJson(eif),
  };
}

/** `describe`'s text report. The command line and metadata strings come from the file: escaped. */
export function formatEifDescription(eif: EifDescription, file: string): string {
  const mib = (bytes: number) => (bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`);
  const build = eif.metadata?.BuildMetadata;
  const field = (value: unknown) => (typeof value === 'string' ? printable(value, 80) : 'absent');
  const metadata =
    eif.metadata === null
      ? 'none'
      : `ImageName ${field(eif.metadata.ImageName)}, BuildTime ${field((build as Record<string, unknown> | undefined)?.BuildTime)}, ` +
        `BuildTool ${field((build as Record<string, unknown> | undefined)?.BuildTool)} (not measured)`;
  return [
    `VALID EIF ${printable(file)}`,
    `  version         ${eif.version} (${eif.arch})`,
    `  size            ${eif.totalBytes} bytes, CRC-32 ${eif.crc32.toString(16).padStart(8, '0')} (matches)`,
    `  launch defaults ${mib(eif.defaultMemoryBytes)}, ${eif.defaultCpus} CPUs (not measured)`,
    `  cmdline         ${JSON.stringify(printable(eif.cmdline, 4096))}`,
    `  signed          ${eif.signature === null ? 'no' : `yes: ${eif.signature.entries} PCR signature(s), certificate sha384:${sha384Hex(eif.signature.certificateDer)} (the signature itself is not verified here)`}`,
    `  metadata        ${metadata}`,
    '  sections:',
    ...eif.sections.map((s, i) => `    ${String(i).padStart(2)}  ${s.type.padEnd(9)} offset ${String(s.offset).padStart(12)}  size ${s.size}`),
    ...[...eif.pcrs].map(([index, value]) => `  PCR${String(index).padEnd(13)}${bytesToHex(value)}`),
    '',
  ].join('\n');
}

/** Writes `bytes` to `path` through a temporary file in the same directory and a rename: never half a file. */
async function writeWhole(path: string, bytes: Uint8Array): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
  try {
    await writeFile(temp, bytes, { flag: 'wx' });
    await rename(temp, path);
  } catch (cause) {
    await rm(temp, { force: true });
    throw new AgentError('AGENT_IO', `cannot write ${path}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
  }
}

/** Runs `eif build` (see EIF_BUILD_USAGE). */
export async function runEifBuild(values: FlagValues, env: Record<string, string | undefined>, out: Output = process.stdout): Promise<number> {
  const kernelPath = str(values.kernel);
  const cmdline = str(values.cmdline);
  const outPath = str(values.out);
  const ramdiskPaths = Array.isArray(values.ramdisk) ? values.ramdisk.filter((v): v is string => typeof v === 'string') : [];
  if (kernelPath === undefined || kernelPath === '') throw usage('--kernel FILE is required');
  if (cmdline === undefined) throw usage('--cmdline TEXT is required (it may be empty: --cmdline=)');
  if (ramdiskPaths.length === 0) throw usage('--ramdisk FILE is required (repeat it for more ramdisks)');
  if (outPath === undefined || outPath === '') throw usage('--out FILE is required');
  const name = str(values.name) ?? EIF_DEFAULT_IMAGE_NAME;
  const buildTimeSeconds = sourceDateEpoch(env);
  const kernel = await readInputFile(kernelPath, '--kernel', EIF_DEFAULT_MAX_BYTES);
  const ramdisks: Uint8Array[] = [];
  for (const path of ramdiskPaths) ramdisks.push(await readInputFile(path, '--ramdisk', EIF_DEFAULT_MAX_BYTES));
  let image: Uint8Array;
  try {
    const metadata = encodeEifMetadata({
      imageName: name,
      imageVersion: '1.0',
      buildTimeSeconds,
      buildTool: EIF_BUILD_TOOL,
      buildToolVersion: ENCLAVE_AGENT_VERSION,
      kernelVersion: bzImageKernelVersion(kernel) ?? 'unknown',
    });
    image = buildEif({ kernel, cmdline, ramdisks, metadata });
  } catch (err) {
    // The writer refuses what a reader would: an empty file, a NUL in the command line, too many ramdisks.
    if (err instanceof EifError) throw usage(err.message);
    throw err;
  }
  // Read back before writing: what is written is what `describe` and Nitro will see.
  const eif = parseEif(image, { sha384: nodeSha384 });
  await writeWhole(outPath, image);
  out.write(values.json === true ? `${JSON.stringify(eifDescriptionJson(eif, outPath), null, 2)}\n` : `EIF written to ${printable(outPath)} (${image.length} bytes)\n${formatEifDescription(eif, outPath).split('\n').slice(1).join('\n')}`);
  return 0;
}

/** Runs `eif describe` (see EIF_DESCRIBE_USAGE): exit 0 valid, 1 an invalid image (printed on stdout). */
export async function runEifDescribe(values: FlagValues, positionals: readonly string[], out: Output = process.stdout): Promise<number> {
  const file = positionals[0]!;
  const json = values.json === true;
  let eif: EifDescription;
  try {
    eif = await loadEif(file);
  } catch (err) {
    if (!(err instanceof EifError)) throw err;
    out.write(json ? `${JSON.stringify({ valid: false, file, code: err.code, message: err.message }, null, 2)}\n` : `INVALID ${err.code}: ${err.message}\n`);
    return 1;
  }
  out.write(json ? `${JSON.stringify(eifDescriptionJson(eif, file), null, 2)}\n` : formatEifDescription(eif, file));
  return 0;
}
