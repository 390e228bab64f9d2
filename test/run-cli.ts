/**
 * Runs the built CLI (dist/agent/cli.js, built once per run by test/global-setup.ts) as a child process
 * without blocking the test's event loop, which may host the agent the CLI talks to. NODE_OPTIONS is
 * dropped (vitest's loader flags are not the CLI's), and the child is killed after `timeoutMs`.
 */

import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = join(dirname(dirname(fileURLToPath(import.meta.url))), 'dist', 'agent', 'cli.js');

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: readonly string[], options: { cwd: string; timeoutMs: number }): Promise<CliRun> {
  return runNode(CLI, args, options);
}

/** `node script args` to its end, as runCli runs the CLI (a written bundle, say). */
export function runNode(script: string, args: readonly string[], options: { cwd?: string; timeoutMs: number }): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const child = spawn(process.execPath, [script, ...args], { ...(options.cwd !== undefined ? { cwd: options.cwd } : {}), env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
