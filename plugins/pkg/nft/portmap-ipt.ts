/**
 * Port mapping rules as data — the iptables backend, in the reference's
 * layout (plugins/meta/portmap/portmap_iptables.go), byte-compatible so
 * either implementation removes the other's state. Table nat, per family:
 *   PREROUTING, OUTPUT:   -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
 *   CNI-HOSTPORT-DNAT:    -m comment --comment "dnat name: \"<net>\" id: \"<cid>\""
 *                         -m multiport -p <proto> --destination-ports <≤15 ports> [conditions] -j CNI-DN-<hash>
 *   CNI-DN-<hash>:        per mapping [-d hostIP]: -s <cip/prefix> -j SETMARK (hairpin),
 *                         -s 127.0.0.1 -j SETMARK (IPv4 localhost), -j DNAT --to-destination <cip>:<cp>
 *   CNI-HOSTPORT-SETMARK: -j MARK --set-xmark <1<<bit>/<1<<bit>
 *   CNI-HOSTPORT-MASQ:    -m mark --mark <m>/<m> -j MASQUERADE, first in POSTROUTING
 * Output is `iptables-restore --noflush` text; decisions that depend on
 * what exists take the `iptables -t nat -S` lines.
 */
import { createHash } from 'node:crypto';
import { type PortMapping, mappingsForFamily } from './portmap';

export const TOP_DNAT_CHAIN = 'CNI-HOSTPORT-DNAT';
export const SETMARK_CHAIN = 'CNI-HOSTPORT-SETMARK';
export const MASQ_MARK_CHAIN = 'CNI-HOSTPORT-MASQ';
export const DEFAULT_MARK_BIT = 13;

/** The reference's MustFormatChainNameWithPrefix: `CNI-` + prefix + sha512 hex, 28 chars. */
export function portmapChainName(network: string, containerId: string, prefix: 'DN-' | 'SN-'): string {
  return `CNI-${prefix}${createHash('sha512').update(network + containerId).digest('hex')}`.slice(0, 28);
}

/** The reference's DNAT entry-rule comment (trimmed to iptables' 255 bytes). */
export function dnatComment(network: string, containerId: string): string {
  const c = `dnat name: ${JSON.stringify(network)} id: ${JSON.stringify(containerId)}`;
  return c.length <= 255 ? c : `${c.slice(0, 253)}...`;
}

export interface IptPortmapSpec {
  network: string;
  containerId: string;
  /** container address with its prefix, as in the CNI result (e.g. 10.88.0.2/24) */
  containerCidr: string;
  v6: boolean;
  mappings: PortMapping[];
  snat: boolean;
  masqAll: boolean;
  markMasqBit: number;
  externalSetMarkChain?: string;
  /** conditionsV4/V6: iptables arguments, one token each */
  conditions: string[];
}

export const markValue = (bit: number): string => `0x${(2 ** bit).toString(16)}/0x${(2 ** bit).toString(16)}`;

const quote = (s: string): string => (/^[A-Za-z0-9_.:/,!+=@%-]+$/.test(s) ? s : `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`);
const line = (tokens: string[]) => tokens.map(quote).join(' ');
const addrOf = (cidr: string) => cidr.split('/')[0];

/** multiport accepts at most 15 ports per rule. */
export function splitPortList(ports: number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < ports.length; i += 15) out.push(ports.slice(i, i + 15).join(','));
  return out;
}

/** The entry rules (without `-A CNI-HOSTPORT-DNAT`), grouped by protocol in sorted order. */
export function dnatEntryRules(s: IptPortmapSpec): string[][] {
  const byProto = new Map<string, number[]>();
  for (const m of s.mappings) byProto.set(m.protocol, [...(byProto.get(m.protocol) ?? []), m.hostPort]);
  const chain = portmapChainName(s.network, s.containerId, 'DN-');
  const out: string[][] = [];
  for (const proto of [...byProto.keys()].sort()) {
    for (const ports of splitPortList(byProto.get(proto)!)) {
      out.push(['-m', 'comment', '--comment', dnatComment(s.network, s.containerId), '-m', 'multiport', '-p', proto, '--destination-ports', ports, ...s.conditions, '-j', chain]);
    }
  }
  return out;
}

/** The per-container chain's rules (without `-A CNI-DN-…`): marks first, then DNAT, per mapping. */
export function dnatChainRules(s: IptPortmapSpec): string[][] {
  const mark = s.externalSetMarkChain ?? SETMARK_CHAIN;
  const ip = addrOf(s.containerCidr);
  const out: string[][] = [];
  for (const m of mappingsForFamily(s.mappings, s.v6)) {
    const base = ['-p', m.protocol, '--dport', String(m.hostPort), ...(m.hostIP ? ['-d', m.hostIP] : [])];
    if (s.snat) {
      out.push([...base, '-s', s.masqAll ? (s.v6 ? '::/0' : '0.0.0.0/0') : s.containerCidr, '-j', mark]);
      if (!s.v6 && !s.masqAll) out.push([...base, '-s', '127.0.0.1', '-j', mark]);
    }
    out.push([...base, '-j', 'DNAT', '--to-destination', s.v6 ? `[${ip}]:${m.containerPort}` : `${ip}:${m.containerPort}`]);
  }
  return out;
}

const hasChain = (save: string[], c: string) => save.some((l) => l === `-N ${c}` || l.startsWith(`:${c} `));
/** Rule lines of `chain` in -S output, without the `-A <chain> ` prefix. */
export const chainLines = (save: string[], chain: string): string[] =>
  save.filter((l) => l.startsWith(`-A ${chain} `)).map((l) => l.slice(`-A ${chain} `.length));
const jumpsTo = (l: string, c: string) => new RegExp(` -j ${c}(\\s|$)`).test(` ${l}`);

/**
 * `iptables-restore --noflush` input setting up one family for a container,
 * given the table's current `-S` lines: shared chains and their entry jumps
 * only when missing, the container's chain re-declared (which flushes it)
 * and its old entry rules replaced.
 */
export function genIptablesPortmap(s: IptPortmapSpec, save: string[]): string {
  const out = ['*nat'];
  const ensureChain = (c: string) => { if (!hasChain(save, c)) out.push(`:${c} - [0:0]`); };
  const mark = markValue(s.markMasqBit);
  if (s.snat && !s.externalSetMarkChain) {
    ensureChain(SETMARK_CHAIN);
    if (!chainLines(save, SETMARK_CHAIN).some((l) => l.includes(`--set-xmark ${mark}`))) {
      out.push(`-A ${SETMARK_CHAIN} ${line(['-m', 'comment', '--comment', 'CNI portfwd masquerade mark', '-j', 'MARK', '--set-xmark', mark])}`);
    }
    ensureChain(MASQ_MARK_CHAIN);
    if (!chainLines(save, MASQ_MARK_CHAIN).some((l) => l.includes(`--mark ${mark}`) && jumpsTo(l, 'MASQUERADE'))) {
      out.push(`-A ${MASQ_MARK_CHAIN} -m mark --mark ${mark} -j MASQUERADE`);
    }
    if (!chainLines(save, 'POSTROUTING').some((l) => jumpsTo(l, MASQ_MARK_CHAIN))) {
      out.push(`-I POSTROUTING 1 ${line(['-m', 'comment', '--comment', 'CNI portfwd requiring masquerade', '-j', MASQ_MARK_CHAIN])}`);
    }
  }
  ensureChain(TOP_DNAT_CHAIN);
  for (const entry of ['PREROUTING', 'OUTPUT']) {
    if (!chainLines(save, entry).some((l) => jumpsTo(l, TOP_DNAT_CHAIN) && l.includes('--dst-type LOCAL'))) {
      out.push(`-A ${entry} -m addrtype --dst-type LOCAL -j ${TOP_DNAT_CHAIN}`);
    }
  }
  const chain = portmapChainName(s.network, s.containerId, 'DN-');
  out.push(`:${chain} - [0:0]`);
  for (const r of dnatChainRules(s)) out.push(`-A ${chain} ${line(r)}`);
  for (const l of chainLines(save, TOP_DNAT_CHAIN).filter((x) => jumpsTo(x, chain))) out.push(`-D ${TOP_DNAT_CHAIN} ${l}`);
  for (const r of dnatEntryRules(s)) out.push(`-A ${TOP_DNAT_CHAIN} ${line(r)}`);
  out.push('COMMIT', '');
  return out.join('\n');
}

/**
 * Removes a per-container chain: every rule in any chain that jumps to it,
 * then the chain. '' when nothing of it exists.
 */
export function genIptablesChainTeardown(chains: string[], save: string[]): string {
  const out = ['*nat'];
  for (const c of chains) {
    for (const l of save.filter((x) => x.startsWith('-A ') && jumpsTo(x, c))) out.push(`-D${l.slice(2)}`);
  }
  for (const c of chains) if (hasChain(save, c)) out.push(`-F ${c}`, `-X ${c}`);
  if (out.length === 1) return '';
  out.push('COMMIT', '');
  return out.join('\n');
}

/** The chains DEL removes for network + container (ours and the reference's older SNAT chain). */
export const portmapIptChains = (network: string, containerId: string): string[] =>
  [portmapChainName(network, containerId, 'DN-'), portmapChainName(network, containerId, 'SN-')];

/** GC: per-container chains of `network` whose container is not valid, from the entry rules' comments. */
export function stalePortmapIptChains(save: string[], network: string, validIds: ReadonlySet<string>): string[] {
  const stale = new Set<string>();
  for (const l of chainLines(save, TOP_DNAT_CHAIN)) {
    const m = /--comment "dnat name: \\"([^"\\]+)\\" id: \\"([^"\\]+)\\"".* -j (CNI-DN-[0-9a-f]{21})/.exec(l);
    if (m && m[1] === network && !validIds.has(m[2]) && m[3] === portmapChainName(network, m[2], 'DN-')) stale.add(m[3]);
  }
  return [...stale];
}

/** Expected rules for CHECK as `-C` argument lists: [chain, …rule]. */
export function iptablesCheckRules(s: IptPortmapSpec): string[][] {
  const chain = portmapChainName(s.network, s.containerId, 'DN-');
  return [...dnatChainRules(s).map((r) => [chain, ...r]), ...dnatEntryRules(s).map((r) => [TOP_DNAT_CHAIN, ...r])];
}
