#!/usr/bin/env -S node --initial-old-space-size=64
/**
 * `enclave-agent`: the command line. Each subcommand is a small function from parsed flags to an exit
 * status; the commands themselves live beside the code they drive. Exit statuses follow one rule:
 * 0 success, 1 a verification or runtime failure (its code printed), 2 a usage error.
 */

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  // The agent itself (what init spawns) loads only its own modules: the other commands bring the verifier,
  // the mock PKI, the STEVE client, the bridges and init with their dependencies. In the image's split
  // bundle that is most of the agent's module loading (128 ms of 188 ms to ready before, 46 after) and
  // 13 MiB at idle (issue 16, bench/startup.mjs).
  if (name === 'run') {
    const [{ runCommand }, { run }] = await Promise.all([import('./command-runner.js'), import('./run-command.js')]);
    return runCommand(run, rest);
  }
  const { commands, runCommand } = await import('./commands.js');
  const help = `enclave-agent: runtime agent for AWS Nitro Enclaves

Usage: enclave-agent <command> [options]

Commands:
${commands.map((c) => `  ${c.name.padEnd(16)} ${c.summary}`).join('\n')}

Run 'enclave-agent <command> --help' for a command's options.
`;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help);
    return name === undefined ? 2 : 0;
  }
  const command = commands.find((c) => c.name === name);
  if (command === undefined) {
    process.stderr.write(`enclave-agent: unknown command "${name}"\n\n${help}`);
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
