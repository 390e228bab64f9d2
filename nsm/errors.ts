/**
 * NsmError: the one error class of the NSM layer (device, mock, codec, documents, verifier).
 *
 * Callers match on `code`, never on `message`. Codes come in three families:
 * - `NSM_*` from talking to the module: `NSM_DEVICE_UNAVAILABLE`, `NSM_E<ERRNO>` for a failed ioctl
 *   (specs/nsm.md §1), and one per NSM error reply (`{"Error": "InvalidIndex"}` -> `NSM_INVALID_INDEX`, §2);
 * - `ATTESTATION_*` from parsing and verifying attestation documents;
 * - `MOCK_PKI_*` from loading a mock PKI.
 * This file is pure: browser-safe, no `node:` imports.
 */

export type NsmErrorCode =
  | 'NSM_DEVICE_UNAVAILABLE'
  | 'NSM_DEVICE_CLOSED'
  | 'NSM_BAD_ARGUMENT'
  | 'NSM_BAD_RESPONSE'
  | `NSM_E${string}`
  | 'NSM_INVALID_ARGUMENT'
  | 'NSM_INVALID_INDEX'
  | 'NSM_INVALID_RESPONSE'
  | 'NSM_READ_ONLY_INDEX'
  | 'NSM_INVALID_OPERATION'
  | 'NSM_BUFFER_TOO_SMALL'
  | 'NSM_INPUT_TOO_LARGE'
  | 'NSM_INTERNAL_ERROR'
  | 'ATTESTATION_MALFORMED'
  | 'ATTESTATION_UNSUPPORTED_ALGORITHM'
  | 'ATTESTATION_BAD_SIGNATURE'
  | 'ATTESTATION_CHAIN'
  | 'ATTESTATION_ROOT'
  | 'ATTESTATION_EXPIRED'
  | 'ATTESTATION_NONCE'
  | 'ATTESTATION_PCR'
  | 'ATTESTATION_DEBUG'
  | 'ATTESTATION_USER_DATA'
  | 'ATTESTATION_PUBLIC_KEY'
  | 'MOCK_PKI_INVALID';

export class NsmError extends Error {
  readonly code: NsmErrorCode;
  /** errno name (`EINVAL`) when the error came from the kernel. */
  readonly errno?: string;

  constructor(code: NsmErrorCode, message: string, options?: { cause?: unknown; errno?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NsmError';
    this.code = code;
    if (options?.errno !== undefined) this.errno = options.errno;
  }
}

/** NSM error reply names (specs/nsm.md §2) mapped to our codes. */
export const NSM_REPLY_ERROR_CODES: Readonly<Record<string, NsmErrorCode>> = Object.freeze({
  InvalidArgument: 'NSM_INVALID_ARGUMENT',
  InvalidIndex: 'NSM_INVALID_INDEX',
  InvalidResponse: 'NSM_INVALID_RESPONSE',
  ReadOnlyIndex: 'NSM_READ_ONLY_INDEX',
  InvalidOperation: 'NSM_INVALID_OPERATION',
  BufferTooSmall: 'NSM_BUFFER_TOO_SMALL',
  InputTooLarge: 'NSM_INPUT_TOO_LARGE',
  InternalError: 'NSM_INTERNAL_ERROR',
});
