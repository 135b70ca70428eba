/**
 * The iptables "tombstones" written when a node switches back to the
 * reference plugins (`flax tombstones`, `flax install --uninstall`), as data:
 * which (network, container) of flax's nftables masquerade rules still lacks
 * the reference's chain. No I/O here (apply.ts lists and writes).
 *
 * A rule is keyed by its comment (masqComment): v1.10.0's form
 * `<hash>, net: <net>, if: <if>, id: <cid>` names both when not cut at 128
 * bytes (then the hashes vouch for it), else its instance hash is resolved
 * against the cached attachments. flax's legacy forms: `name: <net> id: <cid>`
 * names both; `name-sha256: <16 hex> id: <cid>` (a long network name) is
 * resolved against the network names the node knows (conflists, libcni
 * cache); `key-sha256: <64 hex>` only against the cached attachments.
 * A rule that cannot be resolved is reported, never guessed.
 */
import { type Prefix, parseAddrOrPrefix, prefixIP } from '../ip';
import { MASQ_CHAIN, MASQ_TABLE, commentIsNetwork, iptChains, iptablesChainName, legacyMasqComment, masqInstanceHash, masqRuleSource, parseMasqComment } from './masq';
import type { NftRule, Ruleset } from './ruleset';

export interface Tombstone {
  network: string;
  containerId: string;
  /** the reference's chain, `CNI-<24 hex>` (the same name in both families) */
  chain: string;
  /** sources of the POSTROUTING jumps (/32, /128): those of the families whose chain is missing */
  ips: Prefix[];
}

export interface SkippedTombstone {
  /** the rule's comment, or `<network> <container id>` */
  key: string;
  address: string;
  reason: string;
}

export interface TombstonePlan {
  /** to write, ordered by network then container id */
  write: Tombstone[];
  /** whose chain and jumps already exist in every family they need */
  present: Tombstone[];
  skipped: SkippedTombstone[];
}

/**
 * The reference's chains in table nat of one family, and their POSTROUTING
 * jumps as `<chain> <source address>`: the reference's DEL deletes the jump
 * of each address, then the chain, and fails when either is missing.
 */
export interface IptFamily {
  chains: ReadonlySet<string>;
  jumps: ReadonlySet<string>;
}
/** Per family; null = the family's iptables tools are missing (nothing can be written). */
export interface IptChains {
  v4: IptFamily | null;
  v6: IptFamily | null;
}

const CNI_CHAIN = /^CNI-[0-9a-f]{24}$/;

/** An IptFamily from `ip(6)tables -t nat -S` lines. */
export function iptFamilyFromSave(lines: readonly string[]): IptFamily {
  const chains = new Set<string>();
  const jumps = new Set<string>();
  for (const l of lines) {
    if (l.startsWith('-N ') && CNI_CHAIN.test(l.slice(3))) chains.add(l.slice(3));
    const m = /^-A POSTROUTING (?:.* )?-s (\S+?)(?:\/(?:32|128))? (?:.* )?-j (CNI-[0-9a-f]{24})(?: |$)/.exec(l);
    if (m) jumps.add(`${m[2]} ${m[1]}`);
  }
  return { chains, jumps };
}

/** An IptFamily from an nft listing of table `ip nat` / `ip6 nat` (iptables-nft). */
export function iptFamilyFromNft(rs: Ruleset, family: 'ip' | 'ip6'): IptFamily {
  const chains = new Set(iptChains(rs).filter((c) => c.family === family).map((c) => c.name));
  const jumps = new Set<string>();
  for (const r of rs.rules) {
    if (r.family !== family || r.table !== 'nat' || r.chain !== 'POSTROUTING') continue;
    const target = r.expr.map((e) => (e.jump as { target?: string } | undefined)?.target).find((t) => t && CNI_CHAIN.test(t));
    const src = masqRuleSource(r);
    if (target && src) jumps.add(`${target} ${src.replace(/\/(32|128)$/, '')}`);
  }
  return { chains, jumps };
}

/** What the node knows: network names, and (network, container) pairs of the libcni cache. */
export interface KnownNames {
  networks: Iterable<string>;
  attachments?: Iterable<{ network: string; containerId: string; ifName?: string }>;
}

const fam = (v6: boolean): 'v4' | 'v6' => (v6 ? 'v6' : 'v4');

/**
 * Groups the masquerade rules of table inet cni_plugins_masquerade by
 * (network, container) and keeps the addresses whose reference chain or
 * POSTROUTING jump is missing. `only` limits it to one network (hashed comments of other
 * networks are then out of scope, not skipped).
 */
export function planTombstones(rules: readonly NftRule[], known: KnownNames, chains: IptChains, only?: string): TombstonePlan {
  const names = [...new Set([...known.networks, ...(only !== undefined ? [only] : [])])];
  const byComment = new Map<string, { network: string; containerId: string }>();
  // hashed keys resolve through the cached attachments: flax's legacy comment whole, v1.10.0's by its instance hash
  for (const a of known.attachments ?? []) {
    const k = { network: a.network, containerId: a.containerId };
    byComment.set(legacyMasqComment(a.network, a.containerId), k);
    if (a.ifName !== undefined) byComment.set(masqInstanceHash(a.network, a.ifName, a.containerId), k);
  }

  const skipped: SkippedTombstone[] = [];
  const groups = new Map<string, { network: string; containerId: string; ips: Map<string, Prefix> }>();
  for (const r of rules) {
    if (r.family !== 'inet' || r.table !== MASQ_TABLE || r.chain !== MASQ_CHAIN) continue;
    const p = parseMasqComment(r.comment);
    if (!p) continue; // not a rule of flax's bridge
    const address = masqRuleSource(r) ?? '';
    const skip = (reason: string) => skipped.push({ key: r.comment!, address, reason });
    let key = byComment.get(r.comment!) ?? (p.instanceHash !== undefined ? byComment.get(p.instanceHash) : undefined);
    if (!key && p.containerId !== undefined) {
      const network = p.network ?? names.find((n) => commentIsNetwork(p, n));
      if (network !== undefined) key = { network, containerId: p.containerId };
      else if (only === undefined) {
        skip('the network name is hashed and matches no network known on this node (--netconf-path, --cache-dir)');
        continue;
      } else continue; // another network's
    }
    if (!key) {
      skip('network and container id are hashed together and match no cached attachment (--cache-dir)');
      continue;
    }
    if (only !== undefined && key.network !== only) continue;
    let ip: Prefix;
    try {
      ip = parseAddrOrPrefix(address);
    } catch {
      skip('the rule has no source address');
      continue;
    }
    const g = `${key.network}\0${key.containerId}`;
    if (!groups.has(g)) groups.set(g, { ...key, ips: new Map() });
    groups.get(g)!.ips.set(prefixIP(ip), { v6: ip.v6, ip: ip.ip, prefixLen: ip.v6 ? 128 : 32 });
  }

  const plan: TombstonePlan = { write: [], present: [], skipped };
  const ordered = [...groups.values()].sort((a, b) => (a.network === b.network ? cmp(a.containerId, b.containerId) : cmp(a.network, b.network)));
  for (const g of ordered) {
    const chain = iptablesChainName(g.network, g.containerId);
    const ips = [...g.ips.values()];
    const writable = ips.filter((ip) => chains[fam(ip.v6)] !== null);
    for (const ip of ips.filter((i) => chains[fam(i.v6)] === null)) {
      skipped.push({ key: `${g.network} ${g.containerId}`, address: prefixIP(ip), reason: `${ip.v6 ? 'ip6tables' : 'iptables'} is not installed` });
    }
    const missing = writable.filter((ip) => {
      const st = chains[fam(ip.v6)]!;
      return !st.chains.has(chain) || !st.jumps.has(`${chain} ${prefixIP(ip)}`);
    });
    const t = { network: g.network, containerId: g.containerId, chain };
    if (missing.length) plan.write.push({ ...t, ips: missing });
    else if (writable.length) plan.present.push({ ...t, ips: writable });
  }
  return plan;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
