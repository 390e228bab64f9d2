/**
 * `user_data` (agent/user-data.ts, specs/agent-http.md §2): the exact bytes `encodeUserData` produces
 * for a fixed vector (written out by hand, not by JSON.stringify), the NSM's 1024-byte limit counted in
 * UTF-8 bytes and checked at its exact boundary, the reserved keys, and the metadata file source: read
 * at start (errors are fatal), re-read when it changes at most once a second (the clock is injected),
 * a bad change reported and the last good metadata kept.
 */

import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NSM_FIELD_MAX_BYTES } from '../nsm/index.js';
import { AgentError } from './errors.js';
import { createUserDataSource, encodeUserData } from './user-data.js';

/** SHA-256 of the empty string (FIPS 180-4 test vector). */
const SHA256_EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** Bytes 0..31: an obviously synthetic Ed25519 public key. */
const KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const TLS = { mode: 'tls', domain: 'app.example', certfp: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff' };

const text = (bytes: Uint8Array) => new TextDecoder('utf-8', { fatal: true }).decode(bytes);

function agentError(fn: () => unknown): AgentError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return err as AgentError;
  }
  throw new Error('expected an AgentError');
}

async function rejection(promise: Promise<unknown>): Promise<AgentError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentError);
  return err as AgentError;
}

describe('encodeUserData', () => {
  it('produces these exact bytes for the vector', () => {
    const expected =
      '{"manifest_sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",' +
      '"verifying_key":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31],' +
      '"tls":{"mode":"tls","domain":"app.example","certfp":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}}';
    const bytes = encodeUserData(SHA256_EMPTY, KEY, { tls: TLS });
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(text(bytes)).toBe(expected);
    expect(bytes).toEqual(new TextEncoder().encode(expected));
    expect(bytes.length).toBe(expected.length);
  });

  it('without metadata: exactly the two agent keys, in that order', () => {
    const bytes = encodeUserData(SHA256_EMPTY, new Uint8Array(32).fill(255), {});
    expect(text(bytes)).toBe(`{"manifest_sha256":"${SHA256_EMPTY}","verifying_key":[${Array(32).fill(255).join(',')}]}`);
  });

  it('keeps metadata values verbatim, including non-ASCII text as UTF-8', () => {
    const bytes = encodeUserData(SHA256_EMPTY, KEY, { note: 'caf\u00e9 \u2713', nested: { list: [1, true, null] } });
    expect(text(bytes)).toMatch(/,"note":"café ✓","nested":\{"list":\[1,true,null\]\}\}$/);
  });

  it('accepts exactly 1024 bytes and refuses 1025 (the NSM field limit)', () => {
    expect(NSM_FIELD_MAX_BYTES).toBe(1024);
    const base = encodeUserData(SHA256_EMPTY, KEY, { pad: '' }).length;
    const room = NSM_FIELD_MAX_BYTES - base;
    expect(room).toBeGreaterThan(0);
    expect(encodeUserData(SHA256_EMPTY, KEY, { pad: 'x'.repeat(room) }).length).toBe(1024);
    const over = agentError(() => encodeUserData(SHA256_EMPTY, KEY, { pad: 'x'.repeat(room + 1) }));
    expect(over.code).toBe('AGENT_METADATA');
    expect(over.message).toBe('user_data would be 1025 bytes; the NSM takes at most 1024');
  });

  it('counts UTF-8 bytes, not characters', () => {
    const base = encodeUserData(SHA256_EMPTY, KEY, { pad: '' }).length;
    const room = NSM_FIELD_MAX_BYTES - base;
    // "é" is two bytes: fill with as many as fit, then one more.
    const fitting = '\u00e9'.repeat(Math.floor(room / 2)) + 'x'.repeat(room % 2);
    expect(encodeUserData(SHA256_EMPTY, KEY, { pad: fitting }).length).toBe(1024);
    const tooMany = '\u00e9'.repeat(Math.floor(room / 2) + 1);
    expect(tooMany.length).toBeLessThanOrEqual(room);
    expect(agentError(() => encodeUserData(SHA256_EMPTY, KEY, { pad: tooMany })).code).toBe('AGENT_METADATA');
  });

  it.each(['manifest_sha256', 'verifying_key'])('refuses metadata that sets the reserved key %s', (key) => {
    const err = agentError(() => encodeUserData(SHA256_EMPTY, KEY, { [key]: 'forged' }));
    expect(err.code).toBe('AGENT_METADATA');
    expect(err.message).toBe(`metadata may not set "${key}"`);
  });
});

describe('createUserDataSource', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'enclave-agent-user-data-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A controllable clock. */
  function clock(start = 1_000_000) {
    let now = start;
    return { now: () => now, advance: (ms: number) => (now += ms) };
  }

  it('without a metadata path: the fixed two-key object', async () => {
    const source = await createUserDataSource({ manifestSha256: SHA256_EMPTY, verifyingKey: KEY, metadataPath: null });
    expect(await source.current()).toEqual(encodeUserData(SHA256_EMPTY, KEY, {}));
  });

  it('re-reads a changed file only after the 1 s interval; a bad change is reported and the last good metadata kept', async () => {
    const path = join(dir, 'live.json');
    await writeFile(path, JSON.stringify({ tls: TLS }));
    const time = clock();
    const errors: AgentError[] = [];
    const source = await createUserDataSource({ manifestSha256: SHA256_EMPTY, verifyingKey: KEY, metadataPath: path, now: time.now, onMetadataError: (err) => errors.push(err) });
    const first = encodeUserData(SHA256_EMPTY, KEY, { tls: TLS });
    expect(await source.current()).toEqual(first);

    await writeFile(path, JSON.stringify({ tls: TLS, region: 'eu-west-1' }));
    time.advance(999);
    expect(await source.current()).toEqual(first);
    time.advance(1);
    const second = encodeUserData(SHA256_EMPTY, KEY, { tls: TLS, region: 'eu-west-1' });
    expect(await source.current()).toEqual(second);

    for (const [bad, message] of [
      ['{"tls": ', 'not UTF-8 JSON'],
      ['[1,2,3]', 'not a JSON object'],
      ['"text"', 'not a JSON object'],
      [JSON.stringify({ verifying_key: [1, 2, 3] }), 'metadata may not set "verifying_key"'],
      [JSON.stringify({ pad: 'x'.repeat(1000) }), 'the NSM takes at most 1024'],
      [JSON.stringify({ pad: 'x'.repeat(2000) }), 'larger than 1024 bytes'],
    ] as const) {
      errors.length = 0;
      await writeFile(path, bad);
      time.advance(1000);
      expect(await source.current(), bad).toEqual(second);
      expect(errors.map((e) => e.code)).toEqual(['AGENT_METADATA']);
      expect(errors[0]!.message).toContain(message);
    }

    errors.length = 0;
    await writeFile(path, Buffer.from([0x7b, 0xff, 0x7d])); // "{\xff}": not UTF-8
    time.advance(1000);
    expect(await source.current()).toEqual(second);
    expect(errors[0]?.message).toContain('not UTF-8 JSON');

    errors.length = 0;
    await unlink(path);
    time.advance(1000);
    expect(await source.current()).toEqual(second);
    expect(errors.map((e) => e.code)).toEqual(['AGENT_METADATA']);

    errors.length = 0;
    await writeFile(path, JSON.stringify({ fixed: true }));
    time.advance(1000);
    expect(await source.current()).toEqual(encodeUserData(SHA256_EMPTY, KEY, { fixed: true }));
    expect(errors).toEqual([]);
  });

  it('concurrent callers during a re-check share one read and all see the new bytes', async () => {
    const path = join(dir, 'concurrent.json');
    await writeFile(path, JSON.stringify({ v: 1 }));
    const time = clock();
    const source = await createUserDataSource({ manifestSha256: SHA256_EMPTY, verifyingKey: KEY, metadataPath: path, now: time.now });
    await writeFile(path, JSON.stringify({ v: 22 }));
    time.advance(1000);
    const all = await Promise.all(Array.from({ length: 10 }, () => source.current()));
    // The first caller starts the re-check and waits for it; the others within the interval get the bytes
    // as they are at that moment. Every caller after the re-check sees the new metadata.
    expect(all[0]).toEqual(encodeUserData(SHA256_EMPTY, KEY, { v: 22 }));
    expect(await source.current()).toEqual(encodeUserData(SHA256_EMPTY, KEY, { v: 22 }));
  });

  it.each([
    ['a missing file', null, 'cannot read metadata'],
    ['invalid JSON', '{', 'not UTF-8 JSON'],
    ['a JSON array', '[]', 'not a JSON object'],
    ['JSON null', 'null', 'not a JSON object'],
    ['a reserved key', JSON.stringify({ manifest_sha256: 'ab' }), 'metadata may not set "manifest_sha256"'],
    ['too much for user_data', JSON.stringify({ pad: 'x'.repeat(900) }), 'the NSM takes at most 1024'],
  ])('at start, %s is AGENT_METADATA', async (name, content, message) => {
    const path = join(dir, `start-${name.replace(/\W+/g, '-')}.json`);
    if (content !== null) await writeFile(path, content);
    const err = await rejection(createUserDataSource({ manifestSha256: SHA256_EMPTY, verifyingKey: KEY, metadataPath: path }));
    expect(err.code).toBe('AGENT_METADATA');
    expect(err.message).toContain(message);
  });
});
