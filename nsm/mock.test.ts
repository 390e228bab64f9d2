/**
 * The mock NSM: the shared conformance suite (test/conformance/nsm.ts), plus what only the mock does —
 * its loud warning, leaf renewal before expiry, configured PCRs, and its byte-level protocol handling.
 */

import { describe, expect, it } from 'vitest';
import { describeNsmConformance } from '../test/conformance/nsm.js';
import { silentLogger } from '../test/mock-documents.js';
import { encodeCbor } from '../cbor/index.js';
import { nodeP384Verifier } from './ecdsa-node.js';
import { createMockPki } from './mock-pki.js';
import { createMockTransport, openMockNsm } from './mock.js';
import { decodeNsmResponse, encodeNsmRequest } from './codec.js';
import { verifyAttestationDocument } from './verify.js';
import { parseAttestationDocument } from './document.js';

const pki = createMockPki();
describeNsmConformance('mock', async () => openMockNsm({ pki, logger: silentLogger }), {
  bootLockedPcrs: true,
  enforcesFieldLimits: true,
  signingRoot: pki.root.der,
});

describe('mock NSM', () => {
  it('warns loudly, once, when created', () => {
    const records: Array<[object, string]> = [];
    openMockNsm({ pki, logger: { warn: (details, message) => records.push([details, message]) } });
    expect(records).toHaveLength(1);
    expect(records[0]![0]).toMatchObject({ nsm: 'mock', moduleId: pki.moduleId });
    expect(records[0]![1]).toMatch(/^MOCK NSM IN USE/);
  });

  it('says it is the mock', () => {
    expect(openMockNsm({ pki, logger: silentLogger }).kind).toBe('mock');
  });

  it('renews its short-lived leaf before it expires, under the same root', async () => {
    const start = Date.parse('2026-01-01T00:00:00Z');
    const own = createMockPki({ now: new Date(start) });
    let now = start + 60_000;
    const nsm = openMockNsm({ pki: own, now: () => now, logger: silentLogger });
    const first = parseAttestationDocument(await nsm.attest());
    now = own.leaf.notAfter.getTime() - 60_000; // inside the renewal margin
    const bytes = await nsm.attest();
    const second = parseAttestationDocument(bytes);
    expect(Buffer.from(second.certificate).equals(Buffer.from(first.certificate))).toBe(false);
    expect(verifyAttestationDocument(bytes, { atMs: now + 60 * 60_000, root: own.root.der, verifier: nodeP384Verifier }).timestamp).toBe(now);
  });

  it('starts from configured PCR values', async () => {
    const pcr0 = new Uint8Array(48).fill(0x42);
    const nsm = openMockNsm({ pki, pcrs: new Map([[0, pcr0]]), logger: silentLogger });
    expect(await nsm.describePcr(0)).toEqual({ locked: true, value: pcr0 });
    expect(() => openMockNsm({ pki, pcrs: new Map([[0, new Uint8Array(47)]]), logger: silentLogger })).toThrowError(
      expect.objectContaining({ code: 'NSM_BAD_ARGUMENT' }),
    );
  });

  it('answers bytes it cannot parse with InvalidOperation, as QEMU does', async () => {
    const transport = createMockTransport({ pki, logger: silentLogger });
    for (const request of [Uint8Array.of(0xff), encodeCbor('Nope'), encodeCbor({ DescribePCR: 'x' }), encodeCbor({ DescribePCR: { index: 'x' } }), new Uint8Array(0)]) {
      const reply = await transport.request(request);
      expect(() => decodeNsmResponse(reply, 'DescribePCR')).toThrowError(expect.objectContaining({ code: 'NSM_INVALID_OPERATION' }));
    }
    const reply = await transport.request(encodeNsmRequest({ type: 'DescribePCR', index: 1 }));
    expect(decodeNsmResponse(reply, 'DescribePCR')).toMatchObject({ type: 'DescribePCR' });
  });
});
