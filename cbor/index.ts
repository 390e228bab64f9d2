/**
 * The strict CBOR codec shared by the NSM layer and STEVE: both parse untrusted CBOR and need the same
 * fail-closed rules (see decode.ts for why this is not cbor-x). Pure and browser-safe.
 */
export { DEFAULT_MAX_ITEMS, decodeCbor, type CborValue, type CborMap, type DecodeOptions } from './decode.js';
export { encodeCbor, type CborInput } from './encode.js';
export { CborError, type CborErrorCode } from './errors.js';
