/**
 * The subcommands of `enclave-agent` (see cli.ts): their flags, their help text and what they run.
 * Flags are parsed strictly with node:util parseArgs; a bad flag or value is a usage error (exit 2)
 * (agent/command-runner.ts). `run` lives in agent/run-command.ts so the agent can start without this file.
 */

import { once } from 'node:events';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createDemoApp, loadDemoBootstrap } from './demo/app.js';
import { demoManifest } from './demo/manifest.js';
import { AgentError } from './errors.js';
import { crossCheckInitConfig } from './init-cross-check.js';
import { loadRootFlag } from './root-flag.js';
import { createLogger } from './log.js';
import { usage, type Command } from './command-runner.js';
import { run, runAgent } from './run-command.js';
import { runVerifyCommand, VERIFY_OPTIONS, VERIFY_USAGE } from './verify-remote.js';
import { FETCH_OPTIONS, FETCH_USAGE, runFetchCommand } from './fetch-command.js';
import { MANIFEST_OPTIONS, MANIFEST_USAGE, runManifestCommand } from './manifest-command.js';
import { EIF_BUILD_OPTIONS, EIF_BUILD_USAGE, EIF_DESCRIBE_OPTIONS, EIF_DESCRIBE_USAGE, EIF_USAGE, runEifBuild, runEifDescribe } from './eif-command.js';
import {
  BridgeError,
  ENCLAVE_BRIDGE_OPTIONS,
  ENCLAVE_BRIDGE_USAGE,
  HOST_BRIDGE_OPTIONS,
  HOST_BRIDGE_USAGE,
  runEnclaveBridgeCommand,
  runHostBridgeCommand,
  type BridgeCommandIo,
} from '../bridge/index.js';
import { INIT_OPTIONS, INIT_USAGE, runInitCommand } from '../init/index.js';
import {
  NsmError,
  bytesToBase64,
  bytesToHex,
  createMockPki,
  hexToBytes,
  nodeP384Verifier,
  openNsm,
  verifyAttestationDocument,
  writeMockPki,
  type NsmMode,
  type PcrProfile,
  type VerifiedDocument,
} from '../nsm/index.js';

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function optionalHex(value: unknown, flag: string): Uint8Array | undefined {
  const text = str(value);
  return text === undefined ? undefined : hexToBytes(text, flag);
}

/** ISO 8601 date-time with an explicit offset: a time without one would silently mean local time. */
const ISO_8601_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/;
/** Milliseconds are taken only from 10 digits up (from 1970-04-26), so a bare year is not read as ms. */
const EPOCH_MS_RE = /^\d{10,16}$/;

/** `--at` as ISO 8601 with an offset, or milliseconds since the epoch. */
function parseTime(value: string): number {
  const ms = EPOCH_MS_RE.test(value) ? Number(value) : ISO_8601_RE.test(value) ? Date.parse(value) : Number.NaN;
  if (!Number.isFinite(ms)) throw usage(`--at expected ISO 8601 with an offset (2024-09-07T14:37:39Z) or milliseconds, got ${JSON.stringify(value)}`);
  return ms;
}

/** `--pcr N=HEX` flags as one profile named "command line". */
export function parsePcrFlags(flags: string[]): PcrProfile[] {
  if (flags.length === 0) return [];
  const pcrs = new Map<number, Uint8Array>();
  for (const flag of flags) {
    const match = /^(\d{1,2})=([0-9a-fA-F]+)$/.exec(flag);
    if (match === null || Number(match[1]) > 31) throw usage(`--pcr expected N=HEX with N in 0..31, got ${JSON.stringify(flag)}`);
    const value = hexToBytes(match[2]!, `--pcr ${match[1]}`);
    if (value.length !== 48) throw usage(`--pcr ${match[1]} expected 48 bytes (96 hex digits), got ${value.length}`);
    if (pcrs.has(Number(match[1]))) throw usage(`--pcr ${match[1]} given twice`);
    pcrs.set(Number(match[1]), value);
  }
  return [{ name: 'command line', pcrs }];
}

async function writeOutput(path: string, what: string, bytes: Uint8Array): Promise<void> {
  try {
    await writeFile(path, bytes);
  } catch (cause) {
    throw new AgentError('AGENT_IO', `cannot write ${what} ${path}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
  }
}

async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (cause) {
    throw new AgentError('AGENT_IO', `cannot read ${what} ${path}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
  }
}

const mockPki: Command = {
  name: 'mock-pki',
  summary: 'write a fresh mock PKI (root.pem is its root) for --nsm mock',
  usage: 'Usage: enclave-agent mock-pki --out DIR\n\nWrites a new P-384 mock PKI shaped like AWS Nitro\'s into DIR; DIR/root.pem is the root to\nverify mock documents with. Key files are written with mode 0600.',
  options: { out: { type: 'string' } },
  async run(values) {
    const out = str(values.out);
    if (out === undefined) throw usage('--out DIR is required');
    try {
      await writeMockPki(out, createMockPki());
    } catch (cause) {
      throw new AgentError('AGENT_IO', `cannot write the mock PKI to ${out}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
    }
    process.stdout.write(`mock PKI written to ${out} (root: ${out}/root.pem)\n`);
    return 0;
  },
};

const attest: Command = {
  name: 'attest',
  summary: 'ask the NSM for an attestation document and write it raw',
  usage:
    'Usage: enclave-agent attest [--nsm device|mock] [--mock-pki DIR] [--nonce HEX] [--user-data HEX]\n' +
    '                            [--public-key HEX] --out FILE\n\n' +
    '--nsm        device (default: /dev/nsm) or mock (needs --mock-pki DIR from `enclave-agent mock-pki`)\n' +
    '--out FILE   where to write the raw COSE_Sign1 document',
  options: {
    nsm: { type: 'string' },
    'mock-pki': { type: 'string' },
    nonce: { type: 'string' },
    'user-data': { type: 'string' },
    'public-key': { type: 'string' },
    out: { type: 'string' },
  },
  async run(values) {
    const out = str(values.out);
    if (out === undefined) throw usage('--out FILE is required');
    const mode = str(values.nsm) ?? 'device';
    if (mode !== 'device' && mode !== 'mock') throw usage(`--nsm expected device or mock, got ${JSON.stringify(mode)}`);
    const mockPkiDir = str(values['mock-pki']);
    if (mode === 'mock' && mockPkiDir === undefined) throw usage('--nsm mock needs --mock-pki DIR (create one with: enclave-agent mock-pki --out DIR)');
    if (mode === 'device' && mockPkiDir !== undefined) throw usage('--mock-pki goes with --nsm mock only');
    const nonce = optionalHex(values.nonce, '--nonce');
    const userData = optionalHex(values['user-data'], '--user-data');
    const publicKey = optionalHex(values['public-key'], '--public-key');
    const nsm = await openNsm({ mode: mode as NsmMode, ...(mockPkiDir !== undefined ? { mockPkiDir } : {}) });
    try {
      const document = await nsm.attest({
        ...(nonce ? { nonce } : {}),
        ...(userData ? { userData } : {}),
        ...(publicKey ? { publicKey } : {}),
      });
      await writeOutput(out, 'document', document);
      process.stdout.write(`attestation document (${document.length} bytes, ${nsm.kind} NSM) written to ${out}\n`);
      return 0;
    } finally {
      await nsm.close();
    }
  },
};

const verifyDocument: Command = {
  name: 'verify-document',
  summary: 'verify a raw attestation document against a pinned root',
  usage:
    'Usage: enclave-agent verify-document FILE [--root PEM] [--at ISO8601|ms] [--nonce HEX] [--pcr N=HEX]...\n' +
    '                                     [--allow-debug] [--json]\n\n' +
    '--root PEM     trust anchor (default: the pinned AWS Nitro Enclaves Root-G1)\n' +
    '--at TIME      verification time (default: now); real leaf certificates live about 3 hours\n' +
    '--nonce HEX    the nonce the document must carry\n' +
    '--pcr N=HEX    expected PCR value (48 bytes); repeat for several PCRs\n' +
    '--allow-debug  accept debug-mode documents (PCR0-2 all zero)\n' +
    '--json         print the result as JSON\n\n' +
    'Exit status: 0 valid, 1 invalid (its code is printed), 2 usage error.',
  options: {
    root: { type: 'string' },
    at: { type: 'string' },
    nonce: { type: 'string' },
    pcr: { type: 'string', multiple: true },
    'allow-debug': { type: 'boolean' },
    json: { type: 'boolean' },
  },
  positionals: { min: 1, max: 1 },
  async run(values, positionals) {
    const atText = str(values.at);
    const atMs = atText === undefined ? Date.now() : parseTime(atText);
    const expectedNonce = optionalHex(values.nonce, '--nonce');
    const pcrProfiles = parsePcrFlags((values.pcr as string[] | undefined) ?? []);
    const rootPath = str(values.root);
    const root = rootPath === undefined ? undefined : await loadRootFlag(rootPath);
    const bytes = await readInput(positionals[0]!, 'document');
    const json = values.json === true;
    try {
      const result = verifyAttestationDocument(bytes, {
        atMs,
        verifier: nodeP384Verifier,
        allowDebug: values['allow-debug'] === true,
        ...(root ? { root } : {}),
        ...(expectedNonce ? { expectedNonce } : {}),
        pcrProfiles,
      });
      process.stdout.write(json ? `${JSON.stringify(reportJson(result, expectedNonce !== undefined), null, 2)}\n` : reportText(result, expectedNonce !== undefined));
      return 0;
    } catch (err) {
      if (!(err instanceof NsmError)) throw err;
      process.stdout.write(json ? `${JSON.stringify({ valid: false, code: err.code, message: err.message }, null, 2)}\n` : `INVALID ${err.code}: ${err.message}\n`);
      return 1;
    }
  },
};

function pcrHex(result: VerifiedDocument): Record<string, string> {
  return Object.fromEntries([...result.pcrs].map(([index, value]) => [String(index), bytesToHex(value)]));
}

function reportJson(result: VerifiedDocument, nonceChecked: boolean): object {
  const b64 = (v: Uint8Array | null) => (v === null ? null : bytesToBase64(v));
  return {
    valid: true,
    moduleId: result.moduleId,
    timestamp: new Date(result.timestamp).toISOString(),
    debug: result.debug,
    rootSha256: result.rootSha256,
    chain: result.chain,
    nonceChecked,
    pcrProfile: result.pcrProfile ?? null,
    pcrs: pcrHex(result),
    userData: b64(result.userData),
    publicKey: b64(result.publicKey),
    nonce: b64(result.nonce),
  };
}

function reportText(result: VerifiedDocument, nonceChecked: boolean): string {
  const size = (v: Uint8Array | null) => (v === null ? 'none' : `${v.length} bytes`);
  const nonZero = [...result.pcrs].filter(([, v]) => v.some((b) => b !== 0));
  return [
    'VALID attestation document',
    `  module        ${result.moduleId}`,
    `  timestamp     ${new Date(result.timestamp).toISOString()}`,
    `  signature     ES384, chain of ${result.chain.length} certificates verified`,
    `  root          sha256:${result.rootSha256}`,
    `  leaf          ${result.chain[0]}`,
    `  debug mode    ${result.debug ? 'YES (PCR0-2 are zero: allowed by --allow-debug)' : 'no'}`,
    `  nonce         ${nonceChecked ? 'matches' : `not checked (${size(result.nonce)})`}`,
    `  PCR policy    ${result.pcrProfile === undefined ? 'not checked' : `matches "${result.pcrProfile}"`}`,
    `  user_data     ${size(result.userData)}`,
    `  public_key    ${size(result.publicKey)}`,
    `  PCRs (${result.pcrs.size}, non-zero shown):`,
    ...nonZero.map(([index, value]) => `    PCR${String(index).padEnd(3)} ${bytesToHex(value)}`),
    '',
  ].join('\n');
}

const demo: Command = {
  name: 'demo',
  summary: 'run the agent on a fresh mock NSM in front of a small demo app (loopback only)',
  usage:
    'Usage: enclave-agent demo [--listen HOST:PORT] [--app-listen HOST:PORT] [--internal-listen HOST:PORT]\n\n' +
    'Writes a fresh mock PKI and the demo manifest (with the SHA-256 of the bootstrap files the app serves)\n' +
    'to a temporary directory, starts the demo app (default 127.0.0.1:8083) and the agent (default\n' +
    '127.0.0.1:8080, metrics on 127.0.0.1:9090) with the MOCK NSM, and runs until interrupted. Try:\n' +
    "  curl -s -X POST -H content-type:application/json -d '{\"nonce\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}' http://127.0.0.1:8080/attestation\n" +
    '  enclave-agent verify --url http://127.0.0.1:8080/attestation --root DIR/root.pem --bootstrap require',
  options: { listen: { type: 'string' }, 'app-listen': { type: 'string' }, 'internal-listen': { type: 'string' } },
  async run(values) {
    const appListen = str(values['app-listen']) ?? '127.0.0.1:8083';
    const match = /^(.+):(\d{1,5})$/.exec(appListen);
    if (match === null) throw usage(`--app-listen expected HOST:PORT, got ${JSON.stringify(appListen)}`);
    const dir = await mkdtemp(join(tmpdir(), 'enclave-agent-demo-'));
    await writeMockPki(dir, createMockPki());
    // The demo page pins the mock root, so the browser's enclave worker can verify the mock documents.
    // The app serves one snapshot of its bootstrap files, and the manifest attests that snapshot's hashes.
    const root = await readFile(join(dir, 'root.pem'), 'utf8');
    const bootstrap = await loadDemoBootstrap({ root });
    await writeFile(join(dir, 'manifest.json'), demoManifest(bootstrap));
    const app = createDemoApp({ root, bootstrap });
    app.listen(Number(match[2]), match[1]);
    await once(app, 'listening');
    // The port actually bound, so `--app-listen HOST:0` works.
    const appAddress = `${match[1]}:${(app.address() as AddressInfo).port}`;
    process.stderr.write(`demo: app on ${appAddress}; mock root ${join(dir, 'root.pem')}\n`);
    const flags = {
      nsm: 'mock',
      deployment: 'test',
      'mock-pki': dir,
      manifest: join(dir, 'manifest.json'),
      listen: str(values.listen) ?? '127.0.0.1:8080',
      'internal-listen': str(values['internal-listen']) ?? '127.0.0.1:9090',
      upstream: `http://${appAddress}`,
    };
    return runAgent(flags, {}, () => new Promise<void>((resolve) => app.close(() => resolve())));
  },
};

const verify: Command = {
  name: 'verify',
  summary: 'ask a running agent for a document bound to a fresh nonce; verify it and its manifest',
  usage: VERIFY_USAGE,
  options: VERIFY_OPTIONS,
  run: (values) => runVerifyCommand(values),
};

const manifestCommand: Command = {
  name: 'manifest',
  summary: 'add the SHA-256 of the bootstrap files the app serves to a build manifest',
  usage: MANIFEST_USAGE,
  options: MANIFEST_OPTIONS,
  run: (values) => runManifestCommand(values),
};

const fetchCommand: Command = {
  name: 'fetch',
  summary: 'send one request to the app through STEVE, end-to-end encrypted to the attested enclave',
  usage: FETCH_USAGE,
  options: FETCH_OPTIONS,
  positionals: { min: 1, max: 1 },
  run: (values, positionals) => runFetchCommand(values, positionals),
};

const initCommand: Command = {
  name: 'init',
  summary: 'boot the enclave and supervise the agent and the app (the target of a minimal PID 1)',
  usage: INIT_USAGE,
  options: INIT_OPTIONS,
  // The agent child runs this same CLI (`run`), with the same Node and Node flags. The cross-check refuses
  // bridges that would expose the app or the internal listener, by both children's effective settings.
  run: (values) => runInitCommand(values, { cli: [process.execPath, ...process.execArgv, process.argv[1]!], crossCheck: crossCheckInitConfig }),
};

/**
 * The bridges (bridge/command.ts) in the CLI's terms: bad flags are usage errors (exit 2, every problem
 * listed), a listener that cannot be opened is a failure (exit 1, its code printed).
 */
async function runBridge(name: string, run: (io: BridgeCommandIo) => Promise<number>): Promise<number> {
  try {
    return await run({ createLogger: (level) => createLogger({ level }) });
  } catch (err) {
    if (!(err instanceof BridgeError)) throw err;
    if (err.code === 'BRIDGE_CONFIG_INVALID') throw new AgentError('AGENT_USAGE', err.problems.join('\n'), { cause: err });
    process.stderr.write(`enclave-agent ${name}: ${err.code}: ${err.message}\n`);
    return 1;
  }
}

const hostBridge: Command = {
  name: 'host-bridge',
  summary: 'on the parent instance: TCP -> enclave vsock (ingress), or the egress CONNECT bridge (--egress)',
  usage: HOST_BRIDGE_USAGE,
  options: HOST_BRIDGE_OPTIONS,
  run: (values) => runBridge('host-bridge', (io) => runHostBridgeCommand(values, io)),
};

const enclaveBridge: Command = {
  name: 'enclave-bridge',
  summary: 'inside the enclave: vsock -> 127.0.0.1 ingress ports, and the egress CONNECT proxy for the app',
  usage: ENCLAVE_BRIDGE_USAGE,
  options: ENCLAVE_BRIDGE_OPTIONS,
  run: (values) => runBridge('enclave-bridge', (io) => runEnclaveBridgeCommand(values, process.env, io)),
};

const eifCommand: Command = {
  name: 'eif',
  summary: 'build an enclave image file (EIF) deterministically, or describe one: sections, CRC, PCR0-2',
  usage: EIF_USAGE,
  options: {},
  subcommands: [
    {
      name: 'eif build',
      summary: 'write an EIF from a kernel, a command line and ramdisks',
      usage: EIF_BUILD_USAGE,
      options: EIF_BUILD_OPTIONS,
      run: (values) => runEifBuild(values, process.env),
    },
    {
      name: 'eif describe',
      summary: 'check an EIF and print its sections and PCRs',
      usage: EIF_DESCRIBE_USAGE,
      options: EIF_DESCRIBE_OPTIONS,
      positionals: { min: 1, max: 1 },
      run: (values, positionals) => runEifDescribe(values, positionals),
    },
  ],
  run: async () => 2,
};

export { runCommand, type Command } from './command-runner.js';

export const commands: Command[] = [run, demo, mockPki, attest, verifyDocument, verify, manifestCommand, fetchCommand, eifCommand, initCommand, hostBridge, enclaveBridge];
