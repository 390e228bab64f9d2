/**
 * Connections per second through the two ingress bridges against socat on the same path, on the host
 * with TCP only (issue 16; the QEMU guest's test/qemu/bridge.guest.test.ts measures the same over vsock).
 * Plain JavaScript over the build (`npm run build` first); loopback only; bounded in count and time (a
 * watchdog ends every child if anything hangs).
 *
 * The path, as in the guest with vsock replaced by a TCP hop: client -> the host ingress bridge (TCP
 * listener, dials the next hop) -> the enclave ingress bridge (listener, dials the echo server) -> echo.
 * Each bridge runs in a process of its own, as deployed and as socat runs (two `socat TCP-LISTEN:p,fork
 * TCP:127.0.0.1:q`, forking per connection). The client and the echo server are this process. A
 * connection is: connect, one byte there, the byte back, end, wait for close; sequentially, `--count` per
 * round, the paths interleaved round by round and the best round kept (the machine is shared).
 *
 *   npm run build && node bench/bridge-connections.mjs [--count 300] [--rounds 5] [--relays native,js] [--cpu-prof DIR] [--no-socat] [--compare DIST]
 *
 * --compare DIST: each relay also from another build's dist/ (named relay@compare), for before/after.
 *
 * --cpu-prof DIR: the bridge processes run with `node --cpu-prof --cpu-prof-dir DIR` (one .cpuprofile per
 * process, written at exit); open them in Chrome's DevTools or summarize with bench/lib/cpu-profile-top.mjs.
 */

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { positiveArg } from './lib/args.mjs';
import { freePort } from './lib/processes.mjs';

const SCRIPT = 'bridge-connections.mjs';
const REPO = dirname(dirname(fileURLToPath(import.meta.url)));
const SOCAT = '/usr/bin/socat';
/** The whole run's budget: past it every child is killed and the run fails. */
const WATCHDOG_MS = 5 * 60_000;

// ----- child roles: `node bridge-connections.mjs --role host|enclave --relay R --target PORT` -----

async function runRole(role, relay, target, dist) {
  const bridge = await import(pathToFileURL(join(dist, 'bridge', 'index.js')).href);
  const { pino } = await import('pino');
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const relayOptions = relay === 'js' ? { relay: 'js' } : relay === 'copy' ? { relay: 'native', relaySplice: false } : { relay: 'native' };
  const dial = bridge.tcpDialer({ host: '127.0.0.1', port: target });
  let forwarder;
  if (role === 'host') {
    forwarder = await bridge.startHostIngress({ listen: { host: '127.0.0.1', port: 0 }, vsockPort: 1, dial, logger, ...relayOptions });
  } else {
    // As the enclave's vsock listener does: accepted fds straight to the relay's dial where the build has
    // it (listenTcpFds) and the relay is native; streams otherwise.
    const listen = relay !== 'js' && bridge.listenTcpFds !== undefined ? bridge.listenTcpFds : bridge.listenTcp;
    [forwarder] = await bridge.startEnclaveIngress({ ports: [1], listen: () => listen({ host: '127.0.0.1', port: 0 }), dial: () => dial, logger, ...relayOptions });
  }
  const port = Number(String(forwarder.description.tcp).split(':').pop());
  process.stdout.write(JSON.stringify({ ready: port }) + '\n');
  // Ends (writing its CPU profile) when the parent closes stdin or dies.
  process.stdin.resume();
  process.stdin.on('end', async () => {
    const stats = await forwarder.close();
    process.stderr.write(`${role}/${relay}: ${JSON.stringify(stats)}\n`);
    process.exit(0);
  });
}

// ----- the parent -----

const children = [];
/** The pids of each path's two relaying processes (socat's listeners reap their forks: cutime counts them). */
const pathPids = {};

/** CPU ms of a process and its reaped children (utime, stime, cutime, cstime of proc(5)); 10 ms resolution. */
function cpuMsWithChildren(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * 1000) / 100;
}

function killChildren() {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

async function bridgeProcess(role, relay, target, cpuProfDir, dist, name = relay) {
  const flags = cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', cpuProfDir, '--cpu-prof-name', `${role}-${relay}-${Date.now()}.cpuprofile`];
  const child = spawn(process.execPath, [...flags, fileURLToPath(import.meta.url), '--role', role, '--relay', relay, '--target', String(target), ...(dist === undefined ? [] : ['--dist', dist])], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(child);
  (pathPids[name] ??= []).push(child.pid);
  let output = '';
  child.stdout.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      output += chunk;
      const match = /\{"ready":(\d+)\}/.exec(output);
      if (match !== null) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`${role}/${relay} exited ${code}`)));
  });
}

async function socatProcess(target) {
  const port = await freePort();
  const child = spawn(SOCAT, ['-b', String(64 * 1024), `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${target}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  (pathPids.socat ??= []).push(child.pid);
  return port;
}

function closed(socket) {
  return new Promise((resolve) => (socket.closed ? resolve() : socket.once('close', () => resolve())));
}

/** One connection: connect, 'x' there and back, end, closed. Throws if the byte does not come back. */
async function oneConnection(port) {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const echoed = once(socket, 'data');
  socket.write('x');
  const [data] = await echoed;
  if (String(data) !== 'x') throw new Error(`expected "x" back, got ${JSON.stringify(String(data))}`);
  socket.end();
  await closed(socket);
}

async function waitForPath(port) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      await Promise.race([oneConnection(port), new Promise((_, reject) => setTimeout(() => reject(new Error('slow')), 1000))]);
      return;
    } catch (error) {
      if (attempt === 50) throw new Error(`path through ${port} never came up: ${error.message}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function connectionsPerSecond(port, count) {
  const start = performance.now();
  for (let i = 0; i < count; i += 1) await oneConnection(port);
  return count / ((performance.now() - start) / 1000);
}

async function main() {
  const { values } = parseArgs({
    options: {
      role: { type: 'string' },
      relay: { type: 'string', default: 'native' },
      target: { type: 'string' },
      count: { type: 'string', default: '300' },
      rounds: { type: 'string', default: '5' },
      relays: { type: 'string', default: 'native,js' },
      'cpu-prof': { type: 'string' },
      'no-socat': { type: 'boolean', default: false },
      dist: { type: 'string' },
      compare: { type: 'string' },
    },
  });
  if (values.role !== undefined) {
    await runRole(values.role, values.relay, Number(values.target), values.dist ?? join(REPO, 'dist'));
    return;
  }
  const count = positiveArg(values.count, '--count', SCRIPT, { integer: true });
  const rounds = positiveArg(values.rounds, '--rounds', SCRIPT, { integer: true });
  const relays = values.relays.split(',').filter((relay) => relay !== '');
  for (const relay of relays) {
    if (!['native', 'copy', 'js'].includes(relay)) {
      process.stderr.write(`${SCRIPT}: --relays expected native, copy or js, got ${JSON.stringify(relay)}\n`);
      process.exit(2);
    }
  }
  const watchdog = setTimeout(() => {
    process.stderr.write(`${SCRIPT}: over ${WATCHDOG_MS} ms, killing the children\n`);
    killChildren();
    process.exit(1);
  }, WATCHDOG_MS);
  process.on('exit', killChildren);

  const echo = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  const echoPort = echo.address().port;

  const paths = {};
  for (const relay of relays) {
    const enclavePort = await bridgeProcess('enclave', relay, echoPort, values['cpu-prof']);
    paths[relay] = await bridgeProcess('host', relay, enclavePort, values['cpu-prof']);
    if (values.compare !== undefined) {
      // The same relay from another build (say a worktree of the commit before), interleaved with this one.
      const name = `${relay}@compare`;
      const comparePort = await bridgeProcess('enclave', relay, echoPort, values['cpu-prof'], values.compare, name);
      paths[name] = await bridgeProcess('host', relay, comparePort, values['cpu-prof'], values.compare, name);
    }
  }
  if (!values['no-socat']) paths.socat = await socatProcess(await socatProcess(echoPort));
  const names = Object.keys(paths);
  for (const name of names) await waitForPath(paths[name]);
  // Warm-up: the JIT, and socat's first forks.
  for (const name of names) await connectionsPerSecond(paths[name], Math.min(count, 50));

  const best = Object.fromEntries(names.map((name) => [name, 0]));
  const cpuMs = Object.fromEntries(names.map((name) => [name, 0]));
  const cpuNow = (name) => pathPids[name].reduce((sum, pid) => sum + cpuMsWithChildren(pid), 0);
  for (let round = 0; round < rounds; round += 1) {
    const line = [];
    for (const name of names) {
      const cpuBefore = cpuNow(name);
      const rate = await connectionsPerSecond(paths[name], count);
      cpuMs[name] += cpuNow(name) - cpuBefore;
      best[name] = Math.max(best[name], rate);
      line.push(`${name} ${rate.toFixed(0)}`);
    }
    process.stdout.write(`round ${round + 1}: ${line.join(', ')} conn/s\n`);
  }
  // CPU of both relaying processes per connection, over every round (socat's includes its forks once reaped).
  const perConnection = names.map((name) => `${name} ${((cpuMs[name] * 1000) / (rounds * count)).toFixed(0)}`).join(', ');
  process.stdout.write(`CPU per connection (both bridges, us): ${perConnection}\n`);
  const summary = names.map((name) => `${name} ${best[name].toFixed(0)}`).join(', ');
  const ratios = best.socat > 0 ? relays.map((relay) => `${relay}/socat ${(best[relay] / best.socat).toFixed(2)}x`).join(', ') : '';
  process.stdout.write(`best of ${rounds} x ${count}: ${summary} conn/s${ratios === '' ? '' : `; ${ratios}`}\n`);

  // Let the bridges close (and write their profiles).
  for (const child of children) {
    if (child.stdin !== null) child.stdin.end();
    else child.kill('SIGTERM');
  }
  await Promise.all(children.map((child) => (child.exitCode === null && child.signalCode === null ? once(child, 'exit') : undefined)));
  echo.close();
  clearTimeout(watchdog);
}

await main();
