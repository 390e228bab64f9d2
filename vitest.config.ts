import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    // test/qemu/ runs inside the QEMU guest or boots it (npm run test:qemu); test/reliability/ runs under
    // its own config (npm run test:reliability).
    exclude: ['node_modules/**', 'dist/**', 'build/**', '.cache/**', 'test/qemu/**', 'test/reliability/**'],
    testTimeout: 30_000,
    pool: 'forks',
    globalSetup: ['./test/global-setup.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
