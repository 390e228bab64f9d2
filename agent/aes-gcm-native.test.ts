/**
 * agent/aes-gcm-native.ts (agent/native/aes-gcm.c) against McGrew-Viega's AES-256 GCM vectors, against
 * node:crypto's and noble's AES-GCM byte for byte both ways (fast-check), with the plaintext in any cut of
 * pieces; every single-bit change refused with null; the addon's own checks (a wrong tag leaves `out`
 * zeroed, no write past `out`, coded bad arguments); and the STEVE server running on it.
 */

import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findPackageRoot } from '../native/index.js';
import { code } from '../test/steve-codes.js';
import { aeadConformance } from '../test/aead-conformance.js';
import { hex } from '../test/vectors/steve/vectors.js';
import { DIRECTION, createStreamReader, createStreamWriter, nobleAesGcm } from '../steve/protocol/index.js';
import { nodeAesGcm } from '../steve/server/index.js';
import { loadNativeAesGcm } from './aes-gcm-native.js';

const aead = loadNativeAesGcm();
const bytes = (length: number, seed = 1): Uint8Array => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);

/** The addon's export itself, to reach the checks the wrapper makes first. */
const raw = (createRequire(import.meta.url)(`${findPackageRoot()}/build/Release/enclave_native.node`) as { aesGcm: Record<string, (...args: unknown[]) => unknown> }).aesGcm;

/** The error code a call throws (any error with a `code`), or undefined. */
function nativeCode(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return (error as { code?: string }).code ?? `no code: ${String(error)}`;
  }
  return undefined;
}

/** `plaintext` cut at `cuts` (positions, any order, repeats give empty pieces). */
function cut(plaintext: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (const at of [...[...cuts].sort((a, b) => a - b), plaintext.length]) {
    pieces.push(plaintext.subarray(from, Math.max(from, at)));
    from = Math.max(from, at);
  }
  return pieces;
}

describe('loadNativeAesGcm', () => {
  aeadConformance(aead);

  it('agrees with node:crypto and noble both ways, the plaintext in any pieces (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 100 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 8 }),
        fc.array(fc.nat(300), { maxLength: 5 }),
        (key, nonce, aad, plaintext, prefix, cuts) => {
          const ours = aead.seal(key, nonce, aad, plaintext);
          expect(hex(ours)).toBe(hex(nodeAesGcm.seal(key, nonce, aad, plaintext)));
          expect(hex(nobleAesGcm.open(key, nonce, aad, ours)!)).toBe(hex(plaintext));
          expect(hex(aead.open(key, nonce, aad, nobleAesGcm.seal(key, nonce, aad, plaintext))!)).toBe(hex(plaintext));
          expect(hex(aead.sealPrefixed(key, nonce, aad, plaintext, prefix))).toBe(hex(prefix) + hex(ours));
          const parts = aead.sealPrefixedParts(key, nonce, aad, cut(plaintext, cuts), prefix);
          expect(hex(Buffer.concat(parts))).toBe(hex(Buffer.concat(nodeAesGcm.sealPrefixedParts(key, nonce, aad, cut(plaintext, cuts), prefix))));
        },
      ),
      { seed: 20_261_206, numRuns: 300 },
    );
  });

  it('takes an AAD longer than its scratch buffer, and an empty list of pieces', () => {
    const key = bytes(32);
    const nonce = bytes(12, 5);
    const plaintext = bytes(79, 6);
    const longAad = bytes(200, 7);
    expect(hex(aead.seal(key, nonce, longAad, plaintext))).toBe(hex(nobleAesGcm.seal(key, nonce, longAad, plaintext)));
    expect(hex(aead.sealPrefixedParts(key, nonce, longAad, [], Uint8Array.of(7))[0]!)).toBe('07' + hex(nobleAesGcm.seal(key, nonce, longAad, new Uint8Array(0))));
  });

  it('refuses a plaintext piece that is not a Uint8Array with STEVE_BAD_ARGUMENT', () => {
    const key = bytes(32);
    expect(code(() => aead.sealPrefixedParts(key, bytes(12), bytes(3), [bytes(20), 'x' as unknown as Uint8Array], bytes(3)))).toBe('STEVE_BAD_ARGUMENT');
  });

  it('carries stream records both ways with noble', () => {
    const key = new Uint8Array(32).fill(9);
    const target = { direction: DIRECTION.S2C, sessionId: new Uint8Array(16).fill(4), sequence: 3 } as const;
    for (const length of [1, 16, 65_536, 200_000]) {
      const chunk = bytes(length, 3);
      const [ours, pure] = [aead, nobleAesGcm].map((a) => createStreamWriter(a, key, target));
      const frames = [ours!.head(Uint8Array.of(1)), ...ours!.dataPieces(chunk), ours!.end()];
      expect(hex(Buffer.concat(frames))).toBe(hex(Buffer.concat([pure!.head(Uint8Array.of(1)), ...pure!.data(chunk), pure!.end()])));
      const reader = createStreamReader(nobleAesGcm, key, target);
      const opened = frames.map((sealed) => reader.open({ kind: sealed[0] as 1 | 2 | 3, sealed: sealed.subarray(5) }));
      expect(opened.at(-1)!.kind).toBe(3);
    }
  });
});

describe('the addon itself (agent/native/aes-gcm.c)', () => {
  const key = bytes(32);
  const nonce = bytes(12, 5);
  const aad = bytes(10, 6);

  it('leaves `out` zeroed when the tag does not verify', () => {
    const sealed = Buffer.from(aead.seal(key, nonce, aad, bytes(100, 8)));
    sealed[sealed.length - 1]! ^= 1;
    const out = Buffer.alloc(100, 0xaa);
    expect(raw.open!(key, nonce, aad, sealed, out)).toBe(false);
    expect(out.every((b) => b === 0)).toBe(true);
  });

  it('writes nothing past its room and nothing at all when the room is short', () => {
    const out = Buffer.alloc(3 + 20 + 16 + 5, 0xee);
    raw.seal!(key, nonce, aad, bytes(20), out, 3);
    expect(out.subarray(0, 3).every((b) => b === 0xee) && out.subarray(39).every((b) => b === 0xee)).toBe(true);
    const short = Buffer.alloc(20 + 15, 0xee);
    expect(nativeCode(() => raw.seal!(key, nonce, aad, bytes(20), short, 0))).toBe('STEVE_BAD_ARGUMENT');
    expect(short.every((b) => b === 0xee)).toBe(true);
    expect(nativeCode(() => raw.seal!(key, nonce, aad, bytes(20), Buffer.alloc(100), 70))).toBe('STEVE_BAD_ARGUMENT');
    expect(nativeCode(() => raw.open!(key, nonce, aad, bytes(40), Buffer.alloc(23)))).toBe('STEVE_BAD_ARGUMENT');
  });

  it('checks every argument before it encrypts anything, with coded errors', () => {
    const out = Buffer.alloc(64);
    for (const args of [
      [bytes(31), nonce, aad, bytes(4), out, 0],
      [key, bytes(11), aad, bytes(4), out, 0],
      [key, nonce, 'aad', bytes(4), out, 0],
      [key, nonce, aad, new Uint16Array(2), out, 0],
      [key, nonce, aad, [bytes(2), 7], out, 0],
      [key, nonce, aad, bytes(4), out, -1],
      [key, nonce, aad, bytes(4), out, 1.5],
      [key, nonce, aad, bytes(4), null, 0],
    ]) {
      expect(nativeCode(() => raw.seal!(...args)), String(args.map((a) => typeof a))).toBe('STEVE_BAD_ARGUMENT');
    }
    expect(nativeCode(() => raw.open!(key, nonce, aad, bytes(15), Buffer.alloc(0)))).toBe('STEVE_BAD_ARGUMENT');
  });
});
