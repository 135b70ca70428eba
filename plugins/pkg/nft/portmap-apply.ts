/**
 * Port mapping I/O: sends the rule data of portmap.ts (nftables) and
 * portmap-ipt.ts (iptables) through the applier in apply.ts. DEL and GC
 * remove both backends' state (ours and the reference's) whichever backend
 * is configured, so a node can switch implementations or backends.
 */
import { randomBytes } from 'node:crypto';
import { type FirewallDeps, FirewallError, defaultDeps, iptSave, nftApply, nftList, retrying } from './apply';
import { genIptChainTeardown } from './masq';
import { type Expr, type NftCommand, type Ruleset, mergeRulesets } from './ruleset';
import { PORTMAP_TABLE, type PortmapSpec, genPortmapAdd, genPortmapGc, genPortmapTeardown, missingPortmapRules } from './portmap';
import {
  type IptPortmapSpec, genIptablesChainTeardown, genIptablesPortmap, iptablesCheckRules, portmapIptChains, stalePortmapIptChains,
} from './portmap-ipt';

const firstLine = (s: string) => s.trim().split('\n').slice(0, 3).join(' | ');
const fam = (v6: boolean) => (v6 ? 'ip6' : 'ip');

/**
 * Turns conditionsV4/V6 (nft rule text, e.g. `ip daddr != 10.0.0.0/8`) into
 * JSON expressions with nft's own parser: the text is added to a throwaway
 * table (echoed back as JSON) that is deleted at once. Only at ADD, only
 * when conditions are configured.
 */
export async function translateNftConditions(conditions: string[], v6: boolean, deps: FirewallDeps = defaultDeps): Promise<Expr[]> {
  const text = conditions.join(' ').trim();
  if (!text) return [];
  if (/[;\n\r#{}]/.test(text)) throw new FirewallError(`conditions may not contain ; # { } or newlines: ${JSON.stringify(text)}`);
  const t = `flax_cond_${randomBytes(6).toString('hex')}`;
  const f = fam(v6);
  const r = await deps.run('nft', ['-j', '--echo', `add table ${f} ${t}; add chain ${f} ${t} c; add rule ${f} ${t} c ${text} counter`]);
  await deps.run('nft', ['delete', 'table', f, t]);
  if (r.code !== 0) throw new FirewallError(`invalid nftables conditions ${JSON.stringify(text)}: ${firstLine(r.stderr)}`, r.stderr);
  const doc = JSON.parse(r.stdout) as { nftables: { add?: { rule?: { expr: Expr[] } } }[] };
  const rule = doc.nftables.find((x) => x.add?.rule)?.add?.rule;
  if (!rule) throw new FirewallError(`nft did not echo the conditions rule for ${JSON.stringify(text)}`);
  return rule.expr.filter((e) => !('counter' in e));
}

const listPortmapTables = async (families: ('ip' | 'ip6')[], deps: FirewallDeps): Promise<Ruleset> =>
  mergeRulesets(...(await Promise.all(families.map((f) => nftList(['table', f, PORTMAP_TABLE], deps)))));

/** nftables ADD: one listing per family, then one atomic batch for all families. */
export async function setupPortmapNft(specs: PortmapSpec[], deps: FirewallDeps = defaultDeps): Promise<void> {
  if (!specs.length) return;
  await retrying(async () => {
    const rs = await listPortmapTables(['ip', 'ip6'], deps);
    await nftApply(genPortmapAdd(specs, rs), deps);
  });
}

/** iptables ADD for one family (reference layout). */
export async function setupPortmapIpt(spec: IptPortmapSpec, deps: FirewallDeps = defaultDeps): Promise<void> {
  const tool = spec.v6 ? 'ip6tables-restore' : 'iptables-restore';
  await retrying(async () => {
    const save = await iptSave(spec.v6, deps);
    const r = await deps.run(tool, ['-w', '--noflush'], genIptablesPortmap(spec, save));
    if (r.code !== 0) throw new FirewallError(`${tool} failed: ${firstLine(r.stderr)}`, r.stderr);
  });
}

/**
 * DEL: removes every port mapping of network + container — our nft rules,
 * rules the reference's nftables backend made (bare container id comment),
 * and the reference's iptables chains (CNI-DN-…, legacy CNI-SN-…) with the
 * jumps to them. Needs no addresses, so it works without the pod netns.
 */
export async function teardownPortmap(network: string, containerId: string, deps: FirewallDeps = defaultDeps): Promise<void> {
  const chains = portmapIptChains(network, containerId);
  const viaNft = deps.has('nft');
  const iptNft = viaNft && deps.iptablesNft();
  if (viaNft) {
    await retrying(async () => {
      // With iptables-nft, one listing shows the reference's chains too.
      const rs = iptNft ? await nftList(['ruleset'], deps) : await listPortmapTables(['ip', 'ip6'], deps);
      const cmds: NftCommand[] = genPortmapTeardown(rs, network, containerId);
      if (iptNft) for (const c of chains) cmds.push(...genIptChainTeardown(rs, c));
      await nftApply(cmds, deps);
    });
  }
  if (!iptNft) await iptLegacyTeardown(chains, deps);
}

async function iptLegacyTeardown(chains: string[], deps: FirewallDeps): Promise<void> {
  for (const v6 of [false, true]) {
    const tool = v6 ? 'ip6tables' : 'iptables';
    if (!deps.has(tool)) continue;
    const text = genIptablesChainTeardown(chains, await iptSave(v6, deps));
    if (!text) continue;
    const r = await deps.run(`${tool}-restore`, ['-w', '--noflush'], text);
    if (r.code !== 0) throw new FirewallError(`${tool}-restore failed: ${firstLine(r.stderr)}`, r.stderr);
  }
}

/** CHECK (nftables): throws naming the first missing rules. */
export async function checkPortmapNft(specs: PortmapSpec[], deps: FirewallDeps = defaultDeps): Promise<void> {
  const rs = await listPortmapTables([...new Set(specs.map((s) => fam(s.v6) as 'ip' | 'ip6'))], deps);
  const missing = missingPortmapRules(rs, specs);
  if (missing.length) throw new FirewallError(`port mapping rules missing: ${missing.slice(0, 3).join('; ')}`);
}

/** CHECK (iptables): every expected rule exists (`iptables -C`). */
export async function checkPortmapIpt(spec: IptPortmapSpec, deps: FirewallDeps = defaultDeps): Promise<void> {
  const tool = spec.v6 ? 'ip6tables' : 'iptables';
  for (const [chain, ...rule] of iptablesCheckRules(spec)) {
    const r = await deps.run(tool, ['-w', '-t', 'nat', '-C', chain, ...rule]);
    if (r.code !== 0) throw new FirewallError(`${tool} rule missing in ${chain}: ${rule.join(' ')}`, r.stderr);
  }
}

/** GC: removes port mappings of `network` whose container id is not in `validIds`, both backends. */
export async function gcPortmap(network: string, validIds: ReadonlySet<string>, deps: FirewallDeps = defaultDeps): Promise<void> {
  if (deps.has('nft')) {
    await retrying(async () => nftApply(genPortmapGc(await listPortmapTables(['ip', 'ip6'], deps), network, validIds), deps));
  }
  for (const v6 of [false, true]) {
    const tool = v6 ? 'ip6tables' : 'iptables';
    if (!deps.has(tool)) continue;
    const save = await iptSave(v6, deps);
    const stale = stalePortmapIptChains(save, network, validIds);
    if (!stale.length) continue;
    const text = genIptablesChainTeardown(stale, save);
    const r = await deps.run(`${tool}-restore`, ['-w', '--noflush'], text);
    if (r.code !== 0) throw new FirewallError(`${tool}-restore failed: ${firstLine(r.stderr)}`, r.stderr);
  }
}

