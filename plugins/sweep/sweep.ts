/**
 * One sweep of the node (`flax gc`, flaxd's sweeper), in phases:
 *  0. dead sandboxes of `flax sandbox` (sandboxes.ts);
 *  1. facts: configs, the libcni cache, the host's links, each cached
 *     attachment's netns (facts.ts) → alive or dead (liveness.ts);
 *  2. firewall: one listing, then ONE nft batch removing the masquerade
 *     state of every dead attachment and the orphaned rules judge.ts finds
 *     (when it succeeds, the DELs below need not list the ruleset again);
 *  3. a CNI DEL of each dead attachment through the library, with its
 *     cached config and result and an empty CNI_NETNS (its netns is gone,
 *     or is another one now), our plugins in-process (the caller's
 *     SweepPlugins); where DEL fails, the fallback (fallback.ts):
 *     release its host-local reservations, remove its rules and cache file;
 *  4. ownerless/temporary host-local files older than --min-age;
 *  5. a CNI GC per configured network (≥ 1.1.0) whose valid list is every
 *     attachment not proven dead (cached or only known by a reservation).
 * Continues past errors; each is reported on its finding.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { type Attachment, listAttachments } from '../pkg/invoke/cache';
import { CniConfig, type GcAttachment } from '../pkg/invoke/api';
import { type NetworkConfigList, confListFromBytes, loadConfigs } from '../pkg/invoke/conf';
import { type FirewallDeps, type NftCommand, MASQ_TABLE, defaultDeps, genMasqTeardown, nftApply, nftList } from '../pkg/nft';
import { PORTMAP_TABLE, genPortmapTeardown } from '../pkg/nft/portmap';
import { DEFAULT_DATA_DIR, DiskStore } from '../ipam/host-local/store/disk-store';
import { attachmentFacts, hostLinks, reservationOwners } from './facts';
import { fallbackCleanup, flannelDirs } from './fallback';
import { type Evidence, evidenceKey, judgeMasqRules } from './judge';
import { type AttachmentFacts, blindView, judgeAttachment, keptWhenBlind } from './liveness';
import type { Finding, SweepOptions, SweepPlugins, SweepReport } from './report';
import { sweepSandboxes } from './sandboxes';

export type { Finding, FindingKind, SweepOptions, SweepPlugins, SweepReport } from './report';

const addresses = (r: Record<string, unknown> | undefined): string =>
  (Array.isArray(r?.ips) ? (r!.ips as { address?: unknown }[]).map((i) => String(i.address ?? '').split('/')[0]) : []).join(' ');

/** The host-local data dirs a list's plugins use. */
function dataDirsOf(list: NetworkConfigList | undefined): string[] {
  const out = new Set<string>();
  for (const p of list?.plugins ?? []) {
    const ipam = p.raw.ipam as Record<string, unknown> | undefined;
    if (ipam?.type === 'host-local') out.add(typeof ipam.dataDir === 'string' ? ipam.dataDir : DEFAULT_DATA_DIR);
  }
  return [...out];
}

function cachedList(a: Attachment, current: Map<string, NetworkConfigList>): NetworkConfigList | undefined {
  try {
    return confListFromBytes(a.config);
  } catch {
    return current.get(a.network);
  }
}

const EMPTY_RULESET = '{"nftables":[]}';

/** Firewall deps whose `nft list` answers `snapshot` (other commands run for real). */
function snapshotFirewall(base: FirewallDeps, snapshot: string): FirewallDeps {
  return {
    ...base,
    run: (bin, args, input) => (bin === 'nft' && args[0] === '-j' && args[1] === 'list'
      ? Promise.resolve({ code: 0, stdout: snapshot, stderr: '' })
      : base.run(bin, args, input)),
  };
}

/** One sweep of the node; `plugins` runs our plugins in-process for its DELs and GCs. */
export async function sweepNode(o: SweepOptions, plugins: SweepPlugins): Promise<SweepReport> {
  const fw = o.firewall ?? defaultDeps;
  const now = o.now ?? Date.now();
  const rep: SweepReport = { findings: [], kept: [], errors: [] };
  const only = o.networks.length ? new Set(o.networks) : undefined;
  const inScope = (n: string) => !only || only.has(n);
  const { lists, errors: confErrors } = loadConfigs(o.confDir);
  for (const e of confErrors) rep.errors.push(e.message);
  const current = new Map(lists.map((l) => [l.name, l]));
  if (!lists.length) {
    // a sweeper that sees no network at all (conf dir unmounted, empty or
    // unreadable) does not see the node it would judge: it sweeps nothing
    rep.skipped = `no network configuration in ${path.resolve(o.confDir)}${confErrors.length ? ` (${confErrors.length} unreadable file(s))` : ''}: nothing swept`;
    return rep;
  }

  // 0. dead sandboxes of `flax sandbox` (pause gone, pins left): removed
  // the way `flax sandbox rm --force` does, which DELs their networks
  await sweepSandboxes(rep, o, now);

  // 1. facts and verdicts
  const all = listAttachments(o.cacheDir);
  const atts = all.filter((a) => inScope(a.network));
  const links = await hostLinks().catch((e) => {
    rep.errors.push(`cannot list host links: ${(e as Error).message}`);
    return new Map();
  });
  const dead: { a: Attachment; f: Finding }[] = [];
  const alive: Attachment[] = [];
  const judged: { a: Attachment; label: string; facts: AttachmentFacts }[] = [];
  for (const a of all) judged.push({ a, label: `${a.network}/${a.containerId}/${a.ifName}`, facts: await attachmentFacts(a, links, now) });
  // blindness is the view's, not a network's: told from every attachment, --network or not
  const blind = blindView(judged);
  if (blind) rep.blind = { reason: blind, kept: 0 };
  for (const { a, facts } of judged) {
    if (!inScope(a.network)) continue;
    const first = judgeAttachment(facts, o.minAgeMs);
    const v = keptWhenBlind(facts, first, blind);
    if (first.dead && !v.dead) rep.blind!.kept++;
    const f: Finding = {
      kind: 'attachment', network: a.network, containerId: a.containerId, ifname: a.ifName, netns: facts.netns,
      address: addresses(a.result), reason: v.reason, action: v.dead ? (o.dryRun ? 'would remove' : 'removed') : 'kept',
    };
    if (v.dead) dead.push({ a, f });
    else {
      alive.push(a);
      rep.kept.push(f);
    }
  }
  reportUnreadableCache(rep, o.cacheDir, atts, only);
  const deadKeys = new Set(dead.map(({ a }) => `${a.network}\0${a.containerId}\0${a.ifName}`));
  const networks = new Set([...current.keys(), ...atts.map((a) => a.network)]);
  // host-local data dirs per network (current config and every cached one), computed once
  const dirs = new Map<string, Set<string>>();
  for (const n of networks) dirs.set(n, new Set(dataDirsOf(current.get(n))));
  for (const a of atts) for (const d of dataDirsOf(cachedList(a, current))) dirs.get(a.network)!.add(d);
  const dirsOf = (n: string) => {
    const ds = dirs.get(n);
    return ds?.size ? [...ds] : [DEFAULT_DATA_DIR];
  };
  // Reservation owners per network, read once, before anything is removed
  // and — when there is a ruleset — AFTER it is listed: an ADD reserves its
  // address before it writes its rule, so a rule in the listing always finds
  // its reservation in this read.
  const readOwners = () => new Map([...networks].map((n) => [n, dirsOf(n).flatMap((d) => reservationOwners(d, n))]));
  let owners: ReturnType<typeof readOwners> | undefined;

  // 2. firewall: one listing, one batch
  let delFw = fw;
  if (fw.has('nft')) {
    try {
      const rs = await nftList(['ruleset'], fw);
      owners = readOwners();
      const reserved = new Map([...owners].map(([n, os]) => [n, new Set(os.map((x) => x.id))]));
      const ev: Evidence = { cached: new Set(alive.map((a) => evidenceKey(a.network, a.containerId))), reserved };
      const deadIds = new Set(dead.map(({ a }) => evidenceKey(a.network, a.containerId)));
      const cmds: NftCommand[] = [];
      for (const { a } of dead) cmds.push(...genMasqTeardown(rs, a.network, a.containerId, a.ifName), ...genPortmapTeardown(rs, a.network, a.containerId));
      const keyed = rs.rules.filter((r) => r.table === MASQ_TABLE || (r.table === PORTMAP_TABLE && (r.family === 'ip' || r.family === 'ip6')));
      for (const d of judgeMasqRules(keyed, networks, ev, only)) {
        if (deadIds.has(evidenceKey(d.network, d.containerId))) continue; // removed with its attachment
        if (d.network === '' && [...deadIds].some((k) => k.endsWith(`\0${d.containerId}`))) continue; // a bare-id portmap rule, likewise
        rep.findings.push({
          kind: d.rule.table === PORTMAP_TABLE ? 'portmap' : 'masquerade', network: d.network, containerId: d.containerId, ifname: '', netns: '', address: d.address, reason: d.reason,
          action: o.dryRun ? 'would remove' : 'removed', removed: `nft rule handle ${d.rule.handle}`,
        });
        cmds.push({ delete: { rule: { family: d.rule.family, table: d.rule.table, chain: d.rule.chain, handle: d.rule.handle!, expr: [] } } });
      }
      if (!o.dryRun) {
        // a bare-id portmap rule is found by every dead attachment of its container: delete each handle once
        const seen = new Set<string>();
        await nftApply(cmds.filter((c) => {
          const r = 'delete' in c && 'rule' in c.delete ? c.delete.rule : undefined;
          if (!r) return true;
          const k = `${r.family} ${r.table} ${r.chain} ${r.handle}`;
          return seen.has(k) ? false : (seen.add(k), true);
        }), fw);
        // The batch (atomic) removed every nft object of the dead: their
        // DELs may skip listing the ruleset (an nft exec each).
        delFw = snapshotFirewall(fw, EMPTY_RULESET);
      }
    } catch (e) {
      rep.errors.push(`firewall: ${(e as Error).message}`);
      for (const f of rep.findings) if (f.kind === 'masquerade' && f.action === 'removed') f.action = 'failed';
    }
  }

  // reservations whose owner the cache does not know: kept, and said so
  owners ??= readOwners();
  const cachedKeys = new Set(atts.map((a) => `${a.network}\0${a.containerId}\0${a.ifName}`));
  for (const n of networks) {
    if (!inScope(n)) continue;
    for (const r of owners.get(n)!) {
      if (cachedKeys.has(`${n}\0${r.id}\0${r.ifname}`)) continue;
      rep.kept.push({ kind: 'reservation', network: n, containerId: r.id, ifname: r.ifname, netns: '', address: '', reason: 'its owner has no cached attachment: cannot tell', action: 'kept' });
    }
  }

  // 3. DEL every dead attachment (our plugins in-process)
  // one Exec for the chains, flannel's delegate and bridge's IPAM
  const exec = plugins(delFw);
  const cni = new CniConfig({ path: o.cniPath, cacheDir: o.cacheDir, exec, stderr: null });
  for (const { a, f } of dead) {
    rep.findings.push(f);
    if (o.dryRun) continue;
    const list = cachedList(a, current);
    try {
      if (!list) throw new Error(`no configuration for network ${a.network} (cache unreadable and no conflist)`);
      // CNI_NETNS empty: the recorded path is gone, or names another namespace now
      await cni.delNetworkList(list, { containerId: a.containerId, netns: '', ifName: a.ifName, args: a.cniArgs, capabilityArgs: a.capabilityArgs });
      f.removed = `DEL ${list.plugins.map((p) => p.network.type).join('+')}`;
    } catch (e) {
      const steps = await fallbackCleanup(a, dirsOf(a.network), o.cacheDir, fw);
      f.removed = `DEL failed (${(e as Error).message}); fallback: ${steps.done.join(', ') || 'nothing'}`;
      if (steps.errors.length) {
        f.action = 'failed';
        f.error = steps.errors.join('; ');
      }
    }
  }

  // 4. ownerless and temporary host-local files
  for (const n of networks) {
    if (!inScope(n)) continue;
    for (const dataDir of dirsOf(n)) sweepOwnerless(rep, dataDir, n, o, now);
  }

  // 5. CNI GC per network, with every attachment not proven dead as valid
  if (!o.dryRun) {
    for (const list of lists) {
      if (!inScope(list.name)) continue;
      const valid = new Map<string, GcAttachment>();
      for (const a of alive) if (a.network === list.name) valid.set(`${a.containerId}\0${a.ifName}`, { containerID: a.containerId, ifname: a.ifName });
      for (const d of dirsOf(list.name)) {
        for (const r of reservationOwners(d, list.name)) {
          if (!deadKeys.has(`${list.name}\0${r.id}\0${r.ifname}`)) valid.set(`${r.id}\0${r.ifname}`, { containerID: r.id, ifname: r.ifname });
        }
      }
      // an ADD in flight: flannel writes its file before the delegate reserves an address and long before
      // libcni caches the result, so a young flannel file is the only trace of it; GC must not take it
      for (const id of youngFlannelFiles(list, now - o.minAgeMs)) if (![...valid.values()].some((v) => v.containerID === id)) valid.set(`${id}\0`, { containerID: id, ifname: '' });
      try {
        await cni.gcNetworkList(list, [...valid.values()]);
      } catch (e) {
        rep.errors.push(`GC of network ${list.name}: ${(e as Error).message}`);
      }
    }
  }
  return rep;
}

/** Container ids of the files in the list's flannel dataDirs modified after `since` (ms since the epoch). */
function youngFlannelFiles(list: NetworkConfigList, since: number): string[] {
  const out: string[] = [];
  for (const dir of flannelDirs(list)) {
    let names: string[] = [];
    try { names = readdirSync(dir); } catch { continue; }
    for (const id of names) {
      try { if (statSync(path.join(dir, id)).mtimeMs > since) out.push(id); } catch { /* gone meanwhile */ }
    }
  }
  return out;
}

/** Files in the cache's results/ that are not cniCacheV1 attachments: reported, kept. */
function reportUnreadableCache(rep: SweepReport, cacheDir: string, atts: Attachment[], only?: ReadonlySet<string>): void {
  const dir = path.join(cacheDir, 'results');
  const known = new Set(atts.map((a) => path.basename(a.file)));
  let names: string[] = [];
  try { names = readdirSync(dir); } catch { return; }
  for (const n of names) {
    if (known.has(n) || (only && ![...only].some((net) => n.startsWith(`${net}-`)))) continue;
    rep.errors.push(`cache file ${path.join(dir, n)} is not a readable cniCacheV1 attachment: kept`);
  }
}

function sweepOwnerless(rep: SweepReport, dataDir: string, network: string, o: SweepOptions, now: number): void {
  if (!DiskStore.exists(dataDir, network)) return;
  try {
    using store = DiskStore.open(dataDir, network);
    const r = store.gc(() => true, o.minAgeMs, { now, dryRun: o.dryRun, ownerlessGraceMs: o.minAgeMs });
    const action = o.dryRun ? 'would remove' : 'removed';
    const base = { kind: 'reservation' as const, network, containerId: '', ifname: '', netns: '' };
    const reason = `ownerless reservation file older than ${Math.round(o.minAgeMs / 1000)} s (a writer killed midway)`;
    for (const ip of r.removed) rep.findings.push({ ...base, address: ip, reason, action, removed: path.join(dataDir, network, ip) });
    if (r.temporaries) rep.findings.push({ ...base, address: `${r.temporaries} temporary file(s)`, reason: 'temporaries of killed host-local writers', action });
    for (const e of r.errors) rep.findings.push({ ...base, address: '', reason: 'ownerless', action: 'failed', error: e });
  } catch (e) {
    rep.errors.push(`${path.join(dataDir, network)}: ${(e as Error).message}`);
  }
}
