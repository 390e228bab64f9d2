/**
 * End-to-end tests of the `enclave-agent` command line as other tools see it: the built
 * `dist/agent/cli.js` is spawned in temporary directories and only its exit status, stdout, stderr and
 * the files it writes are asserted. Covers help and usage, the mock round trip
 * (mock-pki -> attest --nsm mock -> verify-document), the real AWS documents in test/vectors/nitro, usage
 * errors (exit 2), I/O failures (exit 1 with a message, never a stack trace) and the device path on a
 * machine without /dev/nsm. It does not test the verifier's individual checks; nsm/verify.test.ts does.
 */

import { CLI, runCli } from '../test/run-cli.js';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesToHex, parseAttestationDocument, pemToCertificates, AWS_NITRO_ROOT_G1_SHA256 } from '../nsm/index.js';
import { loadNitroVectors, AWS_ROOT_PEM_URL } from '../test/vectors/nitro.js';
import { commands } from './commands.js';

const REPO = dirname(dirname(fileURLToPath(import.meta.url)));
const VECTORS_DIR = join(REPO, 'test', 'vectors', 'nitro');
/** The subcommands other tools call by name (the CLI contract); `commands` may hold more. */
const CONTRACT_COMMANDS = ['mock-pki', 'attest', 'verify-document'] as const;
/** One spawn should take well under a second; this only stops a hung child from hanging the suite. */
const SPAWN_TIMEOUT_MS = 20_000;
/** Spawns in flight at once: enough to overlap process start-up, few enough not to thrash a small machine. */
const MAX_PARALLEL_SPAWNS = Math.max(4, availableParallelism() * 2);
/** A stack frame line, the sign of an error that escaped the CLI's error handling. */
const STACK_FRAME = /^\s+at .+/m;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

let running = 0;
const waiting: (() => void)[] = [];

/** Runs the CLI with `args` (async, so independent runs can go in parallel under Promise.all). */
async function cli(args: readonly string[], cwd: string = REPO): Promise<Run> {
  // A finishing run hands its slot straight to the next waiter, so `running` never exceeds the limit.
  if (running >= MAX_PARALLEL_SPAWNS) await new Promise<void>((resolve) => waiting.push(resolve));
  else running++;
  try {
    return await spawnCli(args, cwd);
  } finally {
    const next = waiting.shift();
    if (next === undefined) running--;
    else next();
  }
}

function spawnCli(args: readonly string[], cwd: string): Promise<Run> {
  return runCli(args, { cwd, timeoutMs: SPAWN_TIMEOUT_MS });
}



const hex = (bytes: number, fill: number): string => Buffer.alloc(bytes, fill).toString('hex');
const hexToBase64 = (text: string): string => Buffer.from(text, 'hex').toString('base64');

/** Asserts an invalid-document verdict: exit 1 and `INVALID <code>: ...` on stdout. */
function expectInvalid(run: Run, code: string): void {
  expect(run.status, run.stderr).toBe(1);
  expect(run.stdout).toMatch(new RegExp(`^INVALID ${code}: `));
}

/** Asserts a usage error: exit 2, a message naming the command on stderr, nothing on stdout, no stack. */
function expectUsage(run: Run, message: RegExp): void {
  expect(run.status, `stdout: ${run.stdout}\nstderr: ${run.stderr}`).toBe(2);
  expect(run.stderr).toMatch(message);
  expect(run.stderr).not.toMatch(STACK_FRAME);
  expect(run.stdout).toBe('');
}

let work: string;
let pkiDir: string;
let rootPem: string;
/** A mock document attested with NONCE, USER_DATA and PUBLIC_KEY, and the run that wrote it. */
let mockDoc: string;
let mockAttest: Run;
const NONCE = '00112233445566778899aabbccddeeff';
const USER_DATA = 'deadbeef'.repeat(8);
const PUBLIC_KEY = hex(65, 0x04);

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'enclave-agent-cli-test-'));
  pkiDir = join(work, 'pki');
  rootPem = join(pkiDir, 'root.pem');
  mockDoc = join(work, 'mock.cose');
  const pki = await cli(['mock-pki', '--out', pkiDir], work);
  expect(pki.status, pki.stderr).toBe(0);
  mockAttest = await cli(
    ['attest', '--nsm', 'mock', '--mock-pki', pkiDir, '--nonce', NONCE, '--user-data', USER_DATA, '--public-key', PUBLIC_KEY, '--out', mockDoc],
    work,
  );
  expect(mockAttest.status, mockAttest.stderr).toBe(0);
}, 60_000);

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('help and usage', () => {
  it('--help lists every subcommand and exits 0', async () => {
    const run = await cli(['--help']);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^Usage: enclave-agent <command>/m);
    for (const name of [...CONTRACT_COMMANDS, ...commands.map((c) => c.name)]) {
      expect(run.stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
    }
  });

  it('no arguments prints the usage on stdout and exits 2', async () => {
    const run = await cli([]);
    expect(run.status).toBe(2);
    expect(run.stdout).toMatch(/^Usage: enclave-agent <command>/m);
    for (const name of CONTRACT_COMMANDS) expect(run.stdout).toContain(name);
  });

  it('an unknown command exits 2 and names it on stderr', async () => {
    const run = await cli(['frobnicate']);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('unknown command "frobnicate"');
    expect(run.stdout).toBe('');
  });

  it("each subcommand's --help prints its usage and exits 0", async () => {
    const names = [...new Set([...CONTRACT_COMMANDS, ...commands.map((c) => c.name)])];
    const runs = await Promise.all(names.map((name) => cli([name, '--help'])));
    for (const [i, run] of runs.entries()) {
      expect(run.status, names[i]).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^Usage: enclave-agent ${names[i]}`));
    }
  });
});

describe('mock round trip', () => {
  it('mock-pki writes a single-certificate root.pem and 0600 key files', async () => {
    const pem = await readFile(rootPem, 'utf8');
    expect(pem.match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(1);
    expect(pem).not.toMatch(/PRIVATE KEY/);
    expect(pemToCertificates(pem)).toHaveLength(1);
    const keys = (await readdir(pkiDir)).filter((name) => /key/i.test(name));
    expect(keys.length).toBeGreaterThan(0);
    for (const name of keys) {
      expect(((await stat(join(pkiDir, name))).mode & 0o777).toString(8), name).toBe('600');
      expect(await readFile(join(pkiDir, name), 'utf8')).toMatch(/PRIVATE KEY/);
    }
  });

  it('attest --nsm mock warns loudly on stderr and writes the raw document with the given fields', async () => {
    const warning = mockAttest.stderr.split('\n').find((line) => line.includes('MOCK NSM'));
    expect(warning, mockAttest.stderr).toBeDefined();
    expect(JSON.parse(warning!)).toMatchObject({ msg: expect.stringContaining('MOCK NSM') });
    expect(mockAttest.stdout).toContain(mockDoc);

    const doc = parseAttestationDocument(new Uint8Array(await readFile(mockDoc)));
    expect(bytesToHex(doc.nonce!)).toBe(NONCE);
    expect(bytesToHex(doc.userData!)).toBe(USER_DATA);
    expect(bytesToHex(doc.publicKey!)).toBe(PUBLIC_KEY);
  });

  it('verifies against the mock root with the nonce (text and --json)', async () => {
    const [text, json] = await Promise.all([
      cli(['verify-document', mockDoc, '--root', rootPem, '--nonce', NONCE]),
      cli(['verify-document', mockDoc, '--root', rootPem, '--nonce', NONCE, '--json']),
    ]);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^VALID /);
    expect(json.status, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(report).toMatchObject({
      valid: true,
      nonceChecked: true,
      debug: false,
      nonce: hexToBase64(NONCE),
      userData: hexToBase64(USER_DATA),
      publicKey: hexToBase64(PUBLIC_KEY),
      pcrProfile: null,
    });
    expect(report.chain).toHaveLength(5);
    expect(report.rootSha256).not.toBe(AWS_NITRO_ROOT_G1_SHA256);
  });

  it('a document without optional fields reports them as null and the nonce as unchecked', async () => {
    const out = join(work, 'bare.cose');
    const attest = await cli(['attest', '--nsm', 'mock', '--mock-pki', pkiDir, '--out', out], work);
    expect(attest.status, attest.stderr).toBe(0);
    const run = await cli(['verify-document', out, '--root', rootPem, '--json']);
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ valid: true, nonceChecked: false, nonce: null, userData: null, publicKey: null });
  });

  it('fails with the default (AWS) root, a wrong nonce, or a wrong PCR; passes with the right PCRs', async () => {
    const report = JSON.parse((await cli(['verify-document', mockDoc, '--root', rootPem, '--json'])).stdout) as { pcrs: Record<string, string> };
    const pcr0 = report.pcrs['0']!;
    expect(pcr0).toMatch(/^[0-9a-f]{96}$/);
    const otherPcr0 = pcr0 === hex(48, 0xab) ? hex(48, 0xcd) : hex(48, 0xab);
    const [awsRoot, awsRootJson, wrongNonce, rightPcr, rightPcrs, wrongPcr, oneWrongPcr] = await Promise.all([
      cli(['verify-document', mockDoc, '--nonce', NONCE]),
      cli(['verify-document', mockDoc, '--json']),
      cli(['verify-document', mockDoc, '--root', rootPem, '--nonce', NONCE.replace(/^00/, '01')]),
      cli(['verify-document', mockDoc, '--root', rootPem, '--pcr', `0=${pcr0}`, '--json']),
      cli(['verify-document', mockDoc, '--root', rootPem, ...['0', '1', '2'].flatMap((i) => ['--pcr', `${i}=${report.pcrs[i]}`])]),
      cli(['verify-document', mockDoc, '--root', rootPem, '--pcr', `0=${otherPcr0}`]),
      cli(['verify-document', mockDoc, '--root', rootPem, '--pcr', `0=${pcr0}`, '--pcr', `1=${report.pcrs['1']}`, '--pcr', `3=${hex(48, 0x01)}`]),
    ]);
    expectInvalid(awsRoot, 'ATTESTATION_ROOT');
    expect(awsRootJson.status).toBe(1);
    expect(JSON.parse(awsRootJson.stdout)).toMatchObject({ valid: false, code: 'ATTESTATION_ROOT' });
    expectInvalid(wrongNonce, 'ATTESTATION_NONCE');
    expect(rightPcr.status, rightPcr.stdout).toBe(0);
    expect(JSON.parse(rightPcr.stdout)).toMatchObject({ valid: true, pcrProfile: 'command line' });
    expect(rightPcrs.status, rightPcrs.stdout).toBe(0);
    expectInvalid(wrongPcr, 'ATTESTATION_PCR');
    expectInvalid(oneWrongPcr, 'ATTESTATION_PCR');
  });

  it('a corrupted document is invalid, not a crash', async () => {
    const bytes = await readFile(mockDoc);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 1]! ^= 0x01; // last byte of the ES384 signature
    const truncated = bytes.subarray(0, bytes.length - 10);
    await Promise.all([
      writeFile(join(work, 'flipped.cose'), flipped),
      writeFile(join(work, 'truncated.cose'), truncated),
      writeFile(join(work, 'empty.cose'), new Uint8Array(0)),
    ]);
    const verify = (name: string) => cli(['verify-document', join(work, `${name}.cose`), '--root', rootPem]);
    const [badSignature, badShape, empty] = await Promise.all([verify('flipped'), verify('truncated'), verify('empty')]);
    expectInvalid(badSignature, 'ATTESTATION_BAD_SIGNATURE');
    expectInvalid(badShape, 'ATTESTATION_MALFORMED');
    expectInvalid(empty, 'ATTESTATION_MALFORMED');
  });
});

describe('real AWS documents (test/vectors/nitro)', () => {
  const vectors = loadNitroVectors();

  it('has both production and debug-mode documents to test', () => {
    expect(vectors.filter((v) => v.debug).length).toBeGreaterThan(0);
    expect(vectors.filter((v) => !v.debug).length).toBeGreaterThan(0);
  });

  it.concurrent.each(vectors.map((v) => [v.file, v] as const))('%s', async (_, vector) => {
    const file = join(VECTORS_DIR, vector.file);
    const nonce = vector.nonce === null ? [] : ['--nonce', vector.nonce];
    const debug = vector.debug ? ['--allow-debug'] : [];
    const inside = vector.validFromMs + 1000;
    const at = (ms: number) => ['verify-document', file, '--at', String(ms), ...nonce];
    const [iso, ms, pinnedFile, noDebugFlag, afterEnd, beforeStart, mockRoot, wrongNonce] = await Promise.all([
      cli(['verify-document', file, '--at', new Date(inside).toISOString(), ...nonce, ...debug]),
      cli([...at(inside), ...debug, '--json']),
      cli([...at(inside), ...debug, '--root', fileURLToPath(AWS_ROOT_PEM_URL)]),
      // Without --allow-debug: for a production document that is the `ms` run above, so only debug ones run it.
      vector.debug ? cli(at(inside)) : undefined,
      cli([...at(vector.validToMs + 1000), ...debug]),
      cli(['verify-document', file, '--at', new Date(vector.validFromMs - 1000).toISOString(), ...nonce, ...debug]),
      cli([...at(inside), ...debug, '--root', rootPem]),
      cli(['verify-document', file, '--at', String(inside), '--nonce', vector.nonce === null ? '00' : hex(vector.nonce.length / 2, 0x02), ...debug]),
    ]);

    expect(iso.status, iso.stdout).toBe(0);
    expect(iso.stdout).toMatch(/^VALID /);
    expect(pinnedFile.status, pinnedFile.stdout).toBe(0);
    expect(ms.status, ms.stdout).toBe(0);
    const report = JSON.parse(ms.stdout) as Record<string, unknown>;
    expect(report).toMatchObject({
      valid: true,
      moduleId: vector.moduleId,
      timestamp: new Date(vector.timestampMs).toISOString(),
      debug: vector.debug,
      nonceChecked: vector.nonce !== null,
      rootSha256: AWS_NITRO_ROOT_G1_SHA256,
      pcrs: vector.pcrs,
      nonce: vector.nonce === null ? null : hexToBase64(vector.nonce),
    });

    if (noDebugFlag !== undefined) expectInvalid(noDebugFlag, 'ATTESTATION_DEBUG');
    expectInvalid(afterEnd, 'ATTESTATION_EXPIRED');
    expectInvalid(beforeStart, 'ATTESTATION_EXPIRED');
    expectInvalid(mockRoot, 'ATTESTATION_ROOT');
    expectInvalid(wrongNonce, 'ATTESTATION_NONCE');
  });
});

describe('usage errors exit 2 with a message on stderr', () => {
  const vector = join(VECTORS_DIR, 'evervault_beta_valid-attestation-doc_2022-10-13_prod.cose');
  const pcr = (n: string, bytes: number) => ['--pcr', `${n}=${hex(bytes, 0x11)}`];
  const cases: [string, () => string[], RegExp][] = [
    ['--nonce of odd length', () => ['verify-document', vector, '--nonce', 'abc'], /--nonce/],
    ['--nonce not hex', () => ['verify-document', vector, '--nonce', 'zz'], /--nonce/],
    ['--nonce with a 0x prefix', () => ['verify-document', vector, '--nonce', '0x01'], /--nonce/],
    ['--pcr without =', () => ['verify-document', vector, '--pcr', '0'], /--pcr/],
    ['--pcr 32', () => ['verify-document', vector, ...pcr('32', 48)], /--pcr/],
    ['--pcr with 47 bytes', () => ['verify-document', vector, ...pcr('0', 47)], /--pcr 0 expected 48 bytes/],
    ['--pcr with 49 bytes', () => ['verify-document', vector, ...pcr('0', 49)], /--pcr 0 expected 48 bytes/],
    ['--pcr not hex', () => ['verify-document', vector, '--pcr', `0=${'zz'.repeat(48)}`], /--pcr/],
    ['--pcr given twice for one index', () => ['verify-document', vector, ...pcr('0', 48), ...pcr('0', 48)], /--pcr 0/],
    ['--at garbage', () => ['verify-document', vector, '--at', 'garbage'], /--at/],
    ['--at empty', () => ['verify-document', vector, '--at', ''], /--at/],
    ['--at a bare year (not milliseconds)', () => ['verify-document', vector, '--at', '2024'], /--at/],
    ['--at without an offset (would be local time)', () => ['verify-document', vector, '--at', '2022-10-13T09:00:00'], /--at/],
    ['--at in another date format', () => ['verify-document', vector, '--at', 'Oct 13 2022'], /--at/],
    ['an unknown flag', () => ['verify-document', vector, '--frobnicate'], /frobnicate/],
    ['a value for a boolean flag', () => ['verify-document', vector, '--allow-debug=yes'], /allow-debug/],
    ['a missing FILE', () => ['verify-document'], /argument/],
    ['two FILEs', () => ['verify-document', vector, vector], /argument/],
    ['mock-pki without --out', () => ['mock-pki'], /--out/],
    ['attest with an unknown flag', () => ['attest', '--nsm', 'mock', '--mock-pki', pkiDir, '--frobnicate', '--out', join(work, 'unknown-flag.cose')], /frobnicate/],
    ['attest without --out', () => ['attest', '--nsm', 'mock', '--mock-pki', pkiDir], /--out/],
    ['attest --nsm bogus', () => ['attest', '--nsm', 'bogus', '--out', join(work, 'bogus.cose')], /--nsm/],
    ['attest --nsm mock without --mock-pki', () => ['attest', '--nsm', 'mock', '--out', join(work, 'no-pki.cose')], /--mock-pki/],
    ['attest --nsm device with --mock-pki', () => ['attest', '--nsm', 'device', '--mock-pki', pkiDir, '--out', join(work, 'device-pki.cose')], /--mock-pki/],
    ['attest with bad --user-data hex', () => ['attest', '--nsm', 'mock', '--mock-pki', pkiDir, '--user-data', 'abc', '--out', join(work, 'bad-user-data.cose')], /--user-data/],
    ['attest with bad --public-key hex', () => ['attest', '--nsm', 'mock', '--mock-pki', pkiDir, '--public-key', 'xy', '--out', join(work, 'bad-public-key.cose')], /--public-key/],
  ];

  it.concurrent.each(cases)('%s', async (_, args, message) => {
    const argv = args();
    expectUsage(await cli(argv, work), message);
    const outIndex = argv.indexOf('--out');
    if (argv[0] === 'attest' && outIndex >= 0) expect(existsSync(argv[outIndex + 1]!), 'no document written').toBe(false);
  });

  it('a --root holding two certificates is refused without a stack trace', async () => {
    const two = join(work, 'two-roots.pem');
    await writeFile(two, (await readFile(rootPem, 'utf8')) + (await readFile(AWS_ROOT_PEM_URL, 'utf8')));
    const run = await cli(['verify-document', vector, '--root', two]);
    expectUsage(run, /--root expected exactly one certificate/);
  });
});

describe('I/O failures exit 1 with a clear message', () => {
  it('a missing document file', async () => {
    const missing = join(work, 'does-not-exist.cose');
    const run = await cli(['verify-document', missing]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`cannot read document ${missing}: ENOENT`);
    expect(run.stderr).not.toMatch(STACK_FRAME);
    expect(run.stdout).toBe('');
  });

  it('a missing root file', async () => {
    const missing = join(work, 'does-not-exist.pem');
    const run = await cli(['verify-document', mockDoc, '--root', missing]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`cannot read root ${missing}: ENOENT`);
    expect(run.stderr).not.toMatch(STACK_FRAME);
    expect(run.stdout).toBe('');
  });

  it('a directory given as the document', async () => {
    const run = await cli(['verify-document', work]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('cannot read document');
    expect(run.stderr).not.toMatch(STACK_FRAME);
  });

  it('a file that is not an attestation document is INVALID ATTESTATION_MALFORMED', async () => {
    expectInvalid(await cli(['verify-document', rootPem]), 'ATTESTATION_MALFORMED');
  });

  it('attest into a directory that does not exist is AGENT_IO, not a stack trace', async () => {
    const run = await cli(['attest', '--nsm', 'mock', '--mock-pki', pkiDir, '--out', join(work, 'no-such-dir', 'x.cose')]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('AGENT_IO: cannot write document');
    expect(run.stderr).not.toMatch(STACK_FRAME);
  });

  it('mock-pki under a file is AGENT_IO, not a stack trace', async () => {
    const run = await cli(['mock-pki', '--out', join(rootPem, 'sub')]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('AGENT_IO: cannot write the mock PKI');
    expect(run.stderr).not.toMatch(STACK_FRAME);
  });

  it('attest --nsm mock with a missing mock PKI directory names the problem and writes nothing', async () => {
    const out = join(work, 'missing-pki.cose');
    const run = await cli(['attest', '--nsm', 'mock', '--mock-pki', join(work, 'no-such-pki'), '--out', out]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('MOCK_PKI_INVALID');
    expect(run.stderr).not.toMatch(STACK_FRAME);
    expect(existsSync(out)).toBe(false);
  });
});

describe.skipIf(existsSync('/dev/nsm'))('attest on a machine without /dev/nsm', () => {
  it.each([
    ['the default', []],
    ['--nsm device', ['--nsm', 'device']],
  ])('%s fails with NSM_DEVICE_UNAVAILABLE, never uses the mock, and writes no file', async (_, flags) => {
    const out = join(work, `device-${flags.length}.cose`);
    const run = await cli(['attest', ...flags, '--nonce', NONCE, '--out', out], work);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('NSM_DEVICE_UNAVAILABLE');
    expect(run.stderr).not.toContain('MOCK NSM');
    expect(run.stderr).not.toMatch(STACK_FRAME);
    expect(run.stdout).toBe('');
    expect(existsSync(out)).toBe(false);
  });
});

describe('manifest: the bootstrap hashes for an image build', () => {
  it('exit 0 writing the manifest with the hashes; exit 2 for an unknown path; exit 1 for a missing file', async () => {
    const input = join(work, 'bootstrap-in.json');
    const file = join(work, 'bootstrap-sw.js');
    await writeFile(input, '{"version":"1.0","powered_by":"t","enclave_source":{"type":"local","path":"."},"framework_source":{"type":"git_archive","url":"u"}}');
    await writeFile(file, 'self.onfetch = null;');
    const out = join(work, 'bootstrap-out.json');
    const [ok, unknown, missing] = await Promise.all([
      cli(['manifest', '--in', input, '--bootstrap', `/enclave-sw.js=${file}`, '--out', out], work),
      cli(['manifest', '--in', input, '--bootstrap', `/app.js=${file}`, '--out', join(work, 'bootstrap-unknown.json')], work),
      cli(['manifest', '--in', input, '--bootstrap', `/register.js=${join(work, 'bootstrap-none.js')}`, '--out', join(work, 'bootstrap-missing.json')], work),
    ]);
    expect(ok.status, ok.stderr).toBe(0);
    const sha = createHash('sha256').update('self.onfetch = null;').digest('hex');
    expect(ok.stdout).toMatch(new RegExp(`^${sha}  /enclave-sw\\.js  20 bytes\nmanifest sha256 [0-9a-f]{64} written to `));
    expect(JSON.parse(await readFile(out, 'utf8'))).toMatchObject({ bootstrap: { '/enclave-sw.js': sha } });
    expectUsage(unknown, /--bootstrap expected PATH=FILE with PATH one of \/, \/enclave-sw\.js/);
    expect(existsSync(join(work, 'bootstrap-unknown.json'))).toBe(false);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/AGENT_IO: cannot read --bootstrap \/register\.js .*bootstrap-none\.js: ENOENT/);
    expect(missing.stderr).not.toMatch(STACK_FRAME);
  });
});
