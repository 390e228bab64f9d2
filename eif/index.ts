/**
 * The enclave image file (EIF) part: write and read EIF version 4 and compute the PCRs Nitro measures
 * from it (specs/nitro-enclave.md). Pure and browser-safe (no `node:` import: a browser or the verifier can
 * compute PCRs too); SHA-384 is @noble/hashes unless the caller passes another. It imports only cbor/
 * (for the signature section); file I/O and the CLI live in agent/eif-command.ts.
 */

export { EifError, type EifErrorCode } from './errors.js';
export { crc32, createCrc32, type Crc32 } from './crc32.js';
export {
  EIF_CMDLINE_MAX_BYTES,
  EIF_DEFAULT_MAX_BYTES,
  EIF_HEADER_BYTES,
  EIF_MAX_SECTIONS,
  EIF_METADATA_MAX_BYTES,
  EIF_SECTION_HEADER_BYTES,
  EIF_SIGNATURE_MAX_BYTES,
  EIF_VERSION,
  type EifSectionType,
} from './format.js';
export { SHA384_BYTES, extendFromZero, nobleSha384, type Sha384, type Sha384Factory } from './hash.js';
export { createEifReader, jsonDepthWithin, parseEif, type EifDescription, type EifReader, type EifReaderOptions, type EifSectionInfo } from './reader.js';
export { buildEif, encodeEifMetadata, EIF_DEFAULT_CPUS, EIF_DEFAULT_MEMORY_BYTES, type EifBuildInput, type EifMetadataInput } from './writer.js';
export { parseEifSignature, EIF_SIGNATURE_MAX_ENTRIES, type EifSignature } from './signature.js';
export { bzImageKernelVersion } from './kernel-version.js';
