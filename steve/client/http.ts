/**
 * The client's HTTP edge, web-standard only (fetch, AbortController, ReadableStream): one POST of CBOR to a
 * STEVE endpoint as specs/steve.md §2 wants it (no credentials, redirects refused), bodies read
 * incrementally under a cap (§6: stop reading, and cancel, as soon as the cap is passed), and deadlines
 * that abort everything in flight. Errors come out as SteveClientError with the stage the caller names.
 */

import { joinBytes } from '../protocol/index.js';
import { SteveClientError, printable, type SteveClientStage } from './errors.js';

/** What the client needs of `fetch`: the global one, or any function with its signature (tests, SDKs). */
export type FetchFunction = (input: string, init: RequestInit) => Promise<Response>;

/** A deadline over one exchange: aborts `signal` after `ms`, or when `parent` (the caller's signal) aborts. */
export interface Deadline {
  readonly signal: AbortSignal;
  /** True once the timer fired (as opposed to the caller aborting). */
  readonly timedOut: boolean;
  /** True once the caller's signal aborted. */
  readonly callerAborted: boolean;
  /** Throws TIMEOUT or ABORTED when the deadline has passed: call after every await and long sync step. */
  check(stage: SteveClientStage): void;
  dispose(): void;
}

export function createDeadline(ms: number, what: string, parent?: AbortSignal | null): Deadline {
  const controller = new AbortController();
  let timedOut = false;
  let callerAborted = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, ms);
  const onAbort = (): void => {
    callerAborted = true;
    controller.abort();
  };
  if (parent) {
    if (parent.aborted) onAbort();
    else parent.addEventListener('abort', onAbort, { once: true });
  }
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    get callerAborted() {
      return callerAborted;
    },
    check(stage) {
      if (timedOut) throw new SteveClientError('STEVE_CLIENT_TIMEOUT', stage, `${what}: no answer within ${ms} ms`);
      if (callerAborted) throw new SteveClientError('STEVE_CLIENT_ABORTED', stage, `${what}: aborted by the caller`);
    },
    dispose() {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onAbort);
    },
  };
}

/**
 * Turns whatever a fetch or a body read threw into a coded error: the deadline's verdict first (an abort
 * surfaces as an AbortError), a SteveClientError as it is, anything else as NETWORK.
 */
export function networkError(error: unknown, deadline: Deadline, stage: SteveClientStage, what: string): SteveClientError {
  if (error instanceof SteveClientError) return error;
  try {
    deadline.check(stage);
  } catch (verdict) {
    return verdict as SteveClientError;
  }
  const name = error instanceof Error ? error.name : 'error';
  return new SteveClientError('STEVE_CLIENT_NETWORK', stage, `${what}: the request failed (${name})`, { cause: error });
}

/** POSTs CBOR to `url` the way §2 prescribes; throws NETWORK / TIMEOUT / ABORTED. */
export async function postCbor(fetchFunction: FetchFunction, url: string, body: Uint8Array, deadline: Deadline, stage: SteveClientStage, what: string): Promise<Response> {
  try {
    return await fetchFunction(url, {
      method: 'POST',
      headers: { 'content-type': 'application/cbor', accept: 'application/cbor' },
      body: body as Uint8Array<ArrayBuffer>,
      credentials: 'omit',
      redirect: 'error',
      signal: deadline.signal,
    });
  } catch (error) {
    throw networkError(error, deadline, stage, what);
  }
}

/** Discards a body unread (lets the connection go); never throws. */
export function discardBody(response: Response): void {
  response.body?.cancel().catch(() => undefined);
}

/**
 * Reads the whole body, or throws TOO_LARGE as soon as more than `maxBytes` were declared or arrived:
 * chunks are counted as they come, so an endless body costs at most `maxBytes` of memory.
 */
export async function readCapped(response: Response, maxBytes: number, deadline: Deadline, stage: SteveClientStage, what: string): Promise<Uint8Array> {
  const tooLarge = () => new SteveClientError('STEVE_CLIENT_TOO_LARGE', stage, `${what}: the answer is larger than ${maxBytes} bytes; cut off`);
  const declared = response.headers.get('content-length');
  if (declared !== null && /^\d+$/.test(declared.trim()) && Number(declared.trim()) > maxBytes) {
    discardBody(response);
    throw tooLarge();
  }
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > maxBytes) {
        reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(value);
    }
  } catch (error) {
    throw networkError(error, deadline, stage, what);
  } finally {
    reader.releaseLock();
  }
  return chunks.length === 1 ? chunks[0]! : joinBytes(chunks);
}

/** Largest error body read for its `{"error": code}` (§7: "a small JSON object"). */
const ERROR_BODY_MAX_BYTES = 4_096;

/**
 * The coded error for a non-200 answer, with the server's short `{"error": code}` when it sent one
 * (escaped: it is the server's text). The body is read under a small cap; failing to read it is ignored.
 */
export async function httpError(response: Response, deadline: Deadline, stage: SteveClientStage, what: string): Promise<SteveClientError> {
  let serverError: string | undefined;
  try {
    const bytes = await readCapped(response, ERROR_BODY_MAX_BYTES, deadline, stage, what);
    const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    const error = typeof value === 'object' && value !== null ? (value as Record<string, unknown>).error : undefined;
    if (error !== undefined) serverError = printable(typeof error === 'string' ? error : JSON.stringify(error) ?? '', 80);
  } catch {
    // Not JSON, too large, cut off: the status alone is the answer.
  }
  const status = response.status;
  return new SteveClientError('STEVE_CLIENT_HTTP', stage, `${what}: HTTP ${status}${serverError === undefined ? '' : ` (${serverError})`}`, {
    status,
    ...(serverError === undefined ? {} : { serverError }),
  });
}
