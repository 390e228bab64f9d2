/**
 * The signature section and PCR8: sections assembled by hand (test/eif-images.ts) in the CBOR layout AWS's
 * builder writes (serde_cbor of [PcrSignature]: a map with `signing_certificate` and `signature`, byte
 * vectors as arrays of integers) and QEMU's reader parses, with a real certificate (AWS's public root from test/vectors) as
 * the signing certificate; PCR8 is checked against node:crypto over the DER node:crypto's X509Certificate
 * gives. Then every layout QEMU or this reader refuses, and hostile bytes (fast-check).
 */

import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cborHead, cborIntArray, cborSignatureEntry, cborText, FAKE_COSE, handBuildEif, pcrOf, signatureSection, SMALL, TYPE } from '../test/eif-images.js';
import { mutate, mutationArbitrary } from '../test/mutations.js';
import { EifError, parseEif, parseEifSignature } from './index.js';

const utf8 = (text: string) => new TextEncoder().encode(text);
const PEM = readFileSync(new URL('../test/vectors/nitro/aws_nitro_root_g1.pem', import.meta.url), 'utf8');
const DER = new Uint8Array(new X509Certificate(PEM).raw);

const SECTION = signatureSection(PEM);

function signatureError(section: Uint8Array, message?: RegExp): void {
  let thrown: unknown;
  try {
    parseEifSignature(section);
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(EifError);
  expect((thrown as EifError).code).toBe('EIF_SIGNATURE');
  if (message !== undefined) expect((thrown as EifError).message).toMatch(message);
}

describe('parseEifSignature', () => {
  it('reads the certificate\'s DER out of the PEM in the first entry', () => {
    const signature = parseEifSignature(SECTION);
    expect(signature.entries).toBe(1);
    expect(Buffer.from(signature.certificateDer).equals(Buffer.from(DER))).toBe(true);
  });

  it('takes the first certificate of a PEM with text around it and more than one entry', () => {
    const pem = utf8(`Subject: AWS root\n${PEM}${PEM.replace('MIIC', 'MIID')}`);
    const section = Uint8Array.from([...cborHead(4, 2), ...cborSignatureEntry(pem, FAKE_COSE), ...cborSignatureEntry(utf8('not checked: only the first is measured'), FAKE_COSE)]);
    expect(parseEifSignature(section).certificateDer).toEqual(DER);
  });

  const derB64 = Buffer.from(DER).toString('base64');
  const pemOf = (der: Uint8Array | string) => utf8(`-----BEGIN CERTIFICATE-----\n${typeof der === 'string' ? der : Buffer.from(der).toString('base64')}\n-----END CERTIFICATE-----\n`);
  const one = (...parts: number[][]) => Uint8Array.from([...cborHead(4, 1), ...parts.flat()]);
  const cases: [string, Uint8Array, RegExp][] = [
    ['an empty array', Uint8Array.from(cborHead(4, 0)), /1 to 32/],
    ['33 entries', Uint8Array.from([...cborHead(4, 33), ...Array.from({ length: 33 }, () => cborSignatureEntry(utf8(PEM), FAKE_COSE)).flat()]), /1 to 32/],
    ['a map, not an array', Uint8Array.from(cborSignatureEntry(utf8(PEM), FAKE_COSE)), /array of 1 to 32/],
    ['the keys the other way round', one([...cborHead(5, 2), ...cborText('signature'), ...cborIntArray(FAKE_COSE), ...cborText('signing_certificate'), ...cborIntArray(utf8(PEM))]), /exactly the keys/],
    ['an extra key', one([...cborHead(5, 3), ...cborText('signing_certificate'), ...cborIntArray(utf8(PEM)), ...cborText('signature'), ...cborIntArray(FAKE_COSE), ...cborText('x'), ...cborHead(0, 1)]), /exactly the keys/],
    ['one key only', one([...cborHead(5, 1), ...cborText('signing_certificate'), ...cborIntArray(utf8(PEM))]), /exactly the keys/],
    ['the certificate as a byte string (QEMU reads integer arrays only)', one([...cborHead(5, 2), ...cborText('signing_certificate'), ...cborHead(2, 4), 1, 2, 3, 4, ...cborText('signature'), ...cborIntArray(FAKE_COSE)]), /array of integers/],
    ['an empty certificate', one(cborSignatureEntry(new Uint8Array(0), FAKE_COSE)), /"signing_certificate" expected a non-empty array/],
    ['an empty signature', one(cborSignatureEntry(utf8(PEM), new Uint8Array(0))), /"signature" expected a non-empty array/],
    ['an integer wider than a byte', one([...cborHead(5, 2), ...cborText('signing_certificate'), ...cborHead(4, 1), ...cborHead(0, 256), ...cborText('signature'), ...cborIntArray(FAKE_COSE)]), /integers 0..255/],
    ['a byte written in 16 bits (QEMU wants 8-bit integers)', one([...cborHead(5, 2), ...cborText('signing_certificate'), ...cborHead(4, 1), 0x19, 0x00, 0x41, ...cborText('signature'), ...cborIntArray(FAKE_COSE)]), /CBOR_NON_CANONICAL/],
    ['a negative integer', one([...cborHead(5, 2), ...cborText('signing_certificate'), ...cborHead(4, 1), 0x20, ...cborText('signature'), ...cborIntArray(FAKE_COSE)]), /integers 0..255/],
    ['trailing bytes after the array', Uint8Array.from([...SECTION, 0x00]), /CBOR_TRAILING_BYTES/],
    ['a DER certificate where PEM belongs', one(cborSignatureEntry(DER, FAKE_COSE)), /not ASCII PEM|no PEM CERTIFICATE block/],
    ['a PEM without an END line', one(cborSignatureEntry(utf8(`-----BEGIN CERTIFICATE-----\n${derB64}\n`), FAKE_COSE)), /no PEM CERTIFICATE block/],
    ['a PEM private key', one(cborSignatureEntry(utf8(`-----BEGIN PRIVATE KEY-----\n${derB64}\n-----END PRIVATE KEY-----\n`), FAKE_COSE)), /no PEM CERTIFICATE block/],
    ['a PEM body that is not base64', one(cborSignatureEntry(pemOf(`${derB64.slice(0, -4)}!!!!`), FAKE_COSE)), /not base64/],
    ['an empty PEM body', one(cborSignatureEntry(pemOf(''), FAKE_COSE)), /not base64/],
    ['DER with a byte after the certificate', one(cborSignatureEntry(pemOf(Uint8Array.from([...DER, 0, 0, 0])), FAKE_COSE)), /not one DER SEQUENCE/],
    ['DER cut short', one(cborSignatureEntry(pemOf(DER.subarray(0, DER.length - 3)), FAKE_COSE)), /not one DER SEQUENCE/],
    ['DER that is not a SEQUENCE', one(cborSignatureEntry(pemOf(Uint8Array.from([0x31, ...DER.subarray(1)])), FAKE_COSE)), /not one DER SEQUENCE/],
  ];
  it.each(cases)('refuses %s', (_, section, message) => signatureError(section, message));

  it('hostile bytes: mutations of a valid section give EIF_SIGNATURE or a 48-byte-measurable certificate', () => {
    fc.assert(
      fc.property(fc.array(mutationArbitrary, { minLength: 1, maxLength: 3 }), (mutations) => {
        const bytes = mutations.reduce(mutate, SECTION);
        try {
          const signature = parseEifSignature(bytes);
          expect(signature.certificateDer[0]).toBe(0x30);
        } catch (err) {
          expect(err).toBeInstanceOf(EifError);
          expect((err as EifError).code).toBe('EIF_SIGNATURE');
        }
      }),
      { seed: 1404, numRuns: 1500 },
    );
  });
});

describe('PCR8 of a signed image', () => {
  const sections = [
    { type: TYPE.kernel, data: SMALL.kernel },
    { type: TYPE.cmdline, data: utf8(SMALL.cmdline) },
    { type: TYPE.metadata, data: SMALL.metadata },
    { type: TYPE.ramdisk, data: SMALL.ramdisks[0]! },
  ];

  it('is SHA-384(48 zero bytes || SHA-384(certificate DER)); PCR0-2 ignore the signature section', () => {
    const eif = parseEif(handBuildEif([...sections, { type: TYPE.signature, data: SECTION }]));
    const expected = createHash('sha384').update(Buffer.alloc(48)).update(createHash('sha384').update(DER).digest()).digest('hex');
    expect(Buffer.from(eif.pcrs.get(8)!).toString('hex')).toBe(expected);
    expect(Buffer.from(eif.pcrs.get(8)!).toString('hex')).toBe(pcrOf([DER]));
    expect([...eif.pcrs.keys()]).toEqual([0, 1, 2, 8]);
    expect(eif.signature?.entries).toBe(1);
    expect(eif.pcrs.get(0)).toEqual(parseEif(handBuildEif(sections)).pcrs.get(0));
  });

  it('a second signature section, or a signature section over 64 KiB, is refused', () => {
    expect(() => parseEif(handBuildEif([...sections, { type: TYPE.signature, data: SECTION }, { type: TYPE.signature, data: SECTION }]))).toThrow(/second signature/);
    expect(() => parseEif(handBuildEif([...sections, { type: TYPE.signature, data: new Uint8Array(64 * 1024 + 1) }]))).toThrow(/signature\) is 65537 bytes/);
  });
});
