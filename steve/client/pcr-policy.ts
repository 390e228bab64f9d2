/**
 * The client's PCR policy (specs/steve.md §5 step 3): which enclave images it talks to. Either pinned
 * profiles (several, so an image rotation can list the old and the new one), checked before the
 * confirmation is sent; or trust on first use through a `TofuStore`: the first session records PCR0-2
 * only after the whole establishment (document, binding, confirmation) succeeded, later sessions must
 * match the record.
 *
 * Decisions (ours):
 * - A TOFU record holds PCR0-2 only, the PCRs that identify the image (the same set `enclave-agent verify`
 *   records): PCR3 (IAM role) and PCR4 (parent instance) would make every other instance of the same
 *   image look foreign. A stored record may hold more PCRs; all of them are compared.
 * - A debug-mode document (all-zero PCR0-2, only seen with `allowDebug`) is never recorded: every debug
 *   enclave would match such a record.
 * - Profiles are compared here, after the binding, rather than inside the verifier, so the order of the
 *   checks is the spec's: document, binding, PCRs. Every PCR of a profile is compared without an early exit.
 * Pure: no I/O (the store is the caller's).
 */

import type { PcrProfile } from '../../nsm/verifier.js';
import { constantTimeEqual } from '../protocol/index.js';
import { SteveClientError } from './errors.js';

/** Where trust-on-first-use PCRs are kept (a file for the CLI, IndexedDB in a browser, memory in tests). */
export interface TofuStore {
  /** The recorded PCRs, or null before first use. */
  load(): Promise<Map<number, Uint8Array> | null>;
  /** Records PCRs after the first successful establishment; called at most once per client at a time. */
  save(pcrs: Map<number, Uint8Array>): Promise<void>;
}

export type PcrPolicy = { kind: 'pinned'; profiles: readonly PcrProfile[] } | { kind: 'tofu'; store: TofuStore };

/** What the receipt says about the PCRs: the pinned profile's name, or how TOFU went. */
export type PcrTrust = { policy: 'pinned'; profile: string } | { policy: 'tofu'; result: 'tofu-recorded' | 'tofu-matched' };

/** The PCRs a TOFU record holds (see the file comment). */
export const TOFU_PCRS = [0, 1, 2] as const;

/** Profiles must be non-empty maps of index -> bytes; a profile without PCRs would match nothing. */
export function assertProfiles(profiles: unknown, what: string): asserts profiles is readonly PcrProfile[] {
  const fail = (message: string) => new SteveClientError('STEVE_CLIENT_CONFIG', 'config', `${what}: ${message}`);
  if (!Array.isArray(profiles) || profiles.length === 0) throw fail('expected a non-empty array of PCR profiles');
  for (const profile of profiles as unknown[]) {
    const p = profile as Partial<PcrProfile> | null;
    if (typeof p !== 'object' || p === null || typeof p.name !== 'string' || !(p.pcrs instanceof Map) || p.pcrs.size === 0) {
      throw fail('each profile needs a name and a non-empty Map of PCR index -> bytes');
    }
    for (const [index, value] of p.pcrs) {
      if (!Number.isInteger(index) || index < 0 || index > 31 || !(value instanceof Uint8Array) || value.length === 0) {
        throw fail(`profile ${JSON.stringify(p.name)} has a bad PCR entry`);
      }
    }
  }
}

/** The name of the first profile every PCR of which the document has, or undefined. */
export function matchProfiles(pcrs: ReadonlyMap<number, Uint8Array>, profiles: readonly PcrProfile[]): string | undefined {
  for (const profile of profiles) {
    let matches = profile.pcrs.size > 0;
    for (const [index, expected] of profile.pcrs) {
      const actual = pcrs.get(index);
      matches = actual !== undefined && constantTimeEqual(actual, expected) && matches;
    }
    if (matches) return profile.name;
  }
  return undefined;
}

/** The PCRs a first use records: PCR0-2 copied out of the document. */
export function tofuRecord(pcrs: ReadonlyMap<number, Uint8Array>): Map<number, Uint8Array> {
  const record = new Map<number, Uint8Array>();
  for (const index of TOFU_PCRS) {
    const value = pcrs.get(index);
    if (value === undefined) throw new SteveClientError('STEVE_CLIENT_PCR', 'pcr', `cannot record trust on first use: the document has no PCR${index}`);
    record.set(index, value.slice());
  }
  return record;
}
