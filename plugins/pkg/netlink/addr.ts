/** Addresses: RTM_NEWADDR/DELADDR encoding and parsing. Pure: unit-tested byte by byte. */
import { attr, attrStr, attrU32, Attrs, IFADDRMSG_LEN, ifaddrmsg, parseIfaddrmsg } from './attrs';
import { IFA, IFA_F, RouteScopeName } from './constants';
import { AF_INET, AF_INET6, AF_UNSPEC } from './constants';
import { addrToBuffer, ipToBuffer } from '../ip/addr';
import { broadcastOf, parseAddrOrPrefix, prefixAddr } from '../ip/prefix';
import { optIp, scopeNum } from './msg-util';

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


/** RTM_NEWADDR / RTM_DELADDR payload for `cidr` on link `index`. */
export function encodeAddr(index: number, cidr: string, o: AddrOptions = {}, forDelete = false): Buffer[] {
  const c = parseAddrOrPrefix(cidr);
  const family = c.v6 ? AF_INET6 : AF_INET;
  const flags = (o.noDad ? IFA_F.NODAD : 0) | (o.noPrefixRoute ? IFA_F.NOPREFIXROUTE : 0);
  const ip = addrToBuffer(prefixAddr(c));
  const parts = [ifaddrmsg({ family, prefixLen: c.prefixLen, flags: flags & 0xff, scope: scopeNum(o.scope, 0), index })];
  parts.push(attr(IFA.LOCAL, ip));
  if (family === AF_INET) {
    parts.push(attr(IFA.ADDRESS, ip));
    if (!forDelete && o.broadcast !== false && (o.broadcast !== undefined || c.prefixLen < 31)) {
      parts.push(attr(IFA.BROADCAST, ipToBuffer(o.broadcast || broadcastOf(c))));
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


export const dumpAddrReq = (family = AF_UNSPEC): Buffer[] => [ifaddrmsg({ family })];
