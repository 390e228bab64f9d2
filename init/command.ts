/**
 * `enclave-agent init`: the CLI face of runInit (the subcommand is registered in agent/commands.ts, which
 * passes the argv that runs this same CLI, so `agent.args` can start `enclave-agent run` and a service's
 * `args` another subcommand, such as `enclave-agent enclave-bridge`).
 *
 * Exit statuses follow the CLI's rule: 0 success, 1 a runtime failure (boot failed, a child crash-looped),
 * 2 a usage or configuration error (every problem printed). `--print-measurement` prints what the
 * configuration PCR will hold (init/measurement.ts) and exits without booting anything.
 *
 * A configuration is refused (exit 2) by init/config.ts's checks and then by `crossCheck`, the caller's
 * checks of what init/ cannot know: agent/commands.ts passes agent/init-cross-check.ts, which refuses
 * bridge ingress ports that would expose the app or the agent's internal listener. Both run before
 * `--print-measurement`, so a refused configuration has no measurement either.
 */

import { bytesToHex } from '../nsm/index.js';

import type { InitConfig } from './config.js';
import { configPath, loadInitConfig } from './config-file.js';
import { InitError } from './errors.js';
import { createInitLogger } from './log.js';
import { runInit } from './main.js';
import { measureConfig } from './measurement.js';

export const INIT_USAGE =
  'Usage: enclave-agent init --config FILE [--print-measurement]\n\n' +
  'Boots the enclave (mounts, kernel modules, loopback and interface addresses, the NSM device, entropy\n' +
  'from the NSM, the configuration PCR, files), then runs the services, the agent and the app under\n' +
  'supervision until SIGTERM or SIGINT.\n\n' +
  '--config FILE          the init configuration (JSON; see init/README.md); or ENCLAVE_INIT_CONFIG\n' +
  '--print-measurement    print the canonical configuration, its SHA-384 and the PCR value, and exit\n\n' +
  'Exit status: 0 stopped by a signal, 1 boot failure or crash loop, 2 configuration error.';

export const INIT_OPTIONS = { config: { type: 'string' }, 'print-measurement': { type: 'boolean' } } as const;

export interface InitCommandOptions {
  /** argv prefix that runs this CLI: `[process.execPath, ...execArgv, cli.js]`. */
  cli: readonly string[];
  /** init's environment: where ENCLAVE_INIT_CONFIG is read, and the base of every child's; default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * Checks of the loaded configuration against knowledge init/ must not import (the agent's and the
   * bridge's settings), given the environment the children start from: every problem, as sentences. Any
   * problem refuses the configuration like init/config.ts's own (`INIT_CONFIG_INVALID`, exit 2).
   */
  crossCheck?: (config: InitConfig, env: Readonly<Record<string, string | undefined>>) => readonly string[];
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
}

export async function runInitCommand(values: Record<string, unknown>, options: InitCommandOptions): Promise<number> {
  const stdout = options.stdout ?? ((text: string) => void process.stdout.write(text));
  const stderr = options.stderr ?? ((text: string) => void process.stderr.write(text));
  try {
    const env = options.env ?? process.env;
    const path = configPath(typeof values.config === 'string' ? values.config : undefined, env);
    const config = await loadInitConfig(path);
    const problems = options.crossCheck?.(config, env) ?? [];
    if (problems.length > 0) throw new InitError('INIT_CONFIG_INVALID', `invalid init configuration: ${problems.join('; ')}`, { problems });
    if (values['print-measurement'] === true) {
      const { canonical, digest, pcrValue } = measureConfig(config);
      stdout(`${JSON.stringify({ canonical, sha384: bytesToHex(digest), pcr: config.pcr === null ? null : { index: config.pcr.index, value: bytesToHex(pcrValue) } }, null, 2)}\n`);
      return 0;
    }
    const logger = createInitLogger({ level: config.logLevel });
    return await runInit({ config, logger, cli: options.cli, env });
  } catch (err) {
    if (!(err instanceof InitError)) throw err;
    if (err.code === 'INIT_CONFIG_INVALID') {
      stderr(`enclave-agent init: ${err.problems.length > 1 ? `invalid configuration:\n  ${err.problems.join('\n  ')}` : err.message}\n`);
      return 2;
    }
    stderr(`enclave-agent init: ${err.code}: ${err.message}\n`);
    return 1;
  }
}
