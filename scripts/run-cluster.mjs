// `npm run test:cluster` (issue 22): builds the real peers into the cache
// outside the repo (scripts/peers.sh, a no-op when cached), prints one
// `peers:` line with each peer's version, runs the vitest projects `peers`
// and `cluster` (test/cluster/) and ends with `cluster: N passed, M failed`.
// `npm test` (run-tests.mjs) calls runCluster() for the `cluster` project
// after its own run. A peer that is not cached and cannot be built counts as
// a failure, and so does a cluster test that would skip for a missing peer
// or tool (FLAX_PEERS_REQUIRED=1 is passed to the tests).
// FLAX_PEERS moves the cache (default /var/cache/flax-peers).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { runVitest } from './vitest-run.mjs';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const peersDir = process.env.FLAX_PEERS ?? '/var/cache/flax-peers';

/** peers.sh, the `peers:` line, then vitest with the projects (default peers + cluster); returns the counts */
export function runCluster(projects = ['peers', 'cluster'], extraArgs = []) {
  let failedExtra = 0;
  const b = spawnSync('bash', [path.join(root, 'scripts/peers.sh')], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, FLAX_PEERS: peersDir } });
  if (b.status !== 0) { console.error(`scripts/peers.sh exited ${b.status}: a peer is missing (counted as a failure; the tests that need it fail)`); failedExtra++; }

  // the versions file: "name version" per line
  const versions = new Map();
  try {
    for (const l of readFileSync(path.join(peersDir, 'versions'), 'utf8').split('\n')) {
      const [n, v] = l.trim().split(/\s+/);
      if (n && v) versions.set(n, v);
    }
  } catch { /* nothing built */ }
  const ctr = spawnSync('containerd', ['--version'], { encoding: 'utf8' });
  // "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1" → 1.6.20
  const ctrVersion = ctr.status === 0 ? (ctr.stdout.trim().split(/\s+/)[2] ?? '').replace(/[~+].*$/, '') : '';
  const order = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'etcd', 'flanneld', 'cni-flannel', 'containerd', 'plugins', 'cnitool'];
  const parts = [];
  for (const n of order) {
    if (n === 'containerd') { if (ctrVersion) parts.push(`containerd ${ctrVersion}`); continue; }
    if (versions.has(n)) parts.push(`${n} ${versions.get(n)}`);
  }
  for (const [n, v] of versions) if (!order.includes(n)) parts.push(`${n} ${v}`);
  console.log(`peers: ${parts.join(', ')}`);

  if (!existsSync(path.join(root, 'dist/bin/flax'))) { console.error('dist/bin is not built: run `npm run build`'); failedExtra++; }
  const r = runVitest([...projects.flatMap((p) => ['--project', p]), ...extraArgs], { cwd: root, env: { ...process.env, FLAX_PEERS: peersDir, FLAX_PEERS_REQUIRED: '1' } });
  let { passed, failed, skipped } = r;
  failed += failedExtra;
  if (r.status !== 0 && failed === 0) failed = 1;
  console.log(`cluster: ${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
  return { passed, failed, skipped };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { passed, failed } = runCluster(['peers', 'cluster'], process.argv.slice(2));
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}
