/**
 * Phase 0 of a sweep: dead sandboxes of `flax sandbox` (pause gone, pins
 * left), removed the way `flax sandbox rm --force` does, which DELs their
 * networks.
 */
import { listSandboxes, sandboxRoot } from '../sandbox/state';
import { removeSandbox } from '../sandbox/remove';
import type { Finding, SweepOptions, SweepReport } from './report';

export async function sweepSandboxes(rep: SweepReport, o: SweepOptions, now: number): Promise<void> {
  let boxes;
  try {
    boxes = listSandboxes(sandboxRoot(o.sandboxDir));
  } catch (e) {
    rep.errors.push(`cannot list sandboxes: ${(e as Error).message}`);
    return;
  }
  for (const b of boxes) {
    const nets = b.networks.filter((n) => !o.networks.length || o.networks.includes(n.name));
    if (o.networks.length && !nets.length) continue;
    const f: Finding = {
      kind: 'sandbox', network: nets.map((n) => n.name).join(','), containerId: b.containerId, ifname: nets.map((n) => n.ifName).join(','),
      netns: b.pins.find((p) => p.endsWith('/net')) ?? '', address: nets.flatMap((n) => n.addresses).join(' '), reason: '', action: 'kept',
    };
    const age = b.created ? now - Date.parse(b.created) : Infinity;
    if (b.alive || age < o.minAgeMs) {
      rep.kept.push({ ...f, reason: b.alive ? `pause ${b.pausePid} runs` : `younger than ${Math.round(o.minAgeMs / 1000)} s` });
      continue;
    }
    f.reason = b.pausePid ? `its pause (pid ${b.pausePid}) is gone; ${b.pins.length} pin(s) left` : `unreadable state (${b.error ?? '?'})`;
    f.action = o.dryRun ? 'would remove' : 'removed';
    rep.findings.push(f);
    if (o.dryRun) continue;
    try {
      const r = await removeSandbox(b.name, { root: sandboxRoot(o.sandboxDir), force: true, ifDead: true, cniPath: o.cniPath.length ? o.cniPath : undefined, stderr: null });
      if (r.keptAlive) { // its pause came up meanwhile (a run finishing): not dead after all
        rep.findings.pop();
        rep.kept.push({ ...f, action: 'kept', reason: 'alive when re-checked under its lock' });
        continue;
      }
      f.removed = `sandbox ${b.name}: networks DELeted, pins and state removed${r.warnings.length ? ` (${r.warnings.join('; ')})` : ''}`;
    } catch (e) {
      f.action = 'failed';
      f.error = (e as Error).message;
    }
  }
}
