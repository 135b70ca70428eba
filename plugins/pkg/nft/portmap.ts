/**
 * Port mapping rules (plugins/meta/portmap) as data — the nftables backend.
 * No I/O here; portmap-apply.ts sends the commands through the one applier.
 *
 * Layout (the reference's, plugins/meta/portmap/portmap_nftables.go), one
 * table per family, `ip cni_hostport` and `ip6 cni_hostport`:
 *   chain hostports          per mapping: [ip daddr <hostIP>] <proto> dport <hp> dnat to <cip>:<cp>
 *   chain hostip_hostports   (kept empty, as the reference keeps it for upgrades)
 *   chain hostports_all      jump hostip_hostports; jump hostports
 *   chain prerouting         nat/prerouting/dstnat: [conditions] fib daddr type local jump hostports_all
 *   chain output             nat/output/dstnat:     [conditions] fib daddr type local jump hostports_all
 *   chain masquerading       nat/postrouting/srcnat (snat only):
 *                            ip saddr <cip> ip daddr <cip> masquerade      (hairpin)
 *                            ip saddr 127.0.0.1 ip daddr <cip> masquerade  (localhost, IPv4)
 * Every per-container rule carries the comment v1.10.0 gives it: the bare
 * container id (its CHECK counts the rules of chains hostports and
 * masquerading with that comment, its DEL removes them). flax's earlier
 * comment `name: <net> id: <cid>` (legacyMasqComment) is still recognised
 * by CHECK, DEL and GC. A bare id names no network: GC (genPortmapGc)
 * removes such a rule when its container is not among the valid ones.
 */
import { commentIsNetwork, legacyMasqComment, parseMasqComment } from './masq';
import type { Expr, NftChain, NftCommand, NftRule, Ruleset } from './ruleset';
import { ruleSignature, skeletonPresent } from './skeleton';

export const PORTMAP_TABLE = 'cni_hostport';
export const PM_HOSTPORTS = 'hostports';
export const PM_HOSTIP_HOSTPORTS = 'hostip_hostports';
export const PM_HOSTPORTS_ALL = 'hostports_all';
export const PM_MASQUERADING = 'masquerading';
/** Chains holding per-container rules. */
export const PM_RULE_CHAINS = [PM_HOSTPORTS, PM_HOSTIP_HOSTPORTS, PM_MASQUERADING] as const;

export type PortProto = 'tcp' | 'udp' | 'sctp';
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: PortProto;
  /** '' = any local address */
  hostIP: string;
}

/** What one family of a container's port mappings needs. */
export interface PortmapSpec {
  network: string;
  containerId: string;
  /** the container address of this family (no prefix) */
  containerIP: string;
  v6: boolean;
  mappings: PortMapping[];
  snat: boolean;
  masqAll: boolean;
  /** conditionsV4/V6 already translated to nft JSON expressions */
  conditions: Expr[];
}

export const isV6Addr = (a: string): boolean => a.includes(':');
/** 0.0.0.0 / :: — an unspecified host IP matches any address. */
export const isUnspecified = (a: string): boolean => /^0+(\.0+){3}$/.test(a) || /^[0:]+$/.test(a);

/**
 * The mappings that apply to a family: a hostIP of the other family is
 * skipped (the reference does the same), an unspecified one means "any".
 */
export function mappingsForFamily(mappings: PortMapping[], v6: boolean): PortMapping[] {
  return mappings
    .filter((m) => m.hostIP === '' || isV6Addr(m.hostIP) === v6)
    .map((m) => (m.hostIP !== '' && isUnspecified(m.hostIP) ? { ...m, hostIP: '' } : m));
}

const famOf = (v6: boolean) => (v6 ? 'ip6' : 'ip') as 'ip' | 'ip6';
const chainRef = (v6: boolean, name: string): NftChain => ({ family: famOf(v6), table: PORTMAP_TABLE, name });
const payload = (protocol: string, field: string, right: unknown, op: '==' | '!=' = '=='): Expr => ({ match: { op, left: { payload: { protocol, field } }, right } });
const FIB_LOCAL: Expr = { match: { op: '==', left: { fib: { result: 'type', flags: ['daddr'] } }, right: 'local' } };

/** The comment of a container's portmap rules: v1.10.0's, the bare container id (its CHECK and DEL look for exactly this). */
export const portmapComment = (containerId: string): string => containerId;

/** Expressions of a mapping's DNAT rule in chain hostports. */
export function dnatExpr(m: PortMapping, containerIP: string, v6: boolean): Expr[] {
  const e: Expr[] = [];
  if (m.hostIP) e.push(payload(famOf(v6), 'daddr', m.hostIP));
  e.push(payload(m.protocol, 'dport', m.hostPort));
  e.push({ dnat: { addr: containerIP, port: m.containerPort } });
  return e;
}

/** Expressions of the masquerade rules (hairpin; localhost for IPv4) in chain masquerading. */
export function masqExprs(containerIP: string, v6: boolean, masqAll: boolean): Expr[][] {
  const f = famOf(v6);
  const to = payload(f, 'daddr', containerIP);
  if (masqAll) return [[payload(f, 'saddr', { prefix: { addr: v6 ? '::' : '0.0.0.0', len: 0 } }), to, { masquerade: null }]];
  const out = [[payload(f, 'saddr', containerIP), to, { masquerade: null }]];
  if (!v6) out.push([payload(f, 'saddr', '127.0.0.1'), to, { masquerade: null }]);
  return out;
}

/** The shared skeleton of one family's table (idempotent; entry chains re-written as the reference does). */
export function genPortmapBase(v6: boolean, snat: boolean, conditions: Expr[]): NftCommand[] {
  const fam = famOf(v6);
  const ref = (n: string) => chainRef(v6, n);
  const rule = (chain: string, expr: Expr[]): NftCommand => ({ add: { rule: { family: fam, table: PORTMAP_TABLE, chain, expr } } });
  const cmds: NftCommand[] = [
    { add: { table: { family: fam, name: PORTMAP_TABLE, comment: 'CNI portmap plugin' } } },
    { add: { chain: ref(PM_HOSTPORTS) } },
    { add: { chain: ref(PM_HOSTIP_HOSTPORTS) } },
    { add: { chain: ref(PM_HOSTPORTS_ALL) } },
    { flush: { chain: ref(PM_HOSTPORTS_ALL) } },
    rule(PM_HOSTPORTS_ALL, [{ jump: { target: PM_HOSTIP_HOSTPORTS } }]),
    rule(PM_HOSTPORTS_ALL, [{ jump: { target: PM_HOSTPORTS } }]),
  ];
  for (const [name, hook] of [['prerouting', 'prerouting'], ['output', 'output']] as const) {
    cmds.push(
      { add: { chain: { ...ref(name), type: 'nat', hook, prio: -100, policy: 'accept' } } },
      { flush: { chain: ref(name) } },
      rule(name, [...conditions, FIB_LOCAL, { jump: { target: PM_HOSTPORTS_ALL } }]),
    );
  }
  if (snat) cmds.push({ add: { chain: { ...ref(PM_MASQUERADING), type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept' } } });
  return cmds;
}

/** The per-container rules of one family (no skeleton). */
export function genPortmapRules(s: PortmapSpec): NftRule[] {
  const family = famOf(s.v6);
  const comment = portmapComment(s.containerId);
  const rules: NftRule[] = mappingsForFamily(s.mappings, s.v6)
    .map((m) => ({ family, table: PORTMAP_TABLE, chain: PM_HOSTPORTS, comment, expr: dnatExpr(m, s.containerIP, s.v6) }));
  if (s.snat) {
    for (const expr of masqExprs(s.containerIP, s.v6, s.masqAll)) rules.push({ family, table: PORTMAP_TABLE, chain: PM_MASQUERADING, comment, expr });
  }
  return rules;
}

const inRuleChain = (r: NftRule) =>
  r.table === PORTMAP_TABLE && (r.family === 'ip' || r.family === 'ip6') && (PM_RULE_CHAINS as readonly string[]).includes(r.chain);

/** True when an nft rule (v1.10.0's comment or flax's legacy one) belongs to network + container. */
export function isPortmapRuleOf(r: NftRule, network: string, containerId: string): boolean {
  if (!inRuleChain(r)) return false;
  return r.comment === portmapComment(containerId) || r.comment === legacyMasqComment(network, containerId);
}

const delRule = (r: NftRule): NftCommand => ({ delete: { rule: { family: r.family, table: r.table, chain: r.chain, handle: r.handle!, expr: [] } } });

/**
 * ADD for the given families: skeletons (left out where `existing`, the
 * listing of both tables, shows them intact: skeleton.ts), the container's
 * previous rules (found in `existing`) removed, the new rules added — one
 * atomic batch.
 */
export function genPortmapAdd(specs: PortmapSpec[], existing: Ruleset): NftCommand[] {
  const cmds: NftCommand[] = [];
  for (const s of specs) {
    const base = genPortmapBase(s.v6, s.snat, s.conditions);
    if (!skeletonPresent(existing, base)) cmds.push(...base);
  }
  const key = specs[0];
  if (key) cmds.push(...existing.rules.filter((r) => r.handle !== undefined && isPortmapRuleOf(r, key.network, key.containerId)).map(delRule));
  for (const s of specs) cmds.push(...genPortmapRules(s).map((rule): NftCommand => ({ add: { rule } })));
  return cmds;
}

/** DEL: deletes every portmap rule of network + container found in `rs` (shared chains stay). */
export function genPortmapTeardown(rs: Ruleset, network: string, containerId: string): NftCommand[] {
  return rs.rules.filter((r) => r.handle !== undefined && isPortmapRuleOf(r, network, containerId)).map(delRule);
}

/**
 * GC: deletes this network's rules whose container is not in `validIds`:
 * those with flax's legacy comment (`name: N id: C`), which names its
 * network. A bare id (v1.10.0's form, what flax writes now) names no network,
 * and a runtime GCs each network with the attachments of that network only:
 * judged here, a container mapped by another network that also runs portmap
 * would lose its rules. So a network's GC leaves bare-id rules alone; the
 * node sweeper (`flax gc`, flaxd), which sees every network, removes those
 * of containers no network has. The reference has no portmap GC at all.
 */
export function genPortmapGc(rs: Ruleset, network: string, validIds: ReadonlySet<string>): NftCommand[] {
  return rs.rules.filter((r) => {
    if (r.handle === undefined || !inRuleChain(r) || !r.comment) return false;
    const p = parseMasqComment(r.comment);
    return p !== null && p.kind === 'legacy' && p.containerId !== undefined && commentIsNetwork(p, network) && !validIds.has(p.containerId);
  }).map(delRule);
}

/**
 * CHECK: what of the container's expected rules and of the skeleton's
 * entry path is missing from `rs` (empty = all present).
 */
export function missingPortmapRules(rs: Ruleset, specs: PortmapSpec[]): string[] {
  const missing: string[] = [];
  for (const s of specs) {
    const fam = famOf(s.v6);
    const have = new Set(rs.rules.filter((r) => r.family === fam && isPortmapRuleOf(r, s.network, s.containerId)).map((r) => `${r.chain} ${ruleSignature(r.expr)}`));
    for (const r of genPortmapRules(s)) {
      if (!have.has(`${r.chain} ${ruleSignature(r.expr)}`)) missing.push(`${fam} ${PORTMAP_TABLE} ${r.chain}: ${describeRule(r.expr)}`);
    }
    for (const ch of ['prerouting', 'output']) {
      const ok = rs.rules.some((r) => r.family === fam && r.table === PORTMAP_TABLE && r.chain === ch && r.expr.some((e) => (e.jump as { target?: string } | undefined)?.target === PM_HOSTPORTS_ALL));
      if (!ok) missing.push(`${fam} ${PORTMAP_TABLE} ${ch}: jump ${PM_HOSTPORTS_ALL}`);
    }
    const all = rs.rules.filter((r) => r.family === fam && r.table === PORTMAP_TABLE && r.chain === PM_HOSTPORTS_ALL);
    if (!all.some((r) => r.expr.some((e) => (e.jump as { target?: string } | undefined)?.target === PM_HOSTPORTS))) {
      missing.push(`${fam} ${PORTMAP_TABLE} ${PM_HOSTPORTS_ALL}: jump ${PM_HOSTPORTS}`);
    }
  }
  return missing;
}

function describeRule(expr: Expr[]): string {
  return expr.map((e) => {
    const m = (e as { match?: { left: { payload?: { protocol: string; field: string } }; right: unknown } }).match;
    if (m?.left.payload) return `${m.left.payload.protocol} ${m.left.payload.field} ${JSON.stringify(m.right)}`;
    const d = e.dnat as { addr: string; port: number } | undefined;
    if (d) return `dnat to ${d.addr}:${d.port}`;
    return Object.keys(e)[0];
  }).join(' ');
}
