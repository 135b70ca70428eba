/**
 * IP addresses as immutable (family, bigint) pairs — the one parser and
 * printer of the suite. Text is parsed by the `ip-address` package, under
 * Go's `net.ParseIP` rules (IPv4 dotted decimal without leading zeros, no
 * zones); printing is Go's `net.IP.String()`: IPv4 dotted decimal, IPv6
 * lower-case RFC 5952 (the first longest run of two or more zero groups
 * becomes `::`; ip.test.ts checks it against ip-address's correctForm).
 * host-local's file names are the printed form, so this must match the
 * reference byte for byte.
 *
 * Two readings of an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`):
 * `parseAddr` keeps it IPv6 (what the text says: netlink bytes, config
 * text), `parseIP` makes it IPv4 as Go's `To4()` canonicalisation does
 * (host-local's allocation space).
 */
import { Address4, Address6 } from 'ip-address';

export type Family = 4 | 6;
/** An address: its family and its value (network order) as an integer. */
export interface Addr {
  readonly v6: boolean;
  readonly n: bigint;
}

export const addrBits = (v6: boolean): number => (v6 ? 128 : 32);

/** The netmask of a prefix length as an integer of the family's width. */
export function maskOf(prefixLen: number, v6: boolean): bigint {
  const b = BigInt(addrBits(v6));
  return ((1n << b) - 1n) ^ ((1n << (b - BigInt(prefixLen))) - 1n);
}

// Go's net.ParseIP rules, over ip-address's parser: IPv4 dotted decimal
// without leading zeros ("010" is ambiguous octal, refused since Go 1.17);
// IPv6 hex groups with at most one "::" standing for at least one group and
// an optional dotted IPv4 tail; no zones, no prefixes, nothing else.
const V4_TEXT = /^(?:0|[1-9]\d{0,2})(?:\.(?:0|[1-9]\d{0,2})){3}$/;
const V6_TEXT = /^[0-9a-fA-F:]*(?::(?:0|[1-9]\d{0,2})(?:\.(?:0|[1-9]\d{0,2})){3})?$/;

function parseV4(s: string): bigint | null {
  if (!V4_TEXT.test(s) || !Address4.isValid(s)) return null;
  return new Address4(s).bigInt();
}

function parseV6(s: string): bigint | null {
  if (s.length > 45 || !V6_TEXT.test(s)) return null;
  const dbl = s.indexOf('::');
  if (dbl >= 0) {
    if (dbl !== s.lastIndexOf('::')) return null;
    // "::" stands for at least one group (Go): 8 groups around it are too many
    const words = s.replace('::', ':').split(':').filter(Boolean).reduce((k, w) => k + (w.includes('.') ? 2 : 1), 0);
    if (words > 7) return null;
  }
  if (!Address6.isValid(s)) return null;
  return new Address6(s).bigInt();
}

/** Parses an address as written (an IPv4-mapped IPv6 address stays IPv6); null when it is not one. */
export function parseAddr(s: string): Addr | null {
  if (typeof s !== 'string' || s.length === 0 || s.length > 45) return null;
  if (!s.includes(':')) {
    const n = parseV4(s);
    return n === null ? null : Object.freeze({ v6: false, n });
  }
  const n = parseV6(s);
  return n === null ? null : Object.freeze({ v6: true, n });
}

const V4_MAPPED = 0xffffn;

/** True for `::ffff:a.b.c.d`. */
export const isV4Mapped = (ip: Addr): boolean => ip.v6 && ip.n >> 32n === V4_MAPPED;

/** Parses an address as Go's ParseIP + To4 do: IPv4-mapped IPv6 → IPv4; null when it is not one. */
export function parseIP(s: string): Addr | null {
  const ip = parseAddr(s);
  if (ip && isV4Mapped(ip)) return Object.freeze({ v6: false, n: ip.n & 0xffffffffn });
  return ip;
}

/** An address that is not text: throws `invalid IP address "s"`. IPv4-mapped stays IPv6 (parseAddr). */
export function toAddr(s: string): Addr {
  const a = parseAddr(s);
  if (!a) throw new Error(`invalid IP address "${s}"`);
  return a;
}

/** Go's net.IP.String() of the address (IPv6 in RFC 5952 form, mapped ones as hex groups). */
export function formatIP(ip: Addr): string {
  const { n } = ip;
  if (!ip.v6) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  // the first longest run of two or more zero groups becomes "::"
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** formatIP of the address `n` of the family `v6`. */
export const bigIntToIp = (n: bigint, v6: boolean): string => formatIP({ v6, n });

/** Canonical text of an address string (Go-exact, IPv4-mapped → IPv4), or null when it is not one. */
export function canonicalIP(s: string): string | null {
  const ip = parseIP(s);
  return ip ? formatIP(ip) : null;
}

// ---- bytes (netlink attributes) -------------------------------------------------

/** IP string → 4 or 16 bytes (network order); throws on anything that is not an address. */
export function ipToBuffer(s: string): Buffer {
  const ip = parseAddr(s);
  if (!ip) throw new TypeError(`invalid IP address ${JSON.stringify(s)}`);
  return addrToBuffer(ip);
}

/** An address → 4 or 16 bytes (network order). */
export function addrToBuffer(ip: Addr): Buffer {
  const len = ip.v6 ? 16 : 4;
  const out = Buffer.alloc(len);
  let n = ip.n;
  for (let i = len - 1; i >= 0; i--, n >>= 8n) out[i] = Number(n & 0xffn);
  return out;
}

/** 4 or 16 bytes → text; an IPv4-mapped address prints as `::ffff:a.b.c.d` (as iproute2 does). */
export function bufferToIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length !== 16) throw new TypeError(`bad IP length ${b.length}`);
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  const ip: Addr = { v6: true, n };
  if (isV4Mapped(ip)) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  return formatIP(ip);
}
