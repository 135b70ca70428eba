/**
 * One address range of a range set (host-local's `Range`): a subnet, an
 * inclusive [start, end] window inside it and a gateway. Canonicalisation
 * follows the reference: gateway defaults to subnet+1, rangeStart to
 * subnet+1, rangeEnd to the last address (IPv4: the one before the
 * broadcast). Unlike the reference, the IPv4 network and broadcast
 * addresses are never handed out even when rangeStart/rangeEnd include them.
 */
import { CniError, ErrCode } from '../../../pkg/cni/errors';
import { type Addr, type Family, addrBits, formatIP, formatPrefix, maskOf, parseCIDR, parseIP } from '../../../pkg/ip';

/** A range as written in the config (JSON strings). */
export interface RangeSpec {
  subnet?: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

export interface Range {
  family: Family;
  /** network address (host bits zero) */
  network: bigint;
  prefix: number;
  /** first and last address handed out, inclusive */
  start: bigint;
  end: bigint;
  gateway: bigint;
  /** where the range came from in the config, for error messages */
  field: string;
}

const bad = (field: string, msg: string) => new CniError(ErrCode.InvalidNetworkConfig, `invalid network config: field \`${field}\`: ${msg}`);

const text = (family: Family, n: bigint): string => formatIP({ v6: family === 6, n });

export const rangeSubnetText = (r: Range): string => `${text(r.family, r.network)}/${r.prefix}`;
export const rangeText = (r: Range): string => `${text(r.family, r.start)}-${text(r.family, r.end)}`;

/** The subnet's last address (the IPv4 broadcast). */
export function lastOfSubnet(family: Family, network: bigint, prefix: number): bigint {
  return network | (((1n << BigInt(addrBits(family === 6))) - 1n) ^ maskOf(prefix, family === 6));
}

function inSubnet(r: { family: Family; network: bigint; prefix: number }, ip: Addr): boolean {
  return ip.v6 === (r.family === 6) && (ip.n & maskOf(r.prefix, ip.v6)) === r.network;
}

/**
 * Validates and fills one range. `field` is its config path
 * (`ipam.ranges[1][0]`), used in every error.
 */
export function canonicalizeRange(spec: RangeSpec, field: string): Range {
  if (spec.subnet === undefined || spec.subnet === '') throw bad(`${field}.subnet`, 'missing subnet');
  const cidr = parseCIDR(spec.subnet);
  if (!cidr) throw bad(`${field}.subnet`, `invalid CIDR "${spec.subnet.slice(0, 64)}"`);
  const family: Family = cidr.v6 ? 6 : 4;
  const bits = addrBits(cidr.v6);
  const prefix = cidr.prefixLen;
  const shown = formatPrefix(cidr);
  // A /31 or /32 (/127, /128) leaves nothing to allocate.
  if (prefix > bits - 2) throw bad(`${field}.subnet`, `network ${shown} too small to allocate from (prefix must be /${bits - 2} or shorter)`);
  const network = cidr.ip & maskOf(prefix, cidr.v6);
  if (network !== cidr.ip) {
    throw bad(`${field}.subnet`, `network ${shown} has host bits set; for a subnet mask of length ${prefix} the network address is ${text(family, network)}`);
  }
  const subnet = { family, network, prefix };
  const last = lastOfSubnet(family, network, prefix);
  const addr = (name: 'gateway' | 'rangeStart' | 'rangeEnd'): Addr | undefined => {
    const v = spec[name];
    if (v === undefined || v === '') return undefined; // Go: empty text = unset
    const ip = parseIP(v);
    if (!ip) throw bad(`${field}.${name}`, `invalid IP address "${v.slice(0, 64)}"`);
    if (ip.v6 !== cidr.v6) throw bad(`${field}.${name}`, `${formatIP(ip)} is not an IPv${family} address like subnet ${shown}`);
    return ip;
  };
  const gw = addr('gateway');
  const rs = addr('rangeStart');
  const re = addr('rangeEnd');
  if (rs && !inSubnet(subnet, rs)) throw bad(`${field}.rangeStart`, `rangeStart ${formatIP(rs)} not in network ${shown}`);
  if (re && !inSubnet(subnet, re)) throw bad(`${field}.rangeEnd`, `rangeEnd ${formatIP(re)} not in network ${shown}`);
  const start = rs ? rs.n : network + 1n;
  const end = re ? re.n : family === 4 ? last - 1n : last;
  if (end < start) throw bad(`${field}.rangeEnd`, `rangeEnd ${text(family, end)} is before rangeStart ${text(family, start)}`);
  return { family, network, prefix, start, end, gateway: gw ? gw.n : network + 1n, field };
}

/** Whether `ip` lies inside the range's [start, end] window. */
export function rangeContains(r: Range, ip: Addr): boolean {
  return ip.v6 === (r.family === 6) && ip.n >= r.start && ip.n <= r.end;
}

/** Addresses of the range that are never handed out: gateway, IPv4 network and broadcast. */
export function isReservedAddress(r: Range, n: bigint): boolean {
  if (n === r.gateway) return true;
  if (r.family === 4 && (n === r.network || n === lastOfSubnet(4, r.network, r.prefix))) return true;
  return false;
}

/** How many addresses host-local can hand out from the range: its window less the reserved ones in it. */
export function rangeSize(r: Range): bigint {
  let size = r.end - r.start + 1n;
  const reserved = new Set([r.gateway, ...(r.family === 4 ? [r.network, lastOfSubnet(4, r.network, r.prefix)] : [])]);
  for (const n of reserved) if (n >= r.start && n <= r.end) size--;
  return size;
}

export function rangesOverlap(a: Range, b: Range): boolean {
  return a.family === b.family && a.start <= b.end && b.start <= a.end;
}
