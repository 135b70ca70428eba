/**
 * Pure rtnetlink message encoders and parsers (no sockets): everything here is
 * unit-tested byte by byte. The handle (handle.ts) only sends what these build.
 */
import {
  attr, attrBe16, attrFlag, attrNested, attrStr, attrU16, attrU32, attrU8, Attrs, IFADDRMSG_LEN,
  ifaddrmsg, IFINFOMSG_LEN, ifinfomsg, NDMSG_LEN, ndmsg, parseIfaddrmsg, parseIfinfomsg, parseNdmsg,
  parseRtmsg, RTMSG_LEN, rtmsg,
} from './attrs';
import {
  BRIDGE_FLAGS_MASTER, BRIDGE_FLAGS_SELF, BRIDGE_VLAN_INFO, IFA, IFA_F, IFF, IFLA, IFLA_BR, IFLA_BRIDGE, IFLA_BRPORT,
  IFLA_INFO, IFLA_MACVLAN, IFLA_VLAN, IFLA_VXLAN, MACVLAN_MODE, MacvlanMode, NDA, NTF, NUD, OPERSTATES, OperState,
  RT_SCOPE, RT_TABLE, RTA, RTAX, RTM_F_CLONED, RTN, RTNH_F_ONLINK, RTPROT, RouteScopeName, RouteTypeName, VETH_INFO_PEER,
} from './constants';
import {
  AF_BRIDGE, AF_INET, AF_INET6, AF_UNSPEC, broadcastOf, bufferToIp, bufferToMac, ipFamily, ipToBuffer, macToBuffer, parseCidr,
} from './ipaddr';

/** A network namespace given as an open NetNS (anything with an fd) or a raw fd. */
export type NetnsRef = { readonly fd: number } | number;
const fdOf = (n: NetnsRef): number => (typeof n === 'number' ? n : n.fd);

// ---- links ---------------------------------------------------------------------

interface LinkCommon {
  name: string;
  mtu?: number;
  mac?: string;
  txQueueLen?: number;
}
export interface VethSpec extends LinkCommon {
  kind: 'veth';
  peerName: string;
  /** create the peer directly in this netns (IFLA_NET_NS_FD in VETH_INFO_PEER) */
  peerNetns?: NetnsRef;
  peerMac?: string;
  /** defaults to mtu */
  peerMtu?: number;
}
export interface BridgeSpec extends LinkCommon {
  kind: 'bridge';
  vlanFiltering?: boolean;
  vlanDefaultPvid?: number;
  stp?: boolean;
  /** centiseconds, like iproute2's ageing_time */
  ageingTime?: number;
}
export interface VxlanSpec extends LinkCommon {
  kind: 'vxlan';
  vni: number;
  /** UDP destination port (the kernel default is 8472; IANA is 4789) */
  port?: number;
  local?: string;
  group?: string;
  /** underlay device ifindex */
  srcLink?: number;
  learning?: boolean;
  gbp?: boolean;
  ttl?: number;
  tos?: number;
  udpCsum?: boolean;
  /** seconds */
  ageing?: number;
}
export interface MacvlanSpec extends LinkCommon {
  kind: 'macvlan';
  parentIndex: number;
  mode: MacvlanMode;
}
/** 802.1Q sub-interface (not available in every kernel). */
export interface VlanSpec extends LinkCommon {
  kind: 'vlan';
  parentIndex: number;
  vlanId: number;
  protocol?: '802.1Q' | '802.1ad';
}
/** dummy link (not available in every kernel). */
export interface DummySpec extends LinkCommon {
  kind: 'dummy';
}
export type LinkSpec = VethSpec | BridgeSpec | VxlanSpec | MacvlanSpec | VlanSpec | DummySpec;

function commonAttrs(s: { name?: string; mtu?: number; mac?: string; txQueueLen?: number }): Buffer[] {
  const a: Buffer[] = [];
  if (s.name !== undefined) a.push(attrStr(IFLA.IFNAME, s.name));
  if (s.mtu !== undefined) a.push(attrU32(IFLA.MTU, s.mtu));
  if (s.mac !== undefined) a.push(attr(IFLA.ADDRESS, macToBuffer(s.mac)));
  if (s.txQueueLen !== undefined) a.push(attrU32(IFLA.TXQLEN, s.txQueueLen));
  return a;
}

/** IFLA_INFO_DATA children for a link kind (empty when the kind has none). */
export function encodeInfoData(spec: LinkSpec): Buffer[] {
  switch (spec.kind) {
    case 'veth': {
      const peer = [
        ifinfomsg(),
        ...commonAttrs({ name: spec.peerName, mtu: spec.peerMtu ?? spec.mtu, mac: spec.peerMac }),
      ];
      if (spec.peerNetns !== undefined) peer.push(attrU32(IFLA.NET_NS_FD, fdOf(spec.peerNetns)));
      return [attr(VETH_INFO_PEER, Buffer.concat(peer))];
    }
    case 'bridge': {
      const d: Buffer[] = [];
      if (spec.ageingTime !== undefined) d.push(attrU32(IFLA_BR.AGEING_TIME, spec.ageingTime));
      if (spec.stp !== undefined) d.push(attrU32(IFLA_BR.STP_STATE, spec.stp ? 1 : 0));
      if (spec.vlanFiltering !== undefined) d.push(attrU8(IFLA_BR.VLAN_FILTERING, spec.vlanFiltering ? 1 : 0));
      if (spec.vlanDefaultPvid !== undefined) d.push(attrU16(IFLA_BR.VLAN_DEFAULT_PVID, spec.vlanDefaultPvid));
      return d;
    }
    case 'vxlan': {
      const d: Buffer[] = [attrU32(IFLA_VXLAN.ID, spec.vni)];
      if (spec.group !== undefined) {
        d.push(attr(ipFamily(spec.group) === AF_INET ? IFLA_VXLAN.GROUP : IFLA_VXLAN.GROUP6, ipToBuffer(spec.group)));
      }
      if (spec.srcLink !== undefined) d.push(attrU32(IFLA_VXLAN.LINK, spec.srcLink));
      if (spec.local !== undefined) {
        d.push(attr(ipFamily(spec.local) === AF_INET ? IFLA_VXLAN.LOCAL : IFLA_VXLAN.LOCAL6, ipToBuffer(spec.local)));
      }
      if (spec.ttl !== undefined) d.push(attrU8(IFLA_VXLAN.TTL, spec.ttl));
      if (spec.tos !== undefined) d.push(attrU8(IFLA_VXLAN.TOS, spec.tos));
      if (spec.learning !== undefined) d.push(attrU8(IFLA_VXLAN.LEARNING, spec.learning ? 1 : 0));
      if (spec.ageing !== undefined) d.push(attrU32(IFLA_VXLAN.AGEING, spec.ageing));
      if (spec.port !== undefined) d.push(attrBe16(IFLA_VXLAN.PORT, spec.port));
      if (spec.udpCsum !== undefined) d.push(attrU8(IFLA_VXLAN.UDP_CSUM, spec.udpCsum ? 1 : 0));
      if (spec.gbp) d.push(attrFlag(IFLA_VXLAN.GBP));
      return d;
    }
    case 'macvlan':
      return [attrU32(IFLA_MACVLAN.MODE, MACVLAN_MODE[spec.mode])];
    case 'vlan': {
      const d = [attrU16(IFLA_VLAN.ID, spec.vlanId)];
      if (spec.protocol) {
        const p = Buffer.alloc(2);
        p.writeUInt16BE(spec.protocol === '802.1ad' ? 0x88a8 : 0x8100);
        d.push(attr(IFLA_VLAN.PROTOCOL, p));
      }
      return d;
    }
    case 'dummy':
      return [];
  }
}

/** IFLA_LINKINFO { IFLA_INFO_KIND, IFLA_INFO_DATA? }. */
export function encodeLinkInfo(spec: LinkSpec): Buffer {
  const data = encodeInfoData(spec);
  const children = [attrStr(IFLA_INFO.KIND, spec.kind)];
  if (data.length) children.push(attrNested(IFLA_INFO.DATA, data));
  return attrNested(IFLA.LINKINFO, children);
}

/** Payload of RTM_NEWLINK (send with NLM_F_CREATE|NLM_F_EXCL) for a new link. */
export function encodeLinkAdd(spec: LinkSpec): Buffer[] {
  const parts = [ifinfomsg(), ...commonAttrs(spec)];
  if (spec.kind === 'macvlan' || spec.kind === 'vlan') parts.push(attrU32(IFLA.LINK, spec.parentIndex));
  parts.push(encodeLinkInfo(spec));
  return parts;
}

/** RTM_SETLINK payload changing attributes of link `index`. */
export interface LinkChange {
  up?: boolean;
  promisc?: boolean;
  mtu?: number;
  mac?: string;
  name?: string;
  /** 0 = release from master */
  master?: number;
  netns?: NetnsRef;
}
export function encodeLinkSet(index: number, c: LinkChange): Buffer[] {
  let flags = 0, change = 0;
  if (c.up !== undefined) { change |= IFF.UP; if (c.up) flags |= IFF.UP; }
  if (c.promisc !== undefined) { change |= IFF.PROMISC; if (c.promisc) flags |= IFF.PROMISC; }
  const parts = [ifinfomsg({ index, flags, change }), ...commonAttrs({ name: c.name, mtu: c.mtu, mac: c.mac })];
  if (c.master !== undefined) parts.push(attrU32(IFLA.MASTER, c.master));
  if (c.netns !== undefined) parts.push(attrU32(IFLA.NET_NS_FD, fdOf(c.netns)));
  return parts;
}

/** Bridge port options (IFLA_PROTINFO, AF_BRIDGE, NLA_F_NESTED as the kernel requires). */
export interface BrportOptions {
  hairpin?: boolean;
  learning?: boolean;
  isolated?: boolean;
  unicastFlood?: boolean;
  neighSuppress?: boolean;
}
export function encodeBrportSet(index: number, o: BrportOptions): Buffer[] {
  const a: Buffer[] = [];
  if (o.hairpin !== undefined) a.push(attrU8(IFLA_BRPORT.MODE, o.hairpin ? 1 : 0));
  if (o.learning !== undefined) a.push(attrU8(IFLA_BRPORT.LEARNING, o.learning ? 1 : 0));
  if (o.unicastFlood !== undefined) a.push(attrU8(IFLA_BRPORT.UNICAST_FLOOD, o.unicastFlood ? 1 : 0));
  if (o.neighSuppress !== undefined) a.push(attrU8(IFLA_BRPORT.NEIGH_SUPPRESS, o.neighSuppress ? 1 : 0));
  if (o.isolated !== undefined) a.push(attrU8(IFLA_BRPORT.ISOLATED, o.isolated ? 1 : 0));
  return [ifinfomsg({ family: AF_BRIDGE, index }), attrNested(IFLA.PROTINFO, a, true)];
}

export interface BridgeVlanOptions {
  /** ingress untagged traffic gets this vid */
  pvid?: boolean;
  /** egress untagged */
  untagged?: boolean;
  /** operate on the device itself (BRIDGE_FLAGS_SELF), e.g. the bridge's own port */
  self?: boolean;
  /** operate on the master bridge (BRIDGE_FLAGS_MASTER; the kernel's default) */
  master?: boolean;
}
/**
 * Payload of `bridge vlan add|del dev <ifindex> vid <vid> [pvid] [untagged] [self] [master]`:
 * send as RTM_SETLINK (add) or RTM_DELLINK (del).
 */
export function encodeBridgeVlan(index: number, vid: number, o: BridgeVlanOptions = {}): Buffer[] {
  if (!Number.isInteger(vid) || vid < 1 || vid > 4094) throw new RangeError(`invalid vlan id ${vid}`);
  const spec: Buffer[] = [];
  const bflags = (o.self ? BRIDGE_FLAGS_SELF : 0) | (o.master ? BRIDGE_FLAGS_MASTER : 0);
  if (bflags) spec.push(attrU16(IFLA_BRIDGE.FLAGS, bflags));
  const info = Buffer.alloc(4);
  info.writeUInt16LE((o.pvid ? BRIDGE_VLAN_INFO.PVID : 0) | (o.untagged ? BRIDGE_VLAN_INFO.UNTAGGED : 0), 0);
  info.writeUInt16LE(vid, 2);
  spec.push(attr(IFLA_BRIDGE.VLAN_INFO, info));
  return [ifinfomsg({ family: AF_BRIDGE, index }), attrNested(IFLA.AF_SPEC, spec)];
}

/** RTM_GETLINK by name or index (non-dump). */
export function encodeLinkGet(by: { index?: number; name?: string }): Buffer[] {
  const parts = [ifinfomsg({ index: by.index ?? 0 })];
  if (by.name !== undefined) parts.push(attrStr(IFLA.IFNAME, by.name));
  return parts;
}

export interface VxlanInfo {
  vni: number;
  port?: number;
  local?: string;
  group?: string;
  srcLink?: number;
  learning?: boolean;
  gbp: boolean;
  ttl?: number;
  tos?: number;
  udpCsum?: boolean;
  ageing?: number;
}
export interface BridgeInfo {
  vlanFiltering?: boolean;
  vlanDefaultPvid?: number;
  stp?: boolean;
  ageingTime?: number;
}
export interface BrportInfo {
  hairpin?: boolean;
  learning?: boolean;
  isolated?: boolean;
  state?: number;
}

export interface Link {
  index: number;
  name: string;
  /** IFLA_INFO_KIND ('veth', 'bridge', 'vxlan', …); '' for devices without one (lo, physical) */
  kind: string;
  mtu: number;
  /** lowercase aa:bb:cc:dd:ee:ff ('' if the device has no L2 address) */
  mac: string;
  flags: number;
  up: boolean;
  lowerUp: boolean;
  promisc: boolean;
  /** ifindex of the master (bridge), 0 when none */
  masterIndex: number;
  operstate: OperState;
  txQueueLen?: number;
  /** IFLA_LINK: parent ifindex (macvlan/vlan) or the veth peer's ifindex (maybe in another netns) */
  parentIndex?: number;
  /** veth only: the peer's ifindex (= parentIndex) */
  peerIndex?: number;
  /** netnsid (in this netns's numbering) of the netns holding parentIndex/peer; absent if same netns */
  linkNetnsId?: number;
  alias?: string;
  slaveKind?: string;
  vxlan?: VxlanInfo;
  bridge?: BridgeInfo;
  brport?: BrportInfo;
  macvlan?: { mode: MacvlanMode | number };
  vlan?: { id: number };
}

function optIp(a: Attrs, t: number): string | undefined {
  const v = a.get(t);
  return v && (v.length === 4 || v.length === 16) ? bufferToIp(v) : undefined;
}
const bool = (v: number | undefined): boolean | undefined => (v === undefined ? undefined : v !== 0);

/** Parses an RTM_NEWLINK payload. */
export function parseLink(data: Buffer): Link {
  const h = parseIfinfomsg(data);
  const a = new Attrs(data, IFINFOMSG_LEN);
  const addr = a.get(IFLA.ADDRESS);
  const link: Link = {
    index: h.index,
    name: a.str(IFLA.IFNAME) ?? '',
    kind: '',
    mtu: a.u32(IFLA.MTU) ?? 0,
    mac: addr && addr.length > 0 ? bufferToMac(addr) : '',
    flags: h.flags,
    up: (h.flags & IFF.UP) !== 0,
    lowerUp: (h.flags & IFF.LOWER_UP) !== 0,
    promisc: (h.flags & IFF.PROMISC) !== 0,
    masterIndex: a.u32(IFLA.MASTER) ?? 0,
    operstate: OPERSTATES[a.u8(IFLA.OPERSTATE) ?? 0] ?? 'unknown',
  };
  const txq = a.u32(IFLA.TXQLEN);
  if (txq !== undefined) link.txQueueLen = txq;
  const parent = a.u32(IFLA.LINK);
  const nsid = a.s32(IFLA.LINK_NETNSID);
  if (nsid !== undefined) link.linkNetnsId = nsid;
  // IFLA_LINK equals the own index for plain devices; for a veth whose peer
  // lives in another netns it may coincide, so keep it when a netnsid is given.
  if (parent !== undefined && parent !== 0 && (parent !== h.index || nsid !== undefined)) link.parentIndex = parent;
  const alias = a.str(IFLA.IFALIAS);
  if (alias) link.alias = alias;
  const li = a.nested(IFLA.LINKINFO);
  if (li) {
    link.kind = li.str(IFLA_INFO.KIND) ?? '';
    if (link.kind === 'veth' && link.parentIndex !== undefined) link.peerIndex = link.parentIndex;
    const d = li.nested(IFLA_INFO.DATA);
    if (d) {
      if (link.kind === 'vxlan') {
        link.vxlan = {
          vni: d.u32(IFLA_VXLAN.ID) ?? 0,
          port: d.be16(IFLA_VXLAN.PORT),
          local: optIp(d, IFLA_VXLAN.LOCAL) ?? optIp(d, IFLA_VXLAN.LOCAL6),
          group: optIp(d, IFLA_VXLAN.GROUP) ?? optIp(d, IFLA_VXLAN.GROUP6),
          srcLink: d.u32(IFLA_VXLAN.LINK),
          learning: bool(d.u8(IFLA_VXLAN.LEARNING)),
          gbp: d.has(IFLA_VXLAN.GBP),
          ttl: d.u8(IFLA_VXLAN.TTL),
          tos: d.u8(IFLA_VXLAN.TOS),
          udpCsum: bool(d.u8(IFLA_VXLAN.UDP_CSUM)),
          ageing: d.u32(IFLA_VXLAN.AGEING),
        };
        if (link.vxlan.srcLink === 0) delete link.vxlan.srcLink;
      } else if (link.kind === 'bridge') {
        link.bridge = {
          vlanFiltering: bool(d.u8(IFLA_BR.VLAN_FILTERING)),
          vlanDefaultPvid: d.u16(IFLA_BR.VLAN_DEFAULT_PVID),
          stp: bool(d.u32(IFLA_BR.STP_STATE)),
          ageingTime: d.u32(IFLA_BR.AGEING_TIME),
        };
      } else if (link.kind === 'macvlan') {
        const m = d.u32(IFLA_MACVLAN.MODE) ?? 0;
        const name = (Object.keys(MACVLAN_MODE) as MacvlanMode[]).find((k) => MACVLAN_MODE[k] === m);
        link.macvlan = { mode: name ?? m };
      } else if (link.kind === 'vlan') {
        link.vlan = { id: d.u16(IFLA_VLAN.ID) ?? 0 };
      }
    }
    const sk = li.str(IFLA_INFO.SLAVE_KIND);
    if (sk) {
      link.slaveKind = sk;
      const sd = li.nested(IFLA_INFO.SLAVE_DATA);
      if (sk === 'bridge' && sd) {
        link.brport = {
          hairpin: bool(sd.u8(IFLA_BRPORT.MODE)),
          learning: bool(sd.u8(IFLA_BRPORT.LEARNING)),
          isolated: bool(sd.u8(IFLA_BRPORT.ISOLATED)),
          state: sd.u8(IFLA_BRPORT.STATE),
        };
      }
    }
  }
  return link;
}

// ---- addresses -----------------------------------------------------------------

export interface AddrOptions {
  /** IFA_F_NODAD (v6): skip duplicate address detection */
  noDad?: boolean;
  /** IFA_F_NOPREFIXROUTE: don't add the prefix route */
  noPrefixRoute?: boolean;
  scope?: RouteScopeName | number;
  /** IPv4 broadcast; default computed for prefixes shorter than /31 */
  broadcast?: string | false;
  label?: string;
}

export interface Addr {
  index: number;
  family: number;
  address: string;
  prefixLen: number;
  /** "address/prefixLen" */
  cidr: string;
  scope: number;
  flags: number;
  tentative: boolean;
  dadfailed: boolean;
  permanent: boolean;
  noDad: boolean;
  noPrefixRoute: boolean;
  broadcast?: string;
  label?: string;
}

const scopeNum = (s: RouteScopeName | number | undefined, dflt: number): number =>
  s === undefined ? dflt : typeof s === 'number' ? s : RT_SCOPE[s];

/** RTM_NEWADDR / RTM_DELADDR payload for `cidr` on link `index`. */
export function encodeAddr(index: number, cidr: string, o: AddrOptions = {}, forDelete = false): Buffer[] {
  const c = parseCidr(cidr);
  const flags = (o.noDad ? IFA_F.NODAD : 0) | (o.noPrefixRoute ? IFA_F.NOPREFIXROUTE : 0);
  const ip = ipToBuffer(c.ip);
  const parts = [ifaddrmsg({ family: c.family, prefixLen: c.prefixLen, flags: flags & 0xff, scope: scopeNum(o.scope, 0), index })];
  parts.push(attr(IFA.LOCAL, ip));
  if (c.family === AF_INET) {
    parts.push(attr(IFA.ADDRESS, ip));
    if (!forDelete && o.broadcast !== false && (o.broadcast !== undefined || c.prefixLen < 31)) {
      parts.push(attr(IFA.BROADCAST, ipToBuffer(o.broadcast || broadcastOf(c.ip, c.prefixLen))));
    }
    if (o.label) parts.push(attrStr(IFA.LABEL, o.label));
  }
  if (flags > 0xff) parts.push(attrU32(IFA.FLAGS, flags));
  return parts;
}

export function parseAddr(data: Buffer): Addr {
  const h = parseIfaddrmsg(data);
  const a = new Attrs(data, IFADDRMSG_LEN);
  const ip = optIp(a, IFA.LOCAL) ?? optIp(a, IFA.ADDRESS) ?? '';
  const flags = a.u32(IFA.FLAGS) ?? h.flags;
  const r: Addr = {
    index: h.index, family: h.family, address: ip, prefixLen: h.prefixLen, cidr: `${ip}/${h.prefixLen}`,
    scope: h.scope, flags,
    tentative: (flags & IFA_F.TENTATIVE) !== 0, dadfailed: (flags & IFA_F.DADFAILED) !== 0,
    permanent: (flags & IFA_F.PERMANENT) !== 0, noDad: (flags & IFA_F.NODAD) !== 0,
    noPrefixRoute: (flags & IFA_F.NOPREFIXROUTE) !== 0,
  };
  const brd = optIp(a, IFA.BROADCAST);
  if (brd) r.broadcast = brd;
  const label = a.str(IFA.LABEL);
  if (label) r.label = label;
  return r;
}

// ---- routes --------------------------------------------------------------------

export interface RouteSpec {
  /** CIDR; "0.0.0.0/0" / "::/0" (or "default" + family) for the default route */
  dst: string;
  /** needed only when dst is "default" */
  family?: number;
  gw?: string;
  /** output interface index */
  oif?: number;
  /** default: 'link' when there is no gateway (iproute2), else 'universe'; host for type local */
  scope?: RouteScopeName | number;
  /** default main (254) */
  table?: number;
  /** RTA_PRIORITY */
  metric?: number;
  mtu?: number;
  advmss?: number;
  onlink?: boolean;
  /** preferred source (RTA_PREFSRC) */
  src?: string;
  /** default 'boot' like iproute2 */
  protocol?: keyof typeof RTPROT | number;
  /** default 'unicast' */
  type?: RouteTypeName;
}

export interface Route {
  family: number;
  /** CIDR; the default route is 0.0.0.0/0 or ::/0 */
  dst: string;
  gw?: string;
  oif?: number;
  scope: number;
  table: number;
  metric: number;
  mtu?: number;
  advmss?: number;
  onlink: boolean;
  src?: string;
  protocol: number;
  type: RouteTypeName | number;
  flags: number;
}

function routeDst(spec: RouteSpec): { family: number; ip?: string; len: number } {
  if (spec.dst === 'default') {
    const family = spec.family ?? (spec.gw ? ipFamily(spec.gw) : AF_INET);
    return { family, len: 0 };
  }
  const c = parseCidr(spec.dst);
  return { family: c.family, ip: c.ip, len: c.prefixLen };
}

/** RTM_NEWROUTE / RTM_DELROUTE payload. */
export function encodeRoute(spec: RouteSpec, forDelete = false): Buffer[] {
  const d = routeDst(spec);
  const table = spec.table ?? RT_TABLE.MAIN;
  const type = RTN[spec.type ?? 'unicast'];
  const defScope = forDelete ? RT_SCOPE.nowhere
    : spec.type === 'local' ? RT_SCOPE.host
    : !spec.gw && (spec.type ?? 'unicast') === 'unicast' ? RT_SCOPE.link : RT_SCOPE.universe;
  const protocol = spec.protocol === undefined ? (forDelete ? 0 : RTPROT.boot)
    : typeof spec.protocol === 'number' ? spec.protocol : RTPROT[spec.protocol];
  const parts = [rtmsg({
    family: d.family, dstLen: d.len, table: table < 256 ? table : RT_TABLE.UNSPEC, protocol,
    scope: scopeNum(spec.scope, defScope), type, flags: spec.onlink ? RTNH_F_ONLINK : 0,
  })];
  if (d.ip !== undefined && d.len > 0) parts.push(attr(RTA.DST, ipToBuffer(d.ip)));
  if (spec.src) parts.push(attr(RTA.PREFSRC, ipToBuffer(spec.src)));
  if (spec.gw) {
    if (ipFamily(spec.gw) !== d.family) throw new TypeError(`gateway ${spec.gw} family differs from ${spec.dst}`);
    parts.push(attr(RTA.GATEWAY, ipToBuffer(spec.gw)));
  }
  if (spec.oif !== undefined) parts.push(attrU32(RTA.OIF, spec.oif));
  if (spec.metric !== undefined) parts.push(attrU32(RTA.PRIORITY, spec.metric));
  parts.push(attrU32(RTA.TABLE, table));
  const metrics: Buffer[] = [];
  if (spec.mtu !== undefined) metrics.push(attrU32(RTAX.MTU, spec.mtu));
  if (spec.advmss !== undefined) metrics.push(attrU32(RTAX.ADVMSS, spec.advmss));
  if (metrics.length) parts.push(attrNested(RTA.METRICS, metrics));
  return parts;
}

export function parseRoute(data: Buffer): Route {
  const h = parseRtmsg(data);
  const a = new Attrs(data, RTMSG_LEN);
  const zero = h.family === AF_INET6 ? '::' : '0.0.0.0';
  const dst = optIp(a, RTA.DST) ?? zero;
  const typeName = (Object.keys(RTN) as RouteTypeName[]).find((k) => RTN[k] === h.type);
  const r: Route = {
    family: h.family, dst: `${dst}/${h.dstLen}`, scope: h.scope, table: a.u32(RTA.TABLE) ?? h.table,
    metric: a.u32(RTA.PRIORITY) ?? 0, onlink: (h.flags & RTNH_F_ONLINK) !== 0, protocol: h.protocol,
    type: typeName ?? h.type, flags: h.flags,
  };
  const gw = optIp(a, RTA.GATEWAY);
  if (gw) r.gw = gw;
  const oif = a.u32(RTA.OIF);
  if (oif !== undefined) r.oif = oif;
  const src = optIp(a, RTA.PREFSRC);
  if (src) r.src = src;
  const m = a.nested(RTA.METRICS);
  if (m) {
    const mtu = m.u32(RTAX.MTU);
    if (mtu !== undefined) r.mtu = mtu;
    const advmss = m.u32(RTAX.ADVMSS);
    if (advmss !== undefined) r.advmss = advmss;
  }
  return r;
}

export const isClonedRoute = (r: Route): boolean => (r.flags & RTM_F_CLONED) !== 0;

// ---- neighbours / FDB ------------------------------------------------------------

export interface NeighSpec {
  index: number;
  ip: string;
  mac: string;
  /** NUD_* state; default NUD_PERMANENT */
  state?: number;
}

export interface Neigh {
  index: number;
  family: number;
  ip?: string;
  mac?: string;
  state: number;
  flags: number;
  type: number;
  permanent: boolean;
  /** NTF_SELF (FDB entry on the device itself, e.g. vxlan) */
  self: boolean;
  /** NTF_MASTER */
  master: boolean;
  masterIndex?: number;
  vni?: number;
  port?: number;
  vlan?: number;
}

/** RTM_NEWNEIGH / RTM_DELNEIGH payload for an ARP/NDP entry. */
export function encodeNeigh(n: NeighSpec, forDelete = false): Buffer[] {
  const parts = [ndmsg({ family: ipFamily(n.ip), index: n.index, state: forDelete ? 0 : n.state ?? NUD.PERMANENT })];
  parts.push(attr(NDA.DST, ipToBuffer(n.ip)));
  if (!forDelete) parts.push(attr(NDA.LLADDR, macToBuffer(n.mac)));
  return parts;
}

export interface FdbOptions {
  /** default true: NTF_SELF (the device's own table: vxlan remote) */
  self?: boolean;
  /** NTF_MASTER: the bridge's table */
  master?: boolean;
  vni?: number;
  port?: number;
  vlan?: number;
}

/** AF_BRIDGE RTM_NEWNEIGH / RTM_DELNEIGH payload (bridge fdb …) */
export function encodeFdb(index: number, mac: string, dstIp?: string, o: FdbOptions = {}): Buffer[] {
  const flags = (o.self === false ? 0 : NTF.SELF) | (o.master ? NTF.MASTER : 0);
  const parts = [ndmsg({ family: AF_BRIDGE, index, state: NUD.PERMANENT, flags })];
  parts.push(attr(NDA.LLADDR, macToBuffer(mac)));
  if (dstIp) parts.push(attr(NDA.DST, ipToBuffer(dstIp)));
  if (o.vlan !== undefined) parts.push(attrU16(NDA.VLAN, o.vlan));
  if (o.port !== undefined) parts.push(attrBe16(NDA.PORT, o.port));
  if (o.vni !== undefined) parts.push(attrU32(NDA.VNI, o.vni));
  return parts;
}

export function parseNeigh(data: Buffer): Neigh {
  const h = parseNdmsg(data);
  const a = new Attrs(data, NDMSG_LEN);
  const n: Neigh = {
    index: h.index, family: h.family, state: h.state, flags: h.flags, type: h.type,
    permanent: (h.state & NUD.PERMANENT) !== 0, self: (h.flags & NTF.SELF) !== 0, master: (h.flags & NTF.MASTER) !== 0,
  };
  const ip = optIp(a, NDA.DST);
  if (ip) n.ip = ip;
  const ll = a.get(NDA.LLADDR);
  if (ll && ll.length === 6) n.mac = bufferToMac(ll);
  const mi = a.u32(NDA.MASTER);
  if (mi !== undefined) n.masterIndex = mi;
  const vni = a.u32(NDA.VNI);
  if (vni !== undefined) n.vni = vni;
  const port = a.be16(NDA.PORT);
  if (port !== undefined) n.port = port;
  const vlan = a.u16(NDA.VLAN);
  if (vlan !== undefined) n.vlan = vlan;
  return n;
}

/** Empty dump request headers. */
export const dumpLinkReq = (family = AF_UNSPEC): Buffer[] => [ifinfomsg({ family })];
export const dumpAddrReq = (family = AF_UNSPEC): Buffer[] => [ifaddrmsg({ family })];
export const dumpRouteReq = (family = AF_UNSPEC): Buffer[] => [rtmsg({ family })];
export const dumpNeighReq = (family = AF_UNSPEC): Buffer[] => [ndmsg({ family })];
