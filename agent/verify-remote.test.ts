/**
 * The remote verifier's pure parts, without sockets: parsing an /attestation answer, the manifest binding
 * (tampered `manifest`, tampered `manifest_base64`, bad `user_data`), the flags, the report, escaping of
 * server-chosen text, and hostile bytes (fast-check). agent/agent.e2e.test.ts runs the whole thing
 * against a real agent on loopback.
 */

import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesToHex, createMockPki, nodeP384Verifier, verifyAttestationDocument, writeMockPki, type MockPki } from '../nsm/index.js';
import { signMockDocument } from '../test/mock-documents.js';
import { mutate, mutationArbitrary } from '../test/mutations.js';
import { DEMO_MANIFEST_JSON } from './demo/manifest.js';
import { AgentError } from './errors.js';
import { encodeUserData } from './user-data.js';
import {
  AWS_ROOT_NAME,
  checkManifestBinding,
  formatRemoteReport,
  jsonEqual,
  parseAttestationResponse,
  parseAttestationUrl,
  parseVerifyFlags,
  printable,
  remoteReportJson,
  type RemoteReport,
} from './verify-remote.js';
import { jsonDepthWithin } from '../eif/index.js';

const utf8 = (text: string) => new TextEncoder().encode(text);
const b64 = (bytes: Uint8Array | string) => Buffer.from(bytes).toString('base64');
const sha256Hex = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

const MANIFEST_TEXT = DEMO_MANIFEST_JSON;
const MANIFEST = JSON.parse(MANIFEST_TEXT) as Record<string, unknown>;
const DOCUMENT = Uint8Array.from([0xd2, 0x84, 0x44, 0xa1, 0x01, 0x38, 0x22]);
const KEY = Uint8Array.from({ length: 32 }, (_, i) => i * 7);

/** The agent's answer (agent/attestation.ts builds it the same way), with fields replaceable by text. */
function answer(fields: Partial<Record<'document' | 'attestation_document' | 'manifest' | 'manifest_base64', string | null>> = {}): Uint8Array {
  const parts: Record<string, string | null> = {
    document: JSON.stringify(b64(DOCUMENT)),
    attestation_document: JSON.stringify(b64(DOCUMENT)),
    manifest: MANIFEST_TEXT,
    manifest_base64: JSON.stringify(b64(MANIFEST_TEXT)),
    ...fields,
  };
  return utf8(`{${Object.entries(parts).filter(([, v]) => v !== null).map(([k, v]) => `"${k}":${v}`).join(',')}}`);
}

function expectCode(fn: () => unknown, code: string, message?: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'expected a throw').toBeInstanceOf(AgentError);
  expect((thrown as AgentError).code).toBe(code);
  if (message !== undefined) expect((thrown as AgentError).message).toMatch(message);
}

describe('parseAttestationResponse', () => {
  it('decodes the agent\'s answer', () => {
    const parsed = parseAttestationResponse(answer());
    expect(parsed.document).toEqual(DOCUMENT);
    expect(parsed.manifest).toEqual(MANIFEST);
    expect(new TextDecoder().decode(parsed.manifestBytes)).toBe(MANIFEST_TEXT);
  });

  it('accepts an answer without attestation_document, and ignores unknown keys', () => {
    expect(parseAttestationResponse(answer({ attestation_document: null })).document).toEqual(DOCUMENT);
    const extra = utf8(`{"future":[1,2],${new TextDecoder().decode(answer()).slice(1)}`);
    expect(parseAttestationResponse(extra).manifest).toEqual(MANIFEST);
  });

  const cases: [string, Uint8Array, RegExp][] = [
    ['a mismatching attestation_document', answer({ attestation_document: JSON.stringify(b64(Uint8Array.from([1, 2, 3]))) }), /"attestation_document" differs/],
    ['attestation_document null', answer({ attestation_document: 'null' }), /"attestation_document" differs/],
    ['no document', answer({ document: null }), /"document"/],
    ['an empty document', answer({ document: '""', attestation_document: '""' }), /"document"/],
    ['a document that is not a string', answer({ document: '[1,2]', attestation_document: null }), /"document"/],
    ['a document in base64url', answer({ document: '"0oRE-_8="', attestation_document: null }), /document/],
    ['a document without padding', answer({ document: '"0oREoQE"', attestation_document: null }), /document/],
    ['no manifest', answer({ manifest: null }), /"manifest" expected/],
    ['a manifest array', answer({ manifest: '[]' }), /"manifest" expected/],
    ['a manifest string', answer({ manifest: JSON.stringify(MANIFEST_TEXT) }), /"manifest" expected/],
    ['a manifest null', answer({ manifest: 'null' }), /"manifest" expected/],
    ['no manifest_base64', answer({ manifest_base64: null }), /"manifest_base64"/],
    ['manifest_base64 not base64', answer({ manifest_base64: '"not base64!"' }), /manifest_base64/],
    ['manifest_base64 an object', answer({ manifest_base64: '{}' }), /"manifest_base64"/],
    ['not JSON', utf8('<html>502 Bad Gateway</html>'), /not UTF-8 JSON/],
    ['empty', new Uint8Array(0), /not UTF-8 JSON/],
    ['invalid UTF-8', Uint8Array.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]), /not UTF-8 JSON/],
    ['a JSON array', utf8('[]'), /not a JSON object/],
    ['JSON null', utf8('null'), /not a JSON object/],
    ['nesting deep enough to overflow a recursive walk', utf8(`{"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`), /nested deeper/],
  ];
  it.each(cases)('refuses %s (AGENT_VERIFY_RESPONSE)', (_, bytes, message) => expectCode(() => parseAttestationResponse(bytes), 'AGENT_VERIFY_RESPONSE', message));

  it('hostile bytes (random and mutated answers) give only AGENT_VERIFY_RESPONSE or a parsed answer', () => {
    const valid = answer();
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.array(mutationArbitrary, { minLength: 1, maxLength: 4 }).map((ms) => ms.reduce(mutate, valid))), (bytes) => {
        try {
          const parsed = parseAttestationResponse(bytes);
          expect(parsed.document.length).toBeGreaterThan(0);
        } catch (err) {
          expect(err).toBeInstanceOf(AgentError);
          expect((err as AgentError).code).toBe('AGENT_VERIFY_RESPONSE');
        }
      }),
      { seed: 42, numRuns: 2000 },
    );
  });
});

describe('checkManifestBinding', () => {
  const userData = encodeUserData(sha256Hex(MANIFEST_TEXT), KEY, { tls: { mode: 'tls', domain: 'example.com' }, region: 'eu' });
  const response = { manifest: MANIFEST, manifestBytes: utf8(MANIFEST_TEXT) };

  it('binds the agent\'s user_data to the manifest; reports verifying_key and metadata keys', () => {
    expect(checkManifestBinding(userData, response)).toEqual({ manifestSha256: sha256Hex(MANIFEST_TEXT), verifyingKey: KEY, metadataKeys: ['tls', 'region'] });
  });

  it('accepts a manifest object with its keys in another order (JSON objects are unordered)', () => {
    const reordered = Object.fromEntries(Object.entries(MANIFEST).reverse());
    expect(checkManifestBinding(userData, { ...response, manifest: reordered }).manifestSha256).toBe(sha256Hex(MANIFEST_TEXT));
  });

  it('accepts user_data without verifying_key and upper-case manifest_sha256', () => {
    const bare = utf8(JSON.stringify({ manifest_sha256: sha256Hex(MANIFEST_TEXT).toUpperCase() }));
    expect(checkManifestBinding(bare, response)).toEqual({ manifestSha256: sha256Hex(MANIFEST_TEXT), verifyingKey: null, metadataKeys: [] });
  });

  const other = MANIFEST_TEXT.replace('node demo-app.js', 'node evil.js');
  const cases: [string, Uint8Array | null, { manifest: Record<string, unknown>; manifestBytes: Uint8Array }, RegExp][] = [
    ['a tampered manifest object', userData, { ...response, manifest: { ...MANIFEST, run_command: 'node evil.js' } }, /"manifest" differs from the signed/],
    ['an extra key in the manifest object', userData, { ...response, manifest: { ...MANIFEST, binary: '/app' } }, /"manifest" differs/],
    ['a missing key in the manifest object', userData, { ...response, manifest: { version: '1.0' } }, /"manifest" differs/],
    ['a number turned into a string', utf8(JSON.stringify({ manifest_sha256: sha256Hex('{"a":1}') })), { manifest: { a: '1' }, manifestBytes: utf8('{"a":1}') }, /"manifest" differs/],
    ['a tampered manifest_base64 (object and bytes both replaced)', userData, { manifest: JSON.parse(other) as Record<string, unknown>, manifestBytes: utf8(other) }, /manifest_base64 has SHA-256 [0-9a-f]{64}, but the document signed/],
    ['re-serialised manifest bytes (same object, other bytes)', userData, { ...response, manifestBytes: utf8(JSON.stringify(MANIFEST, null, 2)) }, /manifest_base64 has SHA-256/],
    ['no user_data', null, response, /no user_data/],
    ['non-JSON user_data', utf8('manifest_sha256=abc'), response, /user_data is not UTF-8 JSON/],
    ['raw-bytes user_data (not UTF-8)', Uint8Array.from([0xff, 0xfe, 0x00]), response, /user_data is not UTF-8 JSON/],
    ['user_data a JSON array', utf8('[]'), response, /user_data is not a JSON object/],
    ['user_data without manifest_sha256', utf8('{"verifying_key":[]}'), response, /manifest_sha256 expected 64 hex/],
    ['manifest_sha256 not hex', utf8(JSON.stringify({ manifest_sha256: 'z'.repeat(64) })), response, /manifest_sha256 expected 64 hex/],
    ['manifest_sha256 of the wrong length', utf8(JSON.stringify({ manifest_sha256: sha256Hex(MANIFEST_TEXT).slice(2) })), response, /manifest_sha256 expected 64 hex/],
    ['manifest bytes that are not JSON', utf8(JSON.stringify({ manifest_sha256: sha256Hex('nope') })), { manifest: {}, manifestBytes: utf8('nope') }, /manifest_base64 is not UTF-8 JSON/],
    ['a verifying_key of 31 integers', utf8(JSON.stringify({ manifest_sha256: sha256Hex(MANIFEST_TEXT), verifying_key: [...KEY.subarray(1)] })), response, /verifying_key expected 32 integers/],
    ['a verifying_key with 256', utf8(JSON.stringify({ manifest_sha256: sha256Hex(MANIFEST_TEXT), verifying_key: [...KEY.subarray(1), 256] })), response, /verifying_key/],
    ['a verifying_key as a string', utf8(JSON.stringify({ manifest_sha256: sha256Hex(MANIFEST_TEXT), verifying_key: b64(KEY) })), response, /verifying_key/],
  ];
  it.each(cases)('refuses %s (AGENT_VERIFY_MANIFEST)', (_, data, input, message) => expectCode(() => checkManifestBinding(data, input), 'AGENT_VERIFY_MANIFEST', message));

  it('hostile user_data gives only AGENT_VERIFY_MANIFEST or a binding', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.array(mutationArbitrary, { minLength: 1, maxLength: 4 }).map((ms) => ms.reduce(mutate, userData))), (bytes) => {
        try {
          expect(checkManifestBinding(bytes, response).manifestSha256).toBe(sha256Hex(MANIFEST_TEXT));
        } catch (err) {
          expect(err).toBeInstanceOf(AgentError);
          expect((err as AgentError).code).toBe('AGENT_VERIFY_MANIFEST');
        }
      }),
      { seed: 42, numRuns: 2000 },
    );
  });
});

describe('JSON helpers', () => {
  it('jsonEqual compares JSON values structurally', () => {
    expect(jsonEqual({ a: [1, { b: null }], c: 'x' }, { c: 'x', a: [1, { b: null }] })).toBe(true);
    expect(jsonEqual([1, 2], [2, 1])).toBe(false);
    expect(jsonEqual({ a: 1 }, { a: 1, b: undefined })).toBe(false);
    expect(jsonEqual({}, [])).toBe(false);
    expect(jsonEqual(null, {})).toBe(false);
    expect(jsonEqual(JSON.parse('{"__proto__":1}'), {})).toBe(false);
    expect(jsonEqual(JSON.parse('{"__proto__":1}'), JSON.parse('{"__proto__":1}'))).toBe(true);
  });

  it('jsonDepthWithin counts nesting without recursion', () => {
    expect(jsonDepthWithin({ a: { b: [1] } }, 3)).toBe(true);
    expect(jsonDepthWithin({ a: { b: [1] } }, 2)).toBe(false);
    expect(jsonDepthWithin('text', 0)).toBe(true);
    expect(jsonDepthWithin(JSON.parse('['.repeat(200_000) + ']'.repeat(200_000)), 32)).toBe(false);
  });

  it('printable escapes terminal escapes, bidi overrides and line breaks, and caps the length', () => {
    expect(printable('ok\u001b[2J\u202etxt.exe\r\n\u009b')).toBe('ok\\u{1b}[2J\\u{202e}txt.exe\\u{d}\\u{a}\\u{9b}');
    expect(printable('x'.repeat(300), 10)).toBe(`${'x'.repeat(10)}...`);
  });
});

describe('parseAttestationUrl', () => {
  it('accepts http: and https:, dropping a fragment', () => {
    expect(parseAttestationUrl('https://enclave.example/attestation').href).toBe('https://enclave.example/attestation');
    expect(parseAttestationUrl('http://127.0.0.1:8080/attestation#x').href).toBe('http://127.0.0.1:8080/attestation');
  });

  it.each(['ftp://host/attestation', 'file:///etc/passwd', 'data:,x', 'ws://host/attestation', '/attestation', 'host:8080/attestation', 'https://user:pw@host/attestation', ''])(
    'refuses %j (AGENT_USAGE)',
    (text) => expectCode(() => parseAttestationUrl(text), 'AGENT_USAGE', /--url/),
  );
});

describe('parseVerifyFlags', () => {
  let dir: string;
  let pki: MockPki;
  const pcrsJson = (fill: string) => JSON.stringify({ pcr0: fill.repeat(96), pcr1: fill.repeat(96), pcr2: fill.repeat(96) });
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'enclave-agent-verify-flags-'));
    pki = createMockPki();
    await writeMockPki(join(dir, 'pki'), pki);
    await writeFile(join(dir, 'a.json'), pcrsJson('a'));
    await writeFile(join(dir, 'b.json'), pcrsJson('b'));
    await writeFile(join(dir, 'bad.json'), '{"pcr0":"abc"}');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const url = 'http://127.0.0.1:1/attestation';

  it('reads every --pcrs file as a profile named by its path, and the --root certificate', async () => {
    const { options, json } = await parseVerifyFlags({ url, pcrs: [join(dir, 'a.json'), join(dir, 'b.json')], root: join(dir, 'pki', 'root.pem'), json: true, 'allow-debug': true });
    expect(json).toBe(true);
    expect(options.allowDebug).toBe(true);
    expect(options.root).toEqual(pki.root.der);
    expect(options.policy.kind).toBe('pinned');
    const profiles = options.policy.kind === 'pinned' ? options.policy.profiles : [];
    expect(profiles.map((p) => p.name)).toEqual([join(dir, 'a.json'), join(dir, 'b.json')]);
    expect(profiles[1]!.pcrs.get(2)).toEqual(new Uint8Array(48).fill(0xbb));
  });

  it('takes --tofu as a path (a missing file is first use) and defaults to no policy and the AWS root', async () => {
    expect((await parseVerifyFlags({ url, tofu: join(dir, 'new.json') })).options.policy).toEqual({ kind: 'tofu', path: join(dir, 'new.json') });
    const { options } = await parseVerifyFlags({ url });
    expect(options.policy).toEqual({ kind: 'none' });
    expect(options.root).toBeUndefined();
    expect(options.bootstrap).toEqual({ mode: 'check' });
  });

  it('takes --bootstrap require|check|skip and --bootstrap-origin as an origin', async () => {
    for (const mode of ['require', 'check', 'skip'] as const) expect((await parseVerifyFlags({ url, bootstrap: mode })).options.bootstrap).toEqual({ mode });
    const { options } = await parseVerifyFlags({ url, bootstrap: 'require', 'bootstrap-origin': 'https://enclave.example:8443' });
    expect(options.bootstrap?.mode).toBe('require');
    expect(options.bootstrap?.origin?.href).toBe('https://enclave.example:8443/');
  });

  const usageCases: [string, () => Record<string, string | boolean | string[]>, RegExp][] = [
    ['no --url', () => ({}), /--url URL is required/],
    ['an ftp: URL', () => ({ url: 'ftp://127.0.0.1/attestation' }), /http: or https:/],
    ['--pcrs with --tofu', () => ({ url, pcrs: [join(dir, 'a.json')], tofu: join(dir, 't.json') }), /--pcrs and --tofu exclude each other/],
    ['a malformed --pcrs file', () => ({ url, pcrs: [join(dir, 'a.json'), join(dir, 'bad.json')] }), /--pcrs .*bad\.json: "pcr0" expected 96 hex digits/],
    ['a missing --pcrs file', () => ({ url, pcrs: [join(dir, 'missing.json')] }), /missing\.json: no such file/],
    ['a --pcrs directory', () => ({ url, pcrs: [dir] }), /not a regular file/],
    ['an empty --tofu', () => ({ url, tofu: '' }), /--tofu expected a file path/],
    ['an unknown --bootstrap mode', () => ({ url, bootstrap: 'warn' }), /--bootstrap expected require, check or skip, got "warn"/],
    ['an upper-case --bootstrap mode', () => ({ url, bootstrap: 'CHECK' }), /--bootstrap expected require, check or skip/],
    ['--bootstrap-origin with a path', () => ({ url, 'bootstrap-origin': 'https://enclave.example/app' }), /--bootstrap-origin expected an http: or https: origin/],
    ['--bootstrap-origin with a query', () => ({ url, 'bootstrap-origin': 'https://enclave.example/?x=1' }), /--bootstrap-origin expected/],
    ['--bootstrap-origin with credentials', () => ({ url, 'bootstrap-origin': 'https://u:p@enclave.example' }), /--bootstrap-origin expected/],
    ['--bootstrap-origin not http', () => ({ url, 'bootstrap-origin': 'file:///etc' }), /--bootstrap-origin expected/],
    ['--bootstrap-origin not a URL', () => ({ url, 'bootstrap-origin': 'enclave.example' }), /--bootstrap-origin expected/],
    ['--bootstrap-origin with --bootstrap skip', () => ({ url, bootstrap: 'skip', 'bootstrap-origin': 'https://enclave.example' }), /--bootstrap-origin goes with/],
  ];
  it.each(usageCases)('refuses %s (AGENT_USAGE)', async (_, values, message) => {
    await expect(parseVerifyFlags(values())).rejects.toMatchObject({ code: 'AGENT_USAGE', message: expect.stringMatching(message) });
  });

  it('a missing --root file is AGENT_IO', async () => {
    await expect(parseVerifyFlags({ url, root: join(dir, 'none.pem') })).rejects.toMatchObject({ code: 'AGENT_IO' });
  });
});

describe('the report', () => {
  it('says what was checked and what matched, in text and JSON, escaping server-chosen strings', () => {
    const pki = createMockPki();
    const nonce = new Uint8Array(32).fill(9);
    const userData = encodeUserData(sha256Hex(MANIFEST_TEXT), KEY, { 'evil\u001b[31m': 1 });
    const document = verifyAttestationDocument(signMockDocument(pki, { nonce, userData }), {
      atMs: pki.leaf.notBefore.getTime() + 120_000,
      root: pki.root.der,
      expectedNonce: nonce,
      verifier: nodeP384Verifier,
    });
    const report: RemoteReport = {
      url: 'http://127.0.0.1:8080/attestation',
      nonce,
      verifiedAtMs: pki.leaf.notBefore.getTime() + 120_000,
      document,
      rootName: null,
      pcrPolicy: { kind: 'tofu', path: '/tmp/state.json', result: 'recorded' },
      manifest: { ...MANIFEST, note: 'line\nbreak' },
      binding: { manifestSha256: sha256Hex(MANIFEST_TEXT), verifyingKey: KEY, metadataKeys: ['evil\u001b[31m'] },
      bootstrap: { mode: 'check', origin: 'http://127.0.0.1:8080', attested: false, results: [] },
      eif: null,
    };
    const text = formatRemoteReport(report);
    expect(text).toMatch(/^VALID attestation from http:\/\/127\.0\.0\.1:8080\/attestation\n/);
    expect(text).toContain(`module          ${pki.moduleId}`);
    expect(text).toContain(`root            sha256:${document.rootSha256} (not the AWS root`);
    expect(text).toContain('chain           5 certificates');
    expect(text).toContain('debug mode      no');
    expect(text).toContain(`nonce           matches the fresh 32-byte nonce sent (${b64(nonce)})`);
    expect(text).toContain(`PCR0            ${bytesToHex(document.pcrs.get(0)!)}`);
    expect(text).toContain('PCR policy      TOFU recorded in /tmp/state.json');
    expect(text).toContain(`manifest        sha256:${sha256Hex(MANIFEST_TEXT)} matches user_data.manifest_sha256`);
    expect(text).toContain(`verifying_key   present (${bytesToHex(KEY)})`);
    expect(text).toContain('metadata keys   evil\\u{1b}[31m');
    expect(text).toContain('bootstrap       NOT CHECKED: the manifest attests no bootstrap files');
    expect(text).toContain('run_command');
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);

    const json = remoteReportJson({ ...report, rootName: AWS_ROOT_NAME, pcrPolicy: { kind: 'pinned', profile: 'prod.json' } });
    expect(json).toMatchObject({
      valid: true,
      moduleId: pki.moduleId,
      root: { sha256: document.rootSha256, name: AWS_ROOT_NAME },
      chainLength: 5,
      debug: false,
      nonce: b64(nonce),
      nonceMatched: true,
      pcrPolicy: { kind: 'pinned', profile: 'prod.json' },
      manifestSha256: sha256Hex(MANIFEST_TEXT),
      manifestMatched: true,
      verifyingKey: bytesToHex(KEY),
      metadataKeys: ['evil\u001b[31m'],
      bootstrap: { mode: 'check', origin: 'http://127.0.0.1:8080', attested: false, passed: true, results: [] },
    });
    expect(formatRemoteReport({ ...report, rootName: AWS_ROOT_NAME, pcrPolicy: { kind: 'none' } })).toMatch(/\(AWS Nitro Enclaves Root-G1\)[\s\S]*PCR policy {6}NOT CHECKED/);
  });
});
