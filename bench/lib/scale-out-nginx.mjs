/**
 * nginx in front of several enclave agents (README "Scale-out"): the one config the README shows, the
 * scale-out test (test/scale-out.e2e.test.ts) runs and bench/scale-out.mjs measures, so the recipe the
 * docs give is the recipe that is tested. `scaleOutNginxConfig` renders it; `startScaleOutNginx` runs
 * Debian's nginx on it in a temporary directory.
 *
 * It must not: listen beyond what it is given (the tests and the benchmark give 127.0.0.1), or use the
 * package's own config, service, pid file or state directories (a local run gets -p, -c and -e, its pid
 * file and temporary paths in the directory).
 */

import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

/** How long a started nginx gets to accept connections. */
const READY_TIMEOUT_MS = 15_000;

/**
 * nginx's read and send timeouts toward an agent on a stream, and the client body timeout: above the
 * agent's stream idle timeout (60 s, README "Configuration" --stream-idle-timeout-ms), so the agent's
 * ABORT `stream_idle` ends an idle stream, not nginx cutting it without a record.
 */
export const STREAM_PROXY_TIMEOUT_SECONDS = 90;

/**
 * The config. `listen` is host:port; `agents` the agents' public listeners (host:port each); `tls`
 * ({ certPath, keyPath }) terminates TLS and offers HTTP/2, null serves plain HTTP; `accessLog` is a path
 * or null (off); `local` ({ prefix }) runs one foreground process with its pid file and temporary paths
 * under `prefix` (tests, benchmarks), null leaves those to the package's defaults (a deployment).
 * `hashKey` is the recipe's `$remote_addr`; the test gives `$remote_addr$remote_port` once, to show what
 * hashing per connection does to a session.
 */
export function scaleOutNginxConfig({ listen, agents, tls = null, accessLog = null, local = null, workerProcesses = 'auto', hashKey = '$remote_addr' }) {
  if (!Array.isArray(agents) || agents.length === 0) throw new Error('"agents" expected at least one host:port');
  const lines = [];
  const add = (indent, text) => lines.push(`${'  '.repeat(indent)}${text}`);
  if (local !== null) {
    add(0, 'daemon off;');
    add(0, 'master_process off;');
    add(0, `pid ${join(local.prefix, 'nginx.pid')};`);
    add(0, 'error_log stderr error;');
  }
  add(0, `worker_processes ${workerProcesses};`);
  add(0, 'events { worker_connections 4096; }');
  add(0, 'http {');
  if (local !== null) {
    for (const kind of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) add(1, `${kind}_temp_path ${join(local.prefix, kind)};`);
  }
  if (accessLog === null) {
    add(1, 'access_log off;');
  } else {
    add(1, '# Which agent served which client (and over which connection): $upstream_addr next to $remote_addr.');
    add(1, "log_format enclave_agents '$remote_addr $connection $request_method $uri $status $upstream_addr';");
    add(1, `access_log ${accessLog} enclave_agents;`);
  }
  add(1, 'upstream enclave_agents {');
  add(2, '# A STEVE session lives in one agent\'s memory and spans many requests and TCP connections:');
  add(2, '# one client address, one agent. `consistent` (ketama) moves only about 1/N of the clients');
  add(2, '# when an agent is added or removed.');
  add(2, `hash ${hashKey} consistent;`);
  for (const agent of agents) add(2, `server ${agent};`);
  add(2, 'keepalive 64;');
  add(1, '}');
  add(1, 'server {');
  add(2, tls === null ? `listen ${listen};` : `listen ${listen} ssl http2;`);
  if (tls !== null) {
    add(2, `ssl_certificate ${tls.certPath};`);
    add(2, `ssl_certificate_key ${tls.keyPath};`);
    add(2, 'ssl_protocols TLSv1.2 TLSv1.3;');
  }
  add(2, '# specs/steve.md §6: a request envelope is at most 32 MiB; the agent refuses more itself.');
  add(2, 'client_max_body_size 32m;');
  add(2, 'proxy_http_version 1.1;');
  add(2, 'proxy_set_header Connection "";');
  add(2, 'proxy_set_header Host $host;');
  add(2, 'location / {');
  add(3, 'proxy_pass http://enclave_agents;');
  add(3, 'proxy_request_buffering off;');
  add(2, '}');
  add(2, '# Our stream extension (steve/protocol/stream.md): records pass as they come, both ways, with no');
  add(2, '# total size; the agent also answers `X-Accel-Buffering: no`. Timeouts above its 60 s idle limit.');
  add(2, 'location = /e2p/v2/stream {');
  add(3, 'proxy_pass http://enclave_agents;');
  add(3, 'proxy_buffering off;');
  add(3, 'proxy_request_buffering off;');
  add(3, 'client_max_body_size 0;');
  add(3, `client_body_timeout ${STREAM_PROXY_TIMEOUT_SECONDS}s;`);
  add(3, `proxy_read_timeout ${STREAM_PROXY_TIMEOUT_SECONDS}s;`);
  add(3, `proxy_send_timeout ${STREAM_PROXY_TIMEOUT_SECONDS}s;`);
  add(2, '}');
  add(1, '}');
  add(0, '}');
  return `${lines.join('\n')}\n`;
}

/** Waits until 127.0.0.1:port accepts a TCP connection, or the child exits, or READY_TIMEOUT_MS passes. */
async function waitForPort(port, child, output) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nginx exited (${child.exitCode ?? child.signalCode}): ${output()}`);
    const open = await new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nginx not accepting on ${port} after ${READY_TIMEOUT_MS} ms: ${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Debian's nginx (`command`) on 127.0.0.1:`port` in front of `agents`, plain HTTP, one foreground process
 * with everything under `dir`. `spawnServer(command, args)` starts it and returns { child, output() }
 * (bench/lib/processes.mjs's; the default spawns directly and keeps the tail of its output). Resolves
 * when it accepts connections; `stop()` sends SIGTERM (SIGKILL after 5 s) and waits for the exit.
 */
export async function startScaleOutNginx({ command, dir, port, agents, accessLog = null, workerProcesses = 1, hashKey = '$remote_addr', spawnServer = spawnDirect }) {
  const prefix = join(dir, 'nginx');
  for (const kind of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(prefix, kind), { recursive: true });
  const confPath = join(prefix, 'nginx.conf');
  const config = scaleOutNginxConfig({ listen: `127.0.0.1:${port}`, agents, accessLog, local: { prefix }, workerProcesses, hashKey });
  writeFileSync(confPath, config);
  const server = spawnServer(command, ['-p', prefix, '-c', confPath, '-e', 'stderr']);
  try {
    await waitForPort(port, server.child, server.output);
  } catch (err) {
    server.child.kill('SIGKILL');
    throw err;
  }
  return {
    ...server,
    port,
    config,
    async stop() {
      const { child } = server;
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.kill('SIGTERM');
      await exited;
      clearTimeout(timer);
    },
  };
}

function spawnDirect(command, args) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk).slice(-8192);
  };
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8').on('data', keep);
  return { child, pid: child.pid, output: () => output };
}
