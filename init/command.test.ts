/**
 * `enclave-agent init`'s cross-check hook (init/command.ts): the caller's checks run on every loaded
 * configuration with the environment the children start from, and any problem refuses it like
 * init/config.ts's own (exit 2, every problem on stderr), before `--print-measurement` prints anything.
 * The real check (agent/init-cross-check.ts) has its own tests; the built CLI is in init.e2e.test.ts.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runInitCommand } from './command.js';
import type { InitConfig } from './config.js';

const CONFIG = { nsm: 'device', boot: { mounts: false, loopback: false, entropy: false, heartbeat: false }, app: { command: ['/app/server'] }, agent: null, pcr: { index: 16 } };

let dir: string;
let path: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'init-command-'));
  path = join(dir, 'init.json');
  await writeFile(path, JSON.stringify(CONFIG));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function printMeasurement(crossCheck: (config: InitConfig, env: Readonly<Record<string, string | undefined>>) => readonly string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const env = { ENCLAVE_INIT_CONFIG: path, MARK: 'init env' };
  const status = await runInitCommand({ 'print-measurement': true }, { cli: [], env, crossCheck, stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
  return { status, stdout: out.join(''), stderr: err.join('') };
}

describe('runInitCommand crossCheck', () => {
  it('is given the loaded configuration and the environment the children start from', async () => {
    const seen: Array<[InitConfig, Readonly<Record<string, string | undefined>>]> = [];
    const result = await printMeasurement((config, env) => {
      seen.push([config, env]);
      return [];
    });
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ pcr: { index: 16 } });
    expect(seen).toHaveLength(1);
    expect(seen[0]![0].app.command).toEqual(['/app/server']);
    expect(seen[0]![1].MARK).toBe('init env');
  });

  it('refuses on any problem: exit 2, every problem on stderr, no measurement', async () => {
    const two = await printMeasurement(() => ['first problem', 'second problem']);
    expect(two).toEqual({ status: 2, stdout: '', stderr: 'enclave-agent init: invalid configuration:\n  first problem\n  second problem\n' });
    const one = await printMeasurement(() => ['only problem']);
    expect(one).toEqual({ status: 2, stdout: '', stderr: 'enclave-agent init: invalid init configuration: only problem\n' });
  });
});
