/**
 * EIF files on disk for the CLI (`eif build`, `eif describe`, `verify --eif`): the I/O half of eif/, which
 * is pure. An image is streamed through the reader in fixed chunks, so a multi-GiB EIF costs one chunk of
 * memory; only regular files are read (a device or FIFO named by mistake would never end), and SHA-384 is
 * node:crypto's (several times faster than the pure-JS default; eif/ tests hold the two equal).
 */

import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { createEifReader, EIF_DEFAULT_MAX_BYTES, type EifDescription, type Sha384Factory } from '../eif/index.js';
import { AgentError } from './errors.js';

/** Bytes read per step: large enough that per-call costs vanish, small enough to be no memory concern. */
export const EIF_READ_CHUNK_BYTES = 1024 * 1024;

/** node:crypto's SHA-384 in the shape eif/ takes. */
export const nodeSha384: Sha384Factory = () => {
  const hash = createHash('sha384');
  return { update: (data: Uint8Array) => hash.update(data), digest: () => new Uint8Array(hash.digest()) };
};

const ioCode = (cause: unknown) => (cause as NodeJS.ErrnoException).code ?? 'error';

async function openRegularFile(path: string, what: string, maxBytes: number): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (cause) {
    throw new AgentError('AGENT_IO', `cannot read ${what} ${path}: ${ioCode(cause)}`, { cause });
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new AgentError('AGENT_USAGE', `${what} ${path} is not a regular file`);
    if (info.size > maxBytes) throw new AgentError('AGENT_USAGE', `${what} ${path} is ${info.size} bytes, more than the ${maxBytes} accepted`);
    return { handle, size: info.size };
  } catch (err) {
    await handle.close();
    if (err instanceof AgentError) throw err;
    throw new AgentError('AGENT_IO', `cannot read ${what} ${path}: ${ioCode(err)}`, { cause: err });
  }
}

/**
 * Reads and measures the EIF at `path`. Throws AGENT_IO (cannot read), AGENT_USAGE (not a regular file,
 * larger than `maxBytes`), or the reader's EifError for an invalid image.
 */
export async function loadEif(path: string, options: { what?: string; maxBytes?: number } = {}): Promise<EifDescription> {
  const what = options.what ?? 'EIF';
  const maxBytes = options.maxBytes ?? EIF_DEFAULT_MAX_BYTES;
  const { handle } = await openRegularFile(path, what, maxBytes);
  try {
    const reader = createEifReader({ maxBytes, sha384: nodeSha384 });
    // One buffer, reused: the reader copies the few bytes it keeps.
    const buffer = new Uint8Array(EIF_READ_CHUNK_BYTES);
    for (;;) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await handle.read(buffer, 0, buffer.length, null));
      } catch (cause) {
        throw new AgentError('AGENT_IO', `cannot read ${what} ${path}: ${ioCode(cause)}`, { cause });
      }
      if (bytesRead === 0) break;
      reader.update(buffer.subarray(0, bytesRead));
    }
    return reader.finish();
  } finally {
    await handle.close();
  }
}

/** A whole input file (a kernel or a ramdisk for `eif build`), regular and at most `maxBytes`. */
export async function readInputFile(path: string, what: string, maxBytes: number): Promise<Uint8Array> {
  const { handle } = await openRegularFile(path, what, maxBytes);
  try {
    const bytes = new Uint8Array(await handle.readFile());
    // Checked again on what was read: the file may have grown since the stat.
    if (bytes.length > maxBytes) throw new AgentError('AGENT_USAGE', `${what} ${path} is more than the ${maxBytes} bytes accepted`);
    return bytes;
  } catch (cause) {
    if (cause instanceof AgentError) throw cause;
    throw new AgentError('AGENT_IO', `cannot read ${what} ${path}: ${ioCode(cause)}`, { cause });
  } finally {
    await handle.close();
  }
}
