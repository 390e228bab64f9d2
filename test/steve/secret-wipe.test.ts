/**
 * No copy of a session's shared secret outlives its setup (specs/steve.md §4 "wipe the shared secret
 * after deriving", §8 for v1), checked where it matters: in the memory of a real agent. The built CLI
 * runs in a child process (mock NSM, loopback); this process sets up several X25519 sessions (session
 * and confirm) and several v1 keys (create_shared_key and one protected request each), computing each
 * shared secret on its own side from its private key and the server's public key, then reads every
 * readable mapping of the child through /proc/<pid>/mem and counts where those 32-byte values occur.
 *
 * Zero occurrences are required of every X25519 output (v2 and v1) and of every v1 session key once
 * its request is answered (v1 keeps no key between requests: the token carries it). The scan has to
 * prove it read the right memory: each v2 session's transcript hash (kept in the child's session table
 * as bytes) and its id as the hex string the table keys it by (a string in V8's heap) must be found.
 *
 * Linux only (procfs), and the reader must be allowed to read the child's memory (root, or a parent
 * under Yama ptrace_scope <= 1); otherwise the file is skipped and says why.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_MANIFEST_JSON } from '../../agent/demo/manifest.js';
import { createMockPki, writeMockPki, type MockPki } from '../../nsm/index.js';
import { decodeAppResponse, decodeSessionResponse, encodeAppRequest, type Suite } from '../../steve/index.js';
import { x25519PrivateKey, x25519PublicBytes, x25519SharedSecret } from '../../steve/server/index.js';
import { call, confirmSession, deriveClientSession, postCbor, random, sessionRequest, text, type ClientSession } from './harness.js';

const REPO = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const CLI = join(REPO, 'dist', 'agent', 'cli.js');
/** How long the child may take to listen (a cold start is well under a second here). */
const START_TIMEOUT_MS = 15_000;
/** Sessions per kind: enough that one lucky overwrite cannot hide a copy that every session leaves. */
const SESSIONS = 5;
/** The scan reads in pieces this large (a region can be hundreds of MiB of reservations). */
const SCAN_CHUNK_BYTES = 8 * 1024 * 1024;
const SECRET_BYTES = 32;

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** Yama's ptrace_scope (0 when Yama is absent): reading another process's memory needs <= 1 as its parent. */
function ptraceScope(): number {
  const path = '/proc/sys/kernel/yama/ptrace_scope';
  return existsSync(path) ? Number(readFileSync(path, 'utf8').trim()) : 0;
}

const CAN_SCAN = process.platform === 'linux' && existsSync('/proc/self/mem') && ptraceScope() <= 1;

interface ScanResult {
  /** Occurrences of each needle, by name. */
  counts: Map<string, number>;
  /** Where each occurrence was: the mapping's line in /proc/<pid>/maps and the offset in it. */
  places: Map<string, string[]>;
  regions: number;
  /** The names of readable regions the kernel refused to read ([vvar] does). */
  failedRegions: string[];
  bytes: number;
}

/** Counts every occurrence of each needle in the readable mappings of process `pid`. */
function scanProcess(pid: number, needles: ReadonlyMap<string, Uint8Array>): ScanResult {
  const counts = new Map<string, number>([...needles.keys()].map((name) => [name, 0]));
  const places = new Map<string, string[]>([...needles.keys()].map((name) => [name, []]));
  const longest = Math.max(...[...needles.values()].map((n) => n.length));
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n');
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  const chunk = Buffer.allocUnsafe(SCAN_CHUNK_BYTES);
  let regions = 0;
  const failedRegions: string[] = [];
  let bytes = 0;
  try {
    for (const line of maps) {
      const match = /^([0-9a-f]+)-([0-9a-f]+) (r)/.exec(line);
      if (match === null) continue;
      regions++;
      const start = Number.parseInt(match[1]!, 16);
      const end = Number.parseInt(match[2]!, 16);
      // Consecutive pieces overlap by longest - 1 bytes, so a needle across a boundary is still seen once.
      for (let at = start; at < end; at += SCAN_CHUNK_BYTES - (longest - 1)) {
        const length = Math.min(SCAN_CHUNK_BYTES, end - at);
        let read: number;
        try {
          read = readSync(fd, chunk, 0, length, at);
        } catch {
          failedRegions.push(line.split(/ +/)[5] ?? '(anonymous)');
          break;
        }
        bytes += read;
        const view = chunk.subarray(0, read);
        for (const [name, needle] of needles) {
          // Only starts inside this piece's own part count, so the overlap is not counted twice.
          const own = at + length >= end ? read : read - (longest - 1);
          for (let i = view.indexOf(needle); i !== -1 && i < own; i = view.indexOf(needle, i + 1)) {
            counts.set(name, counts.get(name)! + 1);
            places.get(name)!.push(`${line.replace(/ +/g, ' ')} +0x${(at + i - start).toString(16)}`);
          }
        }
        if (at + length >= end) break;
      }
    }
  } finally {
    closeSync(fd);
  }
  chunk.fill(0);
  return { counts, places, regions, failedRegions, bytes };
}

interface Child {
  process: ChildProcess;
  base: string;
  stderr: () => string;
}

/** The built CLI's `run` on the mock NSM, every listener on 127.0.0.1:0; resolves once it listens. */
async function startChild(work: string, suite: Suite): Promise<Child> {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const args = [
    CLI, 'run',
    '--nsm', 'mock', '--deployment', 'test', '--mock-pki', join(work, 'pki'), '--manifest', join(work, 'manifest.json'),
    '--listen', '127.0.0.1:0', '--internal-listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:9/',
    '--key-exchange', suite, '--log-level', 'info',
  ];
  const child = spawn(process.execPath, args, { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (piece: string) => (stderr += piece));
  const base = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`agent did not listen within ${START_TIMEOUT_MS} ms:\n${stdout}${stderr}`)), START_TIMEOUT_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited (${code}):\n${stdout}${stderr}`));
    });
    child.stdout!.setEncoding('utf8').on('data', (piece: string) => {
      stdout += piece;
      for (const line of stdout.split('\n')) {
        if (!line.includes('"agent listening"')) continue;
        clearTimeout(timer);
        resolve(`http://${(JSON.parse(line) as { addresses: { public: string } }).addresses.public}`);
      }
    });
  });
  // Past start-up the logs are not read; draining them keeps the child from blocking on a full pipe.
  child.stdout!.resume();
  return { process: child, base, stderr: () => stderr };
}

async function stopChild(child: Child | undefined): Promise<void> {
  if (child === undefined || child.process.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.process.once('exit', () => resolve()));
  child.process.kill('SIGKILL');
  await exited;
}

/** §5 steps 1-5 against the child; returns the session and the shared secret the client computed. */
async function v2Session(base: string, suite: Suite, root: Uint8Array): Promise<{ session: ClientSession; sharedSecret: Uint8Array }> {
  const req = sessionRequest(suite);
  const reply = await postCbor(base, '/e2p/v2/session', req.bytes);
  expect(reply.status, text(reply.body)).toBe(200);
  const response = decodeSessionResponse(reply.body);
  const sharedSecret = Uint8Array.from(req.exchange.clientFinish(Uint8Array.from(req.pair.secret), response.serverKeyMaterial));
  const { keys, transcriptHash } = deriveClientSession(suite, req, response, root);
  const session: ClientSession = { base, suite, id: response.sessionId, keys, transcriptHash, clientNonce: req.clientNonce, attestationDocument: response.attestationDocument, nextSequence: 1 };
  await confirmSession(session);
  return { session, sharedSecret };
}

/** §8: create_shared_key, then one protected request under the key (the app is down: a sealed 502). */
async function v1Session(base: string): Promise<{ sharedSecret: Uint8Array; key: Uint8Array }> {
  const privateKey = x25519PrivateKey(random(32));
  const reply = await call(`${base}/e2p/v1/create_shared_key`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ public_key_bytes: [...x25519PublicBytes(privateKey)], nonce: [...random(16)] }),
  });
  expect(reply.status, text(reply.body)).toBe(200);
  const answer = JSON.parse(text(reply.body)) as { public_key: number[]; enclave_encrypted_shared_key: number[] };
  const sharedSecret = Uint8Array.from(x25519SharedSecret(privateKey, Uint8Array.from(answer.public_key)));
  const key = new Uint8Array(hkdfSync('sha256', sharedSecret, new Uint8Array(0), 'key', 32));
  const iv = random(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([iv, cipher.update(encodeAppRequest({ method: 'GET', path: '/', headers: {}, body: null })), cipher.final(), cipher.getAuthTag()]);
  const sealed = await call(`${base}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'x-e2p-key': Buffer.from(answer.enclave_encrypted_shared_key).toString('base64'), 'x-e2p-original-method': 'GET' },
    body,
  });
  expect(sealed.status, text(sealed.body)).toBe(200);
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.body.subarray(0, 12));
  decipher.setAuthTag(sealed.body.subarray(sealed.body.length - 16));
  const inner = decodeAppResponse(Buffer.concat([decipher.update(sealed.body.subarray(12, sealed.body.length - 16)), decipher.final()]));
  expect(inner.status).toBe(502);
  return { sharedSecret, key };
}

/** The names of needles found, with their counts, for a readable failure. */
function found(result: ScanResult, prefix: string): Record<string, string[]> {
  return Object.fromEntries([...result.places].filter(([name, places]) => name.startsWith(prefix) && places.length > 0));
}

describe.runIf(CAN_SCAN)('no shared secret stays in the agent after setup (X25519, v2 and v1)', () => {
  let work: string;
  let pki: MockPki;
  let child: Child | undefined;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'enclave-agent-wipe-'));
    pki = createMockPki();
    await writeMockPki(join(work, 'pki'), pki);
    await writeFile(join(work, 'manifest.json'), DEMO_MANIFEST_JSON);
    child = await startChild(work, 'X25519');
  }, 30_000);

  afterAll(async () => {
    await stopChild(child);
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('the child holds each session transcript hash and id, and no X25519 output or finished v1 key', async () => {
    const needles = new Map<string, Uint8Array>();
    for (let i = 0; i < SESSIONS; i++) {
      const { session, sharedSecret } = await v2Session(child!.base, 'X25519', pki.root.der);
      needles.set(`v2 shared secret ${i}`, sharedSecret);
      needles.set(`control transcript hash ${i}`, session.transcriptHash);
      needles.set(`control session id ${i}`, new TextEncoder().encode(hex(session.id)));
    }
    for (let i = 0; i < SESSIONS; i++) {
      const { sharedSecret, key } = await v1Session(child!.base);
      needles.set(`v1 shared secret ${i}`, sharedSecret);
      needles.set(`v1 key ${i}`, key);
    }
    for (const [name, needle] of needles) if (!name.startsWith('control session id')) expect(needle.length, name).toBe(SECRET_BYTES);
    const result = scanProcess(child!.process.pid!, needles);
    // The scan read the child: its regions, and every control where the session table keeps it.
    expect(result.regions).toBeGreaterThan(10);
    expect(result.bytes).toBeGreaterThan(16 * 1024 * 1024);
    // Only the kernel's own pages ([vvar], [vvar_vclock], [vsyscall]) may refuse a read.
    for (const name of result.failedRegions) expect(name).toMatch(/^\[v(?:var|syscall)/);
    for (let i = 0; i < SESSIONS; i++) {
      expect(result.counts.get(`control transcript hash ${i}`), `transcript hash ${i}`).toBeGreaterThan(0);
      expect(result.counts.get(`control session id ${i}`), `session id ${i}`).toBeGreaterThan(0);
    }
    expect({ v2: found(result, 'v2'), v1: found(result, 'v1') }).toEqual({ v2: {}, v1: {} });
  }, 30_000);
});
