// Runs vitest with its JSON report beside the default reporter and counts
// the outcome, for the test runners (run-tests.mjs: `npm test`;
// run-cluster.mjs: `npm run test:cluster`).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** `vitest run <args>`; returns passed, failed (a file that failed without a failing test — it did not load, or a hook threw — counts as one; no report counts as one), skipped and vitest's exit status. */
export function runVitest(args, opts = {}) {
  const tmp = mkdtempSync(path.join(tmpdir(), 'flax-vitest-'));
  const report = path.join(tmp, 'report.json');
  const r = spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...args], { stdio: 'inherit', ...opts });
  let passed = 0, failed = 0, skipped = 0;
  try {
    const j = JSON.parse(readFileSync(report, 'utf8'));
    passed = j.numPassedTests;
    const brokenFiles = (j.testResults ?? []).filter((f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed')).length;
    failed = j.numFailedTests + brokenFiles;
    skipped = (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
  } catch {
    failed++;
    console.error('no vitest report was written');
  }
  rmSync(tmp, { recursive: true, force: true });
  return { passed, failed, skipped, status: r.status };
}
