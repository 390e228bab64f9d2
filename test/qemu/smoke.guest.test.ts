/**
 * First proof of the QEMU rig: inside the guest, QEMU's virtio-nsm device answers through the real kernel
 * driver and the project's device transport (specs/nsm.md §4, specs/qemu-rig.md). The guest's /init sets
 * ENCLAVE_QEMU_GUEST=1; anywhere else (the host's `npm test`) the suite is skipped, since only the guest has
 * /dev/nsm. It must not fall back to the mock: a missing device inside the guest is a failure.
 */

import { statSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { createNsm, openDeviceTransport } from '../../nsm/index.js';

const IN_QEMU_GUEST = process.env.ENCLAVE_QEMU_GUEST === '1';

describe.runIf(IN_QEMU_GUEST)('QEMU guest: /dev/nsm through the device transport', () => {
  it('has /dev/nsm as a character device', () => {
    expect(statSync('/dev/nsm').isCharacterDevice()).toBe(true);
  });

  it('describes QEMU\'s module and returns 256 random bytes', async () => {
    const nsm = createNsm(openDeviceTransport('/dev/nsm'));
    try {
      expect(nsm.kind).toBe('device');
      const description = await nsm.describeNsm();
      expect(description.maxPcrs).toBe(32);
      expect(description.digest).toBe('SHA384');
      const random = await nsm.getRandom();
      expect(random).toBeInstanceOf(Uint8Array);
      expect(random.byteLength).toBe(256);
    } finally {
      await nsm.close();
    }
  });
});
