/**
 * The mock-signed device: a device that cannot sign (shaped like QEMU's: alg -1, zero certificate,
 * cabundle and signature, specs/nsm.md §4) behind the transport. What the device says survives, the
 * signature becomes the mock PKI's, and nothing else changes.
 */

import { describe, expect, it } from 'vitest';
import { encodeCbor } from '../cbor/index.js';
import { silentLogger } from '../test/mock-documents.js';
import { createNsm } from './client.js';
import { decodeNsmRequest, decodeNsmResponse, encodeNsmResponse } from './codec.js';
import { encodeAttestationDocument, encodeDocumentPayload, parseAttestationDocument } from './document.js';
import { nodeP384Verifier } from './ecdsa-node.js';
import { createMockPki } from './mock-pki.js';
import { createMockSignedDeviceTransport } from './mock-signed-device.js';
import { createMockTransport } from './mock.js';
import type { NsmTransport } from './types.js';
import { verifyAttestationDocument } from './verify.js';
import type { NsmError } from './errors.js';

const pki = createMockPki();
const deviceModuleId = 'i-0123456789abcdef0-enc0123456789abcd';
const ZERO_64 = new Uint8Array(64);

/**
 * A QEMU-like device: the mock's state machine (so PCRs extend and lock for real) with QEMU's unsigned
 * documents. Counts the requests it saw; `answer` may replace a reply.
 */
function qemuLikeDevice(answer?: (request: Uint8Array, reply: Uint8Array) => Uint8Array) {
  const inner = createMockTransport({ pki: createMockPki(), logger: silentLogger, pcrs: new Map() });
  const seen: Uint8Array[] = [];
  const device: NsmTransport = {
    kind: 'device',
    async request(bytes) {
      seen.push(bytes);
      let reply = await inner.request(bytes);
      const request = decodeNsmRequest(bytes);
      if (request.type === 'Attestation') {
        const signed = decodeNsmResponse(reply, 'Attestation');
        if (signed.type === 'Attestation') {
          const doc = parseAttestationDocument(signed.document);
          const payload = encodeDocumentPayload({ ...doc, moduleId: deviceModuleId, certificate: ZERO_64, cabundle: [ZERO_64] });
          reply = encodeNsmResponse({ type: 'Attestation', document: encodeAttestationDocument(encodeCbor(new Map([[1, -1]])), payload, ZERO_64) });
        }
      }
      return answer === undefined ? reply : answer(bytes, reply);
    },
    close: () => inner.close(),
  };
  return { device, seen };
}

describe('mock-signed device', () => {
  it('keeps the device PCRs, nonce, user data, public key and module id, under a mock signature', async () => {
    const { device } = qemuLikeDevice();
    const nsm = createNsm(createMockSignedDeviceTransport({ device, pki, logger: silentLogger }));
    await nsm.extendPcr(16, new TextEncoder().encode('runtime configuration'));
    await nsm.lockPcr(16);
    const pcr16 = (await nsm.describePcr(16)).value;
    const nonce = Uint8Array.from([1, 2, 3]);
    const userData = new TextEncoder().encode('{"k":1}');
    const publicKey = Uint8Array.from([9, 9]);
    const bytes = await nsm.attest({ nonce, userData, publicKey });
    const verified = verifyAttestationDocument(bytes, { atMs: Date.now(), root: pki.root.der, verifier: nodeP384Verifier, expectedNonce: nonce });
    expect(verified.moduleId).toBe(deviceModuleId);
    expect([...verified.pcrs.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    expect(Buffer.from(verified.pcrs.get(16)!).toString('hex')).toBe(Buffer.from(pcr16).toString('hex'));
    expect(verified.userData).toEqual(userData);
    expect(verified.publicKey).toEqual(publicKey);
    expect(verified.document.algorithm).toBe(-35);
  });

  it('is refused by the default (AWS) root: the mock signature proves nothing', async () => {
    const nsm = createNsm(createMockSignedDeviceTransport({ device: qemuLikeDevice().device, pki, logger: silentLogger }));
    const bytes = await nsm.attest({ nonce: Uint8Array.of(1) });
    expect(() => verifyAttestationDocument(bytes, { atMs: Date.now(), verifier: nodeP384Verifier })).toThrow(expect.objectContaining({ code: 'ATTESTATION_ROOT' }));
  });

  it('passes every other request and reply through byte for byte', async () => {
    const replies: Uint8Array[] = [];
    const { device, seen } = qemuLikeDevice((_, reply) => {
      replies.push(reply);
      return reply;
    });
    const transport = createMockSignedDeviceTransport({ device, pki, logger: silentLogger });
    const nsm = createNsm(transport);
    const out: unknown[] = [await nsm.describePcr(3), await nsm.extendPcr(17, Uint8Array.of(1)), await nsm.describeNsm()];
    expect(out).toHaveLength(3);
    expect(seen).toHaveLength(3);
    // Raw: the same bytes come back.
    const raw = await transport.request(seen[0]!);
    expect(Buffer.from(raw).equals(Buffer.from(replies[0]!))).toBe(true);
  });

  it("passes the device's error replies on, so the client throws the device's code", async () => {
    const nsm = createNsm(createMockSignedDeviceTransport({ device: qemuLikeDevice().device, pki, logger: silentLogger }));
    await expect(nsm.attest({ userData: new Uint8Array(1025) })).rejects.toMatchObject({ code: 'NSM_INPUT_TOO_LARGE' });
    await expect(nsm.extendPcr(0, Uint8Array.of(1))).rejects.toMatchObject({ code: 'NSM_READ_ONLY_INDEX' });
  });

  it('refuses to re-sign a document the device got wrong: NSM_BAD_RESPONSE, never a signed guess', async () => {
    const broken = qemuLikeDevice((bytes, reply) =>
      decodeNsmRequest(bytes).type === 'Attestation' ? encodeNsmResponse({ type: 'Attestation', document: Uint8Array.of(0x84, 0x40) }) : reply,
    );
    const nsm = createNsm(createMockSignedDeviceTransport({ device: broken.device, pki, logger: silentLogger }));
    const error = (await nsm.attest({ nonce: Uint8Array.of(1) }).catch((e: unknown) => e)) as NsmError;
    expect(error.code).toBe('NSM_BAD_RESPONSE');
    expect((error.cause as NsmError).code).toBe('ATTESTATION_MALFORMED');
  });

  it('says it is a mock, and warns like one', () => {
    const records: Array<[object, string]> = [];
    const transport = createMockSignedDeviceTransport({ device: qemuLikeDevice().device, pki, logger: { warn: (d, m) => records.push([d, m]) } });
    expect(transport.kind).toBe('mock');
    expect(records).toHaveLength(1);
    expect(records[0]![0]).toMatchObject({ nsm: 'mock-signed-device' });
    expect(records[0]![1]).toMatch(/^MOCK NSM IN USE/);
  });
});
