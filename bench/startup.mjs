/**
 * The agent's start-up time and idle memory, as the enclave image runs it: the esbuild bundle
 * (image/build-bundle.mjs) with the native addon beside it, `run --nsm device --deployment production`.
 * There is no /dev/nsm here, so every agent is started with the bench-only preload
 * bench/lib/fake-nsm-device.mjs (`node --import`), which loads the real addon and answers the device's
 * CBOR protocol in process; it says so on the agent's stderr and this script says so in its output.
 *
 * For each of --runs spawns: the time from spawn until the public port answers GET /healthz with 200 (the
 * address from the "agent listening" log line), VmRSS a second after that, at idle, and the preload's
 * timeline (Node's bootstrap, module evaluation, addon load, device open, key generation, listen). Then
 * the medians against the goals of issue 16 as PASS/MISS lines; a miss is reported, not an error. With
 * --profile, one more run under --cpu-prof: self time up to ready by bundle input, by package.
 * Plain JavaScript over the build (`npm run build`: the fake device's codec comes from dist/); loopback
 * only; every wait bounded; a watchdog kills the agent if anything hangs. Exit status 1 when an agent
 * fails to start.
 *
 *   node bench/startup.mjs [--runs 9] [--bundle DIR] [--node-option FLAG]... [--profile] [--json FILE]
 *
 * --bundle DIR   an existing bundle directory (enclave-agent.mjs, package.json and build/Release/ with
 *                the addon, as `make initramfs` writes dist/image/agent/); default: built now into a
 *                temporary directory with image/build-bundle.mjs and the addon from build/Release/.
 * --node-option  a Node flag for the agent's process (repeatable), to measure a V8 setting; after the
 *                flags the agent ships with (agent/node-flags.ts; BENCH_AGENT_NODE_FLAGS replaces those).
 */

import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { positiveArg } from './lib/args.mjs';
import { agentNodeFlags } from './lib/processes.mjs';

const NAME = 'bench/startup';
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FAKE_DEVICE = join(ROOT, 'bench', 'lib', 'fake-nsm-device.mjs');
/** Issue 16's goals for the image's bundle on the device path. */
const GOAL_READY_MS = 150;
const GOAL_IDLE_RSS_BYTES = 64 * 2 ** 20;
/** How long the agent idles after ready before its RSS is read. */
const IDLE_MS = 1000;
/** One start-up (spawn to /healthz 200) may take this long before the run fails. */
const STARTUP_TIMEOUT_MS = 15_000;
/** Each /healthz poll's deadline, and the pause between polls while the port answers anything else. */
const HEALTH_TIMEOUT_MS = 2000;
const HEALTH_RETRY_MS = 2;
/** The agent's graceful shutdown deadline, and how long after SIGTERM it may take to exit before SIGKILL. */
const SHUTDOWN_MS = 1000;
const EXIT_TIMEOUT_MS = 5000;
const MAX_RUNS = 100;

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '9' },
    bundle: { type: 'string' },
    'node-option': { type: 'string', multiple: true, default: [] },
    profile: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
  strict: true,
});
const RUNS = positiveArg(flags.runs, '--runs', NAME, { integer: true });
if (RUNS > MAX_RUNS) {
  process.stderr.write(`${NAME}: --runs expected at most ${MAX_RUNS}, got ${RUNS}\n`);
  process.exit(2);
}
// The agent's own flags first, as image/init.sh starts it (BENCH_AGENT_NODE_FLAGS replaces them), then --node-option's.
const NODE_OPTIONS = [...(await agentNodeFlags()), ...flags['node-option']];

const children = new Set();
const watchdog = setTimeout(() => {
  process.stderr.write(`${NAME}: watchdog: still running; killing the agents\n`);
  for (const child of children) child.kill('SIGKILL');
  process.exit(1);
}, (RUNS + 2) * (STARTUP_TIMEOUT_MS + IDLE_MS + EXIT_TIMEOUT_MS) + 120_000);
watchdog.unref();

const median = (values) => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const ms = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const mib = (bytes) => (Number.isFinite(bytes) ? (bytes / 2 ** 20).toFixed(1) : '-');

function rssBytes(pid) {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match === null ? NaN : Number(match[1]) * 1024;
}

/** The bundle directory: --bundle, or a fresh build with the addon beside it (image/README.md layout). */
function prepareBundle(dir) {
  if (flags.bundle !== undefined) {
    const bundle = resolve(flags.bundle);
    for (const file of ['enclave-agent.mjs', 'package.json', 'build/Release/enclave_native.node']) {
      if (!existsSync(join(bundle, file))) throw new Error(`--bundle ${bundle} has no ${file}`);
    }
    return { bundle, built: false };
  }
  const bundle = join(dir, 'agent');
  execFileSync(process.execPath, [join(ROOT, 'image', 'build-bundle.mjs'), bundle], { stdio: 'ignore', timeout: 120_000 });
  mkdirSync(join(bundle, 'build', 'Release'), { recursive: true });
  copyFileSync(join(ROOT, 'build', 'Release', 'enclave_native.node'), join(bundle, 'build', 'Release', 'enclave_native.node'));
  return { bundle, built: true };
}

/** GET /healthz once: the status code, or a rejection after HEALTH_TIMEOUT_MS. */
function healthz(address) {
  return new Promise((resolve, reject) => {
    const req = get(`http://${address}/healthz`, { timeout: HEALTH_TIMEOUT_MS, agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode));
    });
    req.once('timeout', () => req.destroy(new Error('healthz timed out')));
    req.once('error', reject);
  });
}

/**
 * One agent: spawn, ready (healthz 200), idle RSS, SIGTERM, exit; its timeline from the preload's line on
 * stderr. `extraNodeArgs` go before the preload (--cpu-prof for --profile).
 */
async function startOnce({ bundle, manifest, extraNodeArgs = [], idle = true }) {
  const args = [
    ...NODE_OPTIONS,
    ...extraNodeArgs,
    '--import',
    FAKE_DEVICE,
    join(bundle, 'enclave-agent.mjs'),
    'run',
    '--nsm',
    'device',
    '--deployment',
    'production',
    '--manifest',
    manifest,
    '--listen',
    '127.0.0.1:0',
    '--internal-listen',
    '127.0.0.1:0',
    // Nothing listens there: start-up never contacts the app, and /healthz does not either.
    '--upstream',
    'http://127.0.0.1:9',
    '--shutdown-timeout-ms',
    String(SHUTDOWN_MS),
  ];
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    const address = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent not listening after ${STARTUP_TIMEOUT_MS} ms\n${stdout}${stderr}`)), STARTUP_TIMEOUT_MS);
      child.stdout.setEncoding('utf8').on('data', (chunk) => {
        stdout += chunk;
        for (const line of stdout.split('\n')) {
          if (!line.includes('"agent listening"')) continue;
          clearTimeout(timer);
          resolve(JSON.parse(line).addresses.public);
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`agent exited (${code ?? signal}) before listening\n${stdout}${stderr}`));
      });
    });
    for (;;) {
      const status = await healthz(address);
      if (status === 200) break;
      if (performance.now() - t0 > STARTUP_TIMEOUT_MS) throw new Error(`agent /healthz answered ${status}`);
      await new Promise((resolve) => setTimeout(resolve, HEALTH_RETRY_MS));
    }
    const readyMs = performance.now() - t0;
    let idleRssBytes = NaN;
    if (idle) {
      await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
      idleRssBytes = rssBytes(child.pid);
    }
    return { readyMs, idleRssBytes, stdout, child, exited, stderrText: () => stderr };
  } finally {
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), EXIT_TIMEOUT_MS);
    await exited;
    clearTimeout(killer);
    children.delete(child);
  }
}

/** The preload's timeline line: [[mark, ms since the process started], ...] in time order. */
function timeline(stderr) {
  const line = stderr.split('\n').find((l) => l.startsWith('FAKE-NSM-TIMELINE '));
  if (line === undefined) throw new Error(`no timeline from the preload:\n${stderr}`);
  return JSON.parse(line.slice('FAKE-NSM-TIMELINE '.length));
}

/** Self time up to the last 'listening' mark, by bundle input (esbuild's `// path` lines), by package. */
function profileByPackage(profilePath, bundle, untilMs) {
  const profile = JSON.parse(readFileSync(profilePath, 'utf8'));
  // Each output file of the bundle (the entry and its chunks): the lines where each input starts.
  const files = new Map();
  for (const name of readdirSync(bundle).filter((f) => f.endsWith('.mjs'))) {
    const starts = [];
    readFileSync(join(bundle, name), 'utf8').split('\n').forEach((line, index) => {
      const match = /^\/\/ ((?:node_modules\/)?\S+\.(?:[cm]?js|ts|json))$/.exec(line);
      if (match !== null) starts.push([index, match[1]]);
    });
    files.set(new URL(`file://${join(bundle, name)}`).href, starts);
  }
  const inputAt = (starts, lineNumber) => {
    let lo = 0;
    let hi = starts.length - 1;
    let found = '(banner)';
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid][0] <= lineNumber) {
        found = starts[mid][1];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  };
  const packageOf = (input) => {
    const match = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
    return match !== null ? match[1] : input === '(banner)' ? 'bundle: esbuild runtime (compiles CommonJS modules on first require)' : `ours: ${input.split('/')[0]}/`;
  };
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  // Self time per profile node, up to untilMs.
  const selfMs = new Map();
  let t = profile.startTime;
  const end = profile.startTime + untilMs * 1000;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    if (t > end) break;
    selfMs.set(profile.samples[i], (selfMs.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i + 1] ?? 0) / 1000);
  }
  const byKey = new Map();
  const add = (key, value) => byKey.set(key, (byKey.get(key) ?? 0) + value);
  for (const [id, self] of selfMs) {
    const { callFrame: frame, positionTicks } = nodes.get(id);
    const starts = files.get(frame.url);
    if (starts !== undefined) {
      // The bundle's top level is one function holding every ES module's top-level statements: split a
      // frame's time by the lines its samples hit (positionTicks, 1-based), not by where it starts.
      const ticks = positionTicks ?? [{ line: frame.lineNumber + 1, ticks: 1 }];
      const total = ticks.reduce((sum, p) => sum + p.ticks, 0);
      for (const p of ticks) add(packageOf(inputAt(starts, p.line - 1)), (self * p.ticks) / total);
    } else if (frame.url === '') add(frame.functionName || '(native)', self);
    else if (frame.url.startsWith('node:')) add(`node: ${frame.functionName || '(anonymous)'} (${frame.url})`, self);
    else add(frame.url.includes('fake-nsm-device') ? 'bench preload' : frame.url, self);
  }
  return [...byKey.entries()].sort((a, b) => b[1] - a[1]);
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'enclave-agent-startup-'));
  let failed = false;
  try {
    const { bundle, built } = prepareBundle(dir);
    const { DEMO_MANIFEST_JSON } = await import('../dist/agent/demo/manifest.js');
    const manifest = join(dir, 'manifest.json');
    writeFileSync(manifest, DEMO_MANIFEST_JSON);
    const outputs = readdirSync(bundle).filter((f) => f.endsWith('.mjs'));
    const bundleBytes = outputs.reduce((sum, f) => sum + readFileSync(join(bundle, f)).length, 0);
    process.stdout.write(`${NAME}: ${join(bundle, 'enclave-agent.mjs')} (${outputs.length} files with its chunks, ${(bundleBytes / 2 ** 20).toFixed(2)} MiB${built ? ', built now with image/build-bundle.mjs' : ''})\n`);
    process.stdout.write(`${NAME}: NSM: --nsm device --deployment production, the device answered by the FAKE device of bench/lib/fake-nsm-device.mjs (node --import; no /dev/nsm here)\n`);
    process.stdout.write(`${NAME}: node ${process.version}${NODE_OPTIONS.length > 0 ? `, agent node options: ${NODE_OPTIONS.join(' ')}` : ''}; ${RUNS} runs\n\n`);

    // One unmeasured start: the page cache holds node, the bundle and the addon for every measured run.
    await startOnce({ bundle, manifest, idle: false });
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      const run = await startOnce({ bundle, manifest });
      const stderr = run.stderrText();
      if (!stderr.includes('FAKE NSM DEVICE')) throw new Error(`the agent did not open the fake device:\n${stderr}`);
      runs.push({ readyMs: run.readyMs, idleRssBytes: run.idleRssBytes, timeline: timeline(stderr) });
      const last = runs.at(-1);
      process.stdout.write(`run ${String(i + 1).padStart(2)}: ready ${ms(last.readyMs).padStart(6)} ms   idle RSS ${mib(last.idleRssBytes).padStart(5)} MiB\n`);
    }

    // The breakdown: each step's median duration, from the previous mark (the first run's order).
    process.stdout.write('\nbreakdown (median ms; each line is the time since the line before, in the agent process):\n');
    // A mark may repeat ('listening' once per server): the k-th of a name matches the k-th in each run.
    const occurrence = (marks, index) => marks.slice(0, index).filter(([name]) => name === marks[index][0]).length;
    const names = runs[0].timeline;
    const steps = names.map(([step], index) => {
      const k = occurrence(names, index);
      const durations = runs.map((run) => {
        const at = run.timeline.findIndex(([name], i) => name === step && occurrence(run.timeline, i) === k);
        return at < 0 ? NaN : run.timeline[at][1] - (at === 0 ? 0 : run.timeline[at - 1][1]);
      });
      return { step, medianMs: median(durations) };
    });
    for (const { step, medianMs } of steps) process.stdout.write(`  ${ms(medianMs).padStart(7)}  ${step}\n`);
    const lastMark = median(runs.map((run) => run.timeline.at(-1)[1]));
    const readyMs = median(runs.map((run) => run.readyMs));
    process.stdout.write(`  ${ms(readyMs - lastMark).padStart(7)}  spawn, the log line and /healthz (the rest of the spawn-to-200 time)\n`);

    let profile = null;
    if (flags.profile) {
      const profileDir = join(dir, 'profile');
      const run = await startOnce({ bundle, manifest, extraNodeArgs: ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-interval', '200'], idle: false });
      const marks = timeline(run.stderrText());
      const untilMs = marks.at(-1)[1];
      const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
      profile = profileByPackage(join(profileDir, file), bundle, untilMs).slice(0, 20);
      process.stdout.write(`\nprofile (one run under --cpu-prof, sampled every 0.2 ms, up to 'listening' at ${ms(untilMs)} ms; self time by bundle input):\n`);
      for (const [key, selfMs] of profile) process.stdout.write(`  ${ms(selfMs).padStart(7)}  ${key}\n`);
    }

    const idleRssBytes = median(runs.map((run) => run.idleRssBytes));
    const verdict = (ok) => (ok ? 'PASS' : 'MISS');
    process.stdout.write('\n');
    process.stdout.write(`${verdict(readyMs < GOAL_READY_MS)} ready (spawn to /healthz 200), median of ${RUNS}: ${ms(readyMs)} ms (goal < ${GOAL_READY_MS} ms)\n`);
    process.stdout.write(`${verdict(idleRssBytes < GOAL_IDLE_RSS_BYTES)} idle RSS (VmRSS ${IDLE_MS} ms after ready), median of ${RUNS}: ${mib(idleRssBytes)} MiB (goal < ${mib(GOAL_IDLE_RSS_BYTES)} MiB)\n`);
    if (flags.json !== undefined) {
      writeFileSync(flags.json, `${JSON.stringify({ node: process.version, nodeOptions: NODE_OPTIONS, bundleBytes, runs, steps, readyMs, idleRssBytes, profile, goals: { readyMs: GOAL_READY_MS, idleRssBytes: GOAL_IDLE_RSS_BYTES } }, null, 2)}\n`);
    }
  } catch (err) {
    process.stderr.write(`${NAME}: ${err.stack ?? err}\n`);
    failed = true;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.exitCode = failed ? 1 : 0;
}

await main();
