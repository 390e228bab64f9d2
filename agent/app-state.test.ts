/**
 * The agent's side of the app state: the holder asks init once, keeps the last valid `app-state`
 * message, ignores malformed ones, and never keeps the process alive (the channel is unref'd); without
 * init it is inert. Then the built agent (`dist/agent/cli.js run`) as init runs it: with an IPC channel
 * and ENCLAVE_INIT_IPC=1 it asks for the state, `/healthz` shows `app` once told, keeps it across a
 * malformed message, and still exits promptly on SIGTERM.
 */

import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createMockPki, writeMockPki } from '../nsm/index.js';
import { createAppStateHolder, type AppStateSource } from './app-state.js';

const REPO = dirname(dirname(fileURLToPath(import.meta.url)));
const CLI = join(REPO, 'dist', 'agent', 'cli.js');
const RUNNING = { state: 'running', pid: 77, restarts: 2, lastExit: { code: null, signal: 'SIGKILL', uptimeMs: 900 } };

function fakeSource(withSend = true) {
  const emitter = new EventEmitter();
  const sent: unknown[] = [];
  let unrefs = 0;
  const source: AppStateSource = {
    on: (event, listener) => emitter.on(event, listener),
    off: (event, listener) => emitter.off(event, listener),
    channel: { unref: () => void (unrefs += 1) },
    ...(withSend ? { send: (message: unknown) => (sent.push(message), true) } : {}),
  };
  return { source, emitter, sent, unrefs: () => unrefs };
}

describe('createAppStateHolder', () => {
  it('asks once, keeps the last valid state, ignores the rest, and unrefs the channel', () => {
    const { source, emitter, sent, unrefs } = fakeSource();
    const holder = createAppStateHolder(source);
    expect(sent).toEqual([{ type: 'app-state-request' }]);
    expect(unrefs()).toBe(1);
    expect(holder.current()).toBeNull();
    emitter.emit('message', { type: 'app-state', app: RUNNING });
    expect(holder.current()).toEqual(RUNNING);
    emitter.emit('message', { type: 'app-state', app: { ...RUNNING, state: 'exploded' } });
    emitter.emit('message', 'garbage');
    emitter.emit('message', { type: 'vitest-rpc', id: 1 });
    expect(holder.current()).toEqual(RUNNING);
    emitter.emit('message', { type: 'app-state', app: { state: 'failed', pid: null, restarts: 5, lastExit: { code: 3, signal: null, uptimeMs: 10 } } });
    expect(holder.current()).toMatchObject({ state: 'failed', restarts: 5 });
    holder.close();
    expect(emitter.listenerCount('message')).toBe(0);
  });

  it('is inert without init: no source, or no channel', () => {
    expect(createAppStateHolder(null).current()).toBeNull();
    const { source, emitter } = fakeSource(false);
    const holder = createAppStateHolder(source);
    expect(emitter.listenerCount('message')).toBe(0);
    expect(holder.current()).toBeNull();
  });

  it('a closed channel at start is not an error', () => {
    const { source } = fakeSource();
    source.send = () => {
      throw Object.assign(new Error('Channel closed'), { code: 'ERR_IPC_CHANNEL_CLOSED' });
    };
    expect(createAppStateHolder(source).current()).toBeNull();
  });
});

describe('the agent under init (built CLI, IPC channel)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agent-app-state-'));
    await writeMockPki(join(dir, 'pki'), createMockPki());
    await writeFile(join(dir, 'manifest.json'), JSON.stringify({ version: '1.0', powered_by: 'tests', enclave_source: { type: 'local', path: '.' }, framework_source: { type: 'git_archive', url: 'https://example.org/f.tar.gz' } }));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('the internal /healthz shows the app state init sends, the public one does not; SIGTERM still ends the agent', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, ENCLAVE_INIT_IPC: '1' };
    delete env.NODE_OPTIONS;
    const args = ['run', '--nsm', 'mock', '--deployment', 'test', '--mock-pki', join(dir, 'pki'), '--manifest', join(dir, 'manifest.json'), '--listen', '127.0.0.1:0', '--internal-listen', '127.0.0.1:0'];
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    try {
      const messages: unknown[] = [];
      child.on('message', (m) => messages.push(m));
      let out = '';
      const base = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the agent did not listen: ${out}`)), 20_000);
        child.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString('utf8');
          const match = /"public":"([^"]+)".*"internal":"([^"]+)"/.exec(out);
          if (match !== null) {
            clearTimeout(timer);
            resolve(`http://${match[1]}|http://${match[2]}`);
          }
        });
      });
      const [publicBase, internalBase] = base.split('|') as [string, string];
      expect(messages).toEqual([{ type: 'app-state-request' }]);
      const health = async () => (await (await fetch(`${internalBase}/healthz`, { signal: AbortSignal.timeout(5000) })).json()) as Record<string, unknown>;
      expect((await health()).app).toBeUndefined();
      child.send({ type: 'app-state', app: RUNNING });
      await expect.poll(async () => (await health()).app, { timeout: 5000 }).toEqual(RUNNING);
      child.send({ type: 'app-state', app: { ...RUNNING, restarts: -1 } });
      child.send({ type: 'app-state', app: { ...RUNNING, restarts: 3 } });
      await expect.poll(async () => (await health()).app, { timeout: 5000 }).toEqual({ ...RUNNING, restarts: 3 });
      // Restarts and exits are the operator's: the public /healthz says only the status.
      expect(await (await fetch(`${publicBase}/healthz`, { signal: AbortSignal.timeout(5000) })).text()).toBe('{"status":"ok"}');
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 10_000))]);
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }, 40_000);
});
