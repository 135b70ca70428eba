/** Neighbours and FDB entries: RTM_NEWNEIGH/DELNEIGH encoding and parsing. Pure: unit-tested byte by byte. */
import { attr, attrBe16, attrU16, attrU32, Attrs, NDMSG_LEN, ndmsg, parseNdmsg } from './attrs';
import { NDA, NTF, NUD } from './constants';
import { AF_BRIDGE, AF_UNSPEC } from './constants';
import { ipToBuffer } from '../ip/addr';
import { bufferToMac, macToBuffer } from '../ip/mac';
import { ipFamily, optIp } from './msg-util';

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

export const dumpNeighReq = (family = AF_UNSPEC): Buffer[] => [ndmsg({ family })];
