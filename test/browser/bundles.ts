/**
 * The browser bundles (steve/browser/build.mjs: worker, register script, widget) built into `dir` for a
 * test's page, as a child process with a deadline; a failed build throws with its stderr.
 */

import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const BUILD = join(REPO, 'steve', 'browser', 'build.mjs');

export function buildBrowserBundles(dir: string): void {
  const built = spawnSync(process.execPath, [BUILD, dir], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  if (built.status !== 0) throw new Error(`build.mjs failed: ${built.stderr}`);
}
