/**
 * Networks (CIDR math) on top of addr.ts, in the two shapes the plugins
 * use: `CIDR` ({ip: IP, prefix}, host-local's allocation space, Go's
 * ParseCIDR rules) and `IPNet` (canonical text + prefix length: configs,
 * results, rules and netlink requests).
 */
import { type Family, type IP, familyBits, formatIP, maskOf, parseAddr, parseIP } from './addr';

export interface CIDR {
  ip: IP;
  prefix: number;
}

/**
 * Parses `addr/prefix` as Go's ParseCIDR (no leading zeros in the prefix).
 * The address keeps its host bits (callers decide whether that is an
 * error). IPv4-mapped networks are refused (Go fails them with "IPNet IP
 * and Mask version mismatch").
 */
export function parseCIDR(s: string): CIDR | null {
  if (typeof s !== 'string') return null;
  const slash = s.indexOf('/');
  if (slash < 0 || slash !== s.lastIndexOf('/')) return null;
  const addrText = s.slice(0, slash);
  const plen = s.slice(slash + 1);
  if (!/^(0|[1-9]\d{0,2})$/.test(plen)) return null;
  const ip = parseIP(addrText);
  if (!ip) return null;
  if (ip.family === 4 && addrText.includes(':')) return null;
  const prefix = Number(plen);
  if (prefix > familyBits(ip.family)) return null;
  return { ip, prefix };
}

export const formatCIDR = (c: CIDR): string => `${formatIP(c.ip)}/${c.prefix}`;

// ---- IPNet: canonical text + prefix length ----------------------------------------

export interface IPNet {
  /** the address as written (host bits kept), canonical form */
  ip: string;
  prefixLen: number;
  v6: boolean;
}

const family = (v6: boolean): Family => (v6 ? 6 : 4);

/** An address as {v6, n}; throws `invalid IP address "x"`. IPv4-mapped stays IPv6. */
export function ipToBigInt(ip: string): { v6: boolean; n: bigint } {
  const a = parseAddr(ip);
  if (!a) throw new Error(`invalid IP address "${ip}"`);
  return { v6: a.family === 6, n: a.n };
}

export const bigIntToIp = (n: bigint, v6: boolean): string => formatIP({ family: family(v6), n });

/** Canonical text of an address (IPv6 compressed, lower case; IPv4-mapped kept IPv6); throws when it is not one. */
export function canonicalIp(ip: string): string {
  const { v6, n } = ipToBigInt(ip);
  return bigIntToIp(n, v6);
}

export const isV6Addr = (ip: string): boolean => ip.includes(':');

function toIPNet(s: string, bare: boolean): IPNet {
  const slash = s.lastIndexOf('/');
  if (slash < 0 && !bare) throw new Error(`invalid CIDR address: ${s}`);
  const ipText = slash < 0 ? s : s.slice(0, slash);
  const a = parseAddr(ipText);
  if (!a) throw new Error(`invalid CIDR address: ${s}`);
  const max = familyBits(a.family);
  const plen = slash < 0 ? String(max) : s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(plen) || Number(plen) > max) throw new Error(`invalid CIDR address: ${s}`);
  return { ip: formatIP(a), prefixLen: Number(plen), v6: a.family === 6 };
}

/** Parses "a.b.c.d/n" or "x::y/n" (host bits kept). Throws `invalid CIDR address: …` on anything else. */
export const parseCidr = (cidr: string): IPNet => toIPNet(cidr, false);

/** As parseCidr, but a bare address is a host route (/32, /128): what `ip addr`/`ip route` take. */
export const parseAddrOrCidr = (s: string): IPNet => toIPNet(s, true);

export const formatCidr = (n: IPNet): string => `${n.ip}/${n.prefixLen}`;

const maskBits = (n: IPNet): bigint => maskOf(family(n.v6), n.prefixLen);

/** The network address of `n` (host bits cleared). */
export function networkOf(n: IPNet): IPNet {
  const { n: v } = ipToBigInt(n.ip);
  return { ip: bigIntToIp(v & maskBits(n), n.v6), prefixLen: n.prefixLen, v6: n.v6 };
}

/** The last address of `n` (host bits set): the IPv4 broadcast. */
export function broadcastOf(n: IPNet): string {
  const { n: v } = ipToBigInt(n.ip);
  const all = (1n << BigInt(familyBits(family(n.v6)))) - 1n;
  return bigIntToIp(v | (all ^ maskBits(n)), n.v6);
}

/** The address after `ip` (wraps inside the family). */
export function nextIp(ip: string): string {
  const { v6, n } = ipToBigInt(ip);
  return bigIntToIp((n + 1n) & ((1n << BigInt(familyBits(family(v6)))) - 1n), v6);
}

/** True when `net` contains the address `ip`. */
export function cidrContains(net: IPNet, ip: string): boolean {
  const a = ipToBigInt(ip);
  if (a.v6 !== net.v6) return false;
  const m = maskBits(net);
  return (a.n & m) === (ipToBigInt(net.ip).n & m);
}
