/**
 * Shared rig for the STEVE integration and attack tests (test/steve/*.test.ts): a demo app on
 * 127.0.0.1:0 that records every request reaching it, a real agent (startAgent, mock NSM, injected
 * clock) in front of it, an HTTP helper with a deadline, and a minimal low-level STEVE client built only
 * from the protocol core, so tests control every byte they send (envelopes, sequences, bit flips).
 *
 * The client does what §5 asks of a real one before any application data: it verifies the attestation
 * document (nodeP384Verifier, the mock root, nonce = client_nonce), then the user_data binding (all
 * five fields), then confirms. It is a test tool: it never retries, and it exposes the session keys.
 */

import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { Agent as UndiciAgent, request, type Dispatcher } from 'undici';
import { startAgent, type AgentOptions, type RunningAgent } from '../../agent/agent.js';
import { testAgentConfig } from '../agent-config.js';
import { DEMO_MANIFEST_JSON } from '../../agent/demo/manifest.js';
import { parseManifest } from '../../agent/manifest.js';
import { createMockPki, nodeP384Verifier, openMockNsm, verifyAttestationDocument, type MockPki, type Nsm } from '../../nsm/index.js';
import {
  DIRECTION,
  MESSAGE_TYPE,
  checkBindingUserData,
  decodeAppResponse,
  decodeEnvelope,
  decodeSessionResponse,
  deriveSessionKeys,
  encodeAppRequest,
  encodeEnvelope,
  encodeSessionRequest,
  keyExchangeFor,
  openRecord,
  sealRecord,
  transcriptHash,
  type AppRequest,
  type AppResponse,
  type SessionKeys,
  type Suite,
} from '../../steve/index.js';
import { nodeAesGcm, nodeX25519Exchange } from '../../steve/server/index.js';
import { silentLogger } from '../mock-documents.js';

/** Every wait here ends: a loopback answer takes milliseconds, so only a hang comes near it. */
export const REQUEST_TIMEOUT_MS = 20_000;
export const random = (length: number): Uint8Array => new Uint8Array(randomBytes(length));
export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (bytes: Uint8Array | null): string => (bytes === null ? '' : new TextDecoder().decode(bytes));
export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Deterministic bytes of any length (every byte value occurs), for binary bodies. */
export function pattern(length: number, seed = 0): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 131 + seed + (i >>> 8)) & 0xff;
  return out;
}

// ---------------------------------------------------------------------------------------------------
// The demo app

/** Responses a test app holds open (`/held`) until the test releases them: each is then 200 `released`. */
export function createHeldResponses() {
  const held = new Set<ServerResponse>();
  return {
    hold(res: ServerResponse): void {
      held.add(res);
    },
    release(): void {
      for (const res of held) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('released');
      }
      held.clear();
    },
    /** For the app's close: the held responses are cut, not answered. */
    destroyAll(): void {
      for (const res of held) res.destroy();
    },
  };
}

export interface Hit {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  bodyBytes: number;
}

export interface DemoApp {
  url: string;
  hits: Hit[];
  close(): Promise<void>;
}

/**
 * Routes: `/echo...` answers JSON {method, url, headers, bodyBytes, bodySha256}; `/echo-body` sends the
 * request body back as octet-stream; `/bytes/N` N pattern bytes; `/cookies` two set-cookie lines;
 * `/redirect` 302; `/status/N`; `/hang` never answers; `/hop` hop-by-hop response headers; anything
 * else 200 `app:<path>`. Every request that reaches it is recorded in `hits`.
 */
export async function startDemoApp(): Promise<DemoApp> {
  const hits: Hit[] = [];
  const hanging = new Set<import('node:http').ServerResponse>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = req.url ?? '';
      hits.push({ method: req.method ?? '', url, headers: req.headers, bodyBytes: body.length });
      const path = url.split('?')[0]!;
      if (path.startsWith('/echo-body')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-app': 'echo-body' });
        res.end(body);
      } else if (path.startsWith('/echo')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ method: req.method, url, headers: req.headers, bodyBytes: body.length, bodySha256: sha256Hex(body) }));
      } else if (path.startsWith('/bytes/')) {
        const length = Number(path.slice('/bytes/'.length));
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(pattern(length, 7));
      } else if (path === '/cookies') {
        res.writeHead(200, [
          ['content-type', 'text/plain'],
          ['set-cookie', 'session=abc; Path=/; HttpOnly'],
          ['set-cookie', 'theme=dark; Path=/'],
          ['x-multi', 'one'],
        ]);
        res.end('cookies');
      } else if (path === '/redirect') {
        res.writeHead(302, { location: '/elsewhere', 'content-type': 'text/plain' });
        res.end('moved');
      } else if (path.startsWith('/status/')) {
        res.writeHead(Number(path.slice('/status/'.length)), { 'content-type': 'text/plain' });
        res.end(`status ${path}`);
      } else if (path === '/hang') {
        hanging.add(res);
      } else if (path === '/hop') {
        res.writeHead(200, { connection: 'keep-alive, x-hop-secret', 'keep-alive': 'timeout=5', 'x-hop-secret': 'hop', 'proxy-authenticate': 'Basic', 'x-kept': 'yes' });
        res.end('hop');
      } else {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`app:${url}`);
      }
    });
  });
  server.keepAliveTimeout = 30_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    hits,
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The agent

export interface Clock {
  /** Added to Date.now() for the STEVE server: advance it to expire sessions. */
  offsetMs: number;
}

export interface Stack {
  agent: RunningAgent;
  base: string;
  internal: string;
  pki: MockPki;
  clock: Clock;
  suite: Suite;
  stop(): Promise<void>;
}

let sharedPki: MockPki | undefined;
export function mockPki(): MockPki {
  sharedPki ??= createMockPki();
  return sharedPki;
}

export async function startStack(
  options: { suite?: Suite; upstream: string; config?: Partial<AgentOptions['config']>; logger?: Logger; nsm?: Nsm; steve?: AgentOptions['steve']; requestDeadline?: AgentOptions['requestDeadline'] } = {
    upstream: 'http://127.0.0.1:9/',
  },
): Promise<Stack> {
  const pki = mockPki();
  const nsm = options.nsm ?? openMockNsm({ pki, logger: silentLogger });
  const clock: Clock = { offsetMs: 0 };
  const suite = options.suite ?? 'X25519';
  const agent = await startAgent({
    config: testAgentConfig({ upstream: options.upstream, keyExchange: suite, maxSessions: 10_000, ...options.config }),
    nsm,
    manifest: parseManifest(utf8(DEMO_MANIFEST_JSON), 'demo'),
    logger: options.logger ?? pino({ level: 'silent' }),
    steve: { now: () => Date.now() + clock.offsetMs, ...options.steve },
    ...(options.requestDeadline !== undefined ? { requestDeadline: options.requestDeadline } : {}),
  });
  return {
    agent,
    base: `http://${agent.addresses.public}`,
    internal: `http://${agent.addresses.internal}`,
    pki,
    clock,
    suite,
    async stop() {
      await agent.stop();
      if (options.nsm === undefined) await nsm.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// HTTP

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Uint8Array;
}

export const dispatcher = new UndiciAgent({ connections: 96, keepAliveTimeout: 10_000 });

export async function call(url: string, init: { method?: string; headers?: Record<string, string>; body?: Uint8Array | string | null } = {}): Promise<Reply> {
  const res = await request(url, {
    method: (init.method ?? 'GET') as Dispatcher.HttpMethod,
    headers: init.headers,
    body: init.body ?? null,
    dispatcher,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const body = new Uint8Array(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers as IncomingHttpHeaders, body };
}

export function postCbor(base: string, path: string, body: Uint8Array, headers: Record<string, string> = {}): Promise<Reply> {
  return call(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/cbor', ...headers }, body });
}

/** Asserts nothing; returns `{"error": code}` parsed, or the text when it is not JSON. */
export function errorOf(reply: Reply): string {
  try {
    return (JSON.parse(text(reply.body)) as { error: string }).error;
  } catch {
    return text(reply.body);
  }
}

/**
 * Raw HTTP/1.1 over a TCP socket, for what undici will not send. Writes `head`, then calls `feed` with a
 * writer that stops once an answer arrived; resolves with the first complete status line and body.
 */
export function rawExchange(address: string, head: string, feed?: (write: (chunk: Uint8Array | string) => boolean, answered: () => boolean) => Promise<void> | void): Promise<{ status: number; raw: string; sentBytes: number }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    let received = '';
    let sentBytes = 0;
    let done = false;
    const timer = setTimeout(() => finish(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err !== null) reject(err);
      else resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0), raw: received, sentBytes });
    };
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const headEnd = received.indexOf('\r\n\r\n');
      if (headEnd === -1) return;
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(received)?.[1] ?? 0);
      if (received.length >= headEnd + 4 + length) finish(null);
    });
    socket.on('error', (err) => (received === '' ? finish(err) : finish(null)));
    socket.on('close', () => finish(received === '' ? new Error('closed without an answer') : null));
    socket.on('connect', () => {
      socket.write(head);
      const write = (chunk: Uint8Array | string): boolean => {
        if (done || socket.destroyed) return false;
        sentBytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
        return socket.write(chunk, () => undefined);
      };
      // A write failing (the server closed after answering) only ends the feeding; the answer decides.
      Promise.resolve(feed?.(write, () => received !== '')).catch(() => undefined);
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// The low-level client

export interface ClientSession {
  base: string;
  suite: Suite;
  id: Uint8Array;
  keys: SessionKeys;
  transcriptHash: Uint8Array;
  clientNonce: Uint8Array;
  attestationDocument: Uint8Array;
  nextSequence: number;
}

export function exchangeFor(suite: Suite) {
  // The client side of X25519 runs on node:crypto too (cross-checked against noble in steve/server).
  return suite === 'X25519' ? nodeX25519Exchange : keyExchangeFor(suite);
}

/** A session request for `suite` and the client's secrets to finish it. */
export function sessionRequest(suite: Suite) {
  const exchange = exchangeFor(suite);
  const pair = exchange.generateClientKeyPair(random);
  const clientNonce = random(32);
  const contextHash = createHash('sha256').update('http://127.0.0.1').digest();
  const bytes = encodeSessionRequest({ suite, clientNonce, clientKeyMaterial: pair.material, contextHash: new Uint8Array(contextHash) });
  return { bytes, pair, clientNonce, contextHash: new Uint8Array(contextHash), exchange };
}

/**
 * §5 step 3 on a session answer, the client's side: the document verified (mock root, our nonce), the
 * transcript hash and keys derived. The caller checks the binding in `userData` (and says how a missing
 * one fails). Throws the verifier's NsmError when the document does not verify.
 */
export function deriveClientSession(suite: Suite, req: ReturnType<typeof sessionRequest>, response: ReturnType<typeof decodeSessionResponse>, root: Uint8Array) {
  const verified = verifyAttestationDocument(response.attestationDocument, { atMs: Date.now(), root, expectedNonce: req.clientNonce, verifier: nodeP384Verifier });
  const hash = transcriptHash({
    suite,
    clientNonce: req.clientNonce,
    clientKeyMaterial: req.pair.material,
    serverKeyMaterial: response.serverKeyMaterial,
    sessionId: response.sessionId,
    contextHash: req.contextHash,
  });
  const keys = deriveSessionKeys(req.exchange.clientFinish(req.pair.secret, response.serverKeyMaterial), hash);
  return { keys, transcriptHash: hash, userData: verified.userData };
}

/**
 * §5 steps 1-3: the session request, then the document and the binding checked. Throws when anything
 * does not verify. Does not confirm.
 */
export async function openSession(stack: Pick<Stack, 'base' | 'pki' | 'suite'>): Promise<ClientSession> {
  const req = sessionRequest(stack.suite);
  const reply = await postCbor(stack.base, '/e2p/v2/session', req.bytes);
  if (reply.status !== 200) throw new Error(`session: ${reply.status} ${text(reply.body)}`);
  if (reply.headers['content-type'] !== 'application/cbor' || reply.headers['cache-control'] !== 'no-store') throw new Error('session: headers');
  const response = decodeSessionResponse(reply.body);
  if (response.suite !== stack.suite || response.expiresInSeconds !== 30) throw new Error('session: suite or expiry');
  const { keys, transcriptHash: hash, userData } = deriveClientSession(stack.suite, req, response, stack.pki.root.der);
  if (userData === null) throw new Error('session: no user_data');
  checkBindingUserData(userData, { suite: stack.suite, sessionId: response.sessionId, transcriptHash: hash, binder: keys.binder });
  return { base: stack.base, suite: stack.suite, id: response.sessionId, keys, transcriptHash: hash, clientNonce: req.clientNonce, attestationDocument: response.attestationDocument, nextSequence: 1 };
}

export function confirmationEnvelope(session: ClientSession, plaintext: Uint8Array = session.transcriptHash): Uint8Array {
  const sealed = sealRecord(nodeAesGcm, session.keys, { type: MESSAGE_TYPE.CONFIRMATION, direction: DIRECTION.C2S, sessionId: session.id, sequence: 0 }, plaintext);
  return encodeEnvelope({ sessionId: session.id, sequence: 0, ciphertext: sealed });
}

/** §5 steps 4-5; checks the server's confirmation. */
export async function confirmSession(session: ClientSession): Promise<void> {
  const reply = await postCbor(session.base, '/e2p/v2/confirm', confirmationEnvelope(session));
  if (reply.status !== 200) throw new Error(`confirm: ${reply.status} ${text(reply.body)}`);
  const envelope = decodeEnvelope(reply.body);
  const plaintext = openRecord(nodeAesGcm, session.keys, { type: MESSAGE_TYPE.CONFIRMATION, direction: DIRECTION.S2C, sessionId: session.id, sequence: 0 }, envelope.ciphertext);
  if (sha256Hex(plaintext) !== sha256Hex(session.transcriptHash) || envelope.sequence !== 0) throw new Error('confirm: server confirmation mismatch');
}

export async function establish(stack: Pick<Stack, 'base' | 'pki' | 'suite'>): Promise<ClientSession> {
  const session = await openSession(stack);
  await confirmSession(session);
  return session;
}

/** An application record at `sequence` (default: the next one) carrying `plaintext` bytes. */
export function sealBytes(session: ClientSession, plaintext: Uint8Array, sequence = session.nextSequence++): { bytes: Uint8Array; sequence: number } {
  const sealed = sealRecord(nodeAesGcm, session.keys, { type: MESSAGE_TYPE.APPLICATION, direction: DIRECTION.C2S, sessionId: session.id, sequence }, plaintext);
  return { bytes: encodeEnvelope({ sessionId: session.id, sequence, ciphertext: sealed }), sequence };
}

export function sealRequest(session: ClientSession, request: AppRequest, sequence?: number): { bytes: Uint8Array; sequence: number } {
  return sealBytes(session, encodeAppRequest(request), sequence);
}

/** Opens a server envelope for `sequence`, checking its session id and sequence (§5 step 6). */
export function openResponse(session: ClientSession, bytes: Uint8Array, sequence: number): AppResponse {
  const envelope = decodeEnvelope(bytes);
  if (sha256Hex(envelope.sessionId) !== sha256Hex(session.id)) throw new Error('response for another session');
  if (envelope.sequence !== sequence) throw new Error(`response sequence ${envelope.sequence}, expected ${sequence}`);
  const plaintext = openRecord(nodeAesGcm, session.keys, { type: MESSAGE_TYPE.APPLICATION, direction: DIRECTION.S2C, sessionId: session.id, sequence }, envelope.ciphertext);
  return decodeAppResponse(plaintext);
}

/** One application request through /e2p/v2/request; the outer reply must be 200. */
export async function send(session: ClientSession, request: Partial<AppRequest> & { path: string }): Promise<AppResponse> {
  const sealed = sealRequest(session, { method: 'GET', headers: {}, body: null, ...request });
  const reply = await postCbor(session.base, '/e2p/v2/request', sealed.bytes);
  if (reply.status !== 200) throw new Error(`request: outer ${reply.status} ${text(reply.body)}`);
  return openResponse(session, reply.body, sealed.sequence);
}

export function header(response: AppResponse, name: string): string[] {
  return response.headers.filter(([n]) => n === name).map(([, v]) => v);
}
