/**
 * What a CNI plugin left behind, for "nothing is left" assertions: links and
 * addresses in a netns, masquerade / spoof-check rules, iptables CNI chains,
 * host-local reservations.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ipj, sh } from './cni';

export interface NetnsState {
  links: string[];
  /** addresses other than link-local, "ifname addr/len" */
  addrs: string[];
  /** nft rules in our masquerade chain */
  masqRules: string[];
  /** nft rules/chains of the spoof check */
  spoofRules: string[];
  /** iptables/ip6tables nat CNI-… chains and POSTROUTING jumps to them */
  iptCni: string[];
}

export function netnsState(ns: string | null): NetnsState {
  const links = ipj<{ ifname: string }[]>(ns, ['link', 'show']).map((l) => l.ifname).filter((n) => n !== 'lo');
  const addrs = ipj<{ ifname: string; addr_info: { local: string; prefixlen: number; scope: string }[] }[]>(ns, ['addr', 'show'])
    .flatMap((l) => l.addr_info.filter((a) => a.scope !== 'link' && a.scope !== 'host').map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`));
  const rs = nftRuleset(ns);
  const masqRules = rs.filter((x) => x.rule && x.rule.table === 'cni_plugins_masquerade' && x.rule.chain === 'masq_checks').map((x) => JSON.stringify(x.rule.expr) + ' ' + x.rule.comment);
  const spoofRules = rs
    .filter((x) => (x.rule && x.rule.family === 'bridge' && x.rule.comment?.startsWith('macspoofchk-')) || (x.chain && x.chain.family === 'bridge' && x.chain.name.startsWith('cni-br-iface-')))
    .map((x) => JSON.stringify(x));
  const iptCni: string[] = [];
  for (const tool of ['iptables', 'ip6tables']) {
    const out = sh(ns, tool, ['-w', '-t', 'nat', '-S'], true);
    iptCni.push(...out.split('\n').filter((l) => / CNI-[0-9a-f]{24}/.test(l) || /^-N CNI-/.test(l)).map((l) => `${tool} ${l}`));
  }
  return { links, addrs, masqRules, spoofRules, iptCni };
}

export function nftRuleset(ns: string | null): any[] {
  const out = sh(ns, 'nft', ['-j', 'list', 'ruleset'], true);
  if (!out.trim()) return [];
  return (JSON.parse(out).nftables as any[]).filter((x) => !x.metainfo);
}

/** host-local reservations (IP files) of `network` under dataDir. */
export function reservations(dataDir: string, network: string): string[] {
  const d = path.join(dataDir, network);
  if (!existsSync(d)) return [];
  return readdirSync(d).filter((f) => !f.startsWith('last_reserved_ip') && f !== 'lock');
}

/** The container-side view: addresses (non link-local) and routes of `ifname`. */
export function podView(pod: string, ifname: string): { addrs: string[]; routes: string[]; mac: string; up: boolean; mtu: number } {
  const l = ipj(pod, ['addr', 'show', 'dev', ifname])[0];
  const routes = [...ipj(pod, ['route', 'show', 'dev', ifname]), ...ipj(pod, ['-6', 'route', 'show', 'dev', ifname])]
    .filter((r: any) => !String(r.dst).startsWith('fe80') && r.dst !== 'multicast' && !String(r.dst).startsWith('ff00'))
    .map((r: any) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}`);
  return {
    addrs: l.addr_info.filter((a: any) => a.scope !== 'link').map((a: any) => `${a.local}/${a.prefixlen}`),
    routes, mac: l.address, up: l.flags.includes('UP'), mtu: l.mtu,
  };
}

/** Detailed link info (`ip -d -j link show dev`). */
export function linkDetail(ns: string | null, name: string): any {
  return ipj(ns, ['-d', 'link', 'show', 'dev', name])[0];
}

/** ping once from a netns; true when answered. */
export function ping(ns: string, addr: string): boolean {
  const r = sh(ns, 'ping', ['-c', '1', '-W', '2', addr], true);
  return / 0% packet loss/.test(r);
}
