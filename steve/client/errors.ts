/**
 * SteveClientError: every failure of the STEVE client carries a stable `code` (match on it, never on the
 * message), the `stage` of the exchange it happened in, and whether it ended the session. A lower
 * layer's error (the verifier's NsmError, a SteveError from the protocol core, fetch's TypeError) is kept
 * as `cause`. Messages never hold key material; text the server chose is escaped and shortened first.
 * Web-standard only: no `node:` imports.
 */

export type SteveClientErrorCode =
  /** Bad options to createSteveClient (origin, suite, exactly one of pcrPolicy | tofuStore, ...). */
  | 'STEVE_CLIENT_CONFIG'
  /** A request the client cannot send as given (method, target on another origin, header, body type). */
  | 'STEVE_CLIENT_BAD_REQUEST'
  /** fetch itself failed (connection refused, DNS, a redirect refused by `redirect: 'error'`, CORS). */
  | 'STEVE_CLIENT_NETWORK'
  /** The outer HTTP status was not 200; `status` holds it (specs/steve.md §6). */
  | 'STEVE_CLIENT_HTTP'
  /** The establishment deadline (10 s), the request timeout (30 s) or a streamed body's idle timeout (60 s) passed. */
  | 'STEVE_CLIENT_TIMEOUT'
  /** The caller's AbortSignal fired. */
  | 'STEVE_CLIENT_ABORTED'
  /** A response over its §6 cap, or a request envelope over 32 MiB. */
  | 'STEVE_CLIENT_TOO_LARGE'
  /** A malformed answer: bad CBOR or fields, a wrong session id or sequence, a record that did not open. */
  | 'STEVE_CLIENT_PROTOCOL'
  /** The session response names another suite than the pinned one (§1: no negotiation). */
  | 'STEVE_CLIENT_SUITE'
  /** The attestation document did not verify; `cause` is the verifier's NsmError (ATTESTATION_*). */
  | 'STEVE_CLIENT_ATTESTATION'
  /** The document's user_data does not bind this session (§5 step 3). */
  | 'STEVE_CLIENT_BINDING'
  /** The PCRs match no pinned profile, differ from the TOFU record, or could not be recorded. */
  | 'STEVE_CLIENT_PCR'
  /** The server's confirmation did not open or does not seal this transcript hash (§5 step 5). */
  | 'STEVE_CLIENT_CONFIRMATION'
  /** The client was closed. */
  | 'STEVE_CLIENT_CLOSED'
  /** A streamed answer (stream.md) ended with the server's ABORT record; `serverError` is its code. The session is kept. */
  | 'STEVE_CLIENT_STREAM_ABORTED'
  /** A streamed answer's body ended, or its connection broke, before its END record: never a short success. */
  | 'STEVE_CLIENT_TRUNCATED';

/** Where in the exchange a failure happened. `config` is createSteveClient itself. */
export type SteveClientStage = 'config' | 'session' | 'attestation' | 'binding' | 'pcr' | 'confirm' | 'request';

export interface SteveClientErrorOptions {
  cause?: unknown;
  /** The outer HTTP status, for STEVE_CLIENT_HTTP. */
  status?: number;
  /** The server's short `{"error": code}`, escaped, when it sent one. */
  serverError?: string;
}

export class SteveClientError extends Error {
  readonly code: SteveClientErrorCode;
  readonly stage: SteveClientStage;
  readonly status: number | undefined;
  readonly serverError: string | undefined;
  /** True when this failure ended the session (the next request establishes a new one). */
  sessionEnded = false;

  constructor(code: SteveClientErrorCode, stage: SteveClientStage, message: string, options: SteveClientErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SteveClientError';
    this.code = code;
    this.stage = stage;
    this.status = options.status;
    this.serverError = options.serverError;
  }
}

/** Every code, for tests that assert "only known codes ever come out". */
export const STEVE_CLIENT_ERROR_CODES: readonly SteveClientErrorCode[] = Object.freeze([
  'STEVE_CLIENT_CONFIG',
  'STEVE_CLIENT_BAD_REQUEST',
  'STEVE_CLIENT_NETWORK',
  'STEVE_CLIENT_HTTP',
  'STEVE_CLIENT_TIMEOUT',
  'STEVE_CLIENT_ABORTED',
  'STEVE_CLIENT_TOO_LARGE',
  'STEVE_CLIENT_PROTOCOL',
  'STEVE_CLIENT_SUITE',
  'STEVE_CLIENT_ATTESTATION',
  'STEVE_CLIENT_BINDING',
  'STEVE_CLIENT_PCR',
  'STEVE_CLIENT_CONFIRMATION',
  'STEVE_CLIENT_CLOSED',
  'STEVE_CLIENT_STREAM_ABORTED',
  'STEVE_CLIENT_TRUNCATED',
]);

/** Escapes control and format characters (terminal escapes, bidi overrides) and caps the length. */
export function printable(text: string, maxChars = 120): string {
  const escaped = text.replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
  return escaped.length > maxChars ? `${escaped.slice(0, maxChars)}...` : escaped;
}
