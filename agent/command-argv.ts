/**
 * How the CLI reads a subcommand's argv (agent/commands.ts `runCommand`), as one function, so that init's
 * cross-check (agent/init-cross-check.ts) reads the argv of the children it will start exactly as those
 * children will: `--help` or `-h` anywhere means help, otherwise node:util parseArgs, strict, with the
 * positionals counted. Throws parseArgs's own errors (`ERR_PARSE_ARGS_*`) or `AGENT_USAGE`.
 */

import { parseArgs, type ParseArgsConfig } from 'node:util';

import { AgentError } from './errors.js';

export type CommandOptions = NonNullable<ParseArgsConfig['options']>;
export type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** True when the argv asks for help: the command prints its usage and exits 0 instead of running. */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/** The flag values and positionals of one subcommand's argv (without the subcommand's name). */
export function parseCommandArgv(
  argv: readonly string[],
  options: CommandOptions,
  positionals: { min: number; max: number } = { min: 0, max: 0 },
): { values: FlagValues; positionals: string[] } {
  const parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  const { min, max } = positionals;
  const count = parsed.positionals.length;
  if (count < min || count > max) throw new AgentError('AGENT_USAGE', `expected ${min === max ? min : `${min}-${max}`} argument(s), got ${count}`);
  return { values: parsed.values as FlagValues, positionals: parsed.positionals };
}
