/**
 * Plans for lease events alone, pure: what the backends program when the
 * loop applies a store event incrementally (loop.ts), without reading the
 * kernel's state. The periodic full reconcile (vxlan/plan.ts,
 * hostgw/plan.ts) still compares everything and repairs any drift; these
 * only translate the changed peers:
 *  - a removed peer (or the old lease of a changed one) loses its route,
 *    FDB entry and neighbour — unless a current peer still wants the same
 *    entry (a node that came back with a new subnet and the same VTEP MAC);
 *  - an added or changed peer gets neighbour → FDB → route (replace), the
 *    order of the full plan.
 * `current` is every peer's lease after the events (our own excluded).
 */
import { type Lease, type LeaseEvent } from '../store/lease';
import { type Prefix } from '../../pkg/ip';
import { type RouteAction, hostGwPeers } from './hostgw/plan';
import { type Action, type Plan, type VxlanPeer, peersFromLeases, planVxlan } from './vxlan/plan';

export interface Delta<P> {
  plan: P;
  /** peers (and their routes) the events add; negative when they remove */
  peers: number;
}

/** Each change as (the peer it programs now, the peer it replaces or removes), by `toPeer` (undefined: not a peer of this backend). */
function pairs<T>(changes: readonly LeaseEvent[], toPeer: (l: Lease) => T | undefined): Array<{ now?: T; old?: T }> {
  const of = (l: Lease | undefined) => (l ? toPeer(l) : undefined);
  return changes.map((e) => (e.type === 'added' ? { now: of(e.lease), old: of(e.old) } : { old: of(e.lease) }));
}

const count = (ps: Array<{ now?: unknown; old?: unknown }>): number => ps.reduce((n, p) => n + (p.now ? 1 : 0) - (p.old ? 1 : 0), 0);

export function planVxlanDelta(changes: readonly LeaseEvent[], current: readonly Lease[], network: Prefix): Delta<Plan> {
  const ps = pairs<VxlanPeer>(changes, (l) => peersFromLeases([l], network).peers[0]);
  const removals: Action[] = [];
  // what every current peer holds: read only when something is to be removed (a new peer costs O(1), not O(peers))
  let want: { route: Set<string>; mac: Set<string>; neigh: Set<string> } | undefined;
  for (const { old } of ps) {
    if (!old) continue;
    const all = (want ??= (() => {
      const w = peersFromLeases(current, network).peers;
      return { route: new Set(w.map((p) => p.subnet)), mac: new Set(w.map((p) => p.vtepMAC)), neigh: new Set(w.map((p) => p.gateway)) };
    })());
    const [wantRoute, wantMac, wantNeigh] = [all.route, all.mac, all.neigh];
    if (!wantRoute.has(old.subnet)) removals.push({ op: 'routeDel', dst: old.subnet, gw: old.gateway });
    if (!wantMac.has(old.vtepMAC)) removals.push({ op: 'fdbDel', mac: old.vtepMAC, dst: old.publicIP });
    if (!wantNeigh.has(old.gateway)) removals.push({ op: 'neighDel', ip: old.gateway });
  }
  const adds = ps.flatMap((p) => (p.now ? [p.now] : []));
  // against an empty state, the full plan is exactly "set every entry of these peers", in its order
  const { peers } = planVxlan(adds, { neighs: [], fdb: [], routes: [] }, network);
  return { plan: { removals, peers }, peers: count(ps) };
}

export function planRoutesDelta(changes: readonly LeaseEvent[], current: readonly Lease[], network: Prefix, prefixes: readonly Prefix[]): Delta<RouteAction[]> {
  const toPeer = (ls: readonly Lease[]) => hostGwPeers(ls, network, prefixes, '').peers;
  const ps = pairs(changes, (l) => toPeer([l])[0]);
  const plan: RouteAction[] = [];
  let wantRoute: Set<string> | undefined;
  for (const { old } of ps) {
    if (old && !(wantRoute ??= new Set(toPeer(current).map((p) => p.subnet))).has(old.subnet)) plan.push({ op: 'routeDel', dst: old.subnet, gw: old.gw });
  }
  for (const { now } of ps) if (now) plan.push({ op: 'routeReplace', dst: now.subnet, gw: now.gw });
  return { plan, peers: count(ps) };
}
