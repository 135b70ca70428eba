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
 * `ip flannel-ipv4`, chain postrtg (nat, postrouting, srcnat) and chain
 * forward (filter, forward, priority filter), with the rules as knftables
 * writes them — including flanneld's `ip saddr != <pod> ip daddr <net>
 * return` where iptables has `! -s <net> -d <pod>`.
 * A chain (with its jump) is compared whole and rebuilt whole when it
 * differs: never a duplicate, always flanneld's order.
 */
import type { NftChain, NftCommand, NftRule, Ruleset } from '../pkg/nft/masq';

export const MASQ_COMMENT = 'flanneld masq';
export const FWD_COMMENT = 'flanneld forward';
export const POSTRTG = 'FLANNEL-POSTRTG';
export const FWD = 'FLANNEL-FWD';
export const NFT_TABLE = 'flannel-ipv4';
export const KUBE_PROXY_MARK = '0x4000/0x4000';
const MULTICAST = '224.0.0.0/4';

export interface RulesInput {
  /** the flannel Network, "10.244.0.0/16" */
  network: string;
  /** our lease's subnet, "10.244.1.0/24" */
  podCidr: string;
  /** install the masquerade rules (--ip-masq) */
  masq: boolean;
  /** install the forward accept rules (flanneld's --iptables-forward-rules, default on) */
  forward: boolean;
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
    const a = (spec: string) => `-A ${POSTRTG} ${spec}`;
    out.push({
      table: 'nat', parent: 'POSTROUTING', chain: POSTRTG,
      jump: `-A POSTROUTING ${c} -j ${POSTRTG}`,
      rules: [
        a(`-m mark --mark ${KUBE_PROXY_MARK} ${c} -j RETURN`),
        a(`-s ${pod} -d ${net} ${c} -j RETURN`),
        a(`-s ${net} -d ${pod} ${c} -j RETURN`),
        a(`! -s ${net} -d ${pod} ${c} -j RETURN`),
        a(`-s ${net} ! -d ${MULTICAST} ${c} -j MASQUERADE --random-fully`),
        a(`! -s ${net} -d ${net} ${c} -j MASQUERADE --random-fully`),
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
const ip = (field: 'saddr' | 'daddr', op: '==' | '!=', cidr: string): Expr => ({ match: { op, left: { payload: { protocol: 'ip', field } }, right: prefix(cidr) } });
const RETURN: Expr = { return: null };
const MASQ: Expr = { masquerade: { flags: 'fully-random' } };

export interface NftChainWant {
  chain: NftChain;
  rules: Expr[][];
}

export function nftChains(i: RulesInput): NftChainWant[] {
  const { network: net, podCidr: pod } = i;
  const out: NftChainWant[] = [];
  if (i.masq) {
    out.push({
      chain: { family: 'ip', table: NFT_TABLE, name: 'postrtg', type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept', comment: 'chain to manage traffic masquerading by flannel' },
      rules: [
        [{ match: { op: '==', left: { meta: { key: 'mark' } }, right: 0x4000 } }, RETURN],
        [ip('saddr', '==', pod), ip('daddr', '==', net), RETURN],
        [ip('saddr', '==', net), ip('daddr', '==', pod), RETURN],
        [ip('saddr', '!=', pod), ip('daddr', '==', net), RETURN],
        [ip('saddr', '==', net), ip('daddr', '!=', MULTICAST), MASQ],
        [ip('saddr', '!=', net), ip('daddr', '==', net), MASQ],
      ],
    });
  }
  if (i.forward) {
    out.push({
      chain: { family: 'ip', table: NFT_TABLE, name: 'forward', type: 'filter', hook: 'forward', prio: 0, policy: 'accept', comment: 'chain to accept flannel traffic' },
      rules: [[ip('saddr', '==', net), { accept: null }], [ip('daddr', '==', net), { accept: null }]],
    });
  }
  return out;
}

const chainOk = (w: NftChainWant, rs: Ruleset): boolean => {
  const c = rs.chains.find((x) => x.family === 'ip' && x.table === NFT_TABLE && x.name === w.chain.name);
  if (!c || c.type !== w.chain.type || c.hook !== w.chain.hook || c.prio !== w.chain.prio) return false;
  const have = rs.rules.filter((r) => r.family === 'ip' && r.table === NFT_TABLE && r.chain === w.chain.name).map((r) => JSON.stringify(r.expr));
  return have.join('\n') === w.rules.map((e) => JSON.stringify(e)).join('\n');
};

/**
 * From `nft -j list table ip flannel-ipv4`: the chains that differ from
 * what we want, rebuilt (table, chain, flush, rules) in one atomic batch;
 * [] when everything is in place.
 */
export function nftRepair(want: readonly NftChainWant[], rs: Ruleset): { cmds: NftCommand[]; chains: string[] } {
  const bad = want.filter((w) => !chainOk(w, rs));
  if (!bad.length) return { cmds: [], chains: [] };
  const cmds: NftCommand[] = [{ add: { table: { family: 'ip', name: NFT_TABLE, comment: `rules for ${NFT_TABLE}` } } }];
  for (const w of bad) {
    const ref: NftChain = { family: 'ip', table: NFT_TABLE, name: w.chain.name };
    cmds.push({ add: { chain: w.chain } }, { flush: { chain: ref } });
    for (const expr of w.rules) cmds.push({ add: { rule: { family: 'ip', table: NFT_TABLE, chain: w.chain.name, expr } satisfies NftRule } });
  }
  return { cmds, chains: bad.map((w) => w.chain.name) };
}
