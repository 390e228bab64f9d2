#!/usr/bin/env node
/**
 * Bundles the browser side of STEVE into the three bootstrap files the agent serves in plaintext
 * (specs/steve.md §6): enclave-sw.js (classic script: service workers need no module support),
 * register.js and attestation-widget.js (ES modules).
 *
 *   node steve/browser/build.mjs [OUTDIR]     (default dist/browser, relative to the current directory)
 *
 * Deterministic on purpose, so anyone can rebuild and compare what their browser runs: fixed options, the
 * repository as the working directory (no absolute paths in the output), no source maps, no legal
 * comments, no timestamps, entries in sorted order, and the SHA-256 of each file printed. Fails when a
 * bundle pulls in a Node builtin or code that belongs to the server side (agent/, steve/server/, ...):
 * the bundles import only web-standard code (steve/client, steve/protocol, nsm/verifier.ts, cbor/).
 */

import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The bundles, sorted by output name. */
export const BUNDLES = [
  { entry: 'steve/browser/attestation-widget.ts', output: 'attestation-widget.js', format: 'esm' },
  { entry: 'steve/browser/enclave-sw.ts', output: 'enclave-sw.js', format: 'iife' },
  { entry: 'steve/browser/register.ts', output: 'register.js', format: 'esm' },
].sort((a, b) => (a.output < b.output ? -1 : 1));

/** Inputs a bundle must never contain: the server side and Node-only parts of the project. */
const FORBIDDEN_INPUTS = [/^agent\//, /^steve\/server\//, /^init\//, /^vsock\//, /^bench\//, /^test\//, /^nsm\/(?:device|mock|mock-pki|open|ecdsa-node|client)\.ts$/];

/** Options shared by every bundle; nothing here depends on the machine, the time or OUTDIR. */
const COMMON = Object.freeze({
  absWorkingDir: REPO,
  bundle: true,
  platform: 'browser',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  sourcemap: false,
  charset: 'ascii',
  treeShaking: true,
  write: false,
  metafile: true,
  logLevel: 'silent',
});

/** Builds every bundle in memory; resolves with [{ output, bytes, sha256, inputs }]. */
export async function buildBundles() {
  const results = [];
  for (const bundle of BUNDLES) {
    const result = await build({ ...COMMON, entryPoints: [bundle.entry], format: bundle.format, outfile: bundle.output });
    const file = result.outputFiles[0];
    const inputs = Object.keys(result.metafile.inputs).sort();
    const imports = Object.values(result.metafile.inputs).flatMap((input) => input.imports.map((i) => i.path));
    const problems = [
      ...inputs.filter((input) => FORBIDDEN_INPUTS.some((pattern) => pattern.test(input))).map((input) => `includes ${input}`),
      ...imports.filter((path) => path.startsWith('node:')).map((path) => `imports ${path}`),
    ];
    if (problems.length > 0) throw new Error(`${bundle.output}: ${problems.join('; ')}`);
    results.push({ output: bundle.output, bytes: file.contents, sha256: createHash('sha256').update(file.contents).digest('hex'), inputs });
  }
  return results;
}

async function main() {
  const outdir = resolve(process.argv[2] ?? join(REPO, 'dist', 'browser'));
  await mkdir(outdir, { recursive: true });
  for (const { output, bytes, sha256 } of await buildBundles()) {
    await writeFile(join(outdir, output), bytes);
    process.stdout.write(`${sha256}  ${output}  ${bytes.length} bytes\n`);
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    process.stderr.write(`build.mjs: ${error.message}\n`);
    process.exit(1);
  });
}
