/**
 * SteveError: the one error class of the STEVE channel (protocol, server, client).
 *
 * Callers match on `code`, never on `message`; a server maps codes to HTTP statuses in one table and
 * tells the peer only a short code (specs/steve.md §7). Messages name what was wrong but never echo
 * secret bytes. A lower layer's error (CborError, a noble exception) is kept as `cause`, for the local
 * log only. Pure: browser-safe, no `node:` imports.
 */

export type SteveErrorCode =
  /** A malformed message: bad CBOR, a missing, unknown or mistyped field, a wrong length (§2, §3). */
  | 'STEVE_PROTOCOL'
  /** An unknown key-exchange suite, or one the deployment does not pin (§1). */
  | 'STEVE_SUITE'
  /** An AEAD record that did not open (§4). */
  | 'STEVE_DECRYPT'
  /** An application sequence already seen or older than the 64-wide window (§7). */
  | 'STEVE_REPLAY'
  /** Key material of the wrong length, an all-zero X25519 output, a key the KEM refuses (§1). */
  | 'STEVE_KEY'
  /** An attestation `user_data` that does not bind this session (§5 step 3). */
  | 'STEVE_BINDING'
  /** An input over one of the §6 size limits. */
  | 'STEVE_TOO_LARGE'
  /** A caller's mistake (wrong argument type or length, a sequence out of range): never a peer's. */
  | 'STEVE_BAD_ARGUMENT'
  /** Unknown or expired session, for the server's table (§7: 401 session_invalid). */
  | 'STEVE_SESSION_INVALID'
  /** A request before confirmation (§7: 425 session_unconfirmed). */
  | 'STEVE_SESSION_UNCONFIRMED'
  /** The session table is full (§7: 429 busy). */
  | 'STEVE_BUSY';

export class SteveError extends Error {
  readonly code: SteveErrorCode;

  constructor(code: SteveErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SteveError';
    this.code = code;
  }
}

/** Every code, for tests that assert "only known codes ever come out". */
export const STEVE_ERROR_CODES: readonly SteveErrorCode[] = Object.freeze([
  'STEVE_PROTOCOL',
  'STEVE_SUITE',
  'STEVE_DECRYPT',
  'STEVE_REPLAY',
  'STEVE_KEY',
  'STEVE_BINDING',
  'STEVE_TOO_LARGE',
  'STEVE_BAD_ARGUMENT',
  'STEVE_SESSION_INVALID',
  'STEVE_SESSION_UNCONFIRMED',
  'STEVE_BUSY',
]);
