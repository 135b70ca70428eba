import { defineConfig } from 'vitest/config';

// unit: pure, no root, beside the source. integration: root, throwaway
// network namespaces, black-box through dist/bin. e2e: real runtimes.
export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['plugins/**/*.test.ts', 'scripts/**/*.test.ts'] } },
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts'] } },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], fileParallelism: false, testTimeout: 240_000 } },
      { extends: true, test: { name: 'cluster', include: ['test/cluster/**/*.test.ts'], fileParallelism: false, testTimeout: 600_000, hookTimeout: 900_000 } },
    ],
  },
});
