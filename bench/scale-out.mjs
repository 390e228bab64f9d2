/**
 * Scale-out (README "Scale-out"): STEVE handshakes/s and 1 KiB requests/s through Debian's nginx, on the
 * README's config (bench/lib/scale-out-nginx.mjs, `hash $remote_addr consistent`), in front of one and of
 * two real agents, against one agent reached directly, all measured in the same run. Plain JavaScript over
 * the build (`npm run build` first); loopback only; bounded in time; a watchdog ends every process if
 * anything hangs.
 *
 * Processes: the app and two agents forked from bench/lib/roles.mjs (mock NSM, each its own mock PKI),
 * nginx twice (one upstream list with agent A, one with A and B; one worker each, no access log), and
 * this load generator: --clients clients, each from its own source address 127.0.0.x (as distinct
 * machines reach a balancer) over one connection, with the protocol-level client of
 * bench/lib/steve-client.mjs. Which address hashes to which agent is read first from a probe nginx's
 * access log (same upstream list, so the same ketama ring), and the clients are picked half for each.
 *
 * Phases, in rounds over (a) agent A directly, (b) nginx + agent A, (c) nginx + agents A and B:
 * handshakes (session and confirmation, §5; the document not verified: server cost, not client cost), and
 * 1 KiB POST /echo on one session per client. Printed: the rates, p50/p99, CPU per operation of nginx and
 * the agents, and the ratios b/a (what the balancer costs) and c/b (two agents over one).
 *
 * On a 2-core machine the load generator, the app, nginx and both agents share two CPUs, so two agents
 * cannot be faster than one: the figures show that the recipe is correct under load and what nginx costs,
 * not linear scaling, which needs one machine (one enclave) per agent.
 *
 *   npm run build && node bench/scale-out.mjs [--duration-s 3] [--warmup-s 1] [--rounds 3] [--clients 16] [--pin off|auto]
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { positiveArg } from './lib/args.mjs';
import { describeMachine, load as loadPhase, machineLine, summarise } from './lib/load.mjs';
import { cpuLayout, createProcessGroup, freePort, pin, procCpuMs } from './lib/processes.mjs';
import { SMALL_BYTES } from './lib/roles.mjs';
import { startScaleOutNginx } from './lib/scale-out-nginx.mjs';
import { createSteveClient, post } from './lib/steve-client.mjs';
import { findCommand } from './lib/tls-servers.mjs';

const { values: args } = parseArgs({
  options: {
    'duration-s': { type: 'string', default: '3' },
    'warmup-s': { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
    clients: { type: 'string', default: '16' },
    /**
     * off (the default here): every process on every CPU; auto: this load generator on CPU 0, every server
     * on the others (bench/lib/processes.mjs). On 2 CPUs auto puts both agents, nginx and the app on one,
     * where two agents cannot differ from one, and three pinned runs on the shared machine had nginx + agent
     * faster than the agent alone (2,370 against 1,643 requests/s; the agent's CPU per request lower behind
     * nginx), an artefact of four servers taking turns on one CPU rather than a cost.
     */
    pin: { type: 'string', default: 'off' },
  },
  strict: true,
});

const SCRIPT = 'bench/scale-out';
const REQUEST_TIMEOUT_MS = 30_000;
/** Source addresses tried for the probe: 127.0.0.2 .. 127.0.0.129 (Linux routes all of 127/8 to lo). */
const PROBE_ADDRESSES = Array.from({ length: 128 }, (_, i) => `127.0.0.${i + 2}`);

/** Which agent each probe address hashes to, from a probe nginx's access log (GET /healthz each). */
async function mapAddresses({ group, command, dir, agents, Pool }) {
  const accessLog = join(dir, 'probe-access.log');
  const probe = await startScaleOutNginx({ command, dir: join(dir, 'probe'), port: await freePort(), agents, accessLog, spawnServer: group.spawnServer });
  try {
    for (const address of PROBE_ADDRESSES) {
      const pool = new Pool(`http://127.0.0.1:${probe.port}`, { connections: 1, localAddress: address });
      const { statusCode, body } = await pool.request({ path: '/healthz', method: 'GET' });
      await body.arrayBuffer();
      await pool.close();
      if (statusCode !== 200) throw new Error(`probe from ${address}: status ${statusCode}`);
    }
  } finally {
    await probe.stop();
  }
  const byAgent = new Map(agents.map((agent) => [agent, []]));
  for (const line of readFileSync(accessLog, 'utf8').split('\n')) {
    const [client, , , , , upstream] = line.split(' ');
    if (byAgent.has(upstream)) byAgent.get(upstream).push(client);
  }
  return byAgent;
}

async function main() {
  const DURATION_MS = positiveArg(args['duration-s'], '--duration-s', SCRIPT) * 1000;
  const WARMUP_MS = positiveArg(args['warmup-s'], '--warmup-s', SCRIPT) * 1000;
  const ROUNDS = positiveArg(args.rounds, '--rounds', SCRIPT, { integer: true });
  const CLIENTS = positiveArg(args.clients, '--clients', SCRIPT, { integer: true });
  if (CLIENTS % 2 !== 0 || CLIENTS > 64) {
    process.stderr.write(`${SCRIPT}: --clients expected an even number up to 64, got ${CLIENTS}\n`);
    process.exit(2);
  }
  const command = findCommand('nginx');
  if (command === null) {
    process.stderr.write(`${SCRIPT}: nginx not found; \`bash bench/setup.sh\` installs it from Debian\n`);
    process.exit(1);
  }
  // Three paths, two phases each, warm-ups and rounds; start-up and the probe.
  const WATCHDOG_MS = 3 * 2 * (WARMUP_MS + ROUNDS * DURATION_MS) + 120_000;
  const layout = cpuLayout(args.pin, SCRIPT);
  const group = createProcessGroup({ name: SCRIPT, watchdogMs: WATCHDOG_MS, layout });
  const { Pool } = await import('undici');
  const dir = mkdtempSync(join(tmpdir(), 'bench-scale-out-'));
  const pools = [];
  const loadAtStart = loadavg()[0];
  let exitCode = 0;
  try {
    const app = await group.forkRole('app');
    const agentA = await group.forkRole('agent', { upstream: `http://${app.address}/` });
    const agentB = await group.forkRole('agent', { upstream: `http://${app.address}/` });
    if (layout !== null) pin(process.pid, layout.client);

    const byAgent = await mapAddresses({ group, command, dir, agents: [agentA.address, agentB.address], Pool });
    const half = CLIENTS / 2;
    for (const [agent, addresses] of byAgent) {
      if (addresses.length < half) throw new Error(`only ${addresses.length} of ${PROBE_ADDRESSES.length} source addresses hash to ${agent}; need ${half}`);
    }
    const addresses = [...byAgent.get(agentA.address).slice(0, half), ...byAgent.get(agentB.address).slice(0, half)];

    const one = await startScaleOutNginx({ command, dir: join(dir, 'one'), port: await freePort(), agents: [agentA.address], spawnServer: group.spawnServer });
    const two = await startScaleOutNginx({ command, dir: join(dir, 'two'), port: await freePort(), agents: [agentA.address, agentB.address], spawnServer: group.spawnServer });
    const nginxCpu = (server) => () => Promise.resolve(procCpuMs(server.pid));
    const bothAgentsCpu = async () => (await agentA.cpuMs()) + (await agentB.cpuMs());
    const paths = [
      { key: 'a', name: '(a) agent A directly', target: agentA.address, cpu: { agents: agentA.cpuMs } },
      { key: 'b', name: '(b) nginx + agent A', target: `127.0.0.1:${one.port}`, cpu: { agents: agentA.cpuMs, nginx: nginxCpu(one) } },
      { key: 'c', name: '(c) nginx + agents A, B', target: `127.0.0.1:${two.port}`, cpu: { agents: bothAgentsCpu, nginx: nginxCpu(two) } },
    ];
    for (const path of paths) {
      path.pools = addresses.map((address) => {
        const pool = new Pool(`http://${path.target}`, { connections: 1, pipelining: 1, localAddress: address, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
        pools.push(pool);
        return pool;
      });
    }

    const client = await createSteveClient({ suite: 'X25519', rootDer: agentA.rootDer });
    const payload = new Uint8Array(randomBytes(SMALL_BYTES));
    const request = { method: 'POST', path: '/echo', headers: { 'content-type': 'application/octet-stream' }, body: payload };
    const head = client.requestHead(request);
    // Every path checked end to end once: agent A's document verified through each (B's root is another mock PKI).
    for (const path of paths) await client.establish(path.pools[0], true);

    /** One session per client on `path`, established just before its request phase (handshake phases fill the table). */
    const sessionsFor = (path) => Promise.all(path.pools.map((pool) => client.establish(pool)));
    const phases = {
      handshakes: (path) => ({ run: (i) => client.establish(path.pools[i]).then(() => undefined) }),
      requests: async (path) => {
        const sessions = await sessionsFor(path);
        return { run: (i) => client.call(path.pools[i], sessions[i], request, SMALL_BYTES, head) };
      },
    };
    const rounds = {};
    for (const path of paths) {
      for (const phase of Object.keys(phases)) {
        rounds[`${path.key}.${phase}`] = [];
        await loadPhase({ ...(await phases[phase](path)), clients: CLIENTS, durationMs: WARMUP_MS });
      }
    }
    // Each round starts at another path, so a slow spell on the shared machine does not land on one path.
    for (let round = 0; round < ROUNDS; round++) {
      for (const path of [...paths.slice(round % paths.length), ...paths.slice(0, round % paths.length)]) {
        for (const phase of Object.keys(phases)) {
          rounds[`${path.key}.${phase}`].push(await loadPhase({ ...(await phases[phase](path)), clients: CLIENTS, durationMs: DURATION_MS, cpu: path.cpu }));
        }
      }
    }
    const results = Object.fromEntries(Object.entries(rounds).map(([key, list]) => [key, summarise(list)]));

    const version = spawnSync(command, ['-v'], { encoding: 'utf8' }).stderr.trim().replace(/^nginx version: /, '');
    const out = (text) => process.stdout.write(`${text}\n`);
    out(`scale-out: ${version} (hash $remote_addr consistent, 1 worker) in front of real agents (mock NSM, X25519); ${CLIENTS} clients from ${CLIENTS} source addresses, one connection each (with two agents, ${half} hash to each)`);
    const f = (value, width, digits = 1) => value.toFixed(digits).padStart(width);
    const cpu = (value) => (value === undefined ? '       -' : `${f(value, 5, 2)} ms`);
    for (const [phase, unit] of [['handshakes', 'handshakes/s'], ['requests', 'req/s (1 KiB)']]) {
      out(`${phase.padEnd(26)} ${unit.padStart(13)}  p50 ms  p99 ms  agents CPU/op  nginx CPU/op  errors`);
      for (const path of paths) {
        const r = results[`${path.key}.${phase}`];
        out(`${path.name.padEnd(26)} ${f(r.reqPerS, 13, 0)} ${f(r.p50, 7)} ${f(r.p99, 7)}  ${cpu(r.cpuMs.agents).padStart(13)}  ${cpu(r.cpuMs.nginx).padStart(12)}  ${f(r.errors, 6, 0)}`);
      }
    }
    const ratio = (x, y, phase) => (results[`${x}.${phase}`].reqPerS / results[`${y}.${phase}`].reqPerS).toFixed(2);
    out(`ratio b/a (the balancer's overhead): handshakes ${ratio('b', 'a', 'handshakes')}, requests ${ratio('b', 'a', 'requests')}`);
    out(`ratio c/b (2 agents / 1 agent):      handshakes ${ratio('c', 'b', 'handshakes')}, requests ${ratio('c', 'b', 'requests')}`);
    out(`rounds: ${ROUNDS} of ${DURATION_MS / 1000} s per phase and path, after ${WARMUP_MS / 1000} s of warm-up each`);
    const machine = describeMachine();
    out(machineLine(loadAtStart));
    out(layout === null ? 'cpus: not pinned (every process on every CPU; --pin auto to pin)' : `cpus: load generator on CPU ${layout.client}; app, agents and nginx on CPU ${layout.servers}`);
    if (machine.cores <= 2) {
      out(`note: ${machine.cores} CPUs for the load generator, the app, nginx and both agents: two agents cannot outrun one here; read these figures for correctness under load and the balancer's overhead, not for linear scaling (that needs an agent, an enclave, per machine)`);
    }
    if (Object.values(results).some((r) => r.errors > 0)) {
      for (const [key, r] of Object.entries(results)) if (r.errors > 0) process.stderr.write(`${SCRIPT}: ${key}: ${JSON.stringify(r.errorKinds)} ${JSON.stringify(r.errorSamples)}\n`);
      exitCode = 1;
    }
  } catch (err) {
    process.stderr.write(`${SCRIPT}: ${err.stack ?? err}\n`);
    exitCode = 1;
  } finally {
    await Promise.all(pools.map((pool) => pool.close()));
    await group.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
  process.exitCode = exitCode;
}

await main();
