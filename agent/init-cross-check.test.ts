/**
 * init's cross-check of the agent's and the bridges' ports (agent/init-cross-check.ts): the agent's
 * upstream and internal listener are read as the agent reads them (flags in both forms, then ours and the
 * alias environment names, from agent.env over init's environment, then the defaults), the bridges'
 * ingress ports and e2e switch as the bridge reads them, and every port that would expose the app (e2e
 * on) or the internal listener is reported with where each value came from. Configurations are built with
 * init's own parser, so they are what init would run.
 */

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { parseInitConfig } from '../init/index.js';

import { crossCheckInitConfig } from './init-cross-check.js';

const REPO = dirname(dirname(fileURLToPath(import.meta.url)));
const AGENT_REQUIRED = ['--nsm', 'device', '--manifest', '/etc/enclave-agent/manifest.json'];

interface Parts {
  agentArgs?: string[];
  agentEnv?: Record<string, string>;
  bridgeArgs?: string[];
  bridgeEnv?: Record<string, string>;
  services?: unknown[];
  agent?: unknown;
}

/** An init configuration with one agent (`run` args) and one `enclave-bridge` service named "bridges". */
function check(parts: Parts, env: Record<string, string | undefined> = {}): string[] {
  const bridge = { name: 'bridges', args: ['enclave-bridge', ...(parts.bridgeArgs ?? ['--ingress-port', '8080'])], ...(parts.bridgeEnv ? { env: parts.bridgeEnv } : {}) };
  const config = parseInitConfig({
    nsm: 'device',
    boot: { mounts: true, loopback: true, entropy: true, heartbeat: false },
    services: parts.services ?? [bridge],
    agent: parts.agent ?? { args: [...AGENT_REQUIRED, ...(parts.agentArgs ?? [])], ...(parts.agentEnv ? { env: parts.agentEnv } : {}) },
    app: { command: ['/app/server'] },
  });
  return crossCheckInitConfig(config, env);
}

const appPort = (port: number, ingress: string, upstream: string, e2e = 'the default') =>
  `services[0] "bridges": ingress port ${port} (${ingress}) is the app's port (agent's upstream, ${upstream}): with e2e on (${e2e}) the app is reached only through the agent`;
const internalPort = (port: number, ingress: string, internal: string) =>
  `services[0] "bridges": ingress port ${port} (${ingress}) is the internal listener's port (agent's internal listener, ${internal}), which is never bridged`;

describe('crossCheckInitConfig', () => {
  it("accepts the image's example configuration and the README's", () => {
    const example = parseInitConfig(JSON.parse(readFileSync(join(REPO, 'image/init.example.json'), 'utf8')));
    expect(crossCheckInitConfig(example, {})).toEqual([]);
    const readme = readFileSync(join(REPO, 'init/README.md'), 'utf8');
    const block = /## Configuration[\s\S]*?```json\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    expect(crossCheckInitConfig(parseInitConfig(JSON.parse(block!)), {})).toEqual([]);
  });

  it("refuses the agent's --upstream port given as a flag in either form", () => {
    for (const agentArgs of [['--upstream', 'http://127.0.0.1:9000'], ['--upstream=http://127.0.0.1:9000']]) {
      for (const bridgeArgs of [['--ingress-port', '8080', '--ingress-port', '9000'], ['--ingress-port=8080', '--ingress-port=9000']]) {
        expect(check({ agentArgs, bridgeArgs })).toEqual([appPort(9000, '--ingress-port in services[0].args', '--upstream in agent.args')]);
      }
    }
    // The bridge alone accepts this: its default view of the app is port 8083.
    expect(check({ agentArgs: ['--upstream', 'http://127.0.0.1:9001'], bridgeArgs: ['--ingress-port', '9000'] })).toEqual([]);
  });

  it("refuses the agent's --internal-listen port, in either form, even with e2e off", () => {
    const problem = internalPort(7000, '--ingress-port in services[0].args', '--internal-listen in agent.args');
    expect(check({ agentArgs: ['--internal-listen=127.0.0.1:7000'], bridgeArgs: ['--ingress-port', '7000'] })).toEqual([problem]);
    expect(check({ agentArgs: ['--internal-listen', '0.0.0.0:7000'], bridgeArgs: ['--ingress-port', '7000', '--e2e', 'false'] })).toEqual([problem]);
  });

  it("reads the agent's environment names and aliases from agent.env, then init's environment", () => {
    const ingress = '--ingress-port in services[0].args';
    const bridgeArgs = ['--ingress-port', '9000'];
    expect(check({ agentEnv: { ENCLAVE_AGENT_UPSTREAM: 'http://127.0.0.1:9000' }, bridgeArgs })).toEqual([appPort(9000, ingress, 'ENCLAVE_AGENT_UPSTREAM in agent.env')]);
    expect(check({ agentEnv: { STEVE_APP_UPSTREAM: 'http://localhost:9000/' }, bridgeArgs })).toEqual([appPort(9000, ingress, 'STEVE_APP_UPSTREAM in agent.env')]);
    expect(check({ agentEnv: { ENCLAVE_AGENT_INTERNAL_LISTEN: '127.0.0.1:9000' }, bridgeArgs })).toEqual([internalPort(9000, ingress, 'ENCLAVE_AGENT_INTERNAL_LISTEN in agent.env')]);
    // init's environment reaches both children; the bridge is told otherwise by its own env, the agent is not.
    const bridgeEnv = { ENCLAVE_AGENT_UPSTREAM: 'http://127.0.0.1:8083' };
    expect(check({ bridgeArgs, bridgeEnv }, { STEVE_APP_UPSTREAM: 'http://127.0.0.1:9000' })).toEqual([appPort(9000, ingress, "STEVE_APP_UPSTREAM in init's environment")]);
    // The agent's precedence: ours before the alias, and an empty value is unset (agent/config.ts).
    expect(check({ agentEnv: { ENCLAVE_AGENT_UPSTREAM: 'http://127.0.0.1:9100', STEVE_APP_UPSTREAM: 'http://127.0.0.1:9000' }, bridgeArgs })).toEqual([]);
    expect(check({ agentEnv: { ENCLAVE_AGENT_UPSTREAM: '' }, bridgeArgs, bridgeEnv }, { ENCLAVE_AGENT_UPSTREAM: 'http://127.0.0.1:9100', STEVE_APP_UPSTREAM: 'http://127.0.0.1:9000' })).toEqual([
      appPort(9000, ingress, "STEVE_APP_UPSTREAM in init's environment"),
    ]);
    // A flag wins over every environment name.
    expect(check({ agentArgs: ['--upstream', 'http://127.0.0.1:9100'], agentEnv: { ENCLAVE_AGENT_UPSTREAM: 'http://127.0.0.1:9000' }, bridgeArgs })).toEqual([]);
    // An upstream without a port is http's 80.
    expect(check({ agentArgs: ['--upstream', 'http://127.0.0.1'], bridgeArgs: ['--ingress-port', '80'] })).toEqual([appPort(80, ingress, '--upstream in agent.args')]);
  });

  it('reads the bridge ingress ports from ENCLAVE_AGENT_INGRESS_PORTS in its env or in init\'s environment', () => {
    const agentArgs = ['--upstream', 'http://127.0.0.1:9000', '--internal-listen', '127.0.0.1:7000'];
    expect(check({ agentArgs, bridgeArgs: [], bridgeEnv: { ENCLAVE_AGENT_INGRESS_PORTS: '8080,9000' } })).toEqual([
      appPort(9000, 'ENCLAVE_AGENT_INGRESS_PORTS in services[0].env', '--upstream in agent.args'),
    ]);
    expect(check({ agentArgs, bridgeArgs: [] }, { ENCLAVE_AGENT_INGRESS_PORTS: '7000, 9000' })).toEqual([
      internalPort(7000, "ENCLAVE_AGENT_INGRESS_PORTS in init's environment", '--internal-listen in agent.args'),
      appPort(9000, "ENCLAVE_AGENT_INGRESS_PORTS in init's environment", '--upstream in agent.args'),
    ]);
    // The bridge's flag wins over the variable.
    expect(check({ agentArgs, bridgeArgs: ['--ingress-port', '8080'] }, { ENCLAVE_AGENT_INGRESS_PORTS: '9000' })).toEqual([]);
    // The default ingress port (8080) against an agent whose app listens there.
    expect(check({ agentArgs: ['--upstream', 'http://127.0.0.1:8080', '--listen', '0.0.0.0:8443'], bridgeArgs: [] })).toEqual([appPort(8080, 'the default', '--upstream in agent.args')]);
  });

  it('allows the app port when the bridge has e2e off, and names where e2e came from when on', () => {
    const agentArgs = ['--upstream', 'http://127.0.0.1:9000'];
    expect(check({ agentArgs, bridgeArgs: ['--ingress-port', '9000', '--e2e', 'false'] })).toEqual([]);
    expect(check({ agentArgs, bridgeArgs: ['--ingress-port', '9000'], bridgeEnv: { ENCLAVE_AGENT_E2E: 'false' } })).toEqual([]);
    expect(check({ agentArgs, bridgeArgs: ['--ingress-port', '9000'] }, { ENCLAVE_AGENT_E2E: 'false' })).toEqual([]);
    expect(check({ agentArgs, bridgeArgs: ['--ingress-port', '9000', '--e2e=true'] }, { ENCLAVE_AGENT_E2E: 'false' })).toEqual([
      appPort(9000, '--ingress-port in services[0].args', '--upstream in agent.args', '--e2e in services[0].args'),
    ]);
    expect(check({ agentArgs, bridgeArgs: ['--ingress-port', '9000'], bridgeEnv: { ENCLAVE_AGENT_E2E: 'true' } })).toEqual([
      appPort(9000, '--ingress-port in services[0].args', '--upstream in agent.args', 'ENCLAVE_AGENT_E2E in services[0].env'),
    ]);
  });

  it("reports the bridge's own refusals and argv it cannot read, the agent's too", () => {
    expect(check({ bridgeArgs: ['--ingress-port', '8083'] })).toEqual([
      `services[0] "bridges": --ingress-port 8083 is the app's port: with --e2e true the app is reached only through the agent`,
    ]);
    expect(check({ bridgeArgs: ['--ingres-port', '9000'] })).toEqual([
      expect.stringMatching(/^services\[0\] "bridges": services\[0\]\.args cannot be read as `enclave-bridge` flags: Unknown option '--ingres-port'/),
    ]);
    expect(check({ bridgeArgs: ['--ingress-port', '9000', 'extra'] })).toEqual([
      expect.stringMatching(/^services\[0\] "bridges": services\[0\]\.args cannot be read as `enclave-bridge` flags: /),
    ]);
    expect(check({ bridgeArgs: ['--ingress-port', '9000', '--help'] })).toEqual([
      'services[0] "bridges": services[0].args asks for help (--help or -h): `enclave-bridge` would print its usage instead of running',
    ]);
    expect(check({ agentArgs: ['--upstream', '--internal-listen=127.0.0.1:7000'] })).toEqual([
      expect.stringMatching(/^agent: agent\.args cannot be read as `run` flags: /),
    ]);
    // The URL is never echoed (it may carry credentials), as the agent's own message.
    expect(check({ agentArgs: ['--upstream', 'https://user:secret@127.0.0.1:9000'] })).toEqual([
      'agent: --upstream: expected an http:// URL without credentials, query or fragment',
    ]);
    expect(check({ agentEnv: { ENCLAVE_AGENT_INTERNAL_LISTEN: 'nowhere' } })).toEqual(['agent: ENCLAVE_AGENT_INTERNAL_LISTEN: expected HOST:PORT, got "nowhere"']);
  });

  it("does not need the agent's other settings, and skips children run from a full command", () => {
    // No --nsm, no --manifest: those may come from the enclave's environment at boot.
    expect(check({ agent: { args: ['--upstream', 'http://127.0.0.1:9000'] }, bridgeArgs: ['--ingress-port', '9000'] })).toEqual([
      appPort(9000, '--ingress-port in services[0].args', '--upstream in agent.args'),
    ]);
    // Not this CLI's `run`: not read (the bridge's own guard still applies to what it can see).
    expect(check({ agent: { command: ['/usr/bin/agent', '--upstream', 'http://127.0.0.1:9000'] }, bridgeArgs: ['--ingress-port', '9000'] })).toEqual([]);
    expect(check({ agent: null, services: [{ name: 'bridges', command: ['/usr/bin/bridge', '--ingress-port', '9090'] }] })).toEqual([]);
  });

  it('checks every bridge against every agent, services run as `run` included', () => {
    // Two agents, each bridged by its public port, as the QEMU boot test runs them (test/qemu/boot/boot.qemu.test.ts),
    // and a host-bridge service as the rig's plain machine once ran one inside the guest.
    const common = ['--manifest', '/etc/enclave-agent/manifest.json', '--upstream', 'http://127.0.0.1:8083'];
    const services = [
      { name: 'bridges', args: ['enclave-bridge', '--ingress-port', '8080', '--ingress-port', '8090'] },
      { name: 'parent-main', args: ['host-bridge', '--listen', '0.0.0.0:8081', '--cid', '1', '--port', '8080'] },
      { name: 'agent-device', args: ['run', '--nsm', 'device', '--listen', '127.0.0.1:8090', '--internal-listen', '127.0.0.1:9091', ...common] },
    ];
    expect(check({ services, agent: { args: ['--nsm', 'device', '--listen', '127.0.0.1:8080', ...common] } })).toEqual([]);
    const exposed = [{ ...services[0], args: ['enclave-bridge', '--ingress-port', '8080', '--ingress-port', '9091'] }, ...services.slice(1)];
    expect(check({ services: exposed, agent: { args: ['--nsm', 'device', '--listen', '127.0.0.1:8080', ...common] } })).toEqual([
      `services[0] "bridges": ingress port 9091 (--ingress-port in services[0].args) is the internal listener's port (services[2] "agent-device"'s internal listener, --internal-listen in services[2].args), which is never bridged`,
    ]);
  });
});
