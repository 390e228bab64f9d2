/**
 * The verifier against real documents from AWS hardware (test/vectors/nitro) and against mock
 * documents built to fail exactly one check each. Every rejection asserts its code.
 */

import { createHash, verify as nodeVerify, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeCbor, encodeCbor, type CborMap } from '../cbor/index.js';
import { signMockDocument } from '../test/mock-documents.js';
import { AWS_ROOT_PEM_URL, loadNitroVectors } from '../test/vectors/nitro.js';
import { AWS_NITRO_ROOT_G1_DER, AWS_NITRO_ROOT_G1_SHA256 } from './aws-root.js';
import { encodeSigStructure, parseAttestationDocument } from './document.js';
import { nobleP384Verifier } from './ecdsa.js';
import { nodeP384Verifier } from './ecdsa-node.js';
import { bytesToHex, hexToBytes, pemToCertificates } from './encoding.js';
import { createMockPki, type MockPki } from './mock-pki.js';
import { verifyAttestationDocument, type VerifyOptions } from './verify.js';

const vectors = loadNitroVectors();
const SECOND = 1000;

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as { code: string }).code;
  }
  return 'ACCEPTED';
}

describe('pinned AWS root', () => {
  it('is the certificate AWS publishes, pinned by its DER SHA-256', () => {
    expect(createHash('sha256').update(AWS_NITRO_ROOT_G1_DER).digest('hex')).toBe(AWS_NITRO_ROOT_G1_SHA256);
    const [fromPem] = pemToCertificates(readFileSync(AWS_ROOT_PEM_URL, 'utf8'));
    expect(bytesToHex(fromPem!)).toBe(bytesToHex(AWS_NITRO_ROOT_G1_DER));
  });
});

describe.each(vectors)('real document $file', (v) => {
  const inside = v.validFromMs + SECOND;
  const options = (extra: Partial<VerifyOptions> = {}): VerifyOptions => ({ atMs: inside, allowDebug: v.debug, verifier: nodeP384Verifier, ...extra });

  it('verifies with the AWS root inside its window, at both ends, with both signature implementations', () => {
    for (const atMs of [v.validFromMs, inside, v.validToMs]) {
      for (const verifier of [nodeP384Verifier, nobleP384Verifier]) {
        const result = verifyAttestationDocument(v.bytes, options({ atMs, verifier }));
        expect(result.debug).toBe(v.debug);
        expect(result.moduleId).toBe(v.moduleId);
      }
    }
  });

  it('extracts every field as decoded independently', () => {
    const result = verifyAttestationDocument(v.bytes, options());
    expect(result.timestamp).toBe(v.timestampMs);
    expect(Object.fromEntries([...result.pcrs].map(([i, value]) => [String(i), bytesToHex(value)]))).toEqual(v.pcrs);
    expect(result.nonce === null ? null : bytesToHex(result.nonce)).toBe(v.nonce);
    expect(result.userData === null ? null : bytesToHex(result.userData)).toBe(v.userData);
    expect(result.publicKey === null ? null : bytesToHex(result.publicKey)).toBe(v.publicKey);
    expect(result.rootSha256).toBe(AWS_NITRO_ROOT_G1_SHA256);
    expect(result.chain).toHaveLength(5);
    expect(result.chain[4]).toBe('C=US,O=Amazon,OU=AWS,CN=aws.nitro-enclaves');
  });

  it(v.debug ? 'is rejected as debug-mode unless debug is allowed' : 'needs no debug allowance', () => {
    expect(codeOf(() => verifyAttestationDocument(v.bytes, options({ allowDebug: false })))).toBe(v.debug ? 'ATTESTATION_DEBUG' : 'ACCEPTED');
  });

  it('fails outside its validity window', () => {
    expect(codeOf(() => verifyAttestationDocument(v.bytes, options({ atMs: v.validFromMs - SECOND })))).toBe('ATTESTATION_EXPIRED');
    expect(codeOf(() => verifyAttestationDocument(v.bytes, options({ atMs: v.validToMs + SECOND })))).toBe('ATTESTATION_EXPIRED');
    expect(codeOf(() => verifyAttestationDocument(v.bytes, options({ atMs: Date.parse('2026-11-21T00:00:00Z') })))).toBe('ATTESTATION_EXPIRED');
  });

  it('fails with any other root', () => {
    const other = createMockPki({ now: new Date(inside) });
    expect(codeOf(() => verifyAttestationDocument(v.bytes, options({ root: other.root.der })))).toBe('ATTESTATION_ROOT');
    // An intermediate of the real chain is not a root either.
    const doc = parseAttestationDocument(v.bytes);
    expect(codeOf(() => verifyAttestationDocument(v.bytes, options({ root: doc.cabundle[1]! })))).toBe('ATTESTATION_ROOT');
  });

  it('checks the nonce', () => {
    const wrong = new Uint8Array(32).fill(7);
    expect(codeOf(() => verifyAttestationDocument(v.bytes, options({ expectedNonce: wrong })))).toBe('ATTESTATION_NONCE');
    if (v.nonce !== null) {
      expect(codeOf(() => verifyAttestationDocument(v.bytes, options({ expectedNonce: hexToBytes(v.nonce!) })))).toBe('ACCEPTED');
      const flipped = hexToBytes(v.nonce);
      flipped[flipped.length - 1]! ^= 1;
      expect(codeOf(() => verifyAttestationDocument(v.bytes, options({ expectedNonce: flipped })))).toBe('ATTESTATION_NONCE');
      expect(codeOf(() => verifyAttestationDocument(v.bytes, options({ expectedNonce: hexToBytes(v.nonce!).subarray(1) })))).toBe('ATTESTATION_NONCE');
    }
  });

  it('applies PCR profiles: any matching profile passes, none matching fails', () => {
    const pcr = (i: number) => hexToBytes(v.pcrs[String(i)]!);
    const good = { name: 'release-2', pcrs: new Map([[0, pcr(0)], [1, pcr(1)], [2, pcr(2)]]) };
    const otherValue = new Uint8Array(48).fill(0xab);
    const bad = { name: 'release-1', pcrs: new Map([[0, otherValue], [1, pcr(1)], [2, pcr(2)]]) };
    expect(verifyAttestationDocument(v.bytes, options({ pcrProfiles: [bad, good] })).pcrProfile).toBe('release-2');
    expect(codeOf(() => verifyAttestationDocument(v.bytes, options({ pcrProfiles: [bad] })))).toBe('ATTESTATION_PCR');
    // A profile naming a PCR the document lacks never matches.
    expect(codeOf(() => verifyAttestationDocument(v.bytes, options({ pcrProfiles: [{ name: 'p20', pcrs: new Map([[20, otherValue]]) }] })))).toBe('ATTESTATION_PCR');
    // An empty profile is no policy at all: it must not match everything.
    expect(codeOf(() => verifyAttestationDocument(v.bytes, options({ pcrProfiles: [{ name: 'empty', pcrs: new Map() }] })))).toBe('ATTESTATION_PCR');
  });

  it('rejects every truncation and any trailing bytes', () => {
    for (let length = 0; length < v.bytes.length; length++) {
      expect(codeOf(() => verifyAttestationDocument(v.bytes.subarray(0, length), options()))).toBe('ATTESTATION_MALFORMED');
    }
    for (const tail of [Uint8Array.of(0), Uint8Array.of(0xf6), encodeCbor(new Uint8Array(8))]) {
      const longer = new Uint8Array([...v.bytes, ...tail]);
      expect(codeOf(() => verifyAttestationDocument(longer, options()))).toBe('ATTESTATION_MALFORMED');
    }
  });

  it('rejects a reordered cabundle', () => {
    const doc = parseAttestationDocument(v.bytes);
    const reencode = (cabundle: Uint8Array[]) => {
      const payload = new Map(decodePayload(doc.payload));
      payload.set('cabundle', cabundle);
      return encodeCbor([doc.protectedHeader, new Map(), encodeCbor(payload), doc.signature]);
    };
    const [root, regional, zonal, instance] = doc.cabundle;
    expect(codeOf(() => verifyAttestationDocument(reencode([root!, zonal!, regional!, instance!]), options()))).toBe('ATTESTATION_BAD_SIGNATURE');
    expect(codeOf(() => verifyAttestationDocument(reencode([...doc.cabundle].reverse()), options()))).toBe('ATTESTATION_ROOT');
  });
});

/** The payload as a Map, for re-encoding variants. */
function decodePayload(payload: Uint8Array): CborMap {
  return decodeCbor(payload, { allowIndefinite: true }) as CborMap;
}

describe('mock documents', () => {
  const now = Date.parse('2026-11-21T12:00:00Z');
  let pki: MockPki;
  beforeAll(() => {
    pki = createMockPki({ now: new Date(now) });
  });
  const at = () => pki.leaf.notBefore.getTime() + 120_000;
  const options = (extra: Partial<VerifyOptions> = {}): VerifyOptions => ({ atMs: at(), root: pki.root.der, verifier: nodeP384Verifier, ...extra });

  it('verify with the mock root, with both implementations, and fail with the AWS root', () => {
    const bytes = signMockDocument(pki, { nonce: Uint8Array.of(1, 2, 3) });
    expect(verifyAttestationDocument(bytes, options()).debug).toBe(false);
    expect(verifyAttestationDocument(bytes, options({ verifier: nobleP384Verifier })).nonce).toEqual(Uint8Array.of(1, 2, 3));
    expect(codeOf(() => verifyAttestationDocument(bytes, { atMs: at(), verifier: nodeP384Verifier }))).toBe('ATTESTATION_ROOT');
  });

  it('carry a signature that node:crypto checks independently, over the Sig_structure of RFC 9052', () => {
    const bytes = signMockDocument(pki, { userData: new TextEncoder().encode('{"a":1}') });
    const doc = parseAttestationDocument(bytes);
    const leaf = new X509Certificate(doc.certificate);
    const toBeSigned = encodeCbor(['Signature1', Uint8Array.of(0xa1, 0x01, 0x38, 0x22), new Uint8Array(0), doc.payload]);
    expect(bytesToHex(toBeSigned)).toBe(bytesToHex(encodeSigStructure(doc.protectedHeader, doc.payload)));
    expect(nodeVerify('sha384', toBeSigned, { key: leaf.publicKey, dsaEncoding: 'ieee-p1363' }, doc.signature)).toBe(true);
    // The chain checks out with node's own X.509 implementation too.
    const chain = [doc.certificate, ...[...doc.cabundle].reverse()].map((der) => new X509Certificate(der));
    for (let i = 0; i + 1 < chain.length; i++) {
      expect(chain[i]!.checkIssued(chain[i + 1]!)).toBe(true);
      expect(chain[i]!.verify(chain[i + 1]!.publicKey)).toBe(true);
    }
    expect(leaf.publicKey.asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
  });

  it('with a correctly signed but reordered cabundle fail the chain', () => {
    const [regional, zonal, instance] = pki.intermediates;
    const swapped = signMockDocument(pki, { cabundle: [pki.root.der, zonal!.der, regional!.der, instance!.der] });
    expect(codeOf(() => verifyAttestationDocument(swapped, options()))).toBe('ATTESTATION_CHAIN');
    const missing = signMockDocument(pki, { cabundle: [pki.root.der, regional!.der, instance!.der] });
    expect(codeOf(() => verifyAttestationDocument(missing, options()))).toBe('ATTESTATION_CHAIN');
    const rootOnly = signMockDocument(pki, { cabundle: [pki.root.der] });
    expect(codeOf(() => verifyAttestationDocument(rootOnly, options()))).toBe('ATTESTATION_CHAIN');
  });

  // Regression (found by test/reliability's fuzzing): a validly signed document whose leaf's issuer has
  // an attribute type changed (countryName 2.5.4.6 -> 2.5.4.2) parses, but the name then does not encode
  // again, and the X.509 library threw a plain Error instead of a coded one.
  it('carrying a certificate whose name does not encode again fail with ATTESTATION_CHAIN, not a raw error', () => {
    const leaf = Uint8Array.from(pki.leaf.der);
    const countryName = Buffer.from(leaf).indexOf(Buffer.from([0x06, 0x03, 0x55, 0x04, 0x06]));
    expect(countryName).toBeGreaterThan(0);
    leaf[countryName + 4] = 0x02;
    const bytes = signMockDocument(pki, { certificate: leaf });
    let thrown: unknown;
    try {
      verifyAttestationDocument(bytes, options());
    } catch (err) {
      thrown = err;
    }
    expect((thrown as { code?: string }).code).toBe('ATTESTATION_CHAIN');
    // Which check notices first depends on whether the name's re-encoding fails (the library keeps some
    // encodings it parsed); either way it is a coded chain failure about the leaf.
    expect((thrown as Error).message).toMatch(/^leaf(: malformed subject or issuer name| issuer does not match)/);
  });

  it('signed by a leaf of another PKI fail', () => {
    const other = createMockPki({ now: new Date(now) });
    const bytes = signMockDocument(other, { cabundle: [pki.root.der, ...pki.intermediates.map((c) => c.der)] });
    expect(codeOf(() => verifyAttestationDocument(bytes, options()))).toBe('ATTESTATION_CHAIN');
  });

  it('in debug mode are rejected unless allowed', () => {
    const zeros = new Map(Array.from({ length: 16 }, (_, i) => [i, new Uint8Array(48)] as const));
    const bytes = signMockDocument(pki, { pcrs: zeros });
    expect(codeOf(() => verifyAttestationDocument(bytes, options()))).toBe('ATTESTATION_DEBUG');
    expect(verifyAttestationDocument(bytes, options({ allowDebug: true })).debug).toBe(true);
  });

  it('apply AWS field rules', () => {
    const cases: Array<[string, Parameters<typeof signMockDocument>[1]]> = [
      ['no PCRs', { pcrs: new Map() }],
      ['33 PCRs', { pcrs: new Map(Array.from({ length: 33 }, (_, i) => [i, new Uint8Array(48).fill(1)] as const)) }],
      ['PCR of 47 bytes', { pcrs: new Map([[0, new Uint8Array(47).fill(1)]]) }],
      ['PCR index 32', { pcrs: new Map([[32, new Uint8Array(48).fill(1)]]) }],
      ['empty module id', { moduleId: '' }],
      ['timestamp 0', { timestamp: 0 }],
      ['user_data of 1025 bytes', { userData: new Uint8Array(1025) }],
      ['empty cabundle', { cabundle: [] }],
    ];
    for (const [name, fields] of cases) {
      expect([name, codeOf(() => verifyAttestationDocument(signMockDocument(pki, fields), options()))]).toEqual([name, 'ATTESTATION_MALFORMED']);
    }
    const big = new Uint8Array(1024).fill(1);
    expect(verifyAttestationDocument(signMockDocument(pki, { userData: big, nonce: big, publicKey: big }), options()).userData).toEqual(big);
  });

  it('older than maxAgeMs are rejected', () => {
    const bytes = signMockDocument(pki, { timestamp: at() - 60_000 });
    expect(codeOf(() => verifyAttestationDocument(bytes, options({ maxAgeMs: 60_000 })))).toBe('ACCEPTED');
    expect(codeOf(() => verifyAttestationDocument(bytes, options({ maxAgeMs: 59_999 })))).toBe('ATTESTATION_EXPIRED');
  });

  it('signed with a high-S signature still verify (real documents carry them)', () => {
    const bytes = signMockDocument(pki);
    const doc = parseAttestationDocument(bytes);
    const n = BigInt('0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973');
    const s = BigInt(`0x${bytesToHex(doc.signature.subarray(48))}`);
    const flippedS = hexToBytes((n - s).toString(16).padStart(96, '0'));
    const highS = encodeCbor([doc.protectedHeader, new Map(), doc.payload, new Uint8Array([...doc.signature.subarray(0, 48), ...flippedS])]);
    for (const verifier of [nodeP384Verifier, nobleP384Verifier]) {
      expect(codeOf(() => verifyAttestationDocument(highS, options({ verifier })))).toBe('ACCEPTED');
    }
  });

  it('shaped like QEMU unsigned documents are parsed but rejected', () => {
    const zero64 = new Uint8Array(64);
    const payload = encodeCbor(
      new Map<string, unknown>([
        ['module_id', 'i-234-enc5678'],
        ['digest', 'SHA384'],
        ['timestamp', 1_700_000_000_000],
        ['pcrs', new Map()],
        ['certificate', zero64],
        ['cabundle', [zero64]],
        ['public_key', null],
        ['user_data', Uint8Array.of(9)],
        ['nonce', Uint8Array.of(0xaa, 0xbb)],
      ]) as never,
    );
    const qemu = encodeCbor([Uint8Array.of(0xa1, 0x01, 0x20), new Map(), payload, zero64]);
    const parsed = parseAttestationDocument(qemu);
    expect(parsed.algorithm).toBe(-1);
    expect(parsed.moduleId).toBe('i-234-enc5678');
    expect(parsed.pcrs.size).toBe(0);
    expect(parsed.nonce).toEqual(Uint8Array.of(0xaa, 0xbb));
    expect(codeOf(() => verifyAttestationDocument(qemu, options()))).toBe('ATTESTATION_UNSUPPORTED_ALGORITHM');
  });
});
