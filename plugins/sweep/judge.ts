/**
 * The sweeper's judgement, pure: which leftovers have no evidence of a live
 * attachment. Evidence is gathered from the node by sweep.ts; nothing here
 * touches the system, so every rule is unit-tested.
 *
 * Rule (conservative: what cannot be proven dead is kept):
 * - a masquerade rule of flax's bridge (nft table `inet cni_plugins_masquerade`,
 *   comment v1.10.0's `<hash>, net: <net>, if: <if>, id: <cid>` or flax's
 *   legacy `name: <net> id: <cid>`; a portmap rule's legacy comment alike) is alive while the libcni cache holds an
 *   attachment of that network and container, or while a host-local
 *   reservation of that network names the container (an ADD in progress
 *   reserves its address before it writes the rule; the cache follows the
 *   ADD). A rule whose comment names no network we can resolve is kept.
 *   This is what the reference's DEL leaves after a node switched back from
 *   flax: it releases the address and the cache entry, but knows nothing of
 *   our nftables rule. A v1.10.0 comment cut at 128 bytes shows no whole id: kept.
 * - a portmap rule (tables `ip|ip6 cni_hostport`) commented with a bare
 *   container id (v1.10.0's form, what flax writes) names no network: it is
 *   dead only when no network has evidence of that id; with --network, kept.
 * - an ownerless host-local reservation file (empty: a writer killed between
 *   create and write) or a temporary of ours is judged by host-local's GC
 *   itself, older than --min-age (see DiskStore.gc).
 */
import { commentIsNetwork, parseMasqComment, masqRuleSource } from '../pkg/nft/masq';
import type { NftRule } from '../pkg/nft/ruleset';
import { PM_RULE_CHAINS, PORTMAP_TABLE } from '../pkg/nft/portmap';

export interface Evidence {
  /** `${network}\0${containerId}` of every attachment in the libcni cache */
  cached: ReadonlySet<string>;
  /** network → ids named by its host-local reservations */
  reserved: ReadonlyMap<string, ReadonlySet<string>>;
}

export const evidenceKey = (network: string, containerId: string) => `${network}\0${containerId}`;

export interface DeadRule {
  rule: NftRule;
  network: string;
  containerId: string;
  address: string;
  reason: string;
}

/**
 * The masquerade rules to remove. `networks` are the names the node knows
 * (configs, cache, data dirs): a hashed comment resolves only through them.
 * `only`, when given, limits the sweep to those networks.
 */
export function judgeMasqRules(rules: readonly NftRule[], networks: Iterable<string>, ev: Evidence, only?: ReadonlySet<string>): DeadRule[] {
  const known = [...networks];
  const out: DeadRule[] = [];
  for (const rule of rules) {
    const p = parseMasqComment(rule.comment);
    if (p === null && rule.comment && rule.table === PORTMAP_TABLE && (PM_RULE_CHAINS as readonly string[]).includes(rule.chain)) {
      const id = rule.comment; // a bare container id: evidence of any network keeps it
      if (only || [...ev.cached].some((k) => k.endsWith(`\0${id}`)) || [...ev.reserved.values()].some((ids) => ids.has(id))) continue;
      out.push({ rule, network: '', containerId: id, address: masqRuleSource(rule) ?? '', reason: 'no network has a cached attachment or a reserved address for this container' });
      continue;
    }
    if (!p?.containerId) continue; // foreign, or a key we cannot reverse: keep
    const network = p.network ?? known.find((n) => commentIsNetwork(p, n));
    if (network === undefined) continue;
    if (only && !only.has(network)) continue;
    if (ev.cached.has(evidenceKey(network, p.containerId))) continue;
    if (ev.reserved.get(network)?.has(p.containerId)) continue;
    out.push({
      rule, network, containerId: p.containerId, address: masqRuleSource(rule) ?? '',
      reason: 'no cached attachment and no address reserved for this container',
    });
  }
  return out;
}
