/**
 * The one table from failures to outer HTTP answers (specs/steve.md §6-§7, STYLE.md "Errors"): every
 * SteveError code, plus the few conditions only the server knows (a slow body, the NSM failing, an
 * unknown path), each with its status and its exact small JSON body. Every answer carries
 * `Cache-Control: no-store`. The peer learns the short code only; the detail (the SteveError's message)
 * goes to the local log, never into a body.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { SteveError, type SteveErrorCode } from '../errors.js';

export interface Reply {
  readonly status: number;
  /** The exact body, `{"error":"<code>"}`. */
  readonly body: Buffer;
  /** The short code in the body, for logs and metrics. */
  readonly error: string;
}

function reply(status: number, error: string): Reply {
  return Object.freeze({ status, error, body: Buffer.from(JSON.stringify({ error })) });
}

// §6: "a malformed session request gets 400 {"error":"protocol_error"}"; §7 the rest.
const PROTOCOL_ERROR = reply(400, 'protocol_error');
const SESSION_INVALID = reply(401, 'session_invalid');
const INTERNAL = reply(500, 'internal');

/** SteveError code -> answer. Total over SteveErrorCode, so a new code fails the type check here. */
export const REPLY_FOR_CODE: Readonly<Record<SteveErrorCode, Reply>> = Object.freeze({
  STEVE_PROTOCOL: PROTOCOL_ERROR,
  // §1/§3: the request's key_exchange must equal the deployment's suite; no negotiation.
  STEVE_SUITE: PROTOCOL_ERROR,
  // Key material the KEM refuses, an all-zero X25519 output: a malformed session request.
  STEVE_KEY: PROTOCOL_ERROR,
  // §7: "unknown/expired session, failed AEAD -> 401".
  STEVE_DECRYPT: SESSION_INVALID,
  STEVE_SESSION_INVALID: SESSION_INVALID,
  STEVE_REPLAY: reply(409, 'replay'),
  STEVE_SESSION_UNCONFIRMED: reply(425, 'session_unconfirmed'),
  STEVE_BUSY: reply(429, 'busy'),
  STEVE_TOO_LARGE: reply(413, 'too_large'),
  // The server never checks a binding and never passes a bad argument to the core: a bug of ours.
  STEVE_BINDING: INTERNAL,
  STEVE_BAD_ARGUMENT: INTERNAL,
});

/** Answers for conditions that are not a SteveError. */
export const SERVER_REPLIES = Object.freeze({
  /** §6 fail-closed routing: an ordinary request while end-to-end encryption is required. */
  e2eRequired: reply(403, 'e2e_required'),
  notFound: reply(404, 'not_found'),
  methodNotAllowed: reply(405, 'method_not_allowed'),
  /** The body did not arrive within its deadline (clients treat 408 as a failed request, §6). */
  timeout: reply(408, 'timeout'),
  /** The NSM failed or did not answer in time; the session is not created. */
  attestationUnavailable: reply(503, 'attestation_unavailable'),
  internal: INTERNAL,
});

/** A server-only condition carried to the one place that answers (not a SteveError: no code of the channel). */
export class ReplyError extends Error {
  constructor(
    readonly reply: Reply,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ReplyError';
  }
}

export function replyFor(error: unknown): Reply {
  if (error instanceof SteveError) return REPLY_FOR_CODE[error.code] ?? INTERNAL;
  if (error instanceof ReplyError) return error.reply;
  return INTERNAL;
}

/**
 * Ours: after refusing a request whose body was not read to its end, keep reading (and discarding) for
 * at most this long or this many bytes before closing. Closing a socket with unread data makes the
 * kernel send a reset, which can destroy the answer before the client reads it ("lingering close", as
 * HTTP servers do); nothing read here is kept.
 */
const LINGER_MS = 2000;
const LINGER_MAX_BYTES = 8 * 1024 * 1024;

/**
 * Writes `reply` (JSON, no-store) unless headers already went out. With `unreadBody` (an answer given
 * before the body was read to its end: 413, 408, ...) the connection closes after the answer, once the
 * client stopped sending or the linger budget is spent.
 */
export function sendReply(res: ServerResponse, reply: Reply, headers: Record<string, string> = {}, unreadBody?: IncomingMessage): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const extra: Record<string, string> = { ...headers };
  if (unreadBody !== undefined) extra.connection = 'close';
  // The v2 endpoints answer a CORS preflight too; a caller with other methods says so in `headers`.
  if (reply.status === 405) extra.allow ??= 'POST, OPTIONS';
  res.writeHead(reply.status, { ...extra, 'content-type': 'application/json', 'content-length': String(reply.body.length), 'cache-control': 'no-store' });
  if (unreadBody === undefined || unreadBody.readableEnded || unreadBody.destroyed) {
    res.end(reply.body);
    return;
  }
  // The whole answer goes out now; ending the response (which closes the socket) waits.
  res.write(reply.body);
  let discarded = 0;
  const finish = (): void => {
    clearTimeout(timer);
    unreadBody.off('data', onData).off('end', finish).off('error', finish);
    if (!res.writableEnded) res.end();
  };
  const onData = (chunk: Buffer): void => {
    discarded += chunk.length;
    if (discarded > LINGER_MAX_BYTES) finish();
  };
  const timer = setTimeout(finish, LINGER_MS);
  timer.unref();
  unreadBody.on('data', onData).on('end', finish).on('error', finish);
  unreadBody.resume();
}
