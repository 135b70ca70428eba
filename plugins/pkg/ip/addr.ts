/**
 * IP addresses as (family, bigint) pairs — the one parser and printer of
 * the suite. Parsing follows Go's `net.ParseIP` (IPv4 dotted decimal
 * without leading zeros, no zones); printing is Go's `net.IP.String()`:
 * IPv4 dotted decimal, IPv6 lower-case RFC 5952 (the first longest run of
 * two or more zero groups becomes `::`; ip.test.ts checks it against the
 * `ip-address` package). host-local's file names are the printed form, so
 * this must match the reference byte for byte.
 *
 * Two readings of an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`):
 * `parseAddr` keeps it IPv6 (what the text says: netlink bytes, config
 * text), `parseIP` makes it IPv4 as Go's `To4()` canonicalisation does
 * (host-local's allocation space).
 */
export type Family = 4 | 6;
export interface IP {
  family: Family;
  n: bigint;
}

export const familyBits = (f: Family): number => (f === 4 ? 32 : 128);

/** The netmask of `prefix` as an integer of the family's width. */
export function maskOf(family: Family, prefix: number): bigint {
  const b = BigInt(familyBits(family));
  return ((1n << b) - 1n) ^ ((1n << (b - BigInt(prefix))) - 1n);
}

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

const groupsOf = (part: string): string[] | null => {
  if (part === '') return [];
  const g = part.split(':');
  for (const x of g) if (!/^[0-9a-fA-F]{1,4}$/.test(x)) return null;
  return g;
};

function parseV6(s: string): bigint | null {
  if (s.length > 45 || !/^[0-9a-fA-F:.]+$/.test(s)) return null;
  let tail4: bigint | null = null;
  let text = s;
  if (s.includes('.')) {
    const lastColon = s.lastIndexOf(':');
    tail4 = parseV4(s.slice(lastColon + 1));
    if (tail4 === null) return null;
    text = s.slice(0, lastColon + 1); // keeps the ':' before the dotted tail
  }
  const want = tail4 === null ? 8 : 6;
  const dbl = text.indexOf('::');
  if (dbl >= 0 && dbl !== text.lastIndexOf('::')) return null;
  let groups: string[];
  if (dbl >= 0) {
    let tailText = text.slice(dbl + 2);
    if (tail4 !== null && tailText.endsWith(':')) tailText = tailText.slice(0, -1);
    else if (tail4 !== null && tailText !== '') return null;
    const head = groupsOf(text.slice(0, dbl));
    const tail = groupsOf(tailText);
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
    const g = groupsOf(body);
    if (!g || g.length !== want) return null;
    groups = g;
  }
  let n = 0n;
  for (const g of groups) n = (n << 16n) | BigInt(parseInt(g, 16));
  if (tail4 !== null) n = (n << 32n) | tail4;
  return n;
}

/** Parses an address as written (an IPv4-mapped IPv6 address stays IPv6); null when it is not one. */
export function parseAddr(s: string): IP | null {
  if (typeof s !== 'string' || s.length === 0 || s.length > 45) return null;
  if (!s.includes(':')) {
    const n = parseV4(s);
    return n === null ? null : { family: 4, n };
  }
  const n = parseV6(s);
  return n === null ? null : { family: 6, n };
}

const V4_MAPPED = 0xffffn;

/** True for `::ffff:a.b.c.d`. */
export const isV4Mapped = (ip: IP): boolean => ip.family === 6 && ip.n >> 32n === V4_MAPPED;

/** Parses an address as Go's ParseIP + To4 do: IPv4-mapped IPv6 → IPv4; null when it is not one. */
export function parseIP(s: string): IP | null {
  const ip = parseAddr(s);
  if (ip && isV4Mapped(ip)) return { family: 4, n: ip.n & 0xffffffffn };
  return ip;
}

/** Go's net.IP.String() of the address (IPv6 in RFC 5952 form, mapped ones as hex groups). */
export function formatIP(ip: IP): string {
  const { n } = ip;
  if (ip.family === 4) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
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
  const len = ip.family === 4 ? 4 : 16;
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
  const ip: IP = { family: 6, n };
  if (isV4Mapped(ip)) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  return formatIP(ip);
}
