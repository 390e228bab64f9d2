/**
 * The init configuration: a minimal file gets every default; the result is deeply frozen; every problem
 * of a bad file is reported at once; PCRs below 16 and unknown keys are refused (the removed `nsmModule`
 * and `bridges` with their replacements); modules are absolute paths; interfaces and services are
 * checked item by item, duplicates named; the system switches and the NSM mode have no default; a
 * Procfile's `run` becomes `/bin/sh -c run`; and the loader's file errors (missing, not UTF-8, not JSON,
 * too large, a bad or missing Procfile) are all INIT_CONFIG_INVALID.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CONFIG_MAX_BYTES, DEFAULT_RESTART_POLICY, parseInitConfig } from './config.js';
import { configPath, loadInitConfig } from './config-file.js';
import { InitError } from './errors.js';

const MINIMAL = {
  nsm: 'device',
  boot: { mounts: true, loopback: true, entropy: true, heartbeat: false },
  app: { command: ['/app/server', '--port', '8083'] },
  agent: { args: ['--nsm', 'device', '--manifest', '/etc/manifest.json'] },
};

function problemsOf(json: unknown, options = {}): string[] {
  try {
    parseInitConfig(json, options);
  } catch (err) {
    expect(err).toBeInstanceOf(InitError);
    expect((err as InitError).code).toBe('INIT_CONFIG_INVALID');
    return [...(err as InitError).problems];
  }
  throw new Error('accepted');
}

describe('parseInitConfig', () => {
  it('fills every default into a minimal file', () => {
    expect(parseInitConfig(MINIMAL)).toEqual({
      nsm: 'device',
      deployment: 'production',
      nsmDevicePath: '/dev/nsm',
      mockPkiDir: null,
      modules: [],
      boot: { mounts: true, loopback: true, entropy: true, heartbeat: null, interfaces: [] },
      entropyBytes: 256,
      files: {},
      pcr: null,
      rigMeasurements: {},
      services: [],
      app: { command: ['/app/server', '--port', '8083'], procfile: null, env: {}, cwd: null },
      agent: { command: null, args: ['--nsm', 'device', '--manifest', '/etc/manifest.json'], env: {} },
      restart: DEFAULT_RESTART_POLICY,
      shutdownDeadlineMs: 10_000,
      logLevel: 'info',
    });
  });

  it('takes every field and freezes the result all the way down', () => {
    const services = [
      { name: 'bridges', args: ['enclave-bridge', '--ingress-port', '8080'] },
      { name: 'log-shipper', command: ['/usr/bin/shipper', '-v'], env: { LEVEL: 'debug' } },
    ];
    const config = parseInitConfig({
      ...MINIMAL,
      nsm: 'mock',
      deployment: 'test',
      mockPkiDir: '/pki',
      modules: ['/lib/modules/vsock.ko', '/lib/modules/nsm.ko'],
      boot: { mounts: false, loopback: true, entropy: false, heartbeat: { cid: 2, port: 9001, timeoutMs: 3000 }, interfaces: [{ name: 'eth0', address: '10.0.2.15/24' }] },
      entropyBytes: 512,
      files: { '/etc/hosts': '127.0.0.1 localhost\n', '/etc/resolv.conf': 'nameserver 127.0.0.1\n' },
      pcr: { index: 16 },
      app: { command: ['/bin/app'], env: { PORT: '8083' }, cwd: '/app' },
      agent: { command: ['/usr/bin/agent'], env: { X: '1' } },
      restart: { initialBackoffMs: 10, maxBackoffMs: 20, crashLoopRestarts: 0, crashLoopWindowMs: 1000, stableAfterMs: 5 },
      shutdownDeadlineMs: 2000,
      services,
      logLevel: 'debug',
    });
    expect(config.pcr).toEqual({ index: 16, lock: true });
    expect(config.agent).toEqual({ command: ['/usr/bin/agent'], args: [], env: { X: '1' } });
    expect(config.modules).toEqual(['/lib/modules/vsock.ko', '/lib/modules/nsm.ko']);
    expect(config.boot).toEqual({ mounts: false, loopback: true, entropy: false, heartbeat: { cid: 2, port: 9001, timeoutMs: 3000 }, interfaces: [{ name: 'eth0', address: '10.0.2.15/24' }] });
    expect(Object.isFrozen(config.boot.heartbeat)).toBe(true);
    expect(config.services).toEqual([
      { name: 'bridges', command: null, args: ['enclave-bridge', '--ingress-port', '8080'], env: {} },
      { name: 'log-shipper', command: ['/usr/bin/shipper', '-v'], args: [], env: { LEVEL: 'debug' } },
    ]);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.app.command)).toBe(true);
    expect(Object.isFrozen(config.services[0]!.args)).toBe(true);
    expect(Object.isFrozen(config.boot.interfaces[0])).toBe(true);
    expect(() => {
      (config.files as Record<string, string>)['/etc/passwd'] = 'x';
    }).toThrow(TypeError);
  });

  it('agent null runs no agent, but only when said explicitly', () => {
    expect(parseInitConfig({ ...MINIMAL, agent: null }).agent).toBeNull();
    const { agent: _agent, ...noAgent } = MINIMAL;
    expect(problemsOf(noAgent)).toEqual(['agent: expected an object with "args" or "command", or null for no agent (explicitly), got undefined']);
  });

  it('reports every problem at once', () => {
    const problems = problemsOf({
      nsm: 'mock',
      deployment: 'test',
      boot: { mounts: 'yes', loopback: true },
      entropyBytes: 0,
      files: { 'etc/hosts': 'x' },
      pcr: { index: 15 },
      app: { command: [], procfile: '/Procfile' },
      agent: { args: ['a'], command: ['b'], extra: 1 },
      restart: { initialBackoffMs: 100, maxBackoffMs: 50 },
      shutdownDeadlineMs: -1,
      logLevel: 'loud',
      nsmDevice: '/dev/nsm',
    });
    expect(problems).toEqual([
      'config: unknown key "nsmDevice"',
      'mockPkiDir: required with nsm "mock" (enclave-agent mock-pki --out DIR)',
      'boot.mounts: expected true or false, got "yes"',
      'boot.entropy: expected true or false, got undefined',
      'boot.heartbeat: expected false, true (CID 3, port 9000) or an object {"cid", "port", "timeoutMs"} (no default), got undefined',
      'entropyBytes: expected an integer 1..4096, got 0',
      'files: key "etc/hosts" is not an absolute path',
      'pcr.index: expected an integer 16..31 (PCRs 0-15 belong to the boot), got 15',
      'app: expected exactly one of "command" (an argv array) and "procfile" (a path)',
      'agent: unknown key "extra"',
      'agent: expected "args" (for this CLI\'s run command) or "command" (an argv), not both',
      'restart.maxBackoffMs: expected at least restart.initialBackoffMs',
      'shutdownDeadlineMs: expected an integer 1..600000, got -1',
      'logLevel: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    ]);
  });

  it('boot.interfaces: kernel interface names, strict dotted quads with a prefix, no name twice, every problem listed', () => {
    const withInterfaces = (interfaces: unknown) => ({ ...MINIMAL, boot: { ...MINIMAL.boot, interfaces } });
    const good = [
      { name: 'lo', address: '127.0.0.1/8' },
      { name: 'eth0', address: '10.0.2.15/24' },
      { name: 'veth_1.2-a', address: '255.255.255.255/32' },
      { name: 'x', address: '0.0.0.0/0' },
    ];
    expect(parseInitConfig(withInterfaces(good)).boot.interfaces).toEqual(good);
    expect(
      problemsOf(
        withInterfaces([
          { name: 'eth0', address: '10.0.2.15' },
          { name: 'eth0:1', address: '10.0.2.15/33' },
          { name: 'x'.repeat(16), address: '010.0.2.15/24' },
          { name: 'eth1', address: '10.0.2.256/24', mtu: 1500 },
          { name: 'eth0', address: '10.0.2.16/24' },
          'eth2',
          { name: '..', address: '10.0.2.15/024' },
        ]),
      ),
    ).toEqual([
      'boot.interfaces[0].address: expected an IPv4 address and prefix length like "10.0.2.15/24", got "10.0.2.15"',
      'boot.interfaces[1].name: expected an interface name of 1..15 characters [A-Za-z0-9_.-], not "." or "..", got "eth0:1"',
      'boot.interfaces[1].address: expected an IPv4 address and prefix length like "10.0.2.15/24", got "10.0.2.15/33"',
      'boot.interfaces[2].name: expected an interface name of 1..15 characters [A-Za-z0-9_.-], not "." or "..", got "xxxxxxxxxxxxxxxx"',
      'boot.interfaces[2].address: expected an IPv4 address and prefix length like "10.0.2.15/24", got "010.0.2.15/24"',
      'boot.interfaces[3]: unknown key "mtu"',
      'boot.interfaces[3].address: expected an IPv4 address and prefix length like "10.0.2.15/24", got "10.0.2.256/24"',
      'boot.interfaces[5]: expected an object {"name", "address"}, got "eth2"',
      'boot.interfaces[6].name: expected an interface name of 1..15 characters [A-Za-z0-9_.-], not "." or "..", got ".."',
      'boot.interfaces[6].address: expected an IPv4 address and prefix length like "10.0.2.15/24", got "10.0.2.15/024"',
      'boot.interfaces[4].name: "eth0" is already used by boot.interfaces[0]',
    ]);
    expect(problemsOf(withInterfaces(new Array(17).fill({ name: 'lo', address: '127.0.0.1/8' })))).toEqual(['boot.interfaces: expected an array of at most 16 items, got an array']);
  });

  it('services: unique [a-z0-9-] names other than agent and app, exactly one of args and command, every problem listed', () => {
    expect(
      problemsOf({
        ...MINIMAL,
        services: [
          { name: 'bridges', args: ['enclave-bridge'] },
          { name: 'agent', command: ['/bin/x'] },
          { name: 'Bridges', args: [] },
          { name: 'bridges', command: ['/bin/y'] },
          { name: 'x', args: ['a'], command: ['/b'] },
          { name: 'y', env: { 'A-B': '1' }, command: [], cwd: '/' },
          { args: ['z'] },
          'bridges',
          { name: 'app' },
          { name: 'a'.repeat(33), args: ['run', 'a\0'] },
        ],
      }),
    ).toEqual([
      'services[1].name: expected a name of 1..32 characters [a-z0-9-], not "agent" or "app", got "agent"',
      'services[2].name: expected a name of 1..32 characters [a-z0-9-], not "agent" or "app", got "Bridges"',
      'services[2].args: expected an array of 1..256 strings, got an array',
      'services[4]: expected exactly one of "args" (this CLI\'s subcommand and its arguments) and "command" (an argv)',
      'services[5]: unknown key "cwd"',
      'services[5].env: key "A-B" is not an environment variable name',
      'services[5].command: expected an array of 1..256 strings, got an array',
      'services[6].name: expected a name of 1..32 characters [a-z0-9-], not "agent" or "app", got undefined',
      'services[7]: expected an object {"name", "args" or "command", "env"}, got "bridges"',
      'services[8].name: expected a name of 1..32 characters [a-z0-9-], not "agent" or "app", got "app"',
      'services[8]: expected exactly one of "args" (this CLI\'s subcommand and its arguments) and "command" (an argv)',
      `services[9].name: expected a name of 1..32 characters [a-z0-9-], not "agent" or "app", got "${'a'.repeat(33)}"`,
      'services[9].args[1]: expected a string without NUL, got "a\\u0000"',
      'services[3].name: "bridges" is already used by services[0]',
    ]);
    expect(problemsOf({ ...MINIMAL, services: { bridges: {} } })).toEqual(['services: expected an array of at most 16 items, got an object']);
  });

  it('boot.heartbeat: true is Nitro\'s parent (CID 3, port 9000, 10 s); an object overrides each field; no default', () => {
    const heartbeat = (value: unknown) => parseInitConfig({ ...MINIMAL, boot: { ...MINIMAL.boot, heartbeat: value } }).boot.heartbeat;
    expect(heartbeat(true)).toEqual({ cid: 3, port: 9000, timeoutMs: 10_000 });
    expect(heartbeat(false)).toBeNull();
    expect(heartbeat({})).toEqual({ cid: 3, port: 9000, timeoutMs: 10_000 });
    // QEMU's nitro-enclave machine with vhost-device-vsock delivers only CID 2 (specs/nitro-enclave.md §3).
    expect(heartbeat({ cid: 2 })).toEqual({ cid: 2, port: 9000, timeoutMs: 10_000 });
    const { heartbeat: _heartbeat, ...noHeartbeat } = MINIMAL.boot;
    expect(problemsOf({ ...MINIMAL, boot: noHeartbeat })).toEqual([
      'boot.heartbeat: expected false, true (CID 3, port 9000) or an object {"cid", "port", "timeoutMs"} (no default), got undefined',
    ]);
    expect(problemsOf({ ...MINIMAL, boot: { ...MINIMAL.boot, heartbeat: { cid: 0, port: 2 ** 32 - 1, timeoutMs: 0, host: 'x' } } })).toEqual([
      'boot.heartbeat: unknown key "host"',
      'boot.heartbeat.cid: expected an integer 1..4294967294, got 0',
      'boot.heartbeat.port: expected an integer 0..4294967294, got 4294967295',
      'boot.heartbeat.timeoutMs: expected an integer 1..600000, got 0',
    ]);
    expect(problemsOf({ ...MINIMAL, boot: { ...MINIMAL.boot, heartbeat: 'yes' } })).toEqual([
      'boot.heartbeat: expected false, true (CID 3, port 9000) or an object {"cid", "port", "timeoutMs"} (no default), got "yes"',
    ]);
  });

  it('has no default for the NSM mode or the system switches', () => {
    expect(problemsOf({ app: MINIMAL.app, agent: null })).toEqual([
      'nsm: expected "device" or "mock" (no default), got undefined',
      'boot: expected an object {"mounts", "loopback", "entropy", "heartbeat"} of explicit values, got undefined',
    ]);
  });

  it.each([
    [{ pcr: { index: 0 } }, 'pcr.index: expected an integer 16..31 (PCRs 0-15 belong to the boot), got 0'],
    [{ pcr: { index: 32 } }, 'pcr.index: expected an integer 16..31 (PCRs 0-15 belong to the boot), got 32'],
    [{ pcr: { index: 16.5 } }, 'pcr.index: expected an integer 16..31 (PCRs 0-15 belong to the boot), got 16.5'],
    [{ pcr: 16 }, 'pcr: expected an object {"index", "lock"} or null, got 16'],
    [{ mockPkiDir: '/pki' }, 'mockPkiDir: goes with nsm "mock" only'],
    [{ nsm: 'mock', mockPkiDir: '/pki' }, 'nsm: "mock" is refused in a production deployment (set "deployment": "test" for tests)'],
    [{ deployment: 'staging' }, 'deployment: expected "production" or "test", got "staging"'],
    [{ modules: ['/lib/nsm.ko', 'nsm.ko'] }, 'modules[1]: expected an absolute path, got "nsm.ko"'],
    [{ modules: '/lib/nsm.ko' }, 'modules: expected an array of at most 64 items, got "/lib/nsm.ko"'],
    [{ nsmModule: '/lib/nsm.ko' }, 'nsmModule: replaced by "modules" (a list of .ko paths)'],
    [{ bridges: { ingress: [] } }, 'bridges: replaced by "services" (e.g. { "name": "bridges", "args": ["enclave-bridge", ...] })'],
    [{ app: { command: ['/bin/app', 'a\0b'] } }, 'app.command[1]: expected a non-empty string without NUL (at most 4096 characters), got "a\\u0000b"'],
    [{ app: { command: '/bin/app' } }, 'app.command: expected an array of 1..256 strings, got "/bin/app"'],
    [{ app: { command: ['/bin/app'], env: { 'A-B': 'x' } } }, 'app.env: key "A-B" is not an environment variable name'],
    [{ app: { command: ['/bin/app'], env: { A: 1 } } }, 'app.env.A: expected a string without NUL, got 1'],
    [{ restart: { crashLoopRestarts: 1001 } }, 'restart.crashLoopRestarts: expected an integer 0..1000, got 1001'],
    [{ restart: { factor: 3 } }, 'restart: unknown key "factor"'],
  ])('refuses %j', (patch, problem) => {
    expect(problemsOf({ ...MINIMAL, ...patch })).toEqual([problem]);
  });

  it('refuses what is not an object', () => {
    for (const json of [null, [], 'x', 1]) expect(problemsOf(json)).toHaveLength(1);
  });

  it("takes the app command from a Procfile's run field, through /bin/sh -c", () => {
    const config = parseInitConfig({ ...MINIMAL, app: { procfile: '/app/Procfile' } }, { procfileText: 'run: node server.js\nports: 8080\n' });
    expect(config.app).toEqual({ command: ['/bin/sh', '-c', 'node server.js'], procfile: '/app/Procfile', env: {}, cwd: null });
  });

  it('reports a bad or unreadable Procfile among the other problems', () => {
    expect(problemsOf({ ...MINIMAL, logLevel: 1, app: { procfile: '/app/Procfile' } }, { procfileText: 'ports: 8080' })).toEqual([
      'app.procfile: Procfile has no "run" field (the app command)',
      'logLevel: expected one of fatal, error, warn, info, debug, trace, silent, got 1',
    ]);
    expect(problemsOf({ ...MINIMAL, app: { procfile: '/app/Procfile' } }, { procfileText: 'run node' })).toEqual(['app.procfile: Procfile line 1: expected "key: value"']);
    expect(problemsOf({ ...MINIMAL, app: { procfile: '/app/Procfile' } }, { procfileError: 'cannot read Procfile /app/Procfile: ENOENT' })).toEqual([
      'app.procfile: cannot read Procfile /app/Procfile: ENOENT',
    ]);
  });
});

describe('configPath', () => {
  it('takes the flag, then ENCLAVE_INIT_CONFIG, and requires one', () => {
    expect(configPath('/a.json', { ENCLAVE_INIT_CONFIG: '/b.json' })).toBe('/a.json');
    expect(configPath(undefined, { ENCLAVE_INIT_CONFIG: '/b.json' })).toBe('/b.json');
    expect(() => configPath(undefined, {})).toThrow(expect.objectContaining({ code: 'INIT_CONFIG_INVALID' }));
  });
});

describe('loadInitConfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'init-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function load(name: string, content: string | Uint8Array): Promise<unknown> {
    const path = join(dir, name);
    await writeFile(path, content);
    return loadInitConfig(path).catch((err: unknown) => err);
  }

  it('reads the file and the Procfile it names', async () => {
    await writeFile(join(dir, 'Procfile'), 'run: ./server\n');
    const config = await load('procfile.json', JSON.stringify({ ...MINIMAL, app: { procfile: join(dir, 'Procfile') } }));
    expect(config).toMatchObject({ app: { command: ['/bin/sh', '-c', './server'] } });
  });

  it('turns every file problem into INIT_CONFIG_INVALID', async () => {
    const cases: Array<[string, string | Uint8Array, RegExp]> = [
      ['not-json.json', '{"nsm": "device",', /not JSON/],
      ['latin1.json', Uint8Array.from([0x7b, 0xe9, 0x7d]), /not UTF-8/],
      ['huge.json', `{"files": {"/x": "${'x'.repeat(CONFIG_MAX_BYTES)}"}}`, /at most 1048576 bytes/],
      ['no-procfile.json', JSON.stringify({ ...MINIMAL, app: { procfile: join(dir, 'missing') } }), /cannot read Procfile .*missing: ENOENT/],
    ];
    for (const [name, content, message] of cases) {
      const err = await load(name, content);
      expect(err, name).toBeInstanceOf(InitError);
      expect((err as InitError).code).toBe('INIT_CONFIG_INVALID');
      expect((err as InitError).message).toMatch(message);
    }
    const missing = await loadInitConfig(join(dir, 'nope.json')).catch((err: unknown) => err);
    expect(missing).toMatchObject({ code: 'INIT_CONFIG_INVALID', message: expect.stringMatching(/cannot read config file .*nope.json: ENOENT/) });
  });
});

describe("the image's example configuration (image/init.example.json)", () => {
  it('is a valid production configuration: what `make initramfs` ships by default must boot', async () => {
    const path = join(new URL('..', import.meta.url).pathname, 'image/init.example.json');
    const config = await loadInitConfig(path);
    expect(config.deployment).toBe('production');
    expect(config.nsm).toBe('device');
    expect(config.pcr).toEqual({ index: 16, lock: true });
    expect(config.services.map((s) => s.name)).toEqual(['bridges']);
  });
});
