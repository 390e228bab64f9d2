/**
 * Fault scenarios and the one checker that runs them (faults.test.ts). A scenario switches a fault on
 * and off and says what each operation must get while it is on; `checkScenario` runs load before,
 * during and after the fault against an environment (the real agent in front of the faulty app and the
 * faulty NSM) and returns a verdict: the list of problems found, empty when the agent behaved.
 *
 * The checker never throws for the agent's behaviour, so the same checker can run against a
 * deliberately broken agent and the test can assert that it finds the breakage (faults.test.ts, last
 * block): this is how the suite shows it fails when a fault handling path is removed.
 *
 * What a verdict holds the agent to, per scenario:
 * - during the fault, every operation gets exactly its expected outcome (the statuses and codes of
 *   specs/steve.md §7 and specs/agent-http.md §2), and each expected outcome occurs;
 * - the app saw exactly one request per application request the agent forwarded (no retries), or none
 *   when it was not listening; the NSM exactly one call per session or /attestation request;
 * - once the fault is off, a request on an existing session, a new session and a request with an 8 MiB
 *   body succeed within a bounded wait (recovery; the 8 MiB body would be 429 if aborted uploads had
 *   leaked the server's 256 MiB request-body budget), then a load phase has only successes;
 * - open file descriptors return to the baseline measured before the fault (client keep-alive sockets
 *   closed, the app's idle connections ended), and heap and Buffer memory to within a margin of it.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import type { ClientSession, Stack } from '../steve/harness.js';
import {
  MiB,
  abortedUpload,
  attestationOutcome,
  cborStallBody,
  floodJunk,
  floodPending,
  healthOutcome,
  slowReader,
  createClient,
  establish,
  establishOutcome,
  loadRequest,
  mapLimit,
  measure,
  measureUntil,
  runLoad,
  sendOutcome,
  show,
  total,
  type Client,
  type FaultyApp,
  type FaultyNsm,
  type Resources,
  type Tally,
} from './rig.js';

/** The agent, the app and the NSM a scenario runs against. */
export interface Env {
  stack: Stack;
  app: FaultyApp;
  nsm: FaultyNsm;
}

/** What one operation during a fault does; the label it returns is prefixed with its kind. */
export type Operation = 'request' | 'session' | 'attestation' | 'upload-abort' | 'flood-pending' | 'flood-junk' | 'slow-reader' | 'cbor-stall' | 'health';

export interface Scenario {
  name: string;
  on(env: Env): Promise<void> | void;
  off(env: Env): Promise<void> | void;
  /** Which operation worker `w` runs while the fault is on. */
  operation(worker: number): Operation;
  /** Every label allowed during the fault; each must also occur at least once. */
  expected: readonly string[];
  /** Requests reaching the app during the fault: one per `request` operation, or none at all. */
  appHits: 'each-request-once' | 'none';
  /** Concurrent workers during the fault (default the checker's). */
  workers?: number;
  /** Operations each worker runs at least, whatever the duration. */
  minPerWorker?: number;
  /**
   * The fault may evict sessions left idle meanwhile (a full table evicts the least recently used, by
   * design): afterwards each worker's session is probed, and one that is gone (401) is re-established,
   * as a real client does. Without this flag a lost session is a problem.
   */
  evictsIdleSessions?: boolean;
}

export interface CheckOptions {
  workers: number;
  /** Load before the fault, during it and after recovery. */
  beforeMs: number;
  duringMs: number;
  afterMs: number;
  /** Bounded wait for recovery once the fault is off. */
  recoveryMs: number;
  /** Each request's client deadline. */
  clientTimeoutMs: number;
  /** How far above the baseline resources may end. */
  fdMargin: number;
  heapMarginBytes: number;
  arrayBuffersMarginBytes: number;
}

export const DEFAULT_CHECK: CheckOptions = {
  workers: 8,
  beforeMs: 400,
  duringMs: 1500,
  afterMs: 800,
  recoveryMs: 5000,
  clientTimeoutMs: 5000,
  fdMargin: 2,
  // Sessions made during the scenario stay in the table (30 min); a few hundred are well under 1 MiB.
  heapMarginBytes: 12 * MiB,
  // A leaked 32 MiB response or 2 MiB upload buffer is far above this; allocator noise is below.
  arrayBuffersMarginBytes: 12 * MiB,
};

export interface Verdict {
  scenario: string;
  problems: string[];
  during: Tally;
  after: Tally;
  baseline?: Resources;
  final?: Resources;
  appHitsDuring: number;
  nsmCallsDuring: number;
  /** The most NSM calls unfinished at once during the fault (reported, not judged: see README). */
  nsmMaxOutstanding: number;
  /** Workers' sessions evicted during the fault and re-established (scenarios with `evictsIdleSessions`). */
  evictedSessions?: number;
}

export const summary = (v: Verdict): string =>
  `${v.scenario}: ${v.problems.length === 0 ? 'PASS' : `FAIL (${v.problems.join('; ')})`} | during: ${show(v.during)} | after: ${show(v.after)} | app hits ${v.appHitsDuring}, NSM calls ${v.nsmCallsDuring} (at most ${v.nsmMaxOutstanding} unfinished at once)` +
  (v.evictedSessions !== undefined ? ` | ${v.evictedSessions} idle worker sessions evicted and re-established` : '') +
  (v.baseline && v.final ? ` | fds ${v.baseline.fds}->${v.final.fds}, heap ${(v.baseline.heapUsed / MiB).toFixed(1)}->${(v.final.heapUsed / MiB).toFixed(1)} MiB, buffers ${(v.baseline.arrayBuffers / MiB).toFixed(1)}->${(v.final.arrayBuffers / MiB).toFixed(1)} MiB` : '');

// ---------------------------------------------------------------------------------------------------
// The scenarios

const INNER_UNAVAILABLE = 'request: inner 502 upstream_unavailable';
const allRequests = (): Operation => 'request';
/** Workers 0 and 1 open sessions, worker 2 asks /attestation, the rest use their established sessions. */
const nsmMix = (worker: number): Operation => (worker < 2 ? 'session' : worker === 2 ? 'attestation' : 'request');
const NSM_DOWN = ['session: outer 503 attestation_unavailable', 'attestation: attestation 503', 'request: ok'];

export const SCENARIOS = {
  appRefuses: {
    name: 'the app refuses connections',
    on: (env) => env.app.refuse(),
    off: (env) => env.app.accept(),
    operation: allRequests,
    expected: [INNER_UNAVAILABLE],
    appHits: 'none',
  },
  appHangs: {
    name: 'the app hangs',
    on: (env) => void (env.app.fault = 'hang'),
    off: (env) => void (env.app.fault = 'none'),
    operation: allRequests,
    expected: ['request: inner 504 upstream_timeout'],
    appHits: 'each-request-once',
  },
  appResets: {
    name: 'the app resets mid-response',
    on: (env) => void (env.app.fault = 'reset'),
    off: (env) => void (env.app.fault = 'none'),
    operation: allRequests,
    expected: [INNER_UNAVAILABLE],
    appHits: 'each-request-once',
  },
  appOversizedDeclared: {
    name: 'the app declares a body over 32 MiB',
    on: (env) => void (env.app.fault = 'oversized-declared'),
    off: (env) => void (env.app.fault = 'none'),
    operation: allRequests,
    expected: ['request: inner 502 upstream_response_too_large'],
    appHits: 'each-request-once',
  },
  appOversizedStreamed: {
    name: 'the app streams a body past 32 MiB',
    on: (env) => void (env.app.fault = 'oversized-streamed'),
    off: (env) => void (env.app.fault = 'none'),
    operation: allRequests,
    expected: ['request: inner 502 upstream_response_too_large'],
    appHits: 'each-request-once',
    // Each one makes the agent hold up to 32 MiB until it gives up: two at a time.
    workers: 2,
    minPerWorker: 3,
  },
  clientsAbortUploads: {
    name: 'clients abort mid-upload',
    on: () => undefined,
    off: () => undefined,
    // Six workers abort uploads, two keep using their sessions meanwhile. At least 36 operations per
    // worker, two in three a 2 MiB upload to /e2p/v2/request: 6 x 24 x 2 MiB = 288 MiB, past the
    // server's 256 MiB request-body budget, so a budget that aborted uploads never gave back shows up
    // as 429 busy in the recovery step (faults.test.ts checks the arithmetic).
    operation: (worker) => (worker < 6 ? 'upload-abort' : 'request'),
    expected: ['upload-abort: aborted', 'request: ok'],
    appHits: 'each-request-once',
    minPerWorker: 36,
  },
  nsmFails: {
    name: 'the NSM fails',
    on: (env) => void (env.nsm.fault = 'fail'),
    off: (env) => void (env.nsm.fault = 'none'),
    operation: nsmMix,
    expected: NSM_DOWN,
    appHits: 'each-request-once',
  },
  nsmSlow: {
    name: 'the NSM answers after the deadline',
    on: (env) => void (env.nsm.fault = 'slow'),
    off: (env) => void (env.nsm.fault = 'none'),
    operation: nsmMix,
    expected: NSM_DOWN,
    appHits: 'each-request-once',
  },
} satisfies Record<string, Scenario>;

/**
 * A hostile client's attacks (the hardening round), run against an agent with a small session table
 * (ATTACK_CONFIG) so that a flood fills it within the fault's duration. During each, the legitimate
 * workers must see only successes: new sessions get in, requests are answered, /healthz answers in time.
 */
export const ATTACK_CONFIG = { maxSessions: 64, maxPendingSessions: 16, sendTimeoutMs: 1000 } as const;
/** The slow reader's answer: far more than the kernel's socket buffers take. */
export const SLOW_READER_ANSWER_BYTES = 24 * MiB;
/** The expensive body: the size of the largest request envelope (32 MiB). */
export const CBOR_STALL_BODY_BYTES = 32 * MiB;
/** /healthz must answer within this while the attack runs (loopback answers take a millisecond). */
export const HEALTH_DEADLINE_MS = 500;

export const ATTACKS = {
  sessionFlood: {
    name: 'a client floods the session table (pending sessions, and confirmed ones sending junk)',
    on: () => undefined,
    off: () => undefined,
    // Three workers open pending sessions, two confirm sessions that send only junk records, one opens
    // legitimate sessions, two use their established sessions.
    operation: (worker) => (worker < 3 ? 'flood-pending' : worker < 5 ? 'flood-junk' : worker === 5 ? 'session' : 'request'),
    expected: ['flood: pending', 'flood: junk', 'session: ok', 'request: ok'],
    appHits: 'each-request-once',
    // The flooders' own sessions sit idle during the flood: the table may evict them.
    evictsIdleSessions: true,
  },
  slowReaders: {
    name: 'clients stop reading large answers',
    on: () => undefined,
    off: () => undefined,
    // Two slow readers (24 MiB answers each, held past the send timeout), six workers using their sessions.
    operation: (worker) => (worker < 2 ? 'slow-reader' : 'request'),
    expected: ['slow-reader: cut', 'request: ok'],
    appHits: 'each-request-once',
    minPerWorker: 2,
  },
  cborStall: {
    name: 'clients send 32 MiB bodies holding one CBOR array',
    on: () => undefined,
    off: () => undefined,
    operation: (worker) => (worker < 2 ? 'cbor-stall' : worker === 2 ? 'health' : 'request'),
    expected: ['cbor-stall: outer 400 protocol_error', 'health: ok', 'request: ok'],
    appHits: 'each-request-once',
    minPerWorker: 3,
  },
} satisfies Record<string, Scenario>;

// ---------------------------------------------------------------------------------------------------
// The checker

/** Declared 4 MiB, 2 MiB sent: the agent reads (and budgets) what arrives, then the client vanishes. */
export const ABORTED_REQUEST_DECLARED = 4 * MiB;
export const ABORTED_REQUEST_SENT = 2 * MiB;
const RECOVERY_BODY_BYTES = 8 * MiB;

async function operate(env: Env, client: Client, sessions: ClientSession[], operation: Operation, worker: number, iteration: number): Promise<string> {
  switch (operation) {
    case 'request':
      return `request: ${await sendOutcome(client, sessions[worker]!, loadRequest(worker, iteration))}`;
    case 'session':
      return `session: ${(await establishOutcome(client)).label}`;
    case 'attestation':
      return `attestation: ${await attestationOutcome(client)}`;
    case 'upload-abort': {
      const address = env.stack.agent.addresses.public;
      // Two in three to /e2p/v2/request (the large bodies), the rest to the small-bodied endpoints.
      const kind = iteration % 6;
      if (kind === 4) return `upload-abort: ${await abortedUpload(address, '/e2p/v2/session', 4096, 100)}`;
      if (kind === 5) return `upload-abort: ${await abortedUpload(address, '/attestation', 4096, 10, 'application/json')}`;
      return `upload-abort: ${await abortedUpload(address, '/e2p/v2/request', ABORTED_REQUEST_DECLARED, ABORTED_REQUEST_SENT)}`;
    }
    case 'flood-pending':
      return floodPending(client);
    case 'flood-junk':
      return floodJunk(client);
    case 'slow-reader':
      return slowReader(env.stack.agent.addresses.public, sessions[worker]!, SLOW_READER_ANSWER_BYTES, ATTACK_CONFIG.sendTimeoutMs + 1000);
    case 'cbor-stall':
      return (await cborStallBody(env.stack.agent.addresses.public, 'array', CBOR_STALL_BODY_BYTES)).label;
    case 'health':
      return healthOutcome(env.stack.base, HEALTH_DEADLINE_MS);
  }
}

/** Closes the client's keep-alive sockets and the app's idle ones, so what stays open is the agent's own. */
async function quiesce(env: Env, client: Client): Promise<void> {
  await client.dispatcher.close();
  await env.nsm.idle();
  env.app.closeIdle();
  await sleep(50);
  env.app.closeIdle();
}

/** fds stable over two measurements (sockets finish closing on both ends). */
async function stableBaseline(): Promise<Resources> {
  let previous = await measure();
  for (let i = 0; i < 20; i++) {
    await sleep(50);
    const next = await measure();
    if (next.fds === previous.fds) return next;
    previous = next;
  }
  return previous;
}

async function recover(client: Client, session: ClientSession, limitMs: number): Promise<string[]> {
  const end = Date.now() + limitMs;
  const problems: string[] = [];
  const steps: Array<[string, () => Promise<string>]> = [
    ['a request on an existing session', () => sendOutcome(client, session, { method: 'GET', path: '/recovery' })],
    ['a new session', async () => (await establishOutcome(client)).label],
    [
      `a request with a ${RECOVERY_BODY_BYTES / MiB} MiB body`,
      () => sendOutcome(client, session, { method: 'POST', path: '/recovery-large', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(RECOVERY_BODY_BYTES).fill(3) }),
    ],
  ];
  for (const [what, step] of steps) {
    let label = await step();
    while (label !== 'ok' && Date.now() < end) {
      await sleep(100);
      label = await step();
    }
    if (label !== 'ok') problems.push(`no recovery within ${limitMs} ms: ${what} still gets "${label}"`);
  }
  return problems;
}

export async function checkScenario(env: Env, scenario: Scenario, options: CheckOptions = DEFAULT_CHECK): Promise<Verdict> {
  const workers = scenario.workers ?? options.workers;
  const verdict: Verdict = { scenario: scenario.name, problems: [], during: new Map(), after: new Map(), appHitsDuring: 0, nsmCallsDuring: 0, nsmMaxOutstanding: 0 };
  const newClient = () => createClient({ base: env.stack.base, pki: env.stack.pki, suite: env.stack.suite, connections: options.workers + 4, timeoutMs: options.clientTimeoutMs });
  let client = newClient();
  const sessions = await mapLimit(Array.from({ length: options.workers }), 8, () => establish(client));
  // Before: the agent is healthy under this load.
  const before = await runLoad(options.workers, options.beforeMs, (w, i) => sendOutcome(client, sessions[w]!, loadRequest(w, i)));
  if (before.size !== 1 || !before.has('ok')) verdict.problems.push(`before the fault: ${show(before)}`);
  await quiesce(env, client);
  verdict.baseline = await stableBaseline();

  client = newClient();
  const hits = env.app.hits;
  const calls = env.nsm.calls;
  env.nsm.maxOutstanding = env.nsm.outstanding;
  await scenario.on(env);
  try {
    verdict.during = await runLoad(workers, options.duringMs, (w, i) => operate(env, client, sessions, scenario.operation(w), w, i), scenario.minPerWorker);
  } finally {
    verdict.appHitsDuring = env.app.hits - hits;
    verdict.nsmCallsDuring = env.nsm.calls - calls;
    verdict.nsmMaxOutstanding = env.nsm.maxOutstanding;
    await scenario.off(env);
  }
  for (const [label, count] of verdict.during) {
    if (!scenario.expected.includes(label)) verdict.problems.push(`during the fault: "${label}" x${count}, expected only ${scenario.expected.map((l) => `"${l}"`).join(' or ')}`);
  }
  for (const label of scenario.expected) if (!verdict.during.has(label)) verdict.problems.push(`during the fault: never "${label}"`);
  // Operations that each send one request to the app (a slow reader's reaches it too).
  const requests = [...verdict.during].filter(([label]) => label.startsWith('request:') || label.startsWith('slow-reader:')).reduce((n, [, count]) => n + count, 0);
  const expectedHits = scenario.appHits === 'none' ? 0 : requests;
  if (verdict.appHitsDuring !== expectedHits) verdict.problems.push(`the app saw ${verdict.appHitsDuring} requests during the fault, expected ${expectedHits}`);
  // Operations that each ask the NSM once (a flood's sessions too).
  const attestations = [...verdict.during].filter(([label]) => label.startsWith('session:') || label.startsWith('attestation:') || label.startsWith('flood:')).reduce((n, [, count]) => n + count, 0);
  if (verdict.nsmCallsDuring !== attestations) verdict.problems.push(`the NSM got ${verdict.nsmCallsDuring} calls during the fault, expected ${attestations}`);

  if (scenario.evictsIdleSessions === true) {
    for (let w = 0; w < sessions.length; w++) {
      const probe = await sendOutcome(client, sessions[w]!, { method: 'GET', path: `/probe/${w}` });
      if (probe === 'outer 401 session_invalid') {
        verdict.evictedSessions = (verdict.evictedSessions ?? 0) + 1;
        sessions[w] = await establish(client);
      } else if (probe !== 'ok') verdict.problems.push(`after the fault: worker ${w}'s session probe got "${probe}"`);
    }
  }
  // After: recovery within a bounded wait, then a load phase with only successes.
  verdict.problems.push(...(await recover(client, sessions[0]!, options.recoveryMs)));
  verdict.after = await runLoad(options.workers, options.afterMs, async (w, i) =>
    i % 8 === 7 ? `session: ${(await establishOutcome(client)).label}` : `request: ${await sendOutcome(client, sessions[w]!, loadRequest(w, i))}`,
  );
  for (const [label, count] of verdict.after) if (!label.endsWith(': ok')) verdict.problems.push(`after the fault: "${label}" x${count}`);
  if (total(verdict.after) === 0) verdict.problems.push('after the fault: no operation ran');

  // Resources back to the baseline (a bounded wait: sockets close and memory is collected).
  await quiesce(env, client);
  const base = verdict.baseline;
  const within = (r: Resources) => r.fds <= base.fds + options.fdMargin && r.heapUsed <= base.heapUsed + options.heapMarginBytes && r.arrayBuffers <= base.arrayBuffers + options.arrayBuffersMarginBytes;
  verdict.final = await measureUntil(within, 5000);
  const final = verdict.final;
  if (final.fds > base.fds + options.fdMargin) verdict.problems.push(`open fds ${final.fds}, baseline ${base.fds}`);
  if (final.heapUsed > base.heapUsed + options.heapMarginBytes) verdict.problems.push(`heap ${(final.heapUsed / MiB).toFixed(1)} MiB, baseline ${(base.heapUsed / MiB).toFixed(1)} MiB`);
  if (final.arrayBuffers > base.arrayBuffers + options.arrayBuffersMarginBytes) verdict.problems.push(`buffers ${(final.arrayBuffers / MiB).toFixed(1)} MiB, baseline ${(base.arrayBuffers / MiB).toFixed(1)} MiB`);
  return verdict;
}

/** The bytes the upload-abort scenario sends to /e2p/v2/request at least (see its comment). */
export const ABORTED_REQUEST_BYTES_AT_LEAST = 6 * ((36 / 6) * 4) * ABORTED_REQUEST_SENT;
