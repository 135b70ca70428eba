import { defineConfig } from 'vitest/config';

// unit: pure, no root, beside the source. integration: root, throwaway
// network namespaces, black-box through dist/bin. e2e: real runtimes.
// peers / cluster: real peers built by scripts/peers.sh (below).
export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['plugins/**/*.test.ts', 'scripts/**/*.test.ts'] } },
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts'] } },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], fileParallelism: false, testTimeout: 240_000 } },
      // real peers (issue 22), built by scripts/peers.sh into a cache outside the repo (a test skips,
      // naming it, when its peer is missing). peers: the reference plugins v1.10.0, cnitool and
      // flanneld with etcd — part of `npm test`. cluster: kube-apiserver + kubelet + containerd with
      // flax's DaemonSet (~2-4 min) — `npm run test:cluster` (scripts/run-cluster.mjs runs both), and
      // `npm test` runs it after the other projects (run-tests.mjs).
      { extends: true, test: { name: 'peers', include: ['test/cluster/**/*.test.ts'], exclude: ['test/cluster/kube.test.ts'], fileParallelism: false, testTimeout: 240_000, hookTimeout: 240_000 } },
      { extends: true, test: { name: 'cluster', include: ['test/cluster/kube.test.ts'], fileParallelism: false, testTimeout: 600_000, hookTimeout: 900_000 } },
    ],
  },
});
