/**
 * Subnet arithmetic for the agent, on bigints for both families (after
 * flannel pkg/ip IP4Net/IP6Net): parsing as Go's net.ParseCIDR does (host
 * bits cleared), flannel's etcd key form (`10.244.1.0-24`,
 * `10.244.1.0-24&fc00::-64`), overlap and "next subnet" — pkg/ip's Subnet
 * math under the agent's names, plus flannel's key form and empty subnet.
 */
import { bigIntToIp, ipToBigInt, maskOf as maskOfFamily, type Subnet, formatSubnet, nextSubnet, parseSubnet, subnetContains,
  subnetContainsSubnet, subnetEqual, subnetSize, subnetsOverlap } from '../pkg/ip';

/** A subnet as the agent holds it: pkg/ip's Subnet (network address as a bigint, prefix length, family). */
export type IPNet = Subnet;

/** Parses a bare IPv4 or IPv6 address (no prefix). Throws on anything else. */
export const parseIp = (s: string): { v6: boolean; n: bigint } => ipToBigInt(s);
export const formatIp = (n: bigint, v6: boolean): string => bigIntToIp(n, v6);
export const maskOf = (prefixLen: number, v6: boolean): bigint => maskOfFamily(v6 ? 6 : 4, prefixLen);
/** "a.b.c.d/n" or "x::y/n" → its network, like Go's net.ParseCIDR. */
export const parseCidr = parseSubnet;
export const formatNet = formatSubnet;

/**
 * flannel's empty IPv4 subnet (ip.IP4Net{}): the `subnet` of an IPv6-only
 * lease, whose key is then `0.0.0.0-0&fc00:0:0:1::-64`.
 */
export const EMPTY_V4: IPNet = Object.freeze({ v6: false, ip: 0n, prefixLen: 0 });
export const isEmptyNet = (n: IPNet | undefined): boolean => !n || (n.ip === 0n && n.prefixLen === 0);

export const netEqual = subnetEqual;
/** Number of addresses in the net. */
export const netSize = subnetSize;
/** The net of the same size right after `n` (flannel IP4Net.Next). */
export const nextNet = nextSubnet;
export const netContains = subnetContains;
export const netContainsNet = subnetContainsSubnet;
/** True when the two nets share an address (flannel IP4Net.Overlaps). */
export const netOverlaps = subnetsOverlap;

/** flannel's subnet key: `10.244.1.0-24`, dual-stack `10.244.1.0-24&fc00::-64`. */
export function subnetKey(sn: IPNet, sn6?: IPNet): string {
  const k = `${formatIp(sn.ip, false)}-${sn.prefixLen}`;
  return sn6 ? `${k}&${formatIp(sn6.ip, true)}-${sn6.prefixLen}` : k;
}

// flannel pkg/subnet ParseSubnetKey's expression (anchored at the end only).
const SUBNET_KEY = /(\d+\.\d+.\d+.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$/;

/** Inverse of subnetKey; null for a key flannel would not parse. */
export function parseSubnetKey(key: string): { sn: IPNet; sn6?: IPNet } | null {
  const m = SUBNET_KEY.exec(key);
  if (!m) return null;
  try {
    const p4 = Number(m[2]);
    if (p4 > 32) return null;
    const a = parseIp(m[1]);
    if (a.v6) return null;
    const sn: IPNet = { v6: false, ip: a.n, prefixLen: p4 };
    if (m[3] === undefined) return { sn };
    const p6 = Number(m[4]);
    if (p6 > 128) return null;
    const b = parseIp(m[3]);
    if (!b.v6) return null;
    return { sn, sn6: { v6: true, ip: b.n, prefixLen: p6 } };
  } catch {
    return null;
  }
}
