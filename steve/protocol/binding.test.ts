/**
 * binding.ts: the exact §5 `user_data` bytes, and a check that accepts only that exact form and only
 * this session's five fields: every field changed, every non-canonical spelling (whitespace, key order,
 * duplicate keys, escapes, padding, the standard base64 alphabet, non-zero trailing bits) refused with
 * STEVE_BINDING.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkBindingUserData, encodeBindingUserData, type Binding } from './binding.js';
import { code } from '../../test/steve-codes.js';

const seq = (length: number, start: number): Uint8Array => Uint8Array.from({ length }, (_, i) => (start + i) & 0xff);
const binding: Binding = { suite: 'X25519', sessionId: seq(16, 0), transcriptHash: seq(32, 0x40), binder: seq(32, 0xf0) };
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const b64u = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');


describe('encodeBindingUserData (§5)', () => {
  it('is exactly the §5 JSON object, key order as listed, base64url without padding', () => {
    expect(text(encodeBindingUserData(binding))).toBe(
      `{"protocol":"STEVE-E2P-V2","key_exchange":"X25519","session_id":"${b64u(binding.sessionId)}","transcript_hash":"${b64u(binding.transcriptHash)}","binder":"${b64u(binding.binder)}"}`,
    );
    expect(text(encodeBindingUserData(binding))).toContain('"session_id":"AAECAwQFBgcICQoLDA0ODw"');
  });

  it('the X-Wing form is 215 bytes, the longest there is', () => {
    expect(encodeBindingUserData({ ...binding, suite: 'XWING-DRAFT10' })).toHaveLength(215);
  });

  it('refuses bad fields', () => {
    expect(code(() => encodeBindingUserData({ ...binding, sessionId: seq(15, 0) }))).toBe('STEVE_BAD_ARGUMENT');
    expect(code(() => encodeBindingUserData({ ...binding, suite: 'X448' as never }))).toBe('STEVE_BAD_ARGUMENT');
  });
});

describe('checkBindingUserData (§5 step 3)', () => {
  const good = text(encodeBindingUserData(binding));

  it('accepts the session\'s own user_data, for both suites', () => {
    expect(code(() => checkBindingUserData(utf8(good), binding))).toBeUndefined();
    const xwing = { ...binding, suite: 'XWING-DRAFT10' as const };
    expect(code(() => checkBindingUserData(encodeBindingUserData(xwing), xwing))).toBeUndefined();
  });

  it('refuses every field that differs', () => {
    const flip = (bytes: Uint8Array, at: number): Uint8Array => {
      const copy = bytes.slice();
      copy[at]! ^= 1;
      return copy;
    };
    for (const other of [
      { ...binding, suite: 'XWING-DRAFT10' as const },
      { ...binding, sessionId: flip(binding.sessionId, 15) },
      { ...binding, transcriptHash: flip(binding.transcriptHash, 0) },
      { ...binding, binder: flip(binding.binder, 31) },
    ]) {
      expect(code(() => checkBindingUserData(encodeBindingUserData(other), binding))).toBe('STEVE_BINDING');
      expect(code(() => checkBindingUserData(utf8(good), other))).toBe('STEVE_BINDING');
    }
    expect(code(() => checkBindingUserData(utf8(good.replace('STEVE-E2P-V2', 'STEVE-E2P-V1')), binding))).toBe('STEVE_BINDING');
  });

  it('refuses a NUL-spliced protocol field that would collide under naive concatenation', () => {
    const spliced = good.replace('"STEVE-E2P-V2","key_exchange":"X25519"', '"STEVE-E2P-V2\\u0000X25519","key_exchange":""');
    expect(code(() => checkBindingUserData(utf8(spliced), binding))).toBe('STEVE_BINDING');
  });

  const session = b64u(binding.sessionId);
  const variants: Array<[string, string]> = [
    ['whitespace after a colon', good.replace('"protocol":', '"protocol": ')],
    ['a trailing newline', `${good}\n`],
    ['leading whitespace', ` ${good}`],
    ['a BOM', `\ufeff${good}`],
    ['reordered keys', good.replace(/^\{("protocol":"[^"]*"),("key_exchange":"[^"]*"),/, '{$2,$1,')],
    ['a duplicate key (JSON.parse keeps the last)', good.replace('{', `{"session_id":"${b64u(seq(16, 9))}",`)],
    ['an escaped character', good.replace('"protocol"', '"\\u0070rotocol"')],
    ['an escaped solidus in a value', good.replace('STEVE-E2P-V2', 'STEVE-E2P-V2\\/')],
    ['an extra key', good.replace('}', ',"extra":1}')],
    ['a missing key', good.replace(/,"binder":"[^"]*"/, '')],
    ['a padded value', good.replace(`"${session}"`, `"${session}=="`)],
    ['the standard alphabet', text(encodeBindingUserData({ ...binding, binder: new Uint8Array(32).fill(0xfb) })).replace(/-/g, '+').replace(/_/g, '/')],
    ['non-zero trailing bits', good.replace(`"${session}"`, `"${session.slice(0, -1)}x"`)],
    ['a short session id', good.replace(`"${session}"`, `"${session.slice(0, -3)}"`)],
    ['a number value', good.replace('"STEVE-E2P-V2"', '2')],
    ['an array', `[${good}]`],
    ['null', 'null'],
    ['empty', ''],
    ['the legacy v1 user_data', '{"verifying_key":[1,2,3]}'],
  ];

  it.each(variants)('refuses %s', (_name, userData) => {
    // The standard-alphabet case is built from a binder of 0xfb bytes (base64 "+/v7", base64url "-_v7").
    const against = _name === 'the standard alphabet' ? { ...binding, binder: new Uint8Array(32).fill(0xfb) } : binding;
    expect(code(() => checkBindingUserData(utf8(userData), against))).toBe('STEVE_BINDING');
  });

  it('refuses invalid UTF-8 and oversized input', () => {
    expect(code(() => checkBindingUserData(Uint8Array.from([...utf8(good).subarray(0, 10), 0xc3, 0x28, ...utf8(good).subarray(10)]), binding))).toBe('STEVE_BINDING');
    expect(code(() => checkBindingUserData(new Uint8Array(1024).fill(0x20), binding))).toBe('STEVE_BINDING');
    expect(code(() => checkBindingUserData('{}' as never, binding))).toBe('STEVE_BINDING');
  });

  it('random binding fields round trip; any single flipped bit of the user_data is refused', () => {
    fc.assert(
      fc.property(
        fc.record({
          suite: fc.constantFrom('X25519' as const, 'XWING-DRAFT10' as const),
          sessionId: fc.uint8Array({ minLength: 16, maxLength: 16 }),
          transcriptHash: fc.uint8Array({ minLength: 32, maxLength: 32 }),
          binder: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        }),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        (b: Binding, at, bit) => {
          const bytes = encodeBindingUserData(b);
          expect(code(() => checkBindingUserData(bytes, b))).toBeUndefined();
          const changed = bytes.slice();
          changed[at % changed.length]! ^= 1 << bit;
          expect(code(() => checkBindingUserData(changed, b))).toBe('STEVE_BINDING');
        },
      ),
      { seed: 5, numRuns: 500 },
    );
  });
});

describe('the sixth field "extensions" (ours, stream.md §1)', () => {
  const extended: Binding = { ...binding, extensions: ['stream-1'] };
  const good = text(encodeBindingUserData(extended));

  it('is appended after binder in the same compact form, and returned by the check', () => {
    expect(good).toBe(`${text(encodeBindingUserData(binding)).slice(0, -1)},"extensions":["stream-1"]}`);
    expect(checkBindingUserData(utf8(good), binding)).toEqual(['stream-1']);
    expect(checkBindingUserData(encodeBindingUserData(binding), binding)).toEqual([]);
  });

  it('the longest form (X-Wing, 8 names of 32 characters) fits the NSM\'s 512 bytes and is accepted', () => {
    const names = Array.from({ length: 8 }, (_, i) => `${String(i)}${'x'.repeat(31)}`);
    const longest = encodeBindingUserData({ ...binding, suite: 'XWING-DRAFT10', extensions: names });
    expect(longest.length).toBeLessThanOrEqual(512);
    expect(checkBindingUserData(longest, { ...binding, suite: 'XWING-DRAFT10' })).toEqual(names);
  });

  it('refuses every other spelling or shape of the field', () => {
    const bad = [
      good.replace('"extensions":["stream-1"]', '"extensions": ["stream-1"]'),
      good.replace('"extensions":["stream-1"]', '"extensions":["stream-1","stream-1"]'),
      good.replace('"extensions":["stream-1"]', '"extensions":[]'),
      good.replace('"extensions":["stream-1"]', '"extensions":"stream-1"'),
      good.replace('"extensions":["stream-1"]', '"extensions":["Stream-1"]'),
      good.replace('"extensions":["stream-1"]', '"extensions":["stream\\u002d1"]'),
      good.replace('"extensions":["stream-1"]', '"extensions":[1]'),
      good.replace('"extensions":["stream-1"]', `"extensions":[${Array.from({ length: 9 }, (_, i) => `"e${i}"`).join(',')}]`),
      good.replace('"extensions":["stream-1"]', '"extension":["stream-1"]'),
      good.replace(',"extensions":["stream-1"]', '').replace('{"protocol"', '{"extensions":["stream-1"],"protocol"'),
      good.replace('}', ',"other":1}'),
    ];
    for (const input of bad) expect(code(() => checkBindingUserData(utf8(input), binding)), input).toBe('STEVE_BINDING');
  });

  it('does not change what the five fields must be', () => {
    const other = { ...binding, binder: seq(32, 0xf1) };
    expect(code(() => checkBindingUserData(utf8(good), other))).toBe('STEVE_BINDING');
  });

  it('the encoder refuses names outside [a-z0-9-]{1,32}, duplicates and more than 8', () => {
    for (const extensions of [['Stream'], ['a', 'a'], [''], ['x'.repeat(33)], Array.from({ length: 9 }, (_, i) => `e${i}`)]) {
      expect(code(() => encodeBindingUserData({ ...binding, extensions }))).toBe('STEVE_BAD_ARGUMENT');
    }
  });
});
