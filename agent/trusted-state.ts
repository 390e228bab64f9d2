/**
 * Trusted-state files (specs/agent-http.md §3): the PCRs a verifier pins an enclave image to,
 * `{"pcr0":hex,"pcr1":hex,"pcr2":hex,"verified_at":rfc3339}` with lower-case hex, as existing verifiers
 * write them (Caution's `trusted_hashes.json` adds a `tls` pin, accepted and not checked: the document,
 * not a TLS certificate, says which enclave answered). `enclave-agent verify` reads them as pinned
 * profiles (`--pcrs`, an existing `--tofu` file) and writes one on trust-on-first-use. `--pcrs` also reads
 * PCR sets with expiry cutoffs, `{"sets":[{"pcrs":{"0":hex,"1":hex,"2":hex},"expires_at_unix_seconds":N}]}`
 * (specs/nitro-enclave.md §5), each set still in force one profile.
 *
 * The codecs (`parseTrustedState`, `parsePcrPolicy`, `encodeTrustedState`) are pure. The two file functions at the bottom are
 * the only I/O; the writer never leaves a half-written file behind (temp file, fsync, rename). Nothing here
 * decides whether a document is trusted: that is the verifier's job with the profiles parsed here.
 */

import { randomBytes } from 'node:crypto';
import { lstat, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { bytesToHex, hexToBytes, PCR_BYTES, PCR_COUNT, type PcrProfile } from '../nsm/index.js';
import { AgentError } from './errors.js';

/**
 * Largest trusted-state file read. The biggest legitimate one pins all 32 PCRs: 32 x ~110 bytes
 * (`"pcr31": "` + 96 hex digits + `",` and indentation) plus `verified_at`, about 3.6 KiB; 16 KiB leaves
 * room for any formatting and stops a wrong path (a disk image, /dev/zero) from being read whole.
 */
export const TRUSTED_STATE_MAX_BYTES = 16 * 1024;
/**
 * Largest `--pcrs` file read. A sets file keeps one set per image ever approved: at least 320 bytes for
 * PCR0-2 (three 96-digit values), about 650 with PCR3, 4 and 8 pinned too; 256 KiB holds several hundred,
 * and bounds the number of sets (at most about 800) as well.
 */
export const PCR_POLICY_MAX_BYTES = 256 * 1024;
/** The PCRs that identify an image (specs/agent-http.md §3): every trusted-state file has them. */
export const IDENTITY_PCRS = [0, 1, 2] as const;

/** `pcrN` with N in 0..31 written without leading zeros, as existing verifiers name the keys. */
const PCR_KEY_RE = /^pcr(0|[1-9]\d?)$/;
/** A set's keys: the index alone, `"0"` to `"31"`, no leading zeros. */
const SET_KEY_RE = /^(0|[1-9]\d?)$/;
/** SHA-384 PCRs: 48 bytes, 96 hex digits of either case (we write lower case). */
const PCR_HEX_RE = new RegExp(`^[0-9a-fA-F]{${PCR_BYTES * 2}}$`);

function invalid(source: string, message: string, cause?: unknown): AgentError {
  return new AgentError('AGENT_USAGE', `${source}: ${message}`, cause === undefined ? undefined : { cause });
}

/**
 * Parses a trusted-state file into PCR index -> value. PCR0-2 are required; further `pcrN` keys (N 0..31)
 * are pinned too; `verified_at` is ignored (it records when, not what). Any other key is refused, so a
 * misspelt `pcr_3` cannot silently pin nothing. Throws `AGENT_USAGE` naming `source`: the file is input
 * the user must fix.
 */
export function parseTrustedState(bytes: Uint8Array, source: string): Map<number, Uint8Array> {
  return trustedStateFromJson(decodeJsonObject(bytes, source, TRUSTED_STATE_MAX_BYTES, 'a trusted-state file'), source);
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function decodeJsonObject(bytes: Uint8Array, source: string, maxBytes: number, what: string): Record<string, unknown> {
  if (!(bytes instanceof Uint8Array)) throw invalid(source, 'expected bytes');
  if (bytes.length > maxBytes) throw invalid(source, `larger than ${maxBytes} bytes; not ${what}`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw invalid(source, 'not UTF-8 JSON', cause);
  }
  if (!isObject(value)) throw invalid(source, 'expected a JSON object {"pcr0":hex,"pcr1":hex,"pcr2":hex}');
  return value;
}

/** A PCR value: exactly 96 hex digits. */
function pcrValue(text: unknown, source: string, name: string): Uint8Array {
  if (typeof text !== 'string' || !PCR_HEX_RE.test(text)) throw invalid(source, `${name} expected ${PCR_BYTES * 2} hex digits (${PCR_BYTES} bytes)`);
  return hexToBytes(text, name);
}

function trustedStateFromJson(value: Record<string, unknown>, source: string): Map<number, Uint8Array> {
  const pcrs = new Map<number, Uint8Array>();
  for (const [key, text] of Object.entries(value)) {
    if (key === 'verified_at') continue;
    if (key === 'tls') {
      // Caution's TLS pin: shape-checked so a typo is still caught, never enforced (see the file comment).
      if (!isObject(text) || !Object.values(text).every((v) => typeof v === 'string')) throw invalid(source, '"tls" expected an object of strings {"domain","certfp"}');
      continue;
    }
    const match = PCR_KEY_RE.exec(key);
    if (match === null || Number(match[1]) >= PCR_COUNT) throw invalid(source, `unexpected key ${JSON.stringify(key)} (expected pcr0..pcr${PCR_COUNT - 1}, verified_at and tls)`);
    pcrs.set(Number(match[1]), pcrValue(text, source, `"${key}"`));
  }
  for (const index of IDENTITY_PCRS) if (!pcrs.has(index)) throw invalid(source, `"pcr${index}" is missing`);
  return pcrs;
}

/**
 * A `--pcrs` file as PCR profiles, in either shape (see the file comment): a trusted-state file is one
 * profile named `name`; a sets file gives one profile per set not yet expired at `nowMs`, named
 * `name set N` (N from 1, in file order). A set expires when `expires_at_unix_seconds` (absent or null:
 * never) is at or before `nowMs`. Like Caution's policies, a set whose PCR0, PCR1 or PCR2 is all zero
 * (debug mode) is refused, and so is a file whose every set has expired: it would accept no image.
 * Unknown keys are refused so a misspelt one cannot silently pin nothing. Throws `AGENT_USAGE`.
 */
export function parsePcrPolicy(bytes: Uint8Array, source: string, name: string, nowMs: number): PcrProfile[] {
  const value = decodeJsonObject(bytes, source, PCR_POLICY_MAX_BYTES, 'a PCR policy file');
  if (!Object.hasOwn(value, 'sets')) {
    if (bytes.length > TRUSTED_STATE_MAX_BYTES) throw invalid(source, `larger than ${TRUSTED_STATE_MAX_BYTES} bytes; not a trusted-state file`);
    return [{ name, pcrs: trustedStateFromJson(value, source) }];
  }
  const extra = Object.keys(value).find((key) => key !== 'sets');
  if (extra !== undefined) throw invalid(source, `unexpected key ${JSON.stringify(extra)} beside "sets"`);
  const sets = value.sets;
  if (!Array.isArray(sets) || sets.length === 0) throw invalid(source, '"sets" expected a non-empty array of PCR sets');
  const profiles: PcrProfile[] = [];
  let lastExpiry = -Infinity;
  sets.forEach((set: unknown, i) => {
    const where = `sets[${i}]`;
    if (!isObject(set)) throw invalid(source, `${where} expected an object {"pcrs":{...},"expires_at_unix_seconds":N}`);
    const unknown = Object.keys(set).find((key) => key !== 'pcrs' && key !== 'expires_at_unix_seconds');
    if (unknown !== undefined) throw invalid(source, `${where}: unexpected key ${JSON.stringify(unknown)}`);
    const expires = set.expires_at_unix_seconds;
    if (expires !== undefined && expires !== null && (!Number.isSafeInteger(expires) || (expires as number) < 0)) {
      throw invalid(source, `${where}.expires_at_unix_seconds expected whole seconds since 1970 or null`);
    }
    if (!isObject(set.pcrs)) throw invalid(source, `${where}.pcrs expected an object {"0":hex,"1":hex,"2":hex}`);
    const pcrs = new Map<number, Uint8Array>();
    for (const [key, text] of Object.entries(set.pcrs)) {
      if (!SET_KEY_RE.test(key) || Number(key) >= PCR_COUNT) throw invalid(source, `${where}.pcrs: unexpected key ${JSON.stringify(key)} (expected "0".."${PCR_COUNT - 1}")`);
      pcrs.set(Number(key), pcrValue(text, source, `${where}.pcrs["${key}"]`));
    }
    for (const index of IDENTITY_PCRS) {
      const pcr = pcrs.get(index);
      if (pcr === undefined) throw invalid(source, `${where}.pcrs["${index}"] is missing`);
      if (pcr.every((byte) => byte === 0)) throw invalid(source, `${where}.pcrs["${index}"] is all zero (a debug-mode enclave): refused`);
    }
    if (typeof expires === 'number') {
      lastExpiry = Math.max(lastExpiry, expires);
      if (expires * 1000 <= nowMs) return;
    }
    profiles.push({ name: `${name} set ${i + 1}`, pcrs });
  });
  if (profiles.length === 0) throw invalid(source, `every PCR set has expired (the last at ${formatRfc3339(lastExpiry * 1000)}): this policy accepts no image now`);
  return profiles;
}

/** RFC 3339 in UTC without fractional seconds: `2024-09-07T14:37:39Z`. */
export function formatRfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The trusted-state file recorded on first use: exactly `{"pcr0","pcr1","pcr2","verified_at"}`, lower-case
 * hex, pretty-printed with a final newline. Throws `AGENT_VERIFY_TOFU` when PCR0-2 are not all 48 bytes
 * (such a file could not be read back).
 */
export function encodeTrustedState(pcrs: ReadonlyMap<number, Uint8Array>, verifiedAtMs: number): Uint8Array {
  if (!Number.isFinite(verifiedAtMs)) throw new AgentError('AGENT_VERIFY_TOFU', '"verifiedAtMs" expected a finite number of milliseconds');
  const state: Record<string, string> = {};
  for (const index of IDENTITY_PCRS) {
    const value = pcrs.get(index);
    if (!(value instanceof Uint8Array) || value.length !== PCR_BYTES) {
      throw new AgentError('AGENT_VERIFY_TOFU', `PCR${index} expected ${PCR_BYTES} bytes, got ${value instanceof Uint8Array ? value.length : 'none'}`);
    }
    state[`pcr${index}`] = bytesToHex(value);
  }
  state.verified_at = formatRfc3339(verifiedAtMs);
  return new TextEncoder().encode(`${JSON.stringify(state, null, 2)}\n`);
}

// ---------------------------------------------------------------------------------------------------
// I/O

/**
 * The file's bytes, or null when it does not exist. Other failures are `AGENT_USAGE` naming `source`.
 * `maxBytes`: TRUSTED_STATE_MAX_BYTES by default, PCR_POLICY_MAX_BYTES for `--pcrs` files.
 */
export async function loadTrustedStateFile(path: string, source: string, maxBytes = TRUSTED_STATE_MAX_BYTES): Promise<Uint8Array | null> {
  try {
    const info = await stat(path);
    if (!info.isFile()) throw invalid(source, 'not a regular file');
    if (info.size > maxBytes) throw invalid(source, `larger than ${maxBytes} bytes; not a ${maxBytes === TRUSTED_STATE_MAX_BYTES ? 'trusted-state' : 'PCR policy'} file`);
    return new Uint8Array(await readFile(path));
  } catch (cause) {
    if (cause instanceof AgentError) throw cause;
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw invalid(source, `cannot read: ${code ?? 'error'}`, cause);
  }
}

/** Whether anything (a file, a link, a directory) is at `path`; an unexpected error counts as taken. */
async function pathTaken(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (cause) {
    return (cause as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/**
 * Writes `bytes` to `path` so that readers see either no file or the whole file: a temp file (mode 0600)
 * in the same directory, fsync, then rename over `path`, then fsync the directory so the rename survives a
 * crash. Refuses (`AGENT_VERIFY_TOFU`) when `path` exists by the time of the rename: another run recorded
 * first, and a first-use record must never replace a pin. (The check and the rename are two steps; two
 * runs racing inside that window leave the later run's values.)
 */
export async function writeTrustedStateFile(path: string, bytes: Uint8Array): Promise<void> {
  const fail = (message: string, cause?: unknown) =>
    new AgentError('AGENT_VERIFY_TOFU', `cannot record ${path}: ${message}`, cause === undefined ? undefined : { cause });
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
  let handle;
  try {
    handle = await open(temp, 'wx', 0o600);
  } catch (cause) {
    throw fail((cause as NodeJS.ErrnoException).code ?? 'error', cause);
  }
  try {
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (await pathTaken(path)) throw fail('something is there now (another run recorded first?); a first-use record never replaces it');
    await rename(temp, path);
  } catch (cause) {
    await rm(temp, { force: true });
    if (cause instanceof AgentError) throw cause;
    throw fail((cause as NodeJS.ErrnoException).code ?? 'error', cause);
  }
  try {
    const directory = await open(dir, 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  } catch {
    // Some platforms cannot fsync a directory; the file itself is complete either way.
  }
}

/**
 * Reads `--pcrs` files into profiles (parsePcrPolicy, sets judged at `nowMs`). A missing file is a usage
 * error: a pin that is not there must not turn into "no policy".
 */
export async function loadPcrPolicyFiles(paths: readonly string[], nowMs: number): Promise<PcrProfile[]> {
  const profiles: PcrProfile[] = [];
  for (const path of paths) {
    const source = `--pcrs ${path}`;
    const bytes = await loadTrustedStateFile(path, source, PCR_POLICY_MAX_BYTES);
    if (bytes === null) throw invalid(source, 'no such file');
    profiles.push(...parsePcrPolicy(bytes, source, path, nowMs));
  }
  return profiles;
}
