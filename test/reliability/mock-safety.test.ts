/**
 * Mock safety: the mock NSMs can never be what a production deployment runs, and nothing they sign
 * passes a default verifier.
 * - loadConfig refuses `--nsm mock` and `--nsm mock-signed-device` unless `--deployment test` (by flag or
 *   environment), with its exact problem text;
 * - startAgent refuses any NSM whose kind is not `device` in a production deployment (the second lock,
 *   for callers that build a config by hand), before it opens a listener;
 * - the default verifier (no `root`: the pinned AWS Nitro Root-G1) rejects a mock document, also one
 *   whose bundle claims the AWS root, with either P-384 verifier; so does the STEVE client without a
 *   `root`, before anything reaches the app; so does `enclave-agent verify-document` without `--root`;
 * - the built CLI: `enclave-agent run --nsm mock --mock-pki DIR --manifest F` exits 2 with the message
 *   and never listens; the same with `--deployment test` does start (the refusal is the deployment's).
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent } from '../../agent/agent.js';
import { loadConfig } from '../../agent/config.js';
import { AgentError } from '../../agent/errors.js';
import { DEMO_MANIFEST_JSON } from '../../agent/demo/manifest.js';
import { parseManifest } from '../../agent/manifest.js';
import {
  AWS_NITRO_ROOT_G1_DER,
  NsmError,
  createMockSignedDeviceTransport,
  createNsm,
  defaultMockPcrs,
  nobleP384Verifier,
  nodeP384Verifier,
  openMockNsm,
  verifyAttestationDocument,
  writeMockPki,
  type NsmTransport,
} from '../../nsm/index.js';
import { SteveClientError, createSteveClient } from '../../steve/client/index.js';
import { nodeAesGcm } from '../../steve/server/index.js';
import { testAgentConfig } from '../agent-config.js';
import { signMockDocument, silentLogger } from '../mock-documents.js';
import { mockPki } from '../steve/harness.js';
import { startTestAgent } from '../steve-client-agent.js';

const REPO = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const CLI = join(REPO, 'dist', 'agent', 'cli.js');
const SPAWN_TIMEOUT_MS = 20_000;

const refusal = (mode: string) => `--nsm ${mode} is refused in a production deployment: its documents prove nothing (set --deployment test for tests and demos)`;

let dir: string;
let manifestPath: string;
let pkiDir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'reliability-mock-safety-'));
  manifestPath = join(dir, 'manifest.json');
  writeFileSync(manifestPath, DEMO_MANIFEST_JSON);
  pkiDir = join(dir, 'pki');
  await writeMockPki(pkiDir, mockPki());
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function configProblems(flags: Record<string, string>, env: Record<string, string> = {}): readonly string[] {
  try {
    loadConfig(flags, env);
    return [];
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('AGENT_CONFIG');
    return (err as AgentError).problems;
  }
}

describe('loadConfig', () => {
  it.each(['mock', 'mock-signed-device'])('refuses --nsm %s without --deployment test (flag, environment, explicit production)', (mode) => {
    const flags = { nsm: mode, 'mock-pki': pkiDir, manifest: manifestPath };
    expect(configProblems(flags)).toEqual([refusal(mode)]);
    expect(configProblems({ 'mock-pki': pkiDir, manifest: manifestPath }, { ENCLAVE_AGENT_NSM: mode })).toEqual([refusal(mode)]);
    expect(configProblems({ ...flags, deployment: 'production' })).toEqual([refusal(mode)]);
    expect(configProblems(flags, { ENCLAVE_AGENT_DEPLOYMENT: 'production' })).toEqual([refusal(mode)]);
    // The one way in: an explicit test deployment.
    expect(configProblems({ ...flags, deployment: 'test' })).toEqual([]);
    expect(configProblems(flags, { ENCLAVE_AGENT_DEPLOYMENT: 'test' })).toEqual([]);
  });

  it('the device needs no deployment flag', () => {
    expect(configProblems({ nsm: 'device', manifest: manifestPath })).toEqual([]);
  });
});

describe('startAgent', () => {
  const manifest = parseManifest(new TextEncoder().encode(DEMO_MANIFEST_JSON), 'demo');
  const fdCount = () => readdirSync('/proc/self/fd').length;

  async function refusedWith(nsm: Parameters<typeof startAgent>[0]['nsm']): Promise<unknown> {
    const before = fdCount();
    const error = await startAgent({ config: testAgentConfig({ deployment: 'production' }), nsm, manifest, logger: pino({ level: 'silent' }) }).catch((e: unknown) => e);
    // Refused before any listener was opened.
    expect(fdCount()).toBe(before);
    return error;
  }

  it('refuses the mock NSM in a production deployment', async () => {
    const nsm = openMockNsm({ pki: mockPki(), logger: silentLogger });
    const error = await refusedWith(nsm);
    expect(error).toBeInstanceOf(AgentError);
    expect((error as AgentError).code).toBe('AGENT_CONFIG');
    expect((error as AgentError).message).toBe('a production deployment refuses the mock NSM (set deployment to test for tests and demos)');
    await nsm.close();
  });

  it('refuses the mock-signed device too (a real device underneath, mock signatures on top)', async () => {
    const device: NsmTransport = { kind: 'device', request: () => Promise.reject(new NsmError('NSM_EIO', 'not used')), close: () => Promise.resolve() };
    const nsm = createNsm(createMockSignedDeviceTransport({ device, pki: mockPki(), logger: silentLogger }));
    expect(nsm.kind).toBe('mock');
    const error = await refusedWith(nsm);
    expect((error as AgentError).code).toBe('AGENT_CONFIG');
    await nsm.close();
  });
});

describe('the default verifier rejects mock documents', () => {
  const pki = mockPki();
  const atMs = pki.leaf.notBefore.getTime() + 120_000;
  const codeOf = (run: () => unknown): string => {
    try {
      run();
      return 'accepted';
    } catch (err) {
      return err instanceof NsmError ? err.code : `not an NsmError: ${String(err)}`;
    }
  };

  it('a document from the mock NSM: ATTESTATION_ROOT with either P-384 verifier; valid against the mock root', async () => {
    const nsm = openMockNsm({ pki, logger: silentLogger });
    const document = await nsm.attest({ nonce: new Uint8Array(32).fill(1) });
    await nsm.close();
    const now = Date.now();
    expect(codeOf(() => verifyAttestationDocument(document, { atMs: now }))).toBe('ATTESTATION_ROOT');
    expect(codeOf(() => verifyAttestationDocument(document, { atMs: now, verifier: nodeP384Verifier }))).toBe('ATTESTATION_ROOT');
    expect(codeOf(() => verifyAttestationDocument(document, { atMs: now, verifier: nobleP384Verifier, allowDebug: true }))).toBe('ATTESTATION_ROOT');
    // The control: the document is otherwise valid.
    expect(codeOf(() => verifyAttestationDocument(document, { atMs: now, root: pki.root.der, verifier: nodeP384Verifier }))).toBe('accepted');
  });

  it('a mock document whose bundle claims the AWS root: the chain does not lead to it', () => {
    const forged = signMockDocument(pki, { cabundle: [AWS_NITRO_ROOT_G1_DER, ...pki.intermediates.map((c) => c.der)] });
    expect(codeOf(() => verifyAttestationDocument(forged, { atMs }))).toBe('ATTESTATION_CHAIN');
    expect(codeOf(() => verifyAttestationDocument(forged, { atMs, verifier: nodeP384Verifier }))).toBe('ATTESTATION_CHAIN');
  });

  it('the STEVE client without a root refuses a mock-backed agent before anything reaches the app', async () => {
    let appHits = 0;
    const app = createServer((_req, res) => {
      appHits++;
      res.end('app');
    });
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    const agent = await startTestAgent({ pki, suite: 'X25519', upstream: `http://127.0.0.1:${(app.address() as AddressInfo).port}/` });
    try {
      const mockPcrs = defaultMockPcrs();
      const client = createSteveClient({
        origin: agent.origin,
        keyExchange: 'X25519',
        // The mock's own PCRs, so the root is the only thing that can fail.
        pcrPolicy: [{ name: 'mock', pcrs: new Map([[0, mockPcrs.get(0)!]]) }],
        verifier: nodeP384Verifier,
        aead: nodeAesGcm,
      });
      const error = await client.request('/secret').catch((e: unknown) => e);
      client.close();
      expect(error).toBeInstanceOf(SteveClientError);
      expect((error as SteveClientError).code).toBe('STEVE_CLIENT_ATTESTATION');
      expect(((error as SteveClientError).cause as NsmError).code).toBe('ATTESTATION_ROOT');
      expect(appHits).toBe(0);
    } finally {
      await agent.stop();
      app.closeAllConnections();
      await new Promise<void>((resolve) => app.close(() => resolve()));
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// The built CLI (dist/ is built by the global setup when stale)

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Spawns the CLI. With `whenListening`, that is called with the public address once the agent logs
 * `agent listening`, and SIGTERM is sent after it settles (once: a second SIGTERM during the graceful
 * shutdown would end the process by the default action). Killed after SPAWN_TIMEOUT_MS.
 */
function cli(args: readonly string[], options: { env?: Record<string, string>; whenListening?: (address: string) => Promise<void> } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
    delete env.NODE_OPTIONS;
    for (const name of Object.keys(env)) if (name.startsWith('ENCLAVE_AGENT_') && !(options.env && name in options.env)) delete env[name];
    const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let listening = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const line = stdout.split('\n').find((l) => l.includes('"msg":"agent listening"'));
      if (options.whenListening === undefined || listening || line === undefined) return;
      listening = true;
      const address = (JSON.parse(line) as { addresses: { public: string } }).addresses.public;
      options.whenListening(address).finally(() => child.kill('SIGTERM')).catch(reject);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), SPAWN_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

describe('enclave-agent (built CLI)', () => {
  const loopback = ['--listen', '127.0.0.1:0', '--internal-listen', '127.0.0.1:0'];

  it.each(['mock', 'mock-signed-device'])('run --nsm %s without --deployment test: exit 2 with the problem, never listening', async (mode) => {
    const run = await cli(['run', '--nsm', mode, '--mock-pki', pkiDir, '--manifest', manifestPath, ...loopback]);
    expect(run.status).toBe(2);
    expect(run.stderr).toBe(`enclave-agent run: invalid configuration:\n  - ${refusal(mode)}\n`);
    expect(run.stdout).not.toContain('agent listening');
  });

  it('the same through the environment: exit 2', async () => {
    const run = await cli(['run', ...loopback], { env: { ENCLAVE_AGENT_NSM: 'mock', ENCLAVE_AGENT_MOCK_PKI: pkiDir, ENCLAVE_AGENT_MANIFEST: manifestPath } });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(refusal('mock'));
  });

  it('the control: with --deployment test it starts (and logs the mock warning), serves, then stops on SIGTERM', async () => {
    let health = 0;
    const run = await cli(['run', '--nsm', 'mock', '--deployment', 'test', '--mock-pki', pkiDir, '--manifest', manifestPath, ...loopback, '--log-level', 'info'], {
      whenListening: async (address) => {
        health = (await fetch(`http://${address}/.well-known/caution/health`)).status;
      },
    });
    expect(run.stdout + run.stderr).toContain('MOCK NSM IN USE');
    expect(health).toBe(200);
    expect(run.status).toBe(0);
  });

  it('verify-document without --root rejects a mock document (exit 1, ATTESTATION_ROOT)', async () => {
    const nsm = openMockNsm({ pki: mockPki(), logger: silentLogger });
    const path = join(dir, 'mock.cose');
    writeFileSync(path, await nsm.attest({ nonce: new Uint8Array(32).fill(2) }));
    await nsm.close();
    const run = await cli(['verify-document', path]);
    expect(run.status).toBe(1);
    expect(run.stdout + run.stderr).toContain('ATTESTATION_ROOT');
    const control = await cli(['verify-document', path, '--root', join(pkiDir, 'root.pem'), '--allow-debug']);
    expect(control.status).toBe(0);
  });
});
