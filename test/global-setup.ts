/**
 * Runs once before any test file: builds dist/ with tsc when it is missing or older than a source
 * file, so the tests that spawn the built CLI never race each other building it.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = dirname(dirname(fileURLToPath(import.meta.url)));
const CLI = join(REPO, 'dist', 'agent', 'cli.js');
/** Folders compiled into dist/ by tsconfig.build.json. */
const SOURCE_FOLDERS = ['agent', 'nsm', 'cbor', 'steve', 'init', 'vsock', 'bridge', 'native'];

/** Newest modification time of the build's inputs: every non-test .ts in the source folders and the tsconfigs. */
function newestSourceMs(): number {
  let newest = Math.max(statSync(join(REPO, 'tsconfig.json')).mtimeMs, statSync(join(REPO, 'tsconfig.build.json')).mtimeMs);
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
    }
  };
  for (const folder of SOURCE_FOLDERS) if (existsSync(join(REPO, folder))) walk(join(REPO, folder));
  return newest;
}

export default function setup(): void {
  if (existsSync(CLI) && statSync(CLI).mtimeMs >= newestSourceMs()) return;
  const tsc = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: REPO, encoding: 'utf8' });
  // tsc emits despite type errors (those fail `npm test`'s own type check); a missing cli.js is ours.
  if (!existsSync(CLI)) throw new Error(`build did not produce ${CLI}:\n${result.stdout}${result.stderr}`);
}
