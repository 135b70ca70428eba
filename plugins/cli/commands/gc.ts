/**
 * `flax gc`: one sweep of the node for what crashed or switched-away
 * attachments leave behind, with no list from a runtime (see
 * ../sweep/judge.ts for the liveness rules). Exit 0 when the sweep
 * finished, 1 when some removal failed (the rest still ran).
 */
import path from 'node:path';
import { sweepNode, type SweepReport } from '../sweep/sweep';
import { table } from '../table';
import type { CliIo } from './cni';

export interface GcCmdOptions {
  dryRun?: boolean;
  json?: boolean;
  network?: string[];
  minAge?: number;
  cniConfDir?: string;
  cacheDir?: string;
}


export async function runGc(o: GcCmdOptions, io: CliIo): Promise<number> {
  const minAge = o.minAge ?? 60;
  const report: SweepReport = await sweepNode({
    confDir: o.cniConfDir ?? '/etc/cni/net.d',
    cacheDir: o.cacheDir ?? '/var/lib/cni',
    networks: o.network ?? [],
    minAgeMs: minAge * 1000,
    dryRun: !!o.dryRun,
  });
  const failed = report.findings.filter((f) => f.action === 'failed').length;
  if (o.json) {
    io.stdout(JSON.stringify({ dryRun: !!o.dryRun, ...report }, null, 2) + '\n');
  } else {
    for (const e of report.errors) io.stderr(`flax gc: ${e}\n`);
    if (!report.findings.length) io.stdout(`nothing to remove (networks in ${path.resolve(o.cniConfDir ?? '/etc/cni/net.d')}, cache ${o.cacheDir ?? '/var/lib/cni'})\n`);
    else {
      io.stdout(table(['KIND', 'NETWORK', 'CONTAINER', 'ADDRESS', 'WHY', 'ACTION'],
        report.findings.map((f) => [f.kind, f.network, f.containerId, f.address, f.reason, f.error ? `${f.action}: ${f.error}` : f.action])));
    }
  }
  if (failed) {
    io.stderr(`flax gc: ${failed} of ${report.findings.length} removal(s) failed\n`);
    return 1;
  }
  return 0;
}
