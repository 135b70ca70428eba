// The README's test command (`npm test`): type-checks, runs every vitest
// project but cluster (unit, integration, e2e, peers; `npm run test:cluster` runs that one) and ends with the line
// `N passed, M failed` (skipped tests are counted apart).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const args = process.argv.slice(2);
// the cluster project (a real kubelet cluster, scripts/run-cluster.mjs) runs only when asked for
if (!args.some((a) => a === '--project' || a.startsWith('--project='))) args.unshift('--project', 'unit', '--project', 'integration', '--project', 'e2e', '--project', 'peers');
const tmp = mkdtempSync(path.join(tmpdir(), 'flax-test-'));
const report = path.join(tmp, 'report.json');
let failedExtra = 0;

const tsc = spawnSync('npx', ['tsc', '-p', 'tsconfig.json', '--noEmit'], { stdio: 'inherit' });
if (tsc.status !== 0) { console.error('typecheck failed'); failedExtra++; }

const r = spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...args], { stdio: 'inherit' });
let passed = 0, failed = 0, skipped = 0;
try {
  const j = JSON.parse(readFileSync(report, 'utf8'));
  passed = j.numPassedTests;
  // a file that failed without a failing test (it did not load, or a hook
  // threw) counts as one failure
  const brokenFiles = (j.testResults ?? []).filter((f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed')).length;
  failed = j.numFailedTests + brokenFiles;
  skipped = (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
} catch {
  failed++;
  console.error('no vitest report was written');
}
rmSync(tmp, { recursive: true, force: true });
failed += failedExtra;
if (r.status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exit(failed === 0 && passed > 0 ? 0 : 1);
