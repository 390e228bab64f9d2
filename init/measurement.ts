/**
 * What the configuration PCR holds, so anyone can recompute it: the SHA-384 of the canonical JSON of the
 * effective init configuration (init/config.ts `InitConfig`, after defaults and the Procfile's `run` are
 * filled in), extended once into a PCR that starts at zero:
 *
 *   digest = SHA-384(canonicalJson(config))          (48 bytes, the ExtendPCR data)
 *   PCR    = SHA-384(0^48 || digest)                 (specs/nsm.md §2: extend is SHA-384(old || data))
 *
 * `enclave-agent init --config FILE --print-measurement` prints the canonical text, the digest and the
 * PCR value, so a verifier can pin the PCR. Canonical JSON here is RFC 8785 (JCS) for the values a
 * configuration holds: object keys sorted by UTF-16 code units, no whitespace, strings as JSON.stringify
 * writes them, numbers in ECMAScript's shortest form (the same as JCS). Pure: no I/O.
 */

import { createHash } from 'node:crypto';

import { InitError } from './errors.js';

/** SHA-384 output and PCR size (specs/nsm.md §2). */
export const PCR_BYTES = 48;

/** Canonical JSON (RFC 8785) of a JSON value; throws `INIT_BAD_ARGUMENT` for anything JSON cannot hold. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InitError('INIT_BAD_ARGUMENT', `canonical JSON cannot hold ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const keys = Object.keys(value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const record = value as Record<string, unknown>;
    const members = keys.filter((key) => record[key] !== undefined).map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
    return `{${members.join(',')}}`;
  }
  throw new InitError('INIT_BAD_ARGUMENT', `canonical JSON cannot hold a ${typeof value}`);
}

export interface ConfigMeasurement {
  /** The exact bytes hashed: UTF-8 of the canonical JSON. */
  canonical: string;
  /** SHA-384 of `canonical`: the data given to ExtendPCR. */
  digest: Uint8Array;
  /** The PCR's value after one extend from zero: SHA-384(0^48 || digest). */
  pcrValue: Uint8Array;
}

export function measureConfig(config: unknown): ConfigMeasurement {
  const canonical = canonicalJson(config);
  const digest = new Uint8Array(createHash('sha384').update(canonical, 'utf8').digest());
  const pcrValue = new Uint8Array(createHash('sha384').update(new Uint8Array(PCR_BYTES)).update(digest).digest());
  return { canonical, digest, pcrValue };
}
