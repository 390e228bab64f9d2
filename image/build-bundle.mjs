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
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY = 'agent/cli.ts';
const ENTRY_NAME = 'enclave-agent';
const BUNDLE_NAME = `${ENTRY_NAME}.mjs`;

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
  entryPoints: { [ENTRY_NAME]: ENTRY },
  // Code splitting: what a command imports with import() goes into chunk files beside the bundle, which
  // Node reads and compiles only when that command runs. In one file esbuild evaluates every module at
  // start, so `run` (what init spawns) would pay for the verifier, the mock PKI, the STEVE client, undici's
  // first use and the other commands: about 40% of its start-up time and several MiB at idle (issue 16,
  // bench/startup.mjs). Chunk names are content hashes, so they are as deterministic as the bundle.
  outdir: '.',
  splitting: true,
  entryNames: '[name]',
  chunkNames: 'chunk-[hash]',
  outExtension: { '.js': '.mjs' },
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

/**
 * Builds the bundle in memory: its files (`name` relative to OUTDIR, `bytes`) in name order, and esbuild's
 * metafile (which chunk holds which input, and which chunks each imports), for test/agent-bundle.test.ts.
 */
export async function buildAgentBundle() {
  const result = await build(OPTIONS);
  const outputs = result.outputFiles.map((file) => ({ name: relative(REPO, file.path), bytes: file.contents })).sort((a, b) => (a.name < b.name ? -1 : 1));
  if (!outputs.some((o) => o.name === BUNDLE_NAME)) throw new Error(`esbuild wrote no ${BUNDLE_NAME}`);
  return { outputs, metafile: result.metafile };
}

async function main() {
  const outArgument = process.argv[2];
  if (outArgument === undefined) throw new Error('usage: node image/build-bundle.mjs OUTDIR');
  const outdir = resolve(outArgument);

  const { outputs, metafile } = await buildAgentBundle();
  const inputs = Object.keys(metafile.inputs).sort();
  const problems = inputs.filter((input) => FORBIDDEN_INPUTS.some((pattern) => pattern.test(input))).map((input) => `includes ${input}`);
  for (const { name, bytes } of outputs) {
    if (name.includes('/')) problems.push(`${name} is not beside ${BUNDLE_NAME}`);
    const text = Buffer.from(bytes).toString('latin1');
    for (const path of new Set([REPO, process.cwd(), outdir])) {
      if (text.includes(path)) problems.push(`${name} contains the absolute path ${path}`);
    }
  }
  if (problems.length > 0) throw new Error(`${BUNDLE_NAME}: ${problems.join('; ')}`);

  // The package root marker the addon loader looks for; only fields that do not vary between builds.
  const project = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8'));
  const marker = `${JSON.stringify({ name: project.name, version: project.version, private: true, type: 'module', license: project.license }, null, 2)}\n`;

  await mkdir(outdir, { recursive: true });
  for (const { name, bytes } of outputs) {
    await writeFile(join(outdir, name), bytes, { mode: 0o755 });
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    process.stdout.write(`${sha256}  ${name}  ${bytes.length} bytes\n`);
  }
  await writeFile(join(outdir, 'package.json'), marker, { mode: 0o644 });
  process.stdout.write(`${outputs.length} files from ${inputs.length} inputs\n`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    process.stderr.write(`build-bundle.mjs: ${error.message}\n`);
    process.exit(1);
  });
}
