#!/usr/bin/env node
/**
 * `enclave-agent`: the command line. Each subcommand is a small function from parsed flags to an exit
 * status; the commands themselves live beside the code they drive. Exit statuses follow one rule:
 * 0 success, 1 a verification or runtime failure (its code printed), 2 a usage error.
 */

import { commands, runCommand } from './commands.js';

const HELP = `enclave-agent: runtime agent for AWS Nitro Enclaves

Usage: enclave-agent <command> [options]

Commands:
${commands.map((c) => `  ${c.name.padEnd(16)} ${c.summary}`).join('\n')}

Run 'enclave-agent <command> --help' for a command's options.
`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP);
    return name === undefined ? 2 : 0;
  }
  const command = commands.find((c) => c.name === name);
  if (command === undefined) {
    process.stderr.write(`enclave-agent: unknown command "${name}"\n\n${HELP}`);
    return 2;
  }
  return runCommand(command, rest);
}

main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (err: unknown) => {
    process.stderr.write(`enclave-agent: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
