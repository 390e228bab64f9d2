/**
 * Vitest configuration for inside the QEMU guest (test/qemu/run.sh boots the guest and runs it): only the
 * `*.guest.test.ts` suites, which need the real kernel NSM driver (/dev/nsm) and vsock loopback. It must
 * not be used on the host, where neither exists; the host's suites use the root vitest.config.ts.
 */

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/qemu/**/*.guest.test.ts'],
    pool: 'forks',
    // One worker: the guest has 2 emulated CPUs, and device tests should not race each other on /dev/nsm.
    fileParallelism: false,
    maxWorkers: 1,
    // Software emulation (TCG) is 10-50x slower than the host.
    testTimeout: 120_000,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
