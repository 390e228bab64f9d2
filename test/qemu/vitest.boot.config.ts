/**
 * Vitest configuration for the full-boot test (test/qemu/boot/boot.qemu.test.ts): runs on this machine,
 * builds the image's EIF and boots it under QEMU's nitro-enclave machine, so it is neither a host unit
 * suite (the root vitest.config.ts excludes test/qemu) nor a guest suite. `npm run test:qemu` runs it
 * after the guest suites, with ENCLAVE_QEMU_BOOT=1.
 */

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/qemu/boot/**/*.qemu.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
    // Tests run in order on one booted guest (the kill loop comes last).
    sequence: { concurrent: false },
    testTimeout: 600_000,
    hookTimeout: 1_500_000,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
