/**
 * The agent's Node flags (agent/node-flags.ts) reach every way the agent starts: image/init.sh (init, and
 * through its execArgv the agent and services it spawns), the CLI's shebang in the source and in dist/
 * (tsc keeps it; the image bundle's entry keeps it too), and this Node accepts them.
 */

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AGENT_NODE_FLAGS } from '../agent/node-flags.js';
import { CLI } from './run-cli.js';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const SHEBANG = `#!/usr/bin/env -S node ${AGENT_NODE_FLAGS.join(' ')}`;

describe('the agent\'s Node flags', () => {
  it('are a floor of 64 MiB under the old generation\'s collection limit (node-flags.ts)', () => {
    expect(AGENT_NODE_FLAGS).toEqual(['--initial-old-space-size=64']);
  });

  it('are on the first line of the CLI, in the source and in the build', () => {
    expect(readFileSync(join(ROOT, 'agent', 'cli.ts'), 'utf8').split('\n')[0]).toBe(SHEBANG);
    expect(readFileSync(CLI, 'utf8').split('\n')[0]).toBe(SHEBANG);
  });

  it('are on the node command line of the image\'s /init', () => {
    const exec = readFileSync(join(ROOT, 'image', 'init.sh'), 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('exec '));
    expect(exec).toEqual([`exec /usr/bin/node ${AGENT_NODE_FLAGS.join(' ')} /opt/enclave-agent/enclave-agent.mjs init --config /etc/enclave-agent/init.json`]);
  });

  it('are accepted by this Node, and seen by the process as its execArgv (what init passes on)', () => {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const run = spawnSync(process.execPath, [...AGENT_NODE_FLAGS, '-e', 'process.stdout.write(JSON.stringify(process.execArgv))'], { env, encoding: 'utf8', timeout: 20_000 });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    // execArgv also holds `-e` and its code, after the flags.
    expect((JSON.parse(run.stdout) as string[]).slice(0, AGENT_NODE_FLAGS.length)).toEqual([...AGENT_NODE_FLAGS]);
  });
});
