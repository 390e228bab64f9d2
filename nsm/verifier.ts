/**
 * The browser-safe half of the NSM layer: codecs, the attestation document parser and the verifier.
 * Nothing here (or below it) imports a `node:` module; a test holds that boundary.
 */

export { NsmError, type NsmErrorCode } from './errors.js';
export { PCR_BYTES, PCR_COUNT, type Nsm, type NsmTransport, type AttestOptions, type PcrDescription, type NsmDescription } from './types.js';
export {
  encodeNsmRequest,
  decodeNsmRequest,
  encodeNsmResponse,
  decodeNsmResponse,
  NSM_REQUEST_MAX_BYTES,
  NSM_RESPONSE_MAX_BYTES,
  NSM_FIELD_MAX_BYTES,
  NSM_RANDOM_MAX_BYTES,
  type NsmRequest,
  type NsmResponse,
} from './codec.js';
export { parseAttestationDocument, encodeSigStructure, DOCUMENT_MAX_BYTES, COSE_ALG_ES384, type AttestationDocument } from './document.js';
export { verifyAttestationDocument, type VerifyOptions, type VerifiedDocument, type PcrProfile } from './verify.js';
export { nobleP384Verifier, type P384Verifier } from './ecdsa.js';
export { AWS_NITRO_ROOT_G1_DER, AWS_NITRO_ROOT_G1_SHA256 } from './aws-root.js';
export { hexToBytes, bytesToHex, base64ToBytes, bytesToBase64, base64UrlToBytes, bytesToBase64Url, pemToCertificates } from './encoding.js';
