/**
 * One address range of a range set (host-local's `Range`): a subnet, an
 * inclusive [start, end] window inside it and a gateway. Canonicalisation
 * follows the reference: gateway defaults to subnet+1, rangeStart to
 * subnet+1, rangeEnd to the last address (IPv4: the one before the
 * broadcast). Unlike the reference, the IPv4 network and broadcast
 * addresses are never handed out even when rangeStart/rangeEnd include them.
 */
import { CniError, ErrCode } from '../../../pkg/cni/errors';
import { type Family, type IP, familyBits, formatIP, maskOf, parseCIDR, parseIP } from '../../../pkg/ip';

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

export const rangeSubnetText = (r: Range): string => `${formatIP({ family: r.family, n: r.network })}/${r.prefix}`;
export const rangeText = (r: Range): string => `${formatIP({ family: r.family, n: r.start })}-${formatIP({ family: r.family, n: r.end })}`;

/** The subnet's last address (the IPv4 broadcast). */
export function lastOfSubnet(family: Family, network: bigint, prefix: number): bigint {
  return network | (((1n << BigInt(familyBits(family))) - 1n) ^ maskOf(family, prefix));
}

function inSubnet(r: { family: Family; network: bigint; prefix: number }, ip: IP): boolean {
  return ip.family === r.family && (ip.n & maskOf(r.family, r.prefix)) === r.network;
}

/**
 * Validates and fills one range. `field` is its config path
 * (`ipam.ranges[1][0]`), used in every error.
 */
export function canonicalizeRange(spec: RangeSpec, field: string): Range {
  if (spec.subnet === undefined || spec.subnet === '') throw bad(`${field}.subnet`, 'missing subnet');
  const cidr = parseCIDR(spec.subnet);
  if (!cidr) throw bad(`${field}.subnet`, `invalid CIDR "${spec.subnet.slice(0, 64)}"`);
  const family = cidr.ip.family;
  const bits = familyBits(family);
  const shown = `${formatIP(cidr.ip)}/${cidr.prefix}`;
  // A /31 or /32 (/127, /128) leaves nothing to allocate.
  if (cidr.prefix > bits - 2) throw bad(`${field}.subnet`, `network ${shown} too small to allocate from (prefix must be /${bits - 2} or shorter)`);
  const network = cidr.ip.n & maskOf(family, cidr.prefix);
  if (network !== cidr.ip.n) {
    throw bad(`${field}.subnet`, `network ${shown} has host bits set; for a subnet mask of length ${cidr.prefix} the network address is ${formatIP({ family, n: network })}`);
  }
  const subnet = { family, network, prefix: cidr.prefix };
  const last = lastOfSubnet(family, network, cidr.prefix);
  const addr = (name: 'gateway' | 'rangeStart' | 'rangeEnd'): IP | undefined => {
    const v = spec[name];
    if (v === undefined || v === '') return undefined; // Go: empty text = unset
    const ip = parseIP(v);
    if (!ip) throw bad(`${field}.${name}`, `invalid IP address "${v.slice(0, 64)}"`);
    if (ip.family !== family) throw bad(`${field}.${name}`, `${formatIP(ip)} is not an IPv${family} address like subnet ${shown}`);
    return ip;
  };
  const gw = addr('gateway');
  const rs = addr('rangeStart');
  const re = addr('rangeEnd');
  if (rs && !inSubnet(subnet, rs)) throw bad(`${field}.rangeStart`, `rangeStart ${formatIP(rs)} not in network ${shown}`);
  if (re && !inSubnet(subnet, re)) throw bad(`${field}.rangeEnd`, `rangeEnd ${formatIP(re)} not in network ${shown}`);
  const start = rs ? rs.n : network + 1n;
  const end = re ? re.n : family === 4 ? last - 1n : last;
  if (end < start) throw bad(`${field}.rangeEnd`, `rangeEnd ${formatIP({ family, n: end })} is before rangeStart ${formatIP({ family, n: start })}`);
  return { family, network, prefix: cidr.prefix, start, end, gateway: gw ? gw.n : network + 1n, field };
}

/** Whether `ip` lies inside the range's [start, end] window. */
export function rangeContains(r: Range, ip: IP): boolean {
  return ip.family === r.family && ip.n >= r.start && ip.n <= r.end;
}

/** Addresses of the range that are never handed out: gateway, IPv4 network and broadcast. */
export function isReservedAddress(r: Range, n: bigint): boolean {
  if (n === r.gateway) return true;
  if (r.family === 4 && (n === r.network || n === lastOfSubnet(4, r.network, r.prefix))) return true;
  return false;
}

export function rangesOverlap(a: Range, b: Range): boolean {
  return a.family === b.family && a.start <= b.end && b.start <= a.end;
}
