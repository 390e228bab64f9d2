/**
 * The half of the NSM layer a running agent needs: opening the NSM (`openNsm`, which imports the mocks
 * only when one is chosen), the `Nsm` client, errors, field limits and encodings. Not the verifier, the
 * document parser or the mock PKI, which bring X.509 and P-384 libraries the agent's start-up does not use:
 * agent/ imports this file instead of nsm/index.ts on the path of `enclave-agent run`, so the image's
 * bundle (code-split, image/build-bundle.mjs) loads none of them at start (issue 16: start-up time and
 * idle memory, bench/startup.mjs). Everything here is also exported by nsm/index.ts.
 */

export { NsmError, type NsmErrorCode } from './errors.js';
export type { Nsm, NsmTransport, AttestOptions, PcrDescription, NsmDescription } from './types.js';
export { NSM_FIELD_MAX_BYTES } from './codec.js';
export { hexToBytes, bytesToHex, base64ToBytes, bytesToBase64, base64UrlToBytes, bytesToBase64Url } from './encoding.js';
export { createNsm } from './client.js';
export { openNsm, type NsmMode, type OpenNsmOptions } from './open.js';
