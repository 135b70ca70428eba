// The README's test command (`npm test`, what .ci/run runs): type-checks,
// runs the vitest projects unit, integration, e2e and peers, then the real
// cluster (the `cluster` project through run-cluster.mjs: the `peers:` line,
// peers built when missing, a missing one counted as failed) after the e2e
// run, never beside it (both use the machine's root namespace), and ends with
// the line `N passed, M failed` over both (skipped tests are counted apart).
// With --project arguments only those projects run (no cluster unless named).
import { spawnSync } from 'node:child_process';
import { runVitest } from './vitest-run.mjs';
import { runCluster } from './run-cluster.mjs';

const args = process.argv.slice(2);
const chosen = args.some((a) => a === '--project' || a.startsWith('--project='));
if (!chosen) args.unshift('--project', 'unit', '--project', 'integration', '--project', 'e2e', '--project', 'peers');
let failedExtra = 0;

const tsc = spawnSync('npx', ['tsc', '-p', 'tsconfig.json', '--noEmit'], { stdio: 'inherit' });
if (tsc.status !== 0) { console.error('typecheck failed'); failedExtra++; }

const r = runVitest(args);
let { passed, failed, skipped } = r;
failed += failedExtra;
if (r.status !== 0 && failed === 0) failed = 1;
if (!chosen) {
  console.log(`main: ${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
  const c = runCluster(['cluster']);
  passed += c.passed; failed += c.failed; skipped += c.skipped;
}
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exit(failed === 0 && passed > 0 ? 0 : 1);
