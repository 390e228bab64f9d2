/**
 * Trusted-state files: the parser's vectors (the format existing verifiers write, extra PCRs, every way a
 * file can be wrong), the exact bytes recorded on first use, a round trip, hostile bytes (fast-check), and
 * the atomic writer on a real temporary directory (mode 0600, no temp file left, never replacing a file).
 */

import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mutate, mutationArbitrary } from '../test/mutations.js';
import { AgentError } from './errors.js';
import {
  encodeTrustedState,
  formatRfc3339,
  loadPcrPolicyFiles,
  loadTrustedStateFile,
  parsePcrPolicy,
  parseTrustedState,
  PCR_POLICY_MAX_BYTES,
  TRUSTED_STATE_MAX_BYTES,
  writeTrustedStateFile,
} from './trusted-state.js';

const utf8 = (text: string) => new TextEncoder().encode(text);
const hexOf = (byte: number) => byte.toString(16).padStart(2, '0').repeat(48);
const PCR0 = hexOf(0xa0);
const PCR1 = hexOf(0xb1);
const PCR2 = hexOf(0xc2);
/** As existing verifiers write it (specs/agent-http.md §3). */
const EXISTING = `{"pcr0":"${PCR0}","pcr1":"${PCR1}","pcr2":"${PCR2}","verified_at":"2025-01-02T03:04:05Z"}`;

function parse(text: string): Map<number, Uint8Array> {
  return parseTrustedState(utf8(text), 'state.json');
}

function expectUsage(text: string | Uint8Array, message: RegExp): void {
  let thrown: unknown;
  try {
    parseTrustedState(typeof text === 'string' ? utf8(text) : text, 'state.json');
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(AgentError);
  expect((thrown as AgentError).code).toBe('AGENT_USAGE');
  expect((thrown as AgentError).message).toMatch(/^state\.json: /);
  expect((thrown as AgentError).message).toMatch(message);
}

const pcrMap = (entries: [number, string][]) => new Map(entries.map(([i, h]) => [i, Uint8Array.from(Buffer.from(h, 'hex'))]));

describe('parseTrustedState', () => {
  it('reads the existing format: PCR0-2, verified_at ignored', () => {
    const pcrs = parse(EXISTING);
    expect([...pcrs.keys()]).toEqual([0, 1, 2]);
    expect(Buffer.from(pcrs.get(0)!).toString('hex')).toBe(PCR0);
    expect(Buffer.from(pcrs.get(2)!).toString('hex')).toBe(PCR2);
  });

  it('accepts upper-case hex, no verified_at, any verified_at, and extra pcrN keys up to pcr31', () => {
    expect(Buffer.from(parse(`{"pcr0":"${PCR0.toUpperCase()}","pcr1":"${PCR1}","pcr2":"${PCR2}"}`).get(0)!).toString('hex')).toBe(PCR0);
    expect(parse(`{"pcr0":"${PCR0}","pcr1":"${PCR1}","pcr2":"${PCR2}","verified_at":"not a date"}`).size).toBe(3);
    const extra = parse(`{"pcr2":"${PCR2}","pcr8":"${hexOf(8)}","pcr0":"${PCR0}","pcr1":"${PCR1}","pcr31":"${hexOf(31)}"}`);
    expect([...extra.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 8, 31]);
    expect(extra.get(31)).toEqual(new Uint8Array(48).fill(31));
  });

  it('accepts pretty-printed files with a trailing newline (what encodeTrustedState writes)', () => {
    expect(parse(`{\n  "pcr0": "${PCR0}",\n  "pcr1": "${PCR1}",\n  "pcr2": "${PCR2}"\n}\n`).size).toBe(3);
  });

  const base = { pcr0: PCR0, pcr1: PCR1, pcr2: PCR2 };
  const cases: [string, string | Uint8Array, RegExp][] = [
    ['missing pcr0', JSON.stringify({ pcr1: PCR1, pcr2: PCR2 }), /"pcr0" is missing/],
    ['missing pcr1', JSON.stringify({ pcr0: PCR0, pcr2: PCR2 }), /"pcr1" is missing/],
    ['missing pcr2', JSON.stringify({ pcr0: PCR0, pcr1: PCR1, pcr3: PCR2 }), /"pcr2" is missing/],
    ['bad hex', JSON.stringify({ ...base, pcr1: 'zz'.repeat(48) }), /"pcr1" expected 96 hex digits/],
    ['a 0x prefix', JSON.stringify({ ...base, pcr0: `0x${PCR0.slice(2)}` }), /"pcr0" expected 96 hex digits/],
    ['47 bytes', JSON.stringify({ ...base, pcr0: PCR0.slice(2) }), /"pcr0" expected 96 hex digits/],
    ['49 bytes', JSON.stringify({ ...base, pcr2: `${PCR2}00` }), /"pcr2" expected 96 hex digits/],
    ['SHA-256 sized (32 bytes)', JSON.stringify({ ...base, pcr0: 'ab'.repeat(32) }), /"pcr0" expected 96 hex digits/],
    ['an odd number of hex digits', JSON.stringify({ ...base, pcr0: `${PCR0}0` }), /"pcr0" expected 96 hex digits/],
    ['whitespace in the hex', JSON.stringify({ ...base, pcr0: ` ${PCR0.slice(1)}` }), /"pcr0"/],
    ['a number', `{"pcr0":1,"pcr1":"${PCR1}","pcr2":"${PCR2}"}`, /"pcr0" expected 96 hex digits/],
    ['null', `{"pcr0":null,"pcr1":"${PCR1}","pcr2":"${PCR2}"}`, /"pcr0" expected/],
    ['an array of bytes', JSON.stringify({ ...base, pcr0: [...new Uint8Array(48)] }), /"pcr0" expected/],
    ['pcr32', JSON.stringify({ ...base, pcr32: PCR0 }), /unexpected key "pcr32"/],
    ['pcr01 (leading zero)', JSON.stringify({ ...base, pcr01: PCR0 }), /unexpected key "pcr01"/],
    ['PCR0 (upper-case key)', JSON.stringify({ ...base, PCR3: PCR0 }), /unexpected key "PCR3"/],
    ['a misspelt key', JSON.stringify({ ...base, pcr_3: PCR0 }), /unexpected key "pcr_3"/],
    ['an unknown key', JSON.stringify({ ...base, note: 'x' }), /unexpected key "note"/],
    ['a JSON array', `["${PCR0}"]`, /expected a JSON object/],
    ['JSON null', 'null', /expected a JSON object/],
    ['a JSON string', `"${PCR0}"`, /expected a JSON object/],
    ['not JSON', 'pcr0=abc', /not UTF-8 JSON/],
    ['empty', '', /not UTF-8 JSON/],
    ['trailing garbage', `${EXISTING}x`, /not UTF-8 JSON/],
    ['invalid UTF-8', Uint8Array.from([0x7b, 0xff, 0x7d]), /not UTF-8 JSON/],
    ['too large', utf8(`${EXISTING}${' '.repeat(TRUSTED_STATE_MAX_BYTES)}`), /larger than 16384 bytes/],
  ];
  it.each(cases)('refuses %s', (_, text, message) => expectUsage(text, message));

  it('hostile bytes (random and mutated files) give only AGENT_USAGE or a valid state', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 400 }), fc.array(mutationArbitrary, { minLength: 1, maxLength: 4 }).map((ms) => ms.reduce(mutate, utf8(EXISTING)))), (bytes) => {
        try {
          const pcrs = parseTrustedState(bytes, 'fuzz');
          for (const index of [0, 1, 2]) expect(pcrs.get(index)).toHaveLength(48);
        } catch (err) {
          expect(err).toBeInstanceOf(AgentError);
          expect((err as AgentError).code).toBe('AGENT_USAGE');
        }
      }),
      { seed: 42, numRuns: 2000 },
    );
  });
});

describe('parsePcrPolicy: the shapes --pcrs reads', () => {
  const NOW_S = 1_750_000_000;
  const NOW = NOW_S * 1000;
  const policy = (value: unknown) => parsePcrPolicy(utf8(typeof value === 'string' ? value : JSON.stringify(value)), 'policy.json', 'policy.json', NOW);
  const set = (pcrs: Record<string, string>, expires?: number | null) => ({ pcrs, ...(expires !== undefined ? { expires_at_unix_seconds: expires } : {}) });
  const identity = { '0': PCR0, '1': PCR1, '2': PCR2 };
  const hexes = (profile: { pcrs: ReadonlyMap<number, Uint8Array> }) => Object.fromEntries([...profile.pcrs].map(([i, v]) => [i, Buffer.from(v).toString('hex')]));

  function expectPolicyUsage(value: unknown, message: RegExp): void {
    let thrown: unknown;
    try {
      policy(value);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(AgentError);
    expect((thrown as AgentError).code).toBe('AGENT_USAGE');
    expect((thrown as AgentError).message).toMatch(/^policy\.json: /);
    expect((thrown as AgentError).message).toMatch(message);
  }

  it('a trusted-state file is one profile named after the file', () => {
    const profiles = policy(EXISTING);
    expect(profiles).toHaveLength(1);
    expect(profiles[0]!.name).toBe('policy.json');
    expect(hexes(profiles[0]!)).toEqual({ 0: PCR0, 1: PCR1, 2: PCR2 });
  });

  it("Caution's trusted_hashes.json: the tls pin is accepted (and not checked)", () => {
    const profiles = policy({ pcr0: PCR0, pcr1: PCR1, pcr2: PCR2, verified_at: '2025-01-02T03:04:05Z', tls: { domain: 'app.example', certfp: 'ab'.repeat(32) } });
    expect(hexes(profiles[0]!)).toEqual({ 0: PCR0, 1: PCR1, 2: PCR2 });
    expect(parseTrustedState(utf8(JSON.stringify({ pcr0: PCR0, pcr1: PCR1, pcr2: PCR2, tls: { domain: 'd', certfp: 'f' } })), 'tofu').size).toBe(3);
    expectPolicyUsage({ pcr0: PCR0, pcr1: PCR1, pcr2: PCR2, tls: 'app.example' }, /"tls" expected an object of strings/);
    expectPolicyUsage({ pcr0: PCR0, pcr1: PCR1, pcr2: PCR2, tls: { domain: 1 } }, /"tls" expected an object of strings/);
  });

  it('PCR sets: one profile per set in force, expired ones left out, extra PCRs pinned too', () => {
    const profiles = policy({
      sets: [
        set({ ...identity, '0': hexOf(0x10) }, NOW_S - 1),
        set({ ...identity, '3': hexOf(3), '4': hexOf(4), '8': hexOf(8) }, NOW_S + 3600),
        set(identity, null),
        set({ ...identity, '2': hexOf(0x22) }),
      ],
    });
    expect(profiles.map((p) => p.name)).toEqual(['policy.json set 2', 'policy.json set 3', 'policy.json set 4']);
    expect(hexes(profiles[0]!)).toEqual({ 0: PCR0, 1: PCR1, 2: PCR2, 3: hexOf(3), 4: hexOf(4), 8: hexOf(8) });
    expect(hexes(profiles[2]!)[2]).toBe(hexOf(0x22));
  });

  it('a set expires at its cutoff: expires_at_unix_seconds equal to now is expired', () => {
    expect(policy({ sets: [set(identity, NOW_S), set({ ...identity, '1': hexOf(0x11) }, NOW_S + 1)] }).map((p) => p.name)).toEqual(['policy.json set 2']);
  });

  const cases: [string, unknown, RegExp][] = [
    ['every set expired', { sets: [set(identity, NOW_S - 10), set(identity, NOW_S - 5)] }, /every PCR set has expired \(the last at 2025-06-15T15:06:35Z\)/],
    ['an empty list', { sets: [] }, /"sets" expected a non-empty array/],
    ['sets not a list', { sets: { 0: set(identity) } }, /"sets" expected a non-empty array/],
    ['a key beside sets', { sets: [set(identity)], version: 1 }, /unexpected key "version" beside "sets"/],
    ['a set that is a list', { sets: [[PCR0]] }, /sets\[0\] expected an object/],
    ['an unknown key in a set', { sets: [{ ...set(identity), note: 'x' }] }, /sets\[0\]: unexpected key "note"/],
    ['a set without pcrs', { sets: [{ expires_at_unix_seconds: NOW_S + 1 }] }, /sets\[0\]\.pcrs expected an object/],
    ['PCR2 missing', { sets: [set({ '0': PCR0, '1': PCR1 })] }, /sets\[0\]\.pcrs\["2"\] is missing/],
    ['an all-zero (debug) PCR0', { sets: [set({ ...identity, '0': hexOf(0) })] }, /sets\[0\]\.pcrs\["0"\] is all zero/],
    ['a key with a leading zero', { sets: [set({ ...identity, '08': hexOf(8) })] }, /unexpected key "08"/],
    ['PCR 32', { sets: [set({ ...identity, '32': hexOf(8) })] }, /unexpected key "32"/],
    ['a pcrN key inside a set', { sets: [set({ ...identity, pcr3: hexOf(3) })] }, /unexpected key "pcr3"/],
    ['a short value', { sets: [set({ ...identity, '1': PCR1.slice(2) })] }, /sets\[0\]\.pcrs\["1"\] expected 96 hex digits/],
    ['a fractional cutoff', { sets: [set(identity, NOW_S + 0.5)] }, /expires_at_unix_seconds expected whole seconds/],
    ['a negative cutoff', { sets: [set(identity, -1)] }, /expires_at_unix_seconds expected whole seconds/],
    ['a cutoff as a string', { sets: [{ pcrs: identity, expires_at_unix_seconds: String(NOW_S + 9) }] }, /expires_at_unix_seconds expected whole seconds/],
  ];
  it.each(cases)('refuses %s', (_, value, message) => expectPolicyUsage(value, message));

  it('reads sets files up to 256 KiB, trusted-state files only up to 16 KiB', () => {
    const many = { sets: Array.from({ length: 200 }, (_, i) => set(identity, NOW_S + i + 1)) };
    expect(JSON.stringify(many).length).toBeGreaterThan(TRUSTED_STATE_MAX_BYTES);
    expect(policy(many)).toHaveLength(200);
    expectPolicyUsage(`${EXISTING}${' '.repeat(TRUSTED_STATE_MAX_BYTES)}`, /larger than 16384 bytes/);
    expectPolicyUsage(`{"sets":[${JSON.stringify(set(identity))}]}${' '.repeat(PCR_POLICY_MAX_BYTES)}`, /larger than 262144 bytes/);
  });

  it('hostile bytes (mutated sets files) give only AGENT_USAGE or profiles of 48-byte PCRs with PCR0-2', () => {
    const valid = utf8(JSON.stringify({ sets: [set(identity, NOW_S + 60), set({ ...identity, '8': hexOf(8) })] }));
    fc.assert(
      fc.property(fc.array(mutationArbitrary, { minLength: 1, maxLength: 4 }), (mutations) => {
        try {
          for (const profile of parsePcrPolicy(mutations.reduce(mutate, valid), 'fuzz', 'fuzz', NOW)) {
            for (const index of [0, 1, 2]) expect(profile.pcrs.get(index)).toHaveLength(48);
            for (const value of profile.pcrs.values()) expect(value).toHaveLength(48);
          }
        } catch (err) {
          expect(err).toBeInstanceOf(AgentError);
          expect((err as AgentError).code).toBe('AGENT_USAGE');
        }
      }),
      { seed: 1405, numRuns: 2000 },
    );
  });
});

describe('encodeTrustedState', () => {
  const pcrs = pcrMap([
    [0, PCR0.toUpperCase()],
    [1, PCR1],
    [2, PCR2],
    [3, hexOf(3)],
  ]);
  const at = Date.UTC(2025, 0, 2, 3, 4, 5, 678);

  it('writes exactly {"pcr0","pcr1","pcr2","verified_at"}, lower-case hex, RFC 3339 UTC', () => {
    const text = new TextDecoder().decode(encodeTrustedState(pcrs, at));
    expect(text).toBe(`{\n  "pcr0": "${PCR0}",\n  "pcr1": "${PCR1}",\n  "pcr2": "${PCR2}",\n  "verified_at": "2025-01-02T03:04:05Z"\n}\n`);
    expect(Object.keys(JSON.parse(text))).toEqual(['pcr0', 'pcr1', 'pcr2', 'verified_at']);
  });

  it('round-trips through parseTrustedState (PCR0-2 only)', () => {
    const back = parseTrustedState(encodeTrustedState(pcrs, at), 'round trip');
    expect([...back.keys()]).toEqual([0, 1, 2]);
    for (const index of [0, 1, 2]) expect(back.get(index)).toEqual(pcrs.get(index));
  });

  it('formats RFC 3339 in UTC without fractions', () => {
    expect(formatRfc3339(0)).toBe('1970-01-01T00:00:00Z');
    expect(formatRfc3339(at)).toBe('2025-01-02T03:04:05Z');
  });

  it('refuses PCR0-2 missing or not 48 bytes, and a non-finite time (AGENT_VERIFY_TOFU)', () => {
    const cases: [ReadonlyMap<number, Uint8Array>, number][] = [
      [pcrMap([[1, PCR1], [2, PCR2]]), at],
      [new Map([...pcrs, [1, new Uint8Array(32)]]), at],
      [new Map([...pcrs, [2, new Uint8Array(64)]]), at],
      [pcrs, Number.NaN],
    ];
    for (const [input, time] of cases) {
      expect(() => encodeTrustedState(input, time)).toThrow(expect.objectContaining({ code: 'AGENT_VERIFY_TOFU' }));
    }
  });
});

describe('trusted-state files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'enclave-agent-trusted-state-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loadTrustedStateFile: null for a missing file, bytes for a file, usage errors otherwise', async () => {
    expect(await loadTrustedStateFile(join(dir, 'missing.json'), 'missing')).toBeNull();
    await writeFile(join(dir, 'state.json'), EXISTING);
    expect(new TextDecoder().decode((await loadTrustedStateFile(join(dir, 'state.json'), 'state'))!)).toBe(EXISTING);
    await expect(loadTrustedStateFile(dir, 'a directory')).rejects.toMatchObject({ code: 'AGENT_USAGE', message: 'a directory: not a regular file' });
    await writeFile(join(dir, 'big.json'), new Uint8Array(TRUSTED_STATE_MAX_BYTES + 1));
    await expect(loadTrustedStateFile(join(dir, 'big.json'), 'big')).rejects.toMatchObject({ code: 'AGENT_USAGE' });
  });

  it('loadPcrPolicyFiles reads both shapes in order, and refuses a missing file', async () => {
    await writeFile(join(dir, 'pin.json'), EXISTING);
    await writeFile(join(dir, 'sets.json'), JSON.stringify({ sets: [{ pcrs: { 0: PCR0, 1: PCR1, 2: hexOf(0x99) } }] }));
    const profiles = await loadPcrPolicyFiles([join(dir, 'pin.json'), join(dir, 'sets.json')], Date.now());
    expect(profiles.map((p) => p.name)).toEqual([join(dir, 'pin.json'), `${join(dir, 'sets.json')} set 1`]);
    await expect(loadPcrPolicyFiles([join(dir, 'none.json')], Date.now())).rejects.toMatchObject({ code: 'AGENT_USAGE', message: `--pcrs ${join(dir, 'none.json')}: no such file` });
  });

  it('writeTrustedStateFile writes mode 0600 and leaves no temp file', async () => {
    const path = join(dir, 'tofu.json');
    const bytes = utf8('{"x":1}\n');
    await writeTrustedStateFile(path, bytes);
    expect(await readFile(path)).toEqual(Buffer.from(bytes));
    expect(((await stat(path)).mode & 0o777).toString(8)).toBe('600');
    expect((await readdir(dir)).filter((name) => name.includes('.tmp'))).toEqual([]);
  });

  it('writeTrustedStateFile never replaces an existing file, and cleans up', async () => {
    const path = join(dir, 'taken.json');
    await writeFile(path, EXISTING);
    await expect(writeTrustedStateFile(path, utf8('{}'))).rejects.toMatchObject({ code: 'AGENT_VERIFY_TOFU' });
    expect(await readFile(path, 'utf8')).toBe(EXISTING);
    expect((await readdir(dir)).filter((name) => name.includes('.tmp'))).toEqual([]);
  });

  it('writeTrustedStateFile into a missing directory is AGENT_VERIFY_TOFU', async () => {
    await expect(writeTrustedStateFile(join(dir, 'no', 'such', 'dir.json'), utf8('{}'))).rejects.toMatchObject({
      code: 'AGENT_VERIFY_TOFU',
      message: expect.stringContaining('ENOENT'),
    });
  });
});
