import { defineConfig } from 'vitest/config';

/**
 * The reliability suite (test/reliability/README.md): fuzzing with time budgets, fault injection under
 * load, the soak run and mock safety. Kept out of `npm test` (vitest.config.ts excludes the folder):
 * `npm run test:reliability` / `make test-reliability`. One worker, files one after another: the load
 * tests measure this process's fds and memory and must not compete for the two cores.
 */
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    // Memory is compared after a forced collection (global.gc).
    execArgv: ['--expose-gc'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // dist/ is needed by mock-safety.test.ts (the built CLI); built only when stale.
    globalSetup: ['./test/global-setup.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
