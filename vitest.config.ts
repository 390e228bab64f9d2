import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    // test/qemu/ runs inside the QEMU guest (npm run test:qemu), never on the host.
    exclude: ['node_modules/**', 'dist/**', 'build/**', '.cache/**', 'test/qemu/**'],
    testTimeout: 30_000,
    pool: 'forks',
    globalSetup: ['./test/global-setup.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
