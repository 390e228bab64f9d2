/**
 * Loads the STEVE test vectors in this folder (provenance in README.md) for the steve/protocol tests,
 * with the hex helpers they share. Test-only: reads files with node:fs.
 */

import { readFileSync } from 'node:fs';

const dir = new URL('./', import.meta.url);

export function readVector<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(name, dir), 'utf8')) as T;
}

export function readVectorText(name: string): string {
  return readFileSync(new URL(name, dir), 'utf8');
}

export const KAT_URL = new URL('kat.json', dir);

export function hex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

export function unhex(text: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/.test(text)) throw new Error('bad hex in a test vector');
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** draft-connolly-cfrg-xwing-kem-10 Appendix C (spec/test-vectors.json at the draft's tag). */
export interface XwingVector {
  seed: string;
  sk: string;
  pk: string;
  eseed: string;
  ct: string;
  ss: string;
}

export interface X25519Vectors {
  scalarMult: Array<{ scalar: string; u: string; output: string }>;
  iterated: { start: string; after1: string; after1000: string };
  diffieHellman: { alicePrivate: string; alicePublic: string; bobPrivate: string; bobPublic: string; shared: string };
}

export interface HkdfVectors {
  cases: Array<{ name: string; ikm: string; salt: string; info: string; length: number; prk: string; okm: string }>;
}

export interface GcmVectors {
  cases: Array<{ name: string; key: string; iv: string; plaintext: string; aad: string; ciphertext: string; tag: string }>;
}

export const xwingVectors = (): XwingVector[] => readVector<XwingVector[]>('xwing-draft10.json');
export const x25519Vectors = (): X25519Vectors => readVector<X25519Vectors>('rfc7748-x25519.json');
export const hkdfVectors = (): HkdfVectors => readVector<HkdfVectors>('rfc5869-hkdf-sha256.json');
export const gcmVectors = (): GcmVectors => readVector<GcmVectors>('gcm-aes256.json');

/** A `random` that hands out the given bytes once, and fails loudly if asked again or for another length. */
export function fixedRandom(...chunks: Uint8Array[]): (length: number) => Uint8Array {
  const queue = [...chunks];
  return (length: number): Uint8Array => {
    const next = queue.shift();
    if (next === undefined) throw new Error('fixedRandom: no more bytes');
    if (next.length !== length) throw new Error(`fixedRandom: asked for ${length} bytes, holding ${next.length}`);
    return next.slice();
  };
}
