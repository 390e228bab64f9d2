/**
 * EifError: the one error class of the EIF part. Every refusal of an image carries a stable `code`, so
 * callers (the CLI, `verify --eif`, a browser) match on the code, never on the message. Messages name
 * fields and numbers, never echo section contents.
 */

export type EifErrorCode =
  /** The bytes end before the header or a section does. */
  | 'EIF_TRUNCATED'
  /** Bytes after the last section the header declares. */
  | 'EIF_TRAILING_BYTES'
  | 'EIF_MAGIC'
  | 'EIF_VERSION'
  /** A header field out of range: flags, reserved fields, the offset table, default memory or CPUs. */
  | 'EIF_HEADER'
  /** The image, as its header declares it, is larger than the reader's `maxBytes`. */
  | 'EIF_TOO_LARGE'
  /** A section header or the set of sections: count, type, flags, size, order, duplicates, missing ones. */
  | 'EIF_SECTION'
  | 'EIF_CRC'
  | 'EIF_CMDLINE'
  | 'EIF_METADATA'
  | 'EIF_SIGNATURE'
  /** A caller's argument (the writer's inputs, a reader used after it finished). */
  | 'EIF_BAD_ARGUMENT';

export class EifError extends Error {
  readonly code: EifErrorCode;

  constructor(code: EifErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EifError';
    this.code = code;
  }
}
