/**
 * `enclave-agent host-bridge` as a process (the built dist/agent/cli.js): it listens on TCP, logs pino
 * records, exits 0 on SIGTERM after closing, exits 1 with BRIDGE_LISTEN_FAILED for an address in use, and
 * 2 for bad flags. Only the ingress form's TCP listener is exercised: no client connects, so no vsock
 * socket is ever opened on this machine (the egress form and enclave-bridge listen on vsock: never here),
 * and the egress form with `--uds`, which listens on a Unix socket instead (a connection through it is in
 * bridge/hybrid-vsock.test.ts).
 */

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const CLI = join(dirname(dirname(fileURLToPath(import.meta.url))), 'dist', 'agent', 'cli.js');

function start(args: string[]) {
  const child = spawn(process.execPath, [CLI, 'host-bridge', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  void exited.then(() => clearTimeout(timer));
  return { child, exited, out: () => stdout, err: () => stderr };
}

const records = (text: string): Array<Record<string, unknown>> =>
  text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('host-bridge process', () => {
  it('listens, then closes and exits 0 on SIGTERM', async () => {
    const run = start(['--listen', '127.0.0.1:0', '--cid', '16', '--port', '8080']);
    const deadline = performance.now() + 15_000;
    while (!run.out().includes('"bridge listening"')) {
      if (performance.now() > deadline) throw new Error(`not listening: ${run.out()} ${run.err()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    const logged = records(run.out());
    expect(logged.map((record) => record.msg)).toEqual(['bridge listening', 'signal received', 'bridge closed']);
    expect(logged[0]).toMatchObject({ service: 'enclave-agent', bridge: 'host-ingress', maxConnections: 1024, idleTimeoutMs: 300_000 });
    expect(String(logged[0]!.tcp)).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(logged[2]).toMatchObject({ accepted: 0, active: 0 });
  });

  it('--egress --uds listens on the Unix socket PATH_<vsock-port> and removes it on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hb-'));
    try {
      const uds = join(dir, 'vsock.sock');
      const run = start(['--egress', '--uds', uds, '--vsock-port', '8001', '--allow', 'example.org:443']);
      const deadline = performance.now() + 15_000;
      while (!run.out().includes('"bridge listening"')) {
        if (performance.now() > deadline) throw new Error(`not listening: ${run.out()} ${run.err()}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(records(run.out())[0]).toMatchObject({ bridge: 'host-egress', unix: `${uds}_8001` });
      expect(statSync(`${uds}_8001`).isSocket()).toBe(true);
      run.child.kill('SIGTERM');
      expect(await run.exited).toBe(0);
      expect(existsSync(`${uds}_8001`)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits 1 with BRIDGE_LISTEN_FAILED when the address is taken', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const { port } = taken.address() as AddressInfo;
    try {
      const run = start(['--listen', `127.0.0.1:${port}`, '--cid', '16', '--port', '8080']);
      expect(await run.exited).toBe(1);
      expect(run.err()).toBe(`enclave-agent host-bridge: BRIDGE_LISTEN_FAILED: cannot listen on 127.0.0.1:${port}: EADDRINUSE\n`);
    } finally {
      taken.close();
    }
  });

  it('exits 2 listing every bad flag, with the usage', async () => {
    const run = start(['--listen', 'nowhere', '--cid', 'x']);
    expect(await run.exited).toBe(2);
    expect(run.out()).toBe('');
    expect(run.err()).toContain('enclave-agent host-bridge: --cid expected an integer 1..4294967294, got "x"\n--listen expected HOST:PORT, got "nowhere"\n');
    expect(run.err()).toContain('Usage: enclave-agent host-bridge');
  });
});
