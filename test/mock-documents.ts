/**
 * Builds mock attestation documents for tests: validly signed by a mock PKI, with any payload fields
 * the test wants (a reordered cabundle, debug PCRs, a chosen timestamp), so the verifier's individual
 * checks can be exercised with documents that pass every other check.
 */

import { sign } from 'node:crypto';
import { encodeAttestationDocument, encodeDocumentPayload, encodeSigStructure, ES384_PROTECTED_HEADER, type DocumentFields } from '../nsm/document.js';
import { defaultMockPcrs } from '../nsm/mock.js';
import type { MockPki } from '../nsm/mock-pki.js';

export function signMockDocument(pki: MockPki, fields: Partial<DocumentFields> = {}): Uint8Array {
  const pcrs = new Map<number, Uint8Array>();
  const base = defaultMockPcrs();
  for (let i = 0; i < 16; i++) pcrs.set(i, base.get(i) ?? new Uint8Array(48));
  const payload = encodeDocumentPayload({
    moduleId: pki.moduleId,
    timestamp: pki.leaf.notBefore.getTime() + 60_000,
    pcrs,
    certificate: pki.leaf.der,
    cabundle: [pki.root.der, ...pki.intermediates.map((c) => c.der)],
    publicKey: null,
    userData: null,
    nonce: null,
    ...fields,
  });
  const signature = sign('sha384', encodeSigStructure(ES384_PROTECTED_HEADER, payload), { key: pki.leaf.privateKey, dsaEncoding: 'ieee-p1363' });
  return encodeAttestationDocument(ES384_PROTECTED_HEADER, payload, new Uint8Array(signature));
}

export const silentLogger = { warn(): void {} };
