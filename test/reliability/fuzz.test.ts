/**
 * Fuzzing of every decoder of untrusted bytes, each one fast-check property with a fixed seed and a time
 * budget (RELIABILITY_FUZZ_MS per property, default 3 s; the run stops at the budget or at MAX_RUNS,
 * whichever comes first, and an interrupted run is not a failure). Inputs mix random bytes, mutated
 * valid encodings (inputs.ts: bit flips, truncation, extension, length-field edits, ...) and
 * structure-aware CBOR (the right keys with wrong types, extra keys, wrong nesting).
 *
 * The property: a decoder returns a value or throws its own error class with a code from its known set,
 * never a TypeError, a RangeError or anything else. The unit tests next to each decoder hold the exact
 * code for each defect; this file holds "nothing uncoded escapes" over many more inputs.
 *
 * Then the same through HTTP, bounded in runs: POST/GET /attestation bodies and queries, and garbage on
 * the three STEVE endpoints, against the real agent in process: statuses only in the allowed set, never
 * 5xx, and the app never reached.
 */

import { sign } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CborError, decodeCbor, encodeCbor, type CborInput } from '../../cbor/index.js';
import {
  AWS_NITRO_ROOT_G1_DER,
  NsmError,
  decodeNsmRequest,
  decodeNsmResponse,
  encodeNsmRequest,
  encodeNsmResponse,
  nobleP384Verifier,
  nodeP384Verifier,
  openMockNsm,
  parseAttestationDocument,
  verifyAttestationDocument,
  type NsmRequest,
  type NsmResponse,
} from '../../nsm/index.js';
import { NSM_REPLY_ERROR_CODES } from '../../nsm/errors.js';
import { ES384_PROTECTED_HEADER, encodeAttestationDocument, encodeDocumentPayload, encodeSigStructure } from '../../nsm/document.js';
import {
  MAX_CONFIRMATION_REQUEST_BYTES,
  SteveError,
  checkBindingUserData,
  decodeAppRequest,
  decodeAppResponse,
  decodeEnvelope,
  decodeSessionRequest,
  decodeSessionResponse,
  encodeAppRequest,
  encodeAppResponse,
  encodeBindingUserData,
  encodeEnvelope,
  encodeSessionRequest,
  encodeSessionResponse,
  type Binding,
} from '../../steve/index.js';
import { signMockDocument, silentLogger } from '../mock-documents.js';
import { call, confirmationEnvelope, establish, mockPki, openSession, postCbor, sealBytes, sessionRequest, startDemoApp, startStack, type DemoApp, type Stack } from '../steve/harness.js';
import { loadNitroVectors } from '../vectors/nitro.js';
import { cborValue, hostile, mapWithKeys, mutate, mutationArbitrary } from './inputs.js';

const BUDGET_MS = Number(process.env.RELIABILITY_FUZZ_MS ?? 3000);
/** An upper bound that keeps a fast machine's run finite and reproducible. */
const MAX_RUNS = 1_000_000;
const SEED = 0x8e11ab1e;

type ErrorClass = typeof SteveError | typeof NsmError | typeof CborError;

/** Returns 'ok' or the code; throws (failing the property) for any other exception or an unknown code. */
function outcome(run: () => unknown, errorClass: ErrorClass, codes: ReadonlySet<string>): string {
  try {
    run();
    return 'ok';
  } catch (error) {
    if (!(error instanceof errorClass)) throw new Error(`not a ${errorClass.name}: ${String(error)}`, { cause: error });
    if (!codes.has(error.code)) throw new Error(`unknown code ${error.code} (${error.message})`);
    return error.code;
  }
}

/** Runs `property` under the time budget; returns how often each outcome occurred. */
function fuzz<T>(arbitrary: fc.Arbitrary<T>, check: (input: T) => string, seed = SEED): Map<string, number> {
  const seen = new Map<string, number>();
  const details = fc.check(
    fc.property(arbitrary, (input) => {
      const result = check(input);
      seen.set(result, (seen.get(result) ?? 0) + 1);
    }),
    { seed, numRuns: MAX_RUNS, interruptAfterTimeLimit: BUDGET_MS, markInterruptAsFailure: false },
  );
  if (details.failed) throw new Error(fc.defaultReportMessage(details) ?? 'property failed');
  expect(details.numRuns).toBeGreaterThan(0);
  return seen;
}

const log = (name: string, seen: Map<string, number>): void =>
  void process.stdout.write(`[fuzz] ${name}: ${[...seen.values()].reduce((a, b) => a + b, 0)} runs, ${[...seen].map(([code, n]) => `${code} x${n}`).join(', ')}\n`);

const bytes = (length: number, fill: number): Uint8Array => new Uint8Array(length).fill(fill);
const STEVE_DECODER_CODES = new Set(['STEVE_PROTOCOL', 'STEVE_SUITE', 'STEVE_TOO_LARGE']);
const CBOR_CODES = new Set<string>(['CBOR_TRUNCATED', 'CBOR_TRAILING_BYTES', 'CBOR_MALFORMED', 'CBOR_UNSUPPORTED', 'CBOR_INDEFINITE_LENGTH', 'CBOR_NON_CANONICAL', 'CBOR_DUPLICATE_KEY', 'CBOR_BAD_KEY', 'CBOR_TOO_DEEP', 'CBOR_TOO_MANY_ITEMS', 'CBOR_INTEGER_RANGE', 'CBOR_INVALID_UTF8']);
const NSM_RESPONSE_CODES = new Set<string>(['NSM_BAD_RESPONSE', ...Object.values(NSM_REPLY_ERROR_CODES)]);
const ATTESTATION_CODES = new Set<string>([
  'ATTESTATION_MALFORMED',
  'ATTESTATION_UNSUPPORTED_ALGORITHM',
  'ATTESTATION_BAD_SIGNATURE',
  'ATTESTATION_CHAIN',
  'ATTESTATION_ROOT',
  'ATTESTATION_EXPIRED',
  'ATTESTATION_NONCE',
  'ATTESTATION_PCR',
  'ATTESTATION_DEBUG',
]);

// ---------------------------------------------------------------------------------------------------
// STEVE messages

const sessionRequests = [
  encodeSessionRequest({ suite: 'X25519', clientNonce: bytes(32, 1), clientKeyMaterial: bytes(32, 9), contextHash: bytes(32, 2) }),
  encodeSessionRequest({ suite: 'XWING-DRAFT10', clientNonce: bytes(32, 1), clientKeyMaterial: bytes(1216, 9), contextHash: bytes(32, 2) }),
];
const sessionResponses = [
  encodeSessionResponse({ suite: 'X25519', sessionId: bytes(16, 3), serverKeyMaterial: bytes(32, 4), attestationDocument: bytes(64, 0x84), expiresInSeconds: 30 }),
  encodeSessionResponse({ suite: 'XWING-DRAFT10', sessionId: bytes(16, 3), serverKeyMaterial: bytes(1120, 4), attestationDocument: bytes(64, 0x84), expiresInSeconds: 30 }),
];
const envelopes = [encodeEnvelope({ sessionId: bytes(16, 5), sequence: 0, ciphertext: bytes(48, 6) }), encodeEnvelope({ sessionId: bytes(16, 5), sequence: 2 ** 40 + 7, ciphertext: bytes(16, 6) })];
const appRequests = [
  encodeAppRequest({ method: 'POST', path: '/x?y=1', headers: { 'content-type': 'application/json', cookie: 'a=1' }, body: Uint8Array.of(123, 125) }),
  encodeAppRequest({ method: 'GET', path: '/', headers: {}, body: null }),
];
const appResponses = [
  encodeAppResponse({ status: 201, headers: [['set-cookie', 'a=1'], ['set-cookie', 'b=2']], body: bytes(10, 7) }),
  encodeAppResponse({ status: 502, headers: [], body: null, error: 'upstream_unavailable' }),
];
const binding: Binding = { suite: 'X25519', sessionId: bytes(16, 1), transcriptHash: bytes(32, 2), binder: bytes(32, 3) };

const suiteValue = () => fc.constantFrom<CborInput>('X25519', 'XWING-DRAFT10', 'x25519', 'XWING');
const byteLengths = (...lengths: number[]) => fc.constantFrom(...lengths).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })) as fc.Arbitrary<CborInput>;

describe('STEVE decoders: only coded SteveErrors', () => {
  it('decodeSessionRequest', () => {
    const structured = mapWithKeys(['version', 'key_exchange', 'client_nonce', 'client_key_material', 'context_hash'], (key) =>
      key === 'version' ? fc.constantFrom<CborInput>(1, 2, 3, '2') : key === 'key_exchange' ? suiteValue() : byteLengths(31, 32, 33, 1216),
    );
    log('decodeSessionRequest', fuzz(hostile(sessionRequests, structured, 1400), (input) => outcome(() => decodeSessionRequest(input), SteveError, STEVE_DECODER_CODES)));
  });

  it('decodeSessionResponse (the client side)', () => {
    const structured = mapWithKeys(['version', 'key_exchange', 'session_id', 'server_key_material', 'attestation_document', 'expires_in_seconds'], (key) =>
      key === 'version' ? fc.constantFrom<CborInput>(2, 3) : key === 'key_exchange' ? suiteValue() : key === 'expires_in_seconds' ? fc.constantFrom<CborInput>(0, 1, 30, -1, Number.MAX_SAFE_INTEGER) : byteLengths(15, 16, 32, 1120),
    );
    log('decodeSessionResponse', fuzz(hostile(sessionResponses, structured, 1400), (input) => outcome(() => decodeSessionResponse(input), SteveError, STEVE_DECODER_CODES)));
  });

  it('decodeEnvelope (with the confirmation limit too)', () => {
    const structured = mapWithKeys(['version', 'session_id', 'sequence', 'ciphertext'], (key) => (key === 'version' ? fc.constantFrom<CborInput>(2) : key === 'sequence' ? byteLengths(0, 7, 8, 9) : byteLengths(15, 16, 17, 48)));
    log(
      'decodeEnvelope',
      fuzz(fc.tuple(hostile(envelopes, structured), fc.boolean()), ([input, confirmation]) =>
        outcome(() => decodeEnvelope(input, confirmation ? { maxBytes: MAX_CONFIRMATION_REQUEST_BYTES } : {}), SteveError, STEVE_DECODER_CODES),
      ),
    );
  });

  it('decodeAppRequest', () => {
    const headers = fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(fc.string({ maxLength: 12 }), cborValue), { maxKeys: 4 }).map((d) => new Map<string, CborInput>(Object.entries(d)) as CborInput);
    const structured = mapWithKeys(['method', 'path', 'headers', 'body'], (key) =>
      key === 'method' ? fc.constantFrom<CborInput>('GET', 'get', 'CONNECT', 'G ET', '') : key === 'path' ? fc.constantFrom<CborInput>('/', '//x', 'http://a/', '/a b', '/\u0000', '') : key === 'headers' ? headers : cborValue,
    );
    log('decodeAppRequest', fuzz(hostile(appRequests, structured), (input) => outcome(() => decodeAppRequest(input), SteveError, STEVE_DECODER_CODES)));
  });

  it('decodeAppResponse (the client side)', () => {
    const pairs = fc.array(fc.oneof(fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 })) as fc.Arbitrary<CborInput>, cborValue), { maxLength: 4 }) as fc.Arbitrary<CborInput>;
    const structured = mapWithKeys(['status', 'headers', 'body', 'error'], (key) => (key === 'status' ? fc.constantFrom<CborInput>(100, 199, 200, 599, 600, -200) : key === 'headers' ? pairs : cborValue));
    log('decodeAppResponse', fuzz(hostile(appResponses, structured), (input) => outcome(() => decodeAppResponse(input), SteveError, STEVE_DECODER_CODES)));
  });

  it('checkBindingUserData (user_data from a document)', () => {
    const valid = encodeBindingUserData(binding);
    const json = fc
      .record({ protocol: fc.oneof(fc.string(), fc.constant('steve/2')), key_exchange: fc.constantFrom('X25519', 'XWING-DRAFT10', 1), session_id: fc.string(), transcript_hash: fc.string(), binder: fc.string() }, { requiredKeys: [] })
      .map((o) => new TextEncoder().encode(JSON.stringify(o)));
    log('checkBindingUserData', fuzz(hostile([valid], json, 300), (input) => outcome(() => checkBindingUserData(input, binding), SteveError, new Set(['STEVE_BINDING']))));
  });
});

// ---------------------------------------------------------------------------------------------------
// CBOR and the NSM layer

describe('CBOR and NSM decoders: only coded errors', () => {
  it('decodeCbor, strict canonical and the document payload mode', () => {
    const structured = cborValue.map((value) => encodeCbor(value));
    const samples = [...sessionRequests, ...envelopes, ...appResponses, Uint8Array.of(0xbf, 0x61, 0x61, 0x01, 0xff)];
    log(
      'decodeCbor',
      fuzz(fc.tuple(hostile(samples, structured), fc.constantFrom({ canonical: true, allowIndefinite: false }, { allowIndefinite: true }, {})), ([input, options]) => outcome(() => decodeCbor(input, options), CborError, CBOR_CODES)),
    );
  });

  const RESPONSE_TYPES: Array<NsmRequest['type']> = ['DescribeNSM', 'GetRandom', 'DescribePCR', 'ExtendPCR', 'LockPCR', 'LockPCRs', 'Attestation'];
  const responses: NsmResponse[] = [
    { type: 'DescribeNSM', description: { versionMajor: 1, versionMinor: 0, versionPatch: 0, moduleId: 'i-0-enc0', maxPcrs: 32, lockedPcrs: [0, 1, 2], digest: 'SHA384' } },
    { type: 'GetRandom', random: bytes(256, 1) },
    { type: 'DescribePCR', pcr: { locked: true, value: bytes(48, 2) } },
    { type: 'ExtendPCR', value: bytes(48, 3) },
    { type: 'LockPCR' },
    { type: 'LockPCRs' },
    { type: 'Attestation', document: bytes(100, 4) },
    { type: 'Error', error: 'InvalidIndex' },
  ];

  it('decodeNsmResponse, for every request type', () => {
    const fields = ['version_major', 'version_minor', 'version_patch', 'module_id', 'max_pcrs', 'locked_pcrs', 'digest', 'random', 'lock', 'data', 'document'];
    const structured = fc
      .tuple(fc.constantFrom<string>(...RESPONSE_TYPES, 'Error', 'error', '__proto__'), fc.oneof(mapWithKeys(fields).map((b) => decodeCbor(b) as CborInput), fc.constantFrom<CborInput>(...Object.keys(NSM_REPLY_ERROR_CODES), 'toString', '__proto__', 7)))
      .map(([name, body]) => encodeCbor(new Map([[name, body]])));
    const samples = responses.map(encodeNsmResponse);
    log(
      'decodeNsmResponse',
      fuzz(fc.tuple(hostile(samples, fc.oneof(structured, fc.constantFrom(...RESPONSE_TYPES).map((t) => encodeCbor(t)))), fc.constantFrom(...RESPONSE_TYPES)), ([input, expected]) =>
        outcome(() => decodeNsmResponse(input, expected), NsmError, NSM_RESPONSE_CODES),
      ),
    );
  });

  it('decodeNsmRequest (the mock side of the wire)', () => {
    const requests: NsmRequest[] = [
      { type: 'DescribeNSM' },
      { type: 'DescribePCR', index: 3 },
      { type: 'ExtendPCR', index: 16, data: bytes(10, 1) },
      { type: 'LockPCRs', range: 16 },
      { type: 'Attestation', userData: bytes(20, 2), nonce: null, publicKey: bytes(10, 3) },
    ];
    const structured = fc
      .tuple(fc.constantFrom('DescribePCR', 'LockPCR', 'LockPCRs', 'ExtendPCR', 'Attestation', 'GetRandom'), mapWithKeys(['index', 'range', 'data', 'user_data', 'nonce', 'public_key']).map((b) => decodeCbor(b) as CborInput))
      .map(([name, body]) => encodeCbor(new Map([[name, body]])));
    log('decodeNsmRequest', fuzz(hostile(requests.map(encodeNsmRequest), structured), (input) => outcome(() => decodeNsmRequest(input), NsmError, new Set(['NSM_INVALID_OPERATION']))));
  });
});

// ---------------------------------------------------------------------------------------------------
// Attestation documents

describe('attestation documents: only coded NsmErrors', () => {
  const pki = mockPki();
  const atMs = pki.leaf.notBefore.getTime() + 120_000;
  const mockDocument = signMockDocument(pki, { nonce: bytes(32, 1), userData: bytes(200, 2) });
  const vectors = loadNitroVectors();
  const PAYLOAD_KEYS = ['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce'];

  /** A COSE_Sign1 built from parts: any protected header, unprotected map, payload map and signature. */
  const structuredDocument = fc
    .tuple(
      fc.oneof(fc.constant(ES384_PROTECTED_HEADER), cborValue.map((v) => encodeCbor(v)), fc.uint8Array({ maxLength: 8 })),
      fc.oneof(fc.constant(new Map()), cborValue),
      mapWithKeys(PAYLOAD_KEYS, (key) =>
        key === 'pcrs'
          ? fc.array(fc.tuple(fc.integer({ min: -1, max: 40 }), byteLengths(0, 32, 48, 64)), { maxLength: 4 }).map((e) => new Map<number, CborInput>(e) as CborInput)
          : key === 'cabundle'
            ? fc.array(fc.oneof(fc.constant(pki.root.der as CborInput), byteLengths(0, 10)), { maxLength: 3 })
            : key === 'timestamp'
              ? fc.constantFrom<CborInput>(0, 1, atMs, -1, Number.MAX_SAFE_INTEGER)
              : cborValue,
      ),
      fc.oneof(byteLengths(0, 95, 96, 97), cborValue),
      fc.boolean(),
    )
    .map(([header, unprotected, payload, signature, tagged]) => {
      const document = encodeCbor([header, unprotected, payload, signature]);
      return tagged ? Uint8Array.from([0xd2, ...document]) : document;
    });

  it('parseAttestationDocument', () => {
    const samples = [mockDocument, ...vectors.map((v) => v.bytes)];
    log('parseAttestationDocument', fuzz(hostile(samples, structuredDocument, 2048), (input) => outcome(() => parseAttestationDocument(input), NsmError, new Set(['ATTESTATION_MALFORMED']))));
  });

  it('verifyAttestationDocument: mutated mock and AWS documents, both P-384 verifiers', () => {
    const samples = [{ bytes: mockDocument, root: pki.root.der, atMs }, ...vectors.map((v) => ({ bytes: v.bytes, root: AWS_NITRO_ROOT_G1_DER, atMs: v.timestampMs }))];
    const input = fc.tuple(fc.constantFrom(...samples), fc.array(mutationArbitrary, { minLength: 1, maxLength: 3 }), fc.boolean());
    log(
      'verifyAttestationDocument (mutated)',
      fuzz(input, ([sample, mutations, noble]) =>
        outcome(
          () => verifyAttestationDocument(mutations.reduce(mutate, sample.bytes), { atMs: sample.atMs, root: sample.root, verifier: noble ? nobleP384Verifier : nodeP384Verifier, allowDebug: true }),
          NsmError,
          ATTESTATION_CODES,
        ),
      ),
    );
  });

  it('verifyAttestationDocument: validly signed documents carrying mutated certificates (the X.509 parser)', () => {
    // The COSE signature verifies (signed with the mock leaf key), so the verifier goes on to parse the
    // leaf and every cabundle entry: hostile DER reaches the X.509 code.
    const certs = [pki.leaf.der, ...pki.intermediates.map((c) => c.der)];
    const input = fc.tuple(fc.integer({ min: 0, max: certs.length - 1 }), fc.array(mutationArbitrary, { minLength: 1, maxLength: 3 }));
    log(
      'verifyAttestationDocument (mutated certificates)',
      fuzz(input, ([which, mutations]) => {
        const chain = certs.map((der, i) => (i === which ? mutations.reduce(mutate, der) : der));
        const document = signMockDocument(pki, { certificate: chain[0]!, cabundle: [pki.root.der, ...chain.slice(1)] });
        return outcome(() => verifyAttestationDocument(document, { atMs, root: pki.root.der, verifier: nodeP384Verifier }), NsmError, ATTESTATION_CODES);
      }),
    );
  });

  it('the samples are what they should be (the fuzzing starts from valid documents)', () => {
    expect(verifyAttestationDocument(mockDocument, { atMs, root: pki.root.der, verifier: nodeP384Verifier }).nonce).toEqual(bytes(32, 1));
    for (const v of vectors) expect(() => verifyAttestationDocument(v.bytes, { atMs: v.timestampMs, verifier: nodeP384Verifier, allowDebug: true })).not.toThrow();
    // A re-signed payload: the helper the certificate property relies on.
    const payload = encodeDocumentPayload({ moduleId: pki.moduleId, timestamp: atMs, pcrs: new Map([[0, bytes(48, 1)]]), certificate: pki.leaf.der, cabundle: [pki.root.der], publicKey: null, userData: null, nonce: null });
    const signature = sign('sha384', encodeSigStructure(ES384_PROTECTED_HEADER, payload), { key: pki.leaf.privateKey, dsaEncoding: 'ieee-p1363' });
    expect(parseAttestationDocument(encodeAttestationDocument(ES384_PROTECTED_HEADER, payload, new Uint8Array(signature))).moduleId).toBe(pki.moduleId);
  });
});

// ---------------------------------------------------------------------------------------------------
// Through HTTP, against the real agent

describe('through HTTP: statuses only in the allowed set, never 5xx, the app never reached', () => {
  let app: DemoApp;
  let s: Stack;
  /** Bounded in runs (each is a loopback request, the 200s an NSM signature). */
  const HTTP_RUNS = Number(process.env.RELIABILITY_FUZZ_HTTP_RUNS ?? 300);

  beforeAll(async () => {
    app = await startDemoApp();
    s = await startStack({ suite: 'X25519', upstream: app.url, nsm: openMockNsm({ pki: mockPki(), logger: silentLogger }) });
  });
  afterAll(async () => {
    await s.stop();
    await app.close();
  });

  const base64Of = (length: number) => fc.uint8Array({ minLength: length, maxLength: length }).map((b) => Buffer.from(b).toString('base64'));
  const nonceValue = fc.oneof(
    fc.integer({ min: 0, max: 600 }).chain(base64Of),
    base64Of(32).map((b) => b.replace(/=+$/, '')),
    base64Of(32).map((b) => b.replace(/\+/g, '-')),
    fc.string({ maxLength: 64 }),
    fc.constantFrom<unknown>(null, 0, true, [], {}, ['AAAA'], 'AAAA\n', ' AAAA', 'AA==AA=='),
  );
  const attestationBody = fc.oneof(
    fc.record({ nonce: nonceValue }).map((o) => JSON.stringify(o)),
    fc.record({ nonce: nonceValue, extra: fc.jsonValue() }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1')),
    fc.integer({ min: 4000, max: 6000 }).map((n) => JSON.stringify({ nonce: 'A'.repeat(n) })),
  );

  /** 4xx answers are `{"errors": [text]}`, no-store; 200 only for a nonce that is standard base64 of 1..512 bytes. */
  async function postAttestation(body: string): Promise<number> {
    const reply = await call(`${s.base}/attestation`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect([200, 400, 413]).toContain(reply.status);
    expect(reply.headers['cache-control']).toBe('no-store');
    if (reply.status === 413) expect(Buffer.byteLength(body)).toBeGreaterThan(4096);
    if (reply.status !== 200) {
      const parsed = JSON.parse(Buffer.from(reply.body).toString('utf8')) as { errors: unknown };
      expect(Array.isArray(parsed.errors) && parsed.errors.every((e) => typeof e === 'string')).toBe(true);
      return reply.status;
    }
    const nonce = (JSON.parse(body) as { nonce: string }).nonce;
    const decoded = Buffer.from(nonce, 'base64');
    expect(decoded.length).toBeGreaterThanOrEqual(1);
    expect(decoded.length).toBeLessThanOrEqual(512);
    expect(decoded.toString('base64')).toBe(nonce);
    return 200;
  }

  it('POST /attestation bodies', async () => {
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(attestationBody, async (body) => {
        const status = await postAttestation(body);
        seen.set(status, (seen.get(status) ?? 0) + 1);
      }),
      { seed: SEED, numRuns: HTTP_RUNS },
    );
    process.stdout.write(`[fuzz] POST /attestation: ${[...seen].map(([status, n]) => `${status} x${n}`).join(', ')}\n`);
    expect(seen.get(200)).toBeGreaterThan(0);
    expect(seen.get(400)).toBeGreaterThan(0);
  });

  it('GET /attestation?nonce=...', async () => {
    const query = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 600 }).map((b) => Buffer.from(b).toString('hex')),
      fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => Buffer.from(b).toString('base64url')),
      fc.string({ maxLength: 40 }).map(encodeURIComponent),
    );
    await fc.assert(
      fc.asyncProperty(query, async (nonce) => {
        const reply = await call(`${s.base}/attestation?nonce=${nonce}`);
        expect([200, 400]).toContain(reply.status);
      }),
      { seed: SEED + 1, numRuns: HTTP_RUNS },
    );
  });

  it('garbage and mutated messages on /e2p/v2/session, /confirm and /request', async () => {
    const session = await establish(s);
    const pending = await openSession(s);
    const valid: Record<string, Uint8Array[]> = {
      '/e2p/v2/session': [sessionRequest('X25519').bytes],
      '/e2p/v2/confirm': [confirmationEnvelope(pending)],
      // The plaintext is not an application request: even a mutation that changes nothing (a byte set
      // to itself) opens to a 400, never an app call.
      '/e2p/v2/request': [sealBytes(session, Uint8Array.of(0xa0), 1_000_000).bytes],
    };
    const allowed: Record<string, number[]> = {
      // A mutation can leave a message valid (a changed nonce or key byte, a byte set to itself): then
      // the session is created or confirmed (200), and a later confirmation is a replay (409).
      '/e2p/v2/session': [200, 400],
      '/e2p/v2/confirm': [200, 400, 401, 409],
      '/e2p/v2/request': [400, 401, 409],
    };
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...Object.keys(valid)), fc.uint8Array({ maxLength: 300 }), fc.array(mutationArbitrary, { minLength: 1, maxLength: 3 }), fc.boolean(), async (path, random, mutations, useRandom) => {
        const body = useRandom ? random : mutations.reduce(mutate, valid[path]![0]!);
        const reply = await postCbor(s.base, path, body);
        const key = `${path} ${reply.status}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
        expect(allowed[path]).toContain(reply.status);
        expect(reply.headers['cache-control']).toBe('no-store');
      }),
      { seed: SEED + 2, numRuns: HTTP_RUNS },
    );
    process.stdout.write(`[fuzz] STEVE endpoints: ${[...seen].map(([k, n]) => `${k} x${n}`).join(', ')}\n`);
    expect(app.hits).toEqual([]);
  });
});
