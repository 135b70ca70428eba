/**
 * Small IP/CIDR arithmetic on bigints: parse, format (RFC 5952 for IPv6),
 * network of an address, next address, containment. Shared by IPAM
 * delegation, the bridge plugin and the masquerade rules.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { formatV6Words } from '../netlink/ipaddr';

export interface IPNet {
  /** the address as written (host bits kept), canonical form */
  ip: string;
  prefixLen: number;
  v6: boolean;
}

export function ipToBigInt(ip: string): { v6: boolean; n: bigint } {
  if (isIPv4(ip)) {
    return { v6: false, n: ip.split('.').reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n) };
  }
  if (!isIPv6(ip)) throw new Error(`invalid IP address "${ip}"`);
  let s = ip;
  // IPv4-mapped tail (::ffff:1.2.3.4)
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (m) {
    const v4 = ipToBigInt(m[2]).n;
    s = `${m[1]}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return { v6: true, n: groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

export function bigIntToIp(n: bigint, v6: boolean): string {
  if (!v6) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  return formatV6Words(g);
}

/** Canonical text of an address (IPv6 compressed, lower case). */
export function canonicalIp(ip: string): string {
  const { v6, n } = ipToBigInt(ip);
  return bigIntToIp(n, v6);
}

/** Parses "a.b.c.d/n" or "x::y/n". Throws on anything else. */
export function parseCidr(cidr: string): IPNet {
  const slash = cidr.lastIndexOf('/');
  if (slash < 0) throw new Error(`invalid CIDR address: ${cidr}`);
  const ipText = cidr.slice(0, slash);
  const plen = cidr.slice(slash + 1);
  if (!/^\d{1,3}$/.test(plen)) throw new Error(`invalid CIDR address: ${cidr}`);
  let p: { v6: boolean; n: bigint };
  try {
    p = ipToBigInt(ipText);
  } catch {
    throw new Error(`invalid CIDR address: ${cidr}`);
  }
  const prefixLen = Number(plen);
  if (prefixLen > (p.v6 ? 128 : 32)) throw new Error(`invalid CIDR address: ${cidr}`);
  return { ip: bigIntToIp(p.n, p.v6), prefixLen, v6: p.v6 };
}

const bits = (v6: boolean) => (v6 ? 128 : 32);
function mask(prefixLen: number, v6: boolean): bigint {
  const b = BigInt(bits(v6));
  return ((1n << b) - 1n) ^ ((1n << (b - BigInt(prefixLen))) - 1n);
}

export const formatCidr = (n: IPNet): string => `${n.ip}/${n.prefixLen}`;

/** The network address of `n` (host bits cleared). */
export function networkOf(n: IPNet): IPNet {
  const { n: v } = ipToBigInt(n.ip);
  return { ip: bigIntToIp(v & mask(n.prefixLen, n.v6), n.v6), prefixLen: n.prefixLen, v6: n.v6 };
}

/** The address after `ip` (wraps inside the family). */
export function nextIp(ip: string): string {
  const { v6, n } = ipToBigInt(ip);
  return bigIntToIp((n + 1n) & ((1n << BigInt(bits(v6))) - 1n), v6);
}

/** True when `net` contains the address `ip`. */
export function cidrContains(net: IPNet, ip: string): boolean {
  const a = ipToBigInt(ip);
  if (a.v6 !== net.v6) return false;
  const m = mask(net.prefixLen, net.v6);
  return (a.n & m) === (ipToBigInt(net.ip).n & m);
}

export const isV6Addr = (ip: string): boolean => ip.includes(':');
