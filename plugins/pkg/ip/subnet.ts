/**
 * Subnet arithmetic on bigints for both families (after flannel pkg/ip
 * IP4Net/IP6Net): a `Subnet` is a network address (host bits cleared) and
 * a prefix length — what a lease, a pool or a route destination is.
 * Parsing is Go's net.ParseCIDR (the network is kept, the address's host
 * bits dropped); text goes through addr.ts.
 */
import { type Family, familyBits, maskOf } from './addr';
import { bigIntToIp, ipToBigInt } from './net';

export interface Subnet {
  v6: boolean;
  /** network address (host bits cleared) */
  ip: bigint;
  prefixLen: number;
}

const fam = (v6: boolean): Family => (v6 ? 6 : 4);

/** "a.b.c.d/n" or "x::y/n" → its network, like Go's net.ParseCIDR. Throws `invalid CIDR address: …`. */
export function parseSubnet(s: string): Subnet {
  const slash = typeof s === 'string' ? s.lastIndexOf('/') : -1;
  const plen = slash < 0 ? '' : s.slice(slash + 1);
  if (slash < 0 || !/^\d{1,3}$/.test(plen)) throw new Error(`invalid CIDR address: ${s}`);
  let a: { v6: boolean; n: bigint };
  try {
    a = ipToBigInt(s.slice(0, slash));
  } catch {
    throw new Error(`invalid CIDR address: ${s}`);
  }
  const prefixLen = Number(plen);
  if (prefixLen > familyBits(fam(a.v6))) throw new Error(`invalid CIDR address: ${s}`);
  return { v6: a.v6, ip: a.n & maskOf(fam(a.v6), prefixLen), prefixLen };
}

export const formatSubnet = (n: Subnet): string => `${bigIntToIp(n.ip, n.v6)}/${n.prefixLen}`;

export const subnetEqual = (a: Subnet | undefined, b: Subnet | undefined): boolean =>
  a === b || (!!a && !!b && a.v6 === b.v6 && a.ip === b.ip && a.prefixLen === b.prefixLen);

/** Number of addresses in the subnet. */
export const subnetSize = (n: Subnet): bigint => 1n << BigInt(familyBits(fam(n.v6)) - n.prefixLen);

/** The subnet of the same size right after `n` (flannel IP4Net.Next). */
export const nextSubnet = (n: Subnet): Subnet => ({ ...n, ip: n.ip + subnetSize(n) });

/** True when the address `ip` (of family `v6`) is in `n`. */
export function subnetContains(n: Subnet, ip: bigint, v6 = n.v6): boolean {
  if (v6 !== n.v6) return false;
  return (ip & maskOf(fam(n.v6), n.prefixLen)) === n.ip;
}

export function subnetContainsSubnet(outer: Subnet, inner: Subnet): boolean {
  return inner.v6 === outer.v6 && inner.prefixLen >= outer.prefixLen && subnetContains(outer, inner.ip);
}

/** True when the two subnets share an address (flannel IP4Net.Overlaps). */
export function subnetsOverlap(a: Subnet, b: Subnet): boolean {
  if (a.v6 !== b.v6) return false;
  const m = maskOf(fam(a.v6), Math.min(a.prefixLen, b.prefixLen));
  return (a.ip & m) === (b.ip & m);
}
