#!/usr/bin/env node
/**
 * Bundles the agent (agent/cli.ts and everything it imports, dependencies included) into one ES module for
 * Node 20, the file the enclave image runs instead of dist/ plus node_modules.
 *
 *   node image/build-bundle.mjs OUTDIR      writes OUTDIR/enclave-agent.mjs and OUTDIR/package.json
 *
 * OUTDIR becomes /opt/enclave-agent in the image. The package.json written beside the bundle is not for npm:
 * native/addon.ts finds the native addon by walking up from the running module to the package.json named
 * `enclave-agent` and loading build/Release/enclave_native.node under it, so the image puts the addon at
 * OUTDIR/build/Release/ (build-initramfs.sh copies it).
 *
 * Deterministic on purpose (image/README.md): fixed options, the repository as esbuild's working directory
 * (paths in the output are relative to it), no source maps, no timestamps, legal comments gathered at the
 * end in esbuild's fixed order. It fails when the bundle would contain a test, a benchmark or an absolute
 * path of this machine. It must not write anywhere but OUTDIR.
 */

import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY = 'agent/cli.ts';
const BUNDLE_NAME = 'enclave-agent.mjs';

/**
 * CommonJS dependencies (pino, undici, @peculiar/*) call `require` for Node builtins; an ES module has no
 * `require`, and esbuild's stand-in throws "Dynamic require of "node:os" is not supported". This gives the
 * bundle a real one. The name is ours so it cannot clash with a bundled module's.
 */
const BANNER = "import { createRequire as enclaveAgentCreateRequire } from 'node:module';\nconst require = enclaveAgentCreateRequire(import.meta.url);";

/** Inputs the bundle must never contain. */
const FORBIDDEN_INPUTS = [/\.test\.ts$/, /^test\//, /^bench\//, /^image\//];

/** Options; nothing here depends on the machine, the time or OUTDIR. */
const OPTIONS = Object.freeze({
  absWorkingDir: REPO,
  entryPoints: [ENTRY],
  outfile: BUNDLE_NAME,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  banner: { js: BANNER },
  minify: false,
  legalComments: 'eof',
  sourcemap: false,
  charset: 'ascii',
  treeShaking: true,
  write: false,
  metafile: true,
  logLevel: 'warning',
});

async function main() {
  const outArgument = process.argv[2];
  if (outArgument === undefined) throw new Error('usage: node image/build-bundle.mjs OUTDIR');
  const outdir = resolve(outArgument);

  const result = await build(OPTIONS);
  const bytes = result.outputFiles[0].contents;
  const inputs = Object.keys(result.metafile.inputs).sort();
  const problems = inputs.filter((input) => FORBIDDEN_INPUTS.some((pattern) => pattern.test(input))).map((input) => `includes ${input}`);
  const text = Buffer.from(bytes).toString('latin1');
  for (const path of new Set([REPO, process.cwd(), outdir])) {
    if (text.includes(path)) problems.push(`contains the absolute path ${path}`);
  }
  if (problems.length > 0) throw new Error(`${BUNDLE_NAME}: ${problems.join('; ')}`);

  // The package root marker the addon loader looks for; only fields that do not vary between builds.
  const project = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8'));
  const marker = `${JSON.stringify({ name: project.name, version: project.version, private: true, type: 'module', license: project.license }, null, 2)}\n`;

  await mkdir(outdir, { recursive: true });
  await writeFile(join(outdir, BUNDLE_NAME), bytes, { mode: 0o755 });
  await writeFile(join(outdir, 'package.json'), marker, { mode: 0o644 });
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  process.stdout.write(`${sha256}  ${BUNDLE_NAME}  ${bytes.length} bytes, ${inputs.length} inputs\n`);
}

main().catch((error) => {
  process.stderr.write(`build-bundle.mjs: ${error.message}\n`);
  process.exit(1);
});
