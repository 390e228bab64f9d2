/**
 * Inside the QEMU guest: the NSM layer against /dev/nsm through our addon and the real Linux driver
 * (nsm.ko) talking to QEMU's virtio-nsm device. The same conformance suite the mock passes, plus what
 * only the device path can show: the ioctl ABI (a wrong size is EINVAL), QEMU's unsigned documents
 * parsed but refused, and many attestations in flight without blocking the event loop.
 */

import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import {
  createNsm,
  encodeNsmRequest,
  nodeP384Verifier,
  openDeviceTransport,
  parseAttestationDocument,
  rawDeviceRequest,
  verifyAttestationDocument,
} from '../../nsm/index.js';
import { describeNsmConformance } from '../conformance/nsm.js';

const DEVICE = '/dev/nsm';
/** sizeof(struct nsm_raw) is 32 (specs/nsm.md §1); any other size field makes a different ioctl number. */
const WRONG_IOCTL_SIZES = [0, 16, 31, 33, 64];

describeNsmConformance('device (QEMU virtio-nsm through the kernel driver)', async () => createNsm(openDeviceTransport(DEVICE)), {
  bootLockedPcrs: false,
  enforcesFieldLimits: false,
  signingRoot: null,
});

describe('device path', () => {
  it('rejects an ioctl with the wrong size with the coded EINVAL', async () => {
    const transport = openDeviceTransport(DEVICE);
    try {
      const request = encodeNsmRequest({ type: 'GetRandom' });
      for (const size of WRONG_IOCTL_SIZES) {
        await expect(rawDeviceRequest(transport, request, size)).rejects.toMatchObject({ code: 'NSM_EINVAL', errno: 'EINVAL' });
      }
      // The right size through the same hook works, so the failures above are the size alone.
      expect((await rawDeviceRequest(transport, request, 32)).length).toBeGreaterThan(0);
    } finally {
      await transport.close();
    }
  });

  it("reads every field of QEMU's unsigned documents and refuses to trust them", async () => {
    const nsm = createNsm(openDeviceTransport(DEVICE));
    try {
      const nonce = Uint8Array.of(0xaa, 0xbb);
      const bytes = await nsm.attest({ nonce, userData: Uint8Array.of(1), publicKey: Uint8Array.of(2) });
      const doc = parseAttestationDocument(bytes);
      expect(doc.algorithm).toBe(-1);
      expect(doc.digest).toBe('SHA384');
      expect(doc.certificate).toEqual(new Uint8Array(64));
      expect(doc.cabundle).toEqual([new Uint8Array(64)]);
      expect(doc.signature).toEqual(new Uint8Array(64));
      expect(Math.abs(doc.timestamp - Date.now())).toBeLessThan(24 * 3600 * 1000);
      expect([doc.nonce, doc.userData, doc.publicKey]).toEqual([nonce, Uint8Array.of(1), Uint8Array.of(2)]);
      for (const [index, value] of doc.pcrs) expect(value, `PCR${index}`).toEqual((await nsm.describePcr(index)).value);
      expect(() => verifyAttestationDocument(bytes, { atMs: doc.timestamp, verifier: nodeP384Verifier })).toThrowError(
        expect.objectContaining({ code: 'ATTESTATION_UNSUPPORTED_ALGORITHM' }),
      );
    } finally {
      await nsm.close();
    }
  });

  it('runs many attestations in parallel off the JS thread', async () => {
    const nsm = createNsm(openDeviceTransport(DEVICE));
    const histogram = monitorEventLoopDelay({ resolution: 5 });
    let ticks = 0;
    const ticker = setInterval(() => (ticks += 1), 2);
    try {
      histogram.enable();
      const started = performance.now();
      const nonces = Array.from({ length: 64 }, (_, i) => Uint8Array.of(i, 0x5a));
      const docs = await Promise.all(nonces.map((nonce) => nsm.attest({ nonce })));
      const elapsedMs = performance.now() - started;
      histogram.disable();
      docs.forEach((bytes, i) => expect(parseAttestationDocument(bytes).nonce).toEqual(nonces[i]));
      // Had the ioctls run on the JS thread, all 64 would have run before the first timer could fire.
      expect(ticks).toBeGreaterThan(0);
      const ms = (ns: number) => (ns / 1e6).toFixed(1);
      console.log(
        `64 parallel attest(): ${elapsedMs.toFixed(0)} ms total, ${(elapsedMs / 64).toFixed(2)} ms each; ` +
          `event-loop delay p50 ${ms(histogram.percentile(50))} ms, p99 ${ms(histogram.percentile(99))} ms, max ${ms(histogram.max)} ms; timer ticks ${ticks}`,
      );
    } finally {
      clearInterval(ticker);
      await nsm.close();
    }
  });
});
