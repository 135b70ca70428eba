/**
 * IP masquerade rules as data (no I/O here).
 *
 * nftables backend (default): table `inet cni_plugins_masquerade`
 *   chain postrouting  (nat, hook postrouting, priority srcnat)
 *     ip daddr 224.0.0.0/4 return
 *     ip6 daddr ff00::/8 return
 *     goto masq_checks
 *   chain masq_checks
 *     ip saddr <ip> ip daddr != <subnet> masquerade comment "<key>"   (one per IP)
 * Table, chains, rules and comment are the reference v1.10.0's (its
 * ipMasqBackend nftables), so either suite's CHECK, DEL and GC find the
 * other's rules. The comment keys a rule to network + interface + container
 * id (masqComment), so DEL and GC find a container's rules without knowing
 * its addresses. flax's earlier comment `name: <net> id: <cid>` is still
 * recognised (legacyMasqComment).
 *
 * iptables backend (the reference's layout, byte-compatible so either
 * implementation can remove the other's state): per container chain
 * `CNI-` + 24 hex of sha512(network + containerID) in table nat with
 * `-d <subnet> -j ACCEPT` and `! -d <multicast> -j MASQUERADE`, reached
 * from POSTROUTING by `-s <ip> -j CNI-…`, all commented
 * `name: "<net>" id: "<cid>"`.
 */
import { createHash } from 'node:crypto';
import { type Prefix, formatPrefix, maskedPrefix, prefixIP } from '../ip';
import { skeletonPresent } from './skeleton';
import { type Expr, type NftChain, type NftCommand, type NftRule, type NftTable, type Ruleset, emptyRuleset } from './ruleset';

export const MASQ_TABLE = 'cni_plugins_masquerade';
export const MASQ_CHAIN = 'masq_checks';
export const MASQ_POSTROUTING = 'postrouting';
/** v1.10.0's table comment, exactly (either suite re-adds the table on ADD). */
export const MASQ_TABLE_COMMENT = 'Masquerading for plugins from github.com/containernetworking/plugins';
const NFT_COMMENT_MAX = 128;

// ---- keys ------------------------------------------------------------------

const sha = (alg: 'sha512' | 'sha256', s: string) => createHash(alg).update(s).digest('hex');

/** The reference's iptables chain name: `CNI-` + 24 hex of sha512(name + id). */
export function iptablesChainName(network: string, containerId: string): string {
  return `CNI-${sha('sha512', network + containerId).slice(0, 24)}`;
}
/** The reference's iptables rule comment. */
export function iptablesComment(network: string, containerId: string): string {
  return `name: ${JSON.stringify(network)} id: ${JSON.stringify(containerId)}`;
}

/**
 * The nft rule comment keying a masquerade rule to network + interface +
 * container — the reference v1.10.0's exactly (pkg/ip/ipmasq_nftables_linux.go
 * commentForInstance): `<masqInstanceHash>, net: <net>, if: <ifname>, id: <cid>`,
 * double quotes removed, cut at nft's 128 bytes. The leading hash makes the
 * comment a key even when the readable part is cut (ids of 64 hex and a
 * network name of more than 8 characters are), so either suite finds the
 * other's rules by prefix.
 */
export function masqComment(network: string, ifname: string, containerId: string): string {
  const unq = (s: string) => s.replace(/"/g, '');
  const c = `${masqInstanceHash(network, ifname, containerId)}, net: ${unq(network)}, if: ${unq(ifname)}, id: ${unq(containerId)}`;
  return Buffer.byteLength(c) <= NFT_COMMENT_MAX ? c : Buffer.from(c).subarray(0, NFT_COMMENT_MAX).toString('utf8');
}

/** The reference's network hash: 16 hex of sha512(network) (comment prefix of every rule of the network). */
export const masqNetworkHash = (network: string): string => sha('sha512', network).slice(0, 16);
/** The reference's instance hash: `<network hash>-<16 hex of sha512(ifname:cid)>` (comment prefix of one attachment's rules). */
export const masqInstanceHash = (network: string, ifname: string, containerId: string): string =>
  `${masqNetworkHash(network)}-${sha('sha512', `${ifname}:${containerId}`).slice(0, 16)}`;

/**
 * flax's comment before v1.10.0's form (nodes upgraded from an older flax
 * still carry it): `name: <net> id: <cid>` (no quotes; no interface). Too
 * long for nft's 128-byte comments → the network is replaced by a hash
 * prefix, then the id. Recognised on CHECK, DEL, GC, never written.
 */
export function legacyMasqComment(network: string, containerId: string): string {
  const c = `name: ${network} id: ${containerId}`;
  if (c.length <= NFT_COMMENT_MAX) return c;
  const c2 = `name-sha256: ${sha('sha256', network).slice(0, 16)} id: ${containerId}`;
  if (c2.length <= NFT_COMMENT_MAX) return c2;
  return `key-sha256: ${sha('sha256', `${network}\0${containerId}`)}`;
}

/** A masquerade (or portmap) comment taken apart; `kind` says which form. */
export interface ParsedComment {
  kind: 'ref' | 'legacy';
  /** the network name, when the comment shows it whole (ref form: verified against its hash) */
  network?: string;
  /** legacy: 16 hex of sha256(network) */
  networkHash?: string;
  /** ref form: 16 hex of sha512(network) */
  refNetworkHash?: string;
  /** ref form: the instance hash (`<net hash>-<if:id hash>`) */
  instanceHash?: string;
  ifname?: string;
  /** the container id, when the comment shows it whole (ref form: verified against the instance hash) */
  containerId?: string;
}

const REF_COMMENT = /^([0-9a-f]{16})-([0-9a-f]{16}), net: /;

/** Reverses masqComment / legacyMasqComment where possible (for GC and the sweeper). Null for foreign comments. */
export function parseMasqComment(comment: string | undefined): ParsedComment | null {
  if (!comment) return null;
  const r = REF_COMMENT.exec(comment);
  if (r) {
    const out: ParsedComment = { kind: 'ref', refNetworkHash: r[1], instanceHash: `${r[1]}-${r[2]}` };
    // the readable part is trusted only where the hashes confirm it (it may be cut, or a name may hold ", if: ")
    const m = /^(.*), if: (.*), id: (.*)$/.exec(comment.slice(r[0].length));
    if (m && masqInstanceHash(m[1], m[2], m[3]) === out.instanceHash) return { ...out, network: m[1], ifname: m[2], containerId: m[3] };
    const net = /^(.*?), if: /.exec(comment.slice(r[0].length));
    if (net && masqNetworkHash(net[1]) === r[1]) out.network = net[1];
    return out;
  }
  let m = /^name: (\S+) id: (\S+)$/.exec(comment);
  if (m) return { kind: 'legacy', network: m[1], containerId: m[2] };
  m = /^name-sha256: ([0-9a-f]{16}) id: (\S+)$/.exec(comment);
  if (m) return { kind: 'legacy', networkHash: m[1], containerId: m[2] };
  if (/^key-sha256: [0-9a-f]{64}$/.test(comment)) return { kind: 'legacy' };
  return null;
}

/** True when a parsed comment belongs to `network`. */
export function commentIsNetwork(p: Pick<ParsedComment, 'network' | 'networkHash' | 'refNetworkHash'>, network: string): boolean {
  if (p.network !== undefined) return p.network === network;
  if (p.refNetworkHash !== undefined) return p.refNetworkHash === masqNetworkHash(network);
  if (p.networkHash !== undefined) return p.networkHash === sha('sha256', network).slice(0, 16);
  return false;
}

/**
 * True when `comment` keys a rule of network + container (+ interface):
 * v1.10.0's form by its instance hash prefix (with no ifname given: any
 * interface, when the comment shows the id whole), or flax's legacy form.
 */
export function commentIsAttachment(comment: string | undefined, network: string, containerId: string, ifname?: string): boolean {
  if (!comment) return false;
  if (comment === legacyMasqComment(network, containerId)) return true;
  if (ifname !== undefined) return comment.startsWith(`${masqInstanceHash(network, ifname, containerId)},`) || comment === masqInstanceHash(network, ifname, containerId);
  const p = parseMasqComment(comment);
  return p?.kind === 'ref' && p.containerId === containerId && p.network === network;
}

/**
 * GC: true when a comment of ours or of the reference belongs to `network`
 * but to none of `valid` (its attachments). A legacy comment compares ids
 * (it has no interface); v1.10.0's form compares instance hashes, as the
 * reference's GC does. Comments of other networks, foreign or unresolvable
 * ones: false.
 */
export function commentIsStale(comment: string | undefined, network: string, valid: readonly { containerId: string; ifname: string }[]): boolean {
  const p = parseMasqComment(comment);
  if (!p || !commentIsNetwork(p, network)) return false;
  if (p.kind === 'ref') return !valid.some((a) => masqInstanceHash(network, a.ifname, a.containerId) === p.instanceHash);
  return p.containerId !== undefined && !valid.some((a) => a.containerId === p.containerId);
}

// ---- nftables backend ------------------------------------------------------

const MULTICAST_V4 = { addr: '224.0.0.0', len: 4 };
const MULTICAST_V6 = { addr: 'ff00::', len: 8 };

const match = (op: '==' | '!=', proto: 'ip' | 'ip6', field: 'saddr' | 'daddr', right: unknown): Expr => ({
  match: { op, left: { payload: { protocol: proto, field } }, right },
});

const masqTable = (): NftTable => ({ family: 'inet', name: MASQ_TABLE });
const chainRef = (name: string): NftChain => ({ family: 'inet', table: MASQ_TABLE, name });

/** Expressions of the per-IP rule: `ip saddr <ip> ip daddr != <subnet> masquerade`. */
export function masqRuleExpr(ipn: Prefix): Expr[] {
  const proto = ipn.v6 ? 'ip6' : 'ip';
  const net = maskedPrefix(ipn);
  return [match('==', proto, 'saddr', prefixIP(ipn)), match('!=', proto, 'daddr', { prefix: { addr: prefixIP(net), len: net.prefixLen } }), { masquerade: null }];
}

/** The source address a masquerade rule matches (`ip saddr X`), if any. */
export function masqRuleSource(rule: NftRule): string | undefined {
  for (const e of rule.expr) {
    const m = (e as { match?: { left?: { payload?: { field?: string } }; right?: unknown } }).match;
    if (m?.left?.payload?.field === 'saddr' && typeof m.right === 'string') return m.right;
  }
  return undefined;
}

/** The shared skeleton: table, masq_checks chain, postrouting chain re-written. */
export function genMasqBase(): NftCommand[] {
  const t = masqTable();
  return [
    { add: { table: { ...t, comment: MASQ_TABLE_COMMENT } } },
    { add: { chain: { ...chainRef(MASQ_CHAIN), comment: 'Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet' } } },
    { add: { chain: { ...chainRef(MASQ_POSTROUTING), type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept' } } },
    { flush: { chain: chainRef(MASQ_POSTROUTING) } },
    { add: { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_POSTROUTING, expr: [match('==', 'ip', 'daddr', { prefix: MULTICAST_V4 }), { return: null }] } } },
    { add: { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_POSTROUTING, expr: [match('==', 'ip6', 'daddr', { prefix: MULTICAST_V6 }), { return: null }] } } },
    { add: { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_POSTROUTING, expr: [{ goto: { target: MASQ_CHAIN } }] } } },
  ];
}

/**
 * Rules in `rs` that belong to network + container (+ interface; without
 * one, any whose comment shows it) — v1.10.0's form or flax's legacy one.
 */
export function findMasqRules(rs: Ruleset, network: string, containerId: string, ifname?: string): NftRule[] {
  return rs.rules.filter((r) => r.family === 'inet' && r.table === MASQ_TABLE && r.chain === MASQ_CHAIN && commentIsAttachment(r.comment, network, containerId, ifname));
}

/**
 * ADD: masquerade traffic from each of `ips` (addresses with their prefix)
 * leaving its subnet. `existing` = a listing of the table or of its entry
 * chain: the skeleton is left out when it shows it intact (skeleton.ts),
 * and stale rules with the same key it lists (an ADD that crashed) are
 * replaced, not doubled.
 */
export function genMasqChain(network: string, ifname: string, containerId: string, ips: Prefix[], existing: Ruleset = emptyRuleset()): NftCommand[] {
  const comment = masqComment(network, ifname, containerId);
  const base = genMasqBase();
  const cmds = skeletonPresent(existing, base) ? [] : base;
  for (const r of findMasqRules(existing, network, containerId, ifname)) {
    if (r.handle !== undefined) cmds.push({ delete: { rule: { ...stripExpr(r), handle: r.handle } } });
  }
  for (const ip of ips) cmds.push({ add: { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, comment, expr: masqRuleExpr(ip) } } });
  return cmds;
}

function stripExpr(r: NftRule): NftRule {
  return { family: r.family, table: r.table, chain: r.chain, expr: [] };
}
const del = (r: NftRule): NftCommand => ({ delete: { rule: { family: r.family, table: r.table, chain: r.chain, handle: r.handle!, expr: [] } } });

/**
 * DEL: commands that remove every masquerade trace of network + container
 * found in `rs` — our nft rules, and the reference's iptables chain and its
 * POSTROUTING jumps when iptables is the nf_tables variant (then iptables
 * rules are ordinary nft objects in tables `ip nat` / `ip6 nat`).
 */
export function genMasqTeardown(rs: Ruleset, network: string, containerId: string, ifname?: string): NftCommand[] {
  const cmds: NftCommand[] = findMasqRules(rs, network, containerId, ifname).filter((r) => r.handle !== undefined).map(del);
  cmds.push(...genIptChainTeardown(rs, iptablesChainName(network, containerId)));
  return cmds;
}

/** Removes an iptables-nft `CNI-…` chain: the jumps to it, its rules, the chain. */
export function genIptChainTeardown(rs: Ruleset, chain: string): NftCommand[] {
  const cmds: NftCommand[] = [];
  for (const fam of ['ip', 'ip6'] as const) {
    const has = rs.chains.some((c) => c.family === fam && c.table === 'nat' && c.name === chain);
    const jumps = rs.rules.filter((r) => r.family === fam && r.table === 'nat' && r.handle !== undefined && jumpsTo(r, chain));
    cmds.push(...jumps.map(del));
    if (has) {
      const ref: NftChain = { family: fam, table: 'nat', name: chain };
      cmds.push({ flush: { chain: ref } }, { delete: { chain: ref } });
    }
  }
  return cmds;
}

function jumpsTo(r: NftRule, chain: string): boolean {
  return (r.expr ?? []).some((e) => {
    const j = (e.jump ?? e.goto) as { target?: string } | undefined;
    return j?.target === chain;
  });
}

/** The iptables-nft CNI chains (names) present in a listing. */
export function iptChains(rs: Ruleset): { family: 'ip' | 'ip6'; name: string }[] {
  return rs.chains
    .filter((c) => (c.family === 'ip' || c.family === 'ip6') && c.table === 'nat' && /^CNI-[0-9a-f]{24}$/.test(c.name))
    .map((c) => ({ family: c.family as 'ip' | 'ip6', name: c.name }));
}

// ---- iptables backend ------------------------------------------------------

/** `iptables-restore --noflush` input creating the reference's chain for one family. */
export function genIptablesMasq(network: string, containerId: string, ips: Prefix[], existingPostrouting: string[] = []): string {
  if (!ips.length) return '';
  const chain = iptablesChainName(network, containerId);
  const c = quoteArg(iptablesComment(network, containerId));
  const multicast = ips[0].v6 ? 'ff00::/8' : '224.0.0.0/4';
  const lines = ['*nat', `:${chain} - [0:0]`];
  for (const ip of ips) {
    lines.push(`-A ${chain} -d ${formatPrefix(maskedPrefix(ip))} -j ACCEPT -m comment --comment ${c}`);
  }
  lines.push(`-A ${chain} ! -d ${multicast} -j MASQUERADE -m comment --comment ${c}`);
  for (const ip of ips) {
    const already = existingPostrouting.some((l) => l.includes(` -j ${chain}`) && l.includes(` -s ${prefixIP(ip)}/${ip.v6 ? 128 : 32} `));
    if (!already) lines.push(`-A POSTROUTING -s ${prefixIP(ip)} -j ${chain} -m comment --comment ${c}`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/**
 * The "tombstone" written beside nftables masquerading: the reference's
 * chain, EMPTY, and its POSTROUTING jump. It changes no packet (an empty
 * user chain returns), but the reference plugin's DEL (v1.1.1 fails with
 * "Chain … does not exist" otherwise) succeeds after a node switches back.
 */
export function genIptablesTombstone(network: string, containerId: string, ips: Prefix[]): string {
  if (!ips.length) return '';
  const chain = iptablesChainName(network, containerId);
  const c = quoteArg(iptablesComment(network, containerId));
  const lines = ['*nat', `:${chain} - [0:0]`];
  for (const ip of ips) lines.push(`-A POSTROUTING -s ${prefixIP(ip)} -j ${chain} -m comment --comment ${c}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/**
 * `iptables-restore --noflush` input removing a CNI chain, given the
 * `iptables-save -t nat` / `iptables -t nat -S` lines of the table.
 * Returns '' when there is nothing to remove.
 */
export function genIptablesTeardown(chain: string, saveLines: string[]): string {
  const jumps = saveLines.filter((l) => l.startsWith('-A POSTROUTING ') && new RegExp(` -j ${chain}(\\s|$)`).test(l));
  const has = saveLines.some((l) => l === `-N ${chain}` || l.startsWith(`:${chain} `));
  if (!jumps.length && !has) return '';
  const lines = ['*nat', ...jumps.map((l) => `-D${l.slice(2)}`)];
  if (has) lines.push(`-F ${chain}`, `-X ${chain}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

function quoteArg(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
