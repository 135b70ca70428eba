/**
 * `flax gc`: one sweep of the node for what dead attachments left behind,
 * with no list from a runtime (the sweeper: plugins/sweep/, with the
 * suite's plugins in-process).
 * Exit 0 when the sweep finished (even with nothing to do), 1 when some
 * removal failed (the rest still ran).
 */
import path from 'node:path';
import { sweepNode } from '../../suite';
import type { Finding } from '../../sweep/report';
import { table } from '../table';
import { cniPathOf, confDirOf, outputFormat } from '../usage';
import type { CliIo } from '../command';

export interface GcCmdOptions {
  dryRun?: boolean;
  json?: boolean;
  output?: string;
  network?: string[];
  minAge?: number;
  cniConfDir?: string;
  cniPath?: string;
  cacheDir?: string;
  /** `flax sandbox`'s root (default $FLAX_SANDBOX_DIR or /run/flax/sandboxes) */
  sandboxDir?: string;
}

const count = (fs: Finding[], kind: Finding['kind']) => fs.filter((f) => f.kind === kind).length;

export async function runGc(o: GcCmdOptions, io: CliIo): Promise<number> {
  const confDir = confDirOf(o.cniConfDir, io.env);
  const cacheDir = o.cacheDir ?? '/var/lib/cni';
  const report = await sweepNode({
    confDir, cacheDir,
    cniPath: cniPathOf(o.cniPath, io.env),
    networks: o.network ?? [],
    minAgeMs: (o.minAge ?? 60) * 1000,
    dryRun: !!o.dryRun,
    sandboxDir: o.sandboxDir,
  });
  const { findings, kept, errors } = report;
  const failed = findings.filter((f) => f.action === 'failed');
  if (outputFormat(o) === 'json') {
    io.stdout(JSON.stringify({ dryRun: !!o.dryRun, ...report }, null, 2) + '\n');
  } else {
    for (const e of errors) io.stderr(`flax gc: ${e}\n`);
    if (report.skipped) {
      io.stdout(`${report.skipped} (a sweeper that sees no network cannot judge the node's attachments)\n`);
      return 0;
    }
    if (report.blind) {
      io.stdout(`blind: this sweeper cannot see the node's netns pins (${report.blind.reason}); `
        + `kept ${report.blind.kept} attachment(s) whose death rests on a missing netns path\n`);
    }
    if (!findings.length) io.stdout(`nothing to remove (networks in ${path.resolve(confDir)}, cache ${cacheDir})\n`);
    else {
      io.stdout(table(['KIND', 'NETWORK', 'CONTAINER', 'IFNAME', 'NETNS', 'ADDRESS', 'WHY', 'ACTION'],
        findings.map((f) => [f.kind, f.network, f.containerId, f.ifname, f.netns, f.address, f.reason,
          f.error ? `${f.action}: ${f.error}` : f.removed ? `${f.action}: ${f.removed}` : f.action])));
    }
    io.stdout(`${o.dryRun ? 'would sweep' : 'swept'} ${count(findings, 'sandbox')} sandbox(es), ${count(findings, 'attachment')} attachment(s), `
      + `${count(findings, 'masquerade') + count(findings, 'portmap')} orphaned rule(s), `
      + `${count(findings, 'reservation')} ownerless file set(s); kept ${kept.length} live attachment(s)\n`);
  }
  if (failed.length) {
    io.stderr(`flax gc: ${failed.length} of ${findings.length} removal(s) failed\n`);
    return 1;
  }
  return 0;
}
