/**
 * The image's code-split bundle (image/build-bundle.mjs). First without running it: what `enclave-agent run`
 * (what init spawns in the enclave) reads at start is the entry plus the chunks that run-command.ts and
 * command-runner.ts import statically, and none of them may hold what start-up does not use: the other
 * commands, the verifier and X.509, the mock NSM and its PKI, init's boot steps, the bridges, the EIF code,
 * or undici (imported on the first call to the app). Issue 16: these were a third of the start-up time and
 * 13 MiB of the idle memory (bench/startup.mjs measures them; this test holds the structure, not a time).
 * Then run, written to a temporary directory: the agent with the mock NSM in front of an app on loopback,
 * a bootstrap file in plaintext and a request through STEVE (the bundle's own `fetch`), which load the
 * chunks they need on first use (undici as a CommonJS module through import(): esbuild gives it only as
 * `default` there, unlike Node, so the source's own tests cannot see a mistake in it).
 */

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_MANIFEST_JSON } from '../agent/demo/manifest.js';
import { findPackageRoot } from '../native/index.js';
// @ts-expect-error build-bundle.mjs is plain JavaScript (run as `node image/build-bundle.mjs OUTDIR`).
import { buildAgentBundle } from '../image/build-bundle.mjs';
import { runNode, type CliRun } from './run-cli.js';

interface Built {
  outputs: Array<{ name: string; bytes: Uint8Array }>;
  metafile: { outputs: Record<string, MetafileOutput> };
}

interface MetafileOutput {
  entryPoint?: string;
  imports: Array<{ path: string; kind: string }>;
  inputs: Record<string, unknown>;
}

/** One CLI run or the agent's start may take this long before the test fails (it takes about a second). */
const SPAWN_TIMEOUT_MS = 20_000;

/** Inputs `run` must not load at start, by path. */
const NOT_AT_START: ReadonlyArray<RegExp> = [
  /^agent\/commands\.ts$/,
  /^agent\/(?:verify-remote|verify-bootstrap|fetch-command|manifest-command|eif-command|demo\/)/,
  /^nsm\/(?:mock|mock-pki|mock-signed-device|verify|x509|ecdsa|document|aws-root)\.ts$/,
  /^steve\/client\//,
  /^init\/(?!app-state\.ts$)/,
  /^bridge\//,
  /^vsock\//,
  /^eif\//,
  /^node_modules\/(?:undici|@peculiar|asn1js|pvtsutils|pvutils|tslib)\//,
];

/** Runs `node BUNDLE args` to its end (test/run-cli.ts). */
function runBundle(bundle: string, args: readonly string[]): Promise<CliRun> {
  return runNode(bundle, args, { timeoutMs: SPAWN_TIMEOUT_MS });
}

function getText(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, timeout: SPAWN_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.once('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.once('timeout', () => req.destroy(new Error('timed out')));
    req.once('error', reject);
  });
}

let built: Built;
beforeAll(async () => {
  built = (await buildAgentBundle()) as Built;
});

describe('the agent bundle', () => {
  it('loads only the agent at start for `run`: no other command, verifier, mock, init step or undici', () => {
    const outputs = built.metafile.outputs;
    const byEntry = (entry: string): string => {
      const found = Object.entries(outputs).find(([, output]) => output.entryPoint === entry);
      if (found === undefined) throw new Error(`no output for ${entry}: the bundle is not split`);
      return found[0];
    };
    // The entry itself holds cli.ts only: the command is chosen before anything else is evaluated.
    expect(Object.keys(outputs[byEntry('agent/cli.ts')]!.inputs)).toEqual(['agent/cli.ts']);

    const atStart = new Set<string>();
    const pending = [byEntry('agent/run-command.ts'), byEntry('agent/command-runner.ts')];
    while (pending.length > 0) {
      const name = pending.pop()!;
      if (atStart.has(name)) continue;
      atStart.add(name);
      for (const imported of outputs[name]!.imports) if (imported.kind === 'import-statement' && !imported.path.startsWith('node:') && imported.path in outputs) pending.push(imported.path);
    }
    const inputs = [...atStart].flatMap((name) => Object.keys(outputs[name]!.inputs));
    expect(inputs.filter((input) => NOT_AT_START.some((pattern) => pattern.test(input)))).toEqual([]);
    // What it does load: the agent, the device transport and the STEVE server.
    expect(inputs).toEqual(expect.arrayContaining(['agent/agent.ts', 'nsm/device.ts', 'nsm/open.ts', 'steve/server/server.ts', 'init/app-state.ts']));
  });

  describe('run from a directory', () => {
    let dir: string;
    let app: Server;
    let agent: ReturnType<typeof spawn> | undefined;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'enclave-agent-bundle-'));
      await mkdir(join(dir, 'agent'));
      for (const { name, bytes } of built.outputs) await writeFile(join(dir, 'agent', name), bytes);
      // The package root marker, and the addon where the image puts it (the agent seals STEVE's records
      // with it, agent/aes-gcm-native.ts, whichever NSM it uses); the demo manifest without bootstrap hashes.
      await writeFile(join(dir, 'agent', 'package.json'), JSON.stringify({ name: 'enclave-agent', type: 'module' }));
      await mkdir(join(dir, 'agent', 'build', 'Release'), { recursive: true });
      await copyFile(join(findPackageRoot()!, 'build', 'Release', 'enclave_native.node'), join(dir, 'agent', 'build', 'Release', 'enclave_native.node'));
      await writeFile(join(dir, 'manifest.json'), DEMO_MANIFEST_JSON);
      app = createServer((req, res) => res.end(`app saw ${req.method} ${req.url}`));
      app.listen(0, '127.0.0.1');
      await once(app, 'listening');
    });

    afterAll(async () => {
      agent?.kill('SIGKILL');
      app?.close();
      await rm(dir, { recursive: true, force: true });
    });

    it('forwards a bootstrap file in plaintext and a request through STEVE on the chunks it loads then', async () => {
      const bundle = join(dir, 'agent', 'enclave-agent.mjs');
      const pki = await runBundle(bundle, ['mock-pki', '--out', join(dir, 'pki')]);
      expect(pki.status, pki.stderr).toBe(0);
      const env = { ...process.env };
      delete env.NODE_OPTIONS;
      const child = spawn(process.execPath, [bundle, 'run', '--nsm', 'mock', '--deployment', 'test', '--mock-pki', join(dir, 'pki'), '--manifest', join(dir, 'manifest.json'), '--listen', '127.0.0.1:0', '--internal-listen', '127.0.0.1:0', '--upstream', `http://127.0.0.1:${(app.address() as AddressInfo).port}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      agent = child;
      let log = '';
      let stdout = '';
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
      const address = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`agent not listening: ${log}`)), SPAWN_TIMEOUT_MS);
        child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
          log += chunk;
          stdout += chunk;
          const line = stdout.split('\n').find((l) => l.includes('"agent listening"'));
          if (line !== undefined) {
            clearTimeout(timer);
            resolve((JSON.parse(line) as { addresses: { public: string } }).addresses.public);
          }
        });
        child.once('exit', (code) => reject(new Error(`agent exited ${code}: ${log}`)));
      });

      // agent/agent.ts's plaintext path: the first call to the app loads undici.
      expect(await getText(`http://${address}/register.js`)).toEqual({ status: 200, body: 'app saw GET /register.js' });
      // steve/server/upstream.ts's pool, through the bundle's own client.
      const fetched = await runBundle(bundle, ['fetch', `http://${address}/hello?x=1`, '--tofu', join(dir, 'tofu.json'), '--root', join(dir, 'pki', 'root.pem'), '--allow-debug']);
      expect(fetched.status, fetched.stderr).toBe(0);
      expect(fetched.stdout).toBe('app saw GET /hello?x=1');
    });
  });
});
