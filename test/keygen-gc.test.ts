/**
 * No key the project generates with node:crypto is ever exported as JWK, by itself or through a public key
 * made from it. Node 20 exports JWK holding the key's mutex while it allocates; when a garbage collection
 * there frees the finished generation job, the job's destructor takes the same mutex and the thread waits
 * for itself forever (steve/server/x25519-node.ts). Seen as an agent at 0 % CPU that answered nothing;
 * under `node --gc-interval=N` a loop of the old serverRespond stopped in five of nine runs of 15 to 20 s,
 * after 45,000 to 160,000 handshakes. That is too rare to fail a test reliably, so this test checks the rule instead: node:crypto is wrapped so
 * that every KeyObject from generateKeyPairSync (and every public key createPublicKey makes from one) is
 * marked, and a JWK export of a marked key throws; then every key generation of the project runs.
 */

import { createRequire, syncBuiltinESMExports } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cryptoModule = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
const generated = new WeakSet<object>();
const restore: Array<() => void> = [];

function wrap<T extends object, K extends keyof T>(target: T, name: K, make: (original: T[K]) => T[K]): void {
  const original = target[name];
  target[name] = make(original);
  restore.push(() => (target[name] = original));
}

beforeAll(() => {
  const { KeyObject } = cryptoModule;
  const sample = cryptoModule.generateKeyPairSync('x25519');
  wrap(cryptoModule, 'generateKeyPairSync', (original) =>
    function (this: unknown, ...args: unknown[]) {
      const pair = (original as (...a: unknown[]) => { publicKey: unknown; privateKey: unknown }).apply(this, args);
      for (const key of [pair.publicKey, pair.privateKey]) if (key instanceof KeyObject) generated.add(key);
      return pair;
    } as typeof original,
  );
  wrap(cryptoModule, 'createPublicKey', (original) =>
    function (this: unknown, input: unknown) {
      const made = (original as (i: unknown) => object).call(this, input);
      const source = input instanceof KeyObject ? input : (input as { key?: unknown } | null)?.key;
      if (source instanceof KeyObject && generated.has(source)) generated.add(made);
      return made;
    } as typeof original,
  );
  for (const prototype of new Set([Object.getPrototypeOf(sample.publicKey), Object.getPrototypeOf(sample.privateKey)])) {
    wrap(prototype as { export: (options?: { format?: string }) => unknown }, 'export', (original) =>
      function (this: object, options?: { format?: string }) {
        if (options?.format === 'jwk' && generated.has(this)) throw new Error('a generated KeyObject exported as JWK (steve/server/x25519-node.ts)');
        return original.call(this, options);
      },
    );
  }
  syncBuiltinESMExports();
});

afterAll(() => {
  for (const undo of restore.reverse()) undo();
  syncBuiltinESMExports();
});

describe('generated keys are never exported as JWK', () => {
  it('the rule is enforced here: a JWK export of a generated key, or of its public key, throws', () => {
    const { privateKey, publicKey } = cryptoModule.generateKeyPairSync('x25519');
    expect(() => privateKey.export({ format: 'jwk' })).toThrow('exported as JWK');
    expect(() => publicKey.export({ format: 'jwk' })).toThrow('exported as JWK');
    expect(() => cryptoModule.createPublicKey(privateKey).export({ format: 'jwk' })).toThrow('exported as JWK');
    expect(cryptoModule.createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).length).toBe(44);
  });

  it('X25519 and X-Wing handshakes (serverRespond), v1\'s key agreement (ephemeralKeyPair)', async () => {
    const { nodeX25519Exchange, nodeXwingExchange, nodeRandomBytes } = await import('../steve/server/index.js');
    const { ephemeralKeyPair, x25519SharedSecret } = await import('../steve/server/x25519-node.js');
    for (const exchange of [nodeX25519Exchange, nodeXwingExchange]) {
      const client = exchange.generateClientKeyPair(nodeRandomBytes);
      const { serverMaterial, sharedSecret } = exchange.serverRespond(client.material, nodeRandomBytes);
      expect(Buffer.from(exchange.clientFinish(client.secret, serverMaterial)).equals(Buffer.from(sharedSecret))).toBe(true);
    }
    const a = ephemeralKeyPair(nodeRandomBytes);
    const b = ephemeralKeyPair(nodeRandomBytes);
    expect(Buffer.from(x25519SharedSecret(a.privateKey, b.publicBytes)).equals(Buffer.from(x25519SharedSecret(b.privateKey, a.publicBytes)))).toBe(true);
  });

  it('the mock NSM\'s P-384 chain and its renewed leaf, and the agent\'s Ed25519 identity', async () => {
    const { createMockPki, renewMockLeaf } = await import('../nsm/index.js');
    const { identityKey } = await import('../agent/agent.js');
    const pki = createMockPki();
    expect(pki.intermediates.length).toBe(3);
    expect(renewMockLeaf(pki).leaf.der.length).toBeGreaterThan(0);
    expect(identityKey().verifyingKey.length).toBe(32);
  });
});
