/**
 * IP addresses as (family, bigint) pairs, parsed and printed the way Go's
 * `net.ParseIP` / `net.IP.String()` do — host-local file names are the
 * printed form, so it must match the reference byte for byte:
 * IPv4 dotted decimal without leading zeros; IPv6 lower-case RFC 5952 (the
 * first longest run of two or more zero groups becomes `::`). An
 * IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is an IPv4 address, as Go's
 * `To4()` canonicalisation makes it.
 */
import { formatV6Words } from '../../../pkg/netlink/ipaddr';
export type Family = 4 | 6;
export interface IP {
  family: Family;
  n: bigint;
}
export interface CIDR {
  ip: IP;
  prefix: number;
}

export const familyBits = (f: Family): number => (f === 4 ? 32 : 128);
const V4_MAPPED_PREFIX = 0xffffn << 32n;

function parseV4(s: string): bigint | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let n = 0n;
  for (const p of parts) {
    // Go rejects leading zeros ("010") since 1.17 (ambiguous octal).
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    n = (n << 8n) | BigInt(v);
  }
  return n;
}

function parseV6(s: string): bigint | null {
  if (s.length > 45 || !/^[0-9a-fA-F:.]+$/.test(s)) return null;
  let tail4: bigint | null = null;
  let text = s;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    tail4 = parseV4(s.slice(lastColon + 1));
    if (tail4 === null) return null;
    text = s.slice(0, lastColon + 1); // keeps the ':' before the dotted tail
  }
  const want = tail4 === null ? 8 : 6;
  const dbl = text.indexOf('::');
  if (dbl !== text.lastIndexOf('::') && dbl >= 0) return null;
  const toGroups = (part: string): string[] | null => {
    if (part === '') return [];
    const g = part.split(':');
    for (const x of g) if (!/^[0-9a-fA-F]{1,4}$/.test(x)) return null;
    return g;
  };
  let groups: string[];
  if (dbl >= 0) {
    const headText = text.slice(0, dbl);
    let tailText = text.slice(dbl + 2);
    if (tail4 !== null && tailText.endsWith(':')) tailText = tailText.slice(0, -1);
    else if (tail4 !== null && tailText !== '') return null;
    const head = toGroups(headText);
    const tail = toGroups(tailText);
    if (!head || !tail) return null;
    const fill = want - head.length - tail.length;
    if (fill < 1) return null;
    groups = [...head, ...Array<string>(fill).fill('0'), ...tail];
  } else {
    let body = text;
    if (tail4 !== null) {
      if (!body.endsWith(':')) return null;
      body = body.slice(0, -1);
    }
    const g = toGroups(body);
    if (!g || g.length !== want) return null;
    groups = g;
  }
  let n = 0n;
  for (const g of groups) n = (n << 16n) | BigInt(parseInt(g, 16));
  if (tail4 !== null) n = (n << 32n) | tail4;
  return n;
}

/** Parses an address; null when it is not one. IPv4-mapped IPv6 → IPv4. */
export function parseIP(s: string): IP | null {
  if (typeof s !== 'string' || s.length === 0 || s.length > 45) return null;
  if (!s.includes(':')) {
    const n = parseV4(s);
    return n === null ? null : { family: 4, n };
  }
  const n = parseV6(s);
  if (n === null) return null;
  if (n >> 32n === V4_MAPPED_PREFIX >> 32n) return { family: 4, n: n & 0xffffffffn };
  return { family: 6, n };
}

/**
 * Parses `addr/prefix`. The address keeps its host bits (callers decide
 * whether that is an error). IPv4-mapped networks are refused (Go fails
 * them with "IPNet IP and Mask version mismatch").
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

export function formatIP(ip: IP): string {
  const { n } = ip;
  if (ip.family === 4) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  return formatV6Words(g);
}

export const formatCIDR = (c: CIDR): string => `${formatIP(c.ip)}/${c.prefix}`;

/** The netmask of `prefix` as an integer of the family's width. */
export function maskOf(family: Family, prefix: number): bigint {
  const b = BigInt(familyBits(family));
  return ((1n << b) - 1n) ^ ((1n << (b - BigInt(prefix))) - 1n);
}

/** Canonical text of an address string, or null when it is not one. */
export function canonicalIP(s: string): string | null {
  const ip = parseIP(s);
  return ip ? formatIP(ip) : null;
}
