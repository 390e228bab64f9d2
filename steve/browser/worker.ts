/**
 * The enclave worker's logic, apart from the service worker events that drive it (enclave-sw.ts), so it
 * also runs in Node's tests: its config (kept in IndexedDB between starts, config.ts), which fetches go
 * through STEVE, how they are sent, what the page gets back, and the status the attestation widget shows.
 *
 * Config: at start the worker reads the stored config (config-store.ts); a fetch that arrives meanwhile
 * waits for it. A `steve/configure` command stores a different config first and then swaps it in with a
 * new STEVE client and a fresh status, in one step; the old config's sessions carry no new request. A
 * request from the page's `send` names the config it expects (CONFIG_HEADER); a worker with another config
 * refuses it. Without a usable config the worker fails every request to its own origin (and every request
 * naming a config) with STEVE_BROWSER_CONFIG.
 *
 * Routing (specs/steve.md §6): a request to the enclave origin goes through the STEVE client unless it is
 * one the agent serves outside STEVE (steve/protocol/routing.ts): `GET /` and `GET`/`HEAD` of the
 * bootstrap files with an empty query, `/attestation`, `/e2p/...` (the channel's own endpoints) and the
 * health paths. Requests to other origins are left alone; the few that arrive while the stored config is
 * read are held until the worker knows the enclave origin, then sent on unchanged. Failures never fall
 * back to plaintext: the page gets `502 {"error":"secure channel failed"}` (504 when the deadline passed)
 * with the client's code and stage in `x-steve-error` / `x-steve-stage`.
 *
 * Answers: the page gets the client's Response as soon as its head opened, and its body as the client
 * delivers it (body-stream.ts): with streams (steve/protocol/stream.md) each record's bytes as it opened,
 * nothing read whole or copied here. A failure in the middle (a record that does not open, ABORT, a cut
 * connection) errors the page's stream, so its read fails rather than ending short, and is recorded in
 * the status like any other failure. Request bodies from the page are read into bytes first: Chromium
 * sends a streaming request body only over HTTP/2, and the worker's fetch to the agent may be HTTP/1.1.
 *
 * Status: the session response is copied as it passes to the STEVE client and summarised
 * (document-summary.ts); once a request succeeds on a session, that session's summary becomes the status.
 * A request whose answer began counts as succeeded; if its body then fails, it counts as failed too.
 * The client alone decides trust; the copy is for display. The worker retries nothing itself: a failed
 * request is the page's to repeat. The one retry is the client's own (client.ts isUnknownSession): a
 * request the agent refused as for an unknown session (401 `session_invalid`: it restarted, or a balancer
 * moved the page's traffic) is sent once more on a new, verified session when its method is idempotent,
 * since the app never saw it; a POST fails once (that 401 could be forged to run it twice).
 */

import { SteveClientError, createSteveClient, type FetchFunction, type SteveClient, type SteveReceipt } from '../client/index.js';
import { MAX_SESSION_RESPONSE_BYTES, joinBytes, passesThrough } from '../protocol/index.js';
import { passBody } from './body-stream.js';
import { base64ToBytes } from './encoding.js';
import { encodeWorkerConfig, parseWorkerConfig, profilesForClient, workerConfigId, type WorkerConfig } from './config.js';
import { createIndexedDbConfigStore, type WorkerConfigStore } from './config-store.js';
import { summariseSessionResponse, type DocumentSummary } from './document-summary.js';
import { SteveBrowserError } from './errors.js';
import {
  CHANNEL_FAILED_BODY,
  CONFIG_HEADER,
  ERROR_HEADER,
  HEADER_PREFIX,
  SEQUENCE_HEADER,
  SESSION_HEADER,
  STAGE_HEADER,
  type ChannelStatus,
  type TrustResult,
  type WorkerCommand,
  type WorkerReply,
} from './messages.js';
import { createIndexedDbTofuStore, type IndexedDbTofuStore, type TofuKey } from './tofu-store.js';

const SESSION_PATH = '/e2p/v2/session';
/** Session summaries kept until their session is used; establishments are one at a time, so a few suffice. */
const MAX_SUMMARIES = 8;

export interface EnclaveWorkerOptions {
  /** The registration's scope, a URL on the worker's own origin: the stored config's key, part of the TOFU key. */
  scope: string;
  /** Where the config is kept between starts. Default: IndexedDB (config-store.ts). */
  configStore?: WorkerConfigStore;
  /** The STEVE client's fetch. Default: the global fetch. */
  fetch?: FetchFunction;
  /** Sends on, unchanged, a request held while the config was read that turned out not to be ours. Default: the global fetch. */
  networkFetch?: (request: Request) => Promise<Response>;
  /** Default: IndexedDB (tofu-store.ts). */
  createTofuStore?: (key: TofuKey) => IndexedDbTofuStore;
  /** Default Date.now. */
  now?: () => number;
}

export interface EnclaveWorker {
  /** The answer for a fetch the worker takes over, or null when the browser should send it unchanged. */
  handleFetch(request: Request): Promise<Response> | null;
  handleCommand(command: WorkerCommand): Promise<WorkerReply>;
  readonly status: ChannelStatus;
  /** Settles once the stored config was read at start (or could not be); never rejects. */
  readonly ready: Promise<void>;
}

/** A coded error from anything thrown while forwarding (the client's own, or an unexpected one). */
function asClientError(error: unknown): SteveClientError | SteveBrowserError {
  if (error instanceof SteveClientError || error instanceof SteveBrowserError) return error;
  return new SteveClientError('STEVE_CLIENT_PROTOCOL', 'request', `the request could not be forwarded (${(error as Error)?.name ?? 'error'})`, { cause: error });
}

/** The body of a response, read up to `maxBytes`; throws when it is longer. */
async function readAtMost(response: Response, maxBytes: number): Promise<Uint8Array> {
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > maxBytes) {
      await reader.cancel();
      throw new RangeError(`longer than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return joinBytes(chunks);
}

function trustOf(receipt: SteveReceipt): TrustResult {
  if (receipt.pcrPolicy === 'pinned') return { policy: 'pinned', profile: receipt.pcrTrust };
  return { policy: 'tofu', result: receipt.pcrTrust === 'tofu-recorded' ? 'tofu-recorded' : 'tofu-matched' };
}

function configError(message: string, cause?: unknown): SteveBrowserError {
  return new SteveBrowserError('STEVE_BROWSER_CONFIG', 'config', message, cause === undefined ? {} : { cause });
}

/** What the worker holds for one config: the STEVE client (made on first use), its TOFU store and status. */
interface Channel {
  config: WorkerConfig | undefined;
  /** workerConfigId(config), null without a config. */
  id: string | null;
  /** Why this channel cannot carry requests (no config, or one the STEVE client refused). */
  failure: SteveBrowserError | SteveClientError | undefined;
  status: ChannelStatus;
  client: SteveClient | undefined;
  tofuStore: IndexedDbTofuStore | undefined;
  /** Summaries of session responses this channel's client received, by session id. */
  summaries: Map<string, DocumentSummary>;
  pendingSummaries: Set<Promise<void>>;
}

export function createEnclaveWorker(options: EnclaveWorkerOptions): EnclaveWorker {
  const now = options.now ?? Date.now;
  const baseFetch: FetchFunction = options.fetch ?? ((input, init) => fetch(input, init));
  const networkFetch = options.networkFetch ?? ((request: Request) => fetch(request));
  const createTofuStore = options.createTofuStore ?? createIndexedDbTofuStore;
  const configStore = options.configStore ?? createIndexedDbConfigStore(options.scope);
  const ownOrigin = new URL(options.scope).origin;

  function emptyStatus(config: WorkerConfig | undefined, id: string | null): ChannelStatus {
    return {
      state: 'idle',
      scope: options.scope,
      origin: config?.origin ?? null,
      suite: config?.keyExchange ?? null,
      policy: config?.pcrPolicy.kind ?? null,
      configId: id,
      profiles: config?.pcrPolicy.kind === 'pinned' ? config.pcrPolicy.profiles.map((p) => p.name) : [],
      session: null,
      lastError: null,
      requests: { succeeded: 0, failed: 0 },
    };
  }

  function configuredChannel(config: WorkerConfig, id: string): Channel {
    return {
      config,
      id,
      failure: undefined,
      status: emptyStatus(config, id),
      client: undefined,
      tofuStore: config.pcrPolicy.kind === 'tofu' ? createTofuStore({ scope: options.scope, origin: config.origin, suite: config.keyExchange }) : undefined,
      summaries: new Map(),
      pendingSummaries: new Set(),
    };
  }

  /** A channel that fails every request with `failure` (and says so in its status). */
  function unconfiguredChannel(failure: SteveBrowserError): Channel {
    const status = emptyStatus(undefined, null);
    status.state = 'failed';
    status.lastError = { code: failure.code, stage: failure.stage, message: failure.message, status: 502, atMs: now() };
    return { config: undefined, id: null, failure, status, client: undefined, tofuStore: undefined, summaries: new Map(), pendingSummaries: new Set() };
  }

  /** The channel new requests use; replaced as a whole when the config changes. */
  let current = unconfiguredChannel(configError('enclave config: the worker is still reading its stored config'));
  let loading = true;

  /** Reads the stored config; with none, or one it cannot use, the worker fails closed until a page configures it. */
  async function loadStoredConfig(): Promise<void> {
    let text: string | null;
    try {
      text = await configStore.load();
    } catch (error) {
      current = unconfiguredChannel(configError('enclave config: the stored config could not be read; a page must configure the worker again', error));
      return;
    }
    if (text === null) {
      current = unconfiguredChannel(configError('enclave config: none yet; a page must configure the worker (registerEnclaveServiceWorker)'));
      return;
    }
    try {
      const config = parseWorkerConfig(text);
      current = configuredChannel(config, await workerConfigId(config));
    } catch (error) {
      // Another version's config, or a damaged record: the page's next configure replaces it.
      const reason = error instanceof SteveBrowserError ? error.message : 'enclave config: unusable';
      current = unconfiguredChannel(configError(`${reason} (the stored config)`, error));
    }
  }

  const ready = loadStoredConfig().finally(() => {
    loading = false;
  });
  /** Config changes run one at a time, after the stored config was read, so the last one wins in full. */
  let configuring: Promise<unknown> = ready;

  /** Validates `text`, stores it and only then makes it the current config; the same config changes nothing. */
  async function applyConfig(text: unknown): Promise<void> {
    const config = parseWorkerConfig(text);
    const id = await workerConfigId(config);
    if (id === current.id) return;
    try {
      await configStore.save(encodeWorkerConfig(config));
    } catch (error) {
      // Not used unstored: a restart would bring back the old config under pages that configured this one.
      throw new SteveBrowserError('STEVE_BROWSER_WORKER', 'worker', 'the worker could not store the new config, so it keeps the old one', { cause: error });
    }
    const previous = current;
    current = configuredChannel(config, id);
    previous.client?.close();
  }

  function configure(text: unknown): Promise<void> {
    const run = configuring.then(() => applyConfig(text));
    configuring = run.catch(() => undefined);
    return run;
  }

  /** The STEVE client's fetch for `channel`: the global one, plus a copy of each session response for the status. */
  function capturingFetch(channel: Channel): FetchFunction {
    return async (input, init) => {
      const response = await baseFetch(input, init);
      if (response.status === 200 && response.body !== null && new URL(input).pathname === SESSION_PATH) {
        const copy = response.clone();
        const pending = readAtMost(copy, MAX_SESSION_RESPONSE_BYTES)
          .then((bytes) => {
            const summary = summariseSessionResponse(bytes);
            channel.summaries.set(summary.sessionId, summary);
            while (channel.summaries.size > MAX_SUMMARIES) channel.summaries.delete(channel.summaries.keys().next().value!);
          })
          .catch(() => undefined) // The client rejects what is malformed; nothing to show then.
          .finally(() => channel.pendingSummaries.delete(pending));
        channel.pendingSummaries.add(pending);
      }
      return response;
    };
  }

  function steveClient(channel: Channel): SteveClient {
    if (channel.failure !== undefined) throw channel.failure;
    if (channel.client === undefined) {
      const c = channel.config!;
      try {
        channel.client = createSteveClient({
          origin: c.origin,
          keyExchange: c.keyExchange,
          ...(c.pcrPolicy.kind === 'pinned' ? { pcrPolicy: profilesForClient(c.pcrPolicy) } : { tofuStore: channel.tofuStore! }),
          ...(c.root !== null ? { root: base64ToBytes(c.root) } : {}),
          allowDebug: c.allowDebug,
          ...(c.requestTimeoutMs !== null ? { requestTimeoutMs: c.requestTimeoutMs } : {}),
          fetch: capturingFetch(channel),
          now,
        });
      } catch (error) {
        channel.failure = asClientError(error);
        throw channel.failure;
      }
    }
    return channel.client;
  }

  async function noteSuccess(channel: Channel, receipt: SteveReceipt | undefined): Promise<void> {
    const status = channel.status;
    status.requests.succeeded++;
    status.state = 'verified';
    status.lastError = null;
    if (receipt === undefined || status.session?.sessionId === receipt.sessionId) return;
    if (!channel.summaries.has(receipt.sessionId)) await Promise.all([...channel.pendingSummaries]);
    const summary = channel.summaries.get(receipt.sessionId);
    status.session = {
      sessionId: receipt.sessionId,
      suite: receipt.suite,
      trust: trustOf(receipt),
      pcrs: summary?.pcrs ?? [],
      moduleId: summary?.moduleId ?? '',
      documentTimeMs: summary?.documentTimeMs ?? 0,
      rootSha256: summary?.rootSha256 ?? '',
      createdAtMs: receipt.sessionCreatedAtMs,
    };
  }

  /** Records a failed request in `channel`'s status; the HTTP status the page gets for it. */
  function noteFailure(channel: Channel, coded: SteveClientError | SteveBrowserError): number {
    const httpStatus = coded.code === 'STEVE_CLIENT_TIMEOUT' ? 504 : 502;
    const status = channel.status;
    status.requests.failed++;
    status.state = 'failed';
    status.lastError = { code: coded.code, stage: coded.stage, message: coded.message, status: httpStatus, atMs: now() };
    // A failure before or while establishing, or one that ended the session, leaves nothing verified.
    if (coded.stage !== 'request' || (coded instanceof SteveClientError && coded.sessionEnded)) status.session = null;
    return httpStatus;
  }

  /** The worker's own 502/504; recorded in `channel`'s status unless null (a request meant for another config). */
  function failure(channel: Channel | null, error: unknown): Response {
    const coded = asClientError(error);
    const httpStatus = channel !== null ? noteFailure(channel, coded) : coded.code === 'STEVE_CLIENT_TIMEOUT' ? 504 : 502;
    return new Response(CHANNEL_FAILED_BODY, {
      status: httpStatus,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store', [ERROR_HEADER]: coded.code, [STAGE_HEADER]: coded.stage },
    });
  }

  /**
   * The app's answer for the page: its `x-steve-*` headers dropped, the worker's added, its body passed on
   * as it arrives (a failure in the middle errors the page's stream and is noted in `channel`'s status).
   */
  function relabel(channel: Channel, response: Response, receipt: SteveReceipt | undefined): Response {
    const headers = new Headers();
    response.headers.forEach((value, name) => {
      if (!name.startsWith(HEADER_PREFIX)) headers.append(name, value);
    });
    if (receipt !== undefined) {
      headers.set(SESSION_HEADER, receipt.sessionId);
      headers.set(SEQUENCE_HEADER, String(receipt.sequence));
    }
    const body = passBody(response.body, (error) => {
      noteFailure(channel, asClientError(error));
    });
    return new Response(body, { status: response.status, statusText: response.statusText, headers });
  }

  async function forward(request: Request, url: URL): Promise<Response> {
    // The channel of the moment the request is handled carries it to the end, even if the config changes.
    const channel = current;
    const expected = request.headers.get(CONFIG_HEADER);
    if (expected !== null && channel.id !== null && expected !== channel.id) {
      // Another page configured the worker since this one did: nothing is sent under a config it did not ask for.
      return failure(null, configError("enclave config: the worker's config changed since this page configured it; reload the page"));
    }
    try {
      const steve = steveClient(channel);
      if (url.origin !== channel.config!.origin || passesThrough(request.method, url)) {
        throw new SteveClientError('STEVE_CLIENT_BAD_REQUEST', 'request', `${request.method} ${url.pathname} is not a request to send through the channel`);
      }
      const method = request.method;
      let body: Uint8Array | null = null;
      if (method !== 'GET' && method !== 'HEAD') {
        const bytes = new Uint8Array(await request.arrayBuffer());
        body = bytes.length > 0 ? bytes : null;
      }
      const headers = new Headers(request.headers);
      headers.delete(CONFIG_HEADER);
      const response = await steve.request(`${url.pathname}${url.search}`, { method, headers, body, signal: request.signal });
      const receipt = steve.receiptFor(response);
      await noteSuccess(channel, receipt);
      return relabel(channel, response, receipt);
    } catch (error) {
      return failure(channel, error);
    }
  }

  /** Ours: requests from the page's `send` (they name a config), and the rest to the enclave origin. */
  function isOurs(request: Request, url: URL): boolean {
    return request.headers.has(CONFIG_HEADER) || url.origin === (current.config?.origin ?? ownOrigin);
  }

  return {
    get status() {
      return structuredClone(current.status);
    },
    ready,
    handleFetch(request) {
      const url = new URL(request.url);
      if (!request.headers.has(CONFIG_HEADER) && passesThrough(request.method, url)) return null;
      // Until the stored config is read, the enclave origin is unknown: hold the request, then decide.
      if (loading) return ready.then(() => (isOurs(request, url) ? forward(request, url) : networkFetch(request)));
      return isOurs(request, url) ? forward(request, url) : null;
    },
    async handleCommand(command) {
      try {
        await ready;
        const channel = current;
        switch (command.type) {
          case 'steve/configure':
            await configure(command.config);
            break;
          case 'steve/status':
          case 'steve/claim':
            break;
          case 'steve/rotate':
            channel.client?.endSession();
            channel.status.session = null;
            channel.status.state = 'idle';
            break;
          case 'steve/reset':
            channel.client?.close();
            channel.client = undefined;
            await channel.tofuStore?.clear();
            channel.status.session = null;
            channel.status.lastError = channel.failure === undefined ? null : channel.status.lastError;
            channel.status.state = channel.failure === undefined ? 'idle' : 'failed';
            channel.status.requests = { succeeded: 0, failed: 0 };
            break;
          default:
            throw new SteveBrowserError('STEVE_BROWSER_WORKER', 'worker', 'unknown command');
        }
        return { ok: true, status: structuredClone(current.status) };
      } catch (error) {
        const coded = asClientError(error);
        return { ok: false, error: { code: coded.code, stage: coded.stage, message: coded.message } };
      }
    },
  };
}
