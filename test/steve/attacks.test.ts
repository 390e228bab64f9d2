/**
 * Attacks on the STEVE v2 server, each answered with its specified status (specs/steve.md §6-§7) and
 * none reaching the app: the demo app behind the agent counts every request, and the last test asserts
 * that across this whole file it saw none. Where a test needs a sequence to have been accepted (to replay
 * it), the accepted record carries a malformed plaintext: the server records the sequence once the AEAD
 * opened, then refuses the plaintext (400) before any app call.
 *
 * - every single-bit flip of a request envelope's session id, sequence, ciphertext and tag (node AEAD);
 * - replays (the same sequence twice, older than the window, sequence 0) and a second confirmation;
 * - request before confirmation, confirmation with a wrong transcript hash (session dropped), expired
 *   (injected clock) and unknown sessions, a suite mismatch, a low-order X25519 key;
 * - malformed CBOR (indefinite lengths, floats, tags, duplicate keys, trailing bytes, non-shortest
 *   integers, a truncation) on all three endpoints, and a wrong media type;
 * - bodies of the wrong shape (an array, a map of too many entries, an indefinite map) refused 400 from
 *   their first byte, before a 32 MiB body is read;
 * - oversize bodies, declared and streamed, answered 413 before the body ends (nothing buffered past
 *   the limit); the NSM queue full (429 busy).
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { openMockNsm, type Nsm } from '../../nsm/index.js';
import {
  DIRECTION,
  MAX_REQUEST_ENVELOPE_BYTES,
  MAX_SEQUENCE,
  MESSAGE_TYPE,
  REPLAY_WINDOW_SIZE,
  decodeEnvelope,
  encodeAppRequest,
  encodeEnvelope,
  encodeSessionRequest,
  recordAad,
  recordNonce,
  type Direction,
  type MessageType,
} from '../../steve/index.js';
import { nodeAesGcm } from '../../steve/server/index.js';
import { silentLogger } from '../mock-documents.js';
import {
  confirmationEnvelope,
  confirmSession,
  establish,
  mockPki,
  openSession,
  postCbor,
  random,
  rawExchange,
  sealBytes,
  sealRequest,
  sessionRequest,
  startDemoApp,
  startStack,
  text,
  type ClientSession,
  type DemoApp,
  type Reply,
  type Stack,
} from './harness.js';

let app: DemoApp;
let s: Stack;
const extra: Stack[] = [];

beforeAll(async () => {
  app = await startDemoApp();
  s = await startStack({ suite: 'X25519', upstream: app.url });
});

afterAll(async () => {
  await Promise.all([s, ...extra].map((x) => x.stop()));
  await app.close();
});

const BODIES: Record<number, string> = {
  400: '{"error":"protocol_error"}',
  401: '{"error":"session_invalid"}',
  409: '{"error":"replay"}',
  413: '{"error":"too_large"}',
  425: '{"error":"session_unconfirmed"}',
  429: '{"error":"busy"}',
};

function expectRefused(reply: Reply, status: number, what = ''): void {
  expect(reply.status, what).toBe(status);
  expect(text(reply.body), what).toBe(BODIES[status]);
  expect(reply.headers['cache-control'], what).toBe('no-store');
  expect(reply.headers['content-type'], what).toBe('application/json');
}

/** A record whose plaintext is not an application request: it opens, burns its sequence, and is refused 400. */
function malformedRecord(session: ClientSession, sequence?: number) {
  return sealBytes(session, Uint8Array.of(0xa0), sequence);
}

const request = (base: string, bytes: Uint8Array) => postCbor(base, '/e2p/v2/request', bytes);

/**
 * A record sealed by hand with any type, direction and sequence (the protocol's sealRecord refuses the
 * combinations a client must never send): the plaintext is an empty map, the key the direction's own.
 */
function handSealed(session: ClientSession, type: MessageType, direction: Direction, sequence: number): Uint8Array {
  const [key, iv] = direction === DIRECTION.C2S ? [session.keys.c2sKey, session.keys.c2sIv] : [session.keys.s2cKey, session.keys.s2cIv];
  const sealed = nodeAesGcm.seal(key, recordNonce(iv, sequence), recordAad(type, direction, session.id, sequence), Uint8Array.of(0xa0));
  return encodeEnvelope({ sessionId: session.id, sequence, ciphertext: sealed });
}

describe('bit flips of a request envelope', () => {
  it('every single-bit flip of session id, sequence, ciphertext and tag is refused, and burns nothing', async () => {
    const session = await establish(s);
    // History: sequences 1..70 accepted except 40 (so some flips land in the window, seen or not).
    const accepted = new Set<number>();
    for (let seq = 1; seq <= 70; seq++) {
      if (seq === 40) continue;
      expectRefused(await request(s.base, malformedRecord(session, seq).bytes), 400, `setup ${seq}`);
      accepted.add(seq);
    }
    const highest = 70;
    const target = 71;
    const original = malformedRecord(session, target).bytes;
    const envelope = decodeEnvelope(original);
    /** The status the server must give a record at `sequence` that does not open (or is refused before opening). */
    const expected = (sequence: number): number => {
      if (sequence > MAX_SEQUENCE) return 400;
      if (sequence === 0 || (sequence <= highest && (highest - sequence >= REPLAY_WINDOW_SIZE || accepted.has(sequence)))) return 409;
      return 401;
    };
    const variants: Array<{ what: string; bytes: Uint8Array; status: number }> = [];
    for (let bit = 0; bit < 128; bit++) {
      const id = envelope.sessionId.slice();
      id[bit >> 3]! ^= 0x80 >> (bit & 7);
      variants.push({ what: `session_id bit ${bit}`, bytes: encodeEnvelope({ ...envelope, sessionId: id }), status: 401 });
    }
    for (let bit = 0; bit < 64; bit++) {
      // The sequence is a byte string on the wire (§3): flip it there, including the bits above 2^53.
      const bytes = original.slice();
      const at = Buffer.from(bytes).indexOf(Buffer.from([0x68, ...Buffer.from('sequence'), 0x48])) + 10;
      bytes[at + (bit >> 3)]! ^= 0x80 >> (bit & 7);
      const value = BigInt(target) ^ (1n << BigInt(63 - bit));
      variants.push({ what: `sequence bit ${bit} -> ${value}`, bytes, status: expected(value > BigInt(MAX_SEQUENCE) ? MAX_SEQUENCE + 1 : Number(value)) });
    }
    for (let bit = 0; bit < envelope.ciphertext.length * 8; bit++) {
      const ciphertext = envelope.ciphertext.slice();
      ciphertext[bit >> 3]! ^= 0x80 >> (bit & 7);
      const where = bit >= (envelope.ciphertext.length - 16) * 8 ? 'tag' : 'ciphertext';
      variants.push({ what: `${where} bit ${bit}`, bytes: encodeEnvelope({ ...envelope, ciphertext }), status: 401 });
    }
    expect(variants.length).toBe(128 + 64 + envelope.ciphertext.length * 8);
    // Eight at a time: the walk is about 450 requests.
    for (let i = 0; i < variants.length; i += 8) {
      const batch = variants.slice(i, i + 8);
      const replies = await Promise.all(batch.map((v) => request(s.base, v.bytes)));
      replies.forEach((reply, j) => expectRefused(reply, batch[j]!.status, batch[j]!.what));
    }
    expect(variants.filter((v) => v.status === 409).length).toBeGreaterThan(0);
    expect(variants.filter((v) => v.status === 400).length).toBe(11);
    // Nothing was burned and the session survived: the original still opens (then 400: malformed
    // plaintext), and only then is it a replay.
    expectRefused(await request(s.base, original), 400, 'original');
    expectRefused(await request(s.base, original), 409, 'original again');
  }, 30_000);
});

describe('replays and sequence rules', () => {
  let session: ClientSession;
  beforeAll(async () => {
    session = await establish(s);
  });

  it('the same sequence twice: 409', async () => {
    const record = malformedRecord(session, 5);
    expectRefused(await request(s.base, record.bytes), 400);
    expectRefused(await request(s.base, record.bytes), 409);
    // A different record under the same sequence is a replay too.
    expectRefused(await request(s.base, sealRequest(session, { method: 'GET', path: '/x', headers: {}, body: null }, 5).bytes), 409);
  });

  it('older than the 64-wide window: 409, even never seen; inside it and unseen: accepted', async () => {
    expectRefused(await request(s.base, malformedRecord(session, 200).bytes), 400);
    expectRefused(await request(s.base, sealRequest(session, { method: 'GET', path: '/x', headers: {}, body: null }, 200 - REPLAY_WINDOW_SIZE).bytes), 409);
    expectRefused(await request(s.base, sealRequest(session, { method: 'GET', path: '/x', headers: {}, body: null }, 6).bytes), 409);
    // 200 - 63 is inside the window and unseen: it opens (400 for its malformed plaintext, not 409).
    expectRefused(await request(s.base, malformedRecord(session, 200 - REPLAY_WINDOW_SIZE + 1).bytes), 400);
  });

  it('sequence 0 on /request: 409 (§7 "sequence 0 is only for confirmation"), also sealed as an application record', async () => {
    expectRefused(await request(s.base, confirmationEnvelope(session)), 409);
    expectRefused(await request(s.base, handSealed(session, MESSAGE_TYPE.APPLICATION, DIRECTION.C2S, 0)), 409);
  });

  it('a confirmation record replayed on a confirmed session: 409; a confirmation at sequence 1: 400', async () => {
    expectRefused(await postCbor(s.base, '/e2p/v2/confirm', confirmationEnvelope(session)), 409);
    const fresh = await openSession(s);
    const atOne = encodeEnvelope({ ...decodeEnvelope(confirmationEnvelope(fresh)), sequence: 1 });
    expectRefused(await postCbor(s.base, '/e2p/v2/confirm', atOne), 400);
  });

  it('a record sealed with the confirmation type, or for the server-to-client direction: 401 (the AAD differs)', async () => {
    expectRefused(await request(s.base, handSealed(session, MESSAGE_TYPE.CONFIRMATION, DIRECTION.C2S, 1000)), 401);
    expectRefused(await request(s.base, handSealed(session, MESSAGE_TYPE.APPLICATION, DIRECTION.S2C, 1001)), 401);
    // Neither burned its sequence: the same sequences sealed correctly still open.
    expectRefused(await request(s.base, malformedRecord(session, 1000).bytes), 400);
    expectRefused(await request(s.base, malformedRecord(session, 1001).bytes), 400);
  });
});

describe('sessions', () => {
  it('request before confirmation: 425, and the session stays pending', async () => {
    const session = await openSession(s);
    expectRefused(await request(s.base, sealRequest(session, { method: 'GET', path: '/early', headers: {}, body: null }).bytes), 425);
    // The same request after confirming is an ordinary one (not sent: no app call in this file).
    await confirmSession(session);
  });

  it('confirmation with a wrong transcript hash: 401 and the session is dropped', async () => {
    const session = await openSession(s);
    const wrong = session.transcriptHash.slice();
    wrong[0]! ^= 1;
    expectRefused(await postCbor(s.base, '/e2p/v2/confirm', confirmationEnvelope(session, wrong)), 401);
    // Gone: the right confirmation and any request are now 401.
    expectRefused(await postCbor(s.base, '/e2p/v2/confirm', confirmationEnvelope(session)), 401);
    expectRefused(await request(s.base, malformedRecord(session).bytes), 401);
  });

  it('a confirmation that does not open: 401, and the session is kept (a bystander cannot close it)', async () => {
    const session = await openSession(s);
    const forged = decodeEnvelope(confirmationEnvelope(session));
    const ciphertext = forged.ciphertext.slice();
    ciphertext[0]! ^= 1;
    expectRefused(await postCbor(s.base, '/e2p/v2/confirm', encodeEnvelope({ ...forged, ciphertext })), 401);
    await confirmSession(session);
  });

  it('unknown session: 401', async () => {
    const session = await establish(s);
    const record = decodeEnvelope(malformedRecord(session).bytes);
    expectRefused(await request(s.base, encodeEnvelope({ ...record, sessionId: random(16) })), 401);
    expectRefused(await postCbor(s.base, '/e2p/v2/confirm', encodeEnvelope({ ...decodeEnvelope(confirmationEnvelope(session)), sessionId: random(16) })), 401);
  });

  it('expired: a pending session after 30 s, a confirmed one 30 minutes after creation (injected clock)', async () => {
    const pending = await openSession(s);
    const confirmed = await establish(s);
    expectRefused(await request(s.base, malformedRecord(confirmed).bytes), 400);
    s.clock.offsetMs += 30_000;
    expectRefused(await postCbor(s.base, '/e2p/v2/confirm', confirmationEnvelope(pending)), 401);
    // Still alive after 30 s once confirmed.
    expectRefused(await request(s.base, malformedRecord(confirmed).bytes), 400);
    s.clock.offsetMs += 30 * 60_000 - 30_000;
    expectRefused(await request(s.base, malformedRecord(confirmed).bytes), 401);
    s.clock.offsetMs = 0;
    // Gone for good, even with the clock back.
    expectRefused(await request(s.base, malformedRecord(confirmed).bytes), 401);
  });

  it('a session request for the other suite: 400 (no negotiation, §1)', async () => {
    const xwing = sessionRequest('XWING-DRAFT10');
    expectRefused(await postCbor(s.base, '/e2p/v2/session', xwing.bytes), 400);
    const other = await startStack({ suite: 'XWING-DRAFT10', upstream: app.url });
    extra.push(other);
    expectRefused(await postCbor(other.base, '/e2p/v2/session', sessionRequest('X25519').bytes), 400);
  });

  it('a low-order X25519 client key (all-zero shared secret): 400', async () => {
    const req = sessionRequest('X25519');
    const bytes = encodeSessionRequest({ suite: 'X25519', clientNonce: req.clientNonce, clientKeyMaterial: new Uint8Array(32), contextHash: req.contextHash });
    expectRefused(await postCbor(s.base, '/e2p/v2/session', bytes), 400);
  });
});

describe('malformed CBOR on all three endpoints: 400', () => {
  /** Variants of a valid top-level map that the strict decoder must refuse (§2). */
  function malformed(valid: Uint8Array): Array<[string, Uint8Array]> {
    const map = valid[0]!;
    const count = map & 0x1f;
    // The first key is "version" (67 76 65 72 73 69 6f 6e) with the value 02 right after it.
    const versionAt = 1 + 8;
    expect(valid[versionAt]).toBe(0x02);
    const splice = (at: number, remove: number, insert: number[]) => Uint8Array.from([...valid.subarray(0, at), ...insert, ...valid.subarray(at + remove)]);
    return <Array<[string, Uint8Array]>>[
      ['indefinite-length map', Uint8Array.from([0xbf, ...valid.subarray(1), 0xff])],
      ['float version (half 2.0)', splice(versionAt, 1, [0xf9, 0x40, 0x00])],
      ['float version (double 2.0)', splice(versionAt, 1, [0xfb, 0x40, 0, 0, 0, 0, 0, 0, 0])],
      ['tagged message (55799)', Uint8Array.from([0xd9, 0xd9, 0xf7, ...valid])],
      ['tagged version', splice(versionAt, 1, [0xc1, 0x02])],
      ['duplicate key', Uint8Array.from([0xa0 | (count + 1), ...valid.subarray(1), ...valid.subarray(1, versionAt + 1)])],
      ['trailing byte', Uint8Array.from([...valid, 0x00])],
      ['non-shortest integer', splice(versionAt, 1, [0x18, 0x02])],
      ['truncated', valid.subarray(0, valid.length - 1)],
      ['not a map', Uint8Array.of(0x82, 0x01, 0x02)],
      ['empty body', new Uint8Array(0)],
    ];
  }

  it('/e2p/v2/session, /e2p/v2/confirm and /e2p/v2/request', async () => {
    const session = await establish(s);
    const pending = await openSession(s);
    const valid: Array<[string, Uint8Array]> = [
      ['/e2p/v2/session', sessionRequest('X25519').bytes],
      ['/e2p/v2/confirm', confirmationEnvelope(pending)],
      ['/e2p/v2/request', malformedRecord(session).bytes],
    ];
    for (const [path, bytes] of valid) {
      for (const [name, variant] of malformed(bytes)) expectRefused(await postCbor(s.base, path, variant), 400, `${path}: ${name}`);
      // An indefinite-length byte string inside the envelope (the last field's value).
      expectRefused(await postCbor(s.base, path, Uint8Array.of(0xa1, 0x67, ...Buffer.from('version'), 0x5f, 0x41, 0x02, 0xff)), 400, `${path}: indefinite bytes`);
      // A wrong media type is refused even with a valid body.
      expectRefused(await postCbor(s.base, path, bytes, { 'content-type': 'text/plain' }), 400, `${path}: text/plain`);
    }
    // The pending session was not harmed by garbage and still confirms.
    await confirmSession(pending);
  });

  it('a sealed plaintext that is malformed: 400 (after the record opened)', async () => {
    const session = await establish(s);
    const bad = encodeAppRequest({ method: 'GET', path: '/x', headers: {}, body: null });
    for (const plaintext of [Uint8Array.from([...bad, 0]), Uint8Array.from([0xbf, ...bad.subarray(1), 0xff]), new Uint8Array(0), Uint8Array.of(0xf9, 0x3c, 0x00)]) {
      expectRefused(await request(s.base, sealBytes(session, plaintext).bytes), 400);
    }
  });
});

describe('bodies of the wrong shape: 400 from their first byte, before the rest is read', () => {
  const head = (path: string, length: number) => `POST ${path} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/cbor\r\nContent-Length: ${length}\r\n\r\n`;

  it.each([
    ['/e2p/v2/request', 'one CBOR array of 32 MiB', 0x9a],
    ['/e2p/v2/request', 'a map of 24 entries', 0xb8],
    ['/e2p/v2/confirm', 'a byte string', 0x5a],
    ['/e2p/v2/session', 'an indefinite map', 0xbf],
  ])('%s: %s is refused while it is still being sent', async (path, _what, first) => {
    const total = path === '/e2p/v2/request' ? MAX_REQUEST_ENVELOPE_BYTES : 4096;
    const zeros = new Uint8Array(Math.min(1 << 20, total));
    // A head the decoder would have to expand (0x9a 0x01 0xff 0xff 0xf0: 33,554,416 one-byte items), or another wrong shape.
    const opening = Uint8Array.from(zeros);
    opening.set([first, 0x01, 0xff, 0xff, 0xf0]);
    const answer = await rawExchange(s.agent.addresses.public, head(path, total), async (write, answered) => {
      for (let sent = 0; sent < total && !answered(); sent += zeros.length) {
        if (!write(sent === 0 ? opening : zeros)) await new Promise((resolve) => setTimeout(resolve, 2));
        await new Promise((resolve) => setImmediate(resolve));
      }
    });
    expect(answer.status).toBe(400);
    expect(answer.raw).toContain('\r\n\r\n{"error":"protocol_error"}');
    expect(answer.raw.toLowerCase()).toContain('connection: close');
    // Answered from the first chunk: a large body was not waited for (the old decoder read all of it).
    if (total > 4096) expect(answer.sentBytes).toBeLessThan(total);
  });
});

describe('oversize bodies: 413 before the body ends', () => {
  const head = (path: string, headers: string) => `POST ${path} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/cbor\r\n${headers}\r\n`;

  it.each([
    ['/e2p/v2/request', MAX_REQUEST_ENVELOPE_BYTES],
    ['/e2p/v2/session', 4096],
    ['/e2p/v2/confirm', 4096],
  ])('%s: a declared Content-Length over %i is answered without sending the body', async (path, limit) => {
    const answer = await rawExchange(s.agent.addresses.public, head(path, `Content-Length: ${limit + 1}\r\n`));
    expect(answer.status).toBe(413);
    expect(answer.raw).toContain('\r\n\r\n{"error":"too_large"}');
    expect(answer.raw.toLowerCase()).toContain('cache-control: no-store');
    expect(answer.sentBytes).toBe(0);
  });

  it.each([
    ['/e2p/v2/request', MAX_REQUEST_ENVELOPE_BYTES],
    ['/e2p/v2/session', 4096],
    ['/e2p/v2/confirm', 4096],
  ])('%s: a chunked body growing past %i is answered while it is still being sent', async (path, limit) => {
    const chunk = new Uint8Array(Math.min(1 << 20, limit)).fill(0xa5);
    // The body opens a 4-entry map (every endpoint's first-byte check passes): only its size is wrong.
    chunk[0] = 0xa4;
    const answer = await rawExchange(s.agent.addresses.public, head(path, 'Transfer-Encoding: chunked\r\n'), async (write, answered) => {
      // Keep sending, never ending the body, until the answer arrives (or 4x the limit: a failure).
      for (let sent = 0; sent < 4 * limit + 4 * chunk.length && !answered(); sent += chunk.length) {
        // All three parts of a chunk always go out (a short-circuit here would corrupt the framing).
        const flowing = [write(`${chunk.length.toString(16)}\r\n`), write(chunk), write('\r\n')].every(Boolean);
        await new Promise((resolve) => (flowing ? setImmediate(resolve) : setTimeout(resolve, 2)));
      }
    });
    expect(answer.status).toBe(413);
    expect(answer.raw).toContain('{"error":"too_large"}');
    expect(answer.raw.toLowerCase()).toContain('connection: close');
    expect(answer.sentBytes).toBeGreaterThan(limit);
    expect(answer.sentBytes).toBeLessThan(4 * limit + 8 * chunk.length);
  }, 30_000);
});

// The session table under a flood, requests in flight and the memory budget: test/steve/capacity.test.ts.
describe('capacity: 429 busy', () => {
  it('a full NSM queue refuses new sessions; an NSM failure is 503', async () => {
    const inner = openMockNsm({ pki: mockPki(), logger: silentLogger });
    let gate: (() => void) | undefined;
    let fail = false;
    const gated: Nsm = {
      ...inner,
      kind: 'mock',
      async attest(options) {
        if (fail) throw Object.assign(new Error('device gone'), { code: 'NSM_EIO' });
        await new Promise<void>((resolve) => (gate = resolve));
        return inner.attest(options);
      },
      close: () => inner.close(),
    };
    const busy = await startStack({ suite: 'X25519', upstream: app.url, nsm: gated, config: { nsmConcurrency: 1, nsmQueueMax: 0 }, logger: pino({ level: 'silent' }) });
    extra.push(busy);
    const first = postCbor(busy.base, '/e2p/v2/session', sessionRequest('X25519').bytes);
    while (gate === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
    expectRefused(await postCbor(busy.base, '/e2p/v2/session', sessionRequest('X25519').bytes), 429);
    gate();
    expect((await first).status).toBe(200);
    fail = true;
    const failed = await postCbor(busy.base, '/e2p/v2/session', sessionRequest('X25519').bytes);
    expect(failed.status).toBe(503);
    expect(text(failed.body)).toBe('{"error":"attestation_unavailable"}');
    await inner.close();
  });
});

describe('the app', () => {
  it('received not one request from this whole file', () => {
    expect(app.hits).toEqual([]);
  });
});
