/**
 * The reliability rig (test/reliability/*.test.ts): an app on 127.0.0.1:0 whose faults can be switched
 * on and off (refusing connections, hanging, resetting mid-response, oversized bodies), an NSM wrapper
 * around the mock whose faults can be switched too (failing with a coded NsmError, answering after the
 * agent's deadline), a STEVE client on its own undici dispatcher (so its keep-alive sockets can be
 * closed before file descriptors are counted), a load runner of K concurrent workers, and the resource
 * probes (open fds of this process, heap after a forced GC), and a hostile client's attacks (a session
 * table flood, a reader that stops, an expensive unauthenticated body).
 *
 * Everything here is loopback and bounded: every request carries a client deadline, every load phase a
 * duration, every wait for recovery a limit. Outcomes are labels (`ok`, `inner 502
 * upstream_unavailable`, `outer 503 attestation_unavailable`, `client timeout`, ...) so a scenario's
 * checker can compare them with exact expectations and return a verdict instead of throwing.
 */

import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent as UndiciAgent, request } from 'undici';
import { NsmError, type AttestOptions, type MockPki, type Nsm } from '../../nsm/index.js';
import { MAX_UPSTREAM_BODY_BYTES, checkBindingUserData, decodeEnvelope, decodeSessionResponse, openRecord, DIRECTION, MESSAGE_TYPE, type AppRequest, type Suite } from '../../steve/index.js';
import { nodeAesGcm } from '../../steve/server/index.js';
import { confirmationEnvelope, deriveClientSession, openResponse, rawExchange, sealBytes, sealRequest, sessionRequest, text, type ClientSession } from '../steve/harness.js';

// ---------------------------------------------------------------------------------------------------
// The app

export type AppFault = 'none' | 'hang' | 'reset' | 'oversized-declared' | 'oversized-streamed';

export interface FaultyApp {
  url: string;
  /** What the app does with the next requests. `refuse()` is separate: it closes the listener. */
  fault: AppFault;
  /** Requests whose headers reached the app (all routes, all faults). */
  hits: number;
  /** Closes the listener and every connection: connections are then refused (ECONNREFUSED). */
  refuse(): Promise<void>;
  /** Listens again on the same port. */
  accept(): Promise<void>;
  /** Ends idle keep-alive connections (the agent's pool then drops its side). */
  closeIdle(): void;
  close(): Promise<void>;
}

const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** The answer the app gives in normal operation; the load client checks it exactly. */
export function expectedBody(method: string, path: string, body: Uint8Array | null): string {
  return `ok ${method} ${path} ${body === null ? 0 : body.length} ${sha256Hex(body ?? new Uint8Array(0)).slice(0, 16)}`;
}

/** A body (bytes of `/bytes/N`) the load can ask for to get a larger answer. */
function patternBytes(length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (i * 131 + (i >>> 8)) & 0xff;
  return out;
}

export async function startFaultyApp(): Promise<FaultyApp> {
  let port = 0;
  const hanging = new Set<ServerResponse>();
  const state = { fault: 'none' as AppFault, hits: 0 };

  function answerOversizedStreamed(res: ServerResponse): void {
    // Chunked, no length: the agent only finds out by counting. Sent with backpressure until it gives up.
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(1 << 20, 0x5a);
    let sent = 0;
    const pump = (): void => {
      while (!res.destroyed && sent <= MAX_UPSTREAM_BODY_BYTES + 2 * chunk.length) {
        sent += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      if (!res.destroyed) res.end();
    };
    pump();
  }

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    state.hits++;
    // A fault may close the connection under a write: not the app's problem to report.
    res.on('error', () => undefined);
    req.on('error', () => undefined);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = req.url ?? '/';
      switch (state.fault) {
        case 'hang':
          hanging.add(res);
          res.once('close', () => hanging.delete(res));
          return;
        case 'reset':
          // Headers and part of the body, then the connection is cut.
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '100000' });
          res.write(Buffer.alloc(1000, 0x11), () => res.socket?.destroy());
          return;
        case 'oversized-declared':
          // One byte over the cap, declared: the agent must refuse it from the headers, before reading.
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(MAX_UPSTREAM_BODY_BYTES + 1) });
          res.write(Buffer.alloc(1024, 0x22));
          return;
        case 'oversized-streamed':
          answerOversizedStreamed(res);
          return;
        case 'none':
          break;
      }
      if (url.startsWith('/bytes/')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(patternBytes(Number(url.slice('/bytes/'.length))));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(expectedBody(req.method ?? '', url, body.length === 0 ? null : new Uint8Array(body)));
    });
  });
  server.keepAliveTimeout = 30_000;

  async function listen(): Promise<void> {
    // The same port again after refuse(): nothing else binds loopback ports here, but retry briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        server.listen(port, '127.0.0.1');
        await once(server, 'listening');
        port = (server.address() as AddressInfo).port;
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== 'EADDRINUSE' || attempt >= 20) throw err;
        await sleep(50);
      }
    }
  }

  function releaseHanging(): void {
    for (const res of hanging) res.destroy();
    hanging.clear();
  }

  async function stopListening(): Promise<void> {
    if (!server.listening) return;
    releaseHanging();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  await listen();
  return {
    url: `http://127.0.0.1:${port}/`,
    get fault() {
      return state.fault;
    },
    set fault(fault: AppFault) {
      // Leaving `hang`: whatever still hangs is cut (the agent has answered 504 for it already).
      if (state.fault === 'hang' && fault !== 'hang') releaseHanging();
      state.fault = fault;
    },
    get hits() {
      return state.hits;
    },
    refuse: stopListening,
    accept: listen,
    closeIdle() {
      server.closeIdleConnections();
    },
    async close() {
      await stopListening();
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The NSM

export type NsmFault = 'none' | 'fail' | 'slow';

export interface FaultyNsm {
  nsm: Nsm;
  fault: NsmFault;
  /** attest() calls received. */
  calls: number;
  /** attest() calls not finished yet, and the most there ever were at once. */
  outstanding: number;
  maxOutstanding: number;
  /** How long a `slow` call takes. */
  slowMs: number;
  /** Resolves once no call is outstanding (slow calls finish by themselves after slowMs). */
  idle(): Promise<void>;
}

/**
 * The mock NSM behind a switch: `fail` rejects at once with `NsmError('NSM_EIO')` (a failed ioctl, the
 * device's own failure shape, specs/nsm.md §1); `slow` answers correctly but only after `slowMs`, which
 * the tests set beyond the agent's `nsmTimeoutMs`.
 */
export function createFaultyNsm(inner: Nsm, slowMs: number): FaultyNsm {
  const waiters: Array<() => void> = [];
  const state: FaultyNsm = {
    fault: 'none',
    calls: 0,
    outstanding: 0,
    maxOutstanding: 0,
    slowMs,
    idle() {
      return state.outstanding === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve));
    },
    nsm: {
      ...inner,
      kind: inner.kind,
      async attest(options?: AttestOptions) {
        state.calls++;
        state.outstanding++;
        state.maxOutstanding = Math.max(state.maxOutstanding, state.outstanding);
        try {
          if (state.fault === 'fail') throw new NsmError('NSM_EIO', 'injected: the ioctl failed', { errno: 'EIO' });
          if (state.fault === 'slow') await sleep(state.slowMs);
          return await inner.attest(options);
        } finally {
          state.outstanding--;
          if (state.outstanding === 0) for (const wake of waiters.splice(0)) wake();
        }
      },
      close: () => inner.close(),
    },
  };
  return state;
}

// ---------------------------------------------------------------------------------------------------
// The client

export interface Client {
  base: string;
  pki: MockPki;
  suite: Suite;
  dispatcher: UndiciAgent;
  /** Every request's deadline. */
  timeoutMs: number;
}

export function createClient(options: { base: string; pki: MockPki; suite: Suite; connections: number; timeoutMs: number }): Client {
  return { ...options, dispatcher: new UndiciAgent({ connections: options.connections, keepAliveTimeout: 30_000, pipelining: 1 }) };
}

export interface Answer {
  status: number;
  body: Uint8Array;
}

/** An outcome that is not an HTTP answer. */
export class NoAnswer extends Error {
  constructor(readonly label: string) {
    super(label);
  }
}

export async function post(client: Client, path: string, body: Uint8Array | string, contentType = 'application/cbor'): Promise<Answer> {
  try {
    const res = await request(`${client.base}${path}`, {
      method: 'POST',
      headers: { 'content-type': contentType },
      body,
      dispatcher: client.dispatcher,
      signal: AbortSignal.timeout(client.timeoutMs),
    });
    return { status: res.statusCode, body: new Uint8Array(await res.body.arrayBuffer()) };
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError') throw new NoAnswer('client timeout');
    throw new NoAnswer(`network error ${(err as { code?: string }).code ?? name}`);
  }
}

const errorOf = (answer: Answer): string => {
  try {
    const parsed = JSON.parse(text(answer.body)) as { error?: string; errors?: string[] };
    return parsed.error ?? (parsed.errors !== undefined ? 'errors' : text(answer.body).slice(0, 40));
  } catch {
    return text(answer.body).slice(0, 40);
  }
};

/** `outer 503 attestation_unavailable` and the like, for any answer that is not the expected 200. */
export const outerLabel = (answer: Answer): string => `outer ${answer.status} ${errorOf(answer)}`;

/**
 * §5 steps 1-5 as harness.ts's openSession and confirmSession, on this client's dispatcher: the
 * document verified (mock root, nonce), the binding checked, the confirmation exchanged both ways.
 * Throws NoAnswer with the outcome's label when anything is not as it must be.
 */
export async function establish(client: Client): Promise<ClientSession> {
  const req = sessionRequest(client.suite);
  const reply = await post(client, '/e2p/v2/session', req.bytes);
  if (reply.status !== 200) throw new NoAnswer(outerLabel(reply));
  const response = decodeSessionResponse(reply.body);
  const { keys, transcriptHash: hash, userData } = deriveClientSession(client.suite, req, response, client.pki.root.der);
  if (userData === null) throw new NoAnswer('bad: no user_data');
  checkBindingUserData(userData, { suite: client.suite, sessionId: response.sessionId, transcriptHash: hash, binder: keys.binder });
  const session: ClientSession = {
    base: client.base,
    suite: client.suite,
    id: response.sessionId,
    keys,
    transcriptHash: hash,
    clientNonce: req.clientNonce,
    attestationDocument: response.attestationDocument,
    nextSequence: 1,
  };
  const confirmed = await post(client, '/e2p/v2/confirm', confirmationEnvelope(session));
  if (confirmed.status !== 200) throw new NoAnswer(outerLabel(confirmed));
  const envelope = decodeEnvelope(confirmed.body);
  const plaintext = openRecord(nodeAesGcm, keys, { type: MESSAGE_TYPE.CONFIRMATION, direction: DIRECTION.S2C, sessionId: session.id, sequence: 0 }, envelope.ciphertext);
  if (sha256Hex(plaintext) !== sha256Hex(hash)) throw new NoAnswer('bad: server confirmation');
  return session;
}

/** `ok`, or the label of what came back instead. Never throws for an outcome; throws for a bug in the test. */
export async function establishOutcome(client: Client): Promise<{ label: string; session?: ClientSession }> {
  try {
    return { label: 'ok', session: await establish(client) };
  } catch (err) {
    if (err instanceof NoAnswer) return { label: err.label };
    return { label: `bad: ${(err as { code?: string }).code ?? (err as Error).message}` };
  }
}

/**
 * One application request through /e2p/v2/request. `ok` when the app's normal answer came back exactly;
 * `inner <status> <error>` for the proxy's own sealed answers (502/504, §7); `outer ...` for a refused
 * envelope; `client timeout` / `network error ...` when no answer came.
 */
export async function sendOutcome(client: Client, session: ClientSession, request: Partial<AppRequest> & { path: string }): Promise<string> {
  const full: AppRequest = { method: 'GET', headers: {}, body: null, ...request };
  const sealed = sealRequest(session, full);
  let reply: Answer;
  try {
    reply = await post(client, '/e2p/v2/request', sealed.bytes);
  } catch (err) {
    if (err instanceof NoAnswer) return err.label;
    throw err;
  }
  if (reply.status !== 200) return outerLabel(reply);
  let response;
  try {
    response = openResponse(session, reply.body, sealed.sequence);
  } catch (err) {
    return `bad: response does not open (${(err as Error).message})`;
  }
  if (response.error !== undefined) {
    const code = typeof response.error === 'string' ? response.error : JSON.stringify(response.error);
    return `inner ${response.status} ${code}`;
  }
  if (response.status !== 200) return `bad: inner ${response.status}`;
  if (full.path.startsWith('/bytes/')) {
    const length = Number(full.path.slice('/bytes/'.length));
    return response.body !== null && response.body.length === length && sha256Hex(response.body) === sha256Hex(patternBytes(length)) ? 'ok' : 'bad: body';
  }
  return text(response.body) === expectedBody(full.method, full.path, full.body) ? 'ok' : `bad: body ${text(response.body).slice(0, 60)}`;
}

/** Requests of the kinds the load sends: GET, POST with a small body, a 64 KiB answer. */
export function loadRequest(worker: number, iteration: number): Partial<AppRequest> & { path: string } {
  switch (iteration % 4) {
    case 0:
      return { method: 'GET', path: `/w${worker}/i${iteration}` };
    case 1:
      return { method: 'POST', path: `/w${worker}/post`, headers: { 'content-type': 'application/octet-stream' }, body: patternBytes(1 + ((worker * 997 + iteration * 131) % 8192)) };
    case 2:
      return { method: 'PUT', path: `/w${worker}/put?x=${iteration}`, headers: { 'content-type': 'text/plain' }, body: new TextEncoder().encode(`put ${worker} ${iteration}`) };
    default:
      return { method: 'GET', path: '/bytes/65536' };
  }
}

/** POST /attestation with a fresh 32-byte nonce: `ok` or `attestation <status>`. */
export async function attestationOutcome(client: Client): Promise<string> {
  const nonce = Buffer.alloc(32, 7).toString('base64');
  try {
    const reply = await post(client, '/attestation', JSON.stringify({ nonce }), 'application/json');
    return reply.status === 200 ? 'ok' : `attestation ${reply.status}`;
  } catch (err) {
    if (err instanceof NoAnswer) return err.label;
    throw err;
  }
}

/**
 * A client that gives up mid-upload: a request head declaring `declared` bytes, `sent` of them, then the
 * socket destroyed. Resolves `aborted` once the socket is closed (no answer is awaited).
 */
export function abortedUpload(address: string, path: string, declared: number, sent: number, contentType = 'application/cbor'): Promise<string> {
  const at = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket: Socket = connect(Number(address.slice(at + 1)), address.slice(0, at));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve('aborted'));
    socket.on('connect', () => {
      socket.write(`POST ${path} HTTP/1.1\r\nHost: agent\r\nContent-Type: ${contentType}\r\nContent-Length: ${declared}\r\n\r\n`);
      const chunk = Buffer.alloc(Math.min(sent, 256 * 1024), 0xa5);
      let written = 0;
      const pump = (): void => {
        while (written < sent) {
          const piece = chunk.subarray(0, Math.min(chunk.length, sent - written));
          written += piece.length;
          if (!socket.write(piece)) {
            socket.once('drain', pump);
            return;
          }
        }
        // Everything handed to the kernel, then the client vanishes.
        socket.write('', () => socket.destroy());
      };
      pump();
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// Attacks (a hostile client: fills the session table, stops reading, sends an expensive body)

/** A pending session that is never confirmed: `flood: pending` once the agent answered it. */
export async function floodPending(client: Client): Promise<string> {
  try {
    const reply = await post(client, '/e2p/v2/session', sessionRequest(client.suite).bytes);
    return reply.status === 200 ? 'flood: pending' : `flood: ${outerLabel(reply)}`;
  } catch (err) {
    if (err instanceof NoAnswer) return `flood: ${err.label}`;
    throw err;
  }
}

/** A confirmed session that only ever sends records that decrypt but are no request: `flood: junk` (each 400). */
export async function floodJunk(client: Client): Promise<string> {
  let session: ClientSession;
  try {
    session = await establish(client);
  } catch (err) {
    if (err instanceof NoAnswer) return `flood: ${err.label}`;
    throw err;
  }
  for (let i = 0; i < 3; i++) {
    const reply = await post(client, '/e2p/v2/request', sealBytes(session, Uint8Array.of(0x01, 0x02, 0x03)).bytes).catch((err: unknown) => {
      if (err instanceof NoAnswer) return null;
      throw err;
    });
    if (reply === null || reply.status !== 400) return `flood: junk answered ${reply === null ? 'nothing' : reply.status}`;
  }
  return 'flood: junk';
}

/**
 * A client that asks for a large answer and stops reading after its first bytes. After `holdMs` (longer
 * than the agent's send timeout) it reads again: `slow-reader: cut` when the agent had closed the
 * connection before the whole answer was out, `slow-reader: complete` when it was all there.
 */
export function slowReader(address: string, session: ClientSession, answerBytes: number, holdMs: number): Promise<string> {
  const at = address.lastIndexOf(':');
  const body = sealRequest(session, { method: 'GET', path: `/bytes/${answerBytes}`, headers: {}, body: null }).bytes;
  return new Promise((resolve) => {
    const socket: Socket = connect(Number(address.slice(at + 1)), address.slice(0, at));
    let received = 0;
    let done = false;
    const finish = (label: string): void => {
      if (done) return;
      done = true;
      clearTimeout(guard);
      socket.destroy();
      resolve(label);
    };
    // Every wait bounded: the agent must have closed it long before this.
    const guard = setTimeout(() => finish('slow-reader: never closed'), holdMs + 20_000);
    socket.on('error', () => undefined);
    socket.on('close', () => finish(received >= answerBytes ? 'slow-reader: complete' : 'slow-reader: cut'));
    socket.once('data', (first: Buffer) => {
      received += first.length;
      socket.pause();
      setTimeout(() => {
        socket.on('data', (chunk: Buffer) => void (received += chunk.length));
        socket.resume();
      }, holdMs);
    });
    socket.on('connect', () => {
      socket.write(`POST /e2p/v2/request HTTP/1.1\r\nHost: agent\r\nContent-Type: application/cbor\r\nContent-Length: ${body.length}\r\n\r\n`);
      socket.write(body);
    });
  });
}

/** One CBOR array head (major type 4) declaring `count` items, as a 4-byte argument. */
function arrayHead(count: number): Buffer {
  return Buffer.from([0x9a, (count >>> 24) & 0xff, (count >>> 16) & 0xff, (count >>> 8) & 0xff, count & 0xff]);
}

/**
 * An unauthenticated `bytes`-long body to /e2p/v2/request: `array` is one CBOR array of one-byte items
 * (the body that made the decoder build tens of millions of values), `random` random bytes. Resolves
 * `cbor-stall: outer <status> <error>` with the time until the answer arrived.
 */
export async function cborStallBody(address: string, kind: 'array' | 'random', bytes: number): Promise<{ label: string; ms: number }> {
  const body = kind === 'array' ? Buffer.concat([arrayHead(bytes - 5), Buffer.alloc(bytes - 5, 0x00)]) : randomBytes(bytes);
  const started = performance.now();
  const head = `POST /e2p/v2/request HTTP/1.1\r\nHost: agent\r\nContent-Type: application/cbor\r\nContent-Length: ${bytes}\r\nConnection: close\r\n\r\n`;
  try {
    const { status, raw } = await rawExchange(address, head, async (write, answered) => {
      for (let at = 0; at < body.length && !answered(); at += 256 * 1024) {
        if (!write(body.subarray(at, at + 256 * 1024))) await sleep(1);
      }
    });
    const error = /\{"error":"([a-z_]+)"\}/.exec(raw)?.[1] ?? '?';
    return { label: `cbor-stall: outer ${status} ${error}`, ms: performance.now() - started };
  } catch (err) {
    return { label: `cbor-stall: ${(err as Error).message}`, ms: performance.now() - started };
  }
}

/** GET /healthz within `deadlineMs`: `health: ok`, or `health: late` (the event loop was held). */
export async function healthOutcome(base: string, deadlineMs: number): Promise<string> {
  try {
    const answer = await request(`${base}/healthz`, { signal: AbortSignal.timeout(deadlineMs) });
    await answer.body.dump();
    return answer.statusCode === 200 ? 'health: ok' : `health: ${answer.statusCode}`;
  } catch (err) {
    const name = (err as Error).name;
    return name === 'TimeoutError' || name === 'AbortError' ? 'health: late' : `health: error ${(err as { code?: string }).code ?? name}`;
  }
}

// ---------------------------------------------------------------------------------------------------
// Load

export type Tally = Map<string, number>;

export function tally(labels: Iterable<string>): Tally {
  const out: Tally = new Map();
  for (const label of labels) out.set(label, (out.get(label) ?? 0) + 1);
  return out;
}

export const total = (counts: Tally): number => [...counts.values()].reduce((a, b) => a + b, 0);
export const show = (counts: Tally): string => [...counts].map(([label, n]) => `${label} x${n}`).join(', ') || 'nothing';

/**
 * `workers` loops, each calling `op(worker, iteration)` back to back until `durationMs` passed since the
 * start (an operation started before that finishes; each has its own client deadline). Returns every
 * outcome label with its count. `minPerWorker` operations run even when the duration is shorter.
 */
export async function runLoad(workers: number, durationMs: number, op: (worker: number, iteration: number) => Promise<string>, minPerWorker = 1): Promise<Tally> {
  const counts: Tally = new Map();
  const end = Date.now() + durationMs;
  await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      for (let i = 0; i < minPerWorker || Date.now() < end; i++) {
        let label: string;
        try {
          label = await op(worker, i);
        } catch (err) {
          label = `bad: threw ${(err as Error).message}`;
        }
        counts.set(label, (counts.get(label) ?? 0) + 1);
      }
    }),
  );
  return counts;
}

/** Runs `tasks` with at most `limit` at once; results in order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        out[index] = await task(items[index]!, index);
      }
    }),
  );
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Resources

export interface Resources {
  fds: number;
  /** V8 heap in use after a forced GC (when --expose-gc), bytes. */
  heapUsed: number;
  /** ArrayBuffers (Buffers) outside the heap, bytes: where request and response bodies live. */
  arrayBuffers: number;
}

const gc = (globalThis as { gc?: () => void }).gc;
export const gcAvailable = gc !== undefined;

export const openFds = (): number => readdirSync('/proc/self/fd').length;

export async function measure(): Promise<Resources> {
  // Twice with a turn of the event loop between: finalizers and weak callbacks run in between.
  for (let i = 0; i < 3; i++) {
    gc?.();
    await sleep(gc === undefined ? 200 : 20);
  }
  const memory = process.memoryUsage();
  return { fds: openFds(), heapUsed: memory.heapUsed, arrayBuffers: memory.arrayBuffers };
}

/** Polls `measure()` until `accept` holds or `limitMs` passed; returns the last measurement. */
export async function measureUntil(accept: (r: Resources) => boolean, limitMs: number): Promise<Resources> {
  const end = Date.now() + limitMs;
  let last = await measure();
  while (!accept(last) && Date.now() < end) {
    await sleep(100);
    last = await measure();
  }
  return last;
}

export const MiB = 1024 * 1024;
