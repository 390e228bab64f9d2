/**
 * A test-only NSM for devices that cannot sign: QEMU's emulated NSM answers every request through the
 * real kernel driver, but its attestation documents carry `alg` -1 and no certificate or signature
 * (specs/nsm.md §5), so no client can complete a STEVE session against them. This transport sends every
 * request to the device unchanged; for an Attestation it takes the device's document, keeps what the
 * device said (module id, timestamp, PCRs, public key, user data, nonce) and signs those fields again with
 * a mock PKI, so a client that trusts the mock root sees the device's real PCR values in a valid document.
 *
 * It is a mock in every sense that matters: `kind` is 'mock', it logs the same loud warning, it is
 * chosen only by name (`openNsm({ mode: 'mock-signed-device' })`), and a production configuration refuses
 * it like the plain mock. It must not pass on a device document it could not parse: that is an error.
 */

import { decodeNsmRequest, decodeNsmResponse, encodeNsmResponse } from './codec.js';
import { parseAttestationDocument } from './document.js';
import { NsmError } from './errors.js';
import { createMockSigner, type MockNsmLogger } from './mock.js';
import type { MockPki } from './mock-pki.js';
import type { NsmTransport } from './types.js';

export interface MockSignedDeviceOptions {
  /** The device (or any transport) whose answers are kept. */
  device: NsmTransport;
  pki: MockPki;
  logger: MockNsmLogger;
}

export function createMockSignedDeviceTransport(options: MockSignedDeviceOptions): NsmTransport {
  const { device } = options;
  const signer = createMockSigner(options.pki);
  options.logger.warn(
    { nsm: 'mock-signed-device', moduleId: options.pki.moduleId },
    'MOCK NSM IN USE: the device answers, but attestation documents are re-signed by a mock PKI and prove nothing about this machine',
  );

  return {
    kind: 'mock',
    async request(requestBytes: Uint8Array): Promise<Uint8Array> {
      const answer = await device.request(requestBytes);
      let isAttestation = false;
      try {
        isAttestation = decodeNsmRequest(requestBytes).type === 'Attestation';
      } catch {
        // The device has already answered a request it could not parse (InvalidOperation): pass it on.
      }
      if (!isAttestation) return answer;
      let response;
      try {
        response = decodeNsmResponse(answer, 'Attestation');
      } catch {
        // An error reply (or a broken one): the client decodes the same bytes and throws its code.
        return answer;
      }
      if (response.type !== 'Attestation') return answer;
      let fields;
      try {
        fields = parseAttestationDocument(response.document);
      } catch (err) {
        throw new NsmError('NSM_BAD_RESPONSE', 'the device returned an attestation document that does not parse', { cause: err });
      }
      const document = signer.sign({
        moduleId: fields.moduleId,
        timestamp: fields.timestamp,
        pcrs: fields.pcrs,
        publicKey: fields.publicKey,
        userData: fields.userData,
        nonce: fields.nonce,
      });
      return encodeNsmResponse({ type: 'Attestation', document });
    },
    close: () => device.close(),
  };
}
