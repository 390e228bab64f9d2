/**
 * `enclave-agent manifest`: adds the `bootstrap` field (agent/manifest.ts) to a build manifest, so an image
 * build can attest the SHA-256 of the bootstrap files its app serves. It runs where the image is built,
 * on the files that go into the image: the output is then measured into the PCRs with the rest.
 *
 * Deterministic: the input manifest's bytes are kept and the field inserted (addBootstrapHashes), paths
 * in sorted order, so the same inputs give the same bytes on any machine. It hashes only regular files
 * (a directory or device named by mistake is a usage error) and none larger than a verifier fetches.
 */

import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { BOOTSTRAP_PATHS } from '../steve/index.js';
import { AgentError } from './errors.js';
import { addBootstrapHashes, hashBootstrapFiles } from './manifest.js';
import { BOOTSTRAP_FILE_MAX_BYTES } from './verify-bootstrap.js';

export const MANIFEST_USAGE =
  'Usage: enclave-agent manifest --in FILE --out FILE [--bootstrap PATH=FILE]... [--bootstrap-dir DIR]\n\n' +
  'Writes the manifest --in with a "bootstrap" field: the SHA-256 of each bootstrap file the app serves,\n' +
  'which `enclave-agent verify` compares with what the origin serves. The input\'s bytes are kept and the\n' +
  'field is added at the end, paths in sorted order: the same inputs always give the same output.\n\n' +
  `--bootstrap PATH=FILE  the bytes the app serves for GET PATH; PATH one of ${[...BOOTSTRAP_PATHS].join(', ')}\n` +
  '--bootstrap-dir DIR    every bootstrap file present under DIR at its path (DIR/enclave-sw.js,\n' +
  '                       DIR/xwing/steve_xwing_wasm_bg.wasm, ...); / (the page) only by --bootstrap /=FILE\n' +
  '--in FILE              the manifest, without a "bootstrap" field\n' +
  '--out FILE             where to write the result\n\n' +
  'List only files the app serves byte for byte as built (a page rendered per request cannot be attested).\n\n' +
  'Exit status: 0 written, 1 a file could not be read or written, 2 usage error.';

export const MANIFEST_OPTIONS = {
  in: { type: 'string' },
  out: { type: 'string' },
  bootstrap: { type: 'string', multiple: true },
  'bootstrap-dir': { type: 'string' },
} satisfies NonNullable<ParseArgsConfig['options']>;

type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

function usage(message: string): AgentError {
  return new AgentError('AGENT_USAGE', message);
}

const ioCode = (cause: unknown) => (cause as NodeJS.ErrnoException).code ?? 'error';

/**
 * Reads one file to hash: a regular file (a directory or device is a mistake in the flags) of at most
 * `maxBytes`. Returns null when `missingOk` and there is no such file.
 */
async function readBootstrapFile(path: string, what: string, maxBytes: number, missingOk: boolean): Promise<Uint8Array | null> {
  try {
    const info = await stat(path);
    if (!info.isFile()) throw usage(`${what}: ${path} is not a regular file`);
    if (info.size > maxBytes) throw usage(`${what}: ${path} is ${info.size} bytes, more than the ${maxBytes} a verifier fetches`);
    const bytes = new Uint8Array(await readFile(path));
    // Checked again on the bytes read: the file may have grown between stat and read.
    if (bytes.length > maxBytes) throw usage(`${what}: ${path} is more than ${maxBytes} bytes`);
    return bytes;
  } catch (cause) {
    if (cause instanceof AgentError) throw cause;
    if (missingOk && ioCode(cause) === 'ENOENT') return null;
    throw new AgentError('AGENT_IO', `cannot read ${what} ${path}: ${ioCode(cause)}`, { cause });
  }
}

/** The files to hash, by bootstrap path, from `--bootstrap` and `--bootstrap-dir`. A path named twice is a usage error. */
export async function collectBootstrapFiles(flags: readonly string[], dir: string | undefined, maxBytes = BOOTSTRAP_FILE_MAX_BYTES): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    const path = eq < 0 ? flag : flag.slice(0, eq);
    const file = eq < 0 ? '' : flag.slice(eq + 1);
    if (!BOOTSTRAP_PATHS.has(path)) throw usage(`--bootstrap expected PATH=FILE with PATH one of ${[...BOOTSTRAP_PATHS].join(', ')}, got ${JSON.stringify(flag)}`);
    if (file === '') throw usage(`--bootstrap ${path} needs =FILE`);
    if (files.has(path)) throw usage(`--bootstrap ${path} given twice`);
    files.set(path, (await readBootstrapFile(file, `--bootstrap ${path}`, maxBytes, false))!);
  }
  if (dir !== undefined) {
    if (dir === '') throw usage('--bootstrap-dir expected a directory');
    let found = 0;
    for (const path of BOOTSTRAP_PATHS) {
      // `/` is the page: no file name stands for it, so it is named explicitly or not at all.
      if (path === '/') continue;
      const bytes = await readBootstrapFile(join(dir, ...path.split('/').filter((part) => part !== '')), `--bootstrap-dir ${path}`, maxBytes, true);
      if (bytes === null) continue;
      if (files.has(path)) throw usage(`${path} is given by --bootstrap and found in --bootstrap-dir; name it once`);
      files.set(path, bytes);
      found++;
    }
    if (found === 0) throw usage(`--bootstrap-dir ${dir}: no bootstrap file there (looked for ${[...BOOTSTRAP_PATHS].filter((p) => p !== '/').map((p) => p.slice(1)).join(', ')})`);
  }
  if (files.size === 0) throw usage('give at least one --bootstrap PATH=FILE or --bootstrap-dir DIR');
  return files;
}

/** Runs `manifest`: writes the file and prints each hash (`<sha256>  <path>  <n> bytes`) and the manifest's own. */
export async function runManifestCommand(values: FlagValues, out: { write(text: string): unknown } = process.stdout): Promise<number> {
  const input = typeof values.in === 'string' ? values.in : undefined;
  const output = typeof values.out === 'string' ? values.out : undefined;
  if (input === undefined || input === '') throw usage('--in FILE is required (the manifest to add the hashes to)');
  if (output === undefined || output === '') throw usage('--out FILE is required');
  const flags = Array.isArray(values.bootstrap) ? values.bootstrap.filter((v): v is string => typeof v === 'string') : [];
  const files = await collectBootstrapFiles(flags, typeof values['bootstrap-dir'] === 'string' ? values['bootstrap-dir'] : undefined);
  let manifest: Uint8Array;
  try {
    manifest = new Uint8Array(await readFile(input));
  } catch (cause) {
    throw new AgentError('AGENT_IO', `cannot read the manifest ${input}: ${ioCode(cause)}`, { cause });
  }
  const hashes = hashBootstrapFiles(files);
  let result: Uint8Array;
  try {
    result = addBootstrapHashes(manifest, hashes, `--in ${input}`);
  } catch (err) {
    // A manifest the agent would refuse is the user's to fix.
    if (err instanceof AgentError && err.code === 'AGENT_MANIFEST') throw usage(err.message);
    throw err;
  }
  try {
    await writeFile(output, result);
  } catch (cause) {
    throw new AgentError('AGENT_IO', `cannot write ${output}: ${ioCode(cause)}`, { cause });
  }
  for (const [path, sha256] of hashes) out.write(`${sha256}  ${path}  ${files.get(path)!.length} bytes\n`);
  out.write(`manifest sha256 ${createHash('sha256').update(result).digest('hex')} written to ${output}\n`);
  return 0;
}
