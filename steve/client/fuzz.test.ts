/**
 * Hostile answers (fast-check, fixed seeds): random bytes and mutations of a valid answer in place of the
 * session response, the confirmation and the application response. The client must only ever reject with
 * a SteveClientError of a known code (never a TypeError, never a hang), and nothing may be sent after a
 * session answer it did not accept.
 */

import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { mutate, mutationArbitrary, type Mutation } from '../../test/mutations.js';
import { createFakeServer, createMockAttester, createTestClient, type MockAttester } from '../../test/steve-client-fixtures.js';
import { SteveClientError, STEVE_CLIENT_ERROR_CODES } from './index.js';

let attester: MockAttester;

beforeAll(() => {
  attester = createMockAttester();
});

/** Runs one request and returns the code it failed with, or 'ok'; anything but a coded error fails the test. */
async function outcome(run: Promise<Response>): Promise<string> {
  try {
    await run;
    return 'ok';
  } catch (error) {
    if (!(error instanceof SteveClientError)) throw error;
    expect(STEVE_CLIENT_ERROR_CODES).toContain(error.code);
    return error.code;
  }
}

/** Either random bytes in place of the answer, or mutations applied to the real answer of this session. */
type Damage = { kind: 'random'; bytes: Uint8Array } | { kind: 'mutate'; mutations: Mutation[] };
const damageArbitrary: fc.Arbitrary<Damage> = fc.oneof(
  fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ maxLength: 512 }) }),
  fc.record({ kind: fc.constant('mutate' as const), mutations: fc.array(mutationArbitrary, { minLength: 1, maxLength: 4 }) }),
);

/** Applies `damage` to `real`; `changed` says whether the bytes differ (a mutation may set a byte to itself). */
function damaged(real: Uint8Array, damage: Damage): { bytes: Uint8Array; changed: boolean } {
  const bytes = damage.kind === 'random' ? damage.bytes : damage.mutations.reduce((out, m) => mutate(out, m), real);
  return { bytes, changed: bytes.length !== real.length || bytes.some((b, i) => b !== real[i]) };
}

describe('hostile answers give only coded errors', () => {
  it('as the session response: nothing is confirmed or requested', async () => {
    await fc.assert(
      fc.asyncProperty(damageArbitrary, async (damage) => {
        const server = createFakeServer({ suite: 'X25519', attester });
        let changed = true;
        server.hooks.sessionAnswer = (real) => {
          const out = damaged(real, damage);
          changed = out.changed;
          return out.bytes;
        };
        const code = await outcome(createTestClient(server, attester).request('/'));
        if (!changed) return;
        expect(code).not.toBe('ok');
        expect(server.hits.confirm + server.hits.request).toBe(0);
      }),
      { seed: 0x5e55, numRuns: 150 },
    );
  });

  it('as the confirmation: no application request', async () => {
    await fc.assert(
      fc.asyncProperty(damageArbitrary, async (damage) => {
        const server = createFakeServer({ suite: 'X25519', attester });
        let changed = true;
        server.hooks.confirmAnswer = (real) => {
          const out = damaged(real, damage);
          changed = out.changed;
          return out.bytes;
        };
        const code = await outcome(createTestClient(server, attester).request('/'));
        if (!changed) return;
        expect(code).not.toBe('ok');
        expect(server.hits.request).toBe(0);
      }),
      { seed: 0xc0f, numRuns: 150 },
    );
  });

  it('as the application response', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const client = createTestClient(server, attester);
    await client.request('/');
    await fc.assert(
      fc.asyncProperty(damageArbitrary, async (damage) => {
        let changed = true;
        server.hooks.requestAnswer = (real) => {
          const out = damaged(real, damage);
          changed = out.changed;
          return out.bytes;
        };
        const code = await outcome(client.request('/'));
        if (changed) expect(code).not.toBe('ok');
      }),
      { seed: 0xa99, numRuns: 200 },
    );
  });
});
