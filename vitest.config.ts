import { defineConfig } from 'vitest/config';

// unit: pure, no root, beside the source. integration: root, throwaway
// network namespaces, black-box through dist/bin. e2e: real runtimes.
// cluster: real peers built by scripts/peers.sh (not in `npm test`).
export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['plugins/**/*.test.ts', 'scripts/**/*.test.ts'] } },
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts'] } },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], fileParallelism: false, testTimeout: 240_000 } },
      // real peers (issue 22): `npm run test:cluster` (scripts/run-cluster.mjs)
      // builds them (scripts/peers.sh) first; `npm test` leaves this project out
      { extends: true, test: { name: 'cluster', include: ['test/cluster/**/*.test.ts'], fileParallelism: false, testTimeout: 240_000, hookTimeout: 240_000 } },
    ],
  },
});
