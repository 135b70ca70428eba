/**
 * NetlinkHandle: rtnetlink operations on one socket bound to one netns
 * (after vishvananda/netlink's Handle). openHandleAt() enters the target
 * netns only for the synchronous socket() call, then switches back: the
 * socket keeps talking to the target netns, and JS never "runs inside" a
 * namespace across an await.
 */
import { NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE } from './attrs';
import { AF_BRIDGE, AF_INET, AF_INET6, AF_UNSPEC, RT_TABLE, RTM, RTEXT_FILTER_VF } from './constants';
import { type BatchItem, Conn } from './conn';
import { LinkNotFoundError, NetlinkError, ERRNO } from './errors';
import {
  Addr, AddrOptions, BridgeVlanOptions, BrportOptions, dumpAddrReq, dumpLinkReq, dumpNeighReq, dumpRouteReq,
  encodeAddr, encodeBridgeVlan, encodeBrportSet, encodeFdb, encodeLinkAdd, encodeLinkGet, encodeLinkSet,
  encodeNeigh, encodeRoute, encodeRouteGet, FdbOptions, isClonedRoute, Link, LinkChange, LinkSpec, Neigh, NeighSpec, NetnsRef,
  parseAddr, parseLink, parseNeigh, parseRoute, Route, RouteSpec,
} from './messages';
import { attrU32 } from './attrs';
import { IFLA } from './constants';
import { withNetns, type NetNS } from '../ns/ns';
import { type NetlinkEvent, subscribeEvents, type Subscription } from './monitor';

export interface RouteFilter {
  /** default main (254); 0 = all tables */
  table?: number;
  family?: number;
  /** output interface */
  index?: number;
}

/**
 * One neighbour/FDB/route change for NetlinkHandle.batch(), named after
 * the method that makes it alone (same arguments, same meaning).
 */
export type BatchRequest =
  | { op: 'routeReplace'; route: RouteSpec }
  | { op: 'routeDel'; route: RouteSpec }
  | { op: 'neighSet'; neigh: NeighSpec }
  | { op: 'neighDel'; index: number; ip: string }
  | { op: 'fdbSet'; index: number; mac: string; dst?: string; opts?: FdbOptions }
  | { op: 'fdbDel'; index: number; mac: string; dst?: string; opts?: FdbOptions };

/** The netlink message of one BatchRequest. */
function batchItem(r: BatchRequest): BatchItem {
  switch (r.op) {
    case 'routeReplace': return { type: RTM.NEWROUTE, flags: NLM_F_CREATE | NLM_F_REPLACE, parts: encodeRoute(r.route), op: `routeReplace ${r.route.dst}` };
    case 'routeDel': return { type: RTM.DELROUTE, flags: 0, parts: encodeRoute(r.route, true), op: `routeDel ${r.route.dst}` };
    case 'neighSet': return { type: RTM.NEWNEIGH, flags: NLM_F_CREATE | NLM_F_REPLACE, parts: encodeNeigh(r.neigh), op: `neighSet ${r.neigh.ip}` };
    case 'neighDel': return { type: RTM.DELNEIGH, flags: 0, parts: encodeNeigh({ index: r.index, ip: r.ip, mac: '00:00:00:00:00:00' }, true), op: `neighDel ${r.ip}` };
    case 'fdbSet': return { type: RTM.NEWNEIGH, flags: NLM_F_CREATE | NLM_F_REPLACE, parts: encodeFdb(r.index, r.mac, r.dst, r.opts ?? {}), op: `fdbSet ${r.mac}` };
    case 'fdbDel': return { type: RTM.DELNEIGH, flags: 0, parts: encodeFdb(r.index, r.mac, r.dst, r.opts ?? {}), op: `fdbDel ${r.mac}` };
  }
}

export class NetlinkHandle {
  readonly #conn: Conn;
  /** the netns this handle is bound to (path or label), for messages */
  readonly netns: string;

  constructor(conn: Conn, netns: string) {
    this.#conn = conn;
    this.netns = netns;
  }

  get closed(): boolean {
    return this.#conn.closed;
  }

  /** Closes the socket; pending requests reject. Idempotent. */
  close(): void {
    this.#conn.close();
  }

  /**
   * Kernel change notifications (RTMGRP_* bits) in this handle's netns, on
   * a socket of their own; see monitor.ts.
   */
  subscribe(groups: number, onEvent: (e: NetlinkEvent) => void, onLost: (why: string) => void): Subscription {
    const open = () => subscribeEvents(groups, onEvent, onLost);
    return this.netns === 'current' ? open() : withNetns(this.netns, open);
  }

  /** `using h = openHandleAt(ns)` closes it at the end of the scope. */
  [Symbol.dispose](): void {
    this.close();
  }

  // ---- links ---------------------------------------------------------------

  /**
   * Creates a link (fails with ExistsError if the name is taken, NotSupportedError
   * if the kernel lacks the kind) and returns it as now seen in this netns.
   */
  async linkAdd(spec: LinkSpec): Promise<Link> {
    await this.#conn.request(RTM.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, encodeLinkAdd(spec), `linkAdd ${spec.kind} ${spec.name}`);
    return this.linkByName(spec.name);
  }

  /** Deletes a link (a veth's peer goes with it). LinkNotFoundError if absent. */
  async linkDel(index: number): Promise<void> {
    await this.#conn.request(RTM.DELLINK, 0, encodeLinkGet({ index }), `linkDel ${index}`);
  }

  /** Deletes by name; returns false if there was no such link. */
  async linkDelByName(name: string): Promise<boolean> {
    const l = await this.linkByNameOrNull(name);
    if (!l) return false;
    try {
      await this.linkDel(l.index);
    } catch (e) {
      if (e instanceof LinkNotFoundError) return false;
      throw e;
    }
    return true;
  }

  async #one(r: BatchRequest): Promise<void> {
    const it = batchItem(r);
    await this.#conn.request(it.type, it.flags, it.parts, it.op);
  }

  /**
   * Applies many neighbour/FDB/route changes in few round trips (many
   * messages per sendmsg, acks matched by seq), in order. Resolves with one
   * entry per request: null when the kernel acked it, else its NetlinkError
   * (ENOBUFS when the replies were lost to a receive buffer overrun: the
   * request may or may not have been applied; retrying is safe, they are
   * all idempotent but a delete's NotFoundError).
   */
  batch(reqs: readonly BatchRequest[]): Promise<Array<Error | null>> {
    return this.#conn.batch(reqs.map(batchItem));
  }

  async #getLink(by: { index?: number; name?: string }, op: string): Promise<Link> {
    const parts = encodeLinkGet(by);
    parts.push(attrU32(IFLA.EXT_MASK, RTEXT_FILTER_VF));
    const msgs = await this.#conn.request(RTM.GETLINK, 0, parts, op);
    const m = msgs.find((x) => x.type === RTM.NEWLINK);
    if (!m) throw new LinkNotFoundError(ERRNO.ENODEV, op);
    return parseLink(m.data);
  }

  /** Throws LinkNotFoundError when absent. */
  linkByName(name: string): Promise<Link> {
    return this.#getLink({ name }, `linkByName ${name}`);
  }

  linkByNameOrNull(name: string): Promise<Link | null> {
    return orNull(this.linkByName(name));
  }

  /** Throws LinkNotFoundError when absent. */
  linkByIndex(index: number): Promise<Link> {
    return this.#getLink({ index }, `linkByIndex ${index}`);
  }

  linkByIndexOrNull(index: number): Promise<Link | null> {
    return orNull(this.linkByIndex(index));
  }

  async linkList(): Promise<Link[]> {
    const msgs = await this.#conn.dump(RTM.GETLINK, dumpLinkReq(), 'linkList');
    return msgs.filter((m) => m.type === RTM.NEWLINK).map((m) => parseLink(m.data));
  }

  /** Applies several attribute changes in one RTM_SETLINK. */
  async linkSet(index: number, change: LinkChange): Promise<void> {
    await this.#conn.request(RTM.SETLINK, 0, encodeLinkSet(index, change), `linkSet ${index} ${Object.keys(change).join(',')}`);
  }

  linkSetUp(index: number): Promise<void> { return this.linkSet(index, { up: true }); }
  linkSetDown(index: number): Promise<void> { return this.linkSet(index, { up: false }); }
  /** masterIndex 0 releases the link from its master. */
  linkSetMaster(index: number, masterIndex: number): Promise<void> { return this.linkSet(index, { master: masterIndex }); }
  linkSetNoMaster(index: number): Promise<void> { return this.linkSet(index, { master: 0 }); }
  linkSetMtu(index: number, mtu: number): Promise<void> { return this.linkSet(index, { mtu }); }
  linkSetMac(index: number, mac: string): Promise<void> { return this.linkSet(index, { mac }); }
  /** The link must be down. */
  linkSetName(index: number, name: string): Promise<void> { return this.linkSet(index, { name }); }
  /** Moves the link to another netns (it gets a new ifindex there only on collision). */
  linkSetNetns(index: number, netns: NetnsRef): Promise<void> { return this.linkSet(index, { netns }); }
  linkSetPromisc(index: number, on: boolean): Promise<void> { return this.linkSet(index, { promisc: on }); }

  /** Bridge port options (the link must be enslaved to a bridge). */
  async linkSetBrport(index: number, opts: BrportOptions): Promise<void> {
    await this.#conn.request(RTM.SETLINK, 0, encodeBrportSet(index, opts), `linkSetBrport ${index}`);
  }
  linkSetBrportHairpin(index: number, on: boolean): Promise<void> { return this.linkSetBrport(index, { hairpin: on }); }
  linkSetBrportIsolated(index: number, on: boolean): Promise<void> { return this.linkSetBrport(index, { isolated: on }); }
  linkSetBrportLearning(index: number, on: boolean): Promise<void> { return this.linkSetBrport(index, { learning: on }); }

  /** `bridge vlan add`: needs vlan_filtering, which some kernels lack (NotSupportedError/NetlinkError). */
  async bridgeVlanAdd(index: number, vid: number, opts: BridgeVlanOptions = {}): Promise<void> {
    await this.#conn.request(RTM.SETLINK, 0, encodeBridgeVlan(index, vid, opts), `bridgeVlanAdd ${index} ${vid}`);
  }
  async bridgeVlanDel(index: number, vid: number, opts: BridgeVlanOptions = {}): Promise<void> {
    await this.#conn.request(RTM.DELLINK, 0, encodeBridgeVlan(index, vid, opts), `bridgeVlanDel ${index} ${vid}`);
  }

  // ---- addresses -------------------------------------------------------------

  /** Adds cidr (e.g. "10.1.0.5/24") on link `index`; ExistsError if already there. */
  async addrAdd(index: number, cidr: string, opts: AddrOptions = {}): Promise<void> {
    await this.#conn.request(RTM.NEWADDR, NLM_F_CREATE | NLM_F_EXCL, encodeAddr(index, cidr, opts), `addrAdd ${index} ${cidr}`);
  }
  /** Like addrAdd but replaces an existing identical address (no ExistsError). */
  async addrReplace(index: number, cidr: string, opts: AddrOptions = {}): Promise<void> {
    await this.#conn.request(RTM.NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, encodeAddr(index, cidr, opts), `addrReplace ${index} ${cidr}`);
  }
  /** NotFoundError (EADDRNOTAVAIL) if absent. */
  async addrDel(index: number, cidr: string): Promise<void> {
    await this.#conn.request(RTM.DELADDR, 0, encodeAddr(index, cidr, {}, true), `addrDel ${index} ${cidr}`);
  }
  async addrList(index?: number, family: number = AF_UNSPEC): Promise<Addr[]> {
    const msgs = await this.#conn.dump(RTM.GETADDR, dumpAddrReq(family), 'addrList');
    return msgs
      .filter((m) => m.type === RTM.NEWADDR)
      .map((m) => parseAddr(m.data))
      .filter((a) => (index === undefined || a.index === index) && (family === AF_UNSPEC || a.family === family));
  }

  // ---- routes ----------------------------------------------------------------

  /** ExistsError if an equal route exists. */
  async routeAdd(r: RouteSpec): Promise<void> {
    await this.#conn.request(RTM.NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, encodeRoute(r), `routeAdd ${r.dst}`);
  }
  routeReplace(r: RouteSpec): Promise<void> {
    return this.#one({ op: 'routeReplace', route: r });
  }
  /** NotFoundError (ESRCH) if absent. Unset fields match anything (scope nowhere, protocol 0). */
  routeDel(r: RouteSpec): Promise<void> {
    return this.#one({ op: 'routeDel', route: r });
  }
  async routeList(f: RouteFilter = {}): Promise<Route[]> {
    const family = f.family ?? AF_UNSPEC;
    const table = f.table ?? RT_TABLE.MAIN;
    const msgs = await this.#conn.dump(RTM.GETROUTE, dumpRouteReq(family), 'routeList');
    return msgs
      .filter((m) => m.type === RTM.NEWROUTE)
      .map((m) => parseRoute(m.data))
      .filter((r) => !isClonedRoute(r) &&
        (r.family === AF_INET || r.family === AF_INET6) &&
        (family === AF_UNSPEC || r.family === family) &&
        (table === 0 || r.table === table) &&
        (f.index === undefined || r.oif === f.index));
  }

  /**
   * The route the kernel picks for `ip` (`ip route get IP`, RTM_GETROUTE):
   * its oif, gateway and preferred source. Unreachable → NetlinkError
   * (ENETUNREACH, EHOSTUNREACH…).
   */
  async routeGet(ip: string): Promise<Route> {
    const msgs = await this.#conn.request(RTM.GETROUTE, 0, encodeRouteGet(ip), `routeGet ${ip}`);
    const m = msgs.find((x) => x.type === RTM.NEWROUTE);
    if (!m) throw new NetlinkError(ERRNO.ENETUNREACH, `routeGet ${ip}`, `routeGet ${ip}: no route in the kernel's answer`);
    return parseRoute(m.data);
  }

  // ---- neighbours / FDB --------------------------------------------------------

  /** `ip neigh replace` (NUD_PERMANENT unless state given). */
  neighSet(n: NeighSpec): Promise<void> {
    return this.#one({ op: 'neighSet', neigh: n });
  }
  /** NotFoundError if absent. */
  neighDel(index: number, ip: string): Promise<void> {
    return this.#one({ op: 'neighDel', index, ip });
  }
  /**
   * ARP/NDP entries (family AF_UNSPEC/AF_INET/AF_INET6), or the bridge/vxlan
   * FDB with family AF_BRIDGE.
   */
  async neighList(index?: number, family: number = AF_UNSPEC): Promise<Neigh[]> {
    const msgs = await this.#conn.dump(RTM.GETNEIGH, dumpNeighReq(family), 'neighList');
    return msgs
      .filter((m) => m.type === RTM.NEWNEIGH)
      .map((m) => parseNeigh(m.data))
      .filter((n) => (index === undefined || n.index === index) && (family === AF_UNSPEC || n.family === family));
  }
  fdbList(index?: number): Promise<Neigh[]> {
    return this.neighList(index, AF_BRIDGE);
  }
  /** `bridge fdb append` (several remotes per MAC allowed, e.g. 00:00:00:00:00:00 flood list). */
  async fdbAppend(index: number, mac: string, dstIp?: string, o: FdbOptions = {}): Promise<void> {
    await this.#conn.request(RTM.NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND, encodeFdb(index, mac, dstIp, o), `fdbAppend ${mac}`);
  }
  /** `bridge fdb replace`. */
  fdbSet(index: number, mac: string, dstIp?: string, o: FdbOptions = {}): Promise<void> {
    return this.#one({ op: 'fdbSet', index, mac, dst: dstIp, opts: o });
  }
  /** `bridge fdb del`; NotFoundError if absent. */
  fdbDel(index: number, mac: string, dstIp?: string, o: FdbOptions = {}): Promise<void> {
    return this.#one({ op: 'fdbDel', index, mac, dst: dstIp, opts: o });
  }
}

/** A handle on the calling thread's current netns. */
export function openHandle(): NetlinkHandle {
  return new NetlinkHandle(new Conn(), 'current');
}

/**
 * A handle bound to another netns (path or open NetNS). setns happens only
 * around the synchronous socket() call; the caller's thread is back in its
 * own netns when this returns. Throws NetnsNotFoundError / NotNetnsError.
 */
export function openHandleAt(netns: string | NetNS): NetlinkHandle {
  const conn = withNetns(netns, () => new Conn());
  return new NetlinkHandle(conn, typeof netns === 'string' ? netns : netns.path);
}

/** The link, or null when the kernel has none (LinkNotFoundError). */
async function orNull(p: Promise<Link>): Promise<Link | null> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof LinkNotFoundError) return null;
    throw e;
  }
}

export { NetlinkError };
