/**
 * The manifest's `bootstrap` field (agent/manifest.ts): which values checkManifest accepts (exactly: known
 * bootstrap paths, 64 lower-case hex digits, at least one entry; fast-check on random objects), that
 * manifests without it stay valid, and that addBootstrapHashes keeps every byte of its input, is
 * deterministic, and refuses what the agent would refuse.
 */

import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BOOTSTRAP_PATHS } from '../steve/index.js';
import { DEMO_MANIFEST_JSON } from './demo/manifest.js';
import { AgentError } from './errors.js';
import { addBootstrapHashes, checkBootstrapField, checkManifest, hashBootstrapFiles, parseManifest } from './manifest.js';

const utf8 = (text: string) => new TextEncoder().encode(text);
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const sha256Hex = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');
const BASE = JSON.parse(DEMO_MANIFEST_JSON) as Record<string, unknown>;
const PATHS = [...BOOTSTRAP_PATHS];
const HASH = 'ab'.repeat(32);

/** The rule, written independently of checkBootstrapField. */
function shouldAccept(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const entries = Object.entries(value);
  return entries.length > 0 && entries.every(([key, hash]) => PATHS.includes(key) && typeof hash === 'string' && hash.length === 64 && [...hash].every((c) => '0123456789abcdef'.includes(c)));
}

describe('checkManifest: the bootstrap field', () => {
  it('a manifest without it stays valid', () => {
    expect(checkManifest(BASE)).toEqual([]);
  });

  it('accepts any non-empty subset of the bootstrap paths with lower-case hex SHA-256', () => {
    expect(checkManifest({ ...BASE, bootstrap: { '/enclave-sw.js': HASH } })).toEqual([]);
    expect(checkManifest({ ...BASE, bootstrap: Object.fromEntries(PATHS.map((path) => [path, sha256Hex(path)])) })).toEqual([]);
  });

  const refused: [string, unknown, RegExp][] = [
    ['an array', [['/enclave-sw.js', HASH]], /must be an object/],
    ['a string', HASH, /must be an object/],
    ['null', null, /must be an object/],
    ['an empty object', {}, /at least one path/],
    ['an unknown path', { '/app.js': HASH }, /"\/app\.js", which is not a bootstrap path/],
    ['a path with a query', { '/enclave-sw.js?v=2': HASH }, /not a bootstrap path/],
    ['a path without its slash', { 'enclave-sw.js': HASH }, /not a bootstrap path/],
    ['a path in another case', { '/Enclave-SW.js': HASH }, /not a bootstrap path/],
    ['the /attestation path', { '/attestation': HASH }, /not a bootstrap path/],
    ['__proto__ as a key', JSON.parse(`{"__proto__":"${HASH}"}`), /"__proto__", which is not a bootstrap path/],
    ['upper-case hex', { '/register.js': HASH.toUpperCase() }, /"\/register\.js" must be 64 lower-case hex digits/],
    ['63 digits', { '/register.js': HASH.slice(1) }, /64 lower-case hex/],
    ['65 digits', { '/register.js': `${HASH}0` }, /64 lower-case hex/],
    ['a sha256: prefix', { '/register.js': `sha256:${HASH}` }, /64 lower-case hex/],
    ['base64', { '/register.js': Buffer.from(HASH, 'hex').toString('base64') }, /64 lower-case hex/],
    ['a trailing newline', { '/register.js': `${HASH}\n` }, /64 lower-case hex/],
    ['a number', { '/register.js': 1 }, /64 lower-case hex/],
    ['an object per path', { '/register.js': { sha256: HASH } }, /64 lower-case hex/],
  ];
  it.each(refused)('refuses %s', (_, bootstrap, message) => {
    const problems = checkManifest({ ...BASE, bootstrap });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(message);
    expect(() => parseManifest(utf8(JSON.stringify({ ...BASE, bootstrap })), 'm.json')).toThrow(AgentError);
  });

  it('reports at most 8 problems for one value', () => {
    const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`/file-${i}.js`, HASH]));
    expect(checkBootstrapField(many)).toHaveLength(8);
  });

  it('random objects: accepted exactly when every key is a bootstrap path and every value 64 lower-case hex digits', () => {
    const hexString = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 });
    const nearHex = fc.oneof(
      hexString.map((h) => h.toUpperCase()),
      hexString.map((h) => h.slice(1)),
      hexString.map((h) => `${h}0`),
      hexString.map((h) => ` ${h}`),
    );
    const key = fc.oneof(fc.constantFrom(...PATHS), fc.constantFrom(...PATHS).map((p) => `${p}/`), fc.constantFrom('/attestation', '/index.html', '__proto__', 'constructor', ''), fc.string({ maxLength: 12 }));
    const value = fc.oneof(hexString, hexString, nearHex, fc.string({ maxLength: 70 }), fc.integer(), fc.constant(null), fc.array(hexString, { maxLength: 1 }));
    const bootstrap = fc.oneof(
      fc.dictionary(key, value, { maxKeys: 6 }),
      fc.dictionary(fc.constantFrom(...PATHS), hexString, { minKeys: 1 }),
      fc.anything(),
    );
    fc.assert(
      fc.property(bootstrap, (candidate) => {
        // Through JSON, as a manifest file would carry it (a "__proto__" key becomes an own key).
        const json = JSON.stringify(candidate);
        if (json === undefined) return;
        const parsed: unknown = JSON.parse(json);
        const problems = checkManifest({ ...BASE, bootstrap: parsed });
        expect(problems.length === 0).toBe(shouldAccept(parsed));
        expect(checkBootstrapField(parsed).length === 0).toBe(shouldAccept(parsed));
      }),
      { seed: 42, numRuns: 3000 },
    );
  });
});

describe('addBootstrapHashes', () => {
  const files = new Map([
    ['/register.js', utf8('register')],
    ['/enclave-sw.js', utf8('worker')],
    ['/', utf8('<!doctype html>')],
  ]);

  it('hashes in sorted path order', () => {
    expect([...hashBootstrapFiles(files)]).toEqual([
      ['/', sha256Hex('<!doctype html>')],
      ['/enclave-sw.js', sha256Hex('worker')],
      ['/register.js', sha256Hex('register')],
    ]);
  });

  it('inserts the field before the closing brace and keeps every other byte', () => {
    const pretty = utf8('\ufeff{\n  "version": "1.0",\n  "x": 2.50,\n  "powered_by": "t \u2713",\n  "enclave_source": {"type": "local", "path": "."},\n  "framework_source": {"type": "git_archive", "url": "u"}\n}\n\n');
    const out = addBootstrapHashes(pretty, hashBootstrapFiles(files));
    const field = `,"bootstrap":{"/":"${sha256Hex('<!doctype html>')}","/enclave-sw.js":"${sha256Hex('worker')}","/register.js":"${sha256Hex('register')}"}`;
    const closing = text(pretty).lastIndexOf('}');
    expect(text(out)).toBe(`${text(pretty).slice(0, closing)}${field}${text(pretty).slice(closing)}`);
    expect(out.subarray(0, 3)).toEqual(Uint8Array.from([0xef, 0xbb, 0xbf]));
    const value = parseManifest(out, 'out').value;
    expect(value.x).toBe(2.5);
    expect(value.bootstrap).toEqual(Object.fromEntries(hashBootstrapFiles(files)));
  });

  it('is deterministic: the order the files are given in does not matter', () => {
    const reversed = new Map([...files].reverse());
    const a = addBootstrapHashes(utf8(DEMO_MANIFEST_JSON), hashBootstrapFiles(files));
    const b = addBootstrapHashes(utf8(DEMO_MANIFEST_JSON), hashBootstrapFiles(reversed));
    expect(b).toEqual(a);
    expect(text(a)).toBe(`${DEMO_MANIFEST_JSON.slice(0, -1)},"bootstrap":${JSON.stringify(Object.fromEntries(hashBootstrapFiles(files)))}}`);
  });

  const refusals: [string, Uint8Array, ReadonlyMap<string, string>, RegExp][] = [
    ['an input that already has the field', utf8(`${DEMO_MANIFEST_JSON.slice(0, -1)},"bootstrap":{"/register.js":"${HASH}"}}`), new Map([['/', HASH]]), /already has a "bootstrap" field/],
    ['an invalid manifest', utf8('{"version":"2.0"}'), new Map([['/', HASH]]), /"version" must be "1\.0"/],
    ['not JSON', utf8('version: 1.0'), new Map([['/', HASH]]), /not UTF-8 JSON/],
    ['no hashes', utf8(DEMO_MANIFEST_JSON), new Map(), /at least one path/],
    ['an unknown path', utf8(DEMO_MANIFEST_JSON), new Map([['/app.js', HASH]]), /not a bootstrap path/],
    ['a bad hash', utf8(DEMO_MANIFEST_JSON), new Map([['/', 'xyz']]), /64 lower-case hex/],
  ];
  it.each(refusals)('refuses %s (AGENT_MANIFEST)', (_, input, hashes, message) => {
    expect(() => addBootstrapHashes(input, hashes)).toThrow(expect.objectContaining({ code: 'AGENT_MANIFEST', message: expect.stringMatching(message) }));
  });
});
