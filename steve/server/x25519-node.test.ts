/**
 * x25519-node.ts against RFC 7748 (§5.2 scalar multiplication, the iterated test to 1,000, §6.1
 * Diffie-Hellman) and against the protocol's noble `x25519Exchange`: same material and secrets from the
 * same random bytes, in both roles, including peer keys with the high bit set (masked, §5). Low-order
 * peers (all-zero output) and wrong lengths are STEVE_KEY.
 */

import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { code } from '../../test/steve-codes.js';
import { fixedRandom, hex, unhex, x25519Vectors } from '../../test/vectors/steve/vectors.js';
import { x25519Exchange } from '../protocol/index.js';
import { nodeRandomBytes } from './secret-bytes.js';
import { nodeX25519Exchange, x25519PrivateKey, x25519PublicBytes, x25519SharedSecret } from './x25519-node.js';

const random = (length: number): Uint8Array => new Uint8Array(randomBytes(length));

describe('nodeX25519Exchange (RFC 7748)', () => {
  const vectors = x25519Vectors();

  it('§5.2 scalar multiplications', () => {
    for (const v of vectors.scalarMult) expect(hex(nodeX25519Exchange.clientFinish(unhex(v.scalar), unhex(v.u)))).toBe(v.output);
  });

  it('§5.2 iterated test, 1 and 1,000 iterations', () => {
    let k = unhex(vectors.iterated.start);
    let u = unhex(vectors.iterated.start);
    for (let i = 1; i <= 1000; i++) {
      const next = x25519SharedSecret(x25519PrivateKey(k), u);
      u = k;
      k = next;
      if (i === 1) expect(hex(k)).toBe(vectors.iterated.after1);
    }
    expect(hex(k)).toBe(vectors.iterated.after1000);
  });

  it('§6.1 Diffie-Hellman: public keys and the shared secret, both roles', () => {
    const dh = vectors.diffieHellman;
    const alice = nodeX25519Exchange.generateClientKeyPair(fixedRandom(unhex(dh.alicePrivate)));
    expect(hex(alice.material)).toBe(dh.alicePublic);
    const bob = nodeX25519Exchange.serverRespond(alice.material, fixedRandom(unhex(dh.bobPrivate)));
    expect(hex(bob.serverMaterial)).toBe(dh.bobPublic);
    expect(hex(bob.sharedSecret)).toBe(dh.shared);
    expect(hex(nodeX25519Exchange.clientFinish(unhex(dh.alicePrivate), unhex(dh.bobPublic)))).toBe(dh.shared);
  });

  it('agrees with the noble exchange for the same random bytes, both roles (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (clientScalar, serverScalar) => {
        const ours = nodeX25519Exchange.generateClientKeyPair(fixedRandom(clientScalar));
        const theirs = x25519Exchange.generateClientKeyPair(fixedRandom(clientScalar));
        expect(hex(ours.material)).toBe(hex(theirs.material));
        let nodeServer;
        try {
          nodeServer = nodeX25519Exchange.serverRespond(theirs.material, fixedRandom(serverScalar));
        } catch (error) {
          // Only a low-order client key (never from a clamped scalar) may fail; noble must agree.
          expect(code(() => x25519Exchange.serverRespond(theirs.material, fixedRandom(serverScalar)))).toBe('STEVE_KEY');
          throw error;
        }
        const nobleServer = x25519Exchange.serverRespond(ours.material, fixedRandom(serverScalar));
        expect(hex(nodeServer.serverMaterial)).toBe(hex(nobleServer.serverMaterial));
        expect(hex(nodeServer.sharedSecret)).toBe(hex(nobleServer.sharedSecret));
        expect(hex(x25519Exchange.clientFinish(clientScalar, nodeServer.serverMaterial))).toBe(hex(nodeServer.sharedSecret));
      }),
      { seed: 7748, numRuns: 100 },
    );
  });

  it('with the system generator, a key made inside OpenSSL: fresh each time, and the noble client agrees', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const client = x25519Exchange.generateClientKeyPair(random);
      const server = nodeX25519Exchange.serverRespond(client.material, nodeRandomBytes);
      expect(server.serverMaterial.length).toBe(32);
      expect(hex(x25519Exchange.clientFinish(client.secret, server.serverMaterial))).toBe(hex(server.sharedSecret));
      seen.add(hex(server.serverMaterial));
    }
    expect(seen.size).toBe(20);
    for (const u of [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))]) expect(code(() => nodeX25519Exchange.serverRespond(u, nodeRandomBytes))).toBe('STEVE_KEY');
  });

  it('masks the most significant bit of a peer key as noble does (RFC 7748 §5)', () => {
    for (let i = 0; i < 20; i++) {
      const scalar = random(32);
      const peer = random(32);
      peer[31]! |= 0x80;
      expect(hex(nodeX25519Exchange.clientFinish(scalar, peer))).toBe(hex(x25519Exchange.clientFinish(scalar, peer)));
    }
  });

  it('refuses low-order peer keys (all-zero output) with STEVE_KEY', () => {
    // u = 0 and u = 1, and the order-8 point of RFC 7748's curve: every scalar gives all zero.
    const lowOrder = [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31)), unhex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800')];
    for (const u of lowOrder) {
      expect(code(() => nodeX25519Exchange.serverRespond(u, random)), hex(u)).toBe('STEVE_KEY');
      expect(code(() => nodeX25519Exchange.clientFinish(random(32), u)), hex(u)).toBe('STEVE_KEY');
      expect(code(() => x25519Exchange.clientFinish(random(32), u)), `noble ${hex(u)}`).toBe('STEVE_KEY');
    }
  });

  it('refuses wrong lengths and types', () => {
    for (const length of [0, 31, 33, 1216]) {
      expect(code(() => nodeX25519Exchange.serverRespond(random(length), random))).toBe('STEVE_KEY');
      expect(code(() => nodeX25519Exchange.clientFinish(random(32), random(length)))).toBe('STEVE_KEY');
      expect(code(() => nodeX25519Exchange.clientFinish(random(length), random(32)))).toBe('STEVE_KEY');
    }
    expect(code(() => nodeX25519Exchange.serverRespond([...random(32)] as unknown as Uint8Array, random))).toBe('STEVE_KEY');
    expect(code(() => nodeX25519Exchange.serverRespond(random(32), (() => random(31)) as (n: number) => Uint8Array))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => nodeX25519Exchange.serverRespond(random(32), 'x' as unknown as (n: number) => Uint8Array))).toBe('STEVE_BAD_ARGUMENT');
  });

  it('returns the secret it drew as its own copy, and the public key of that secret', () => {
    const scalar = random(32);
    const held = scalar.slice();
    const pair = nodeX25519Exchange.generateClientKeyPair(() => held);
    held.fill(0);
    // A copy: the random source's buffer (a pool, say) may be reused without changing the key.
    expect(hex(pair.secret)).toBe(hex(scalar));
    expect(hex(x25519PublicBytes(x25519PrivateKey(scalar)))).toBe(hex(pair.material));
  });
});
