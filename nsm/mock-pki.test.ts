/**
 * Tests for the mock PKI. Every certificate is checked with node:crypto's X509Certificate (OpenSSL), not
 * with the asn1-x509 classes that built it, except for the extension details Node does not expose; the
 * byte-level checks (issuer = parent subject, algorithm identifiers, time types) use a small DER walker
 * written here. These tests must not depend on the attestation verifier: they pin the PKI's shape alone.
 */

import { X509Certificate, createHash, sign, verify } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, unlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  Certificate,
  KeyUsage,
  KeyUsageFlags,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_subjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import { describe, expect, it } from 'vitest';
import { NsmError } from './errors.js';
import { MOCK_LEAF_LIFETIME_MS, certificateToPem, createMockPki, loadMockPki, renewMockLeaf, writeMockPki, type MockCertificate, type MockPki } from './mock-pki.js';

const NOW = new Date('2026-03-06T11:14:18.051Z');
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** DER of AlgorithmIdentifier { ecdsa-with-SHA384 } with parameters absent (RFC 5758 §3.2). */
const ECDSA_WITH_SHA384_DER = '300a06082a8648ce3d040303';
const KEY_FILES = ['root.key.pem', 'regional.key.pem', 'zonal.key.pem', 'instance.key.pem'];
const CERTIFICATE_FILES = ['root.pem', 'regional.pem', 'zonal.pem', 'instance.pem'];

// --- a minimal DER walker, independent of the encoder under test -----------------------------------

interface Tlv {
  tag: number;
  /** Whole element, header included. */
  bytes: Uint8Array;
  content: Uint8Array;
}

function readTlv(der: Uint8Array, offset = 0): Tlv {
  const tag = der[offset]!;
  let length = der[offset + 1]!;
  let header = 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + der[offset + 2 + i]!;
    header += count;
  }
  const end = offset + header + length;
  if (end > der.length) throw new Error('truncated DER');
  return { tag, bytes: der.subarray(offset, end), content: der.subarray(offset + header, end) };
}

function children(tlv: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let offset = 0; offset < tlv.content.length; ) {
    const child = readTlv(tlv.content, offset);
    out.push(child);
    offset += child.bytes.length;
  }
  return out;
}

/** The fields of Certificate / TBSCertificate by position (RFC 5280 §4.1). */
function fields(der: Uint8Array) {
  const outer = readTlv(der);
  expect(outer.bytes.length).toBe(der.length);
  const [tbs, signatureAlgorithm, signatureValue] = children(outer);
  const [version, serial, signature, issuer, validity, subject, spki, extensions] = children(tbs!);
  return { tbs: tbs!, signatureAlgorithm: signatureAlgorithm!, signatureValue: signatureValue!, version: version!, serial: serial!, signature: signature!, issuer: issuer!, validity: validity!, subject: subject!, spki: spki!, extensions: extensions! };
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

function chainOf(pki: MockPki): MockCertificate[] {
  return [pki.root, ...pki.intermediates, pki.leaf];
}

function x509(certificate: MockCertificate): X509Certificate {
  return new X509Certificate(certificate.der);
}

function extensionsOf(certificate: MockCertificate) {
  return AsnConvert.parse(certificate.der, Certificate).tbsCertificate.extensions ?? [];
}

function cn(certificate: X509Certificate): string {
  return /^CN=(.*)$/m.exec(certificate.subject)?.[1] ?? '';
}

/** Node's own check of a full chain, leaf first, at `at`. */
function assertChain(pki: MockPki, at: Date): void {
  const chain = chainOf(pki);
  for (const [index, certificate] of chain.entries()) {
    const parsed = x509(certificate);
    const parent = index === 0 ? parsed : x509(chain[index - 1]!);
    expect(parsed.checkIssued(parent)).toBe(true);
    expect(parsed.verify(parent.publicKey)).toBe(true);
    expect(hex(fields(certificate.der).issuer.bytes)).toBe(hex(fields(index === 0 ? certificate.der : chain[index - 1]!.der).subject.bytes));
    expect(new Date(parsed.validFrom).getTime()).toBeLessThanOrEqual(at.getTime());
    expect(new Date(parsed.validTo).getTime()).toBeGreaterThanOrEqual(at.getTime());
  }
}

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), 'mock-pki-'));
  try {
    await run(join(base, 'nested', 'pki'));
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

async function expectInvalid(promise: Promise<unknown>, fileName: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(NsmError);
  expect((error as NsmError).code).toBe('MOCK_PKI_INVALID');
  expect((error as NsmError).message).toContain(fileName);
}

describe('createMockPki', () => {
  const pki = createMockPki({ now: NOW });
  const [root, regional, zonal, instance, leaf] = chainOf(pki).map(x509);

  it('names every level like AWS, with mock made obvious', () => {
    expect(root!.subject.split('\n')).toEqual(['C=US', 'O=Mock', 'OU=AWS', 'CN=mock.nitro-enclaves (NOT FOR PRODUCTION)']);
    expect(root!.issuer).toBe(root!.subject);
    expect(cn(regional!)).toMatch(/^[0-9a-f]{16}\.us-east-1\.mock\.nitro-enclaves$/);
    expect(cn(zonal!)).toMatch(/^[0-9a-f]{16}\.zonal\.us-east-1\.mock\.nitro-enclaves$/);
    expect(cn(instance!)).toMatch(/^i-[0-9a-f]{17}\.us-east-1\.mock\.nitro-enclaves$/);
    expect(pki.moduleId).toMatch(/^i-[0-9a-f]{17}-enc[0-9a-f]{16}$/);
    expect(cn(leaf!)).toBe(`${pki.moduleId}.us-east-1.mock`);
    expect(cn(instance!)).toBe(`${pki.moduleId.slice(0, 19)}.us-east-1.mock.nitro-enclaves`);
    for (const certificate of [regional, zonal, instance, leaf]) expect(certificate!.subject).toContain('O=Mock');
    expect(JSON.stringify(chainOf(pki).map((c) => x509(c).subject))).not.toContain('CN=aws.nitro-enclaves');
  });

  it('chains root -> regional -> zonal -> instance -> leaf, with byte-identical issuer names', () => {
    assertChain(pki, NOW);
    expect(root!.verify(root!.publicKey)).toBe(true);
    expect(regional!.verify(zonal!.publicKey)).toBe(false);
    expect(leaf!.checkIssued(zonal!)).toBe(false);
  });

  it('uses P-384 keys and ecdsa-with-SHA384 with absent parameters', () => {
    for (const certificate of chainOf(pki)) {
      const parsed = x509(certificate);
      expect(parsed.publicKey.asymmetricKeyType).toBe('ec');
      expect(parsed.publicKey.asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
      // Our SPKI encoding is exactly what OpenSSL writes for the key: namedCurve, uncompressed point.
      expect(hex(fields(certificate.der).spki.bytes)).toBe(hex(parsed.publicKey.export({ type: 'spki', format: 'der' })));
      expect(fields(certificate.der).spki.bytes.length).toBe(120);
      const { signature, signatureAlgorithm, signatureValue, version } = fields(certificate.der);
      expect(hex(signature.bytes)).toBe(ECDSA_WITH_SHA384_DER);
      expect(hex(signatureAlgorithm.bytes)).toBe(ECDSA_WITH_SHA384_DER);
      expect(hex(version.bytes)).toBe('a003020102');
      // BIT STRING, no unused bits, holding a DER Ecdsa-Sig-Value SEQUENCE.
      expect(signatureValue.content[0]).toBe(0);
      expect(signatureValue.content[1]).toBe(0x30);
      // AWS's verification rules: each cabundle entry is at most 1024 bytes (specs/nsm.md §3).
      expect(certificate.der.length).toBeLessThanOrEqual(1024);
    }
  });

  it('gives each certificate the private key matching its public key', () => {
    const message = new TextEncoder().encode('mock');
    for (const certificate of chainOf(pki)) {
      const signature = sign('sha384', message, { key: certificate.privateKey, dsaEncoding: 'ieee-p1363' });
      expect(verify('sha384', message, { key: x509(certificate).publicKey, dsaEncoding: 'ieee-p1363' }, signature)).toBe(true);
    }
  });

  it('uses positive 16-byte random serials', () => {
    const serials = chainOf(pki).map((certificate) => fields(certificate.der).serial);
    for (const serial of serials) {
      expect(serial.tag).toBe(0x02);
      expect(serial.content.length).toBe(16);
      expect(serial.content[0]!).toBeGreaterThan(0);
      expect(serial.content[0]! & 0x80).toBe(0);
    }
    expect(new Set(serials.map((serial) => hex(serial.content))).size).toBe(serials.length);
  });

  it('gives the leaf 3 hours and the CAs windows that contain it', () => {
    const windows = chainOf(pki).map((certificate) => {
      const parsed = x509(certificate);
      const window = { notBefore: new Date(parsed.validFrom).getTime(), notAfter: new Date(parsed.validTo).getTime() };
      expect(certificate.notBefore.getTime()).toBe(window.notBefore);
      expect(certificate.notAfter.getTime()).toBe(window.notAfter);
      return window;
    });
    const [rootWindow, regionalWindow, zonalWindow, instanceWindow, leafWindow] = windows;
    expect(MOCK_LEAF_LIFETIME_MS).toBe(3 * HOUR_MS);
    expect(leafWindow!.notBefore).toBe(Date.parse('2026-03-06T11:14:18Z'));
    expect(leafWindow!.notAfter - leafWindow!.notBefore).toBe(3 * HOUR_MS);
    expect(rootWindow!.notBefore).toBe(Date.parse('2026-03-06T10:14:18Z'));
    expect(rootWindow!.notAfter).toBe(Date.parse('2056-03-06T11:14:18Z'));
    expect(regionalWindow!.notAfter - regionalWindow!.notBefore).toBe(21 * DAY_MS);
    expect(zonalWindow!.notAfter - zonalWindow!.notBefore).toBe(6 * DAY_MS);
    expect(instanceWindow!.notAfter - instanceWindow!.notBefore).toBe(DAY_MS);
    for (const [index, window] of windows.entries()) {
      const parent = windows[index - 1] ?? window;
      expect(window.notBefore).toBeGreaterThanOrEqual(parent.notBefore);
      expect(window.notAfter).toBeLessThanOrEqual(parent.notAfter);
    }
  });

  it('encodes dates through 2049 as UTCTime and from 2050 as GeneralizedTime', () => {
    const [notBefore, notAfter] = children(fields(pki.root.der).validity);
    expect(notBefore!.tag).toBe(0x17);
    expect(new TextDecoder().decode(notBefore!.content)).toBe('260306101418Z');
    expect(notAfter!.tag).toBe(0x18);
    expect(new TextDecoder().decode(notAfter!.content)).toBe('20560306111418Z');
    const [leafNotBefore, leafNotAfter] = children(fields(pki.leaf.der).validity);
    expect([leafNotBefore!.tag, leafNotAfter!.tag]).toEqual([0x17, 0x17]);
  });

  it('sets basicConstraints, keyUsage and key identifiers as on real chains', () => {
    const expected = [
      { ca: true, pathLength: undefined, keyUsage: KeyUsageFlags.digitalSignature | KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, keyUsageCritical: true, ski: true, aki: false },
      { ca: true, pathLength: 2, keyUsage: KeyUsageFlags.digitalSignature | KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, keyUsageCritical: true, ski: true, aki: true },
      { ca: true, pathLength: 1, keyUsage: KeyUsageFlags.digitalSignature | KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, keyUsageCritical: true, ski: true, aki: true },
      { ca: true, pathLength: 0, keyUsage: KeyUsageFlags.keyCertSign, keyUsageCritical: true, ski: true, aki: true },
      { ca: false, pathLength: undefined, keyUsage: KeyUsageFlags.digitalSignature | KeyUsageFlags.nonRepudiation, keyUsageCritical: false, ski: false, aki: false },
    ];
    const chain = chainOf(pki);
    for (const [index, certificate] of chain.entries()) {
      const want = expected[index]!;
      expect(x509(certificate).ca).toBe(want.ca);
      const extensions = extensionsOf(certificate);
      const find = (id: string) => extensions.find((extension) => extension.extnID === id);
      const basic = find(id_ce_basicConstraints)!;
      expect(basic.critical).toBe(true);
      const constraints = AsnConvert.parse(basic.extnValue, BasicConstraints);
      expect(constraints.cA).toBe(want.ca);
      expect(constraints.pathLenConstraint).toBe(want.pathLength);
      const usage = find(id_ce_keyUsage)!;
      expect(usage.critical).toBe(want.keyUsageCritical);
      expect(AsnConvert.parse(usage.extnValue, KeyUsage).toNumber()).toBe(want.keyUsage);
      expect(find(id_ce_subjectKeyIdentifier) !== undefined).toBe(want.ski);
      expect(find(id_ce_authorityKeyIdentifier) !== undefined).toBe(want.aki);
      expect(extensions.length).toBe(2 + Number(want.ski) + Number(want.aki));
    }
    // The leaf's basicConstraints is the empty SEQUENCE (cA FALSE is the DEFAULT, so DER omits it).
    expect(hex(new Uint8Array(AsnConvert.serialize(extensionsOf(pki.leaf)[0]!)))).toBe('300c0603551d130101ff04023000');
  });

  it('derives SKI as SHA-1 of the public key bits and AKI from the parent SKI (RFC 5280 §4.2.1.2)', () => {
    const chain = chainOf(pki).slice(0, 4);
    const identifiers = chain.map((certificate) => {
      const point = fields(certificate.der).spki;
      const bitString = children(point)[1]!;
      expect(bitString.content[0]).toBe(0);
      expect(bitString.content[1]).toBe(0x04);
      const ski = hex(createHash('sha1').update(bitString.content.subarray(1)).digest());
      // The SKI extension value is an OCTET STRING of the 20-byte hash.
      const extension = extensionsOf(certificate).find((candidate) => candidate.extnID === id_ce_subjectKeyIdentifier)!;
      expect(hex(new Uint8Array(extension.extnValue.buffer))).toBe(`0414${ski}`);
      return ski;
    });
    for (const [index, certificate] of chain.entries()) {
      if (index === 0) continue;
      const extension = extensionsOf(certificate).find((candidate) => candidate.extnID === id_ce_authorityKeyIdentifier)!;
      // SEQUENCE { [0] IMPLICIT KeyIdentifier }
      expect(hex(new Uint8Array(extension.extnValue.buffer))).toBe(`30168014${identifiers[index - 1]}`);
    }
  });

  it('honours leafLifetimeMs and makes a new hierarchy each time', () => {
    const short = createMockPki({ now: NOW, leafLifetimeMs: 10 * 60 * 1000 });
    expect(short.leaf.notAfter.getTime() - short.leaf.notBefore.getTime()).toBe(10 * 60 * 1000);
    expect(hex(short.root.der)).not.toBe(hex(pki.root.der));
    expect(short.moduleId).not.toBe(pki.moduleId);
  });

  it('defaults now to the current time', () => {
    const before = Date.now();
    const current = createMockPki();
    expect(current.leaf.notBefore.getTime()).toBeGreaterThan(before - 1000);
    expect(current.leaf.notBefore.getTime()).toBeLessThanOrEqual(Date.now());
    assertChain(current, new Date());
  });

  it('rejects bad options with NSM_BAD_ARGUMENT', () => {
    const bad: unknown[] = [{ now: new Date(Number.NaN) }, { now: '2026-01-01' }, { now: new Date('1949-06-01T00:00:00Z') }, { leafLifetimeMs: 0 }, { leafLifetimeMs: 1.5 }, { leafLifetimeMs: 13 * HOUR_MS }];
    for (const options of bad) {
      expect(() => createMockPki(options as { now?: Date })).toThrowError(expect.objectContaining({ code: 'NSM_BAD_ARGUMENT' }));
    }
  });
});

describe('renewMockLeaf', () => {
  const pki = createMockPki({ now: NOW });

  it('keeps root, intermediates and module id, and issues a new leaf', () => {
    const later = new Date(NOW.getTime() + 2 * HOUR_MS);
    const renewed = renewMockLeaf(pki, { now: later });
    expect(renewed.root).toBe(pki.root);
    expect(renewed.intermediates.map((c) => hex(c.der))).toEqual(pki.intermediates.map((c) => hex(c.der)));
    expect(renewed.moduleId).toBe(pki.moduleId);
    expect(hex(renewed.leaf.der)).not.toBe(hex(pki.leaf.der));
    expect(renewed.leaf.notBefore.getTime()).toBe(Math.floor(later.getTime() / 1000) * 1000);
    expect(renewed.leaf.notAfter.getTime() - renewed.leaf.notBefore.getTime()).toBe(MOCK_LEAF_LIFETIME_MS);
    expect(cn(x509(renewed.leaf))).toBe(`${pki.moduleId}.us-east-1.mock`);
    assertChain(renewed, later);
  });

  it('re-issues the intermediates under the same root once the instance CA would not cover the leaf', () => {
    const later = new Date(NOW.getTime() + 22 * HOUR_MS);
    const renewed = renewMockLeaf(pki, { now: later });
    expect(hex(renewed.root.der)).toBe(hex(pki.root.der));
    for (const [index, certificate] of renewed.intermediates.entries()) expect(hex(certificate.der)).not.toBe(hex(pki.intermediates[index]!.der));
    expect(cn(x509(renewed.intermediates[2]!))).toBe(cn(x509(pki.intermediates[2]!)));
    expect(renewed.moduleId).toBe(pki.moduleId);
    assertChain(renewed, later);
    assertChain(renewed, new Date(renewed.leaf.notAfter.getTime()));
  });

  it('refuses once the root has expired', () => {
    expect(() => renewMockLeaf(pki, { now: new Date('2057-01-01T00:00:00Z') })).toThrowError(expect.objectContaining({ code: 'MOCK_PKI_INVALID' }));
  });

  it('rejects a malformed pki with NSM_BAD_ARGUMENT', () => {
    expect(() => renewMockLeaf({ ...pki, moduleId: 'i-123' }, { now: NOW })).toThrowError(expect.objectContaining({ code: 'NSM_BAD_ARGUMENT' }));
    expect(() => renewMockLeaf({ ...pki, intermediates: pki.intermediates.slice(1) }, { now: NOW })).toThrowError(expect.objectContaining({ code: 'NSM_BAD_ARGUMENT' }));
  });
});

describe('writeMockPki / loadMockPki', () => {
  const pki = createMockPki({ now: NOW });

  it('round-trips root and intermediates and issues a fresh leaf on each load', async () => {
    await withTempDir(async (dir) => {
      await writeMockPki(dir, pki);
      expect((await stat(dir)).mode & 0o777).toBe(0o700);
      const later = new Date(NOW.getTime() + HOUR_MS);
      const first = await loadMockPki(dir, { now: later });
      const second = await loadMockPki(dir, { now: later });
      for (const loaded of [first, second]) {
        expect(hex(loaded.root.der)).toBe(hex(pki.root.der));
        expect(loaded.intermediates.map((c) => hex(c.der))).toEqual(pki.intermediates.map((c) => hex(c.der)));
        expect(loaded.root.notAfter.getTime()).toBe(pki.root.notAfter.getTime());
        expect(loaded.moduleId.slice(0, 19)).toBe(pki.moduleId.slice(0, 19));
        expect(loaded.leaf.notAfter.getTime() - loaded.leaf.notBefore.getTime()).toBe(MOCK_LEAF_LIFETIME_MS);
        assertChain(loaded, later);
        expect(loaded.root.privateKey.export({ format: 'jwk' })).toEqual(pki.root.privateKey.export({ format: 'jwk' }));
      }
      expect(hex(first.leaf.der)).not.toBe(hex(pki.leaf.der));
      expect(hex(second.leaf.der)).not.toBe(hex(first.leaf.der));
      expect(second.moduleId).not.toBe(first.moduleId);
    });
  });

  it('writes certificates as single PEM CERTIFICATE blocks and keys with mode 0600', async () => {
    await withTempDir(async (dir) => {
      await writeMockPki(dir, pki);
      const rootPem = await readFile(join(dir, 'root.pem'), 'utf8');
      expect(rootPem).toBe(certificateToPem(pki.root.der));
      expect(rootPem.match(/-----BEGIN /g)).toHaveLength(1);
      for (const [index, file] of CERTIFICATE_FILES.entries()) {
        expect(new X509Certificate(await readFile(join(dir, file))).raw.equals(chainOf(pki)[index]!.der)).toBe(true);
      }
      for (const file of KEY_FILES) {
        expect((await stat(join(dir, file))).mode & 0o777).toBe(0o600);
        expect(await readFile(join(dir, file), 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
      }
      // Rewriting over a looser existing file still leaves 0600.
      await chmod(join(dir, 'root.key.pem'), 0o644);
      await writeMockPki(dir, pki);
      expect((await stat(join(dir, 'root.key.pem'))).mode & 0o777).toBe(0o600);
    });
  });

  it('re-issues expired intermediates on load, keeping the root', async () => {
    await withTempDir(async (dir) => {
      await writeMockPki(dir, pki);
      const later = new Date(NOW.getTime() + 30 * DAY_MS);
      const loaded = await loadMockPki(dir, { now: later });
      expect(hex(loaded.root.der)).toBe(hex(pki.root.der));
      expect(hex(loaded.intermediates[0]!.der)).not.toBe(hex(pki.intermediates[0]!.der));
      assertChain(loaded, later);
    });
  });

  for (const file of [...CERTIFICATE_FILES, ...KEY_FILES]) {
    it(`throws MOCK_PKI_INVALID naming a missing ${file}`, async () => {
      await withTempDir(async (dir) => {
        await writeMockPki(dir, pki);
        await unlink(join(dir, file));
        await expectInvalid(loadMockPki(dir, { now: NOW }), file);
      });
    });
  }

  it('throws MOCK_PKI_INVALID for a missing directory, garbage, two blocks, a swapped key or a foreign chain', async () => {
    await expectInvalid(loadMockPki(join(tmpdir(), 'mock-pki-does-not-exist', 'x'), { now: NOW }), 'root.pem');
    const other = createMockPki({ now: NOW });
    await withTempDir(async (dir) => {
      await writeMockPki(dir, pki);
      await writeFile(join(dir, 'zonal.pem'), 'not a certificate');
      await expectInvalid(loadMockPki(dir, { now: NOW }), 'zonal.pem');

      await writeMockPki(dir, pki);
      await writeFile(join(dir, 'zonal.pem'), certificateToPem(pki.intermediates[1]!.der) + certificateToPem(pki.root.der));
      await expectInvalid(loadMockPki(dir, { now: NOW }), 'zonal.pem');

      await writeMockPki(dir, pki);
      await writeFile(join(dir, 'regional.pem'), certificateToPem(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])));
      await expectInvalid(loadMockPki(dir, { now: NOW }), 'regional.pem');

      await writeMockPki(dir, pki);
      await writeFile(join(dir, 'instance.key.pem'), await readFile(join(dir, 'zonal.key.pem')));
      await expectInvalid(loadMockPki(dir, { now: NOW }), 'instance.key.pem');

      await writeMockPki(dir, pki);
      await writeFile(join(dir, 'instance.key.pem'), 'garbage');
      await expectInvalid(loadMockPki(dir, { now: NOW }), 'instance.key.pem');

      // A zonal CA (and its key) from another hierarchy does not chain to this regional CA.
      await writeMockPki(dir, pki);
      await writeFile(join(dir, 'zonal.pem'), certificateToPem(other.intermediates[1]!.der));
      await writeFile(join(dir, 'zonal.key.pem'), other.intermediates[1]!.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      await expectInvalid(loadMockPki(dir, { now: NOW }), 'zonal.pem');
    });
  });
});

describe('certificateToPem', () => {
  it('writes 64-column base64 that OpenSSL reads back', () => {
    const { root } = createMockPki({ now: NOW });
    const pem = certificateToPem(root.der);
    expect(pem.startsWith('-----BEGIN CERTIFICATE-----\n')).toBe(true);
    expect(pem.endsWith('\n-----END CERTIFICATE-----\n')).toBe(true);
    for (const line of pem.trim().split('\n').slice(1, -1)) expect(line.length).toBeLessThanOrEqual(64);
    expect(new X509Certificate(pem).raw.equals(root.der)).toBe(true);
    // An offset view encodes only its own bytes.
    const padded = new Uint8Array(root.der.length + 8);
    padded.set(root.der, 4);
    expect(certificateToPem(padded.subarray(4, 4 + root.der.length))).toBe(pem);
  });

  it('rejects empty or non-byte input', () => {
    expect(() => certificateToPem(new Uint8Array(0))).toThrowError(expect.objectContaining({ code: 'NSM_BAD_ARGUMENT' }));
    expect(() => certificateToPem('abc' as unknown as Uint8Array)).toThrowError(expect.objectContaining({ code: 'NSM_BAD_ARGUMENT' }));
  });
});
