/**
 * The config handshake (config.ts): what a page may pass, the JSON text the configure command carries and
 * the worker stores, the config's id, and that the worker refuses whatever text it cannot use (from a
 * message or from storage), with STEVE_BROWSER_CONFIG at stage `config` and nothing else.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SUITES } from '../protocol/index.js';
import { BROWSER_SUITES, encodeWorkerConfig, normaliseConfig, parseWorkerConfig, profilesForClient, workerConfigId, type EnclaveConfig } from './config.js';
import { bytesToBase64 } from './encoding.js';
import { SteveBrowserError } from './errors.js';

const PCR = (byte: number) => 'ab'.repeat(47) + byte.toString(16).padStart(2, '0');
/** A tiny DER SEQUENCE standing in for a root certificate (config.ts checks shape, the verifier the rest). */
const ROOT_DER = new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]);
const ROOT_PEM = `-----BEGIN CERTIFICATE-----\n${bytesToBase64(ROOT_DER)}\n-----END CERTIFICATE-----\n`;

const base: EnclaveConfig = {
  origin: 'https://enclave.example:8443/',
  keyExchange: 'X25519',
  pcrPolicy: { kind: 'pinned', profiles: [{ name: 'prod', pcrs: { 0: PCR(0), 1: PCR(1), 2: new Uint8Array(48).fill(7) } }] },
  root: ROOT_PEM,
};

function configError(run: () => unknown): SteveBrowserError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(SteveBrowserError);
    expect((error as SteveBrowserError).code).toBe('STEVE_BROWSER_CONFIG');
    expect((error as SteveBrowserError).stage).toBe('config');
    return error as SteveBrowserError;
  }
  throw new Error('expected a config error');
}

describe('enclave worker config', () => {
  it('lists the same suites as the protocol core', () => {
    expect([...BROWSER_SUITES]).toEqual([...SUITES]);
  });

  it('normalises a page config and carries it through the configure text unchanged', async () => {
    const config = normaliseConfig(base);
    expect(config).toEqual({
      version: 1,
      origin: 'https://enclave.example:8443',
      keyExchange: 'X25519',
      pcrPolicy: { kind: 'pinned', profiles: [{ name: 'prod', pcrs: { 0: PCR(0), 1: PCR(1), 2: '07'.repeat(48) } }] },
      root: bytesToBase64(ROOT_DER),
      allowDebug: false,
      requestTimeoutMs: null,
    });
    const text = encodeWorkerConfig(config);
    expect(JSON.parse(text)).toEqual(config);
    expect(parseWorkerConfig(text)).toEqual(config);
    // The worker's re-encoding is canonical: key order and spacing of the page's text do not matter.
    const shuffled = JSON.stringify(Object.fromEntries(Object.entries(config).reverse()), null, 2);
    expect(encodeWorkerConfig(parseWorkerConfig(shuffled))).toBe(text);
    // The id: hex SHA-256 of the canonical text, equal for equal configs, different for any change.
    const id = await workerConfigId(config);
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(await workerConfigId(parseWorkerConfig(shuffled))).toBe(id);
    expect(await workerConfigId({ ...config, allowDebug: true })).not.toBe(id);
    const [profile] = profilesForClient(config.pcrPolicy as Extract<typeof config.pcrPolicy, { kind: 'pinned' }>);
    expect(profile!.name).toBe('prod');
    expect([...profile!.pcrs.keys()]).toEqual([0, 1, 2]);
    expect(profile!.pcrs.get(2)).toEqual(new Uint8Array(48).fill(7));
  });

  it('takes TOFU, a DER root, a Map of PCRs and options', () => {
    const tofu = normaliseConfig({ origin: 'http://127.0.0.1:8080', keyExchange: 'XWING-DRAFT10', pcrPolicy: { kind: 'tofu' }, root: ROOT_DER, allowDebug: true, requestTimeoutMs: 500 });
    expect(tofu).toMatchObject({ pcrPolicy: { kind: 'tofu' }, root: bytesToBase64(ROOT_DER), allowDebug: true, requestTimeoutMs: 500, keyExchange: 'XWING-DRAFT10' });
    expect(parseWorkerConfig(encodeWorkerConfig(tofu))).toEqual(tofu);
    const mapped = normaliseConfig({ ...base, pcrPolicy: { kind: 'pinned', profiles: [{ name: 'm', pcrs: new Map([[4, PCR(4)]]) }] } });
    expect(mapped.pcrPolicy).toEqual({ kind: 'pinned', profiles: [{ name: 'm', pcrs: { 4: PCR(4) } }] });
    expect(normaliseConfig({ ...base, root: undefined }).root).toBeNull();
  });

  it('refuses what it cannot use, naming the field', () => {
    const cases: Array<[Partial<EnclaveConfig> | Record<string, unknown>, RegExp]> = [
      [{ origin: 'ftp://enclave.example' }, /"origin"/],
      [{ origin: 'https://enclave.example/path' }, /"origin"/],
      [{ origin: 'https://user:pw@enclave.example' }, /"origin"/],
      [{ origin: 'not a url' }, /"origin"/],
      [{ keyExchange: 'P256' }, /"keyExchange"/],
      [{ pcrPolicy: { kind: 'pinned', profiles: [] } }, /profiles/],
      [{ pcrPolicy: { kind: 'both' } }, /kind/],
      [{ pcrPolicy: { kind: 'pinned', profiles: [{ name: '', pcrs: { 0: PCR(0) } }] } }, /name/],
      [{ pcrPolicy: { kind: 'pinned', profiles: [{ name: 'x', pcrs: {} }] } }, /no PCRs/],
      [{ pcrPolicy: { kind: 'pinned', profiles: [{ name: 'x', pcrs: { 0: 'zz' } }] } }, /hex/],
      [{ pcrPolicy: { kind: 'pinned', profiles: [{ name: 'x', pcrs: { 0: 'abcd' } }] } }, /32, 48 or 64 bytes/],
      [{ pcrPolicy: { kind: 'pinned', profiles: [{ name: 'x', pcrs: { 32: PCR(0) } }] } }, /index/],
      [{ root: 'no pem here' }, /exactly one PEM certificate/],
      [{ root: ROOT_PEM + ROOT_PEM }, /exactly one PEM certificate/],
      [{ root: new Uint8Array([1, 2, 3]) }, /not a DER certificate/],
      [{ requestTimeoutMs: 0 }, /requestTimeoutMs/],
      [{ allowDebug: 'yes' }, /allowDebug/],
    ];
    for (const [override, message] of cases) {
      expect(configError(() => normaliseConfig({ ...base, ...override } as EnclaveConfig)).message, JSON.stringify(override)).toMatch(message);
    }
  });

  it('the worker refuses a text without a usable config', () => {
    const encode = (value: unknown) => JSON.stringify(value);
    expect(configError(() => parseWorkerConfig(undefined)).message).toMatch(/JSON text/);
    expect(configError(() => parseWorkerConfig({ ...normaliseConfig(base) })).message).toMatch(/JSON text/);
    expect(configError(() => parseWorkerConfig('')).message).toMatch(/JSON text/);
    expect(configError(() => parseWorkerConfig('{"version":1,')).message).toMatch(/not JSON/);
    expect(configError(() => parseWorkerConfig(' '.repeat(65_537))).message).toMatch(/longer than 65536/);
    expect(configError(() => parseWorkerConfig('null')).message).toMatch(/version 1/);
    expect(configError(() => parseWorkerConfig(encode({ ...normaliseConfig(base), version: 2 }))).message).toMatch(/version 1/);
    expect(configError(() => parseWorkerConfig(encode({ ...normaliseConfig(base), keyExchange: 'none' }))).message).toMatch(/keyExchange/);
    expect(configError(() => parseWorkerConfig(encode({ ...normaliseConfig(base), root: '***' }))).message).toMatch(/root/);
    expect(configError(() => parseWorkerConfig(encode({ ...normaliseConfig(base), origin: 'https://e.example/path' }))).message).toMatch(/origin/);
  });

  it('parses any text into a valid config or STEVE_BROWSER_CONFIG, nothing else (fast-check, fixed seed)', () => {
    const valid = normaliseConfig(base);
    // Mutations of a valid config (any field replaced by any JSON value), and arbitrary text.
    const mutated = fc
      .record({ key: fc.constantFrom(...Object.keys(valid)), value: fc.jsonValue() })
      .map(({ key, value }) => JSON.stringify({ ...valid, [key]: value }));
    fc.assert(
      fc.property(fc.oneof(mutated, fc.json(), fc.string()), (text) => {
        let parsed: ReturnType<typeof parseWorkerConfig>;
        try {
          parsed = parseWorkerConfig(text);
        } catch (error) {
          expect(error).toBeInstanceOf(SteveBrowserError);
          expect([(error as SteveBrowserError).code, (error as SteveBrowserError).stage]).toEqual(['STEVE_BROWSER_CONFIG', 'config']);
          return;
        }
        // What it accepts is normalised: parsing its own encoding gives it back.
        expect(parseWorkerConfig(encodeWorkerConfig(parsed))).toEqual(parsed);
      }),
      { seed: 20_261_206, numRuns: 500 },
    );
  });
});
