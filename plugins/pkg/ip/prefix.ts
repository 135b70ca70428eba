/**
 * Networks: a `Prefix` is an address (as an integer) and a prefix length,
 * immutable — a lease, a pool, a range's subnet, a route destination. The
 * math is flannel pkg/ip's (IP4Net/IP6Net: size, next, overlap) on bigints
 * for both families; text goes through addr.ts (ip-address, Go's rules).
 *
 * Parsers, after the ways the reference reads a CIDR:
 *  - parsePrefix: the address as written and its length (host bits kept,
 *    an IPv4-mapped address stays IPv6) — configs, results, rules and
 *    netlink requests; parseAddrOrPrefix also takes a bare address (a host
 *    route, as `ip addr` / `ip route` do);
 *  - parseNetwork: Go's net.ParseCIDR's network (host bits dropped) —
 *    flannel's configs and leases;
 *  - parseCIDR: host-local's reading (host bits kept for the caller to
 *    judge, Go's To4 canonicalisation, IPv4-mapped networks refused).
 */
import { type Addr, addrBits, formatIP, maskOf, parseAddr, parseIP, toAddr } from './addr';

export interface Prefix {
  readonly v6: boolean;
  /** the address (parseNetwork: the network address, host bits cleared) */
  readonly ip: bigint;
  readonly prefixLen: number;
}

const prefix = (v6: boolean, ip: bigint, prefixLen: number): Prefix => Object.freeze({ v6, ip, prefixLen });

function toPrefix(s: string, bare: boolean): Prefix {
  const slash = typeof s === 'string' ? s.lastIndexOf('/') : -1;
  const a = parseAddr(slash < 0 ? (bare ? s : '') : s.slice(0, slash));
  const plen = slash < 0 ? String(addrBits(a?.v6 ?? false)) : s.slice(slash + 1);
  if (!a || !/^\d{1,3}$/.test(plen) || Number(plen) > addrBits(a.v6)) throw new Error(`invalid CIDR address: ${s}`);
  return prefix(a.v6, a.n, Number(plen));
}

/** "a.b.c.d/n" or "x::y/n", host bits kept. Throws `invalid CIDR address: …` on anything else. */
export const parsePrefix = (s: string): Prefix => toPrefix(s, false);

/** As parsePrefix, but a bare address is a host route (/32, /128): what `ip addr`/`ip route` take. */
export const parseAddrOrPrefix = (s: string): Prefix => toPrefix(s, true);

/** "a.b.c.d/n" or "x::y/n" → its network, like Go's net.ParseCIDR. Throws `invalid CIDR address: …`. */
export const parseNetwork = (s: string): Prefix => maskedPrefix(toPrefix(s, false));

/**
 * Parses `addr/prefix` as host-local does (Go's ParseCIDR, no leading zeros
 * in the prefix, IPv4-mapped → IPv4). The address keeps its host bits
 * (callers decide whether that is an error). IPv4-mapped networks are
 * refused (Go fails them with "IPNet IP and Mask version mismatch").
 */
export function parseCIDR(s: string): Prefix | null {
  if (typeof s !== 'string') return null;
  const slash = s.indexOf('/');
  if (slash < 0 || slash !== s.lastIndexOf('/')) return null;
  const addrText = s.slice(0, slash);
  const plen = s.slice(slash + 1);
  if (!/^(0|[1-9]\d{0,2})$/.test(plen)) return null;
  const ip = parseIP(addrText);
  if (!ip || (!ip.v6 && addrText.includes(':')) || Number(plen) > addrBits(ip.v6)) return null;
  return prefix(ip.v6, ip.n, Number(plen));
}

/** Go's IPNet.String(): `address/len`. */
export const formatPrefix = (p: Prefix): string => `${formatIP({ v6: p.v6, n: p.ip })}/${p.prefixLen}`;

/** The prefix's address as an Addr. */
export const prefixAddr = (p: Prefix): Addr => ({ v6: p.v6, n: p.ip });

/** The prefix's address as text (Go's net.IP.String()). */
export const prefixIP = (p: Prefix): string => formatIP({ v6: p.v6, n: p.ip });

/** The network of `p` (host bits cleared). */
export const maskedPrefix = (p: Prefix): Prefix => prefix(p.v6, p.ip & maskOf(p.prefixLen, p.v6), p.prefixLen);

/** The last address of `p` (host bits set): the IPv4 broadcast. */
export const lastAddr = (p: Prefix): bigint => p.ip | (((1n << BigInt(addrBits(p.v6))) - 1n) ^ maskOf(p.prefixLen, p.v6));

/** The last address of `p` as text: the IPv4 broadcast. */
export const broadcastOf = (p: Prefix): string => formatIP({ v6: p.v6, n: lastAddr(p) });

/** The address after `ip` (wraps inside the family). */
export function nextIp(ip: string): string {
  const { v6, n } = toAddr(ip);
  return formatIP({ v6, n: (n + 1n) & ((1n << BigInt(addrBits(v6))) - 1n) });
}

/** True when the network of `p` (host bits or not) holds the address `ip` (text; throws when it is not one). */
export function prefixContainsIP(p: Prefix, ip: string): boolean {
  const a = toAddr(ip);
  return a.v6 === p.v6 && (a.n & maskOf(p.prefixLen, p.v6)) === (p.ip & maskOf(p.prefixLen, p.v6));
}

export const prefixEqual = (a: Prefix | undefined, b: Prefix | undefined): boolean =>
  a === b || (!!a && !!b && a.v6 === b.v6 && a.ip === b.ip && a.prefixLen === b.prefixLen);

/** Number of addresses in the prefix. */
export const prefixSize = (p: Prefix): bigint => 1n << BigInt(addrBits(p.v6) - p.prefixLen);

/** The prefix of the same size right after `p` (flannel IP4Net.Next). */
export const nextPrefix = (p: Prefix): Prefix => prefix(p.v6, p.ip + prefixSize(p), p.prefixLen);

/** True when the address `ip` (of family `v6`) is in the network `p` (its host bits clear). */
export function prefixContains(p: Prefix, ip: bigint, v6 = p.v6): boolean {
  return v6 === p.v6 && (ip & maskOf(p.prefixLen, p.v6)) === p.ip;
}

export function prefixContainsPrefix(outer: Prefix, inner: Prefix): boolean {
  return inner.v6 === outer.v6 && inner.prefixLen >= outer.prefixLen && prefixContains(outer, inner.ip);
}

/** True when the two prefixes share an address (flannel IP4Net.Overlaps). */
export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  if (a.v6 !== b.v6) return false;
  const m = maskOf(Math.min(a.prefixLen, b.prefixLen), a.v6);
  return (a.ip & m) === (b.ip & m);
}

// ---- flannel's forms -------------------------------------------------------------

/**
 * flannel's empty IPv4 subnet (ip.IP4Net{}): the `subnet` of an IPv6-only
 * lease, whose key is then `0.0.0.0-0&fc00:0:0:1::-64`.
 */
export const EMPTY_V4: Prefix = prefix(false, 0n, 0);
export const isEmptyPrefix = (p: Prefix | undefined): boolean => !p || (p.ip === 0n && p.prefixLen === 0);

/** flannel's subnet key: `10.244.1.0-24`, dual-stack `10.244.1.0-24&fc00::-64`. */
export function subnetKey(sn: Prefix, sn6?: Prefix): string {
  const k = `${formatIP({ v6: false, n: sn.ip })}-${sn.prefixLen}`;
  return sn6 ? `${k}&${formatIP({ v6: true, n: sn6.ip })}-${sn6.prefixLen}` : k;
}

// flannel pkg/subnet ParseSubnetKey's expression (anchored at the end only).
const SUBNET_KEY = /(\d+\.\d+.\d+.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$/;

/** Inverse of subnetKey; null for a key flannel would not parse. */
export function parseSubnetKey(key: string): { sn: Prefix; sn6?: Prefix } | null {
  const m = SUBNET_KEY.exec(key);
  if (!m) return null;
  const p4 = Number(m[2]);
  const a = parseAddr(m[1]);
  if (p4 > 32 || !a || a.v6) return null;
  const sn = prefix(false, a.n, p4);
  if (m[3] === undefined) return { sn };
  const p6 = Number(m[4]);
  const b = parseAddr(m[3]);
  if (p6 > 128 || !b || !b.v6) return null;
  return { sn, sn6: prefix(true, b.n, p6) };
}
