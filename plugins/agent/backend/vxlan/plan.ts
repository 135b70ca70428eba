/**
 * The vxlan reconcile plan, pure: from the peers' leases and what the kernel
 * holds on our device (neighbours, FDB, routes), the netlink actions that
 * make the device match. flanneld only applies lease events; this compares
 * the whole state every time, so it also repairs drift (an entry deleted by
 * hand, a device re-created), replaces the FDB/neighbour entries of a peer
 * whose VTEP MAC changed, and removes what belongs to leases deleted while
 * the agent was down (flannel#2554).
 * One plan per family: flannel.<VNI> (IPv4) and flannel-v6.<VNI> (IPv6,
 * neighbour = `<v6 subnet>::`, FDB dst = the peer's PublicIPv6).
 * Order (FLANNEL-NOTES): stale entries are removed first (route, FDB,
 * neighbour); then per peer neighbour → FDB → route, so the kernel never
 * routes to a gateway it would have to ARP for.
 */
import { type Lease, parseVxlanBackendData } from '../../store/lease';
import { type Prefix, bigIntToIp, formatPrefix, isEmptyPrefix, parseNetwork, prefixContains, toAddr } from '../../../pkg/ip';

export const ZERO_MAC = '00:00:00:00:00:00';

/** One remote node as the device must know it. */
export interface VxlanPeer {
  /** "10.244.2.0/24" */
  subnet: string;
  /** the subnet's network address, the route's gateway and neighbour IP ("10.244.2.0") */
  gateway: string;
  vtepMAC: string;
  publicIP: string;
}

/** The kernel's view of our device, reduced to what the plan needs. */
export interface DeviceState {
  neighs: Array<{ ip: string; mac?: string; permanent: boolean }>;
  fdb: Array<{ mac: string; dst?: string }>;
  routes: Array<{ dst: string; gw?: string; onlink: boolean }>;
}

export type Action =
  | { op: 'neighSet'; ip: string; mac: string }
  | { op: 'fdbSet'; mac: string; dst: string }
  | { op: 'routeReplace'; dst: string; gw: string }
  | { op: 'routeDel'; dst: string; gw?: string }
  | { op: 'fdbDel'; mac: string; dst?: string }
  | { op: 'neighDel'; ip: string };

export interface Plan {
  /** independent deletions of stale entries */
  removals: Action[];
  /** per peer, its missing or wrong entries in neighbour → FDB → route order */
  peers: Array<{ peer: VxlanPeer; actions: Action[] }>;
}

export interface SkippedLease {
  lease: Lease;
  reason: string;
}

/**
 * The peers described by the vxlan leases for `network`'s family (IPv4: the
 * lease's subnet, BackendData and PublicIP; IPv6: its IPv6 subnet,
 * BackendV6Data and PublicIPv6); other leases come back as skipped, with the reason.
 */
export function peersFromLeases(leases: readonly Lease[], network: Prefix): { peers: VxlanPeer[]; skipped: SkippedLease[] } {
  const peers: VxlanPeer[] = [];
  const skipped: SkippedLease[] = [];
  const v6 = network.v6;
  for (const l of leases) {
    if (l.attrs.backendType !== 'vxlan') {
      skipped.push({ lease: l, reason: `backend type ${JSON.stringify(l.attrs.backendType)} is not vxlan` });
      continue;
    }
    const sn = v6 ? l.ipv6Subnet : l.subnet;
    if (!sn || isEmptyPrefix(sn)) {
      skipped.push({ lease: l, reason: `it has no IPv${v6 ? 6 : 4} subnet` });
      continue;
    }
    if (sn.v6 !== v6 || sn.prefixLen < network.prefixLen || !prefixContains(network, sn.ip)) {
      skipped.push({ lease: l, reason: `subnet ${formatPrefix(sn)} is outside the network ${formatPrefix(network)}` });
      continue;
    }
    const bd = parseVxlanBackendData(v6 ? l.attrs.backendV6Data : l.attrs.backendData);
    if (!bd) {
      skipped.push({ lease: l, reason: `${v6 ? 'BackendV6Data' : 'BackendData'} has no valid VNI and VtepMAC` });
      continue;
    }
    const publicIP = v6 ? l.attrs.publicIPv6 : l.attrs.publicIP;
    if (!publicIP) {
      skipped.push({ lease: l, reason: 'it has no PublicIPv6' });
      continue;
    }
    peers.push({ subnet: formatPrefix(sn), gateway: bigIntToIp(sn.ip, v6), vtepMAC: bd.vtepMAC, publicIP });
  }
  return { peers, skipped };
}

/** An address in the Network (a peer VTEP's neighbour entry is one). */
export const inNetwork = (network: Prefix, ip: string): boolean => {
  try {
    const a = toAddr(ip);
    return prefixContains(network, a.n, a.v6);
  } catch {
    return false;
  }
};
/** A route to a part of the Network (what a backend may remove when no lease wants it). */
export const routeInNetwork = (network: Prefix, dst: string): boolean => {
  try {
    const d = parseNetwork(dst);
    return d.v6 === network.v6 && d.prefixLen >= network.prefixLen && prefixContains(network, d.ip);
  } catch {
    return false;
  }
};

/**
 * Computes the actions for `peers` against `state`. Only entries inside
 * `network` (neighbours, routes with a gateway) or with a non-zero MAC (FDB)
 * are ever considered ours and removed: a gateway-less route (the kernel's
 * prefix route of flanneld's IPv6 address `<subnet>::/128`) is not ours.
 */
export function planVxlan(peers: readonly VxlanPeer[], state: DeviceState, network: Prefix): Plan {
  const wantNeigh = new Map(peers.map((p) => [p.gateway, p.vtepMAC]));
  const wantFdb = new Map(peers.map((p) => [p.vtepMAC, p.publicIP]));
  const wantRoute = new Map(peers.map((p) => [p.subnet, p.gateway]));

  const removals: Action[] = [];
  for (const r of state.routes) {
    if (r.gw && !wantRoute.has(r.dst) && routeInNetwork(network, r.dst)) removals.push({ op: 'routeDel', dst: r.dst, gw: r.gw });
  }
  for (const f of state.fdb) {
    if (f.mac !== ZERO_MAC && !wantFdb.has(f.mac)) removals.push({ op: 'fdbDel', mac: f.mac, dst: f.dst });
  }
  for (const n of state.neighs) {
    if (!wantNeigh.has(n.ip) && inNetwork(network, n.ip)) removals.push({ op: 'neighDel', ip: n.ip });
  }

  // indexes, so that a plan for thousands of peers stays linear
  const neighByIp = new Map(state.neighs.map((x) => [x.ip, x]));
  const routeByDst = new Map(state.routes.map((x) => [x.dst, x]));
  const fdbByMac = new Map<string, DeviceState['fdb']>();
  for (const x of state.fdb) fdbByMac.set(x.mac, [...(fdbByMac.get(x.mac) ?? []), x]);

  const out: Plan['peers'] = [];
  for (const p of peers) {
    const actions: Action[] = [];
    const n = neighByIp.get(p.gateway);
    if (!n || n.mac !== p.vtepMAC || !n.permanent) actions.push({ op: 'neighSet', ip: p.gateway, mac: p.vtepMAC });
    // a vxlan FDB entry may hold several remotes: keep exactly ours (one
    // wrong remote is replaced in place, several are deleted first)
    const f = fdbByMac.get(p.vtepMAC) ?? [];
    const right = f.some((x) => x.dst === p.publicIP);
    const wrong = f.filter((x) => x.dst !== p.publicIP);
    if (right || wrong.length > 1) for (const w of wrong) removals.push({ op: 'fdbDel', mac: w.mac, dst: w.dst });
    if (!right) actions.push({ op: 'fdbSet', mac: p.vtepMAC, dst: p.publicIP });
    const r = routeByDst.get(p.subnet);
    if (!r || r.gw !== p.gateway || !r.onlink) actions.push({ op: 'routeReplace', dst: p.subnet, gw: p.gateway });
    if (actions.length) out.push({ peer: p, actions });
  }
  return { removals, peers: out };
}

export function describeAction(a: Action): string {
  switch (a.op) {
    case 'neighSet': return `neighbour ${a.ip} lladdr ${a.mac}`;
    case 'fdbSet': return `fdb ${a.mac} dst ${a.dst}`;
    case 'routeReplace': return `route ${a.dst} via ${a.gw} onlink`;
    case 'routeDel': return `delete route ${a.dst}${a.gw ? ` via ${a.gw}` : ''}`;
    case 'fdbDel': return `delete fdb ${a.mac}${a.dst ? ` dst ${a.dst}` : ''}`;
    case 'neighDel': return `delete neighbour ${a.ip}`;
  }
}
