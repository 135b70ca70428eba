/**
 * flanneld's masquerade and forward rules as data (no I/O here; applied by
 * firewall.ts through pkg/nft's runner).
 *
 * iptables (flannel pkg/trafficmngr/iptables), in `iptables -S` form so a
 * listing compares line for line:
 *   nat     POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
 *   nat     FLANNEL-POSTRTG: RETURN kube-proxy's mark 0x4000/0x4000;
 *           RETURN -s <pod> -d <net>; RETURN -s <net> -d <pod>;
 *           RETURN ! -s <net> -d <pod>; MASQUERADE -s <net> ! -d 224.0.0.0/4;
 *           MASQUERADE ! -s <net> -d <net>  (both --random-fully)
 *   filter  FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
 *   filter  FLANNEL-FWD: ACCEPT -s <net>; ACCEPT -d <net>
 * nftables (flannel pkg/trafficmngr/nftables, EnableNFTables): table
 * `ip flannel-ipv4` (IPv6: `ip6 flannel-ipv6`, `ip6 saddr`…, ff00::/8 for
 * multicast; iptables: the same chains in ip6tables), chain postrtg (nat, postrouting, srcnat) and chain
 * forward (filter, forward, priority filter), with the rules as knftables
 * writes them — including flanneld's `ip saddr != <pod> ip daddr <net>
 * return` where iptables has `! -s <net> -d <pod>`.
 * A chain (with its jump) is compared whole and rebuilt whole when it
 * differs: never a duplicate, always flanneld's order.
 */
import type { NftChain, NftCommand, NftRule, Ruleset } from '../../pkg/nft/ruleset';
import { type NetConfig } from '../config';
import { type Prefix, formatPrefix } from '../../pkg/ip';

export const MASQ_COMMENT = 'flanneld masq';
export const FWD_COMMENT = 'flanneld forward';
export const POSTRTG = 'FLANNEL-POSTRTG';
export const FWD = 'FLANNEL-FWD';
export const NFT_TABLE = 'flannel-ipv4';
export const NFT_TABLE6 = 'flannel-ipv6';
export const KUBE_PROXY_MARK = '0x4000/0x4000';
const MULTICAST = '224.0.0.0/4';
const MULTICAST6 = 'ff00::/8';

/** The nftables family and table of a family's rules: `ip flannel-ipv4`, `ip6 flannel-ipv6`. */
export const nftTableOf = (v6: boolean | undefined): { family: 'ip' | 'ip6'; table: string } =>
  (v6 ? { family: 'ip6', table: NFT_TABLE6 } : { family: 'ip', table: NFT_TABLE });

export interface RulesInput {
  /** the flannel Network, "10.244.0.0/16" */
  network: string;
  /** our lease's subnet, "10.244.1.0/24" */
  podCidr: string;
  /** install the masquerade rules (--ip-masq) */
  masq: boolean;
  /** install the forward accept rules (flanneld's --iptables-forward-rules, default on) */
  forward: boolean;
  /** the IPv6 rules (IPv6Network, our IPv6 subnet): ip6tables, or nft table ip6 flannel-ipv6 */
  v6?: boolean;
  /** MASQUERADE --random-fully / nft fully-random (default true; flanneld's --ip-masq-fully-random-disable turns it off) */
  randomFully?: boolean;
}

/** One iptables chain of ours with the jump that reaches it. */
export interface IptChainWant {
  table: 'nat' | 'filter';
  parent: 'POSTROUTING' | 'FORWARD';
  chain: string;
  jump: string;
  rules: string[];
}

export function iptChains(i: RulesInput): IptChainWant[] {
  const out: IptChainWant[] = [];
  const { network: net, podCidr: pod } = i;
  if (i.masq) {
    const c = `-m comment --comment "${MASQ_COMMENT}"`;
    const rf = i.randomFully === false ? '' : ' --random-fully';
    const a = (spec: string) => `-A ${POSTRTG} ${spec}`;
    out.push({
      table: 'nat', parent: 'POSTROUTING', chain: POSTRTG,
      jump: `-A POSTROUTING ${c} -j ${POSTRTG}`,
      rules: [
        a(`-m mark --mark ${KUBE_PROXY_MARK} ${c} -j RETURN`),
        a(`-s ${pod} -d ${net} ${c} -j RETURN`),
        a(`-s ${net} -d ${pod} ${c} -j RETURN`),
        a(`! -s ${net} -d ${pod} ${c} -j RETURN`),
        a(`-s ${net} ! -d ${i.v6 ? MULTICAST6 : MULTICAST} ${c} -j MASQUERADE${rf}`),
        a(`! -s ${net} -d ${net} ${c} -j MASQUERADE${rf}`),
      ],
    });
  }
  if (i.forward) {
    const c = `-m comment --comment "${FWD_COMMENT}"`;
    out.push({
      table: 'filter', parent: 'FORWARD', chain: FWD,
      jump: `-A FORWARD ${c} -j ${FWD}`,
      rules: [`-A ${FWD} -s ${net} ${c} -j ACCEPT`, `-A ${FWD} -d ${net} ${c} -j ACCEPT`],
    });
  }
  return out;
}

const jumpsTo = (line: string, chain: string) => line.endsWith(` -j ${chain}`) || line.includes(` -j ${chain} `);

/**
 * From `iptables -t <table> -S` lines: '' when the chain holds exactly the
 * wanted rules and its parent exactly one jump to it; else the
 * `iptables-restore --noflush` input rebuilding both (old jumps deleted,
 * chain flushed, rules and one jump appended).
 */
export function iptRepair(w: IptChainWant, save: readonly string[]): string {
  const have = save.filter((l) => l.startsWith(`-A ${w.chain} `));
  const jumps = save.filter((l) => l.startsWith(`-A ${w.parent} `) && jumpsTo(l, w.chain));
  const exists = save.includes(`-N ${w.chain}`);
  if (exists && jumps.length === 1 && jumps[0] === w.jump && have.join('\n') === w.rules.join('\n')) return '';
  return [`*${w.table}`, `:${w.chain} - [0:0]`, ...jumps.map((l) => `-D${l.slice(2)}`), `-F ${w.chain}`, ...w.rules, w.jump, 'COMMIT', ''].join('\n');
}

// ---- nftables ----------------------------------------------------------------

type Expr = Record<string, unknown>;
const prefix = (cidr: string) => {
  const [addr, len] = cidr.split('/');
  return { prefix: { addr, len: Number(len) } };
};
const ipMatch = (protocol: 'ip' | 'ip6') => (field: 'saddr' | 'daddr', op: '==' | '!=', cidr: string): Expr => ({ match: { op, left: { payload: { protocol, field } }, right: prefix(cidr) } });
const RETURN: Expr = { return: null };
const MASQ: Expr = { masquerade: { flags: 'fully-random' } };
const MASQ_PLAIN: Expr = { masquerade: null };

export interface NftChainWant {
  chain: NftChain;
  rules: Expr[][];
}

export function nftChains(i: RulesInput): NftChainWant[] {
  const { network: net, podCidr: pod } = i;
  const { family, table } = nftTableOf(i.v6);
  const ip = ipMatch(family);
  const out: NftChainWant[] = [];
  if (i.masq) {
    const MASQ_ = i.randomFully === false ? MASQ_PLAIN : MASQ;
    out.push({
      chain: { family, table, name: 'postrtg', type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept', comment: 'chain to manage traffic masquerading by flannel' },
      rules: [
        [{ match: { op: '==', left: { meta: { key: 'mark' } }, right: 0x4000 } }, RETURN],
        [ip('saddr', '==', pod), ip('daddr', '==', net), RETURN],
        [ip('saddr', '==', net), ip('daddr', '==', pod), RETURN],
        [ip('saddr', '!=', pod), ip('daddr', '==', net), RETURN],
        [ip('saddr', '==', net), ip('daddr', '!=', i.v6 ? MULTICAST6 : MULTICAST), MASQ_],
        [ip('saddr', '!=', net), ip('daddr', '==', net), MASQ_],
      ],
    });
  }
  if (i.forward) {
    out.push({
      chain: { family, table, name: 'forward', type: 'filter', hook: 'forward', prio: 0, policy: 'accept', comment: 'chain to accept flannel traffic' },
      rules: [[ip('saddr', '==', net), { accept: null }], [ip('daddr', '==', net), { accept: null }]],
    });
  }
  return out;
}

const chainOk = (w: NftChainWant, rs: Ruleset): boolean => {
  const { family, table } = w.chain;
  const c = rs.chains.find((x) => x.family === family && x.table === table && x.name === w.chain.name);
  if (!c || c.type !== w.chain.type || c.hook !== w.chain.hook || c.prio !== w.chain.prio) return false;
  const have = rs.rules.filter((r) => r.family === family && r.table === table && r.chain === w.chain.name).map((r) => JSON.stringify(r.expr));
  return have.join('\n') === w.rules.map((e) => JSON.stringify(e)).join('\n');
};

/**
 * From `nft -j list table ip flannel-ipv4` (or `ip6 flannel-ipv6`; `want`
 * holds one family's chains): the chains that differ from
 * what we want, rebuilt (table, chain, flush, rules) in one atomic batch;
 * [] when everything is in place.
 */
export function nftRepair(want: readonly NftChainWant[], rs: Ruleset): { cmds: NftCommand[]; chains: string[] } {
  const bad = want.filter((w) => !chainOk(w, rs));
  if (!bad.length) return { cmds: [], chains: [] };
  const { family, table } = bad[0].chain;
  const cmds: NftCommand[] = [{ add: { table: { family, name: table, comment: `rules for ${table}` } } }];
  for (const w of bad) {
    const ref: NftChain = { family, table, name: w.chain.name };
    cmds.push({ add: { chain: w.chain } }, { flush: { chain: ref } });
    for (const expr of w.rules) cmds.push({ add: { rule: { family, table, chain: w.chain.name, expr } satisfies NftRule } });
  }
  return { cmds, chains: bad.map((w) => w.chain.name) };
}

/** The rules of each enabled family: IPv4 (Network, our subnet), then IPv6 (IPv6Network, our IPv6 subnet). */
export function familyRules(c: Pick<NetConfig, 'enableIPv4' | 'enableIPv6' | 'network' | 'ipv6Network'>, own: { subnet: Prefix; ipv6Subnet?: Prefix },
  o: { masq: boolean; forward: boolean; randomFully?: boolean }): RulesInput[] {
  const out: RulesInput[] = [];
  if (c.enableIPv4 && c.network) out.push({ network: formatPrefix(c.network), podCidr: formatPrefix(own.subnet), ...o });
  if (c.enableIPv6 && c.ipv6Network && own.ipv6Subnet) out.push({ network: formatPrefix(c.ipv6Network), podCidr: formatPrefix(own.ipv6Subnet), ...o, v6: true });
  return out;
}
