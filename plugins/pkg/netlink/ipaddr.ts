/** Minimal IP / CIDR / MAC byte conversions for netlink messages. */
import { isIPv4, isIPv6 } from 'node:net';

export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_BRIDGE = 7;
export const AF_UNSPEC = 0;

/** Address family of an IP string (AF_INET/AF_INET6); throws on garbage. */
export function ipFamily(ip: string): number {
  if (isIPv4(ip)) return AF_INET;
  if (isIPv6(ip)) return AF_INET6;
  throw new TypeError(`invalid IP address ${JSON.stringify(ip)}`);
}

/** IP string -> 4 or 16 bytes. */
export function ipToBuffer(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) throw new TypeError(`invalid IP address ${JSON.stringify(ip)}`);
  let s = ip.split('%')[0];
  const out = Buffer.alloc(16);
  // embedded IPv4 tail (::ffff:1.2.3.4)
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  let tail: number[] = [];
  if (m) {
    const b = ipToBuffer(m[2]);
    tail = [(b[0] << 8) | b[1], (b[2] << 8) | b[3]];
    s = m[1].endsWith('::') ? m[1] : m[1].slice(0, -1);
  }
  const [head, rest] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':').map((x) => parseInt(x, 16)) : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':').map((x) => parseInt(x, 16)) : [];
  const words = rest === undefined ? [...h, ...tail] : [...h, ...new Array(8 - h.length - r.length - tail.length).fill(0), ...r, ...tail];
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/** 4 or 16 bytes -> canonical IP string (RFC 5952 for v6). */
export function bufferToIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length !== 16) throw new TypeError(`bad IP length ${b.length}`);
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((b[i] << 8) | b[i + 1]);
  // IPv4-mapped
  if (w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  return formatV6Words(w);
}

/**
 * Eight 16-bit words as RFC 5952 text: lower-case hex, the first longest run
 * of two or more zero words becomes `::` (what Go's net.IP.String prints).
 */
export function formatV6Words(w: readonly number[]): string {
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = w.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export interface Cidr {
  ip: string;
  prefixLen: number;
  family: number;
}

/** "10.1.2.3/24" -> {ip, prefixLen, family}; a bare IP gets /32 or /128. */
export function parseCidr(cidr: string): Cidr {
  const [ip, len, extra] = cidr.split('/');
  if (extra !== undefined) throw new TypeError(`invalid CIDR ${JSON.stringify(cidr)}`);
  const family = ipFamily(ip);
  const max = family === AF_INET ? 32 : 128;
  const prefixLen = len === undefined ? max : Number(len);
  if (!/^\d+$/.test(len ?? String(max)) || prefixLen > max) throw new TypeError(`invalid CIDR ${JSON.stringify(cidr)}`);
  return { ip, prefixLen, family };
}

/** Network address of ip/prefixLen (host bits cleared). */
export function networkOf(ip: string, prefixLen: number): string {
  const b = ipToBuffer(ip);
  for (let i = 0; i < b.length; i++) {
    const bits = Math.max(0, Math.min(8, prefixLen - i * 8));
    b[i] &= (0xff << (8 - bits)) & 0xff;
  }
  return bufferToIp(b);
}

/** IPv4 broadcast of ip/prefixLen. */
export function broadcastOf(ip: string, prefixLen: number): string {
  const b = ipToBuffer(ip);
  for (let i = 0; i < b.length; i++) {
    const bits = Math.max(0, Math.min(8, prefixLen - i * 8));
    b[i] |= ~((0xff << (8 - bits)) & 0xff) & 0xff;
  }
  return bufferToIp(b);
}

/** "aa:bb:cc:dd:ee:ff" (or '-' separated, any case) -> 6 bytes. */
export function macToBuffer(mac: string): Buffer {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new TypeError(`invalid MAC address ${JSON.stringify(mac)}`);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** bytes -> lowercase "aa:bb:..". */
export function bufferToMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}
