/**
 * Legacy STEVE v1 (specs/steve.md §8) with a test client written from the spec, not from the server:
 * the /attestation document's user_data names the Ed25519 `verifying_key`; create_shared_key's
 * signature over nonce || server_public verifies under it; the key is HKDF-SHA256(X25519 secret, empty
 * salt, "key"); a protected request round-trips through the app; and every tampering (body bits, token
 * bytes, a replay, a mismatched method, an expired token, malformed key requests) is refused without
 * reaching the app.
 *
 * v1 is off unless `--legacy-v1=true` (then its endpoint is 404 and X-E2P-Key means nothing). On, its
 * replay cache cannot be flushed: only records that are valid requests are remembered, an unexpired tag is
 * never forgotten (a full cache is 429 busy), and one token has a quota of the cache.
 */

import { createCipheriv, createDecipheriv, createPublicKey, hkdfSync, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeP384Verifier, verifyAttestationDocument } from '../../nsm/index.js';
import { decodeAppResponse, encodeAppRequest, type AppRequest, type AppResponse } from '../../steve/index.js';
import { V1_TOKEN_BYTES, x25519PrivateKey, x25519PublicBytes, x25519SharedSecret } from '../../steve/server/index.js';
import { call, header, pattern, random, sha256Hex, startDemoApp, startStack, text, utf8, type DemoApp, type Reply, type Stack } from './harness.js';

let app: DemoApp;
let s: Stack;

/** Small enough to fill in a test; the defaults are V1_REPLAY_CACHE_ENTRIES and V1_MAX_REQUESTS_PER_TOKEN. */
const CACHE_ENTRIES = 24;
const PER_TOKEN = 12;

beforeAll(async () => {
  app = await startDemoApp();
  s = await startStack({ suite: 'X25519', upstream: app.url, config: { legacyV1: true }, steve: { legacyV1Limits: { replayCacheEntries: CACHE_ENTRIES, maxRequestsPerToken: PER_TOKEN } } });
});

afterAll(async () => {
  await s.stop();
  await app.close();
});

interface V1Session {
  key: Uint8Array;
  token: Uint8Array;
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function createKeyBody(publicKey: Uint8Array, nonce: Uint8Array): string {
  return JSON.stringify({ public_key_bytes: [...publicKey], nonce: [...nonce] });
}

async function createSharedKey(verifyingKey: Uint8Array, stack: Stack = s): Promise<V1Session> {
  const scalar = random(32);
  const privateKey = x25519PrivateKey(scalar);
  const nonce = random(16);
  const reply = await call(`${stack.base}/e2p/v1/create_shared_key`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: createKeyBody(x25519PublicBytes(privateKey), nonce) });
  expect(reply.status).toBe(200);
  expect(reply.headers['cache-control']).toBe('no-store');
  const answer = JSON.parse(text(reply.body)) as { public_key: number[]; signature: number[]; enclave_encrypted_shared_key: number[] };
  expect(Object.keys(answer)).toEqual(['public_key', 'signature', 'enclave_encrypted_shared_key']);
  const serverPublic = Uint8Array.from(answer.public_key);
  expect(serverPublic.length).toBe(32);
  expect(answer.signature.length).toBe(64);
  const identity = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, verifyingKey]), format: 'der', type: 'spki' });
  expect(verify(null, Buffer.concat([nonce, serverPublic]), identity, Uint8Array.from(answer.signature))).toBe(true);
  // A signature over another nonce must not verify: it binds this request.
  expect(verify(null, Buffer.concat([random(16), serverPublic]), identity, Uint8Array.from(answer.signature))).toBe(false);
  const shared = x25519SharedSecret(privateKey, serverPublic);
  const key = new Uint8Array(hkdfSync('sha256', shared, new Uint8Array(0), 'key', 32));
  const token = Uint8Array.from(answer.enclave_encrypted_shared_key);
  expect(token.length).toBe(V1_TOKEN_BYTES);
  return { key, token };
}

function seal(key: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const iv = random(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  return Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

function open(key: Uint8Array, body: Uint8Array): Uint8Array {
  const decipher = createDecipheriv('aes-256-gcm', key, body.subarray(0, 12));
  decipher.setAuthTag(body.subarray(body.length - 16));
  return Buffer.concat([decipher.update(body.subarray(12, body.length - 16)), decipher.final()]);
}

function protectedCall(session: V1Session, body: Uint8Array, options: { url?: string; method?: string; headers?: Record<string, string>; stack?: Stack } = {}): Promise<Reply> {
  return call(`${(options.stack ?? s).base}${options.url ?? '/api/items?x=1'}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/octet-stream',
      'x-e2p-key': Buffer.from(session.token).toString('base64'),
      'x-e2p-original-method': options.method ?? 'POST',
      ...options.headers,
    },
    body,
  });
}

async function roundTrip(session: V1Session, request: AppRequest): Promise<AppResponse> {
  const reply = await protectedCall(session, seal(session.key, encodeAppRequest(request)), { method: request.method, url: request.path });
  expect(reply.status, text(reply.body)).toBe(200);
  expect(reply.headers['content-type']).toBe('application/octet-stream');
  expect(reply.headers['cache-control']).toBe('no-store');
  return decodeAppResponse(open(session.key, reply.body));
}

function expectRefused(reply: Reply, status: number, error: string, what = ''): void {
  expect(reply.status, what).toBe(status);
  expect(text(reply.body), what).toBe(`{"error":"${error}"}`);
  expect(reply.headers['cache-control'], what).toBe('no-store');
}

describe('v1: create_shared_key and protected requests', () => {
  let verifyingKey: Uint8Array;
  let session: V1Session;

  beforeAll(async () => {
    // The verifying key comes from the attestation document, as a v1 client gets it.
    const reply = await call(`${s.base}/attestation?nonce=${Buffer.from(random(32)).toString('hex')}`);
    const document = Uint8Array.from(Buffer.from((JSON.parse(text(reply.body)) as { document: string }).document, 'base64'));
    const verified = verifyAttestationDocument(document, { atMs: Date.now(), root: s.pki.root.der, verifier: nodeP384Verifier });
    verifyingKey = Uint8Array.from((JSON.parse(text(verified.userData)) as { verifying_key: number[] }).verifying_key);
    expect(Buffer.from(verifyingKey).equals(Buffer.from(s.agent.verifyingKey))).toBe(true);
    session = await createSharedKey(verifyingKey);
  });

  it('round trip: GET and POST with binary bodies, repeated set-cookie, the app sees the inner request only', async () => {
    const before = app.hits.length;
    const get = await roundTrip(session, { method: 'GET', path: '/echo?v=1', headers: { cookie: 'inner=1' }, body: null });
    expect(get.status).toBe(200);
    expect(JSON.parse(text(get.body))).toMatchObject({ method: 'GET', url: '/echo?v=1' });
    const body = pattern(100_000, 9);
    const post = await roundTrip(session, { method: 'POST', path: '/echo-body', headers: { 'content-type': 'application/octet-stream' }, body });
    expect(sha256Hex(post.body!)).toBe(sha256Hex(body));
    const cookies = await roundTrip(session, { method: 'GET', path: '/cookies', headers: {}, body: null });
    expect(header(cookies, 'set-cookie')).toHaveLength(2);
    expect(app.hits.length).toBe(before + 3);
    const hit = app.hits[before]!;
    expect(hit.headers.cookie).toBe('inner=1');
    expect(hit.headers['x-e2p-key']).toBeUndefined();
    expect(hit.headers['content-type']).toBeUndefined();
  });

  describe('tampering never reaches the app', () => {
    let before: number;
    beforeAll(() => {
      before = app.hits.length;
    });

    it('every bit of the IV and tag, and a byte of the ciphertext every 8: 401', async () => {
      const body = seal(session.key, encodeAppRequest({ method: 'POST', path: '/echo', headers: {}, body: utf8('tamper me') }));
      const positions: number[] = [];
      for (let bit = 0; bit < body.length * 8; bit++) {
        const byte = bit >> 3;
        if (byte < 12 || byte >= body.length - 16 || (byte % 8 === 0 && bit % 8 === byte % 8)) positions.push(bit);
      }
      for (const bit of positions) {
        const copy = Uint8Array.from(body);
        copy[bit >> 3]! ^= 0x80 >> (bit & 7);
        expectRefused(await protectedCall(session, copy), 401, 'session_invalid', `bit ${bit}`);
      }
      expect(positions.length).toBeGreaterThan(28 * 8);
    });

    it('every byte of the token, a foreign token, a missing or non-base64 one: 401', async () => {
      const body = seal(session.key, encodeAppRequest({ method: 'POST', path: '/echo', headers: {}, body: null }));
      for (let i = 0; i < session.token.length; i++) {
        const token = Uint8Array.from(session.token);
        token[i]! ^= 0x01;
        expectRefused(await protectedCall({ ...session, token }, body), 401, 'session_invalid', `token byte ${i}`);
      }
      expectRefused(await protectedCall({ ...session, token: random(V1_TOKEN_BYTES) }, body), 401, 'session_invalid');
      expectRefused(await protectedCall(session, body, { headers: { 'x-e2p-key': 'not base64!' } }), 401, 'session_invalid');
      expectRefused(await protectedCall(session, body, { headers: { 'x-e2p-key': `${Buffer.from(session.token).toString('base64')}AA==` } }), 401, 'session_invalid');
    });

    it('a byte-identical replay: 409 (after the first went through)', async () => {
      const body = seal(session.key, encodeAppRequest({ method: 'POST', path: '/status/418', headers: {}, body: null }));
      // This one reaches the app (its status is the app's).
      const first = await protectedCall(session, body);
      expect(first.status).toBe(200);
      expect(decodeAppResponse(open(session.key, first.body)).status).toBe(418);
      before += 1;
      expectRefused(await protectedCall(session, body), 409, 'replay');
    });

    it('a method header that differs from the encrypted method, a wrong media type, a GET: 400', async () => {
      const body = seal(session.key, encodeAppRequest({ method: 'DELETE', path: '/echo', headers: {}, body: null }));
      expectRefused(await protectedCall(session, body, { method: 'GET' }), 400, 'protocol_error');
      expectRefused(await protectedCall(session, body, { method: 'DELETE', headers: { 'content-type': 'application/cbor' } }), 400, 'protocol_error');
      const get = await call(`${s.base}/echo`, { method: 'GET', headers: { 'x-e2p-key': Buffer.from(session.token).toString('base64'), 'x-e2p-original-method': 'GET' } });
      expectRefused(get, 400, 'protocol_error');
      // A short body, and a body that opens but holds no application request.
      expectRefused(await protectedCall(session, random(20)), 400, 'protocol_error');
      expectRefused(await protectedCall(session, seal(session.key, utf8('not cbor'))), 400, 'protocol_error');
    });

    it('an expired token (30 minutes, injected clock): 401', async () => {
      const fresh = await createSharedKey(verifyingKey);
      s.clock.offsetMs += 30 * 60_000;
      try {
        const body = seal(fresh.key, encodeAppRequest({ method: 'POST', path: '/echo', headers: {}, body: null }));
        expectRefused(await protectedCall(fresh, body), 401, 'session_invalid');
      } finally {
        s.clock.offsetMs = 0;
      }
    });

    it('malformed create_shared_key bodies: 400; oversize 413; GET 405', async () => {
      const post = (body: string) => call(`${s.base}/e2p/v1/create_shared_key`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const pub = [...random(32)];
      const nonce = [...random(16)];
      for (const body of [
        '',
        'null',
        '[]',
        '{"public_key_bytes":[1,2,3],"nonce":[]}',
        JSON.stringify({ public_key_bytes: pub, nonce: nonce.slice(1) }),
        JSON.stringify({ public_key_bytes: pub.map((b) => b + 256), nonce }),
        JSON.stringify({ public_key_bytes: pub.map((b) => b + 0.5), nonce }),
        JSON.stringify({ public_key_bytes: pub, nonce, extra: 1 }),
        JSON.stringify({ public_key_bytes: pub }),
        JSON.stringify({ public_key_bytes: new Array(32).fill(0), nonce }),
        '{"public_key_bytes":' + JSON.stringify(pub) + ',"nonce":' + JSON.stringify(nonce),
      ]) {
        expectRefused(await post(body), 400, 'protocol_error', body.slice(0, 40));
      }
      expectRefused(await post(' '.repeat(4097)), 413, 'too_large');
      const get = await call(`${s.base}/e2p/v1/create_shared_key`);
      expectRefused(get, 405, 'method_not_allowed');
      // v1 has no CORS preflight, so OPTIONS is not offered.
      expect(get.headers.allow).toBe('POST');
    });

    it('the app saw none of it', () => {
      expect(app.hits.length).toBe(before);
    });
  });
});

describe('v1: the replay cache cannot be flushed or filled past what it protects', () => {
  let verifyingKey: Uint8Array;
  let stack: Stack;

  beforeAll(async () => {
    // A stack of its own, so the cache starts empty.
    stack = await startStack({ suite: 'X25519', upstream: app.url, config: { legacyV1: true }, steve: { legacyV1Limits: { replayCacheEntries: CACHE_ENTRIES, maxRequestsPerToken: PER_TOKEN } } });
    verifyingKey = stack.agent.verifyingKey;
  });

  afterAll(async () => {
    await stack.stop();
  });

  const request = (key: Uint8Array, path: string) => seal(key, encodeAppRequest({ method: 'POST', path, headers: {}, body: null }));

  it('a record that opens but is not a request is not remembered: sent again it is 400 again, never 409', async () => {
    const session = await createSharedKey(verifyingKey, stack);
    const junk = seal(session.key, utf8('not a request'));
    for (let i = 0; i < 3; i++) expectRefused(await protectedCall(session, junk, { stack }), 400, 'protocol_error', `attempt ${i}`);
    // Nor is a valid request whose method header lies.
    const lying = request(session.key, '/echo');
    for (let i = 0; i < 2; i++) expectRefused(await protectedCall(session, lying, { stack, method: 'PUT' }), 400, 'protocol_error');
  });

  it('another client cannot push a victim\'s request out: junk from many tokens, then the host replays it: 409, the app ran it once', async () => {
    const victim = await createSharedKey(verifyingKey, stack);
    const captured = request(victim.key, '/echo?victim=1');
    expect((await protectedCall(victim, captured, { stack })).status).toBe(200);
    const ran = () => app.hits.filter((hit) => hit.url === '/echo?victim=1').length;
    expect(ran()).toBe(1);
    // Far more records than the cache holds, each opening under the attacker's own keys.
    for (let t = 0; t < 4; t++) {
      const attacker = await createSharedKey(verifyingKey, stack);
      for (let i = 0; i < CACHE_ENTRIES; i++) expect((await protectedCall(attacker, seal(attacker.key, random(40)), { stack })).status).toBe(400);
    }
    expectRefused(await protectedCall(victim, captured, { stack }), 409, 'replay');
    expect(ran()).toBe(1);
  });

  it('one token has a quota of the cache (429 past it); a full cache is 429 busy and forgets nothing until the tags expire', async () => {
    const greedy = await createSharedKey(verifyingKey, stack);
    const sent: Uint8Array[] = [];
    for (let i = 0; i < PER_TOKEN; i++) {
      const body = request(greedy.key, `/status/204?i=${i}`);
      sent.push(body);
      expect((await protectedCall(greedy, body, { stack })).status).toBe(200);
    }
    expectRefused(await protectedCall(greedy, request(greedy.key, '/status/204?over'), { stack }), 429, 'busy');
    // Fill what is left of the cache with other tokens (the victim above holds one entry).
    let filled = PER_TOKEN + 1;
    while (filled < CACHE_ENTRIES) {
      const other = await createSharedKey(verifyingKey, stack);
      for (let i = 0; i < PER_TOKEN && filled < CACHE_ENTRIES; i++, filled++) {
        expect((await protectedCall(other, request(other.key, `/status/204?f=${filled}`), { stack })).status).toBe(200);
      }
    }
    const late = await createSharedKey(verifyingKey, stack);
    const before = app.hits.length;
    expectRefused(await protectedCall(late, request(late.key, '/echo?late=1'), { stack }), 429, 'busy');
    // Full, and still nothing was forgotten: a replay is 409, not a second run.
    expectRefused(await protectedCall(greedy, sent[0]!, { stack }), 409, 'replay');
    expect(app.hits.length).toBe(before);
    // Once the tokens (and with them their tags) expire, v1 works again with a new token.
    stack.clock.offsetMs += 30 * 60_000 + 2000;
    const fresh = await createSharedKey(verifyingKey, stack);
    expect((await protectedCall(fresh, request(fresh.key, '/echo?fresh=1'), { stack })).status).toBe(200);
  });
});

describe('v1 off (the default)', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({ suite: 'X25519', upstream: app.url });
  });

  afterAll(async () => {
    await stack.stop();
  });

  it('create_shared_key is 404, and a request carrying X-E2P-Key is an ordinary plaintext request: 403 e2e_required, the app never sees it', async () => {
    const before = app.hits.length;
    const create = await call(`${stack.base}/e2p/v1/create_shared_key`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: createKeyBody(random(32), random(16)) });
    expectRefused(create, 404, 'not_found');
    const token = Buffer.from(random(V1_TOKEN_BYTES)).toString('base64');
    for (const [method, path] of [
      ['POST', '/api/items'],
      ['GET', '/echo'],
    ] as const) {
      const reply = await call(`${stack.base}${path}`, { method, headers: { 'content-type': 'application/octet-stream', 'x-e2p-key': token, 'x-e2p-original-method': 'POST' }, ...(method === 'POST' ? { body: random(40) } : {}) });
      expectRefused(reply, 403, 'e2e_required', `${method} ${path}`);
    }
    expect(app.hits.length).toBe(before);
  });
});
