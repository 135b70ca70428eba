/** Links: one type per kind (veth, bridge, vxlan, macvlan, vlan, dummy) used to create, and the parsed Link. Pure: unit-tested byte by byte. */
import { attr, attrBe16, attrFlag, attrNested, attrStr, attrU16, attrU32, attrU8, Attrs, IFINFOMSG_LEN, ifinfomsg, parseIfinfomsg } from './attrs';
import { BRIDGE_FLAGS_MASTER, BRIDGE_FLAGS_SELF, BRIDGE_VLAN_INFO, IFF, IFLA, IFLA_BR, IFLA_BRIDGE, IFLA_BRPORT, IFLA_INFO, IFLA_MACVLAN, IFLA_VLAN, IFLA_VXLAN, MACVLAN_MODE, MacvlanMode, OPERSTATES, OperState, VETH_INFO_PEER } from './constants';
import { AF_BRIDGE, AF_INET, AF_UNSPEC } from './constants';
import { ipToBuffer } from '../ip/addr';
import { bufferToMac, macToBuffer } from '../ip/mac';
import { type NetnsRef, fdOf, ipFamily, optIp } from './msg-util';

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
  /** IFLA_TXQLEN of the peer; defaults to txQueueLen */
  peerTxQueueLen?: number;
}
export interface BridgeSpec extends LinkCommon {
  kind: 'bridge';
  vlanFiltering?: boolean;
  vlanDefaultPvid?: number;
  stp?: boolean;
  /** centiseconds, like iproute2's ageing_time */
  ageingTime?: number;
}
/** A vxlan's attributes, as created and as read back (Link.vxlan; gbp then always set). */
export interface VxlanAttrs {
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
export interface VxlanSpec extends LinkCommon, VxlanAttrs {
  kind: 'vxlan';
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
        ...commonAttrs({ name: spec.peerName, mtu: spec.peerMtu ?? spec.mtu, mac: spec.peerMac, txQueueLen: spec.peerTxQueueLen ?? spec.txQueueLen }),
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

export interface VxlanInfo extends VxlanAttrs {
  gbp: boolean;
}
export type BridgeInfo = Omit<BridgeSpec, 'kind' | keyof LinkCommon>;
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


export const dumpLinkReq = (family = AF_UNSPEC): Buffer[] => [ifinfomsg({ family })];
