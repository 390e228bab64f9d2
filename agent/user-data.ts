/**
 * The `user_data` every document carries (specs/agent-http.md §2): a UTF-8 JSON object binding the
 * exact manifest bytes (`manifest_sha256`), the agent's Ed25519 identity key (`verifying_key`, an array
 * of 32 integers, for STEVE v1 clients), and operator metadata from a file that may change while the
 * agent runs. The whole object must fit the NSM's 1024-byte field (specs/nsm.md §2).
 *
 * At start-up a bad metadata file is an error; later, a bad change is logged and the last good
 * metadata stays in force (the agent keeps attesting what it last validated).
 */

import { readFile, stat } from 'node:fs/promises';
import { NSM_FIELD_MAX_BYTES } from '../nsm/runtime.js';
import { AgentError } from './errors.js';

/** Keys the agent writes; metadata may not set them. */
const RESERVED_KEYS = new Set(['manifest_sha256', 'verifying_key']);
/** Re-check the metadata file at most this often: a stat per request would be wasted work. */
const METADATA_CHECK_INTERVAL_MS = 1000;

export interface UserDataSource {
  /** The current user_data bytes (re-reads the metadata file when it changed). */
  current(): Promise<Uint8Array>;
}

export interface UserDataOptions {
  manifestSha256: string;
  verifyingKey: Uint8Array;
  metadataPath: string | null;
  onMetadataError?: (err: AgentError) => void;
  now?: () => number;
}

export function encodeUserData(manifestSha256: string, verifyingKey: Uint8Array, metadata: Record<string, unknown>): Uint8Array {
  for (const key of Object.keys(metadata)) {
    if (RESERVED_KEYS.has(key)) throw new AgentError('AGENT_METADATA', `metadata may not set "${key}"`);
  }
  const bytes = new TextEncoder().encode(JSON.stringify({ manifest_sha256: manifestSha256, verifying_key: [...verifyingKey], ...metadata }));
  if (bytes.length > NSM_FIELD_MAX_BYTES) {
    throw new AgentError('AGENT_METADATA', `user_data would be ${bytes.length} bytes; the NSM takes at most ${NSM_FIELD_MAX_BYTES}`);
  }
  return bytes;
}

function parseMetadata(bytes: Uint8Array, path: string): Record<string, unknown> {
  if (bytes.length > NSM_FIELD_MAX_BYTES) throw new AgentError('AGENT_METADATA', `${path}: larger than ${NSM_FIELD_MAX_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new AgentError('AGENT_METADATA', `${path}: not UTF-8 JSON`, { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AgentError('AGENT_METADATA', `${path}: not a JSON object`);
  return value as Record<string, unknown>;
}

async function readMetadata(path: string): Promise<{ bytes: Uint8Array; stamp: string }> {
  try {
    const info = await stat(path);
    return { bytes: new Uint8Array(await readFile(path)), stamp: `${info.ino}:${info.size}:${info.mtimeMs}` };
  } catch (cause) {
    throw new AgentError('AGENT_METADATA', `cannot read metadata ${path}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
  }
}

/** Validates everything once (throws `AGENT_METADATA` at start-up), then serves `current()`. */
export async function createUserDataSource(options: UserDataOptions): Promise<UserDataSource> {
  const { manifestSha256, verifyingKey, metadataPath } = options;
  const now = options.now ?? Date.now;
  if (metadataPath === null) {
    const fixed = encodeUserData(manifestSha256, verifyingKey, {});
    return { current: async () => fixed };
  }
  const first = await readMetadata(metadataPath);
  let bytes = encodeUserData(manifestSha256, verifyingKey, parseMetadata(first.bytes, metadataPath));
  let stamp = first.stamp;
  let checkedAt = now();
  let checking: Promise<void> | undefined;

  async function refresh(): Promise<void> {
    try {
      const info = await stat(metadataPath!);
      if (`${info.ino}:${info.size}:${info.mtimeMs}` === stamp) return;
      const next = await readMetadata(metadataPath!);
      // Remember this version even if it is rejected, so one bad edit is reported once, not every second.
      stamp = next.stamp;
      bytes = encodeUserData(manifestSha256, verifyingKey, parseMetadata(next.bytes, metadataPath!));
    } catch (err) {
      options.onMetadataError?.(err instanceof AgentError ? err : new AgentError('AGENT_METADATA', String(err), { cause: err }));
    }
  }

  return {
    async current() {
      if (now() - checkedAt >= METADATA_CHECK_INTERVAL_MS) {
        checkedAt = now();
        checking ??= refresh().finally(() => (checking = undefined));
        await checking;
      }
      return bytes;
    },
  };
}
