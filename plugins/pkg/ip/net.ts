/**
 * Networks as text: `IPNet` (canonical address text + prefix length), the
 * shape of configs, results, rules and netlink requests, on top of addr.ts.
 * The math is prefix.ts's.
 */
import { addrBits, bigIntToIp, formatIP, maskOf, parseAddr, toAddr } from './addr';

// ---- IPNet: canonical text + prefix length ----------------------------------------

export interface IPNet {
  /** the address as written (host bits kept), canonical form */
  ip: string;
  prefixLen: number;
  v6: boolean;
}

export const isV6Addr = (ip: string): boolean => ip.includes(':');

function toIPNet(s: string, bare: boolean): IPNet {
  const slash = s.lastIndexOf('/');
  if (slash < 0 && !bare) throw new Error(`invalid CIDR address: ${s}`);
  const ipText = slash < 0 ? s : s.slice(0, slash);
  const a = parseAddr(ipText);
  if (!a) throw new Error(`invalid CIDR address: ${s}`);
  const max = addrBits(a.v6);
  const plen = slash < 0 ? String(max) : s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(plen) || Number(plen) > max) throw new Error(`invalid CIDR address: ${s}`);
  return { ip: formatIP(a), prefixLen: Number(plen), v6: a.v6 };
}

/** Parses "a.b.c.d/n" or "x::y/n" (host bits kept). Throws `invalid CIDR address: …` on anything else. */
export const parseCidr = (cidr: string): IPNet => toIPNet(cidr, false);

/** As parseCidr, but a bare address is a host route (/32, /128): what `ip addr`/`ip route` take. */
export const parseAddrOrCidr = (s: string): IPNet => toIPNet(s, true);

export const formatCidr = (n: IPNet): string => `${n.ip}/${n.prefixLen}`;

const maskBits = (n: IPNet): bigint => maskOf(n.prefixLen, n.v6);

/** The network address of `n` (host bits cleared). */
export function networkOf(n: IPNet): IPNet {
  const { n: v } = toAddr(n.ip);
  return { ip: bigIntToIp(v & maskBits(n), n.v6), prefixLen: n.prefixLen, v6: n.v6 };
}

/** The last address of `n` (host bits set): the IPv4 broadcast. */
export function broadcastOf(n: IPNet): string {
  const { n: v } = toAddr(n.ip);
  const all = (1n << BigInt(addrBits(n.v6))) - 1n;
  return bigIntToIp(v | (all ^ maskBits(n)), n.v6);
}

/** The address after `ip` (wraps inside the family). */
export function nextIp(ip: string): string {
  const { v6, n } = toAddr(ip);
  return bigIntToIp((n + 1n) & ((1n << BigInt(addrBits(v6))) - 1n), v6);
}

/** True when `net` contains the address `ip`. */
export function cidrContains(net: IPNet, ip: string): boolean {
  const a = toAddr(ip);
  if (a.v6 !== net.v6) return false;
  const m = maskBits(net);
  return (a.n & m) === (toAddr(net.ip).n & m);
}
