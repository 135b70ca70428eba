/**
 * Netlink wire format: message header (nlmsghdr), attributes (nlattr) and the
 * rtnetlink fixed headers (ifinfomsg, ifaddrmsg, rtmsg, ndmsg). Pure; host
 * byte order is little-endian on every platform flax targets (x86-64, arm64).
 */

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

export const align4 = (n: number): number => (n + 3) & ~3;

/** One attribute: 4-byte header + payload, padded to 4 bytes. */
export function attr(type: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const len = 4 + payload.length;
  const b = Buffer.alloc(align4(len));
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  Buffer.from(payload.buffer, payload.byteOffset, payload.length).copy(b, 4);
  return b;
}

export const attrU8 = (type: number, v: number): Buffer => attr(type, Buffer.from([v & 0xff]));
export function attrU16(type: number, v: number): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16LE(v);
  return attr(type, p);
}
/** u16 in network byte order (e.g. IFLA_VXLAN_PORT). */
export function attrBe16(type: number, v: number): Buffer {
  const p = Buffer.alloc(2);
  p.writeUInt16BE(v);
  return attr(type, p);
}
export function attrU32(type: number, v: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32LE(v >>> 0);
  return attr(type, p);
}
/** NUL-terminated string. */
export const attrStr = (type: number, s: string): Buffer => attr(type, Buffer.from(s + '\0', 'utf8'));
export const attrFlag = (type: number): Buffer => attr(type);
/** Nested attribute (children are already-encoded attributes). */
export const attrNested = (type: number, children: Uint8Array[], nestedFlag = false): Buffer =>
  attr(nestedFlag ? type | NLA_F_NESTED : type, Buffer.concat(children));

/** Parsed attributes: last value per type (masked) plus the ordered list. */
export class Attrs {
  readonly list: Array<[number, Buffer]> = [];
  readonly map = new Map<number, Buffer>();
  constructor(buf: Buffer, offset = 0) {
    let off = offset;
    while (off + 4 <= buf.length) {
      const len = buf.readUInt16LE(off);
      const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
      if (len < 4 || off + len > buf.length) break;
      const v = buf.subarray(off + 4, off + len);
      this.list.push([type, v]);
      this.map.set(type, v);
      off += align4(len);
    }
  }
  has(t: number): boolean { return this.map.has(t); }
  get(t: number): Buffer | undefined { return this.map.get(t); }
  u8(t: number): number | undefined { const v = this.map.get(t); return v && v.length >= 1 ? v.readUInt8(0) : undefined; }
  u16(t: number): number | undefined { const v = this.map.get(t); return v && v.length >= 2 ? v.readUInt16LE(0) : undefined; }
  be16(t: number): number | undefined { const v = this.map.get(t); return v && v.length >= 2 ? v.readUInt16BE(0) : undefined; }
  u32(t: number): number | undefined { const v = this.map.get(t); return v && v.length >= 4 ? v.readUInt32LE(0) : undefined; }
  s32(t: number): number | undefined { const v = this.map.get(t); return v && v.length >= 4 ? v.readInt32LE(0) : undefined; }
  str(t: number): string | undefined {
    const v = this.map.get(t);
    if (!v) return undefined;
    const z = v.indexOf(0);
    return v.subarray(0, z < 0 ? v.length : z).toString('utf8');
  }
  nested(t: number): Attrs | undefined { const v = this.map.get(t); return v ? new Attrs(v) : undefined; }
}

// ---- nlmsghdr ----------------------------------------------------------------

export const NLMSG_HDRLEN = 16;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_ECHO = 0x8;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP_FILTERED = 0x20;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;

export interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** payload after the 16-byte header */
  data: Buffer;
}

/** Encodes one netlink message (pid 0: the kernel fills in the port). */
export function encodeMsg(type: number, flags: number, seq: number, parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  const hdr = Buffer.alloc(NLMSG_HDRLEN);
  hdr.writeUInt32LE(NLMSG_HDRLEN + body.length, 0);
  hdr.writeUInt16LE(type, 4);
  hdr.writeUInt16LE(flags, 6);
  hdr.writeUInt32LE(seq >>> 0, 8);
  hdr.writeUInt32LE(0, 12);
  return Buffer.concat([hdr, body]);
}

/** Splits a datagram into messages. */
export function decodeMsgs(buf: Buffer): NlMsg[] {
  const out: NlMsg[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      data: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

// ---- rtnetlink fixed headers -------------------------------------------------

export interface IfInfoMsg { family?: number; type?: number; index?: number; flags?: number; change?: number }
export const IFINFOMSG_LEN = 16;
export function ifinfomsg(m: IfInfoMsg = {}): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b.writeUInt8(m.family ?? 0, 0);
  b.writeUInt16LE(m.type ?? 0, 2);
  b.writeInt32LE(m.index ?? 0, 4);
  b.writeUInt32LE((m.flags ?? 0) >>> 0, 8);
  b.writeUInt32LE((m.change ?? 0) >>> 0, 12);
  return b;
}
export function parseIfinfomsg(b: Buffer): Required<IfInfoMsg> {
  return { family: b.readUInt8(0), type: b.readUInt16LE(2), index: b.readInt32LE(4), flags: b.readUInt32LE(8), change: b.readUInt32LE(12) };
}

export interface IfAddrMsg { family: number; prefixLen?: number; flags?: number; scope?: number; index?: number }
export const IFADDRMSG_LEN = 8;
export function ifaddrmsg(m: IfAddrMsg): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN);
  b.writeUInt8(m.family, 0);
  b.writeUInt8(m.prefixLen ?? 0, 1);
  b.writeUInt8((m.flags ?? 0) & 0xff, 2);
  b.writeUInt8(m.scope ?? 0, 3);
  b.writeUInt32LE(m.index ?? 0, 4);
  return b;
}
export function parseIfaddrmsg(b: Buffer): Required<IfAddrMsg> {
  return { family: b.readUInt8(0), prefixLen: b.readUInt8(1), flags: b.readUInt8(2), scope: b.readUInt8(3), index: b.readUInt32LE(4) };
}

export interface RtMsg { family: number; dstLen?: number; srcLen?: number; tos?: number; table?: number; protocol?: number; scope?: number; type?: number; flags?: number }
export const RTMSG_LEN = 12;
export function rtmsg(m: RtMsg): Buffer {
  const b = Buffer.alloc(RTMSG_LEN);
  b.writeUInt8(m.family, 0);
  b.writeUInt8(m.dstLen ?? 0, 1);
  b.writeUInt8(m.srcLen ?? 0, 2);
  b.writeUInt8(m.tos ?? 0, 3);
  b.writeUInt8(m.table ?? 0, 4);
  b.writeUInt8(m.protocol ?? 0, 5);
  b.writeUInt8(m.scope ?? 0, 6);
  b.writeUInt8(m.type ?? 0, 7);
  b.writeUInt32LE((m.flags ?? 0) >>> 0, 8);
  return b;
}
export function parseRtmsg(b: Buffer): Required<RtMsg> {
  return {
    family: b.readUInt8(0), dstLen: b.readUInt8(1), srcLen: b.readUInt8(2), tos: b.readUInt8(3),
    table: b.readUInt8(4), protocol: b.readUInt8(5), scope: b.readUInt8(6), type: b.readUInt8(7), flags: b.readUInt32LE(8),
  };
}

export interface NdMsg { family: number; index?: number; state?: number; flags?: number; type?: number }
export const NDMSG_LEN = 12;
export function ndmsg(m: NdMsg): Buffer {
  const b = Buffer.alloc(NDMSG_LEN);
  b.writeUInt8(m.family, 0);
  b.writeInt32LE(m.index ?? 0, 4);
  b.writeUInt16LE(m.state ?? 0, 8);
  b.writeUInt8(m.flags ?? 0, 10);
  b.writeUInt8(m.type ?? 0, 11);
  return b;
}
export function parseNdmsg(b: Buffer): Required<NdMsg> {
  return { family: b.readUInt8(0), index: b.readInt32LE(4), state: b.readUInt16LE(8), flags: b.readUInt8(10), type: b.readUInt8(11) };
}
