/**
 * agent/handshake-native.ts (agent/native/handshake.c) against independent vectors and the protocol's
 * noble code: HKDF-SHA256 against RFC 5869 Appendix A, SHA-256 against FIPS 180-2's examples, the key
 * schedule against the committed KATs (both suites) and noble on random inputs, the transcript hash
 * against noble's; the X25519 answer against a noble client (fast-check), fresh keys each time, RFC
 * 7748's low-order points refused with its outputs zeroed, any 32 bytes from a client either answered or
 * refused exactly when noble refuses them; and the addon's own checks, made before any work. That the
 * agent's server runs on it: agent/handshake-wiring.test.ts.
 */

import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findPackageRoot } from '../native/index.js';
import { code } from '../test/steve-codes.js';
import { fixedRandom, hex, hkdfVectors, readVector, unhex, x25519Vectors } from '../test/vectors/steve/vectors.js';
import { deriveSessionKeys, transcriptHash, wipeSessionKeys, x25519Exchange, type SessionKeys, type TranscriptInput } from '../steve/protocol/index.js';
import { nodeHkdfSha256, nodeRandomBytes } from '../steve/server/index.js';
import { loadNativeHandshake } from './handshake-native.js';

const handshake = loadNativeHandshake();
const random = (length: number): Uint8Array => new Uint8Array(randomBytes(length));
const filled = (length: number, byte: number): Uint8Array => new Uint8Array(length).fill(byte);
const NAMES = ['c2sKey', 's2cKey', 'c2sIv', 's2cIv', 'binder', 'streamC2sKey', 'streamS2cKey'] as const;
const hexKeys = (keys: SessionKeys): Record<string, string> => Object.fromEntries(NAMES.map((name) => [name, hex(keys[name])]));

/** The addon's export itself, to reach the checks the wrapper makes first. */
const raw = (createRequire(import.meta.url)(`${findPackageRoot()}/build/Release/enclave_native.node`) as { handshake: Record<string, (...args: unknown[]) => unknown> }).handshake;

/** The error's code and class name, or undefined when `run` does not throw. */
function failure(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return `${(error as Error).name} ${(error as { code?: string }).code ?? 'no code'}`;
  }
  return undefined;
}

describe('native HKDF-SHA256 and SHA-256', () => {
  it('RFC 5869 Appendix A.1-A.3', () => {
    for (const v of hkdfVectors().cases) {
      const out = new Uint8Array(v.length);
      raw.hkdfSha256!(unhex(v.ikm), unhex(v.salt), [unhex(v.info)], [out]);
      expect(hex(out), v.name).toBe(v.okm);
    }
  });

  it('one extract, several expands: each output as a separate HKDF gives it (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 80 }),
        fc.uint8Array({ maxLength: 80 }),
        fc.array(fc.tuple(fc.uint8Array({ maxLength: 60 }), fc.integer({ min: 1, max: 200 })), { minLength: 1, maxLength: 16 }),
        (ikm, salt, outputs) => {
          const outs = outputs.map(([, length]) => new Uint8Array(length));
          raw.hkdfSha256!(ikm, salt, outputs.map(([info]) => info), outs);
          outputs.forEach(([info, length], i) => expect(hex(outs[i]!)).toBe(hex(nodeHkdfSha256(ikm, salt, info, length))));
        },
      ),
      { seed: 5869, numRuns: 100 },
    );
  });

  it('SHA-256: FIPS 180-2 examples and the empty string', () => {
    const cases: [string, string][] = [
      ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
      ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
      ['abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq', '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1'],
    ];
    for (const [text, digest] of cases) {
      const out = new Uint8Array(32);
      raw.sha256!(new TextEncoder().encode(text), out);
      expect(hex(out), text).toBe(digest);
    }
  });
});

describe('loadNativeHandshake: the key schedule and the transcript hash', () => {
  const kat = readVector<{ vectors: { suite: string; sharedSecret: string; transcriptHash: string; keys: Record<string, string> }[] }>('kat.json');

  it.each(kat.vectors.map((v) => [v.suite, v] as const))('%s KAT: the committed keys', (_suite, v) => {
    const keys = hexKeys(handshake.deriveSessionKeys(unhex(v.sharedSecret), unhex(v.transcriptHash)));
    // The committed file holds §4's five keys (the stream keys are checked against noble below).
    expect(Object.keys(v.keys).sort()).toEqual(['binder', 'c2sIv', 'c2sKey', 's2cIv', 's2cKey']);
    for (const [name, value] of Object.entries(v.keys)) expect(keys[name], name).toBe(value);
  });

  it('equals the noble schedule on random inputs, all seven outputs (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (secret, hash) => {
        expect(hexKeys(handshake.deriveSessionKeys(secret.slice(), hash))).toEqual(hexKeys(deriveSessionKeys(secret.slice(), hash)));
      }),
      { seed: 4, numRuns: 200 },
    );
  });

  it('zeroes the shared secret; the outputs live outside the heap and wipeSessionKeys zeroes them', () => {
    const secret = filled(32, 0xaa);
    const keys = handshake.deriveSessionKeys(secret, filled(32, 1));
    expect(secret.every((b) => b === 0)).toBe(true);
    expect(NAMES.map((name) => keys[name].length)).toEqual([32, 32, 4, 4, 32, 32, 32]);
    expect(new Set(NAMES.map((name) => keys[name].buffer)).size).toBe(1);
    wipeSessionKeys(keys);
    expect(new Uint8Array(keys.c2sKey.buffer).every((b) => b === 0)).toBe(true);
  });

  it('refuses a bad transcript hash with STEVE_BAD_ARGUMENT and a bad secret with STEVE_KEY, and still zeroes the secret', () => {
    const secret = filled(32, 0xaa);
    expect(code(() => handshake.deriveSessionKeys(secret, filled(31, 1)))).toBe('STEVE_BAD_ARGUMENT');
    expect(secret.every((b) => b === 0)).toBe(true);
    expect(code(() => handshake.deriveSessionKeys(filled(31, 1), filled(32, 1)))).toBe('STEVE_KEY');
    expect(code(() => handshake.deriveSessionKeys('secret' as never, filled(32, 1)))).toBe('STEVE_KEY');
  });

  it('the transcript hash equals noble\'s, both suites (fast-check, fixed seed)', () => {
    const input = (suite: TranscriptInput['suite'], seed: Uint8Array): TranscriptInput => {
      const [client, server] = suite === 'X25519' ? [32, 32] : [1216, 1120];
      const bytes = (length: number, salt: number): Uint8Array => Uint8Array.from({ length }, (_, i) => seed[(i + salt) % seed.length]! ^ i);
      return { suite, clientNonce: bytes(32, 1), clientKeyMaterial: bytes(client, 2), serverKeyMaterial: bytes(server, 3), sessionId: bytes(16, 4), contextHash: bytes(32, 5) };
    };
    fc.assert(
      fc.property(fc.constantFrom('X25519' as const, 'XWING-DRAFT10' as const), fc.uint8Array({ minLength: 1, maxLength: 64 }), (suite, seed) => {
        expect(hex(handshake.transcriptHash(input(suite, seed)))).toBe(hex(transcriptHash(input(suite, seed))));
      }),
      { seed: 180, numRuns: 50 },
    );
    expect(code(() => handshake.transcriptHash({ ...input('X25519', filled(4, 1)), sessionId: filled(15, 1) }))).toBe('STEVE_BAD_ARGUMENT');
  });
});

describe('loadNativeHandshake: the X25519 answer', () => {
  const { x25519 } = handshake;
  // u = 0 and u = 1, the order-8 point of RFC 7748's curve, and the first two with the high bit set
  // (masked, RFC 7748 §5): every scalar gives all zero.
  const LOW_ORDER = ['00'.repeat(32), `01${'00'.repeat(31)}`, 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', `${'00'.repeat(31)}80`, `01${'00'.repeat(30)}80`];

  it('agrees with a noble client, and its key is fresh each time (fast-check, fixed seed)', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (clientScalar) => {
        const client = x25519Exchange.generateClientKeyPair(fixedRandom(clientScalar));
        const server = x25519.serverRespond(client.material, nodeRandomBytes);
        expect(server.serverMaterial.length).toBe(32);
        expect(hex(x25519Exchange.clientFinish(clientScalar, server.serverMaterial))).toBe(hex(server.sharedSecret));
        seen.add(hex(server.serverMaterial));
      }),
      { seed: 7748, numRuns: 100 },
    );
    expect(seen.size).toBe(100);
  });

  it('with other randomness (fixed test bytes) it is node:crypto\'s: RFC 7748 §6.1', () => {
    const dh = x25519Vectors().diffieHellman;
    const bob = x25519.serverRespond(unhex(dh.alicePublic), fixedRandom(unhex(dh.bobPrivate)));
    expect(hex(bob.serverMaterial)).toBe(dh.bobPublic);
    expect(hex(bob.sharedSecret)).toBe(dh.shared);
  });

  it('refuses RFC 7748\'s low-order points with STEVE_KEY, its outputs zeroed', () => {
    for (const u of LOW_ORDER) {
      expect(code(() => x25519.serverRespond(unhex(u), nodeRandomBytes)), u).toBe('STEVE_KEY');
      const serverOut = filled(32, 0xff);
      const sharedOut = filled(32, 0xff);
      expect(failure(() => raw.x25519Respond!(unhex(u), serverOut, sharedOut)), u).toBe('Error STEVE_KEY');
      expect(hex(serverOut) + hex(sharedOut), u).toBe('00'.repeat(64));
    }
  });

  it('any 32 bytes from a client: answered, or refused exactly when noble refuses them (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.constantFrom(...LOW_ORDER.map(unhex))), (u) => {
        const nobleRefuses = code(() => x25519Exchange.clientFinish(random(32), u)) === 'STEVE_KEY';
        const ours = code(() => x25519.serverRespond(u, nodeRandomBytes));
        expect(ours ?? 'answered').toBe(nobleRefuses ? 'STEVE_KEY' : 'answered');
      }),
      { seed: 25519, numRuns: 300 },
    );
  });

  it('refuses a client key of the wrong length or type with STEVE_KEY', () => {
    for (const length of [0, 31, 33, 1216]) expect(code(() => x25519.serverRespond(random(length), nodeRandomBytes))).toBe('STEVE_KEY');
    expect(code(() => x25519.serverRespond([...random(32)] as unknown as Uint8Array, nodeRandomBytes))).toBe('STEVE_KEY');
  });
});

describe('the addon\'s checks, before any work', () => {
  const u8 = (n: number): Uint8Array => new Uint8Array(n);

  it('x25519Respond and sha256: three and two Uint8Arrays of fixed length', () => {
    expect(failure(() => raw.x25519Respond!(u8(31), u8(32), u8(32)))).toBe('RangeError STEVE_BAD_ARGUMENT');
    expect(failure(() => raw.x25519Respond!(u8(32), u8(33), u8(32)))).toBe('RangeError STEVE_BAD_ARGUMENT');
    expect(failure(() => raw.x25519Respond!(u8(32), u8(32), new Uint16Array(16)))).toBe('TypeError STEVE_BAD_ARGUMENT');
    expect(failure(() => raw.x25519Respond!([], u8(32), u8(32)))).toBe('TypeError STEVE_BAD_ARGUMENT');
    expect(failure(() => raw.sha256!('abc', u8(32)))).toBe('TypeError STEVE_BAD_ARGUMENT');
    expect(failure(() => raw.sha256!(u8(3), u8(31)))).toBe('RangeError STEVE_BAD_ARGUMENT');
  });

  it('hkdfSha256: 1 to 16 outputs of 1 to 8160 bytes, as many as infos; nothing written when one is wrong', () => {
    const out = filled(32, 0xee);
    const cases: [unknown[], string][] = [
      [[u8(32), u8(32), [], []], 'RangeError STEVE_BAD_ARGUMENT'],
      [[u8(32), u8(32), Array.from({ length: 17 }, () => u8(1)), Array.from({ length: 17 }, () => u8(1))], 'RangeError STEVE_BAD_ARGUMENT'],
      [[u8(32), u8(32), [u8(1), u8(1)], [out]], 'RangeError STEVE_BAD_ARGUMENT'],
      [[u8(32), u8(32), [u8(1), u8(1)], [out, u8(0)]], 'RangeError STEVE_BAD_ARGUMENT'],
      [[u8(32), u8(32), [u8(1), u8(1)], [out, u8(8161)]], 'RangeError STEVE_BAD_ARGUMENT'],
      [[u8(32), u8(32), [u8(1), 'info'], [out, u8(1)]], 'TypeError STEVE_BAD_ARGUMENT'],
      [[u8(32), u8(32), u8(1), [out]], 'TypeError STEVE_BAD_ARGUMENT'],
      [[u8(32), u8(32), [u8(1)], out], 'TypeError STEVE_BAD_ARGUMENT'],
      [['ikm', u8(32), [u8(1)], [out]], 'TypeError STEVE_BAD_ARGUMENT'],
    ];
    for (const [args, want] of cases) expect(failure(() => raw.hkdfSha256!(...args)), JSON.stringify(args.map((a) => (a instanceof Uint8Array ? a.length : a)))).toBe(want);
    expect(out.every((b) => b === 0xee)).toBe(true);
    const largest = u8(8160);
    raw.hkdfSha256!(u8(32), u8(32), [u8(1)], [largest]);
    expect(hex(largest)).toBe(hex(nodeHkdfSha256(u8(32), u8(32), u8(1), 8160)));
  });
});
