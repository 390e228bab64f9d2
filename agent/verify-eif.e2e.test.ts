/**
 * `verify --eif` end to end on loopback: a real agent whose mock NSM holds the PCRs of an EIF built here
 * (as Nitro would measure it), checked with that EIF (passes, expected and actual shown per PCR), with a
 * copy whose app ramdisk differs by one byte with its CRC recomputed (AGENT_VERIFY_EIF naming PCR0 and PCR2
 * with both values, PCR1 untouched; exit 1 through the built CLI), beside a `--pcrs` sets file and
 * `--tofu` (nothing recorded after an EIF failure), and with a corrupt EIF (a usage error before anything
 * is sent). Every listener binds port 0 on 127.0.0.1; every wait has a deadline.
 */

import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEif, encodeEifMetadata, parseEif, type EifDescription } from '../eif/index.js';
import { bytesToHex, createMockPki, openMockNsm, writeMockPki, type MockPki, type Nsm } from '../nsm/index.js';
import { testAgentConfig } from '../test/agent-config.js';
import { fixCrc, flipByte } from '../test/eif-images.js';
import { silentLogger } from '../test/mock-documents.js';
import { runCli, type CliRun } from '../test/run-cli.js';
import { startAgent, type RunningAgent } from './agent.js';
import { DEMO_MANIFEST_JSON } from './demo/manifest.js';
import { parseManifest } from './manifest.js';
import { runVerifyCommand, verifyRemote } from './verify-remote.js';

const TEST_TIMEOUT_MS = 20_000;
const VERIFY_TIMEOUT_MS = 10_000;
const utf8 = (text: string) => new TextEncoder().encode(text);

let work: string;
let pki: MockPki;
let rootPem: string;
let nsm: Nsm;
let agent: RunningAgent;
let url: string;
let image: EifDescription;
let goodPath: string;
let changedPath: string;
let changed: EifDescription;

const hex = (bytes: Uint8Array | undefined) => (bytes === undefined ? 'none' : bytesToHex(bytes));
const cli = (args: readonly string[]): Promise<CliRun> => runCli(args, { cwd: work, timeoutMs: TEST_TIMEOUT_MS - 2000 });

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'enclave-agent-verify-eif-'));
  pki = createMockPki();
  await writeMockPki(join(work, 'pki'), pki);
  rootPem = join(work, 'pki', 'root.pem');
  const bytes = buildEif({
    kernel: utf8('a kernel'),
    cmdline: 'console=ttyS0',
    ramdisks: [utf8('bootstrap ramdisk'), utf8('the application ramdisk')],
    metadata: encodeEifMetadata({ imageName: 'e2e', imageVersion: '1.0', buildTimeSeconds: 0, buildTool: 'test', buildToolVersion: '0' }),
  });
  image = parseEif(bytes);
  goodPath = join(work, 'image.eif');
  await writeFile(goodPath, bytes);
  // One byte of the app ramdisk (the last section) changed, the CRC recomputed: a valid image of other code.
  const copy = Buffer.from(bytes);
  flipByte(copy, copy.length - 1, 0x01);
  changed = parseEif(fixCrc(copy));
  changedPath = join(work, 'changed.eif');
  await writeFile(changedPath, copy);
  // The mock NSM holds what Nitro would have measured from image.eif.
  nsm = openMockNsm({ pki, logger: silentLogger, pcrs: image.pcrs });
  agent = await startAgent({ config: testAgentConfig(), nsm, manifest: parseManifest(utf8(DEMO_MANIFEST_JSON), 'e2e manifest'), logger: pino({ level: 'silent' }) });
  url = `http://${agent.addresses.public}/attestation`;
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await nsm?.close();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

function verify(eif: EifDescription, path: string) {
  return verifyRemote({ url: new URL(url), root: pki.root.der, policy: { kind: 'none' }, timeoutMs: VERIFY_TIMEOUT_MS, bootstrap: { mode: 'skip' }, eif: { path, pcrs: eif.pcrs } });
}

describe('verify --eif', () => {
  it('the EIF the enclave runs: passes, every PCR expected == actual', { timeout: TEST_TIMEOUT_MS }, async () => {
    const report = await verify(image, goodPath);
    expect(report.eif?.path).toBe(goodPath);
    expect(report.eif?.pcrs.map((p) => [p.index, hex(p.expected), hex(p.actual ?? undefined), p.match])).toEqual(
      [0, 1, 2].map((i) => [i, hex(image.pcrs.get(i)), hex(image.pcrs.get(i)), true]),
    );
  });

  it('a copy with one app-ramdisk byte changed: AGENT_VERIFY_EIF naming PCR0 and PCR2 with both values', { timeout: TEST_TIMEOUT_MS }, async () => {
    const err = await verify(changed, changedPath).then(
      () => {
        throw new Error('expected AGENT_VERIFY_EIF');
      },
      (e: unknown) => e as { code: string; message: string },
    );
    expect(err.code).toBe('AGENT_VERIFY_EIF');
    expect(err.message).toBe(
      `the document's PCRs differ from the EIF ${changedPath}: ` +
        `PCR0 expected ${hex(changed.pcrs.get(0))} (from the EIF), got ${hex(image.pcrs.get(0))}; ` +
        `PCR2 expected ${hex(changed.pcrs.get(2))} (from the EIF), got ${hex(image.pcrs.get(2))}`,
    );
  });

  it('runVerifyCommand: text and JSON reports carry expected and actual for each PCR', { timeout: TEST_TIMEOUT_MS }, async () => {
    const out: string[] = [];
    const sink = { write: (text: string) => out.push(text) };
    const base = { url, root: rootPem, bootstrap: 'skip' };
    expect(await runVerifyCommand({ ...base, eif: goodPath }, sink)).toBe(0);
    const text = out.join('');
    expect(text).toContain('PCR policy      no --pcrs or --tofu; the PCRs are checked against the EIF only (below)');
    expect(text).toContain(`  EIF             every PCR matches ${goodPath} (PCR0, PCR1, PCR2 computed from the file)`);
    expect(text).toContain(`    PCR0  expected ${hex(image.pcrs.get(0))}\n          actual   ${hex(image.pcrs.get(0))}\n`);

    out.length = 0;
    expect(await runVerifyCommand({ ...base, eif: changedPath, json: true }, sink)).toBe(1);
    const json = JSON.parse(out.join(''));
    expect(json).toMatchObject({ valid: false, code: 'AGENT_VERIFY_EIF' });
    expect(json.eif).toEqual({
      file: changedPath,
      matched: false,
      pcrs: {
        0: { expected: hex(changed.pcrs.get(0)), actual: hex(image.pcrs.get(0)), match: false },
        1: { expected: hex(image.pcrs.get(1)), actual: hex(image.pcrs.get(1)), match: true },
        2: { expected: hex(changed.pcrs.get(2)), actual: hex(image.pcrs.get(2)), match: false },
      },
    });

    out.length = 0;
    expect(await runVerifyCommand({ ...base, eif: changedPath }, sink)).toBe(1);
    const failure = out.join('');
    expect(failure).toMatch(/^INVALID AGENT_VERIFY_EIF: the document's PCRs differ from the EIF /);
    expect(failure).toContain(`    PCR2  expected ${hex(changed.pcrs.get(2))}\n          actual   ${hex(image.pcrs.get(2))}  DIFFERS\n`);
  });

  it('works beside a --pcrs sets file; after an EIF failure --tofu records nothing', { timeout: TEST_TIMEOUT_MS }, async () => {
    const sets = join(work, 'sets.json');
    await writeFile(sets, JSON.stringify({ sets: [{ pcrs: Object.fromEntries([0, 1, 2].map((i) => [String(i), hex(image.pcrs.get(i))])), expires_at_unix_seconds: null }] }));
    const out: string[] = [];
    const sink = { write: (text: string) => out.push(text) };
    expect(await runVerifyCommand({ url, root: rootPem, bootstrap: 'skip', pcrs: [sets], eif: goodPath }, sink)).toBe(0);
    expect(out.join('')).toContain(`PCR policy      match the pinned profile ${sets} set 1`);
    const tofu = join(work, 'tofu.json');
    expect(await runVerifyCommand({ url, root: rootPem, bootstrap: 'skip', tofu, eif: changedPath }, sink)).toBe(1);
    await expect(stat(tofu)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('the built CLI: exit 1 naming PCR0 and PCR2 with both values; 0 with the right EIF; 2 for a corrupt EIF', { timeout: 2 * TEST_TIMEOUT_MS }, async () => {
    const corrupt = Buffer.from(await readFile(goodPath));
    flipByte(corrupt, corrupt.length - 1, 0x01);
    await writeFile(join(work, 'corrupt.eif'), corrupt);
    const args = ['verify', '--url', url, '--root', rootPem, '--bootstrap', 'skip', '--eif'];
    const [bad, good, broken] = await Promise.all([cli([...args, changedPath]), cli([...args, goodPath]), cli([...args, 'corrupt.eif'])]);
    expect(bad.status, bad.stderr).toBe(1);
    expect(bad.stdout).toContain(`PCR0 expected ${hex(changed.pcrs.get(0))} (from the EIF), got ${hex(image.pcrs.get(0))}`);
    expect(bad.stdout).toContain(`PCR2 expected ${hex(changed.pcrs.get(2))} (from the EIF), got ${hex(image.pcrs.get(2))}`);
    expect(bad.stdout).not.toContain('PCR1 expected');
    expect(good.status, good.stderr).toBe(0);
    expect(good.stdout).toMatch(/EIF {13}every PCR matches/);
    expect(broken.status).toBe(2);
    expect(broken.stderr).toMatch(/--eif corrupt\.eif: EIF_CRC: CRC-32 mismatch/);
  });
});
