/**
 * The rig's heartbeat responder (test/qemu/heartbeat-responder.mjs) on this machine, over a Unix socket
 * (what vhost-device-vsock's `UDS_9000` is): init's own heartbeat exchange (init/heartbeat.ts) against it
 * succeeds; another byte is closed unanswered (init reports a close without an answer as
 * INIT_HEARTBEAT_FAILED, init/heartbeat.test.ts); a stale
 * socket file from an earlier run is replaced; SIGTERM exits 0 and removes the socket. Lives outside
 * test/qemu/ because it runs on the host, in the default suite. No vsock.
 */

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

import { exchangeHeartbeat } from '../init/heartbeat.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'qemu', 'heartbeat-responder.mjs');
const dir = mkdtempSync(join(tmpdir(), 'hb-responder-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function startResponder(path: string) {
  const child = spawn(process.execPath, [SCRIPT, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  void exited.then(() => clearTimeout(timer));
  const until = async (text: string): Promise<void> => {
    const deadline = performance.now() + 15_000;
    while (!out.includes(text)) {
      if (performance.now() > deadline) throw new Error(`responder did not print ${JSON.stringify(text)}: ${out}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return { child, exited, until, out: () => out };
}

/** init's opener, with the vsock connect replaced by the Unix socket the backend would deliver to. */
const overUnix = (path: string) => (): Promise<Duplex> =>
  new Promise((resolve, reject) => {
    const socket = connect({ path });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });

describe('test/qemu/heartbeat-responder.mjs', () => {
  it("answers init's heartbeat, closes another byte unanswered, and removes its socket on SIGTERM", async () => {
    const path = join(dir, 'vsock.sock_9000');
    // A socket file left by a killed earlier run (a closed listener removes its file; a killed one cannot).
    const leftover = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    await once(leftover, 'exit');
    expect(statSync(path).isSocket()).toBe(true);

    const responder = startResponder(path);
    await responder.until(`listening ${path}`);
    await exchangeHeartbeat(overUnix(path), { cid: 2, port: 9000, timeoutMs: 10_000 });
    await responder.until('0xb7 received, 0xb7 answered');

    const wrong = await overUnix(path)();
    wrong.write(Uint8Array.of(0x00));
    const received: Buffer[] = [];
    wrong.on('data', (chunk: Buffer) => received.push(chunk));
    await once(wrong, 'close');
    expect(Buffer.concat(received).length).toBe(0);
    await responder.until('0x00 received: closed unanswered');

    responder.child.kill('SIGTERM');
    expect(await responder.exited).toBe(0);
    expect(existsSync(path)).toBe(false);
  });
});
