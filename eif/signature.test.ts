/**
 * The signature section and PCR8: sections assembled by hand in the CBOR layout AWS's builder writes
 * (serde_cbor of [PcrSignature]: a map with `signing_certificate` and `signature`, byte vectors as arrays
 * of integers) and QEMU's reader parses, with a real certificate (AWS's public root from test/vectors) as
 * the signing certificate; PCR8 is checked against node:crypto over the DER node:crypto's X509Certificate
 * gives. Then every layout QEMU or this reader refuses, and hostile bytes (fast-check).
 */

import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { handBuildEif, pcrOf, SMALL, TYPE } from '../test/eif-images.js';
import { mutate, mutationArbitrary } from '../test/mutations.js';
import { EifError, parseEif, parseEifSignature } from './index.js';

const utf8 = (text: string) => new TextEncoder().encode(text);
const PEM = readFileSync(new URL('../test/vectors/nitro/aws_nitro_root_g1.pem', import.meta.url), 'utf8');
const DER = new Uint8Array(new X509Certificate(PEM).raw);

// CBOR by hand (RFC 8949 §3): heads of major types 3 (text), 4 (array), 5 (map) and 0 (unsigned).
function head(major: number, n: number): number[] {
  if (n < 24) return [(major << 5) | n];
  if (n < 0x100) return [(major << 5) | 24, n];
  if (n < 0x10000) return [(major << 5) | 25, n >> 8, n & 0xff];
  return [(major << 5) | 26, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}
const text = (s: string) => [...head(3, s.length), ...utf8(s)];
/** A byte vector as serde_cbor writes Vec<u8>: an array of unsigned integers. */
const intArray = (bytes: Uint8Array) => [...head(4, bytes.length), ...[...bytes].flatMap((b) => head(0, b))];
const entry = (certificate: Uint8Array, signature: Uint8Array) => [...head(5, 2), ...text('signing_certificate'), ...intArray(certificate), ...text('signature'), ...intArray(signature)];
/** Stands in for the COSE_Sign1 over PCR0, which nothing here verifies. */
const COSE = Uint8Array.from([0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x40, 0x40]);
const SECTION = Uint8Array.from([...head(4, 1), ...entry(utf8(PEM), COSE)]);

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
    const section = Uint8Array.from([...head(4, 2), ...entry(pem, COSE), ...entry(utf8('not checked: only the first is measured'), COSE)]);
    expect(parseEifSignature(section).certificateDer).toEqual(DER);
  });

  const derB64 = Buffer.from(DER).toString('base64');
  const pemOf = (der: Uint8Array | string) => utf8(`-----BEGIN CERTIFICATE-----\n${typeof der === 'string' ? der : Buffer.from(der).toString('base64')}\n-----END CERTIFICATE-----\n`);
  const one = (...parts: number[][]) => Uint8Array.from([...head(4, 1), ...parts.flat()]);
  const cases: [string, Uint8Array, RegExp][] = [
    ['an empty array', Uint8Array.from(head(4, 0)), /1 to 32/],
    ['33 entries', Uint8Array.from([...head(4, 33), ...Array.from({ length: 33 }, () => entry(utf8(PEM), COSE)).flat()]), /1 to 32/],
    ['a map, not an array', Uint8Array.from(entry(utf8(PEM), COSE)), /array of 1 to 32/],
    ['the keys the other way round', one([...head(5, 2), ...text('signature'), ...intArray(COSE), ...text('signing_certificate'), ...intArray(utf8(PEM))]), /exactly the keys/],
    ['an extra key', one([...head(5, 3), ...text('signing_certificate'), ...intArray(utf8(PEM)), ...text('signature'), ...intArray(COSE), ...text('x'), ...head(0, 1)]), /exactly the keys/],
    ['one key only', one([...head(5, 1), ...text('signing_certificate'), ...intArray(utf8(PEM))]), /exactly the keys/],
    ['the certificate as a byte string (QEMU reads integer arrays only)', one([...head(5, 2), ...text('signing_certificate'), ...head(2, 4), 1, 2, 3, 4, ...text('signature'), ...intArray(COSE)]), /array of integers/],
    ['an empty certificate', one(entry(new Uint8Array(0), COSE)), /"signing_certificate" expected a non-empty array/],
    ['an empty signature', one(entry(utf8(PEM), new Uint8Array(0))), /"signature" expected a non-empty array/],
    ['an integer wider than a byte', one([...head(5, 2), ...text('signing_certificate'), ...head(4, 1), ...head(0, 256), ...text('signature'), ...intArray(COSE)]), /integers 0..255/],
    ['a byte written in 16 bits (QEMU wants 8-bit integers)', one([...head(5, 2), ...text('signing_certificate'), ...head(4, 1), 0x19, 0x00, 0x41, ...text('signature'), ...intArray(COSE)]), /CBOR_NON_CANONICAL/],
    ['a negative integer', one([...head(5, 2), ...text('signing_certificate'), ...head(4, 1), 0x20, ...text('signature'), ...intArray(COSE)]), /integers 0..255/],
    ['trailing bytes after the array', Uint8Array.from([...SECTION, 0x00]), /CBOR_TRAILING_BYTES/],
    ['a DER certificate where PEM belongs', one(entry(DER, COSE)), /not ASCII PEM|no PEM CERTIFICATE block/],
    ['a PEM without an END line', one(entry(utf8(`-----BEGIN CERTIFICATE-----\n${derB64}\n`), COSE)), /no PEM CERTIFICATE block/],
    ['a PEM private key', one(entry(utf8(`-----BEGIN PRIVATE KEY-----\n${derB64}\n-----END PRIVATE KEY-----\n`), COSE)), /no PEM CERTIFICATE block/],
    ['a PEM body that is not base64', one(entry(pemOf(`${derB64.slice(0, -4)}!!!!`), COSE)), /not base64/],
    ['an empty PEM body', one(entry(pemOf(''), COSE)), /not base64/],
    ['DER with a byte after the certificate', one(entry(pemOf(Uint8Array.from([...DER, 0, 0, 0])), COSE)), /not one DER SEQUENCE/],
    ['DER cut short', one(entry(pemOf(DER.subarray(0, DER.length - 3)), COSE)), /not one DER SEQUENCE/],
    ['DER that is not a SEQUENCE', one(entry(pemOf(Uint8Array.from([0x31, ...DER.subarray(1)])), COSE)), /not one DER SEQUENCE/],
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
