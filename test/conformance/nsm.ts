/**
 * The NSM conformance suite: one set of tests every `Nsm` implementation must pass. It runs against
 * the mock here (nsm/mock.test.ts) and against /dev/nsm through the addon and the real kernel driver
 * inside the QEMU guest. The device keeps its state between tests, so each test uses its own PCRs.
 *
 * Where QEMU's model differs from the real module (no PCRs locked at boot, no 1024-byte field limit,
 * no signature), `capabilities` says so and the test checks the behaviour of that implementation.
 */

import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import {
  nodeP384Verifier,
  parseAttestationDocument,
  verifyAttestationDocument,
  type Nsm,
} from '../../nsm/index.js';

export interface NsmCapabilities {
  /** PCRs 0-15 locked when the module starts (real hardware and the mock; not QEMU). */
  bootLockedPcrs: boolean;
  /** user_data/nonce/public_key over 1024 bytes answered InputTooLarge (real hardware and the mock; not QEMU). */
  enforcesFieldLimits: boolean;
  /** The root that signs documents (DER), or null when documents are unsigned (QEMU). */
  signingRoot: Uint8Array | null;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return (err as { code: string }).code;
  }
  return 'RESOLVED';
}

const sha384 = (...parts: Uint8Array[]) => {
  const hash = createHash('sha384');
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
};

export function describeNsmConformance(name: string, open: () => Promise<Nsm>, capabilities: NsmCapabilities): void {
  describe(`Nsm conformance: ${name}`, () => {
    const opened: Nsm[] = [];
    const nsm = async () => {
      const instance = await open();
      opened.push(instance);
      return instance;
    };
    afterAll(async () => {
      await Promise.all(opened.map((n) => n.close()));
    });

    it('describes itself', async () => {
      const d = await (await nsm()).describeNsm();
      expect(d.maxPcrs).toBe(32);
      expect(d.digest).toBe('SHA384');
      expect(d.moduleId.length).toBeGreaterThan(0);
      expect(d.versionMajor).toBeGreaterThanOrEqual(1);
      expect([...d.lockedPcrs].sort((a, b) => a - b)).toEqual(d.lockedPcrs);
      if (capabilities.bootLockedPcrs) expect(d.lockedPcrs.slice(0, 16)).toEqual([...Array(16).keys()]);
    });

    it('returns fresh random bytes', async () => {
      const n = await nsm();
      const [a, b] = [await n.getRandom(), await n.getRandom()];
      expect(a.length).toBeGreaterThan(0);
      expect(a.length).toBeLessThanOrEqual(256);
      expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    });

    it('describes PCRs and rejects a bad index', async () => {
      const n = await nsm();
      const pcr0 = await n.describePcr(0);
      expect(pcr0.value).toHaveLength(48);
      expect(pcr0.locked).toBe(capabilities.bootLockedPcrs);
      expect((await n.describePcr(31)).value).toHaveLength(48);
      expect(await codeOf(n.describePcr(32))).toBe('NSM_INVALID_INDEX');
      expect(await codeOf(n.describePcr(255))).toBe('NSM_INVALID_INDEX');
    });

    it('extends a PCR as SHA-384(old || data)', async () => {
      const n = await nsm();
      const before = (await n.describePcr(18)).value;
      const data = new TextEncoder().encode('conformance extend');
      const after = await n.extendPcr(18, data);
      expect(Buffer.from(after).toString('hex')).toBe(Buffer.from(sha384(before, data)).toString('hex'));
      expect((await n.describePcr(18)).value).toEqual(after);
      const again = await n.extendPcr(18, Uint8Array.of(0));
      expect(again).toEqual(sha384(after, Uint8Array.of(0)));
      expect(await codeOf(n.extendPcr(32, data))).toBe('NSM_INVALID_INDEX');
    });

    it('locks a PCR: then extend and a second lock answer ReadOnlyIndex', async () => {
      const n = await nsm();
      const value = await n.extendPcr(20, Uint8Array.of(1, 2, 3));
      await n.lockPcr(20);
      expect(await n.describePcr(20)).toEqual({ locked: true, value });
      expect(await codeOf(n.extendPcr(20, Uint8Array.of(4)))).toBe('NSM_READ_ONLY_INDEX');
      expect(await codeOf(n.lockPcr(20))).toBe('NSM_READ_ONLY_INDEX');
      expect((await n.describePcr(20)).value).toEqual(value);
      expect(await codeOf(n.lockPcr(32))).toBe('NSM_INVALID_INDEX');
      // A locked PCR appears in every later document with its value.
      const doc = parseAttestationDocument(await n.attest());
      expect(doc.pcrs.get(20)).toEqual(value);
    });

    it('locks a range of PCRs [0, range) and refuses a range beyond 32', async () => {
      const n = await nsm();
      await n.lockPcrs(16);
      for (const index of [0, 15]) expect((await n.describePcr(index)).locked).toBe(true);
      expect(await codeOf(n.extendPcr(15, Uint8Array.of(1)))).toBe('NSM_READ_ONLY_INDEX');
      expect((await n.describePcr(22)).locked).toBe(false);
      expect(await codeOf(n.lockPcrs(33))).toBe('NSM_INVALID_INDEX');
      const locked = (await n.describeNsm()).lockedPcrs;
      expect(locked.slice(0, 16)).toEqual([...Array(16).keys()]);
    });

    it('attests with nonce, user_data and public_key echoed', async () => {
      const n = await nsm();
      const nonce = Uint8Array.from({ length: 32 }, (_, i) => i);
      const userData = new TextEncoder().encode('{"conformance":true}');
      const publicKey = Uint8Array.from({ length: 65 }, (_, i) => 255 - i);
      const bytes = await n.attest({ nonce, userData, publicKey });
      const doc = parseAttestationDocument(bytes);
      expect(doc.nonce).toEqual(nonce);
      expect(doc.userData).toEqual(userData);
      expect(doc.publicKey).toEqual(publicKey);
      expect(doc.digest).toBe('SHA384');
      expect(doc.moduleId).toBe((await n.describeNsm()).moduleId);
      if (capabilities.signingRoot === null) {
        expect(doc.algorithm).toBe(-1);
        expect(() => verifyAttestationDocument(bytes, { atMs: doc.timestamp, verifier: nodeP384Verifier })).toThrowError(
          expect.objectContaining({ code: 'ATTESTATION_UNSUPPORTED_ALGORITHM' }),
        );
      } else {
        const result = verifyAttestationDocument(bytes, {
          atMs: doc.timestamp,
          root: capabilities.signingRoot,
          expectedNonce: nonce,
          verifier: nodeP384Verifier,
        });
        expect(result.userData).toEqual(userData);
      }
      const empty = parseAttestationDocument(await n.attest());
      expect([empty.nonce, empty.userData, empty.publicKey]).toEqual([null, null, null]);
    });

    it('takes 1024-byte fields and refuses larger ones as the module does', async () => {
      const n = await nsm();
      const kib = new Uint8Array(1024).fill(1);
      const doc = parseAttestationDocument(await n.attest({ nonce: kib, userData: kib.subarray(0, 1000) }));
      expect(doc.nonce).toEqual(kib);
      const over = n.attest({ userData: new Uint8Array(1025) });
      if (capabilities.enforcesFieldLimits) expect(await codeOf(over)).toBe('NSM_INPUT_TOO_LARGE');
      else expect(parseAttestationDocument((await over) as Uint8Array).userData).toHaveLength(1025);
    });

    it('refuses a request over 4096 bytes with EMSGSIZE', async () => {
      const n = await nsm();
      const err = await n.attest({ userData: new Uint8Array(4096) }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'NSM_EMSGSIZE', errno: 'EMSGSIZE' });
    });

    it('checks arguments before anything reaches the module', async () => {
      const n = await nsm();
      for (const bad of [-1, 1.5, Number.NaN, 65536]) expect(await codeOf(n.describePcr(bad))).toBe('NSM_BAD_ARGUMENT');
      expect(await codeOf(n.extendPcr(21, 'text' as unknown as Uint8Array))).toBe('NSM_BAD_ARGUMENT');
      expect(await codeOf(n.attest({ nonce: [1, 2] as unknown as Uint8Array }))).toBe('NSM_BAD_ARGUMENT');
    });

    it('serves many concurrent attestations, each with its own nonce', async () => {
      const n = await nsm();
      const nonces = Array.from({ length: 32 }, (_, i) => Uint8Array.of(i, i, i));
      const docs = await Promise.all(nonces.map((nonce) => n.attest({ nonce })));
      docs.forEach((bytes, i) => expect(parseAttestationDocument(bytes).nonce).toEqual(nonces[i]));
    });

    it('refuses calls after close', async () => {
      const n = await open();
      await n.close();
      expect(await codeOf(n.getRandom())).toBe('NSM_DEVICE_CLOSED');
      await n.close();
    });
  });
}
