/**
 * Subnet arithmetic for the agent, on bigints for both families (after
 * flannel pkg/ip IP4Net/IP6Net): parsing as Go's net.ParseCIDR does (host
 * bits cleared), flannel's etcd key form (`10.244.1.0-24`,
 * `10.244.1.0-24&fc00::-64`), overlap and "next subnet". Addresses are
 * validated and formatted by the `ip-address` package.
 */
import { Address4, Address6 } from 'ip-address';

export interface IPNet {
  v6: boolean;
  /** network address (host bits cleared) */
  ip: bigint;
  prefixLen: number;
}

const bitsOf = (v6: boolean): number => (v6 ? 128 : 32);

/** Parses a bare IPv4 or IPv6 address (no prefix). Throws on anything else. */
export function parseIp(s: string): { v6: boolean; n: bigint } {
  if (typeof s === 'string' && !s.includes('/') && !s.includes('%')) {
    if (Address4.isValid(s)) return { v6: false, n: new Address4(s).bigInt() };
    if (s.includes(':') && Address6.isValid(s)) return { v6: true, n: new Address6(s).bigInt() };
  }
  throw new Error(`invalid IP address "${s}"`);
}

export function formatIp(n: bigint, v6: boolean): string {
  return v6 ? Address6.fromBigInt(n).correctForm() : Address4.fromBigInt(n).correctForm();
}

export function maskOf(prefixLen: number, v6: boolean): bigint {
  const b = BigInt(bitsOf(v6));
  return ((1n << b) - 1n) ^ ((1n << (b - BigInt(prefixLen))) - 1n);
}

/** "a.b.c.d/n" or "x::y/n" → its network, like Go's net.ParseCIDR. */
export function parseCidr(s: string): IPNet {
  const slash = typeof s === 'string' ? s.lastIndexOf('/') : -1;
  const plen = slash < 0 ? '' : s.slice(slash + 1);
  if (slash < 0 || !/^\d{1,3}$/.test(plen)) throw new Error(`invalid CIDR address: ${s}`);
  let a: { v6: boolean; n: bigint };
  try {
    a = parseIp(s.slice(0, slash));
  } catch {
    throw new Error(`invalid CIDR address: ${s}`);
  }
  const prefixLen = Number(plen);
  if (prefixLen > bitsOf(a.v6)) throw new Error(`invalid CIDR address: ${s}`);
  return { v6: a.v6, ip: a.n & maskOf(prefixLen, a.v6), prefixLen };
}

export const formatNet = (n: IPNet): string => `${formatIp(n.ip, n.v6)}/${n.prefixLen}`;

/**
 * flannel's empty IPv4 subnet (ip.IP4Net{}): the `subnet` of an IPv6-only
 * lease, whose key is then `0.0.0.0-0&fc00:0:0:1::-64`.
 */
export const EMPTY_V4: IPNet = Object.freeze({ v6: false, ip: 0n, prefixLen: 0 });
export const isEmptyNet = (n: IPNet | undefined): boolean => !n || (n.ip === 0n && n.prefixLen === 0);

export const netEqual = (a: IPNet | undefined, b: IPNet | undefined): boolean =>
  a === b || (!!a && !!b && a.v6 === b.v6 && a.ip === b.ip && a.prefixLen === b.prefixLen);

/** Number of addresses in the net. */
export const netSize = (n: IPNet): bigint => 1n << BigInt(bitsOf(n.v6) - n.prefixLen);

/** The net of the same size right after `n` (flannel IP4Net.Next). */
export const nextNet = (n: IPNet): IPNet => ({ ...n, ip: n.ip + netSize(n) });

export function netContains(n: IPNet, ip: bigint, v6 = n.v6): boolean {
  if (v6 !== n.v6) return false;
  const m = maskOf(n.prefixLen, n.v6);
  return (ip & m) === n.ip;
}

export function netContainsNet(outer: IPNet, inner: IPNet): boolean {
  return inner.v6 === outer.v6 && inner.prefixLen >= outer.prefixLen && netContains(outer, inner.ip);
}

/** True when the two nets share an address (flannel IP4Net.Overlaps). */
export function netOverlaps(a: IPNet, b: IPNet): boolean {
  if (a.v6 !== b.v6) return false;
  const m = maskOf(Math.min(a.prefixLen, b.prefixLen), a.v6);
  return (a.ip & m) === (b.ip & m);
}

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
