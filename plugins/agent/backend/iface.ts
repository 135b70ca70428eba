/**
 * The external interface (flannel pkg/ipmatch LookupExtIface): each --iface
 * in order (an interface name, or an IP address that one of the interfaces
 * holds), then each --iface-regex (matched against names, then addresses),
 * then --iface-can-reach (the interface and source address of the route the
 * kernel picks for that IP, RTM_GETROUTE as `ip route get`), else, when
 * none of the three is given, the interface of the default route (IPv6-only: the IPv6 default
 * route). The interface must hold an address of every enabled family: its
 * first IPv4 address (and its first IPv6 address, global before link-local,
 * permanent before autoconfigured, deprecated and DAD-failed ones skipped,
 * as flanneld sorts them) are the VXLAN local addresses; --public-ip and
 * --public-ipv6, when given, are what the lease publishes instead.
 */
import { AF_INET, AF_INET6, type Addr, type Link, type NetlinkHandle } from '../../pkg/netlink';
import { ConfigError, type Families } from '../config';
import { bigIntToIp, toAddr } from '../../pkg/ip';

export interface ExternalInterface {
  link: Link;
  /** the IPv4 address on the interface (VXLAN local); '' when IPv4 is off */
  ifaceAddr: string;
  /** the IPv4 address other nodes reach us at (lease PublicIP); '' when IPv4 is off */
  publicIP: string;
  /** the IPv6 address on the interface (flannel-v6 VXLAN local), when IPv6 is on */
  ifaceV6Addr?: string;
  /** the IPv6 address other nodes reach us at (lease PublicIPv6), when IPv6 is on */
  publicIPv6?: string;
}

export interface IfaceSelection {
  iface: string[];
  ifaceRegex: string[];
  /** --iface-can-reach IP */
  ifaceCanReach?: string;
  publicIp: string;
  publicIpv6?: string;
}

const V4_ONLY: Families = { v4: true, v6: false };

const IFA_F_DEPRECATED = 0x20;
const isLinkLocal6 = (a: string): boolean => /^fe[89ab][0-9a-f]:/i.test(a);

/** The interface's usable addresses of one family, in flanneld's order of preference. */
export function ifaceAddrs(addrs: readonly Addr[], index: number, v6: boolean): string[] {
  if (!v6) return addrs.filter((a) => a.index === index && a.family === AF_INET && a.scope === 0).map((a) => a.address);
  const ok = addrs.filter((a) => a.index === index && a.family === AF_INET6 && !a.dadfailed && (a.flags & IFA_F_DEPRECATED) === 0 &&
    (a.scope === 0 || isLinkLocal6(a.address)));
  const rank = (a: Addr) => (isLinkLocal6(a.address) ? 2 : 0) + (a.permanent ? 0 : 1);
  return ok.map((a, i) => ({ a, i })).sort((x, y) => rank(x.a) - rank(y.a) || x.i - y.i).map((x) => x.a.address);
}

const familyOf = (ip: string): 4 | 6 => (ip.includes(':') ? 6 : 4);

/** Pure part: picks the interface and addresses from the kernel's links, addresses and default-route oif(s). */
export function selectExtIface(sel: IfaceSelection, links: Link[], addrs: Addr[], defaultOif: number | undefined,
  fam: Families = V4_ONLY, defaultOif6?: number, canReach?: { oif?: number; src?: string } | { error: string }): ExternalInterface | { error: string } {
  const need = [fam.v4 ? 'IPv4' : '', fam.v6 ? 'IPv6' : ''].filter(Boolean).join(' and ');
  /** the interface with its addresses; `ip` fixes the address of its family */
  const withAddr = (link: Link, ip?: string): ExternalInterface | null => {
    const a4 = ip && familyOf(ip) === 4 ? ip : ifaceAddrs(addrs, link.index, false)[0];
    const a6 = ip && familyOf(ip) === 6 ? ip : ifaceAddrs(addrs, link.index, true)[0];
    if ((fam.v4 && !a4) || (fam.v6 && !a6)) return null;
    const r: ExternalInterface = { link, ifaceAddr: fam.v4 ? a4 : '', publicIP: fam.v4 ? sel.publicIp || a4 : '' };
    // --public-ipv6 as Go prints it (the lease's bytes and the kernel's FDB entries of our peers compare with it)
    if (fam.v6) Object.assign(r, { ifaceV6Addr: a6, publicIPv6: sel.publicIpv6 ? bigIntToIp(toAddr(sel.publicIpv6).n, true) : a6 });
    return r;
  };
  const enabled = (ip: string) => (familyOf(ip) === 4 ? fam.v4 : fam.v6);
  for (const want of sel.iface) {
    const byAddr = addrs.find((a) => (a.family === AF_INET || a.family === AF_INET6) && a.address === want && enabled(a.address));
    const link = byAddr ? links.find((l) => l.index === byAddr.index) : links.find((l) => l.name === want);
    const r = link && withAddr(link, byAddr?.address);
    if (r) return r;
  }
  for (const re of sel.ifaceRegex) {
    const rx = new RegExp(re);
    for (const link of links) {
      if (rx.test(link.name)) {
        const r = withAddr(link);
        if (r) return r;
      }
    }
    const a = addrs.find((x) => (x.family === AF_INET || x.family === AF_INET6) && enabled(x.address) && rx.test(x.address));
    const link = a && links.find((l) => l.index === a.index);
    const r = link && withAddr(link, a.address);
    if (r) return r;
  }
  let reachWhy = '';
  if (sel.ifaceCanReach) {
    // flanneld (ip.GetInterfaceBySpecificIPRouting): the route's link, and its source address as the address of its family
    if (canReach && 'error' in canReach) reachWhy = ` (--iface-can-reach ${sel.ifaceCanReach}: ${canReach.error})`;
    else {
      const link = canReach?.oif !== undefined ? links.find((l) => l.index === canReach.oif) : undefined;
      const src = canReach?.src && enabled(canReach.src) ? canReach.src : undefined;
      const r = link && withAddr(link, src);
      if (r) return r;
      reachWhy = link ? ` (--iface-can-reach ${sel.ifaceCanReach}: the route's interface ${link.name} has no ${need} address)` : ` (--iface-can-reach ${sel.ifaceCanReach}: the route has no interface)`;
    }
  }
  if (sel.iface.length || sel.ifaceRegex.length || sel.ifaceCanReach) {
    const tried = [...sel.iface.map((i) => `--iface ${i}`), ...sel.ifaceRegex.map((r) => `--iface-regex ${r}`), ...(sel.ifaceCanReach ? [`--iface-can-reach ${sel.ifaceCanReach}`] : [])];
    return { error: `failed to find an interface with an ${need} address matching ${tried.join(', ')}${reachWhy}` };
  }
  const oif = fam.v4 ? defaultOif : defaultOif6;
  const link = links.find((l) => l.index === oif);
  if (!link) return { error: `no ${fam.v4 ? '' : 'IPv6 '}default route: name the external interface with --iface` };
  if (fam.v4 && fam.v6 && defaultOif6 !== undefined && defaultOif6 !== oif) {
    const l6 = links.find((l) => l.index === defaultOif6);
    return { error: `the IPv6 default route's interface ${l6?.name ?? defaultOif6} must be the IPv4 one's, ${link.name}: name the external interface with --iface` };
  }
  return withAddr(link) ?? { error: `the default route's interface ${link.name} has no ${need} address` };
}

/** Looks the interface up in the handle's netns. Throws ConfigError when none fits. */
export async function lookupExtIface(h: NetlinkHandle, sel: IfaceSelection, fam: Families = V4_ONLY): Promise<ExternalInterface> {
  const [links, addrs, routes] = await Promise.all([h.linkList(), h.addrList(), h.routeList()]);
  const def = routes.find((r) => r.dst === '0.0.0.0/0' && r.oif !== undefined);
  const def6 = routes.find((r) => r.dst === '::/0' && r.oif !== undefined);
  let canReach: { oif?: number; src?: string } | { error: string } | undefined;
  if (sel.ifaceCanReach) {
    try {
      const rt = await h.routeGet(sel.ifaceCanReach);
      canReach = { oif: rt.oif, src: rt.src };
    } catch (e) {
      canReach = { error: `no route: ${(e as Error).message}` };
    }
  }
  const r = selectExtIface(sel, links, addrs, def?.oif, fam, def6?.oif, canReach);
  if ('error' in r) throw new ConfigError(r.error);
  return r;
}

/** "eth0 (192.168.77.11, public 192.168.77.11; fd77::11, public fd77::11; mtu 1500)" */
export function describeExt(e: ExternalInterface): string {
  const parts: string[] = [];
  if (e.ifaceAddr) parts.push(`${e.ifaceAddr}, public ${e.publicIP}`);
  if (e.ifaceV6Addr) parts.push(`${e.ifaceV6Addr}, public ${e.publicIPv6}`);
  return `${e.link.name} (${[...parts, `mtu ${e.link.mtu}`].join('; ')})`;
}
