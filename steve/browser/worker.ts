/**
 * The enclave worker's logic, apart from the service worker events that drive it (enclave-sw.ts), so it
 * also runs in Node's tests: which fetches go through STEVE, how they are sent, what the page gets back,
 * and the status the attestation widget shows.
 *
 * Routing (specs/steve.md §6): a request to the enclave origin goes through the STEVE client unless it is
 * one the agent serves outside STEVE: `GET`/`HEAD` of `/` and of the bootstrap files, `/attestation`,
 * `/e2p/...` (the channel's own endpoints) and the health paths. Requests to other origins are left alone.
 * Failures never fall back to plaintext: the page gets `502 {"error":"secure channel failed"}` (504 when
 * the deadline passed) with the client's code and stage in `x-steve-error` / `x-steve-stage`. A worker
 * whose config is invalid fails every request to its own origin the same way.
 *
 * Status: the session response is copied as it passes to the STEVE client and summarised
 * (document-summary.ts); once a request succeeds on a session, that session's summary becomes the status.
 * The client alone decides trust; the copy is for display. Nothing is retried: a failed request is the
 * page's to repeat (the client never replays, specs/steve.md §5).
 */

import { SteveClientError, createSteveClient, type FetchFunction, type SteveClient, type SteveReceipt } from '../client/index.js';
import { MAX_SESSION_RESPONSE_BYTES, passesThrough } from '../protocol/index.js';
import { base64ToBytes } from './encoding.js';
import { parseWorkerConfig, profilesForClient, type WorkerConfig } from './config.js';
import { summariseSessionResponse, type DocumentSummary } from './document-summary.js';
import { SteveBrowserError } from './errors.js';
import {
  CHANNEL_FAILED_BODY,
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
  /** The worker's script URL, which carries the config (config.ts). */
  scriptUrl: string;
  /** The registration's scope, part of the TOFU record's key. */
  scope: string;
  /** Default: the global fetch. */
  fetch?: FetchFunction;
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
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

function trustOf(receipt: SteveReceipt): TrustResult {
  if (receipt.pcrPolicy === 'pinned') return { policy: 'pinned', profile: receipt.pcrTrust };
  return { policy: 'tofu', result: receipt.pcrTrust === 'tofu-recorded' ? 'tofu-recorded' : 'tofu-matched' };
}

export function createEnclaveWorker(options: EnclaveWorkerOptions): EnclaveWorker {
  const now = options.now ?? Date.now;
  const baseFetch: FetchFunction = options.fetch ?? ((input, init) => fetch(input, init));
  const ownOrigin = new URL(options.scriptUrl).origin;

  let config: WorkerConfig | undefined;
  let configFailure: SteveBrowserError | SteveClientError | undefined;
  try {
    config = parseWorkerConfig(options.scriptUrl);
  } catch (error) {
    configFailure = asClientError(error);
  }
  const tofuStore =
    config?.pcrPolicy.kind === 'tofu' ? (options.createTofuStore ?? createIndexedDbTofuStore)({ scope: options.scope, origin: config.origin, suite: config.keyExchange }) : undefined;

  const status: ChannelStatus = {
    state: 'idle',
    scope: options.scope,
    origin: config?.origin ?? null,
    suite: config?.keyExchange ?? null,
    policy: config?.pcrPolicy.kind ?? null,
    profiles: config?.pcrPolicy.kind === 'pinned' ? config.pcrPolicy.profiles.map((p) => p.name) : [],
    session: null,
    lastError: null,
    requests: { succeeded: 0, failed: 0 },
  };
  if (configFailure !== undefined) {
    status.state = 'failed';
    status.lastError = { code: configFailure.code, stage: configFailure.stage, message: configFailure.message, status: 502, atMs: now() };
  }

  const summaries = new Map<string, DocumentSummary>();
  const pendingSummaries = new Set<Promise<void>>();

  /** The STEVE client's fetch: the global one, plus a copy of each session response for the status. */
  const capturingFetch: FetchFunction = async (input, init) => {
    const response = await baseFetch(input, init);
    if (response.status === 200 && response.body !== null && new URL(input).pathname === SESSION_PATH) {
      const copy = response.clone();
      const pending = readAtMost(copy, MAX_SESSION_RESPONSE_BYTES)
        .then((bytes) => {
          const summary = summariseSessionResponse(bytes);
          summaries.set(summary.sessionId, summary);
          while (summaries.size > MAX_SUMMARIES) summaries.delete(summaries.keys().next().value!);
        })
        .catch(() => undefined) // The client rejects what is malformed; nothing to show then.
        .finally(() => pendingSummaries.delete(pending));
      pendingSummaries.add(pending);
    }
    return response;
  };

  let client: SteveClient | undefined;
  function steveClient(): SteveClient {
    if (configFailure !== undefined) throw configFailure;
    if (client === undefined) {
      const c = config!;
      try {
        client = createSteveClient({
          origin: c.origin,
          keyExchange: c.keyExchange,
          ...(c.pcrPolicy.kind === 'pinned' ? { pcrPolicy: profilesForClient(c.pcrPolicy) } : { tofuStore: tofuStore! }),
          ...(c.root !== null ? { root: base64ToBytes(c.root) } : {}),
          allowDebug: c.allowDebug,
          ...(c.requestTimeoutMs !== null ? { requestTimeoutMs: c.requestTimeoutMs } : {}),
          fetch: capturingFetch,
          now,
        });
      } catch (error) {
        configFailure = asClientError(error);
        throw configFailure;
      }
    }
    return client;
  }

  async function noteSuccess(receipt: SteveReceipt | undefined): Promise<void> {
    status.requests.succeeded++;
    status.state = 'verified';
    status.lastError = null;
    if (receipt === undefined || status.session?.sessionId === receipt.sessionId) return;
    if (!summaries.has(receipt.sessionId)) await Promise.all([...pendingSummaries]);
    const summary = summaries.get(receipt.sessionId);
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

  function failure(error: unknown): Response {
    const coded = asClientError(error);
    const httpStatus = coded.code === 'STEVE_CLIENT_TIMEOUT' ? 504 : 502;
    status.requests.failed++;
    status.state = 'failed';
    status.lastError = { code: coded.code, stage: coded.stage, message: coded.message, status: httpStatus, atMs: now() };
    // A failure before or while establishing, or one that ended the session, leaves nothing verified.
    if (coded.stage !== 'request' || (coded instanceof SteveClientError && coded.sessionEnded)) status.session = null;
    return new Response(CHANNEL_FAILED_BODY, {
      status: httpStatus,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store', [ERROR_HEADER]: coded.code, [STAGE_HEADER]: coded.stage },
    });
  }

  /** The app's answer for the page: its `x-steve-*` headers dropped, the worker's added. */
  function relabel(response: Response, receipt: SteveReceipt | undefined): Response {
    const headers = new Headers();
    response.headers.forEach((value, name) => {
      if (!name.startsWith(HEADER_PREFIX)) headers.append(name, value);
    });
    if (receipt !== undefined) {
      headers.set(SESSION_HEADER, receipt.sessionId);
      headers.set(SEQUENCE_HEADER, String(receipt.sequence));
    }
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  }

  async function forward(request: Request, url: URL): Promise<Response> {
    try {
      const method = request.method;
      let body: Uint8Array | null = null;
      if (method !== 'GET' && method !== 'HEAD') {
        const bytes = new Uint8Array(await request.arrayBuffer());
        body = bytes.length > 0 ? bytes : null;
      }
      const steve = steveClient();
      const response = await steve.request(`${url.pathname}${url.search}`, { method, headers: request.headers, body, signal: request.signal });
      const receipt = steve.receiptFor(response);
      await noteSuccess(receipt);
      return relabel(response, receipt);
    } catch (error) {
      return failure(error);
    }
  }

  function snapshot(): ChannelStatus {
    return structuredClone(status);
  }

  return {
    get status() {
      return snapshot();
    },
    handleFetch(request) {
      const url = new URL(request.url);
      const enclaveOrigin = config?.origin ?? ownOrigin;
      if (url.origin !== enclaveOrigin || passesThrough(request.method, url)) return null;
      return forward(request, url);
    },
    async handleCommand(command) {
      try {
        switch (command.type) {
          case 'steve/status':
          case 'steve/claim':
            break;
          case 'steve/rotate':
            client?.endSession();
            status.session = null;
            status.state = 'idle';
            break;
          case 'steve/reset':
            client?.close();
            client = undefined;
            await tofuStore?.clear();
            status.session = null;
            status.lastError = configFailure === undefined ? null : status.lastError;
            status.state = configFailure === undefined ? 'idle' : 'failed';
            status.requests = { succeeded: 0, failed: 0 };
            break;
          default:
            throw new SteveBrowserError('STEVE_BROWSER_WORKER', 'worker', 'unknown command');
        }
        return { ok: true, status: snapshot() };
      } catch (error) {
        const coded = asClientError(error);
        return { ok: false, error: { code: coded.code, stage: coded.stage, message: coded.message } };
      }
    },
  };
}
