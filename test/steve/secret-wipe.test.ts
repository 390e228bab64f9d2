/**
 * No copy of a session's shared secret outlives its setup (specs/steve.md §4 "wipe the shared secret
 * after deriving", §8 for v1), checked where it matters: in the memory of a running agent. The agent
 * runs from the build in a child process (secret-wipe-agent.mjs: mock NSM, loopback, and a window on
 * the server's random draws); this process sets up several sessions, computing each shared secret on its
 * own side from its private key and the server's public material, then reads every readable mapping of
 * the child through /proc/<pid>/mem and counts where the values occur.
 *
 * Required to be absent, right after setup: every X25519 output (v2, and v1's create_shared_key), the
 * X-Wing shared secret and its X25519 component ss_X, each session's HKDF PRK, and each v1 session key
 * once its request is answered (v1 keeps no key between requests: the token carries it). After a full
 * garbage collection in the child, also the server's ephemeral keys (its X25519 scalars and X-Wing
 * eseeds): until then the KeyObject node:crypto needs for X25519 holds one (OpenSSL cleanses it when
 * the collector frees it). Not checked, because it stays: X-Wing's ML-KEM shared secret ss_M, which
 * noble leaves as garbage in V8's heap (steve/server/xwing-node.ts).
 *
 * The scan has to prove it read the right memory: each v2 session's transcript hash (kept in the
 * session table as bytes) and its id as the hex string the table keys it by (in V8's heap) are found.
 * Linux only (procfs), and the reader must be allowed to read the child's memory (root, or its parent
 * under Yama ptrace_scope <= 1); otherwise the file is skipped.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { createCipheriv, createDecipheriv, createHmac, hkdfSync } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { x25519 } from '@noble/curves/ed25519.js';
import { shake256 } from '@noble/hashes/sha3.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMockPki, writeMockPki, type MockPki } from '../../nsm/index.js';
import { decodeAppResponse, decodeSessionResponse, encodeAppRequest, type Suite } from '../../steve/index.js';
import { x25519PrivateKey, x25519PublicBytes, x25519SharedSecret } from '../../steve/server/index.js';
import { call, confirmSession, deriveClientSession, postCbor, random, sessionRequest, text, type ClientSession } from './harness.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'secret-wipe-agent.mjs');
/** Every wait on the child ends: it listens and collects in well under a second here. */
const CHILD_TIMEOUT_MS = 15_000;
/** Sessions per kind: enough that one lucky overwrite cannot hide a copy that every session leaves. */
const SESSIONS = 5;
/** The scan reads in pieces this large (one mapping can be hundreds of MiB). */
const SCAN_CHUNK_BYTES = 8 * 1024 * 1024;
/** X-Wing draft-10: the ciphertext is ct_M (ML-KEM-768, 1088 bytes) || ct_X. */
const ML_KEM_CIPHERTEXT_BYTES = 1088;

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const prkOf = (salt: Uint8Array, secret: Uint8Array): Uint8Array => new Uint8Array(createHmac('sha256', salt).update(secret).digest());

/** Yama's ptrace_scope (0 when Yama is absent): a parent may read its child's memory up to 1. */
function ptraceScope(): number {
  const path = '/proc/sys/kernel/yama/ptrace_scope';
  return existsSync(path) ? Number(readFileSync(path, 'utf8').trim()) : 0;
}

const CAN_SCAN = process.platform === 'linux' && existsSync('/proc/self/mem') && ptraceScope() <= 1;

interface ScanResult {
  /** Where each needle occurs, by name: the mapping's line in /proc/<pid>/maps and the offset in it. */
  places: Map<string, string[]>;
  regions: number;
  /** The names of readable mappings the kernel refused to read ([vvar] does). */
  failedRegions: string[];
  bytes: number;
}

/** Every occurrence of each needle in the readable mappings of process `pid`. */
function scanProcess(pid: number, needles: ReadonlyMap<string, Uint8Array>): ScanResult {
  const places = new Map<string, string[]>([...needles.keys()].map((name) => [name, []]));
  const overlap = Math.max(...[...needles.values()].map((n) => n.length)) - 1;
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n');
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  const chunk = Buffer.allocUnsafe(SCAN_CHUNK_BYTES);
  const failedRegions: string[] = [];
  let regions = 0;
  let bytes = 0;
  try {
    for (const line of maps) {
      const match = /^([0-9a-f]+)-([0-9a-f]+) r(.)\S* \S+ \S+ (\d+)/.exec(line);
      if (match === null) continue;
      // A file the process maps without write access (its code, libraries, ICU data) holds nothing
      // it computed: skipped, which halves the scan.
      if (match[3] !== 'w' && match[4] !== '0') continue;
      regions++;
      const start = Number.parseInt(match[1]!, 16);
      const end = Number.parseInt(match[2]!, 16);
      // Consecutive pieces overlap by the longest needle less one byte, so none is missed at a seam;
      // only matches starting before the overlap count, so none is counted twice.
      for (let at = start; at < end; at += SCAN_CHUNK_BYTES - overlap) {
        const length = Math.min(SCAN_CHUNK_BYTES, end - at);
        let read: number;
        try {
          read = readSync(fd, chunk, 0, length, at);
        } catch {
          failedRegions.push(line.split(/ +/)[5] ?? '(anonymous)');
          break;
        }
        bytes += read;
        const last = at + length >= end;
        const view = chunk.subarray(0, read);
        const own = last ? read : read - overlap;
        for (const [name, needle] of needles) {
          for (let i = view.indexOf(needle); i !== -1 && i < own; i = view.indexOf(needle, i + 1)) {
            places.get(name)!.push(`${line.replace(/ +/g, ' ')} +0x${(at + i - start).toString(16)}`);
          }
        }
        if (last) break;
      }
    }
  } finally {
    closeSync(fd);
  }
  return { places, regions, failedRegions, bytes };
}

/** The needles (by name prefix) that were found, with where: `{}` when none was. */
function found(result: ScanResult, prefixes: readonly string[]): Record<string, string[]> {
  return Object.fromEntries([...result.places].filter(([name, places]) => prefixes.some((p) => name.startsWith(p)) && places.length > 0));
}

/** The scan read the child: enough of it, only the kernel's own pages refused, every control found. */
function expectScanSound(result: ScanResult, controls: number): void {
  expect(result.regions).toBeGreaterThan(10);
  expect(result.bytes).toBeGreaterThan(16 * 1024 * 1024);
  for (const name of result.failedRegions) expect(name).toMatch(/^\[v(?:var|syscall)/);
  const missing = [...result.places].filter(([name, places]) => name.startsWith('control') && places.length === 0).map(([name]) => name);
  expect(missing).toEqual([]);
  expect([...result.places.keys()].filter((name) => name.startsWith('control'))).toHaveLength(controls);
}

interface Child {
  process: ChildProcess;
  base: string;
  /** Every draw of the server's `random`, in order. */
  draws: Uint8Array[];
  /** Resolves on the child's next `line`. */
  next(line: string): Promise<void>;
}

async function startChild(pkiDir: string, suite: Suite): Promise<Child> {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, ['--expose-gc', CHILD, pkiDir, suite], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (piece: string) => (stderr += piece));
  const draws: Uint8Array[] = [];
  const waiting = new Map<string, () => void>();
  let base = '';
  let pending = '';
  child.stdout!.setEncoding('utf8').on('data', (piece: string) => {
    pending += piece;
    for (let end = pending.indexOf('\n'); end !== -1; end = pending.indexOf('\n')) {
      const line = pending.slice(0, end);
      pending = pending.slice(end + 1);
      if (line.startsWith('draw ')) draws.push(Uint8Array.from(Buffer.from(line.slice(5), 'hex')));
      else if (line.startsWith('listening ')) base = `http://${line.slice(10)}`;
      const word = line.split(' ')[0]!;
      waiting.get(word)?.();
      waiting.delete(word);
    }
  });
  const next = (word: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent child: no "${word}" within ${CHILD_TIMEOUT_MS} ms\n${stderr}`)), CHILD_TIMEOUT_MS);
      waiting.set(word, () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => reject(new Error(`agent child exited (${code})\n${stderr}`)));
    });
  await next('listening');
  return { process: child, base, draws, next };
}

async function stopChild(child: Child | undefined): Promise<void> {
  if (child === undefined || child.process.exitCode !== null || child.process.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.process.once('exit', () => resolve()));
  child.process.kill('SIGKILL');
  await exited;
}

/** A full garbage collection in the child, then a scan. */
async function scanAfterCollection(child: Child, needles: ReadonlyMap<string, Uint8Array>): Promise<ScanResult> {
  const collected = child.next('collected');
  child.process.kill('SIGUSR2');
  await collected;
  return scanProcess(child.process.pid!, needles);
}

/** §5 steps 1-5 against the child; the session, and the client's side of the exchange's secrets. */
async function v2Session(base: string, suite: Suite, root: Uint8Array) {
  const req = sessionRequest(suite);
  const clientSecret = Uint8Array.from(req.pair.secret);
  const reply = await postCbor(base, '/e2p/v2/session', req.bytes);
  expect(reply.status, text(reply.body)).toBe(200);
  const response = decodeSessionResponse(reply.body);
  const sharedSecret = Uint8Array.from(req.exchange.clientFinish(Uint8Array.from(clientSecret), response.serverKeyMaterial));
  const { keys, transcriptHash } = deriveClientSession(suite, req, response, root);
  const session: ClientSession = { base, suite, id: response.sessionId, keys, transcriptHash, clientNonce: req.clientNonce, attestationDocument: response.attestationDocument, nextSequence: 1 };
  await confirmSession(session);
  return { session, sharedSecret, clientSecret, serverMaterial: response.serverKeyMaterial };
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
  expect(decodeAppResponse(Buffer.concat([decipher.update(sealed.body.subarray(12, sealed.body.length - 16)), decipher.final()])).status).toBe(502);
  return { sharedSecret, key };
}

/** The controls of a v2 session: its transcript hash, and its id as the session table's hex key. */
function addControls(needles: Map<string, Uint8Array>, i: number, session: ClientSession): void {
  needles.set(`control transcript hash ${i}`, session.transcriptHash);
  needles.set(`control session id ${i}`, new TextEncoder().encode(hex(session.id)));
}

/** The server's draws of `length` bytes made after `from` (its ephemeral keys), each as a needle. */
function ephemeralNeedles(child: Child, from: number, length: number, name: string): Map<string, Uint8Array> {
  const needles = new Map<string, Uint8Array>();
  child.draws.slice(from).forEach((draw, i) => {
    if (draw.length !== length) return;
    for (let at = 0; at < length; at += 32) needles.set(`${name} ${i}/${at}`, draw.subarray(at, at + 32));
  });
  return needles;
}

describe.runIf(CAN_SCAN)('no shared secret stays in a running agent after setup', () => {
  let work: string;
  let pki: MockPki;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'enclave-agent-wipe-'));
    pki = createMockPki();
    await writeMockPki(join(work, 'pki'), pki);
  });

  afterAll(async () => {
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  describe('X25519: v2 sessions and v1 keys', () => {
    let child: Child | undefined;
    beforeAll(async () => {
      child = await startChild(join(work, 'pki'), 'X25519');
    }, 30_000);
    afterAll(() => stopChild(child));

    it('no X25519 output, PRK or finished v1 key; after a collection no ephemeral scalar', async () => {
      const from = child!.draws.length;
      const needles = new Map<string, Uint8Array>();
      for (let i = 0; i < SESSIONS; i++) {
        const { session, sharedSecret } = await v2Session(child!.base, 'X25519', pki.root.der);
        needles.set(`v2 shared secret ${i}`, sharedSecret);
        needles.set(`v2 prk ${i}`, prkOf(session.transcriptHash, sharedSecret));
        addControls(needles, i, session);
      }
      for (let i = 0; i < SESSIONS; i++) {
        const { sharedSecret, key } = await v1Session(child!.base);
        needles.set(`v1 shared secret ${i}`, sharedSecret);
        needles.set(`v1 prk ${i}`, prkOf(new Uint8Array(0), sharedSecret));
        needles.set(`v1 key ${i}`, key);
      }
      const result = scanProcess(child!.process.pid!, needles);
      expectScanSound(result, 2 * SESSIONS);
      expect(found(result, ['v2', 'v1'])).toEqual({});

      // 2 * SESSIONS scalars: one per v2 session and one per v1 key.
      const scalars = ephemeralNeedles(child!, from, 32, 'scalar');
      expect(scalars.size).toBe(2 * SESSIONS);
      expect(found(await scanAfterCollection(child!, scalars), ['scalar'])).toEqual({});
    }, 30_000);
  });

  describe('XWING-DRAFT10', () => {
    let child: Child | undefined;
    beforeAll(async () => {
      child = await startChild(join(work, 'pki'), 'XWING-DRAFT10');
    }, 30_000);
    afterAll(() => stopChild(child));

    it('no shared secret, ss_X or PRK; after a collection no eseed', async () => {
      const from = child!.draws.length;
      const needles = new Map<string, Uint8Array>();
      for (let i = 0; i < SESSIONS; i++) {
        const { session, sharedSecret, clientSecret, serverMaterial } = await v2Session(child!.base, 'XWING-DRAFT10', pki.root.der);
        // draft-10: sk_X = SHAKE256(sk, 96)[64:96]; ss_X = X25519(sk_X, ct_X).
        const secretX = shake256(clientSecret, { dkLen: 96 }).subarray(64);
        needles.set(`xwing shared secret ${i}`, sharedSecret);
        needles.set(`xwing ss_X ${i}`, x25519.getSharedSecret(secretX, serverMaterial.subarray(ML_KEM_CIPHERTEXT_BYTES)));
        needles.set(`xwing prk ${i}`, prkOf(session.transcriptHash, sharedSecret));
        addControls(needles, i, session);
      }
      const result = scanProcess(child!.process.pid!, needles);
      expectScanSound(result, 2 * SESSIONS);
      expect(found(result, ['xwing'])).toEqual({});

      // Each 64-byte eseed as its halves: ML-KEM's m and the X25519 ephemeral key.
      const eseeds = ephemeralNeedles(child!, from, 64, 'eseed');
      expect(eseeds.size).toBe(2 * SESSIONS);
      expect(found(await scanAfterCollection(child!, eseeds), ['eseed'])).toEqual({});
    }, 30_000);
  });
});
