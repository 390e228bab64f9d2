/**
 * The benchmarks' child processes: forked Node roles (bench/lib/roles.mjs) and native servers (Caddy,
 * nginx, the agent's CLI), CPU pinning with taskset(1), CPU time per process, and one watchdog that
 * SIGKILLs every child this process started if the run overstays its budget or the parent dies.
 *
 * It must not signal any process it did not start.
 */

import { execFileSync, fork, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { ROLE_SCRIPT } from './roles.mjs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (getconf CLK_TCK; 100 on Linux). */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU sets for --pin auto: the load generator on CPU 0, the servers on the rest; null when pinning is
 * off or impossible (no taskset, one CPU). `taskset -a` moves every thread (libuv's pool, V8's helpers).
 */
export function cpuLayout(mode, name) {
  if (mode === 'off') return null;
  if (mode !== 'auto') {
    process.stderr.write(`${name}: --pin expected auto or off, got ${JSON.stringify(mode)}\n`);
    process.exit(2);
  }
  const count = availableParallelism();
  if (count < 2) return null;
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
  } catch {
    return null;
  }
  return { client: '0', servers: count === 2 ? '1' : `1-${count - 1}` };
}

export function pin(pid, cpus) {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/** utime + stime of a proc(5) stat file, in ms; 10 ms resolution. */
function statCpuMs(path) {
  const stat = readFileSync(path, 'utf8');
  // The command name is in parentheses and may hold spaces: the fields after it start at ") ".
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of proc(5), 12 and 13 counting from the state (field 3).
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** CPU time (user + system, every thread) of a process from /proc, in ms; 10 ms resolution. */
export function procCpuMs(pid) {
  return statCpuMs(`/proc/${pid}/stat`);
}

/**
 * CPU time of a process's main thread alone (/proc/PID/task/PID/stat), in ms. The rest is its other
 * threads: in Node, V8's optimizing compiler and garbage-collection helpers, and libuv's pool.
 */
export function procMainThreadCpuMs(pid) {
  return statCpuMs(`/proc/${pid}/task/${pid}/stat`);
}

/** Resident set size from /proc/<pid>/status, in bytes. */
export function procRssBytes(pid) {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match === null ? NaN : Number(match[1]) * 1024;
}

/** A free TCP port on 127.0.0.1 for a server that cannot listen on port 0 and report it (Caddy, nginx). */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Every child of one run. `watchdogMs` bounds the whole run: past it every child gets SIGKILL and this
 * process exits 1. The children are also killed when this process exits for any reason it can see.
 */
/**
 * The Node flags to start the agent with: BENCH_AGENT_NODE_FLAGS when set (space-separated; empty for
 * Node's defaults, for an A/B run of the same benchmark), else what the agent ships with (agent/node-flags.ts).
 */
export async function agentNodeFlags() {
  const override = process.env.BENCH_AGENT_NODE_FLAGS;
  if (override !== undefined) return override.split(' ').filter((flag) => flag !== '');
  return (await import('../../dist/agent/node-flags.js')).AGENT_NODE_FLAGS;
}

export function createProcessGroup({ name, watchdogMs, layout }) {
  const children = new Set();
  const killAll = () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const watchdog = setTimeout(() => {
    process.stderr.write(`${name}: still running after ${watchdogMs} ms; giving up\n`);
    killAll();
    process.exit(1);
  }, watchdogMs);
  watchdog.unref();
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      killAll();
      process.exit(1);
    });
  }

  function track(child) {
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  }

  /**
   * Forks a role of bench/lib/roles.mjs on the servers' CPUs; resolves with its first IPC message. The
   * agent runs with agentNodeFlags().
   */
  async function forkRole(role, options = {}, extraExecArgv = []) {
    const execArgv = role === 'agent' ? [...(await agentNodeFlags()), ...extraExecArgv] : extraExecArgv;
    const args = ['--role', role];
    for (const [key, value] of Object.entries(options)) if (value !== undefined) args.push(`--${key}`, String(value));
    const child = track(fork(ROLE_SCRIPT, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv }));
    if (layout !== null) pin(child.pid, layout.servers);
    return new Promise((resolve, reject) => {
      child.once('message', (message) => resolve({ child, pid: child.pid, cpuMs: async () => (await ask(child, 'cpu')).cpuMs, nsmCpuMs: async () => (await ask(child, 'nsm-cost')).nsmCpuMs, ...message }));
      child.once('exit', (code) => reject(new Error(`${role} exited with ${code}`)));
    });
  }

  /**
   * Spawns a native server on the servers' CPUs (through `taskset -c`, which execs it: same pid, and
   * a Go runtime sizes GOMAXPROCS from the mask it starts with). Keeps the tail of its stderr and stdout.
   */
  function spawnServer(command, args, options = {}) {
    const argv = layout === null ? [command, ...args] : ['taskset', '-c', layout.servers, command, ...args];
    const child = track(spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...options }));
    let output = '';
    const keep = (chunk) => {
      output = (output + chunk).slice(-8192);
    };
    child.stdout.setEncoding('utf8').on('data', keep);
    child.stderr.setEncoding('utf8').on('data', keep);
    return { child, pid: child.pid, output: () => output, cpuMs: () => Promise.resolve(procCpuMs(child.pid)) };
  }

  /** Asks forked roles to exit (SIGKILL after 5 s) and terminates spawned servers; then ends the watchdog. */
  async function stopAll() {
    await Promise.all(
      [...children].map(
        (child) =>
          new Promise((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            if (child.connected) child.send('exit');
            else child.kill('SIGTERM');
          }),
      ),
    );
    clearTimeout(watchdog);
  }

  return { forkRole, spawnServer, track, stopAll };
}

/** One question to a forked role ('cpu', or 'nsm-cost' for the agent) and its answer. */
function ask(child, question) {
  return new Promise((resolve) => {
    child.once('message', (message) => resolve(message));
    child.send(question);
  });
}
