/**
 * Direct routes to peers' subnets, pure (flannel backend/hostgw, and vxlan
 * DirectRouting): `<subnet> via <peer public IP> dev <external interface>`.
 * Such a route only works when the peer is on-link: its public IP inside a
 * prefix of an address on our external interface. Routes on the external
 * interface inside the Network with a gateway are ours: the ones no peer
 * wants are removed (never connected routes, never routes outside it).
 */
import { type Lease } from '../../store/lease';
import { routeInNetwork } from '../vxlan/plan';
import { type Prefix, formatPrefix, isEmptyPrefix, prefixContains, toAddr } from '../../../pkg/ip';

/** One peer reached by a direct route. */
export interface RoutePeer {
  /** "10.244.2.0/24" */
  subnet: string;
  /** the peer's public IP, the route's gateway */
  gw: string;
}

export type RouteAction = { op: 'routeReplace'; dst: string; gw: string } | { op: 'routeDel'; dst: string; gw?: string };

/** True when `ip` lies inside one of `prefixes` (the external interface's addresses with their prefix). */
export function isOnLink(ip: string, prefixes: readonly Prefix[]): boolean {
  let a: { v6: boolean; n: bigint };
  try {
    a = toAddr(ip);
  } catch {
    return false;
  }
  return prefixes.some((p) => p.v6 === a.v6 && prefixContains(p, a.n, a.v6));
}

/**
 * The host-gw peers among leases, for `network`'s family (IPv6: the lease's
 * IPv6 subnet via its PublicIPv6); others come back as skipped, with the
 * reason (logged once by the caller).
 */
export function hostGwPeers(leases: readonly Lease[], network: Prefix, prefixes: readonly Prefix[], extName: string): { peers: RoutePeer[]; skipped: { lease: Lease; reason: string }[] } {
  const peers: RoutePeer[] = [];
  const skipped: { lease: Lease; reason: string }[] = [];
  const v6 = network.v6;
  for (const l of leases) {
    const pub = (v6 ? l.attrs.publicIPv6 : l.attrs.publicIP) ?? '';
    const sn = v6 ? l.ipv6Subnet : l.subnet;
    if (l.attrs.backendType !== 'host-gw') skipped.push({ lease: l, reason: `backend type ${JSON.stringify(l.attrs.backendType)} is not host-gw` });
    else if (!sn || isEmptyPrefix(sn)) skipped.push({ lease: l, reason: `it has no IPv${v6 ? 6 : 4} subnet` });
    else if (sn.v6 !== v6 || sn.prefixLen < network.prefixLen || !prefixContains(network, sn.ip)) skipped.push({ lease: l, reason: `subnet ${formatPrefix(sn)} is outside the network ${formatPrefix(network)}` });
    else if (!isOnLink(pub, prefixes)) skipped.push({ lease: l, reason: `public IP${v6 ? 'v6' : ''} ${pub || '(none)'} is not on-link on ${extName} (host-gw needs every node on one L2 network; use vxlan)` });
    else peers.push({ subnet: formatPrefix(sn), gw: pub });
  }
  return { peers, skipped };
}


/** Stale routes first, then the missing or wrong ones. `routes`: the kernel's routes of the network's family on the external interface. */
export function planRoutes(peers: readonly RoutePeer[], routes: ReadonlyArray<{ dst: string; gw?: string }>, network: Prefix): RouteAction[] {
  const want = new Map(peers.map((p) => [p.subnet, p.gw]));
  const have = new Map(routes.map((r) => [r.dst, r.gw]));
  const out: RouteAction[] = [];
  for (const r of routes) if (r.gw && !want.has(r.dst) && routeInNetwork(network, r.dst)) out.push({ op: 'routeDel', dst: r.dst, gw: r.gw });
  for (const p of peers) if (have.get(p.subnet) !== p.gw) out.push({ op: 'routeReplace', dst: p.subnet, gw: p.gw });
  return out;
}
