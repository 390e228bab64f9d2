/**
 * xwing-node.ts against draft-connolly-cfrg-xwing-kem-10 Appendix C (ct and ss byte-exact from the
 * draft's eseed) and against the protocol's noble `xwingExchange` on random inputs (fast-check, fixed
 * seed), both roles; the same STEVE_KEY refusals (wrong lengths, a malformed ML-KEM key, a low-order
 * X25519 component); and what it wipes: the drawn eseed, its own intermediates.
 */

import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { code } from '../../test/steve-codes.js';
import { fixedRandom, hex, unhex, xwingVectors } from '../../test/vectors/steve/vectors.js';
import { xwingExchange } from '../protocol/index.js';
import { nodeRandomBytes } from './secret-bytes.js';
import { nodeXwingExchange } from './xwing-node.js';

const random = (length: number): Uint8Array => new Uint8Array(randomBytes(length));

describe('nodeXwingExchange (X-Wing draft-10)', () => {
  it.each(xwingVectors().map((v, i) => [i, v] as const))('Appendix C vector %i: ct and ss from the eseed', (_i, v) => {
    const server = nodeXwingExchange.serverRespond(unhex(v.pk), fixedRandom(unhex(v.eseed)));
    expect(hex(server.serverMaterial)).toBe(v.ct);
    expect(hex(server.sharedSecret)).toBe(v.ss);
    expect(hex(nodeXwingExchange.clientFinish(unhex(v.sk), server.serverMaterial))).toBe(v.ss);
  });

  it('agrees with the noble exchange for the same random bytes (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 64, maxLength: 64 }), (seed, eseed) => {
        const client = xwingExchange.generateClientKeyPair(fixedRandom(seed));
        const ours = nodeXwingExchange.serverRespond(client.material, fixedRandom(eseed));
        const theirs = xwingExchange.serverRespond(client.material, fixedRandom(eseed));
        expect(hex(ours.serverMaterial)).toBe(hex(theirs.serverMaterial));
        expect(hex(ours.sharedSecret)).toBe(hex(theirs.sharedSecret));
        expect(hex(xwingExchange.clientFinish(client.secret, ours.serverMaterial))).toBe(hex(ours.sharedSecret));
      }),
      { seed: 10, numRuns: 30 },
    );
  });

  it('with the system generator (X25519 half made inside OpenSSL), the noble client agrees', () => {
    for (let i = 0; i < 5; i++) {
      const client = xwingExchange.generateClientKeyPair(random);
      const server = nodeXwingExchange.serverRespond(client.material, nodeRandomBytes);
      expect(server.serverMaterial).toHaveLength(nodeXwingExchange.serverMaterialBytes);
      expect(hex(xwingExchange.clientFinish(client.secret, server.serverMaterial))).toBe(hex(server.sharedSecret));
    }
  });

  it('the shared secret has an ArrayBuffer of its own; the drawn eseed is zeroed', () => {
    const client = xwingExchange.generateClientKeyPair(random);
    const eseed = random(64);
    const server = nodeXwingExchange.serverRespond(client.material, () => eseed);
    expect(eseed.every((b) => b === 0)).toBe(true);
    expect(server.sharedSecret.byteOffset).toBe(0);
    expect(server.sharedSecret.buffer.byteLength).toBe(32);
    expect(server.serverMaterial).toHaveLength(nodeXwingExchange.serverMaterialBytes);
  });

  it('refuses what the noble exchange refuses with STEVE_KEY; a broken random with STEVE_BAD_ARGUMENT', () => {
    const client = xwingExchange.generateClientKeyPair(random);
    for (const length of [0, 32, 1184, 1215, 1217]) expect(code(() => nodeXwingExchange.serverRespond(new Uint8Array(length), random)), String(length)).toBe('STEVE_KEY');
    expect(code(() => nodeXwingExchange.serverRespond('key' as never, random))).toBe('STEVE_KEY');
    // Coefficients of 0xfff are >= q = 3329: FIPS 203 §7.2's modulus check refuses the key.
    const bad = client.material.slice();
    bad.fill(0xff, 0, 1184);
    expect(code(() => nodeXwingExchange.serverRespond(bad, random))).toBe('STEVE_KEY');
    expect(code(() => xwingExchange.serverRespond(bad, random))).toBe('STEVE_KEY');
    // Low-order X25519 components: u = 0 and u = 1 give an all-zero ss_X.
    for (const u of [0, 1]) {
      const lowOrder = client.material.slice();
      lowOrder.fill(0, 1184);
      lowOrder[1184] = u;
      const eseed = random(64);
      expect(code(() => nodeXwingExchange.serverRespond(lowOrder, () => eseed)), `u = ${u}`).toBe('STEVE_KEY');
      expect(eseed.every((b) => b === 0), `u = ${u}: eseed wiped on failure`).toBe(true);
      expect(code(() => xwingExchange.serverRespond(lowOrder, random)), `u = ${u}`).toBe('STEVE_KEY');
    }
    expect(code(() => nodeXwingExchange.serverRespond(client.material, () => new Uint8Array(63)))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => nodeXwingExchange.serverRespond(client.material, 'random' as never))).toBe('STEVE_BAD_ARGUMENT');
  });

  it('is the X-Wing exchange, with its sizes and draws', () => {
    expect([nodeXwingExchange.suite, nodeXwingExchange.clientMaterialBytes, nodeXwingExchange.serverMaterialBytes]).toEqual(['XWING-DRAFT10', 1216, 1120]);
    expect([nodeXwingExchange.clientRandomBytes, nodeXwingExchange.serverRandomBytes]).toEqual([xwingExchange.clientRandomBytes, xwingExchange.serverRandomBytes]);
    const asked: number[] = [];
    const client = xwingExchange.generateClientKeyPair(random);
    nodeXwingExchange.serverRespond(client.material, (length) => {
      asked.push(length);
      return random(length);
    });
    expect(asked).toEqual([64]);
  });
});
