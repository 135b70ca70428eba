/**
 * The external interface (flannel pkg/ipmatch LookupExtIface, IPv4): each
 * --iface in order (an interface name, or an IP address that one of the
 * interfaces holds), then each --iface-regex (matched against names, then
 * addresses), else the interface of the default route. Its first IPv4
 * address is the VXLAN local address; --public-ip, when given, is what the
 * lease publishes instead.
 */
import { AF_INET, type Addr, type Link, type NetlinkHandle } from '../pkg/netlink';
import { ConfigError } from './config';

export interface ExternalInterface {
  link: Link;
  /** the address on the interface (VXLAN local) */
  ifaceAddr: string;
  /** the address other nodes reach us at (lease PublicIP) */
  publicIP: string;
}

export interface IfaceSelection {
  iface: string[];
  ifaceRegex: string[];
  publicIp: string;
}

const globalV4 = (addrs: Addr[], index: number): Addr[] =>
  addrs.filter((a) => a.index === index && a.family === AF_INET && a.scope === 0);

/** Pure part: picks the interface and address from the kernel's links, addresses and default-route oif. */
export function selectExtIface(sel: IfaceSelection, links: Link[], addrs: Addr[], defaultOif: number | undefined): ExternalInterface | { error: string } {
  const withAddr = (link: Link, ip?: string): ExternalInterface | null => {
    const mine = globalV4(addrs, link.index);
    const ifaceAddr = ip ?? mine[0]?.address;
    if (!ifaceAddr) return null;
    return { link, ifaceAddr, publicIP: sel.publicIp || ifaceAddr };
  };
  for (const want of sel.iface) {
    const byAddr = addrs.find((a) => a.family === AF_INET && a.address === want);
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
    const a = addrs.find((x) => x.family === AF_INET && rx.test(x.address));
    const link = a && links.find((l) => l.index === a.index);
    const r = link && withAddr(link, a.address);
    if (r) return r;
  }
  if (sel.iface.length || sel.ifaceRegex.length) {
    return { error: `failed to find an interface with an IPv4 address matching ${[...sel.iface.map((i) => `--iface ${i}`), ...sel.ifaceRegex.map((r) => `--iface-regex ${r}`)].join(', ')}` };
  }
  const link = links.find((l) => l.index === defaultOif);
  if (!link) return { error: 'no default route: name the external interface with --iface' };
  return withAddr(link) ?? { error: `the default route's interface ${link.name} has no IPv4 address` };
}

/** Looks the interface up in the handle's netns. Throws ConfigError when none fits. */
export async function lookupExtIface(h: NetlinkHandle, sel: IfaceSelection): Promise<ExternalInterface> {
  const [links, addrs, routes] = await Promise.all([h.linkList(), h.addrList(undefined, AF_INET), h.routeList({ family: AF_INET })]);
  const def = routes.find((r) => r.dst === '0.0.0.0/0' && r.oif !== undefined);
  const r = selectExtIface(sel, links, addrs, def?.oif);
  if ('error' in r) throw new ConfigError(r.error);
  return r;
}
