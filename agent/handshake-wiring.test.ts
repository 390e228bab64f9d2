/**
 * The agent's STEVE server answers X25519 handshakes with the native exchange (agent/handshake-native.ts),
 * not node:crypto's: node:crypto is wrapped before anything of ours loads, so that every X25519 key it
 * generates is counted; node:crypto's own exchange is seen to count one, and a handshake with the real
 * agent (mock NSM) none. Without the agent's `handshake` option the server falls back to node:crypto and
 * this fails.
 */

import { createRequire, syncBuiltinESMExports } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cryptoModule = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
const original = cryptoModule.generateKeyPairSync;
let x25519Keys = 0;

beforeAll(() => {
  cryptoModule.generateKeyPairSync = function (this: unknown, ...args: unknown[]) {
    if (args[0] === 'x25519') x25519Keys += 1;
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  syncBuiltinESMExports();
});

afterAll(() => {
  cryptoModule.generateKeyPairSync = original;
  syncBuiltinESMExports();
});

describe('the agent\'s STEVE server', () => {
  it('answers an X25519 handshake with the native exchange: node:crypto generates no X25519 key for it', async () => {
    const { nodeHandshake, nodeRandomBytes } = await import('../steve/server/index.js');
    const { x25519Exchange } = await import('../steve/protocol/index.js');
    const { establish, random, startStack } = await import('../test/steve/harness.js');
    // The count works: node:crypto's exchange generates one key.
    nodeHandshake.x25519.serverRespond(x25519Exchange.generateClientKeyPair(random).material, nodeRandomBytes);
    expect(x25519Keys).toBe(1);
    const stack = await startStack({ upstream: 'http://127.0.0.1:9/' });
    try {
      const session = await establish(stack);
      expect(session.id.length).toBe(16);
      expect(session.keys.c2sKey.length).toBe(32);
      expect(x25519Keys).toBe(1);
    } finally {
      await stack.stop();
    }
  });
});
