/**
 * What every `enclave-agent` subcommand is (`Command`) and how one is run (`runCommand`): strict flag
 * parsing, help, and the one rule for exit statuses (0 success, 1 a failure with its code, 2 a usage
 * error). Kept apart from the commands themselves so that `run` (agent/run-command.ts) can start without
 * loading the others (agent/cli.ts; issue 16: start-up time and idle memory).
 */

import type { ParseArgsConfig } from 'node:util';
import { parseCommandArgv, wantsHelp } from './command-argv.js';
import { AgentError } from './errors.js';
import { NsmError } from '../nsm/runtime.js';

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  positionals?: { min: number; max: number };
  /** A command made of subcommands (`eif build`, `eif describe`): the first argument picks one; `run` is unused. */
  subcommands?: Command[];
  run(values: Record<string, string | boolean | (string | boolean)[] | undefined>, positionals: string[]): Promise<number>;
}

export function usage(message: string): AgentError {
  return new AgentError('AGENT_USAGE', message);
}

export async function runCommand(command: Command, argv: string[]): Promise<number> {
  if (command.subcommands !== undefined) {
    const [name, ...rest] = argv;
    if (name === undefined || name === '--help' || name === '-h') {
      process.stdout.write(`${command.usage}\n`);
      return name === undefined ? 2 : 0;
    }
    const sub = command.subcommands.find((c) => c.name === `${command.name} ${name}`);
    if (sub === undefined) {
      process.stderr.write(`enclave-agent ${command.name}: unknown subcommand ${JSON.stringify(name)}\n\n${command.usage}\n`);
      return 2;
    }
    return runCommand(sub, rest);
  }
  if (wantsHelp(argv)) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  try {
    const { values, positionals } = parseCommandArgv(argv, command.options, command.positionals);
    return await command.run(values, positionals);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (err instanceof AgentError && err.code === 'AGENT_CONFIG') {
      process.stderr.write(`enclave-agent ${command.name}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof AgentError && err.code === 'AGENT_USAGE') {
      process.stderr.write(`enclave-agent ${command.name}: ${err.message}\n\n${command.usage}\n`);
      return 2;
    }
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`enclave-agent ${command.name}: ${(err as Error).message}\n\n${command.usage}\n`);
      return 2;
    }
    if (err instanceof NsmError && err.code === 'NSM_BAD_ARGUMENT') {
      process.stderr.write(`enclave-agent ${command.name}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof NsmError || err instanceof AgentError) {
      process.stderr.write(`enclave-agent ${command.name}: ${err.code}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
