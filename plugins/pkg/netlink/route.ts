/** Routes: RTM_NEWROUTE/DELROUTE encoding and parsing. Pure: unit-tested byte by byte. */
import { attr, attrNested, attrU32, Attrs, parseRtmsg, RTMSG_LEN, rtmsg } from './attrs';
import { RT_SCOPE, RT_TABLE, RTA, RTAX, RTM_F_CLONED, RTN, RTNH_F_ONLINK, RTPROT, RouteScopeName, RouteTypeName } from './constants';
import { AF_INET, AF_INET6, AF_UNSPEC } from './constants';
import { ipToBuffer } from '../ip/addr';
import { parseAddrOrPrefix, prefixIP } from '../ip/prefix';
import { ipFamily, optIp, scopeNum } from './msg-util';

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
  const c = parseAddrOrPrefix(spec.dst);
  return { family: c.v6 ? AF_INET6 : AF_INET, ip: prefixIP(c), len: c.prefixLen };
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


export const dumpRouteReq = (family = AF_UNSPEC): Buffer[] => [rtmsg({ family })];

/** RTM_GETROUTE for one destination address (`ip route get IP`): the kernel answers the route it would use. */
export function encodeRouteGet(ip: string): Buffer[] {
  const family = ipFamily(ip);
  return [rtmsg({ family, dstLen: family === AF_INET6 ? 128 : 32 }), attr(RTA.DST, ipToBuffer(ip))];
}
