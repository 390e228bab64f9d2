/**
 * Closed-loop load for the benchmarks: `clients` loops, each one request at a time, until a deadline or
 * a request count, with latencies, errors by kind and CPU time of this process and of the servers
 * measured around the phase; and the summary of several rounds of one path. No clock reads outside a
 * phase, so nothing here depends on the machine's speed except the numbers it returns.
 */

import { cpus, loadavg, totalmem } from 'node:os';

/**
 * One phase. `run(i)` is client i's request (it throws on any wrong answer); `cpu` maps names to
 * functions returning a process's CPU time in ms, read before and after.
 */
export async function load({ run, clients, durationMs, maxRequests = Infinity, cpu = {} }) {
  const latencies = [];
  const errors = new Map();
  const samples = new Map();
  let issued = 0;
  const before = {};
  for (const [key, read] of Object.entries(cpu)) before[key] = await read();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + durationMs;
  async function client(i) {
    while (issued < maxRequests && performance.now() < deadline) {
      issued += 1;
      const t0 = performance.now();
      try {
        await run(i);
        latencies.push(performance.now() - t0);
      } catch (err) {
        const key = err.code ?? err.message;
        errors.set(key, (errors.get(key) ?? 0) + 1);
        if (!samples.has(key)) samples.set(key, String(err.cause?.message ?? err.message).slice(0, 200));
      }
    }
  }
  await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
  const elapsedS = (performance.now() - started) / 1000;
  const own = process.cpuUsage(cpuBefore);
  const cpuMs = {};
  for (const [key, read] of Object.entries(cpu)) cpuMs[key] = (await read()) - before[key];
  return { latencies, errors, samples, issued, elapsedS, clientCpuMs: (own.user + own.system) / 1000, cpuMs };
}

/** The q-quantile of sorted values (nearest rank); NaN for none. */
export function quantile(sorted, q) {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/**
 * Rounds of one path pooled: successes over total time, percentiles over all latencies, CPU per
 * request over all requests issued (`cpuMs.<name>` per request for each measured process).
 */
export function summarise(rounds) {
  const latencies = rounds.flatMap((r) => r.latencies).sort((x, y) => x - y);
  const errors = new Map();
  for (const r of rounds) for (const [key, count] of r.errors) errors.set(key, (errors.get(key) ?? 0) + count);
  const samples = {};
  for (const r of rounds) for (const [key, message] of r.samples) samples[key] ??= message;
  const issued = rounds.reduce((sum, r) => sum + r.issued, 0);
  const cpuMs = {};
  for (const key of Object.keys(rounds[0]?.cpuMs ?? {})) cpuMs[key] = rounds.reduce((sum, r) => sum + r.cpuMs[key], 0) / Math.max(1, issued);
  return {
    requests: issued,
    errors: [...errors.values()].reduce((x, y) => x + y, 0),
    errorKinds: Object.fromEntries(errors),
    /** The first message of each kind of error. */
    errorSamples: samples,
    reqPerS: latencies.length / rounds.reduce((sum, r) => sum + r.elapsedS, 0),
    perRound: rounds.map((r) => r.latencies.length / r.elapsedS),
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    clientCpuMs: rounds.reduce((sum, r) => sum + r.clientCpuMs, 0) / Math.max(1, issued),
    cpuMs,
  };
}

/** The `machine:` line every benchmark ends with: Node, CPU, memory, and the load average at start and end. */
export function machineLine(loadAtStart) {
  const machine = describeMachine();
  return `machine: node ${machine.node}, ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB.toFixed(1)} GiB, ${machine.platform}, load average ${loadAtStart.toFixed(2)} at start, ${machine.loadAverage.toFixed(2)} at end`;
}

/** The machine, for the last lines of a run. */
export function describeMachine() {
  return {
    node: process.version,
    cpu: cpus()[0]?.model?.trim() ?? 'unknown CPU',
    cores: cpus().length,
    memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    platform: `${process.platform}/${process.arch}`,
    loadAverage: loadavg()[0],
  };
}
