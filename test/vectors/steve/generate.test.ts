/**
 * Generates and guards test/vectors/steve/kat.json: known-answer vectors for a whole STEVE v2 session in
 * each suite (specs/steve.md §3-§5) from fixed inputs: key material, shared secret, the session request
 * and response CBOR, transcript and its hash, the five HKDF outputs, the binding user_data, and the
 * sealed confirmation records both ways and one application request and response, with their nonces,
 * AADs, plaintexts and envelopes.
 *
 *   STEVE_KAT_WRITE=1 npx vitest run test/vectors/steve/generate.test.ts   rewrites kat.json
 *   npx vitest run test/vectors/steve                                      asserts the code reproduces it byte for byte
 *
 * The file is ours (provenance in README.md); its X25519 and X-Wing steps rest on the RFC 7748 and
 * draft-10 vectors that kem.test.ts checks. The test also replays each vector from the consumer's side
 * (decode, open, compare) so the file is useful to another implementation.
 */

import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  DIRECTION,
  MESSAGE_TYPE,
  checkBindingUserData,
  decodeAppRequest,
  decodeAppResponse,
  decodeEnvelope,
  decodeSessionRequest,
  decodeSessionResponse,
  deriveSessionKeys,
  encodeAppRequest,
  encodeAppResponse,
  encodeBindingUserData,
  encodeEnvelope,
  encodeSessionRequest,
  encodeSessionResponse,
  keyExchangeFor,
  nobleAesGcm,
  openRecord,
  recordAad,
  recordNonce,
  sealRecord,
  transcript,
  transcriptHash,
  type Direction,
  type MessageType,
  type SessionKeys,
  type Suite,
} from '../../../steve/index.js';
import { KAT_URL, fixedRandom, hex, unhex } from './vectors.js';

const range = (length: number, start: number): Uint8Array => Uint8Array.from({ length }, (_, i) => (start + i) & 0xff);
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

/** The fixed inputs, also written into the file so a reader needs nothing else. */
const ORIGIN = 'https://app.example';
const INPUTS = {
  clientRandom: range(32, 0x01),
  serverRandom: { X25519: range(32, 0x21), 'XWING-DRAFT10': range(64, 0x41) } as Record<Suite, Uint8Array>,
  clientNonce: range(32, 0xa0),
  sessionId: range(16, 0xc0),
  contextHash: new Uint8Array(createHash('sha256').update(ORIGIN).digest()),
  attestationDocument: utf8('not a real attestation document'),
  expiresInSeconds: 30,
};
const APP_REQUEST = {
  method: 'POST',
  path: '/api/echo?x=1',
  headers: { 'content-type': 'application/json', accept: 'application/json' },
  body: utf8('{"hello":"world"}'),
};
const APP_RESPONSE = {
  status: 200,
  headers: [
    ['content-type', 'application/json'],
    ['set-cookie', 'a=1'],
    ['set-cookie', 'b=2'],
  ] as Array<[string, string]>,
  body: utf8('{"hello":"world"}'),
};

interface RecordVector {
  type: MessageType;
  direction: Direction;
  sequence: number;
  nonce: string;
  aad: string;
  plaintext: string;
  sealed: string;
  envelope: string;
}

function record(keys: SessionKeys, type: MessageType, direction: Direction, sequence: number, plaintext: Uint8Array): RecordVector {
  const header = { type, direction, sessionId: INPUTS.sessionId, sequence };
  const sealed = sealRecord(nobleAesGcm, keys, header, plaintext);
  const iv = direction === DIRECTION.C2S ? keys.c2sIv : keys.s2cIv;
  return {
    type,
    direction,
    sequence,
    nonce: hex(recordNonce(iv, sequence)),
    aad: hex(recordAad(type, direction, INPUTS.sessionId, sequence)),
    plaintext: hex(plaintext),
    sealed: hex(sealed),
    envelope: hex(encodeEnvelope({ sessionId: INPUTS.sessionId, sequence, ciphertext: sealed })),
  };
}

function sessionVector(suite: Suite) {
  const exchange = keyExchangeFor(suite);
  const client = exchange.generateClientKeyPair(fixedRandom(INPUTS.clientRandom));
  const server = exchange.serverRespond(client.material, fixedRandom(INPUTS.serverRandom[suite]));
  const sharedSecret = hex(server.sharedSecret);
  const transcriptInput = {
    suite,
    clientNonce: INPUTS.clientNonce,
    clientKeyMaterial: client.material,
    serverKeyMaterial: server.serverMaterial,
    sessionId: INPUTS.sessionId,
    contextHash: INPUTS.contextHash,
  };
  const hash = transcriptHash(transcriptInput);
  const keys = deriveSessionKeys(server.sharedSecret, hash);
  return {
    suite,
    inputs: {
      clientRandom: hex(INPUTS.clientRandom),
      serverRandom: hex(INPUTS.serverRandom[suite]),
      clientNonce: hex(INPUTS.clientNonce),
      sessionId: hex(INPUTS.sessionId),
      contextOrigin: ORIGIN,
      contextHash: hex(INPUTS.contextHash),
      attestationDocument: hex(INPUTS.attestationDocument),
      expiresInSeconds: INPUTS.expiresInSeconds,
    },
    clientKeyMaterial: hex(client.material),
    clientSecret: hex(client.secret),
    serverKeyMaterial: hex(server.serverMaterial),
    sharedSecret,
    sessionRequest: hex(encodeSessionRequest({ suite, clientNonce: INPUTS.clientNonce, clientKeyMaterial: client.material, contextHash: INPUTS.contextHash })),
    sessionResponse: hex(
      encodeSessionResponse({
        suite,
        sessionId: INPUTS.sessionId,
        serverKeyMaterial: server.serverMaterial,
        attestationDocument: INPUTS.attestationDocument,
        expiresInSeconds: INPUTS.expiresInSeconds,
      }),
    ),
    transcript: hex(transcript(transcriptInput)),
    transcriptHash: hex(hash),
    keys: { c2sKey: hex(keys.c2sKey), s2cKey: hex(keys.s2cKey), c2sIv: hex(keys.c2sIv), s2cIv: hex(keys.s2cIv), binder: hex(keys.binder) },
    bindingUserData: new TextDecoder().decode(encodeBindingUserData({ suite, sessionId: INPUTS.sessionId, transcriptHash: hash, binder: keys.binder })),
    confirmation: {
      c2s: record(keys, MESSAGE_TYPE.CONFIRMATION, DIRECTION.C2S, 0, hash),
      s2c: record(keys, MESSAGE_TYPE.CONFIRMATION, DIRECTION.S2C, 0, hash),
    },
    application: {
      request: record(keys, MESSAGE_TYPE.APPLICATION, DIRECTION.C2S, 1, encodeAppRequest(APP_REQUEST)),
      response: record(keys, MESSAGE_TYPE.APPLICATION, DIRECTION.S2C, 1, encodeAppResponse(APP_RESPONSE)),
    },
  };
}

type SessionVector = ReturnType<typeof sessionVector>;

function generate(): string {
  const kat = {
    description: 'STEVE v2 known-answer vectors (specs/steve.md §3-§5). Generated by test/vectors/steve/generate.test.ts; hex unless noted.',
    protocol: 'STEVE-E2P-V2',
    vectors: [sessionVector('X25519'), sessionVector('XWING-DRAFT10')],
  };
  return `${JSON.stringify(kat, null, 2)}\n`;
}

describe('STEVE v2 KATs (kat.json)', () => {
  const generated = generate();

  it(process.env.STEVE_KAT_WRITE === '1' ? 'writes kat.json (STEVE_KAT_WRITE=1)' : 'the code reproduces the committed kat.json byte for byte', () => {
    if (process.env.STEVE_KAT_WRITE === '1') {
      writeFileSync(KAT_URL, generated);
    }
    expect(readFileSync(KAT_URL, 'utf8')).toBe(generated);
  });

  const committed = JSON.parse(generated) as { vectors: SessionVector[] };

  it.each(committed.vectors.map((v) => [v.suite, v] as const))('%s: replays from the consumer side', (suite, v) => {
    // The client finishes the exchange with the server's material.
    expect(hex(keyExchangeFor(suite).clientFinish(unhex(v.clientSecret), unhex(v.serverKeyMaterial)))).toBe(v.sharedSecret);
    // The messages decode to the inputs.
    const request = decodeSessionRequest(unhex(v.sessionRequest));
    expect([request.suite, hex(request.clientNonce), hex(request.clientKeyMaterial), hex(request.contextHash)]).toEqual([suite, v.inputs.clientNonce, v.clientKeyMaterial, v.inputs.contextHash]);
    const response = decodeSessionResponse(unhex(v.sessionResponse));
    expect([hex(response.sessionId), hex(response.serverKeyMaterial), response.expiresInSeconds]).toEqual([v.inputs.sessionId, v.serverKeyMaterial, 30]);
    // The transcript hash is SHA-256 of the transcript; the keys come from the shared secret.
    expect(createHash('sha256').update(unhex(v.transcript)).digest('hex')).toBe(v.transcriptHash);
    const keys = deriveSessionKeys(unhex(v.sharedSecret), unhex(v.transcriptHash));
    expect({ c2sKey: hex(keys.c2sKey), s2cKey: hex(keys.s2cKey), c2sIv: hex(keys.c2sIv), s2cIv: hex(keys.s2cIv), binder: hex(keys.binder) }).toEqual(v.keys);
    checkBindingUserData(utf8(v.bindingUserData), { suite, sessionId: response.sessionId, transcriptHash: unhex(v.transcriptHash), binder: keys.binder });
    // Every record opens from its envelope to its plaintext.
    for (const r of [v.confirmation.c2s, v.confirmation.s2c, v.application.request, v.application.response]) {
      const envelope = decodeEnvelope(unhex(r.envelope));
      expect([hex(envelope.sessionId), envelope.sequence, hex(envelope.ciphertext)]).toEqual([v.inputs.sessionId, r.sequence, r.sealed]);
      const plaintext = openRecord(nobleAesGcm, keys, { type: r.type, direction: r.direction, sessionId: envelope.sessionId, sequence: envelope.sequence }, envelope.ciphertext);
      expect(hex(plaintext)).toBe(r.plaintext);
    }
    expect(v.confirmation.c2s.plaintext).toBe(v.transcriptHash);
    expect(decodeAppRequest(unhex(v.application.request.plaintext)).path).toBe(APP_REQUEST.path);
    expect(decodeAppResponse(unhex(v.application.response.plaintext)).headers).toEqual(APP_RESPONSE.headers);
  });
});
