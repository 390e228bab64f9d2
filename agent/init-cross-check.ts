/**
 * init's cross-check of the agent and the bridges it will start, run when the configuration is loaded
 * (agent/commands.ts hands it to init/command.ts, since init/ never imports agent/), so `init --config F`
 * and `init --config F --print-measurement` both refuse a configuration whose bridges would expose the
 * app or the agent's internal listener (specs/agent-http.md §1).
 *
 * Why here: `enclave-bridge` guards the app's port (while e2e is on) and the internal listener's port by
 * its own view of the agent's settings, its own flags and environment. An agent whose `--upstream` or
 * `--internal-listen` is set in its own argv or `agent.env` is invisible to it; only init sees both. So
 * this resolves each child's effective settings as that child will: the agent's `run` argv (`agent.args`,
 * and any service whose args start with `run`) read by the CLI's parser (agent/command-argv.ts) and
 * `resolveSetting` (agent/config.ts: flag, then the first environment name set among ours and the
 * aliases, then the default) over the environment the child gets (init's, then its own `env` on top,
 * as init/main.ts spawns it); each service whose args start with `enclave-bridge` read by the same parser
 * and `parseEnclaveBridgeFlags` over its environment. Every ingress port equal to an agent's app port
 * (while that bridge's e2e is on) or internal listener port is a problem naming the port and where each
 * value came from. An argv that cannot be read, or a bridge that refuses its own settings, is a problem
 * too: what cannot be read cannot be checked, and that child would not start anyway.
 *
 * Not checked: children started from a full `command` argv (another program, or this CLI by a path init
 * does not know); the bridge's own guard still applies to them. Ports only, as the bridge's guard: a
 * bridge dials 127.0.0.1:PORT whatever host the agent names. Pure: no I/O; the environment is an argument.
 */

import { BridgeError, ENCLAVE_BRIDGE_OPTIONS, parseEnclaveBridgeFlags, type EnclaveBridgeConfig } from '../bridge/index.js';
import type { InitConfig } from '../init/index.js';

import { parseCommandArgv, wantsHelp, type CommandOptions, type FlagValues } from './command-argv.js';
import { resolveSetting, settingFlags } from './config.js';
import { AgentError } from './errors.js';

type Environment = Readonly<Record<string, string | undefined>>;

/** One child init starts from this CLI: its argv after the subcommand, its own env, and how to name them. */
interface Child {
  label: string;
  args: readonly string[];
  env: Readonly<Record<string, string>>;
  argsField: string;
  envField: string;
}

interface AgentPorts {
  label: string;
  app: { port: number; from: string };
  internal: { port: number; from: string };
}

interface Bridge {
  child: Child;
  config: EnclaveBridgeConfig;
}

/**
 * Where a value came from, in the config's terms: a flag in the child's args, an environment name in its
 * `env` or in init's environment, or the default. `source` is as agent/config.ts and bridge/config.ts give
 * it: `--flag`, `--flag default` or `default`, or an environment name.
 */
function origin(source: string, child: Child): string {
  if (source === 'default' || source.endsWith(' default')) return 'the default';
  if (source.startsWith('--')) return `${source} in ${child.argsField}`;
  return `${source} in ${Object.hasOwn(child.env, source) ? child.envField : "init's environment"}`;
}

/** The child's flags as the CLI will parse them, or null (and a problem) when it would not run. */
function readArgv(child: Child, subcommand: string, options: CommandOptions, problems: string[]): FlagValues | null {
  if (wantsHelp(child.args)) {
    problems.push(`${child.label}: ${child.argsField} asks for help (--help or -h): \`${subcommand}\` would print its usage instead of running`);
    return null;
  }
  try {
    return parseCommandArgv(child.args, options).values;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (!(err instanceof AgentError) && !(typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) throw err;
    problems.push(`${child.label}: ${child.argsField} cannot be read as \`${subcommand}\` flags: ${(err as Error).message}`);
    return null;
  }
}

function readAgent(child: Child, baseEnv: Environment, problems: string[]): AgentPorts | null {
  const values = readArgv(child, 'run', settingFlags(), problems);
  if (values === null) return null;
  const env = { ...baseEnv, ...child.env };
  const upstream = resolveSetting('upstream', values, env);
  const internal = resolveSetting('internalListen', values, env);
  if ('problem' in upstream) problems.push(`${child.label}: ${upstream.problem}`);
  if ('problem' in internal) problems.push(`${child.label}: ${internal.problem}`);
  if ('problem' in upstream || 'problem' in internal) return null;
  // resolveSetting accepted it as an http:// URL; an absent port is http's 80.
  const url = new URL(upstream.value);
  return {
    label: child.label,
    app: { port: url.port === '' ? 80 : Number(url.port), from: origin(upstream.source, child) },
    internal: { port: internal.value.port, from: origin(internal.source, child) },
  };
}

function readBridge(child: Child, baseEnv: Environment, problems: string[]): Bridge | null {
  const values = readArgv(child, 'enclave-bridge', ENCLAVE_BRIDGE_OPTIONS, problems);
  if (values === null) return null;
  try {
    return { child, config: parseEnclaveBridgeFlags(values, { ...baseEnv, ...child.env }) };
  } catch (err) {
    if (!(err instanceof BridgeError) || err.code !== 'BRIDGE_CONFIG_INVALID') throw err;
    for (const problem of err.problems) problems.push(`${child.label}: ${problem}`);
    return null;
  }
}

/**
 * Every problem with the ports of the configuration's `enclave-bridge` services against its agents'
 * settings, in the environment `env` the children start from (init's own). Empty when none.
 */
export function crossCheckInitConfig(config: InitConfig, env: Environment): string[] {
  const problems: string[] = [];
  const agents: AgentPorts[] = [];
  const bridges: Bridge[] = [];
  if (config.agent !== null && config.agent.command === null) {
    const agent = readAgent({ label: 'agent', args: config.agent.args, env: config.agent.env, argsField: 'agent.args', envField: 'agent.env' }, env, problems);
    if (agent !== null) agents.push(agent);
  }
  config.services.forEach((service, i) => {
    if (service.command !== null) return;
    const [subcommand, ...args] = service.args;
    const child: Child = { label: `services[${i}] ${JSON.stringify(service.name)}`, args, env: service.env, argsField: `services[${i}].args`, envField: `services[${i}].env` };
    if (subcommand === 'run') {
      const agent = readAgent(child, env, problems);
      if (agent !== null) agents.push(agent);
    } else if (subcommand === 'enclave-bridge') {
      const bridge = readBridge(child, env, problems);
      if (bridge !== null) bridges.push(bridge);
    }
  });

  for (const { child, config: bridge } of bridges) {
    const e2e = `e2e on (${origin(bridge.sources.e2e, child)})`;
    for (const port of bridge.ingressPorts) {
      const ingress = `${child.label}: ingress port ${port} (${origin(bridge.sources.ingressPorts, child)})`;
      for (const agent of agents) {
        if (bridge.e2e && port === agent.app.port) {
          problems.push(`${ingress} is the app's port (${agent.label}'s upstream, ${agent.app.from}): with ${e2e} the app is reached only through the agent`);
        }
        if (port === agent.internal.port) {
          problems.push(`${ingress} is the internal listener's port (${agent.label}'s internal listener, ${agent.internal.from}), which is never bridged`);
        }
      }
    }
  }
  return problems;
}
