/**
 * The mock PKI: a P-384 certificate hierarchy shaped like AWS Nitro's (root -> regional -> zonal ->
 * instance -> leaf, specs/nsm.md §3), used by the mock NSM to sign attestation documents that pass the
 * same verifier as real ones when that verifier is given the mock root in place of the pinned AWS root.
 * Every name says "Mock"/"mock" so a mock document cannot pass for a real one; this module must never name
 * itself as AWS's root, and it must not be imported by browser code (it uses node:crypto and node:fs).
 * Leaves are short-lived and never written to disk: each load or renewal issues a fresh one.
 */

import { certificateToPem } from './encoding.js';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  Extension,
  Extensions,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_subjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import { NsmError } from './errors.js';

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

/** AWS leaves live about 3 hours (specs/nsm.md §3; the 2026-03-06 vector's leaf: 11:14:15 to 14:14:18). */
export const MOCK_LEAF_LIFETIME_MS = 3 * 60 * 60 * 1000;
/** Longest leaf we issue: half the instance CA's lifetime, so a fresh instance CA (back-dated 1 h) always contains it. */
const MOCK_MAX_LEAF_LIFETIME_MS = 12 * HOUR_MS;
/** Shortest leaf: validity is encoded to the second (RFC 5280 §4.1.2.5), so anything shorter is an empty window. */
const MOCK_MIN_LEAF_LIFETIME_MS = 1000;
/** CA certificates start this long before `now` for clock skew; AWS's Root-G1 shows the same hour (13:28:05 to 14:28:05 thirty years on). */
const MOCK_CA_BACKDATE_MS = HOUR_MS;
/** AWS Nitro Enclaves Root-G1 runs 30 years (2019-10-28 to 2049-10-28). */
const MOCK_ROOT_LIFETIME_YEARS = 30;
/** Regional CA: about 3 weeks (observed 20 d 1 h, 2026-03-01 to 2026-03-21, on the 2026-03-06 vector). */
const MOCK_REGIONAL_LIFETIME_MS = 21 * DAY_MS;
/** Zonal CA: about 6 days (observed 5 d 20 h on the same vector). */
const MOCK_ZONAL_LIFETIME_MS = 6 * DAY_MS;
/** Instance CA: 1 day (observed exactly 24 h on the same vector). */
const MOCK_INSTANCE_LIFETIME_MS = DAY_MS;
/** 16 random bytes with the top bit cleared: a positive INTEGER of at most 20 octets (RFC 5280 §4.1.2.2). */
const SERIAL_BYTES = 16;
/** UTCTime covers 1950..2049 and GeneralizedTime ends at 9999 (RFC 5280 §4.1.2.5), and the root runs 30 years. */
const MIN_YEAR = 1951;
const MAX_YEAR = 9999 - MOCK_ROOT_LIFETIME_YEARS - 1;

const OID_ECDSA_WITH_SHA384 = '1.2.840.10045.4.3.3';
const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
/** namedCurve parameter of a P-384 key: DER of OID 1.3.132.0.34 (secp384r1, RFC 5480 §2.1.1.1). */
const NAMED_CURVE_SECP384R1_DER = Uint8Array.of(0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22);
const P384_COORDINATE_BYTES = 48;

const MOCK_REGION = 'us-east-1';
const MOCK_ORGANIZATION = 'Mock';
const MOCK_ROOT_COMMON_NAME = 'mock.nitro-enclaves (NOT FOR PRODUCTION)';
const MODULE_ID_PATTERN = /^(i-[0-9a-f]{17})-enc[0-9a-f]{16}$/;
const INSTANCE_COMMON_NAME_PATTERN = /^CN=(i-[0-9a-f]{17})\.[^\n]*$/m;

/** File stems under the mock PKI directory, in cabundle order (root first). */
const LEVELS = ['root', 'regional', 'zonal', 'instance'] as const;
type Level = (typeof LEVELS)[number];

export interface MockCertificate {
  der: Uint8Array;
  privateKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
}

export interface MockPki {
  /** cabundle[0]. */
  root: MockCertificate;
  /** [regional, zonal, instance], so cabundle = [root, ...intermediates]. */
  intermediates: MockCertificate[];
  /** Signs documents. */
  leaf: MockCertificate;
  /** `i-<17hex>-enc<16hex>`, the leaf CN's prefix. */
  moduleId: string;
}

export interface MockPkiOptions {
  now?: Date;
  leafLifetimeMs?: number;
}

/** Creates a new root, intermediates and leaf, all valid at `now` (default: the current time). */
export function createMockPki(options: MockPkiOptions = {}): MockPki {
  const now = readNow(options.now);
  const leafWindow = leafValidity(now, readLeafLifetime(options.leafLifetimeMs));
  const root = issueRoot(now);
  const instanceId = `i-${randomHex(17)}`;
  const moduleId = `${instanceId}-enc${randomHex(16)}`;
  const intermediates = issueIntermediates(root, instanceId, now);
  return freezePki(root, intermediates, issueLeaf(intermediates, moduleId, leafWindow), moduleId);
}

/**
 * Issues a fresh short-lived leaf under the existing instance CA (for rotation before expiry). When the
 * existing intermediates no longer contain the new leaf's window (the instance CA lives a day), they are
 * re-issued under the same root, as AWS rotates them; the root and the module id never change.
 */
export function renewMockLeaf(pki: MockPki, options: MockPkiOptions = {}): MockPki {
  const now = readNow(options.now);
  const leafWindow = leafValidity(now, readLeafLifetime(options.leafLifetimeMs));
  const instanceId = MODULE_ID_PATTERN.exec(pki.moduleId)?.[1];
  if (instanceId === undefined) throw badArgument(`"moduleId" expected i-<17 hex>-enc<16 hex>, got ${JSON.stringify(pki.moduleId)}`);
  if (pki.intermediates.length !== LEVELS.length - 1) {
    throw badArgument(`"intermediates" expected ${LEVELS.length - 1} certificates, got ${pki.intermediates.length}`);
  }
  return withFreshLeaf(pki.root, pki.intermediates, pki.moduleId, instanceId, now, leafWindow);
}

/**
 * Writes root.pem and root.key.pem, then regional, zonal and instance (.pem and .key.pem each) into
 * `dir`, creating it (mode 0700) if missing. Key files are PKCS#8 PEM with mode 0600. The leaf is not written.
 */
export async function writeMockPki(dir: string, pki: MockPki): Promise<void> {
  const certificates = [pki.root, ...pki.intermediates];
  if (certificates.length !== LEVELS.length) {
    throw badArgument(`"intermediates" expected ${LEVELS.length - 1} certificates, got ${pki.intermediates.length}`);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const [index, level] of LEVELS.entries()) {
    const certificate = certificates[index]!;
    await writeFile(join(dir, `${level}.pem`), certificateToPem(certificate.der), { mode: 0o644 });
    await writePrivateFile(join(dir, `${level}.key.pem`), certificate.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  }
}

/**
 * Reads what writeMockPki wrote, checks that each key matches its certificate and that the chain is
 * signed root -> regional -> zonal -> instance, and issues a FRESH leaf (with a new enclave id under the
 * stored instance id). Any missing or bad file throws MOCK_PKI_INVALID naming it.
 */
export async function loadMockPki(dir: string, options: { now?: Date } = {}): Promise<MockPki> {
  const now = readNow(options.now);
  const leafWindow = leafValidity(now, MOCK_LEAF_LIFETIME_MS);
  const loaded: LoadedCertificate[] = [];
  for (const level of LEVELS) loaded.push(await loadLevel(dir, level));
  for (const [index, current] of loaded.entries()) {
    const parent = loaded[index - 1] ?? current;
    if (!current.x509.ca) throw invalid(current.certificateFile, 'is not a CA certificate');
    if (!current.x509.checkIssued(parent.x509) || !current.x509.verify(parent.x509.publicKey)) {
      throw invalid(current.certificateFile, `is not issued by ${parent.certificateFile}`);
    }
  }
  const [root, ...intermediates] = loaded;
  const instance = loaded[loaded.length - 1]!;
  const instanceId = INSTANCE_COMMON_NAME_PATTERN.exec(instance.x509.subject)?.[1];
  if (instanceId === undefined) throw invalid(instance.certificateFile, 'subject CN is not i-<17 hex>.<region>...');
  const moduleId = `${instanceId}-enc${randomHex(16)}`;
  return withFreshLeaf(root!.certificate, intermediates.map((level) => level.certificate), moduleId, instanceId, now, leafWindow);
}


// ---------------------------------------------------------------------------------------------------
// Issuing

interface Window {
  notBefore: Date;
  notAfter: Date;
}

/** The parts of a parent certificate a child needs: its subject (the child's issuer) and key identifier. */
interface Authority {
  name: Name;
  keyIdentifier: ArrayBuffer | undefined;
  privateKey: KeyObject;
}

type AttributeKey = keyof typeof ATTRIBUTE_OIDS;
const ATTRIBUTE_OIDS = { C: '2.5.4.6', ST: '2.5.4.8', L: '2.5.4.7', O: '2.5.4.10', OU: '2.5.4.11', CN: '2.5.4.3' } as const;

/**
 * One attribute per RDN, in the order given. As on real certificates, C is a PrintableString and every
 * other attribute a UTF8String; the order differs by level on real chains, and we copy it.
 */
function buildName(attributes: ReadonlyArray<readonly [AttributeKey, string]>): Name {
  return new Name(
    attributes.map(
      ([key, value]) =>
        new RelativeDistinguishedName([
          new AttributeTypeAndValue({
            type: ATTRIBUTE_OIDS[key],
            value: new AttributeValue(key === 'C' ? { printableString: value } : { utf8String: value }),
          }),
        ]),
    ),
  );
}

function issueRoot(now: Date): MockCertificate {
  const notAfter = new Date(now.getTime());
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + MOCK_ROOT_LIFETIME_YEARS);
  const window = toSeconds({ notBefore: new Date(now.getTime() - MOCK_CA_BACKDATE_MS), notAfter });
  const name = buildName([['C', 'US'], ['O', MOCK_ORGANIZATION], ['OU', 'AWS'], ['CN', MOCK_ROOT_COMMON_NAME]]);
  const { privateKey, publicKey } = generateP384();
  const self: Authority = { name, keyIdentifier: keyIdentifierOf(publicKey), privateKey };
  return issue(self, name, publicKey, privateKey, window, caExtensions(self, publicKey, undefined, CA_KEY_USAGE, false));
}

/** Regional, zonal and instance CAs, all starting MOCK_CA_BACKDATE_MS before `now`. */
function issueIntermediates(root: MockCertificate, instanceId: string, now: Date): MockCertificate[] {
  const start = now.getTime() - MOCK_CA_BACKDATE_MS;
  const regionalName = `${randomHex(16)}.${MOCK_REGION}.mock.nitro-enclaves`;
  const zonalName = `${randomHex(16)}.zonal.${MOCK_REGION}.mock.nitro-enclaves`;
  const levels = [
    {
      lifetimeMs: MOCK_REGIONAL_LIFETIME_MS,
      pathLength: 2,
      keyUsage: CA_KEY_USAGE,
      name: buildName([['C', 'US'], ['O', MOCK_ORGANIZATION], ['OU', 'AWS'], ['CN', regionalName]]),
    },
    {
      lifetimeMs: MOCK_ZONAL_LIFETIME_MS,
      pathLength: 1,
      keyUsage: CA_KEY_USAGE,
      name: buildName([['CN', zonalName], ['OU', 'AWS'], ['O', MOCK_ORGANIZATION], ['C', 'US'], ['ST', 'WA'], ['L', 'Seattle']]),
    },
    {
      lifetimeMs: MOCK_INSTANCE_LIFETIME_MS,
      pathLength: 0,
      keyUsage: KeyUsageFlags.keyCertSign,
      name: instanceName(`${instanceId}.${MOCK_REGION}.mock.nitro-enclaves`),
    },
  ];
  const issued: MockCertificate[] = [];
  let parent = root;
  for (const level of levels) {
    const authority = authorityOf(parent);
    const window = toSeconds({
      notBefore: new Date(Math.max(start, parent.notBefore.getTime())),
      notAfter: new Date(Math.min(start + level.lifetimeMs, parent.notAfter.getTime())),
    });
    const { privateKey, publicKey } = generateP384();
    const extensions = caExtensions(authority, publicKey, level.pathLength, level.keyUsage, true);
    parent = issue(authority, level.name, publicKey, privateKey, window, extensions);
    issued.push(parent);
  }
  return issued;
}

function issueLeaf(intermediates: readonly MockCertificate[], moduleId: string, window: Window): MockCertificate {
  const authority = authorityOf(intermediates[intermediates.length - 1]!);
  const { privateKey, publicKey } = generateP384();
  // Real leaves: basicConstraints critical CA:FALSE, keyUsage NOT critical, no AKI/SKI (specs/nsm.md §3).
  const extensions = [
    extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: false })),
    extension(id_ce_keyUsage, false, new KeyUsage(KeyUsageFlags.digitalSignature | KeyUsageFlags.nonRepudiation)),
  ];
  return issue(authority, instanceName(`${moduleId}.${MOCK_REGION}.mock`), publicKey, privateKey, window, extensions);
}

/** Keeps the intermediates when they contain the leaf window, else re-issues them under `root`. */
function withFreshLeaf(
  root: MockCertificate,
  intermediates: readonly MockCertificate[],
  moduleId: string,
  instanceId: string,
  now: Date,
  leafWindow: Window,
): MockPki {
  if (!contains(root, leafWindow)) {
    throw new NsmError('MOCK_PKI_INVALID', `mock root valid ${root.notBefore.toISOString()} to ${root.notAfter.toISOString()} does not cover a leaf at ${now.toISOString()}`);
  }
  const current = intermediates.every((certificate) => contains(certificate, leafWindow)) ? intermediates : issueIntermediates(root, instanceId, now);
  return freezePki(root, current, issueLeaf(current, moduleId, leafWindow), moduleId);
}

const CA_KEY_USAGE = KeyUsageFlags.digitalSignature | KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign;

function caExtensions(issuer: Authority, publicKey: KeyObject, pathLength: number | undefined, keyUsage: number, withAuthorityKey: boolean): Extension[] {
  const basicConstraints = new BasicConstraints(pathLength === undefined ? { cA: true } : { cA: true, pathLenConstraint: pathLength });
  const extensions = [extension(id_ce_basicConstraints, true, basicConstraints)];
  if (withAuthorityKey && issuer.keyIdentifier !== undefined) {
    const keyIdentifier = new KeyIdentifier(issuer.keyIdentifier);
    extensions.push(extension(id_ce_authorityKeyIdentifier, false, new AuthorityKeyIdentifier({ keyIdentifier })));
  }
  extensions.push(extension(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(keyIdentifierOf(publicKey))));
  extensions.push(extension(id_ce_keyUsage, true, new KeyUsage(keyUsage)));
  return extensions;
}

function extension(extnID: string, critical: boolean, value: object): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

/** Builds, signs (ECDSA P-384 / SHA-384, DER Ecdsa-Sig-Value) and encodes one X.509 v3 certificate. */
function issue(issuer: Authority, subject: Name, publicKey: KeyObject, privateKey: KeyObject, window: Window, extensions: Extension[]): MockCertificate {
  const tbsCertificate = new TBSCertificate({
    version: Version.v3,
    serialNumber: randomSerial(),
    signature: ecdsaWithSha384(),
    issuer: issuer.name,
    // Time picks UTCTime through 2049 and GeneralizedTime from 2050 (RFC 5280 §4.1.2.5).
    validity: new Validity(window),
    subject,
    subjectPublicKeyInfo: new SubjectPublicKeyInfo({
      // Parameters of id-ecPublicKey are the namedCurve OID, passed as its DER (an ASN.1 ANY).
      algorithm: new AlgorithmIdentifier({ algorithm: OID_EC_PUBLIC_KEY, parameters: copyToArrayBuffer(NAMED_CURVE_SECP384R1_DER) }),
      subjectPublicKey: copyToArrayBuffer(uncompressedPoint(publicKey)),
    }),
    extensions: new Extensions(extensions),
  });
  const tbs = new Uint8Array(AsnConvert.serialize(tbsCertificate));
  const signature = sign('sha384', tbs, { key: issuer.privateKey, dsaEncoding: 'der' });
  // Certificate re-serializes tbsCertificate; the encoding is deterministic, so the bytes are the ones signed.
  const certificate = new Certificate({ tbsCertificate, signatureAlgorithm: ecdsaWithSha384(), signatureValue: copyToArrayBuffer(signature) });
  return { der: new Uint8Array(AsnConvert.serialize(certificate)), privateKey, notBefore: window.notBefore, notAfter: window.notAfter };
}

/** ecdsa-with-SHA384 with parameters absent (RFC 5758 §3.2): leaving `parameters` undefined omits it; null would encode NULL. */
function ecdsaWithSha384(): AlgorithmIdentifier {
  return new AlgorithmIdentifier({ algorithm: OID_ECDSA_WITH_SHA384 });
}

/** Reads a parent's subject Name and SKI back from its DER, so fresh and loaded parents are handled alike. */
function authorityOf(parent: MockCertificate): Authority {
  const { tbsCertificate } = AsnConvert.parse(parent.der, Certificate);
  const subjectKeyIdentifier = tbsCertificate.extensions?.find((candidate) => candidate.extnID === id_ce_subjectKeyIdentifier);
  const keyIdentifier = subjectKeyIdentifier === undefined ? undefined : AsnConvert.parse(subjectKeyIdentifier.extnValue.buffer, SubjectKeyIdentifier).buffer;
  return { name: tbsCertificate.subject, keyIdentifier, privateKey: parent.privateKey };
}

/** Instance and leaf names share this shape on real chains; only the CN differs. */
function instanceName(commonName: string): Name {
  return buildName([['C', 'US'], ['ST', 'Washington'], ['L', 'Seattle'], ['O', MOCK_ORGANIZATION], ['OU', 'AWS'], ['CN', commonName]]);
}

/**
 * `generateKeyPairSync` with only the public half encoded, as JWK by the generation itself: exporting a
 * generated KeyObject as JWK can deadlock Node 20 (steve/server/x25519-node.ts). @types/node has no such overload.
 */
const generateWithPublicJwk = generateKeyPairSync as unknown as (type: 'ec', options: { namedCurve: 'P-384'; publicKeyEncoding: { format: 'jwk' } }) => { publicKey: JsonWebKey; privateKey: KeyObject };

/** A fresh P-384 pair; the public KeyObject is imported from the generation's JWK, so exporting it is safe. */
function generateP384(): { privateKey: KeyObject; publicKey: KeyObject } {
  const { publicKey, privateKey } = generateWithPublicJwk('ec', { namedCurve: 'P-384', publicKeyEncoding: { format: 'jwk' } });
  return { privateKey, publicKey: createPublicKey({ key: publicKey, format: 'jwk' }) };
}

/** 0x04 || x || y (SEC 1 §2.3.3), the subjectPublicKey BIT STRING content of an EC key (RFC 5480 §2.2). */
function uncompressedPoint(publicKey: KeyObject): Uint8Array {
  const jwk = publicKey.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x ?? '', 'base64url');
  const y = Buffer.from(jwk.y ?? '', 'base64url');
  if (jwk.crv !== 'P-384' || x.length !== P384_COORDINATE_BYTES || y.length !== P384_COORDINATE_BYTES) {
    throw badArgument(`"publicKey" expected a P-384 key, got ${jwk.kty ?? 'unknown'} ${jwk.crv ?? ''}`);
  }
  const point = new Uint8Array(1 + 2 * P384_COORDINATE_BYTES);
  point[0] = 0x04;
  point.set(x, 1);
  point.set(y, 1 + P384_COORDINATE_BYTES);
  return point;
}

/** SHA-1 of the subjectPublicKey BIT STRING content (RFC 5280 §4.2.1.2, method 1). */
function keyIdentifierOf(publicKey: KeyObject): ArrayBuffer {
  return copyToArrayBuffer(createHash('sha1').update(uncompressedPoint(publicKey)).digest());
}

/** asn1-schema writes an ArrayBuffer INTEGER as given (no sign byte, no trimming), so make it minimal and positive here. */
function randomSerial(): ArrayBuffer {
  const serial = new Uint8Array(randomBytes(SERIAL_BYTES));
  serial[0] = serial[0]! & 0x7f || 0x01;
  return serial.buffer;
}

function randomHex(digits: number): string {
  return randomBytes(Math.ceil(digits / 2)).toString('hex').slice(0, digits);
}

function copyToArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return new Uint8Array(bytes).buffer;
}

/** Validity is encoded to the second; keep the Dates we report equal to what the certificate says. */
function toSeconds(window: Window): Window {
  const floor = (date: Date): Date => new Date(Math.floor(date.getTime() / 1000) * 1000);
  return { notBefore: floor(window.notBefore), notAfter: floor(window.notAfter) };
}

function leafValidity(now: Date, lifetimeMs: number): Window {
  return toSeconds({ notBefore: now, notAfter: new Date(now.getTime() + lifetimeMs) });
}

function contains(certificate: MockCertificate, window: Window): boolean {
  return certificate.notBefore.getTime() <= window.notBefore.getTime() && window.notAfter.getTime() <= certificate.notAfter.getTime();
}

function freezePki(root: MockCertificate, intermediates: readonly MockCertificate[], leaf: MockCertificate, moduleId: string): MockPki {
  return Object.freeze({ root, intermediates: Object.freeze([...intermediates]) as MockCertificate[], leaf, moduleId });
}

// ---------------------------------------------------------------------------------------------------
// Files and arguments

interface LoadedCertificate {
  certificate: MockCertificate;
  x509: X509Certificate;
  certificateFile: string;
}

async function loadLevel(dir: string, level: Level): Promise<LoadedCertificate> {
  const certificateFile = join(dir, `${level}.pem`);
  const keyFile = join(dir, `${level}.key.pem`);
  const der = decodeCertificatePem(await readText(certificateFile), certificateFile);
  let x509: X509Certificate;
  let window: Window;
  try {
    x509 = new X509Certificate(der);
    const { validity } = AsnConvert.parse(der, Certificate).tbsCertificate;
    window = { notBefore: validity.notBefore.getTime(), notAfter: validity.notAfter.getTime() };
  } catch (cause) {
    throw invalid(certificateFile, 'is not a DER X.509 certificate', cause);
  }
  if (x509.publicKey.asymmetricKeyDetails?.namedCurve !== 'secp384r1') throw invalid(certificateFile, 'does not hold a P-384 key');
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(await readText(keyFile));
  } catch (cause) {
    if (cause instanceof NsmError) throw cause;
    throw invalid(keyFile, 'is not a PEM private key', cause);
  }
  const derivedPublicKey = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  if (!derivedPublicKey.equals(x509.publicKey.export({ type: 'spki', format: 'der' }))) {
    throw invalid(keyFile, `does not match ${certificateFile}`);
  }
  return { certificate: { der, privateKey, ...window }, x509, certificateFile };
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
    throw invalid(file, missing ? 'is missing' : 'cannot be read', cause);
  }
}

/** Exactly one 'CERTIFICATE' block (RFC 7468 §5); text around it is allowed, a second block is not. */
function decodeCertificatePem(text: string, file: string): Uint8Array {
  const blocks = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g)];
  const block = blocks[0];
  if (blocks.length !== 1 || block === undefined || block[1] !== 'CERTIFICATE') throw invalid(file, "does not hold exactly one PEM 'CERTIFICATE' block");
  const body = (block[2] ?? '').replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) throw invalid(file, 'holds invalid base64');
  return new Uint8Array(Buffer.from(body, 'base64'));
}

/** Opens with mode 0600 and chmods too: an existing file keeps its old mode on open. */
async function writePrivateFile(file: string, text: string): Promise<void> {
  const handle = await open(file, 'w', 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(text);
  } finally {
    await handle.close();
  }
}

function readNow(now: Date | undefined): Date {
  if (now === undefined) return new Date();
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw badArgument(`"now" expected a valid Date, got ${describe(now)}`);
  const year = now.getUTCFullYear();
  if (year < MIN_YEAR || year > MAX_YEAR) throw badArgument(`"now" expected a year in ${MIN_YEAR}..${MAX_YEAR}, got ${year}`);
  return new Date(now.getTime());
}

function readLeafLifetime(lifetimeMs: number | undefined): number {
  if (lifetimeMs === undefined) return MOCK_LEAF_LIFETIME_MS;
  if (!Number.isSafeInteger(lifetimeMs) || lifetimeMs < MOCK_MIN_LEAF_LIFETIME_MS || lifetimeMs > MOCK_MAX_LEAF_LIFETIME_MS) {
    throw badArgument(`"leafLifetimeMs" expected an integer in ${MOCK_MIN_LEAF_LIFETIME_MS}..${MOCK_MAX_LEAF_LIFETIME_MS}, got ${describe(lifetimeMs)}`);
  }
  return lifetimeMs;
}

function describe(value: unknown): string {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  return typeof value === 'number' ? String(value) : typeof value;
}

function badArgument(message: string): NsmError {
  return new NsmError('NSM_BAD_ARGUMENT', message);
}

function invalid(file: string, problem: string, cause?: unknown): NsmError {
  return new NsmError('MOCK_PKI_INVALID', `mock PKI file ${file} ${problem}`, cause === undefined ? undefined : { cause });
}

export { certificateToPem };
