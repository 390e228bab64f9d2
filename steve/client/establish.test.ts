/**
 * Session establishment against a fake server (test/steve-client-fixtures.ts): the happy path for both
 * suites, then every verification stage failing on its own (root, nonce, a document from another
 * session, a relayed session, each of the five binding fields, pinned PCRs, TOFU, the confirmation, the
 * suite), each with its code and stage, and never an application request sent after it.
 */

import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { NsmError } from '../../nsm/verifier.js';
import {
  createFakeServer,
  createMockAttester,
  createMockPki,
  createTestClient,
  memoryTofuStore,
  seededRandom,
  type FakeServer,
  type MockAttester,
} from '../../test/steve-client-fixtures.js';
import { encodeSessionResponse, keyExchangeFor, SUITES, type Binding } from '../protocol/index.js';
import { createSteveClient, SteveClientError, type SteveClientErrorCode, type SteveClientStage } from './index.js';

let attester: MockAttester;
let otherAttester: MockAttester;

beforeAll(() => {
  attester = createMockAttester();
  // Same PKI, other image: PCR0 differs.
  const pcrs = new Map(attester.profile.pcrs);
  pcrs.set(0, new Uint8Array(48).fill(7));
  otherAttester = createMockAttester({ pki: attester.pki, pcrs });
});

async function failure(run: Promise<unknown>): Promise<SteveClientError> {
  const error = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SteveClientError);
  return error as SteveClientError;
}

/** Awaits `run`'s coded failure and checks that no application request was sent meanwhile. */
async function expectFailure(server: FakeServer, run: Promise<unknown>, code: SteveClientErrorCode, stage: SteveClientStage): Promise<SteveClientError> {
  const requestsBefore = server.hits.request;
  const error = await failure(run);
  expect({ code: error.code, stage: error.stage }, error.message).toEqual({ code, stage });
  expect(server.hits.request - requestsBefore, 'no application request after a failed establishment').toBe(0);
  return error;
}

const b64u = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');
function bindingJson(binding: Binding, change: Partial<Record<'protocol' | 'key_exchange' | 'session_id' | 'transcript_hash' | 'binder', string>>): Uint8Array {
  const fields = {
    protocol: 'STEVE-E2P-V2',
    key_exchange: binding.suite,
    session_id: b64u(binding.sessionId),
    transcript_hash: b64u(binding.transcriptHash),
    binder: b64u(binding.binder),
    ...change,
  };
  return new TextEncoder().encode(JSON.stringify(fields));
}

describe.each(SUITES)('establishment with %s', (suite) => {
  it('establishes, sends the request only after confirmation, and reports a receipt', async () => {
    const server = createFakeServer({ suite, attester });
    const client = createTestClient(server, attester, { keyExchange: suite });
    const response = await client.request('/hello?name=steve', { method: 'POST', body: new Uint8Array([0, 1, 2, 255]) });
    expect(response.status).toBe(200);
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(new Uint8Array([0, 1, 2, 255]));
    expect(response.headers.get('x-path')).toBe('/hello?name=steve');
    expect(server.hits).toEqual({ session: 1, confirm: 1, request: 1, stream: 0, other: 0 });
    const receipt = client.receiptFor(response)!;
    expect(receipt).toMatchObject({ sequence: 1, suite, pcrTrust: 'mock', pcrPolicy: 'pinned', status: 200, method: 'POST', path: '/hello?name=steve', requestBodyBytes: 4, responseBodyBytes: 4 });
    expect(receipt.sessionId).toMatch(/^[0-9a-f]{32}$/);
    expect(server.sessions.has(receipt.sessionId)).toBe(true);
    expect(client.lastReceipt).toBe(receipt);
    // Every call: POST, no credentials, redirects refused, CBOR.
    for (const { init } of server.calls) {
      expect(init).toMatchObject({ method: 'POST', credentials: 'omit', redirect: 'error' });
      expect(new Headers(init.headers).get('content-type')).toBe('application/cbor');
    }
    expect(server.calls.map((c) => new URL(c.url).pathname)).toEqual(['/e2p/v2/session', '/e2p/v2/confirm', '/e2p/v2/request']);
  });

  it('verifies with the default pure verifier and the default random source too', async () => {
    const server = createFakeServer({ suite, attester });
    const client = createTestClient(server, attester, { keyExchange: suite, verifier: undefined, random: undefined });
    const response = await client.request('/');
    expect(response.status).toBe(200);
  });

  it('sends a fresh nonce and key per session and SHA-256(origin) as context_hash by default', async () => {
    const server = createFakeServer({ suite, attester });
    const seen: Uint8Array[][] = [];
    server.hooks.sessionResponse = (response, { request }) => {
      seen.push([request.clientNonce, request.clientKeyMaterial, request.contextHash]);
      return response;
    };
    const client = createTestClient(server, attester, { keyExchange: suite, random: undefined });
    await client.request('/');
    client.endSession();
    await client.request('/');
    expect(seen).toHaveLength(2);
    expect(Buffer.from(seen[0]![0]!).equals(Buffer.from(seen[1]![0]!))).toBe(false);
    expect(Buffer.from(seen[0]![1]!).equals(Buffer.from(seen[1]![1]!))).toBe(false);
    expect(Buffer.from(seen[0]![2]!).toString('hex')).toBe(createHash('sha256').update('https://enclave.test').digest('hex'));
  });
});

describe('each verification stage refuses on its own', () => {
  it('a document chained to another root: ATTESTATION (ATTESTATION_ROOT), also with the default AWS root', async () => {
    for (const root of [createMockPki().root.der, undefined]) {
      const server = createFakeServer({ suite: 'X25519', attester });
      const client = createTestClient(server, attester, { root });
      const error = await expectFailure(server, client.request('/'), 'STEVE_CLIENT_ATTESTATION', 'attestation');
      expect(error.cause).toBeInstanceOf(NsmError);
      expect((error.cause as NsmError).code).toBe('ATTESTATION_ROOT');
      expect(server.hits.confirm).toBe(0);
    }
  });

  it('a document carrying another nonce: ATTESTATION_NONCE', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    server.hooks.attestNonce = (nonce) => nonce.map((b) => b ^ 1);
    const error = await expectFailure(server, createTestClient(server, attester).request('/'), 'STEVE_CLIENT_ATTESTATION', 'attestation');
    expect((error.cause as NsmError).code).toBe('ATTESTATION_NONCE');
    expect(server.hits.confirm).toBe(0);
  });

  it('a document from another session (replayed): ATTESTATION_NONCE', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    let previous: Uint8Array | undefined;
    server.hooks.document = (document) => {
      const out = previous ?? document;
      previous ??= document;
      return out;
    };
    const client = createTestClient(server, attester);
    await client.request('/');
    client.endSession();
    const error = await expectFailure(server, client.request('/'), 'STEVE_CLIENT_ATTESTATION', 'attestation');
    expect((error.cause as NsmError).code).toBe('ATTESTATION_NONCE');
    expect(server.hits).toMatchObject({ session: 2, confirm: 1, request: 1 });
  });

  it('a relayed session (the server attested our nonce for someone else\'s key): BINDING', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const attacker = seededRandom('attacker');
    server.hooks.sessionResponse = async (response, { request }) => {
      if (server.hooks.sessionResponse === undefined) return response;
      // The host opens its own session with the victim's nonce and its own key, and hands that back.
      const saved = server.hooks.sessionResponse;
      delete server.hooks.sessionResponse;
      const pair = keyExchangeFor('X25519').generateClientKeyPair(attacker);
      const relayed = await server.openSession({ ...request, clientKeyMaterial: pair.material });
      server.hooks.sessionResponse = saved;
      return relayed;
    };
    await expectFailure(server, createTestClient(server, attester).request('/'), 'STEVE_CLIENT_BINDING', 'binding');
    expect(server.hits.confirm).toBe(0);
  });

  const fieldChanges = {
    protocol: () => 'STEVE-E2P-V1',
    key_exchange: () => 'XWING-DRAFT10',
    session_id: () => b64u(new Uint8Array(16).fill(9)),
    transcript_hash: () => b64u(new Uint8Array(32).fill(9)),
    binder: () => b64u(new Uint8Array(32).fill(9)),
  } as const;
  it.each(Object.keys(fieldChanges) as (keyof typeof fieldChanges)[])('a binding whose %s differs: BINDING, nothing confirmed', async (field) => {
    const server = createFakeServer({ suite: 'X25519', attester });
    server.hooks.userData = (binding) => bindingJson(binding, { [field]: fieldChanges[field]() });
    await expectFailure(server, createTestClient(server, attester).request('/'), 'STEVE_CLIENT_BINDING', 'binding');
    expect(server.hits.confirm).toBe(0);
  });

  it('a binding in another form (whitespace) or absent: BINDING', async () => {
    for (const userData of [(b: Binding) => new TextEncoder().encode(` ${new TextDecoder().decode(bindingJson(b, {}))}`), () => new Uint8Array(0)]) {
      const server = createFakeServer({ suite: 'X25519', attester });
      server.hooks.userData = userData;
      await expectFailure(server, createTestClient(server, attester).request('/'), 'STEVE_CLIENT_BINDING', 'binding');
    }
  });

  it('PCRs matching none of the pinned profiles: PCR, before confirmation', async () => {
    const server = createFakeServer({ suite: 'X25519', attester: otherAttester });
    const error = await expectFailure(server, createTestClient(server, attester, { pcrPolicy: [attester.profile, { name: 'also-not', pcrs: new Map([[1, new Uint8Array(48)]]) }] }).request('/'), 'STEVE_CLIENT_PCR', 'pcr');
    expect(error.message).toContain('"mock"');
    expect(server.hits.confirm).toBe(0);
  });

  it('any one of several pinned profiles is enough (an image rotation), and the receipt names it', async () => {
    const server = createFakeServer({ suite: 'X25519', attester: otherAttester });
    const client = createTestClient(server, attester, { pcrPolicy: [attester.profile, { ...otherAttester.profile, name: 'next-image' }] });
    const response = await client.request('/');
    expect(client.receiptFor(response)?.pcrTrust).toBe('next-image');
  });

  it('a confirmation sealing another hash, or not opening: CONFIRMATION', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    server.hooks.confirmPlaintext = (hash) => hash.map((b) => b ^ 0x80);
    await expectFailure(server, createTestClient(server, attester).request('/'), 'STEVE_CLIENT_CONFIRMATION', 'confirm');
    const flipped = createFakeServer({ suite: 'X25519', attester });
    flipped.hooks.confirmAnswer = (bytes) => {
      const copy = bytes.slice();
      copy[copy.length - 1]! ^= 1;
      return copy;
    };
    await expectFailure(flipped, createTestClient(flipped, attester).request('/'), 'STEVE_CLIENT_CONFIRMATION', 'confirm');
  });

  it('a confirmation for another session or sequence: PROTOCOL at confirm', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    server.hooks.confirmAnswer = (bytes) => {
      const copy = bytes.slice();
      // The session id follows "session_id" and its 0x50 head; flip one of its bytes.
      const at = Buffer.from(copy).indexOf(Buffer.from('session_id')) + 'session_id'.length + 1;
      copy[at]! ^= 1;
      return copy;
    };
    await expectFailure(server, createTestClient(server, attester).request('/'), 'STEVE_CLIENT_PROTOCOL', 'confirm');
  });

  it('a session response naming the other suite: SUITE, before the document is looked at', async () => {
    for (const suite of SUITES) {
      const other = suite === 'X25519' ? 'XWING-DRAFT10' : 'X25519';
      const server = createFakeServer({ suite, attester });
      // A well-formed answer for the other suite (its key-material size) with a junk document.
      server.hooks.sessionAnswer = () =>
        encodeSessionResponse({
          suite: other,
          sessionId: new Uint8Array(16).fill(2),
          serverKeyMaterial: new Uint8Array(other === 'X25519' ? 32 : 1120).fill(1),
          attestationDocument: new Uint8Array([0xa0]),
          expiresInSeconds: 30,
        });
      const error = await expectFailure(server, createTestClient(server, attester, { keyExchange: suite }).request('/'), 'STEVE_CLIENT_SUITE', 'session');
      expect(error.message).toContain(other);
      expect(server.hits.confirm).toBe(0);
    }
  });

  it('a server refusing the session request: HTTP 400 at session, not retried', async () => {
    const server = createFakeServer({ suite: 'XWING-DRAFT10', attester });
    const error = await expectFailure(server, createTestClient(server, attester, { keyExchange: 'X25519' }).request('/'), 'STEVE_CLIENT_HTTP', 'session');
    expect({ status: error.status, serverError: error.serverError }).toEqual({ status: 400, serverError: 'protocol_error' });
    expect(server.hits.session).toBe(1);
  });
});

describe('trust on first use', () => {
  it('records PCR0-2 only after the whole establishment succeeded; later sessions compare', async () => {
    const store = memoryTofuStore();
    const server = createFakeServer({ suite: 'X25519', attester });
    // First attempt: everything verifies except the confirmation, so nothing may be recorded.
    server.hooks.confirmPlaintext = (hash) => hash.map((b) => b ^ 1);
    const client = createTestClient(server, attester, { tofuStore: store });
    await expectFailure(server, client.request('/'), 'STEVE_CLIENT_CONFIRMATION', 'confirm');
    expect(store.saved).toEqual([]);
    delete server.hooks.confirmPlaintext;

    const first = await client.request('/');
    expect(client.receiptFor(first)).toMatchObject({ pcrTrust: 'tofu-recorded', pcrPolicy: 'tofu' });
    expect(store.saved).toHaveLength(1);
    expect([...store.saved[0]!.keys()]).toEqual([0, 1, 2]);
    expect([...store.saved[0]!]).toEqual([...attester.profile.pcrs]);

    // Same session: still the recorded trust. New session: compared.
    expect(client.receiptFor(await client.request('/'))?.pcrTrust).toBe('tofu-recorded');
    client.endSession();
    expect(client.receiptFor(await client.request('/'))?.pcrTrust).toBe('tofu-matched');
    expect(store.saved).toHaveLength(1);
  });

  it('a different image later: PCR, before confirmation, nothing overwritten', async () => {
    const store = memoryTofuStore(new Map(attester.profile.pcrs));
    const server = createFakeServer({ suite: 'X25519', attester: otherAttester });
    await expectFailure(server, createTestClient(server, attester, { tofuStore: store }).request('/'), 'STEVE_CLIENT_PCR', 'pcr');
    expect(server.hits.confirm).toBe(0);
    expect(store.saved).toEqual([]);
  });

  it('a store that fails or returns junk: PCR, nothing sent', async () => {
    for (const load of [async () => Promise.reject(new Error('disk')), async () => new Map(), async () => 'x' as unknown as null]) {
      const server = createFakeServer({ suite: 'X25519', attester });
      const store = { load, save: async () => undefined };
      await expectFailure(server, createTestClient(server, attester, { tofuStore: store }).request('/'), 'STEVE_CLIENT_PCR', 'pcr');
      expect(server.hits.session).toBe(0);
    }
  });

  it('a store that cannot save: PCR, and the session is not used', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const store = { load: async () => null, save: async () => Promise.reject(new Error('read-only')) };
    await expectFailure(server, createTestClient(server, attester, { tofuStore: store }).request('/'), 'STEVE_CLIENT_PCR', 'pcr');
    expect(server.hits.confirm).toBe(1);
  });

  it('never records a debug-mode document', async () => {
    const debug = createMockAttester({ pki: attester.pki, pcrs: new Map([0, 1, 2].map((i) => [i, new Uint8Array(48)])) });
    const store = memoryTofuStore();
    const server = createFakeServer({ suite: 'X25519', attester: debug });
    await expectFailure(server, createTestClient(server, attester, { tofuStore: store, allowDebug: true }).request('/'), 'STEVE_CLIENT_PCR', 'pcr');
    expect(store.saved).toEqual([]);
    // Without allowDebug the verifier itself refuses it.
    const error = await expectFailure(server, createTestClient(server, attester, { tofuStore: store }).request('/'), 'STEVE_CLIENT_ATTESTATION', 'attestation');
    expect((error.cause as NsmError).code).toBe('ATTESTATION_DEBUG');
  });
});

describe('configuration', () => {
  it('needs exactly one of pcrPolicy and tofuStore, and checks every option', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    const bad: Array<Record<string, unknown>> = [
      { pcrPolicy: undefined },
      { tofuStore: memoryTofuStore(), pcrPolicy: [attester.profile] },
      { pcrPolicy: [] },
      { pcrPolicy: [{ name: 'empty', pcrs: new Map() }] },
      { origin: 'ftp://enclave.test' },
      { origin: 'https://enclave.test/path' },
      { origin: 'https://user:pw@enclave.test' },
      { origin: 'not a url' },
      { keyExchange: 'P256' },
      { contextHash: new Uint8Array(31) },
      { requestTimeoutMs: 0 },
      { rotateAfterMs: Number.NaN },
      { tofuStore: { load: 1 } },
    ];
    for (const change of bad) {
      let thrown: unknown;
      try {
        const base = { origin: 'https://enclave.test', keyExchange: 'X25519', pcrPolicy: [attester.profile], fetch: server.fetch };
        createSteveClient({ ...base, ...change } as never);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, JSON.stringify(Object.keys(change))).toBeInstanceOf(SteveClientError);
      expect((thrown as SteveClientError).code).toBe('STEVE_CLIENT_CONFIG');
    }
    expect(server.calls).toEqual([]);
  });

  it('accepts an origin with a trailing slash or as a URL', async () => {
    const server = createFakeServer({ suite: 'X25519', attester });
    expect(createTestClient(server, attester, { origin: 'https://enclave.test/' }).origin).toBe('https://enclave.test');
    expect(createTestClient(server, attester, { origin: new URL('https://enclave.test:8443') }).origin).toBe('https://enclave.test:8443');
  });
});

