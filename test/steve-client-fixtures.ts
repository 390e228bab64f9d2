/**
 * Test fixtures for steve/client: a fake STEVE v2 server built only from the pure protocol core and the
 * mock NSM, reached through a `fetch` function (no sockets), with hooks that let a test damage exactly one
 * thing (a binding field, the document's nonce, the confirmation, an envelope's sequence, an outer status)
 * and counters of every endpoint hit, so tests can assert that nothing was sent after a failed check.
 *
 * It lives in test/ because steve/ must not import nsm/index.ts (test/boundaries.test.ts): the mock NSM
 * and its PKI are Node-only. It is a test double, not a server: the real one is steve/server/.
 */

import { sha256 } from '@noble/hashes/sha2.js';
import { createMockPki, defaultMockPcrs, nodeP384Verifier, openMockNsm, type MockPki, type Nsm, type PcrProfile } from '../nsm/index.js';
import {
  CONFIRMATION_SEQUENCE,
  DIRECTION,
  FRAME_KIND,
  STREAM_PREAMBLE_BYTES,
  createFrameParser,
  createStreamReader,
  createStreamWriter,
  decodeStreamPreamble,
  MESSAGE_TYPE,
  createReplayWindow,
  constantTimeEqual,
  decodeAppRequest,
  decodeEnvelope,
  decodeSessionRequest,
  deriveSessionKeys,
  encodeAppResponse,
  encodeBindingUserData,
  encodeEnvelope,
  encodeSessionResponse,
  joinBytes,
  keyExchangeFor,
  nobleAesGcm,
  openRecord,
  sealRecord,
  transcriptHash,
  type AppRequest,
  type AppResponse,
  type Binding,
  type Envelope,
  type RandomBytes,
  type ReplayWindow,
  type SessionKeys,
  type SessionRequest,
  type SessionResponse,
  type Suite,
} from '../steve/index.js';
import { createSteveClient, type SteveClient, type SteveClientOptions, type TofuStore } from '../steve/client/index.js';

/** Deterministic bytes: SHA-256(seed || counter) blocks, so every run draws the same keys and ids. */
export function seededRandom(seed: string): RandomBytes {
  let counter = 0;
  const prefix = new TextEncoder().encode(seed);
  return (length: number) => {
    const out = new Uint8Array(length);
    for (let at = 0; at < length; at += 32) {
      const block = new Uint8Array(prefix.length + 4);
      block.set(prefix);
      new DataView(block.buffer).setUint32(prefix.length, counter++);
      out.set(sha256(block).subarray(0, Math.min(32, length - at)), at);
    }
    return out;
  };
}

/** A mock NSM and everything a client needs to trust it. */
export interface MockAttester {
  pki: MockPki;
  nsm: Nsm;
  /** The mock root, DER: the client's `root`. */
  root: Uint8Array;
  /** PCR0-2 of the mock, as one pinned profile named "mock". */
  profile: PcrProfile;
}

export function createMockAttester(options: { pki?: MockPki; pcrs?: ReadonlyMap<number, Uint8Array> } = {}): MockAttester {
  const pki = options.pki ?? createMockPki();
  const pcrs = options.pcrs ?? defaultMockPcrs();
  const nsm = openMockNsm({ pki, pcrs, logger: { warn() {} } });
  const identity = new Map([0, 1, 2].map((index) => [index, (pcrs.get(index) ?? new Uint8Array(48)).slice()] as const));
  return { pki, nsm, root: pki.root.der, profile: { name: 'mock', pcrs: identity } };
}

export { createMockPki, nodeP384Verifier };

interface FakeSession {
  suite: Suite;
  sessionId: Uint8Array;
  keys: SessionKeys;
  transcriptHash: Uint8Array;
  confirmed: boolean;
  window: ReplayWindow;
}

/** Context given to the session hooks. */
export interface SessionContext {
  request: SessionRequest;
  binding: Binding;
}

export interface FakeServerHooks {
  /** Replaces the user_data the NSM signs (default: the exact §5 binding). */
  userData?(binding: Binding, encoded: Uint8Array): Uint8Array;
  /** Replaces the nonce the NSM signs (default: client_nonce). */
  attestNonce?(clientNonce: Uint8Array): Uint8Array;
  /** Replaces the whole document after it was made. */
  document?(document: Uint8Array, context: SessionContext): Uint8Array | Promise<Uint8Array>;
  /** Changes the session response before it is encoded. */
  sessionResponse?(response: SessionResponse, context: SessionContext): SessionResponse | Promise<SessionResponse>;
  /** Replaces the session answer entirely (raw bytes or any Response). */
  sessionAnswer?(bytes: Uint8Array): Uint8Array | Response;
  /** What the server's confirmation seals (default: transcript_hash). */
  confirmPlaintext?(transcriptHash: Uint8Array): Uint8Array;
  /** Replaces the confirmation answer entirely. */
  confirmAnswer?(bytes: Uint8Array): Uint8Array | Response;
  /** An outer status for this application request instead of processing it (§6 tests). */
  requestStatus?(sequence: number): number | undefined;
  /** Changes the response envelope before it is encoded (wrong sequence or session id). */
  responseEnvelope?(envelope: Envelope): Envelope;
  /** Replaces the application answer entirely. */
  requestAnswer?(bytes: Uint8Array, sequence: number): Uint8Array | Response;
  /** An outer status for this stream instead of processing it. */
  streamStatus?(sequence: number): number | undefined;
  /** Changes the frames of a stream's answer (drop, duplicate, damage, splice) or replaces the answer. */
  streamFrames?(frames: Uint8Array[], context: StreamContext): Uint8Array[] | Response;
}

/** What a stream hook knows: the exchange and its session's keys (to seal frames of its own). */
export interface StreamContext {
  sequence: number;
  sessionId: Uint8Array;
  keys: SessionKeys;
}

/** A stream's answer as the fake app gives it: the head, the body in these DATA chunks, END or ABORT. */
export interface StreamAnswer {
  head: AppResponse;
  chunks: Uint8Array[];
  abort?: string;
}

/** One stream request as the fake server received it, records opened. */
export interface ReceivedStream {
  sequence: number;
  /** The request body exactly as it came (preamble and frames). */
  wire: Uint8Array;
  /** Kinds of the records in order (1 HEAD, 2 DATA, 3 END). */
  kinds: number[];
  /** DATA plaintexts in order. */
  chunks: Uint8Array[];
  request: AppRequest;
  init: RequestInit;
}

export interface FakeServerOptions {
  suite: Suite;
  attester: MockAttester;
  /** The app behind the proxy. Default: 200 echoing method, path and body. */
  app?: (request: AppRequest, sequence: number, sessionIdHex: string) => AppResponse | Promise<AppResponse>;
  hooks?: FakeServerHooks;
  random?: RandomBytes;
  /** Extensions the binding lists (stream.md §1); default none, the five-field §5 binding. */
  extensions?: string[];
  /** The app's streamed answers (default: `app`'s answer, its body as one DATA record). */
  streamApp?: (request: AppRequest, sequence: number) => StreamAnswer | Promise<StreamAnswer>;
}

export interface FetchRecord {
  url: string;
  init: RequestInit;
}

export interface FakeServer {
  fetch: (input: string, init: RequestInit) => Promise<Response>;
  hooks: FakeServerHooks;
  hits: { session: number; confirm: number; request: number; stream: number; other: number };
  /** Stream requests as received. */
  streams: ReceivedStream[];
  /** The frames the fake sent for each stream answer, by sequence (before streamFrames changed them). */
  streamAnswers: Map<number, Uint8Array[]>;
  /** Frames of stream answers the client has pulled off their bodies, in all. */
  streamPulls(): number;
  /** Every fetch call, for asserting credentials/redirect options. */
  calls: FetchRecord[];
  /** Sequences that reached the app, in order. */
  appSequences: number[];
  sessions: Map<string, FakeSession>;
  /** Starts a session as an attacker would, with any request (for the relay test). */
  openSession(request: SessionRequest): Promise<SessionResponse>;
}

const hexOf = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

function cbor(bytes: Uint8Array, status = 200): Response {
  return new Response(bytes as Uint8Array<ArrayBuffer>, { status, headers: { 'content-type': 'application/cbor', 'cache-control': 'no-store' } });
}

function json(status: number, error: string): Response {
  return new Response(JSON.stringify({ error }), { status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } });
}

function answer(value: Uint8Array | Response): Response {
  return value instanceof Response ? value : cbor(value);
}

const echoApp = (request: AppRequest): AppResponse => ({
  status: 200,
  headers: [['content-type', 'application/octet-stream'], ['x-method', request.method], ['x-path', request.path]],
  body: request.body,
});

export function createFakeServer(options: FakeServerOptions): FakeServer {
  const random = options.random ?? seededRandom(`fake-server-${options.suite}`);
  const hooks: FakeServerHooks = options.hooks ?? {};
  const app = options.app ?? echoApp;
  const sessions = new Map<string, FakeSession>();
  const hits = { session: 0, confirm: 0, request: 0, stream: 0, other: 0 };
  const streams: ReceivedStream[] = [];
  const streamAnswers = new Map<number, Uint8Array[]>();
  let streamPulls = 0;
  const calls: FetchRecord[] = [];
  const appSequences: number[] = [];
  const aead = nobleAesGcm;

  async function openSession(request: SessionRequest): Promise<SessionResponse> {
    const suite = request.suite;
    const exchange = keyExchangeFor(suite);
    const sessionId = random(16);
    const { serverMaterial, sharedSecret } = exchange.serverRespond(request.clientKeyMaterial, random);
    const hash = transcriptHash({ suite, clientNonce: request.clientNonce, clientKeyMaterial: request.clientKeyMaterial, serverKeyMaterial: serverMaterial, sessionId, contextHash: request.contextHash });
    const keys = deriveSessionKeys(sharedSecret, hash);
    const binding: Binding = { suite, sessionId, transcriptHash: hash, binder: keys.binder, ...(options.extensions !== undefined ? { extensions: options.extensions } : {}) };
    const context = { request, binding };
    const encoded = encodeBindingUserData(binding);
    let document = await options.attester.nsm.attest({
      nonce: hooks.attestNonce ? hooks.attestNonce(request.clientNonce) : request.clientNonce,
      userData: hooks.userData ? hooks.userData(binding, encoded) : encoded,
    });
    if (hooks.document) document = await hooks.document(document, context);
    sessions.set(hexOf(sessionId), { suite, sessionId, keys, transcriptHash: hash, confirmed: false, window: createReplayWindow() });
    let response: SessionResponse = { suite, sessionId, serverKeyMaterial: serverMaterial, attestationDocument: document, expiresInSeconds: 30 };
    if (hooks.sessionResponse) response = await hooks.sessionResponse(response, context);
    return response;
  }

  async function handleSession(body: Uint8Array): Promise<Response> {
    let request: SessionRequest;
    try {
      request = decodeSessionRequest(body);
    } catch {
      return json(400, 'protocol_error');
    }
    if (request.suite !== options.suite) return json(400, 'protocol_error');
    const bytes = encodeSessionResponse(await openSession(request));
    return answer(hooks.sessionAnswer ? hooks.sessionAnswer(bytes) : bytes);
  }

  function handleConfirm(body: Uint8Array): Response {
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(body, { maxBytes: 4096 });
    } catch {
      return json(400, 'protocol_error');
    }
    const session = sessions.get(hexOf(envelope.sessionId));
    if (session === undefined || envelope.sequence !== CONFIRMATION_SEQUENCE) return json(401, 'session_invalid');
    const header = { type: MESSAGE_TYPE.CONFIRMATION, sessionId: session.sessionId, sequence: 0 } as const;
    let plaintext: Uint8Array;
    try {
      plaintext = openRecord(aead, session.keys, { ...header, direction: DIRECTION.C2S }, envelope.ciphertext);
    } catch {
      return json(401, 'session_invalid');
    }
    if (!constantTimeEqual(plaintext, session.transcriptHash)) return json(401, 'session_invalid');
    session.confirmed = true;
    const sealed = sealRecord(aead, session.keys, { ...header, direction: DIRECTION.S2C }, hooks.confirmPlaintext ? hooks.confirmPlaintext(session.transcriptHash) : session.transcriptHash);
    const bytes = encodeEnvelope({ sessionId: session.sessionId, sequence: 0, ciphertext: sealed });
    return answer(hooks.confirmAnswer ? hooks.confirmAnswer(bytes) : bytes);
  }

  async function handleRequest(body: Uint8Array): Promise<Response> {
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(body);
    } catch {
      return json(400, 'protocol_error');
    }
    const status = hooks.requestStatus?.(envelope.sequence);
    if (status !== undefined) return json(status, `status_${status}`);
    const session = sessions.get(hexOf(envelope.sessionId));
    if (session === undefined) return json(401, 'session_invalid');
    if (!session.confirmed) return json(425, 'session_unconfirmed');
    try {
      session.window.check(envelope.sequence);
    } catch {
      return json(409, 'replay');
    }
    const header = { type: MESSAGE_TYPE.APPLICATION, sessionId: session.sessionId, sequence: envelope.sequence } as const;
    let request: AppRequest;
    try {
      const plaintext = openRecord(aead, session.keys, { ...header, direction: DIRECTION.C2S }, envelope.ciphertext);
      session.window.accept(envelope.sequence);
      request = decodeAppRequest(plaintext);
    } catch {
      return json(401, 'session_invalid');
    }
    appSequences.push(envelope.sequence);
    const response = await app(request, envelope.sequence, hexOf(session.sessionId));
    const sealed = sealRecord(aead, session.keys, { ...header, direction: DIRECTION.S2C }, encodeAppResponse(response));
    let out: Envelope = { sessionId: session.sessionId, sequence: envelope.sequence, ciphertext: sealed };
    if (hooks.responseEnvelope) out = hooks.responseEnvelope(out);
    const bytes = encodeEnvelope(out);
    return answer(hooks.requestAnswer ? hooks.requestAnswer(bytes, envelope.sequence) : bytes);
  }

  async function readAll(body: unknown): Promise<Uint8Array> {
    if (body instanceof Uint8Array) return body;
    if (!(body instanceof ReadableStream)) return new Uint8Array(0);
    const parts: Uint8Array[] = [];
    const reader = (body as ReadableStream<Uint8Array>).getReader();
    for (let next = await reader.read(); !next.done; next = await reader.read()) parts.push(next.value);
    return joinBytes(parts);
  }

  /** One frame per pull, so a test sees exactly how far the client read. */
  function frameBody(frames: Uint8Array[]): ReadableStream<Uint8Array> {
    let next = 0;
    return new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          if (next === frames.length) {
            controller.close();
            return;
          }
          streamPulls++;
          controller.enqueue(frames[next++]!);
        },
      },
      { highWaterMark: 0 },
    );
  }

  async function handleStream(init: RequestInit): Promise<Response> {
    const wire = await readAll(init.body);
    let preamble: { sessionId: Uint8Array; sequence: number };
    try {
      preamble = decodeStreamPreamble(wire);
    } catch {
      return json(400, 'protocol_error');
    }
    const status = hooks.streamStatus?.(preamble.sequence);
    if (status !== undefined) return json(status, `status_${status}`);
    const session = sessions.get(hexOf(preamble.sessionId));
    if (session === undefined) return json(401, 'session_invalid');
    if (!session.confirmed) return json(425, 'session_unconfirmed');
    try {
      session.window.check(preamble.sequence);
    } catch {
      return json(409, 'replay');
    }
    const target = { sessionId: session.sessionId, sequence: preamble.sequence };
    const reader = createStreamReader(aead, session.keys.streamC2sKey, { direction: DIRECTION.C2S, ...target });
    const kinds: number[] = [];
    const chunks: Uint8Array[] = [];
    let request: AppRequest;
    try {
      let head: AppRequest | undefined;
      for (const frame of createFrameParser().push(wire.subarray(STREAM_PREAMBLE_BYTES))) {
        const record = reader.open(frame);
        kinds.push(record.kind);
        if (record.kind === FRAME_KIND.HEAD) head = decodeAppRequest(record.plaintext);
        if (record.kind === FRAME_KIND.DATA) chunks.push(record.plaintext);
      }
      if (!reader.finished || head === undefined) return json(400, 'protocol_error');
      session.window.accept(preamble.sequence);
      request = { ...head, body: chunks.length === 0 ? null : joinBytes(chunks) };
    } catch {
      return json(401, 'session_invalid');
    }
    streams.push({ sequence: preamble.sequence, wire, kinds, chunks, request, init });
    appSequences.push(preamble.sequence);
    const answer: StreamAnswer = options.streamApp
      ? await options.streamApp(request, preamble.sequence)
      : await Promise.resolve(app(request, preamble.sequence, hexOf(session.sessionId))).then((r) => ({ head: r, chunks: r.body !== null && r.body.length > 0 ? [r.body] : [] }));
    const writer = createStreamWriter(aead, session.keys.streamS2cKey, { direction: DIRECTION.S2C, ...target });
    const frames = [writer.head(encodeAppResponse({ ...answer.head, body: null })), ...answer.chunks.flatMap((chunk) => writer.data(chunk))];
    frames.push(answer.abort !== undefined ? writer.abort(answer.abort) : writer.end());
    streamAnswers.set(preamble.sequence, frames);
    const changed = hooks.streamFrames ? hooks.streamFrames(frames.map((f) => f.slice()), { ...target, keys: session.keys }) : frames;
    if (changed instanceof Response) return changed;
    return new Response(frameBody(changed), { status: 200, headers: { 'content-type': 'application/steve-stream', 'cache-control': 'no-store' } });
  }

  async function route(url: string, init: RequestInit): Promise<Response> {
    const path = new URL(url).pathname;
    const body = init.body instanceof Uint8Array ? init.body : new Uint8Array(0);
    if (init.method !== 'POST') {
      hits.other++;
      return json(405, 'method');
    }
    switch (path) {
      case '/e2p/v2/session':
        hits.session++;
        return handleSession(body);
      case '/e2p/v2/confirm':
        hits.confirm++;
        return handleConfirm(body);
      case '/e2p/v2/request':
        hits.request++;
        return handleRequest(body);
      case '/e2p/v2/stream':
        hits.stream++;
        return handleStream(init);
      default:
        hits.other++;
        return json(403, 'e2e_required');
    }
  }

  const server: FakeServer = {
    hooks,
    hits,
    calls,
    appSequences,
    sessions,
    openSession,
    streams,
    streamAnswers,
    streamPulls: () => streamPulls,
    fetch(input, init) {
      calls.push({ url: input, init });
      const signal = init.signal;
      if (signal?.aborted) return Promise.reject(new DOMException('aborted', 'AbortError'));
      return new Promise<Response>((resolve, reject) => {
        const onAbort = () => reject(new DOMException('aborted', 'AbortError'));
        signal?.addEventListener('abort', onAbort, { once: true });
        route(input, init).then(
          (response) => {
            signal?.removeEventListener('abort', onAbort);
            resolve(response);
          },
          (error: unknown) => {
            signal?.removeEventListener('abort', onAbort);
            reject(error);
          },
        );
      });
    },
  };
  serverSuite.set(server, options.suite);
  return server;
}

const serverSuite = new WeakMap<FakeServer, Suite>();

/** A body that never ends (1 MiB chunks on demand); `pulled()` says how many bytes were handed out. */
export function endlessBody(chunkBytes = 1024 * 1024): { stream: ReadableStream<Uint8Array>; pulled(): number; cancelled(): boolean } {
  let pulled = 0;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled += chunkBytes;
      controller.enqueue(new Uint8Array(chunkBytes));
    },
    cancel() {
      cancelled = true;
    },
  });
  return { stream, pulled: () => pulled, cancelled: () => cancelled };
}

/** A deferred: a promise with its resolve outside. */
export function deferred<T = void>(): { promise: Promise<T>; resolve(value: T): void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A client wired to a fake server and its mock attester (pinned to the mock's PCRs unless overridden). */
export function createTestClient(server: FakeServer, attester: MockAttester, overrides: Partial<SteveClientOptions> = {}): SteveClient {
  const suite = overrides.keyExchange ?? serverSuite.get(server) ?? 'X25519';
  const policy = overrides.tofuStore !== undefined ? {} : { pcrPolicy: overrides.pcrPolicy ?? [attester.profile] };
  const { pcrPolicy: _pcrPolicy, ...rest } = overrides;
  return createSteveClient({
    origin: 'https://enclave.test',
    keyExchange: suite,
    root: attester.root,
    fetch: server.fetch,
    random: seededRandom(`client-${suite}`),
    verifier: nodeP384Verifier,
    ...policy,
    ...rest,
  });
}

/** A TOFU store in memory that counts its calls. */
export function memoryTofuStore(initial: Map<number, Uint8Array> | null = null): TofuStore & { saved: Map<number, Uint8Array>[]; loads: number; value: Map<number, Uint8Array> | null } {
  const store = {
    value: initial,
    saved: [] as Map<number, Uint8Array>[],
    loads: 0,
    async load() {
      store.loads++;
      return store.value;
    },
    async save(pcrs: Map<number, Uint8Array>) {
      store.saved.push(pcrs);
      store.value = pcrs;
    },
  };
  return store;
}
