/**
 * `flax tombstones`: before a node switches back to the reference plugins,
 * writes, in the current netns, the reference's EMPTY iptables chain and
 * POSTROUTING jumps for every (network, container) of flax's nftables
 * masquerade rules that lacks them — the reference's DEL (v1.1.1) fails on
 * a missing chain. bridge writes none at ADD unless `iptablesTombstone`.
 * `flax install --uninstall` runs the same first. Exit 0, 1 when a write
 * failed (the others still ran).
 */
import type { Options } from 'yargs';
import type { CliIo, CommandDef } from '../command';
import type { FirewallDeps, Tombstone, TombstoneReport } from '../../pkg/nft';
import { prefixIP } from '../../pkg/ip';
import { UsageError, confDirOf, confDirOption } from '../usage';

export const TOMBSTONES_OPTIONS = {
  network: { type: 'string', describe: 'only this network' },
  'dry-run': { type: 'boolean', describe: 'print what would be written; change nothing' },
  'cni-conf-dir': confDirOption('config dir, whose network names resolve hashed rule comments (default: $NETCONFPATH or /etc/cni/net.d)'),
  'cache-dir': { type: 'string', describe: 'libcni cache root, whose attachments do the same (default /var/lib/cni)' },
} as const satisfies Record<string, Options>;

export interface TombstonesOptions {
  cniConfDir: string;
  cacheDir: string;
  network?: string;
  dryRun?: boolean;
}

/** The tombstones of this netns, with the names the node knows (conflists, libcni cache) to resolve hashed comments. */
export async function nodeTombstones(o: TombstonesOptions, fw?: FirewallDeps): Promise<TombstoneReport> {
  const [{ listAttachments }, { loadConfigs }, nft] = await Promise.all([import('../../pkg/invoke/cache'), import('../../pkg/invoke/conf'), import('../../pkg/nft')]);
  const attachments = listAttachments(o.cacheDir);
  const networks = [...loadConfigs(o.cniConfDir).lists.map((l) => l.name), ...attachments.map((a) => a.network)];
  return nft.writeMissingTombstones({ networks, attachments }, { network: o.network, dryRun: o.dryRun }, fw ?? nft.defaultDeps);
}

const describeTombstone = (t: Tombstone) => `${t.network} ${t.containerId} ${t.chain} (${t.ips.map(prefixIP).join(', ')})`;

/** Skips and failures, one line each (for stderr). */
export function tombstoneProblems(r: TombstoneReport): string[] {
  return [
    ...r.skipped.map((s) => `skipped "${s.key}"${s.address ? ` (${s.address})` : ''}: ${s.reason}`),
    ...r.failed.map((f) => `failed ${describeTombstone(f.tombstone)}: ${f.error}`),
  ];
}

/** `wrote N tombstone(s), M already present, …` */
export function tombstoneSummary(r: TombstoneReport, dryRun = false): string {
  const done = r.write.length - r.failed.length;
  return `${dryRun ? 'would write' : 'wrote'} ${done} tombstone(s), ${r.present.length} already present, ${r.skipped.length} skipped`
    + (r.failed.length ? `, ${r.failed.length} failed` : '');
}

export async function runTombstones(a: Record<string, unknown>, io: CliIo, fw?: FirewallDeps): Promise<number> {
  const dryRun = !!a.dryRun;
  const r = await nodeTombstones({
    cniConfDir: confDirOf(a.cniConfDir, io.env),
    cacheDir: (a.cacheDir as string | undefined) ?? '/var/lib/cni',
    network: a.network as string | undefined,
    dryRun,
  }, fw);
  const failed = new Set(r.failed.map((f) => f.tombstone));
  for (const t of r.write) if (!failed.has(t)) io.stdout(`${dryRun ? 'would write' : 'wrote'} ${describeTombstone(t)}\n`);
  for (const l of tombstoneProblems(r)) io.stderr(`flax tombstones: ${l}\n`);
  io.stdout(tombstoneSummary(r, dryRun) + '\n');
  return r.failed.length ? 1 : 0;
}

export const TOMBSTONES_COMMAND: CommandDef = {
  name: 'tombstones',
  describe: 'before switching back to the reference plugins: write their (empty) iptables chain for each of flax\'s nftables masquerade rules, so that their DEL succeeds',
  options: TOMBSTONES_OPTIONS as unknown as Record<string, Options>,
  root: true,
  examples: [
    ['flax tombstones --dry-run', 'list what would be written, change nothing'],
    ['flax tombstones --network cbr0', 'only the pods of network cbr0'],
  ],
  epilog: 'In the current network namespace: every rule of table inet cni_plugins_masquerade is keyed to a network and container; '
    + 'where the reference\'s chain CNI-<hash> (table nat) does not exist yet, it is written EMPTY with its POSTROUTING -s <pod address> jump '
    + '(iptables-restore / ip6tables-restore --noflush; a family whose tool is missing is skipped). It changes no packet. '
    + 'Running it again writes nothing. flax install --uninstall does the same first.',
  check: (a) => {
    if (a.network === '') throw new UsageError('--network needs a network name');
  },
  run: (a, io) => runTombstones(a, io),
};
