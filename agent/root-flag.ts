/**
 * `--root PEM` for the commands that verify documents (`verify-document`, `verify`, `fetch`): reads the
 * file and insists on exactly one certificate, the trust anchor to pin instead of the AWS root.
 */

import { readFile } from 'node:fs/promises';
import { pemToCertificates } from '../nsm/index.js';
import { AgentError } from './errors.js';

/** Throws AGENT_IO when the file cannot be read, AGENT_USAGE when it does not hold exactly one certificate. */
export async function loadRootFlag(path: string): Promise<Uint8Array> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (cause) {
    throw new AgentError('AGENT_IO', `cannot read root ${path}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, { cause });
  }
  const certificates = pemToCertificates(pem, '--root');
  if (certificates.length !== 1) throw new AgentError('AGENT_USAGE', '--root expected exactly one certificate');
  return certificates[0]!;
}
