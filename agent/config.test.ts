/**
 * The agent's configuration (agent/config.ts): every problem reported at once, the precedence flag >
 * ENCLAVE_AGENT_* > the names existing STEVE images use, the security switches (no NSM default, the mock
 * only with a mock PKI, no wildcard CORS, a plain-http upstream without credentials), a frozen result,
 * and README.md's Configuration table held row for row against `SETTINGS`, so the documentation cannot
 * drift from the code.
 */

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig, SETTINGS, settingFlags } from './config.js';
import { AgentError } from './errors.js';

const REPO = dirname(dirname(fileURLToPath(import.meta.url)));

/** The two required settings, so a test can vary one thing. */
const REQUIRED = { nsm: 'device', manifest: '/app/manifest.json' };

function configError(flags: Record<string, unknown>, env: Record<string, string | undefined> = {}): AgentError {
  try {
    loadConfig(flags, env);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('AGENT_CONFIG');
    return err as AgentError;
  }
  throw new Error('expected loadConfig to throw AGENT_CONFIG');
}

describe('loadConfig', () => {
  it('fills every default from SETTINGS', () => {
    const config = loadConfig(REQUIRED, {});
    expect(config.nsm).toBe('device');
    expect(config.manifestPath).toBe('/app/manifest.json');
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.attestationListen).toBeNull();
    expect(config.internalListen).toEqual({ host: '127.0.0.1', port: 9090 });
    expect(config.upstream).toBe('http://127.0.0.1:8083/');
    expect(config.metadataPath).toBeNull();
    expect(config.mockPkiDir).toBeNull();
    expect(config.nsmDevicePath).toBe('/dev/nsm');
    expect(config.corsOrigins).toEqual([]);
    expect(config.allowPlaintextFallback).toBe(false);
    expect(config.keyExchange).toBe('X25519');
    expect(config.maxSessions).toBe(10_000);
    expect(config.nsmConcurrency).toBe(4);
    expect(config.nsmQueueMax).toBe(256);
    expect(config.shutdownTimeoutMs).toBe(10_000);
    expect(config.logLevel).toBe('info');
    expect(config.streaming).toBe(true);
    expect(config.streamIdleTimeoutMs).toBe(60_000);
    // Nothing outside SETTINGS sneaks in.
    expect(Object.keys(config).sort()).toEqual(SETTINGS.map((s) => s.key).sort());
  });

  it('reads every setting from its flag and from each of its environment names', () => {
    const values: Record<string, [string, unknown]> = {
      nsm: ['mock', 'mock'],
      deployment: ['test', 'test'],
      manifestPath: ['/m.json', '/m.json'],
      listen: ['127.0.0.1:1', { host: '127.0.0.1', port: 1 }],
      attestationListen: ['[::1]:49502', { host: '::1', port: 49502 }],
      internalListen: ['localhost:0', { host: 'localhost', port: 0 }],
      upstream: ['http://10.0.0.1:3000', 'http://10.0.0.1:3000/'],
      metadataPath: ['/meta.json', '/meta.json'],
      mockPkiDir: ['/pki', '/pki'],
      nsmDevicePath: ['/dev/nsm0', '/dev/nsm0'],
      corsOrigins: ['https://a.example, http://b.example:8080', ['https://a.example', 'http://b.example:8080']],
      allowPlaintextFallback: ['true', true],
      keyExchange: ['XWING-DRAFT10', 'XWING-DRAFT10'],
      maxSessions: ['1', 1],
      maxPendingSessions: ['50', 50],
      maxBufferedBytes: ['1048576', 1_048_576],
      sendTimeoutMs: ['100', 100],
      streaming: ['false', false],
      streamIdleTimeoutMs: ['250', 250],
      legacyV1: ['true', true],
      nsmConcurrency: ['64', 64],
      nsmQueueMax: ['0', 0],
      nsmTimeoutMs: ['120000', 120_000],
      shutdownTimeoutMs: ['600000', 600_000],
      logLevel: ['trace', 'trace'],
    };
    expect(Object.keys(values).sort()).toEqual(SETTINGS.map((s) => s.key).sort());
    const base = { nsm: 'mock', deployment: 'test', 'mock-pki': '/pki', manifest: '/m.json' };
    for (const setting of SETTINGS) {
      const [raw, expected] = values[setting.key]!;
      const read = (config: ReturnType<typeof loadConfig>) => {
        const value = config[setting.key];
        return value instanceof URL ? value.href : value;
      };
      expect(read(loadConfig({ ...base, [setting.flag.slice(2)]: raw }, {})), setting.flag).toEqual(expected);
      for (const name of setting.env) {
        const flags: Record<string, string> = { ...base };
        delete flags[setting.flag.slice(2)];
        expect(read(loadConfig(flags, { [name]: raw })), name).toEqual(expected);
      }
    }
  });

  it('reports every problem at once: one AGENT_CONFIG with one entry per bad setting', () => {
    const err = configError({
      // --nsm and --manifest missing: 2
      listen: 'nope', // 3
      'internal-listen': '127.0.0.1:65536', // 4
      upstream: 'https://app.example', // 5
      'cors-origins': '*', // 6
      'nsm-concurrency': '0', // 7
      'log-level': 'loud', // 8
    }, {
      ENCLAVE_AGENT_ALLOW_PLAINTEXT_FALLBACK: 'yes', // 9
      ENCLAVE_AGENT_SHUTDOWN_TIMEOUT_MS: '-1', // 10
    });
    expect(err.problems).toHaveLength(10);
    expect(err.message.split('\n  - ')).toHaveLength(11);
    // In SETTINGS order, each naming where its value came from.
    const named = ['--nsm', '--manifest', '--listen', '--internal-listen', '--upstream', '--cors-origins', 'ENCLAVE_AGENT_ALLOW_PLAINTEXT_FALLBACK', '--nsm-concurrency', 'ENCLAVE_AGENT_SHUTDOWN_TIMEOUT_MS', '--log-level'];
    named.forEach((name, i) => expect(err.problems[i]).toContain(name));
    for (const problem of err.problems) expect(err.message).toContain(problem);
  });

  it('names the environment variable a bad value came from', () => {
    const err = configError(REQUIRED, { STEVE_LISTEN_ADDR: 'not-an-address' });
    expect(err.problems).toEqual(['STEVE_LISTEN_ADDR: expected HOST:PORT, got "not-an-address"']);
  });

  describe('precedence: flag > ENCLAVE_AGENT_* > legacy STEVE names', () => {
    const cases: Array<{ flag: string; ours: string; legacy: string; values: [string, string, string]; read: (c: ReturnType<typeof loadConfig>) => unknown; expected: [unknown, unknown, unknown] }> = [
      {
        flag: 'listen',
        ours: 'ENCLAVE_AGENT_LISTEN',
        legacy: 'STEVE_LISTEN_ADDR',
        values: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:49500'],
        read: (c) => c.listen.port,
        expected: [1, 2, 49500],
      },
      {
        flag: 'upstream',
        ours: 'ENCLAVE_AGENT_UPSTREAM',
        legacy: 'STEVE_APP_UPSTREAM',
        values: ['http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:3'],
        read: (c) => new URL(c.upstream).port,
        expected: ['1', '2', '3'],
      },
      {
        flag: 'attestation-listen',
        ours: 'ENCLAVE_AGENT_ATTESTATION_LISTEN',
        legacy: 'BOOTPROOFD_LISTEN_ADDR',
        values: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:49502'],
        read: (c) => c.attestationListen?.port,
        expected: [1, 2, 49502],
      },
      {
        flag: 'cors-origins',
        ours: 'ENCLAVE_AGENT_CORS_ORIGINS',
        legacy: 'STEVE_CORS_ORIGINS',
        values: ['https://flag.example', 'https://ours.example', 'https://legacy.example'],
        read: (c) => c.corsOrigins,
        expected: [['https://flag.example'], ['https://ours.example'], ['https://legacy.example']],
      },
      {
        flag: 'allow-plaintext-fallback',
        ours: 'ENCLAVE_AGENT_ALLOW_PLAINTEXT_FALLBACK',
        legacy: 'STEVE_ALLOW_PLAINTEXT_FALLBACK',
        values: ['false', 'true', 'false'],
        read: (c) => c.allowPlaintextFallback,
        expected: [false, true, false],
      },
      {
        flag: 'key-exchange',
        ours: 'ENCLAVE_AGENT_KEY_EXCHANGE',
        legacy: 'STEVE_KEY_EXCHANGE',
        values: ['X25519', 'XWING-DRAFT10', 'X25519'],
        read: (c) => c.keyExchange,
        expected: ['X25519', 'XWING-DRAFT10', 'X25519'],
      },
    ];

    it.each(cases)('$flag: flag, then $ours, then $legacy, then the default', ({ flag, ours, legacy, values, read, expected }) => {
      const env = { [ours]: values[1], [legacy]: values[2] };
      expect(read(loadConfig({ ...REQUIRED, [flag]: values[0] }, env))).toEqual(expected[0]);
      expect(read(loadConfig(REQUIRED, env))).toEqual(expected[1]);
      expect(read(loadConfig(REQUIRED, { [legacy]: values[2] }))).toEqual(expected[2]);
      // An empty variable counts as unset and passes to the next name.
      expect(read(loadConfig(REQUIRED, { [ours]: '', [legacy]: values[2] }))).toEqual(expected[2]);
      const setting = SETTINGS.find((s) => s.flag === `--${flag}`)!;
      expect(setting.env).toEqual([ours, legacy]);
      const fallback = read(loadConfig(REQUIRED, {}));
      expect(fallback).toEqual(read(loadConfig({ ...REQUIRED, ...(setting.default ? { [flag]: setting.default } : {}) }, {})));
    });

    it('a flag wins even over a bad environment value (the environment is not read)', () => {
      expect(loadConfig({ ...REQUIRED, listen: '127.0.0.1:7' }, { ENCLAVE_AGENT_LISTEN: 'garbage', STEVE_LISTEN_ADDR: 'garbage' }).listen.port).toBe(7);
    });
  });

  describe('security switches', () => {
    it('the NSM mode has no default and takes only device, mock or mock-signed-device', () => {
      const missing = configError({ manifest: '/m.json' }, {});
      expect(missing.problems).toHaveLength(1);
      expect(missing.problems[0]).toMatch(/^--nsm \(or ENCLAVE_AGENT_NSM\) is required/);
      for (const mode of ['', 'Mock', 'DEVICE', 'auto', 'none']) {
        const env = mode === '' ? { ENCLAVE_AGENT_NSM: '' } : { ENCLAVE_AGENT_NSM: mode };
        expect(configError({ manifest: '/m.json' }, env).problems, mode).toHaveLength(1);
      }
    });

    it('the mocks need a mock PKI, and a mock PKI goes with the mocks only', () => {
      const test = { deployment: 'test', manifest: '/m.json' };
      expect(configError({ nsm: 'mock', ...test }).problems).toEqual(['--nsm mock needs --mock-pki DIR (create one with: enclave-agent mock-pki --out DIR)']);
      expect(configError({ nsm: 'mock-signed-device', ...test }).problems).toEqual([
        '--nsm mock-signed-device needs --mock-pki DIR (create one with: enclave-agent mock-pki --out DIR)',
      ]);
      expect(loadConfig({ nsm: 'mock', ...test, 'mock-pki': '/pki' }, {}).mockPkiDir).toBe('/pki');
      expect(loadConfig({ nsm: 'mock-signed-device', ...test, 'mock-pki': '/pki' }, {}).nsm).toBe('mock-signed-device');
      expect(loadConfig({ nsm: 'mock', ...test }, { ENCLAVE_AGENT_MOCK_PKI: '/pki' }).mockPkiDir).toBe('/pki');
      expect(configError({ ...REQUIRED, 'mock-pki': '/pki' }).problems).toEqual(['--mock-pki goes with --nsm mock only']);
    });

    it('a production deployment (the default) refuses every mock NSM, named in the problem', () => {
      expect(loadConfig(REQUIRED, {}).deployment).toBe('production');
      for (const nsm of ['mock', 'mock-signed-device']) {
        const problem = `--nsm ${nsm} is refused in a production deployment: its documents prove nothing (set --deployment test for tests and demos)`;
        expect(configError({ nsm, 'mock-pki': '/pki', manifest: '/m.json' }).problems, nsm).toEqual([problem]);
        expect(configError({ nsm, 'mock-pki': '/pki', manifest: '/m.json', deployment: 'production' }).problems, nsm).toEqual([problem]);
        expect(configError({ nsm, 'mock-pki': '/pki', manifest: '/m.json' }, { ENCLAVE_AGENT_DEPLOYMENT: 'production' }).problems, nsm).toEqual([problem]);
      }
      expect(loadConfig({ ...REQUIRED, deployment: 'production' }, {}).nsm).toBe('device');
      expect(configError({ ...REQUIRED, deployment: 'staging' }).problems).toEqual(['--deployment: expected one of production, test, got "staging"']);
    });

    it.each(['*', 'https://*.example', 'https://app.example,*', '*://app.example'])('refuses the wildcard CORS origin %j', (value) => {
      const err = configError({ ...REQUIRED, 'cors-origins': value });
      expect(err.problems).toHaveLength(1);
      expect(err.problems[0]).toContain('--cors-origins: wildcards are not allowed');
    });

    it.each(['https://app.example/', 'https://app.example/path', 'app.example', 'ftp://app.example', 'https://user@app.example', 'https://app.example?x=1'])(
      'refuses %j, which is not exactly scheme://host[:port]',
      (value) => {
        expect(configError({ ...REQUIRED, 'cors-origins': value }).problems).toHaveLength(1);
      },
    );

    it('trims a comma-separated list of exact origins; a blank list is empty', () => {
      expect(loadConfig({ ...REQUIRED, 'cors-origins': ' https://a.example ,http://localhost:5173' }, {}).corsOrigins).toEqual(['https://a.example', 'http://localhost:5173']);
      expect(loadConfig({ ...REQUIRED, 'cors-origins': '   ' }, {}).corsOrigins).toEqual([]);
    });

    it.each([
      ['https://127.0.0.1:8083', 'https'],
      ['http://user:secret@127.0.0.1:8083', 'credentials'],
      ['http://user@127.0.0.1:8083', 'a user name'],
      ['http://127.0.0.1:8083/?token=1', 'a query'],
      ['http://127.0.0.1:8083/#x', 'a fragment'],
      ['127.0.0.1:8083', 'no scheme'],
      ['unix:/run/app.sock', 'another scheme'],
    ])('refuses the upstream %s (%s)', (value) => {
      const err = configError({ ...REQUIRED, upstream: value });
      expect(err.problems).toHaveLength(1);
      expect(err.problems[0]).toMatch(/^--upstream: expected an http:\/\/ URL/);
    });

    it('plaintext fallback takes exactly true or false', () => {
      expect(loadConfig({ ...REQUIRED, 'allow-plaintext-fallback': 'true' }, {}).allowPlaintextFallback).toBe(true);
      for (const value of ['1', 'yes', 'TRUE', 'on', ' true']) {
        expect(configError({ ...REQUIRED, 'allow-plaintext-fallback': value }).problems, value).toHaveLength(1);
      }
    });
  });

  describe('value checks', () => {
    it.each([
      ['listen', ':8080'],
      ['listen', '127.0.0.1'],
      ['listen', '127.0.0.1:65536'],
      ['listen', '127.0.0.1:-1'],
      ['listen', 'http://127.0.0.1:80'],
      ['key-exchange', 'x25519'],
      ['key-exchange', 'ML-KEM-768'],
      ['max-sessions', '0'],
      ['max-sessions', '1000001'],
      ['nsm-concurrency', '65'],
      ['nsm-concurrency', '1.5'],
      ['nsm-concurrency', ' 4'],
      ['nsm-queue', '100001'],
      ['shutdown-timeout-ms', '600001'],
      ['shutdown-timeout-ms', '1e3'],
      ['log-level', 'silent'],
      ['nsm-device', ''],
      ['metadata', 'a\0b'],
    ])('--%s %j is refused', (flag, value) => {
      const err = configError({ ...REQUIRED, [flag]: value });
      expect(err.problems).toHaveLength(1);
      expect(err.problems[0]).toContain(`--${flag}:`);
    });

    it('an empty flag value is a value, not "unset"', () => {
      // Environment variables set to '' fall through to the next name; a flag given as '' is checked.
      expect(configError({ ...REQUIRED, 'nsm-device': '' }).problems[0]).toBe('--nsm-device: expected a file path, got ""');
    });
  });

  it('returns a frozen object', () => {
    const config = loadConfig(REQUIRED, {});
    expect(Object.isFrozen(config)).toBe(true);
    expect(() => {
      (config as { nsm: string }).nsm = 'mock';
    }).toThrow(TypeError);
    expect(config.nsm).toBe('device');
  });

  it('freezes the nested parts too (listen, corsOrigins)', () => {
    const config = loadConfig({ ...REQUIRED, 'cors-origins': 'https://a.example' }, {});
    expect(Object.isFrozen(config.listen)).toBe(true);
    expect(Object.isFrozen(config.internalListen)).toBe(true);
    expect(Object.isFrozen(config.corsOrigins)).toBe(true);
  });

  it('settingFlags offers one string option per setting', () => {
    const flags = settingFlags();
    expect(Object.keys(flags)).toEqual(SETTINGS.map((s) => s.flag.slice(2)));
    for (const option of Object.values(flags)) expect(option).toEqual({ type: 'string' });
  });
});

// ---------------------------------------------------------------------------------------------------
// README.md "## Configuration" against SETTINGS

/** Cells of a markdown table row, split on unescaped pipes, `\|` unescaped, trimmed. */
function cells(row: string): string[] {
  const inner = row.trim().replace(/^\|/, '').replace(/\|$/, '');
  return inner.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, '|'));
}

function readmeConfigurationRows(): string[][] {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Configuration\n');
  expect(start, 'README.md has a "## Configuration" section').toBeGreaterThanOrEqual(0);
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end === -1 ? undefined : end);
  const lines = section.split('\n').filter((line) => line.trimStart().startsWith('|'));
  expect(lines.length).toBeGreaterThan(2);
  expect(cells(lines[0]!)).toEqual(['flag', 'environment', 'default', 'meaning']);
  expect(cells(lines[1]!).every((cell) => /^:?-{3,}:?$/.test(cell))).toBe(true);
  return lines.slice(2).map(cells);
}

function renderDefault(value: string | null | undefined): string {
  if (value === undefined) return 'required';
  if (value === null) return 'unset';
  if (value === '') return 'empty';
  return `\`${value}\``;
}

describe("README.md's Configuration table", () => {
  const rows = readmeConfigurationRows();

  it('has one row per setting, in the same order', () => {
    expect(rows.map((row) => row[0])).toEqual(SETTINGS.map((s) => `\`${s.flag}\``));
  });

  it.each(SETTINGS.map((s, i) => [s.flag, i] as const))('%s: flag, environment names, default and meaning match SETTINGS', (_, i) => {
    const setting = SETTINGS[i]!;
    const row = rows[i]!;
    expect(row).toHaveLength(4);
    expect(row[0]).toBe(`\`${setting.flag}\``);
    expect(row[1]).toBe(setting.env.map((name) => `\`${name}\``).join(', '));
    expect(row[2]).toBe(renderDefault(setting.default));
    expect(row[3]).toBe(setting.doc);
  });
});
