/**
 * kem.ts against other people's vectors and an independent implementation:
 * - X25519: RFC 7748 §5.2 (two scalar multiplications, the iterated test to 1,000) and §6.1 (the
 *   Diffie-Hellman exchange), driven through x25519Exchange; random exchanges cross-checked against
 *   node:crypto; all-zero output and wrong lengths refused.
 * - X-Wing: the three vectors of draft-connolly-cfrg-xwing-kem-10 Appendix C through xwingExchange (pk,
 *   ct, ss byte-exact, and decapsulation), and the draft's combiner recomputed by hand from ML-KEM-768,
 *   X25519, SHAKE256 and SHA3-256 so the library preset is not trusted blindly.
 * - One conformance suite run on both exchanges.
 */

import { createPrivateKey, createPublicKey, diffieHellman, randomBytes } from 'node:crypto';
import { x25519 } from '@noble/curves/ed25519.js';
import { sha3_256, shake256 } from '@noble/hashes/sha3.js';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fixedRandom, hex, unhex, x25519Vectors, xwingVectors } from '../../test/vectors/steve/vectors.js';
import { SteveError } from '../errors.js';
import { keyExchangeFor, x25519Exchange, xwingExchange, type KeyExchange } from './kem.js';

const random = (length: number): Uint8Array => new Uint8Array(randomBytes(length));

function expectSteveError(run: () => unknown, code: string): void {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(SteveError);
    expect((error as SteveError).code).toBe(code);
    return;
  }
  expect.unreachable(`expected ${code}`);
}

describe('X25519 (RFC 7748)', () => {
  const vectors = x25519Vectors();

  it('§5.2 scalar multiplication vectors', () => {
    for (const v of vectors.scalarMult) {
      expect(hex(x25519Exchange.clientFinish(unhex(v.scalar), unhex(v.u)))).toBe(v.output);
    }
  });

  it('§5.2 iterated test: after 1 and 1,000 iterations', () => {
    let k = unhex(vectors.iterated.start);
    let u = unhex(vectors.iterated.start);
    for (let i = 1; i <= 1000; i++) {
      const next = x25519Exchange.clientFinish(k, u);
      u = k;
      k = next;
      if (i === 1) expect(hex(k)).toBe(vectors.iterated.after1);
    }
    expect(hex(k)).toBe(vectors.iterated.after1000);
  });

  it('§6.1 Diffie-Hellman: Alice as client, Bob as server', () => {
    const dh = vectors.diffieHellman;
    const alice = x25519Exchange.generateClientKeyPair(fixedRandom(unhex(dh.alicePrivate)));
    expect(hex(alice.material)).toBe(dh.alicePublic);
    expect(hex(alice.secret)).toBe(dh.alicePrivate);
    const bob = x25519Exchange.serverRespond(alice.material, fixedRandom(unhex(dh.bobPrivate)));
    expect(hex(bob.serverMaterial)).toBe(dh.bobPublic);
    expect(hex(bob.sharedSecret)).toBe(dh.shared);
    expect(hex(x25519Exchange.clientFinish(alice.secret, bob.serverMaterial))).toBe(dh.shared);
  });

  it('agrees with node:crypto on random key pairs', () => {
    const PKCS8 = unhex('302e020100300506032b656e04220420');
    const SPKI = unhex('302a300506032b656e032100');
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (a, b) => {
        const client = x25519Exchange.generateClientKeyPair(fixedRandom(a));
        const server = x25519Exchange.serverRespond(client.material, fixedRandom(b));
        const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8, a]), format: 'der', type: 'pkcs8' });
        const publicKey = createPublicKey({ key: Buffer.concat([SPKI, server.serverMaterial]), format: 'der', type: 'spki' });
        expect(hex(new Uint8Array(diffieHellman({ privateKey, publicKey })))).toBe(hex(server.sharedSecret));
        const nodeClientPublic = createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(SPKI.length);
        expect(hex(new Uint8Array(nodeClientPublic))).toBe(hex(client.material));
      }),
      { seed: 7748, numRuns: 50 },
    );
  });

  it('refuses low-order peer keys (all-zero output) with STEVE_KEY', () => {
    // u = 0 and u = 1 are low-order points: X25519 of any scalar with them is all zero (RFC 7748 §6.1).
    for (const u of [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))]) {
      expectSteveError(() => x25519Exchange.serverRespond(u, () => random(32)), 'STEVE_KEY');
      expectSteveError(() => x25519Exchange.clientFinish(random(32), u), 'STEVE_KEY');
    }
  });

  it('refuses wrong lengths with STEVE_KEY', () => {
    for (const length of [0, 31, 33, 1216]) {
      expectSteveError(() => x25519Exchange.serverRespond(new Uint8Array(length).fill(9), () => random(32)), 'STEVE_KEY');
      expectSteveError(() => x25519Exchange.clientFinish(new Uint8Array(length).fill(9), random(32)), 'STEVE_KEY');
      expectSteveError(() => x25519Exchange.clientFinish(random(32), new Uint8Array(length).fill(9)), 'STEVE_KEY');
    }
  });
});

describe('X-Wing draft-10 (draft-connolly-cfrg-xwing-kem-10, Appendix C)', () => {
  const vectors = xwingVectors();
  const LABEL = unhex('5c2e2f2f5e5c');

  it('has the draft\'s three vectors', () => {
    expect(vectors).toHaveLength(3);
  });

  it.each(vectors.map((v, i) => [i, v] as const))('vector %i: pk, ct and ss byte-exact, and decapsulation', (_i, v) => {
    const client = xwingExchange.generateClientKeyPair(fixedRandom(unhex(v.seed)));
    expect(client.material).toHaveLength(1216);
    expect(hex(client.material)).toBe(v.pk);
    expect(hex(client.secret)).toBe(v.sk);
    const server = xwingExchange.serverRespond(client.material, fixedRandom(unhex(v.eseed)));
    expect(server.serverMaterial).toHaveLength(1120);
    expect(hex(server.serverMaterial)).toBe(v.ct);
    expect(hex(server.sharedSecret)).toBe(v.ss);
    expect(hex(xwingExchange.clientFinish(unhex(v.sk), unhex(v.ct)))).toBe(v.ss);
  });

  it.each(vectors.map((v, i) => [i, v] as const))('vector %i: the draft-10 combiner recomputed by hand', (_i, v) => {
    // expandDecapsulationKey: SHAKE256(sk, 96 bytes); ML-KEM-768 KeyGen_internal(d = [0:32], z = [32:64]); sk_X = [64:96].
    const expanded = shake256(unhex(v.sk), { dkLen: 96 });
    const mlkem = ml_kem768.keygen(expanded.subarray(0, 64));
    const skX = expanded.subarray(64, 96);
    const pkX = x25519.getPublicKey(skX);
    expect(hex(mlkem.publicKey) + hex(pkX)).toBe(v.pk);
    // EncapsulateDerand: ek_X = eseed[32:64]; ML-KEM with m = eseed[0:32].
    const eseed = unhex(v.eseed);
    const ekX = eseed.subarray(32, 64);
    const ctX = x25519.getPublicKey(ekX);
    const ssX = x25519.getSharedSecret(ekX, pkX);
    const { cipherText: ctM, sharedSecret: ssM } = ml_kem768.encapsulate(mlkem.publicKey, eseed.subarray(0, 32));
    expect(hex(ctM) + hex(ctX)).toBe(v.ct);
    // Combiner: SHA3-256(ss_M || ss_X || ct_X || pk_X || XWingLabel), label last.
    const ss = sha3_256(Uint8Array.from([...ssM, ...ssX, ...ctX, ...pkX, ...LABEL]));
    expect(hex(ss)).toBe(v.ss);
    // And the decapsulation side from the expanded secret.
    expect(hex(ml_kem768.decapsulate(ctM, mlkem.secretKey))).toBe(hex(ssM));
  });

  it('refuses wrong lengths and a malformed encapsulation key with STEVE_KEY', () => {
    const client = xwingExchange.generateClientKeyPair(random);
    for (const length of [0, 32, 1184, 1215, 1217]) {
      expectSteveError(() => xwingExchange.serverRespond(new Uint8Array(length), () => random(64)), 'STEVE_KEY');
    }
    for (const length of [0, 32, 1088, 1119, 1121]) {
      expectSteveError(() => xwingExchange.clientFinish(client.secret, new Uint8Array(length)), 'STEVE_KEY');
    }
    expectSteveError(() => xwingExchange.clientFinish(new Uint8Array(31), new Uint8Array(1120)), 'STEVE_KEY');
    // Coefficients of 0xfff are >= q = 3329: FIPS 203 §7.2's modulus check refuses the key.
    const bad = client.material.slice();
    bad.fill(0xff, 0, 1184);
    expectSteveError(() => xwingExchange.serverRespond(bad, () => random(64)), 'STEVE_KEY');
    // A low-order X25519 component in the encapsulation key or in the ciphertext.
    const lowOrderKey = client.material.slice();
    lowOrderKey.fill(0, 1184);
    expectSteveError(() => xwingExchange.serverRespond(lowOrderKey, () => random(64)), 'STEVE_KEY');
    const server = xwingExchange.serverRespond(client.material, random);
    const lowOrderCt = server.serverMaterial.slice();
    lowOrderCt.fill(0, 1088);
    expectSteveError(() => xwingExchange.clientFinish(client.secret, lowOrderCt), 'STEVE_KEY');
  });

  it('a tampered ML-KEM ciphertext gives a different secret (implicit rejection), not an error', () => {
    const client = xwingExchange.generateClientKeyPair(random);
    const server = xwingExchange.serverRespond(client.material, random);
    const tampered = server.serverMaterial.slice();
    tampered[0]! ^= 1;
    expect(hex(xwingExchange.clientFinish(client.secret, tampered))).not.toBe(hex(server.sharedSecret));
  });
});

describe.each([
  ['X25519', x25519Exchange],
  ['XWING-DRAFT10', xwingExchange],
] as const)('KeyExchange conformance: %s', (suite, exchange: KeyExchange) => {
  it('is the one keyExchangeFor returns, with the §1 sizes', () => {
    expect(keyExchangeFor(suite)).toBe(exchange);
    expect(exchange.suite).toBe(suite);
    expect([exchange.clientMaterialBytes, exchange.serverMaterialBytes]).toEqual(suite === 'X25519' ? [32, 32] : [1216, 1120]);
  });

  it('client and server agree on a 32-byte secret', () => {
    for (let i = 0; i < 5; i++) {
      const client = exchange.generateClientKeyPair(random);
      expect(client.material).toHaveLength(exchange.clientMaterialBytes);
      const server = exchange.serverRespond(client.material, random);
      expect(server.serverMaterial).toHaveLength(exchange.serverMaterialBytes);
      expect(server.sharedSecret).toHaveLength(32);
      expect(hex(exchange.clientFinish(client.secret, server.serverMaterial))).toBe(hex(server.sharedSecret));
    }
  });

  it('draws exactly once, with the documented length, and is deterministic in it', () => {
    const asked: number[] = [];
    const counting = (length: number): Uint8Array => {
      asked.push(length);
      return new Uint8Array(length).fill(7);
    };
    const a = exchange.generateClientKeyPair(counting);
    const b = exchange.generateClientKeyPair(counting);
    expect(hex(a.material)).toBe(hex(b.material));
    const s1 = exchange.serverRespond(a.material, counting);
    const s2 = exchange.serverRespond(a.material, counting);
    expect(hex(s1.serverMaterial)).toBe(hex(s2.serverMaterial));
    expect(asked).toEqual([exchange.clientRandomBytes, exchange.clientRandomBytes, exchange.serverRandomBytes, exchange.serverRandomBytes]);
  });

  it('does not keep or wipe the caller\'s random buffer', () => {
    const pool = new Uint8Array(64).fill(5);
    const fromPool = (length: number): Uint8Array => pool.subarray(0, length);
    const client = exchange.generateClientKeyPair(fromPool);
    exchange.serverRespond(client.material, fromPool);
    expect(pool.every((byte) => byte === 5)).toBe(true);
    pool.fill(6);
    // The client's secret is its own copy.
    expect(client.secret.every((byte) => byte === 5)).toBe(true);
  });

  it('refuses a random() that returns the wrong length or type with STEVE_BAD_ARGUMENT', () => {
    expectSteveError(() => exchange.generateClientKeyPair(() => new Uint8Array(5)), 'STEVE_BAD_ARGUMENT');
    expectSteveError(() => exchange.generateClientKeyPair((() => 'nope') as never), 'STEVE_BAD_ARGUMENT');
    const client = exchange.generateClientKeyPair(random);
    expectSteveError(() => exchange.serverRespond(client.material, () => new Uint8Array(1)), 'STEVE_BAD_ARGUMENT');
  });

  it('refuses non-byte inputs with a SteveError', () => {
    expectSteveError(() => exchange.serverRespond('x' as never, random), 'STEVE_KEY');
    expectSteveError(() => exchange.clientFinish(null as never, new Uint8Array(exchange.serverMaterialBytes)), 'STEVE_KEY');
  });
});

it('keyExchangeFor refuses an unknown suite with STEVE_SUITE', () => {
  expectSteveError(() => keyExchangeFor('X448' as never), 'STEVE_SUITE');
});
