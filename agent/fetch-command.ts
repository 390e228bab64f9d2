/**
 * `enclave-agent fetch URL`: one request to the app behind an enclave's STEVE proxy, end-to-end encrypted,
 * with the web client of steve/ (specs/steve.md §5-§6). The session is only used once the attestation
 * document (fresh nonce, pinned root), the session binding, the PCR policy and the key confirmation have
 * all checked out. The app's body goes to stdout byte for byte, each chunk as it arrives (on an enclave
 * whose binding offers stream-1, record by record, never held whole); its status and headers go to stderr
 * before it, the receipt after it, server-chosen text escaped. A stream that fails midway (a record that
 * does not open, an ABORT, a cut) exits 1 with its code, after the bytes that had opened.
 *
 * PCR policy, as `enclave-agent verify` has it: `--pcrs FILE` (trusted-state or PCR-set files, any one
 * may match) or `--tofu FILE` (pinned when it exists; otherwise PCR0-2 are recorded there, atomically, only
 * after the whole establishment succeeded). One of the two is required: a channel to an unknown image is no
 * channel.
 *
 * Exit status: 0 whenever the app answered in full (any HTTP status), 1 when the channel, the attestation
 * or a streamed body failed (the code printed), 2 for a usage error. Nothing is retried.
 */

import type { ParseArgsConfig } from 'node:util';
import { nodeP384Verifier, type PcrProfile } from '../nsm/index.js';
import { createSteveClient, isSuite, SteveClientError, type FetchFunction, type SteveReceipt, type Suite, type TofuStore } from '../steve/index.js';
import { nodeAesGcm } from '../steve/server/index.js';
import { AgentError } from './errors.js';
import { loadRootFlag } from './root-flag.js';
import { encodeTrustedState, loadPcrPolicyFiles, loadTrustedStateFile, parseTrustedState, writeTrustedStateFile } from './trusted-state.js';
import { printable } from './verify-remote.js';

export const FETCH_USAGE =
  'Usage: enclave-agent fetch URL (--pcrs FILE... | --tofu FILE) [--key-exchange X25519|XWING-DRAFT10]\n' +
  "                           [-X METHOD] [-H 'name: value']... [--data D | --json J] [--root PEM] [--allow-debug]\n\n" +
  'Sends one request to the app behind an enclave agent through STEVE, end-to-end encrypted: a session is\n' +
  'established first (the attestation document bound to a fresh nonce and chained to the pinned root, the\n' +
  'session binding in its user_data, your PCR policy, key confirmation), and only then is the request sent.\n' +
  'The response body is written to stdout as it arrives (streamed end to end when the enclave offers\n' +
  'stream-1); the status and headers go to stderr first, the receipt once the body has ended.\n\n' +
  'URL                  the app URL behind the agent, http: or https: (https://host/path?query)\n' +
  '--pcrs FILE          pinned PCRs, a trusted-state file {"pcr0":hex,"pcr1":hex,"pcr2":hex[,"pcrN":hex...]}\n' +
  '                     or PCR sets {"sets":[{"pcrs":{"0":hex,"1":hex,"2":hex},"expires_at_unix_seconds":N}]}\n' +
  '                     (expired sets are ignored); repeat to accept any one of several images\n' +
  '--tofu FILE          trust on first use: if FILE exists its PCRs are pinned; if not, PCR0-2 are recorded\n' +
  '                     there (mode 0600) once the session is fully established. Not with --pcrs\n' +
  '--key-exchange SUITE the deployment\'s suite: X25519 (default) or XWING-DRAFT10; never negotiated\n' +
  '-X, --request METHOD the method (default GET, or POST with --data or --json)\n' +
  "-H, --header 'N: V'  a request header; repeat for more\n" +
  '--data D             the request body as given (content-type application/x-www-form-urlencoded unless -H sets one)\n' +
  '--json J             a JSON body (content-type and accept application/json unless -H sets them)\n' +
  '--root PEM           trust anchor (default: the pinned AWS Nitro Enclaves Root-G1)\n' +
  '--allow-debug        accept debug-mode documents (PCR0-2 all zero)\n\n' +
  'Exit status: 0 when the app answered in full (any HTTP status, printed to stderr), 1 when the channel,\n' +
  'the attestation or a streamed body failed (its code printed), 2 usage error.';

export const FETCH_OPTIONS = {
  pcrs: { type: 'string', multiple: true },
  tofu: { type: 'string' },
  'key-exchange': { type: 'string' },
  request: { type: 'string', short: 'X' },
  header: { type: 'string', short: 'H', multiple: true },
  data: { type: 'string' },
  json: { type: 'string' },
  root: { type: 'string' },
  'allow-debug': { type: 'boolean' },
} satisfies NonNullable<ParseArgsConfig['options']>;

type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

interface Output {
  write(chunk: string | Uint8Array, callback?: (error?: Error | null) => void): unknown;
}

export interface FetchCommandIo {
  stdout: Output;
  stderr: Output;
  /** For tests: the fetch the client uses. Default the global one. */
  fetch?: FetchFunction;
}

function usage(message: string): AgentError {
  return new AgentError('AGENT_USAGE', message);
}

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []);
const HEADER_RE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/;

/** A trust-on-first-use store backed by a trusted-state file (agent/trusted-state.ts: atomic, 0600, never replaces). */
export function fileTofuStore(path: string, now: () => number = Date.now): TofuStore {
  const source = `--tofu ${path}`;
  return {
    async load() {
      const bytes = await loadTrustedStateFile(path, source);
      return bytes === null ? null : parseTrustedState(bytes, source);
    },
    async save(pcrs) {
      await writeTrustedStateFile(path, encodeTrustedState(pcrs, now()));
    },
  };
}

interface ParsedFetch {
  url: URL;
  suite: Suite;
  pcrPolicy?: PcrProfile[];
  tofu?: { path: string; store: TofuStore };
  method: string;
  headers: Array<[string, string]>;
  body: string | null;
  root?: Uint8Array;
  allowDebug: boolean;
}

/** Turns `fetch`'s flags into client options, reading the --pcrs, --tofu and --root files. Bad input is AGENT_USAGE. */
export async function parseFetchFlags(values: FlagValues, positionals: string[]): Promise<ParsedFetch> {
  const target = positionals[0];
  if (target === undefined) throw usage('URL is required');
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw usage(`URL expected an absolute http: or https: URL, got ${JSON.stringify(printable(target))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw usage(`URL expected http: or https:, got ${url.protocol}`);
  if (url.username !== '' || url.password !== '') throw usage('URL must not carry credentials');

  const suiteText = typeof values['key-exchange'] === 'string' ? values['key-exchange'] : 'X25519';
  if (!isSuite(suiteText)) throw usage(`--key-exchange expected X25519 or XWING-DRAFT10, got ${JSON.stringify(printable(suiteText))}`);

  const pcrFiles = strings(values.pcrs);
  const tofuPath = typeof values.tofu === 'string' ? values.tofu : undefined;
  if (pcrFiles.length > 0 && tofuPath !== undefined) throw usage('--pcrs and --tofu exclude each other: pin PCRs or trust on first use, not both');
  if (pcrFiles.length === 0 && tofuPath === undefined) throw usage('a PCR policy is required: --pcrs FILE (pinned) or --tofu FILE (trust on first use)');
  let pcrPolicy: PcrProfile[] | undefined;
  let tofu: ParsedFetch['tofu'];
  if (pcrFiles.length > 0) {
    pcrPolicy = await loadPcrPolicyFiles(pcrFiles, Date.now());
  } else {
    if (tofuPath!.length === 0) throw usage('--tofu expected a file path');
    const store = fileTofuStore(tofuPath!);
    // Read once before anything is sent: a malformed file is the user's to fix (exit 2), not a verdict.
    await store.load();
    tofu = { path: tofuPath!, store };
  }

  const headers: Array<[string, string]> = [];
  for (const header of strings(values.header)) {
    const match = HEADER_RE.exec(header);
    if (match === null) throw usage(`-H expected 'name: value', got ${JSON.stringify(printable(header))}`);
    headers.push([match[1]!, match[2]!]);
  }
  const has = (name: string) => headers.some(([n]) => n.toLowerCase() === name);
  const data = typeof values.data === 'string' ? values.data : undefined;
  const json = typeof values.json === 'string' ? values.json : undefined;
  if (data !== undefined && json !== undefined) throw usage('--data and --json exclude each other');
  let body: string | null = null;
  if (data !== undefined) {
    body = data;
    if (!has('content-type')) headers.push(['content-type', 'application/x-www-form-urlencoded']);
  } else if (json !== undefined) {
    body = json;
    if (!has('content-type')) headers.push(['content-type', 'application/json']);
    if (!has('accept')) headers.push(['accept', 'application/json']);
  }
  const method = typeof values.request === 'string' ? values.request : body === null ? 'GET' : 'POST';

  const root = typeof values.root === 'string' ? await loadRootFlag(values.root) : undefined;
  return {
    url,
    suite: suiteText,
    ...(pcrPolicy !== undefined ? { pcrPolicy } : {}),
    ...(tofu !== undefined ? { tofu } : {}),
    method,
    headers,
    body,
    ...(root !== undefined ? { root } : {}),
    allowDebug: values['allow-debug'] === true,
  };
}

function describeTrust(receipt: SteveReceipt, parsed: ParsedFetch): string {
  if (receipt.pcrPolicy === 'pinned') return `PCRs match the pinned ${printable(receipt.pcrTrust)}`;
  const path = printable(parsed.tofu?.path ?? '');
  return receipt.pcrTrust === 'tofu-recorded' ? `PCRs recorded in ${path} (first use: later runs must match)` : `PCRs match ${path} (trust on first use)`;
}

/** The stderr report's head: the status and headers (escaped), written before the body. */
export function formatFetchHead(response: Response): string {
  const lines = [`HTTP ${response.status}`];
  response.headers.forEach((value, name) => {
    if (name === 'set-cookie') return;
    lines.push(`< ${printable(name, 80)}: ${printable(value, 400)}`);
  });
  for (const cookie of response.headers.getSetCookie()) lines.push(`< set-cookie: ${printable(cookie, 400)}`);
  return `${lines.join('\n')}\n`;
}

/** The stderr report's end: what the channel proved and carried, written once the body has ended. */
export function formatFetchReceipt(receipt: SteveReceipt, parsed: ParsedFetch): string {
  return [
    `steve: ${receipt.suite} session ${receipt.sessionId} sequence ${receipt.sequence}; attestation verified (${parsed.root === undefined ? 'AWS Nitro Enclaves Root-G1' : '--root'}); ${describeTrust(receipt, parsed)}`,
    `steve: sent ${receipt.requestBytes} bytes (body ${receipt.requestBodyBytes}), received ${receipt.responseBytes} bytes (body ${receipt.responseBodyBytes})${receipt.stream === undefined ? '' : ', streamed'}`,
    '',
  ].join('\n');
}

/** The whole stderr report: status, headers (escaped), then what the channel proved. */
export function formatFetchReport(response: Response, receipt: SteveReceipt, parsed: ParsedFetch): string {
  return formatFetchHead(response) + formatFetchReceipt(receipt, parsed);
}

function write(out: Output, chunk: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(chunk, (error) => (error ? reject(error) : resolve()));
  });
}

/** The codes along an error's cause chain (ATTESTATION_ROOT, ECONNREFUSED, AGENT_VERIFY_TOFU), for the one-line report. */
function causeCodes(error: Error): string {
  const codes: string[] = [];
  let cause: unknown = error.cause;
  for (let depth = 0; depth < 4 && typeof cause === 'object' && cause !== null; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string' && !error.message.includes(code)) codes.push(printable(code, 40));
    cause = (cause as { cause?: unknown }).cause;
  }
  return codes.length === 0 ? '' : ` [${codes.join(' <- ')}]`;
}

/** Runs `fetch`: 0 when the app answered, 1 for a channel or attestation failure; usage errors are thrown. */
export async function runFetchCommand(values: FlagValues, positionals: string[], io: FetchCommandIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const parsed = await parseFetchFlags(values, positionals);
  let client;
  try {
    client = createSteveClient({
      origin: parsed.url.origin,
      keyExchange: parsed.suite,
      ...(parsed.pcrPolicy !== undefined ? { pcrPolicy: parsed.pcrPolicy } : {}),
      ...(parsed.tofu !== undefined ? { tofuStore: parsed.tofu.store } : {}),
      ...(parsed.root !== undefined ? { root: parsed.root } : {}),
      ...(io.fetch !== undefined ? { fetch: io.fetch } : {}),
      allowDebug: parsed.allowDebug,
      aead: nodeAesGcm,
      verifier: nodeP384Verifier,
    });
  } catch (error) {
    if (error instanceof SteveClientError) throw usage(error.message);
    throw error;
  }
  try {
    const response = await client.request(`${parsed.url.pathname}${parsed.url.search}`, { method: parsed.method, headers: parsed.headers, body: parsed.body });
    await write(io.stderr, formatFetchHead(response));
    // Each chunk goes out as it arrives (a streamed answer is never held whole); a stream that fails
    // midway rejects the read with its coded error: exit 1, after the bytes that had opened.
    if (response.body !== null) {
      const reader = response.body.getReader();
      for (let next = await reader.read(); !next.done; next = await reader.read()) await write(io.stdout, next.value);
    }
    await write(io.stderr, formatFetchReceipt(client.receiptFor(response)!, parsed));
    return 0;
  } catch (error) {
    if (!(error instanceof SteveClientError)) throw error;
    if (error.code === 'STEVE_CLIENT_BAD_REQUEST') throw usage(error.message);
    await write(io.stderr, `enclave-agent fetch: ${error.code} (${error.stage}): ${printable(error.message, 2000)}${causeCodes(error)}\n`);
    return 1;
  } finally {
    client.close();
  }
}
