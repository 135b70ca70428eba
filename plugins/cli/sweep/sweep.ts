/**
 * One sweep of the node (`flax gc`): gathers the evidence of live
 * attachments (libcni cache, host-local reservations of every configured
 * network), removes the masquerade rules judge.ts finds dead and the
 * ownerless/temporary host-local files older than the minimum age.
 * Continues past errors; each one is reported on its finding.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { listAttachments, loadConfigs } from '../../pkg/invoke/index';
import { type FirewallDeps, MASQ_CHAIN, MASQ_TABLE, defaultDeps, nftApply, nftList } from '../../pkg/nft';
import { DEFAULT_DATA_DIR, DiskStore, isReservationName } from '../../ipam/host-local/store/disk-store';
import { type Evidence, evidenceKey, judgeMasqRules } from './judge';

export interface SweepOptions {
  confDir: string;
  cacheDir: string;
  /** only these networks (empty: all) */
  networks: string[];
  minAgeMs: number;
  dryRun: boolean;
  now?: number;
  firewall?: FirewallDeps;
}

export interface Finding {
  kind: 'masquerade' | 'reservation';
  network: string;
  containerId: string;
  address: string;
  reason: string;
  action: 'removed' | 'would remove' | 'failed';
  error?: string;
}

export interface SweepReport {
  findings: Finding[];
  /** problems that stopped part of the sweep (unreadable config, nft missing, …) */
  errors: string[];
}

/** network → host-local data directories its configs use (default dir when none says). */
function hostLocalDirs(confDir: string, errors: string[]): Map<string, Set<string>> {
  const { lists, errors: confErrors } = loadConfigs(confDir);
  for (const e of confErrors) errors.push(e.message);
  const dirs = new Map<string, Set<string>>();
  for (const l of lists) {
    for (const p of l.plugins) {
      const ipam = p.raw.ipam as Record<string, unknown> | undefined;
      if (ipam?.type !== 'host-local') continue;
      const d = typeof ipam.dataDir === 'string' ? ipam.dataDir : DEFAULT_DATA_DIR;
      if (!dirs.has(l.name)) dirs.set(l.name, new Set());
      dirs.get(l.name)!.add(d);
    }
  }
  return dirs;
}

/** Container ids named by the reservation files of `<dataDir>/<network>/`. */
function reservationOwners(dataDir: string, network: string): Set<string> {
  const ids = new Set<string>();
  const dir = path.join(dataDir, network);
  let names: string[] = [];
  try { names = readdirSync(dir); } catch { return ids; }
  for (const n of names) {
    if (!isReservationName(n)) continue;
    try {
      const id = readFileSync(path.join(dir, n), 'utf8').split('\r\n')[0].trim();
      if (id) ids.add(id);
    } catch { /* released meanwhile */ }
  }
  return ids;
}

export async function sweepNode(o: SweepOptions): Promise<SweepReport> {
  const fw = o.firewall ?? defaultDeps;
  const now = o.now ?? Date.now();
  const errors: string[] = [];
  const findings: Finding[] = [];
  const only = o.networks.length ? new Set(o.networks) : undefined;
  const dirs = hostLocalDirs(o.confDir, errors);

  // 1. firewall rules, while the evidence is fresh
  let rules: Awaited<ReturnType<typeof nftList>>['rules'] = [];
  if (fw.has('nft')) {
    try {
      rules = (await nftList(['table', 'inet', MASQ_TABLE], fw)).rules.filter((r) => r.chain === MASQ_CHAIN);
    } catch (e) {
      errors.push(`cannot list nftables masquerade rules: ${(e as Error).message}`);
    }
  }
  const atts = listAttachments(o.cacheDir);
  const cached = new Set(atts.map((a) => evidenceKey(a.network, a.containerId)));
  const networks = new Set([...dirs.keys(), ...atts.map((a) => a.network)]);
  // networks named by a rule but not configured any more: their addresses
  // would be in the default data directory
  const reserved = new Map<string, Set<string>>();
  const ruleNets = judgeMasqRules(rules, networks, { cached: new Set(), reserved: new Map() }).map((d) => d.network);
  for (const n of new Set([...networks, ...ruleNets])) {
    const ids = new Set<string>();
    for (const d of dirs.get(n) ?? [DEFAULT_DATA_DIR]) for (const id of reservationOwners(d, n)) ids.add(id);
    reserved.set(n, ids);
  }
  const ev: Evidence = { cached, reserved };
  const dead = judgeMasqRules(rules, networks, ev, only);
  for (const d of dead) {
    const f: Finding = { kind: 'masquerade', network: d.network, containerId: d.containerId, address: d.address, reason: d.reason, action: o.dryRun ? 'would remove' : 'removed' };
    findings.push(f);
    if (o.dryRun) continue;
    try {
      await nftApply([{ delete: { rule: { family: d.rule.family, table: d.rule.table, chain: d.rule.chain, handle: d.rule.handle!, expr: [] } } }], fw);
    } catch (e) {
      f.action = 'failed';
      f.error = (e as Error).message;
    }
  }

  // 2. ownerless and temporary host-local files
  for (const [network, ds] of dirs) {
    if (only && !only.has(network)) continue;
    for (const dataDir of ds) {
      if (!DiskStore.exists(dataDir, network)) continue;
      try {
        const store = DiskStore.open(dataDir, network);
        try {
          const r = store.gc(() => true, o.minAgeMs, { now, dryRun: o.dryRun, ownerlessGraceMs: o.minAgeMs });
          const action = o.dryRun ? 'would remove' : 'removed';
          const reason = `ownerless reservation file older than ${Math.round(o.minAgeMs / 1000)} s (a writer killed midway)`;
          for (const ip of r.removed) findings.push({ kind: 'reservation', network, containerId: '', address: ip, reason, action });
          if (r.temporaries) {
            findings.push({ kind: 'reservation', network, containerId: '', address: `${r.temporaries} temporary file(s)`, reason: 'temporaries of killed host-local writers', action });
          }
          for (const e of r.errors) findings.push({ kind: 'reservation', network, containerId: '', address: '', reason: 'ownerless', action: 'failed', error: e });
        } finally {
          store.close();
        }
      } catch (e) {
        errors.push(`${path.join(dataDir, network)}: ${(e as Error).message}`);
      }
    }
  }
  return { findings, errors };
}
