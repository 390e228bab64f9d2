/**
 * The attestation document parser and the other decoders of untrusted bytes in nsm/ (certificates,
 * hex/base64/PEM): field extraction from real documents, and property tests that feed them random and
 * mutated bytes: they must return or throw a coded `NsmError`, never anything else, and never hang.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_ITEMS, decodeCbor, encodeCbor, type CborValue } from '../cbor/index.js';
import { signMockDocument } from '../test/mock-documents.js';
import { loadNitroVectors } from '../test/vectors/nitro.js';
import { AWS_NITRO_ROOT_G1_DER } from './aws-root.js';
import { parseAttestationDocument } from './document.js';
import { nodeP384Verifier } from './ecdsa-node.js';
import { base64ToBytes, base64UrlToBytes, bytesToBase64, bytesToBase64Url, bytesToHex, hexToBytes, pemToCertificates } from './encoding.js';
import { NsmError } from './errors.js';
import { createMockPki } from './mock-pki.js';
import { verifyAttestationDocument } from './verify.js';
import { parseCertificate } from './x509.js';

const vectors = loadNitroVectors();
const SEED = 20261121;

/** Runs `fn`; anything thrown must be an NsmError with a code. */
function onlyCodedErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof NsmError) || typeof err.code !== 'string') throw new Error(`uncoded failure: ${String(err)}`, { cause: err });
  }
}

describe('parseAttestationDocument', () => {
  it.each(vectors)('reads $file, definite or indefinite payload map', (v) => {
    const doc = parseAttestationDocument(v.bytes);
    expect(doc.algorithm).toBe(-35);
    expect(bytesToHex(doc.protectedHeader)).toBe('a1013822');
    expect(doc.signature).toHaveLength(96);
    expect(doc.moduleId).toBe(v.moduleId);
    expect(doc.timestamp).toBe(v.timestampMs);
    expect(doc.cabundle).toHaveLength(4);
    expect(doc.payload[0]).toBe(v.indefinite ? 0xbf : 0xa9);
  });

  // cbor/decode.ts DEFAULT_MAX_ITEMS is sized from these counts: the parser decodes the COSE_Sign1
  // envelope and the payload separately, each with the codec's default item budget.
  it.each(vectors)('$file fits the CBOR item budget many times over: 5 items of envelope, 55 of payload', (v) => {
    const fitsIn = (bytes: Uint8Array, maxItems: number): boolean => {
      try {
        decodeCbor(bytes, { allowIndefinite: true, maxItems });
        return true;
      } catch {
        return false;
      }
    };
    const untagged = v.bytes[0] === 0xd2 ? v.bytes.subarray(1) : v.bytes;
    expect([fitsIn(untagged, 5), fitsIn(untagged, 4)]).toEqual([true, false]);
    const { payload } = parseAttestationDocument(v.bytes);
    expect([fitsIn(payload, 55), fitsIn(payload, 54)]).toEqual([true, false]);
    expect(55 * 40).toBeLessThan(DEFAULT_MAX_ITEMS);
  });

  it('a mock document with all 32 PCRs has an 87-item payload and parses', () => {
    const pcrs = new Map(Array.from({ length: 32 }, (_, i) => [i, new Uint8Array(48).fill(i)] as const));
    const doc = parseAttestationDocument(signMockDocument(createMockPki(), { pcrs }));
    expect(doc.pcrs.size).toBe(32);
    const payload: CborValue = decodeCbor(doc.payload, { maxItems: 87 });
    expect(payload).toBeInstanceOf(Map);
    expect(() => decodeCbor(doc.payload, { maxItems: 86 })).toThrowError(expect.objectContaining({ code: 'CBOR_TOO_MANY_ITEMS' }));
  });

  it('accepts the COSE_Sign1 tag (18) and rejects any other tag', () => {
    const bytes = vectors[0]!.bytes;
    expect(parseAttestationDocument(new Uint8Array([0xd2, ...bytes])).moduleId).toBe(vectors[0]!.moduleId);
    expect(() => parseAttestationDocument(new Uint8Array([0xd3, ...bytes]))).toThrowError(expect.objectContaining({ code: 'ATTESTATION_MALFORMED' }));
    expect(() => parseAttestationDocument(new Uint8Array([0xd2, 0xd2, ...bytes]))).toThrowError(expect.objectContaining({ code: 'ATTESTATION_MALFORMED' }));
  });

  it('rejects duplicate payload keys, unknown keys, wrong types and oversize documents', () => {
    const pki = createMockPki();
    const good = parseAttestationDocument(signMockDocument(pki));
    // A payload whose map repeats "nonce": a strict decoder must not pick either value.
    const payload = encodeCbor(new Map<string, unknown>([['nonce', null]]) as never);
    const dup = new Uint8Array([...good.payload.subarray(0, good.payload.length), ...payload.subarray(1)]);
    dup[0] = 0xaa; // map of 10 entries
    const cases = [
      encodeCbor([good.protectedHeader, new Map(), dup, good.signature]),
      encodeCbor([good.protectedHeader, new Map(), encodeCbor({ module_id: 'x', extra: 1 }), good.signature]),
      encodeCbor([good.protectedHeader, new Map([[4, Uint8Array.of(1)]]), good.payload, good.signature]),
      encodeCbor([good.protectedHeader, new Map(), good.payload]),
      encodeCbor([encodeCbor({ alg: -35 }), new Map(), good.payload, good.signature]),
      encodeCbor({ a: 1 }),
      new Uint8Array(0x3001),
    ];
    for (const bytes of cases) {
      expect(() => parseAttestationDocument(bytes)).toThrowError(expect.objectContaining({ code: 'ATTESTATION_MALFORMED' }));
    }
    expect(() => parseAttestationDocument(cases[0]!)).toThrowError(
      expect.objectContaining({ cause: expect.objectContaining({ code: 'CBOR_DUPLICATE_KEY' }) }),
    );
  });

  it('property: random bytes give a coded error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        onlyCodedErrors(() => parseAttestationDocument(bytes));
        onlyCodedErrors(() => verifyAttestationDocument(bytes, { atMs: 0, verifier: nodeP384Verifier }));
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it('property: random CBOR-shaped envelopes give a coded error', () => {
    const leaf = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.string({ maxLength: 16 }), fc.integer(), fc.constant(null), fc.boolean());
    const mapOf = (value: fc.Arbitrary<unknown>) =>
      fc.uniqueArray(fc.tuple(fc.oneof(fc.constantFrom('module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce'), fc.integer({ min: 0, max: 40 })), value), { selector: ([k]) => k, maxLength: 12 }).map((entries) => new Map(entries));
    const payload = mapOf(fc.oneof(leaf, fc.array(leaf, { maxLength: 4 }), mapOf(leaf)));
    fc.assert(
      fc.property(payload, fc.uint8Array({ maxLength: 100 }), (map, signature) => {
        const bytes = encodeCbor([Uint8Array.of(0xa1, 0x01, 0x38, 0x22), new Map(), encodeCbor(map as never), signature]);
        onlyCodedErrors(() => verifyAttestationDocument(bytes, { atMs: 0, verifier: nodeP384Verifier, root: AWS_NITRO_ROOT_G1_DER }));
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });

  it('property: real documents with random multi-byte damage give a coded error', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...vectors),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.option(fc.nat(), { nil: undefined }),
        (v, edits, cut) => {
          const bytes = Uint8Array.from(v.bytes);
          for (const [at, mask] of edits) bytes[at % bytes.length]! ^= mask;
          const damaged = cut === undefined ? bytes : bytes.subarray(0, cut % bytes.length);
          expect(() => verifyAttestationDocument(damaged, { atMs: v.validFromMs + 1000, allowDebug: true, verifier: nodeP384Verifier })).toThrowError(NsmError);
        },
      ),
      { seed: SEED, numRuns: 1500 },
    );
  });
});

describe('parseCertificate', () => {
  const realCertificates = vectors.flatMap((v) => {
    const doc = parseAttestationDocument(v.bytes);
    return [doc.certificate, ...doc.cabundle];
  });

  it('reads every real certificate', () => {
    for (const der of realCertificates) expect(parseCertificate(der, 'x').publicKey).toHaveLength(97);
  });

  it('property: damaged certificates give ATTESTATION_CHAIN or parse to something else', () => {
    fc.assert(
      fc.property(fc.constantFrom(...realCertificates), fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(), (der, at, mask, truncate) => {
        const bytes = Uint8Array.from(der);
        bytes[at % bytes.length]! ^= mask;
        onlyCodedErrors(() => parseCertificate(truncate ? bytes.subarray(0, at % bytes.length) : bytes, 'fuzz'));
      }),
      { seed: SEED, numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1100 }), (bytes) => onlyCodedErrors(() => parseCertificate(bytes, 'fuzz'))),
      { seed: SEED, numRuns: 2000 },
    );
  });
});

describe('text encodings', () => {
  it('round-trip and reject what is not their alphabet', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(hexToBytes(bytesToHex(bytes))).toEqual(bytes);
        expect(base64ToBytes(bytesToBase64(bytes))).toEqual(bytes);
        expect(base64UrlToBytes(bytesToBase64Url(bytes))).toEqual(bytes);
      }),
      { seed: SEED, numRuns: 500 },
    );
    for (const bad of ['a', 'zz', '0x00', ' 00', '00 ']) expect(() => hexToBytes(bad)).toThrowError(expect.objectContaining({ code: 'NSM_BAD_ARGUMENT' }));
    for (const bad of ['A', 'AAA', 'AA=A', 'AA==AA==', '_-AA', 'A===', ' AAAA']) expect(() => base64ToBytes(bad)).toThrowError(expect.objectContaining({ code: 'NSM_BAD_ARGUMENT' }));
    for (const bad of ['A', 'AA==', '+/AA']) expect(() => base64UrlToBytes(bad)).toThrowError(expect.objectContaining({ code: 'NSM_BAD_ARGUMENT' }));
    expect(() => pemToCertificates('no pem here')).toThrowError(expect.objectContaining({ code: 'NSM_BAD_ARGUMENT' }));
  });

  it('property: random text gives a coded error or bytes', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        onlyCodedErrors(() => hexToBytes(text));
        onlyCodedErrors(() => base64ToBytes(text));
        onlyCodedErrors(() => base64UrlToBytes(text));
        onlyCodedErrors(() => pemToCertificates(`-----BEGIN CERTIFICATE-----\n${text}\n-----END CERTIFICATE-----`));
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });
});
