/**
 * CborError: the one error class of the strict CBOR codec. Callers (the NSM layer, STEVE) wrap it in
 * their own coded errors; the `code` says what was wrong with the bytes, never echoing them.
 */

export type CborErrorCode =
  | 'CBOR_TRUNCATED'
  | 'CBOR_TRAILING_BYTES'
  | 'CBOR_MALFORMED'
  | 'CBOR_UNSUPPORTED'
  | 'CBOR_INDEFINITE_LENGTH'
  | 'CBOR_NON_CANONICAL'
  | 'CBOR_DUPLICATE_KEY'
  | 'CBOR_BAD_KEY'
  | 'CBOR_TOO_DEEP'
  /** More data items than the decoder's `maxItems` budget (decode.ts). */
  | 'CBOR_TOO_MANY_ITEMS'
  | 'CBOR_INTEGER_RANGE'
  | 'CBOR_INVALID_UTF8'
  | 'CBOR_ENCODE';

export class CborError extends Error {
  readonly code: CborErrorCode;
  /** Byte offset where decoding stopped (decode errors only). */
  readonly offset: number;

  constructor(code: CborErrorCode, message: string, offset = -1) {
    super(message);
    this.name = 'CborError';
    this.code = code;
    this.offset = offset;
  }
}
