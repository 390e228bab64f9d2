/**
 * The bridges' flag parsing: defaults, every problem reported at once (BRIDGE_CONFIG_INVALID), the app
 * port refused in STEVE mode, the internal port always, egress only on loopback with an allowlist; and the
 * commands refuse bad flags before any logger or socket exists.
 */

import { describe, expect, it } from 'vitest';

import { runEnclaveBridgeCommand, runHostBridgeCommand } from './command.js';
import { parseEnclaveBridgeFlags, parseHostBridgeFlags, type FlagValues } from './config.js';
import { BridgeError } from './errors.js';

function problems(run: () => unknown): readonly string[] {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('BRIDGE_CONFIG_INVALID');
    return (error as BridgeError).problems;
  }
  throw new Error('expected BRIDGE_CONFIG_INVALID');
}

describe('host-bridge flags', () => {
  it('reads the ingress form with defaults', () => {
    expect(parseHostBridgeFlags({ listen: '0.0.0.0:8443', cid: '16', port: '8080' })).toEqual({
      mode: 'ingress',
      listen: { host: '0.0.0.0', port: 8443 },
      cid: 16,
      uds: null,
      vsockPort: 8080,
      connectTimeoutMs: 10_000,
      maxConnections: 1024,
      idleTimeoutMs: 300_000,
      relay: null,
      logLevel: 'info',
    });
    expect(parseHostBridgeFlags({ listen: '[::1]:0', cid: '1', port: '5', 'max-connections': '3', 'idle-timeout-ms': '250', relay: 'js', 'log-level': 'debug' })).toMatchObject({
      listen: { host: '::1', port: 0 },
      maxConnections: 3,
      idleTimeoutMs: 250,
      relay: 'js',
      logLevel: 'debug',
    });
    expect(problems(() => parseHostBridgeFlags({ listen: '127.0.0.1:1', cid: '1', port: '5', relay: 'splice' }))).toEqual(['--relay expected native or js, got "splice"']);
  });

  it('reads the egress form', () => {
    const config = parseHostBridgeFlags({ egress: true, 'vsock-port': '8001', allow: ['API.example.com:443', '10.0.0.2:5432'], cid: '16' });
    expect(config).toMatchObject({ mode: 'egress', vsockPort: 8001, fromCid: 16 });
    expect(config.mode === 'egress' && config.allowlist?.entries).toEqual(['api.example.com:443', '10.0.0.2:5432']);
    expect(parseHostBridgeFlags({ egress: true, 'vsock-port': '8001', allow: ['a.example:443'] })).toMatchObject({ fromCid: null });
    // No allowlist is no relay at all, not a relay to anywhere.
    expect(problems(() => parseHostBridgeFlags({ egress: true, 'vsock-port': '8001' }))).toEqual([
      '--egress needs at least one --allow HOST:PORT (the parent connects only to listed targets)',
    ]);
  });

  it('reads --uds in place of --cid: ingress dials the backend\'s socket, egress listens on PATH_<vsock-port>', () => {
    expect(parseHostBridgeFlags({ listen: '127.0.0.1:8081', uds: '/run/enclave/vsock.sock', port: '8080' })).toMatchObject({
      mode: 'ingress',
      cid: null,
      uds: '/run/enclave/vsock.sock',
      vsockPort: 8080,
    });
    expect(parseHostBridgeFlags({ egress: true, 'vsock-port': '8001', allow: ['a.example:443'], uds: '/run/enclave/vsock.sock' })).toMatchObject({
      mode: 'egress',
      uds: '/run/enclave/vsock.sock',
      fromCid: null,
      vsockPort: 8001,
    });
    expect(parseHostBridgeFlags({ egress: true, 'vsock-port': '8001', allow: ['a.example:443'] })).toMatchObject({ uds: null });
    expect(problems(() => parseHostBridgeFlags({ listen: '127.0.0.1:1', cid: '16', uds: '/s', port: '1' }))).toEqual([
      "--cid and --uds: one or the other (vsock, or a hybrid vsock backend's Unix socket)",
    ]);
    expect(problems(() => parseHostBridgeFlags({ egress: true, 'vsock-port': '8001', allow: ['a.example:443'], cid: '16', uds: '/s' }))).toEqual([
      "--cid and --uds: one or the other (vsock, or a hybrid vsock backend's Unix socket)",
    ]);
    expect(problems(() => parseHostBridgeFlags({ listen: '127.0.0.1:1', uds: '', port: '1' }))).toEqual(['--uds expected a Unix socket path, got ""']);
    // sun_path holds 107 bytes and a NUL; egress binds PATH_<port>, so the suffix counts.
    const path103 = `/${'p'.repeat(102)}`;
    expect(parseHostBridgeFlags({ listen: '127.0.0.1:1', uds: path103, port: '1' })).toMatchObject({ uds: path103 });
    expect(problems(() => parseHostBridgeFlags({ egress: true, 'vsock-port': '8001', allow: ['a.example:443'], uds: path103 }))).toEqual([
      `--uds: the socket path "${path103}_8001" is longer than 107 bytes`,
    ]);
    expect(problems(() => parseHostBridgeFlags({ listen: '127.0.0.1:1', uds: `/${'p'.repeat(107)}`, port: '1' }))).toEqual([
      `--uds: the socket path "/${'p'.repeat(107)}" is longer than 107 bytes`,
    ]);
  });

  it('reports every problem at once', () => {
    expect(problems(() => parseHostBridgeFlags({}))).toEqual([
      '--listen HOST:PORT is required',
      "--cid CID or --uds PATH is required (the enclave's CID, or a hybrid vsock backend's Unix socket)",
      "--port PORT is required (the enclave's vsock port)",
    ]);
    expect(
      problems(() =>
        parseHostBridgeFlags({ listen: 'nowhere', cid: '0', port: '-1', 'max-connections': '0', 'idle-timeout-ms': 'soon', 'log-level': 'loud', allow: ['x:1'] }),
      ),
    ).toEqual([
      '--log-level expected one of fatal, error, warn, info, debug, trace, got "loud"',
      '--max-connections expected an integer 1..1000000, got "0"',
      '--idle-timeout-ms expected an integer 1..2147483647, got "soon"',
      '--cid expected an integer 1..4294967294, got "0"',
      '--allow goes with --egress only',
      '--listen expected HOST:PORT, got "nowhere"',
      '--port expected an integer 0..4294967294, got "-1"',
    ]);
    expect(problems(() => parseHostBridgeFlags({ egress: true, listen: '127.0.0.1:1', allow: ['*.example.com:443'] }))).toEqual([
      '--listen is for the ingress bridge, not with --egress',
      '--egress needs --vsock-port PORT (the vsock port the enclave dials)',
      '--allow: allowlist entry "*.example.com:443" expected host:port (no wildcards)',
    ]);
  });
});

describe('enclave-bridge flags', () => {
  it('bridges 8080 by default, egress off', () => {
    expect(parseEnclaveBridgeFlags({}, {})).toEqual({
      ingressPorts: [8080],
      e2e: true,
      sources: { ingressPorts: 'default', e2e: 'default' },
      egress: null,
      maxConnections: 1024,
      idleTimeoutMs: 300_000,
      relay: null,
      logLevel: 'info',
    });
  });

  it('says where the ingress ports and the e2e switch came from (init names them in its cross-check)', () => {
    const env = { ENCLAVE_AGENT_INGRESS_PORTS: '8081', ENCLAVE_AGENT_E2E: 'false' };
    expect(parseEnclaveBridgeFlags({ 'ingress-port': ['8082'], e2e: 'true' }, env)).toMatchObject({ ingressPorts: [8082], e2e: true, sources: { ingressPorts: '--ingress-port', e2e: '--e2e' } });
    expect(parseEnclaveBridgeFlags({}, env)).toMatchObject({ ingressPorts: [8081], e2e: false, sources: { ingressPorts: 'ENCLAVE_AGENT_INGRESS_PORTS', e2e: 'ENCLAVE_AGENT_E2E' } });
  });

  it('never bridges the app port with --e2e true (the default), and allows it with --e2e false', () => {
    expect(problems(() => parseEnclaveBridgeFlags({ 'ingress-port': ['8080', '8083'] }, {}))).toEqual([
      "--ingress-port 8083 is the app's port: with --e2e true the app is reached only through the agent",
    ]);
    expect(problems(() => parseEnclaveBridgeFlags({ 'ingress-port': ['3000'] }, { STEVE_APP_UPSTREAM: 'http://127.0.0.1:3000' }))).toHaveLength(1);
    expect(problems(() => parseEnclaveBridgeFlags({}, { ENCLAVE_AGENT_INGRESS_PORTS: '8080,80', ENCLAVE_AGENT_UPSTREAM: 'http://127.0.0.1' }))).toHaveLength(1);
    expect(parseEnclaveBridgeFlags({ 'ingress-port': ['8083'], e2e: 'false' }, {}).ingressPorts).toEqual([8083]);
    expect(parseEnclaveBridgeFlags({}, { ENCLAVE_AGENT_INGRESS_PORTS: '8080, 8443' }).ingressPorts).toEqual([8080, 8443]);
  });

  it('never bridges the internal listener', () => {
    expect(problems(() => parseEnclaveBridgeFlags({ 'ingress-port': ['9090'], e2e: 'false' }, {}))).toEqual([
      "--ingress-port 9090 is the internal listener's port, which is never bridged",
    ]);
    expect(problems(() => parseEnclaveBridgeFlags({ 'ingress-port': ['9191'] }, { ENCLAVE_AGENT_INTERNAL_LISTEN: '127.0.0.1:9191' }))).toHaveLength(1);
  });

  it('configures egress from flags or the environment, loopback only, with an allowlist', () => {
    const flags: FlagValues = { 'egress-vsock-port': '8001', 'egress-allow': ['api.example.com:443'] };
    expect(parseEnclaveBridgeFlags(flags, {}).egress).toMatchObject({ listen: { host: '127.0.0.1', port: 3128 }, cid: 3, vsockPort: 8001 });
    const fromEnv = parseEnclaveBridgeFlags({}, { ENCLAVE_AGENT_EGRESS_VSOCK_PORT: '8001', ENCLAVE_AGENT_EGRESS_ALLOW: 'a.example:443,b.example:80', ENCLAVE_AGENT_EGRESS_CID: '4' });
    expect(fromEnv.egress?.allowlist.entries).toEqual(['a.example:443', 'b.example:80']);
    expect(fromEnv.egress?.cid).toBe(4);
    expect(problems(() => parseEnclaveBridgeFlags({ ...flags, 'egress-listen': '0.0.0.0:3128' }, {}))).toEqual([
      '--egress-listen must be a loopback address, got "0.0.0.0:3128"',
    ]);
    expect(problems(() => parseEnclaveBridgeFlags({ 'egress-vsock-port': '8001' }, {}))).toEqual(['egress needs at least one --egress-allow HOST:PORT']);
    expect(problems(() => parseEnclaveBridgeFlags({ 'egress-allow': ['a.example:443'] }, {}))).toEqual([
      '--egress-allow needs --egress-vsock-port (egress is off without it)',
    ]);
  });

  it('reports every problem at once', () => {
    expect(
      problems(() => parseEnclaveBridgeFlags({ 'ingress-port': ['0', '8080', '8080'], e2e: 'yes', upstream: 'https://x', 'egress-vsock-port': 'x', 'egress-allow': ['x'] }, {})),
    ).toEqual([
      '--ingress-port expected an integer 1..65535, got "0"',
      '--ingress-port: a port is listed twice',
      '--e2e expected true or false, got "yes"',
      '--upstream expected an http:// URL, got "https://x"',
      '--egress-vsock-port expected an integer 0..4294967294, got "x"',
      '--egress-allow: allowlist entry "x" expected host:port (no wildcards)',
    ]);
  });
});

describe('commands', () => {
  it('refuse bad flags before any logger or socket exists', async () => {
    const io = {
      createLogger: () => {
        throw new Error('a logger was created');
      },
      waitForStop: () => Promise.reject(new Error('started')),
    };
    await expect(runHostBridgeCommand({ listen: '127.0.0.1:0', cid: '16' }, io)).rejects.toMatchObject({ code: 'BRIDGE_CONFIG_INVALID' });
    await expect(runEnclaveBridgeCommand({ 'ingress-port': ['8083'] }, {}, io)).rejects.toMatchObject({ code: 'BRIDGE_CONFIG_INVALID' });
  });
});
