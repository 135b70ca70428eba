// The README's test command (`npm test`): type-checks, runs every vitest
// project but cluster (unit, integration, e2e, peers; `npm run test:cluster` runs that one) and ends with the line
// `N passed, M failed` (skipped tests are counted apart).
import { spawnSync } from 'node:child_process';
import { runVitest } from './vitest-run.mjs';

const args = process.argv.slice(2);
// the cluster project (a real kubelet cluster, scripts/run-cluster.mjs) runs only when asked for
if (!args.some((a) => a === '--project' || a.startsWith('--project='))) args.unshift('--project', 'unit', '--project', 'integration', '--project', 'e2e', '--project', 'peers');
let failedExtra = 0;

const tsc = spawnSync('npx', ['tsc', '-p', 'tsconfig.json', '--noEmit'], { stdio: 'inherit' });
if (tsc.status !== 0) { console.error('typecheck failed'); failedExtra++; }

const r = runVitest(args);
let { passed, failed, skipped } = r;
failed += failedExtra;
if (r.status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exit(failed === 0 && passed > 0 ? 0 : 1);
