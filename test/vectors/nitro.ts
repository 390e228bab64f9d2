/**
 * Loads the real attestation documents in test/vectors/nitro (see its README for provenance) with
 * their decoded expectations, for the verifier's tests.
 */

import { readFileSync } from 'node:fs';

export interface NitroVector {
  file: string;
  bytes: Uint8Array;
  debug: boolean;
  timestampMs: number;
  /** Chain validity window (the intersection of all certificates'), ms. */
  validFromMs: number;
  validToMs: number;
  moduleId: string;
  pcrs: Record<string, string>;
  nonce: string | null;
  userData: string | null;
  publicKey: string | null;
  indefinite: boolean;
  highS: boolean;
}

interface ExpectedEntry {
  file: string;
  debug_mode: boolean;
  timestamp_ms: number;
  chain_valid_window_utc: [string, string];
  module_id: string;
  pcrs: Record<string, string>;
  nonce: string | null;
  user_data: string | null;
  public_key: string | null;
  payload_map_encoding: string;
  signature_s_is_high: boolean;
}

const dir = new URL('./nitro/', import.meta.url);

export function loadNitroVectors(): NitroVector[] {
  const expected = JSON.parse(readFileSync(new URL('expected.json', dir), 'utf8')) as ExpectedEntry[];
  return expected.map((e) => ({
    file: e.file,
    bytes: new Uint8Array(readFileSync(new URL(e.file, dir))),
    debug: e.debug_mode,
    timestampMs: e.timestamp_ms,
    validFromMs: Date.parse(e.chain_valid_window_utc[0]),
    validToMs: Date.parse(e.chain_valid_window_utc[1]),
    moduleId: e.module_id,
    pcrs: e.pcrs,
    nonce: e.nonce,
    userData: e.user_data,
    publicKey: e.public_key,
    indefinite: e.payload_map_encoding.startsWith('indefinite'),
    highS: e.signature_s_is_high,
  }));
}

export const AWS_ROOT_PEM_URL = new URL('aws_nitro_root_g1.pem', dir);
