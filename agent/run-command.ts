/**
 * `enclave-agent run`, the agent itself: what init spawns in the enclave and what the image measures for
 * start-up time and idle memory (bench/startup.mjs). It imports only what the agent needs; the other
 * commands (agent/commands.ts) and their dependencies are not loaded for it (agent/cli.ts).
 */

import { once } from 'node:events';
import { startAgent } from './agent.js';
import type { Command } from './command-runner.js';
import { loadConfig, settingFlags, SETTINGS } from './config.js';
import { createLogger } from './log.js';
import { loadManifest } from './manifest.js';
import { openNsm } from '../nsm/runtime.js';

/** Runs the agent from a configuration until SIGTERM or SIGINT, then shuts down gracefully. */
export async function runAgent(flags: Record<string, unknown>, env: Record<string, string | undefined>, beforeStop?: () => Promise<void>): Promise<number> {
  const config = loadConfig(flags, env);
  const logger = createLogger({ level: config.logLevel });
  const manifest = await loadManifest(config.manifestPath);
  const nsm = await openNsm({
    mode: config.nsm,
    devicePath: config.nsmDevicePath,
    ...(config.mockPkiDir !== null ? { mockPkiDir: config.mockPkiDir } : {}),
    logger,
  });
  // Listening for the signals before the agent starts: a supervisor may send SIGTERM the moment it is ready.
  const stopSignal = Promise.race([once(process, 'SIGINT').then(() => 'SIGINT'), once(process, 'SIGTERM').then(() => 'SIGTERM')]);
  const agent = await startAgent({ config, nsm, manifest, logger });
  const signal = await stopSignal;
  logger.info({ signal }, 'signal received');
  await agent.stop();
  await beforeStop?.();
  await nsm.close();
  return 0;
}

export const run: Command = {
  name: 'run',
  summary: 'run the agent (configuration from flags and environment)',
  usage:
    'Usage: enclave-agent run --nsm device|mock|mock-signed-device --manifest FILE [options]\n\n' +
    'Every setting is a flag and an environment variable (flags win):\n' +
    SETTINGS.map((s) => `  ${`${s.flag} ${s.boolean ? 'true|false' : 'VALUE'}`.padEnd(34)} ${s.env.join(', ')}${s.default ? ` (default ${s.default})` : s.default === undefined ? ' (required)' : ''}`).join('\n') +
    '\n\nThe whole configuration is checked at start; every problem is reported at once (exit 2).',
  options: settingFlags(),
  async run(values) {
    return runAgent(values, process.env);
  },
};
