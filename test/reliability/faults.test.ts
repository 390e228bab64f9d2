/**
 * Fault injection under load (scenarios.ts): the real agent (startStack: mock NSM in process) in front
 * of an app that refuses, hangs, resets mid-response or sends over 32 MiB, with clients aborting
 * mid-upload, and with the NSM failing or answering after the deadline. K = 8 concurrent STEVE clients
 * run requests before, during and after each fault; each scenario's verdict must be empty: the exact
 * statuses and codes during the fault, recovery once it ends, no retries, fds and memory back to their
 * baseline.
 *
 * The last block runs the same checker against agents whose fault handling is switched off through the
 * existing injection points, and asserts the checker reports them: that is the evidence that this suite
 * fails when a fault handling path is removed.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openMockNsm } from '../../nsm/index.js';
import { DEFAULT_MAX_BUFFERED_BYTES } from '../../steve/server/index.js';
import { silentLogger } from '../mock-documents.js';
import { mockPki, startStack } from '../steve/harness.js';
import { cborStallBody, createFaultyNsm, gcAvailable, startFaultyApp } from './rig.js';
import { ABORTED_REQUEST_BYTES_AT_LEAST, ATTACK_CONFIG, ATTACKS, CBOR_STALL_BODY_BYTES, DEFAULT_CHECK, SCENARIOS, checkScenario, summary, type Env, type Scenario, type Verdict } from './scenarios.js';

/** The app gets this long for its headers (the harness's `steve.upstreamTimeoutMs`): hangs end in 504 quickly. */
const UPSTREAM_TIMEOUT_MS = 400;
/** The NSM deadline (config nsmTimeoutMs) and how long the slow NSM takes: well past it. */
const NSM_TIMEOUT_MS = 300;
const NSM_SLOW_MS = 900;

async function startEnv(options: { upstreamTimeoutMs: number; nsmTimeoutMs: number; slowMs: number; config?: Record<string, number> }): Promise<Env & { stop(): Promise<void> }> {
  const app = await startFaultyApp();
  const inner = openMockNsm({ pki: mockPki(), logger: silentLogger });
  const nsm = createFaultyNsm(inner, options.slowMs);
  const stack = await startStack({
    suite: 'X25519',
    upstream: app.url,
    nsm: nsm.nsm,
    config: { nsmTimeoutMs: options.nsmTimeoutMs, ...options.config },
    steve: { upstreamTimeoutMs: options.upstreamTimeoutMs },
  });
  return {
    stack,
    app,
    nsm,
    async stop() {
      app.fault = 'none';
      nsm.fault = 'none';
      await stack.stop();
      await app.close();
      await nsm.idle();
      await inner.close();
    },
  };
}

const report = (verdict: Verdict): void => void process.stdout.write(`[reliability] ${summary(verdict)}\n`);

describe('faults under load: the specified answers, recovery, resources back to baseline', () => {
  let env: Env & { stop(): Promise<void> };
  beforeAll(async () => {
    env = await startEnv({ upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS, nsmTimeoutMs: NSM_TIMEOUT_MS, slowMs: NSM_SLOW_MS });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('runs with --expose-gc (memory is compared after a forced collection)', () => {
    expect(gcAvailable).toBe(true);
  });

  it('the upload-abort scenario sends more than the request-body budget', () => {
    expect(ABORTED_REQUEST_BYTES_AT_LEAST).toBeGreaterThan(DEFAULT_MAX_BUFFERED_BYTES);
  });

  it.each(Object.entries(SCENARIOS) as Array<[string, Scenario]>)('%s', async (_key, scenario) => {
    const verdict = await checkScenario(env, scenario);
    report(verdict);
    expect(verdict.problems).toEqual([]);
  });

  it('the agent stayed healthy and counted the upstream failures', async () => {
    const health = await fetch(`${env.stack.base}/healthz`);
    expect(health.status).toBe(200);
    const metrics = await (await fetch(`${env.stack.internal}/metrics`)).text();
    for (const kind of ['timeout', 'too_large']) expect(metrics).toContain(`kind="${kind}"`);
  });
});

describe('a hostile client under load: the table, memory and event loop hold, and the service recovers', () => {
  let env: Env & { stop(): Promise<void> };
  beforeAll(async () => {
    env = await startEnv({ upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS, nsmTimeoutMs: NSM_TIMEOUT_MS, slowMs: NSM_SLOW_MS, config: { ...ATTACK_CONFIG } });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it.each(Object.entries(ATTACKS) as Array<[string, Scenario]>)('%s', async (_key, scenario) => {
    const verdict = await checkScenario(env, scenario);
    report(verdict);
    expect(verdict.problems).toEqual([]);
  });

  it('reports what refusing the expensive body costs, against random bytes of the same size (not judged)', async () => {
    const address = env.stack.agent.addresses.public;
    const times: Record<string, number[]> = { array: [], random: [] };
    for (let i = 0; i < 3; i++) {
      for (const kind of ['array', 'random'] as const) {
        const { label, ms } = await cborStallBody(address, kind, CBOR_STALL_BODY_BYTES);
        expect(label).toBe('cbor-stall: outer 400 protocol_error');
        times[kind]!.push(ms);
      }
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[1]!;
    process.stdout.write(`[reliability] a 32 MiB CBOR array is refused in ${median(times.array!).toFixed(1)} ms (median of 3), 32 MiB of random bytes in ${median(times.random!).toFixed(1)} ms: ratio ${(median(times.array!) / median(times.random!)).toFixed(2)}\n`);
  });
});

describe('the checker finds a removed fault handling path', () => {
  /**
   * Two agents with a fault path switched off through existing injection points (no product change):
   * - the upstream deadline: `steve.upstreamTimeoutMs: 0` reaches undici's Pool as headersTimeout and
   *   bodyTimeout 0, which undici documents as "disabled"; the hang scenario then gets no 504 and the
   *   clients give up instead;
   * - the NSM deadline: nsmTimeoutMs at the configuration's maximum (120 s) with an NSM that takes 3 s;
   *   the slow-NSM scenario then gets no 503 within the clients' deadline.
   * The checker is the same one the block above runs; it must report each, naming what went wrong.
   */
  const BROKEN_CHECK = { ...DEFAULT_CHECK, duringMs: 300, clientTimeoutMs: 1500 };

  it('no upstream deadline: the hang scenario fails (clients time out instead of getting 504)', async () => {
    const broken = await startEnv({ upstreamTimeoutMs: 0, nsmTimeoutMs: NSM_TIMEOUT_MS, slowMs: NSM_SLOW_MS });
    try {
      const verdict = await checkScenario(broken, SCENARIOS.appHangs, BROKEN_CHECK);
      report(verdict);
      expect(verdict.problems).toContainEqual(expect.stringContaining('"request: client timeout"'));
      expect(verdict.problems).toContain('during the fault: never "request: inner 504 upstream_timeout"');
    } finally {
      await broken.stop();
    }
  });

  it('no NSM deadline: the slow-NSM scenario fails (sessions time out instead of getting 503)', async () => {
    const broken = await startEnv({ upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS, nsmTimeoutMs: 120_000, slowMs: 3000 });
    try {
      const verdict = await checkScenario(broken, SCENARIOS.nsmSlow, BROKEN_CHECK);
      report(verdict);
      expect(verdict.problems).toContainEqual(expect.stringContaining('"session: client timeout"'));
      expect(verdict.problems).toContain('during the fault: never "session: outer 503 attestation_unavailable"');
    } finally {
      await broken.stop();
    }
  });
});
