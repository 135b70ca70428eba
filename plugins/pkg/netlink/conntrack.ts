/**
 * Conntrack over netlink (NETLINK_NETFILTER / ctnetlink), just what portmap
 * needs: delete the entries whose original tuple is <proto> to one of some
 * destination ports — what the reference does with
 * netlink.ConntrackDeleteFilters after mapping UDP ports, so datagrams of
 * a flow that started before the mapping stop going to the old place.
 * Works in the netns the calling thread is in when called (the host's).
 */
import { Attrs, NLA_F_NESTED, attr } from './attrs';
import { Conn } from './conn';
import { NotFoundError } from './errors';

export const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const CTA_TUPLE_ORIG = 1;
const CTA_ZONE = 18;
const CTA_TUPLE_PROTO = 2;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_DST_PORT = 3;
export const IPPROTO_UDP = 17;

const msgType = (m: number) => (NFNL_SUBSYS_CTNETLINK << 8) | m;
/** struct nfgenmsg: family, version 0, res_id 0 */
const nfgenmsg = (family: number) => Buffer.from([family, 0, 0, 0]);

/** The original tuple's protocol number and destination port of a ctnetlink message payload. */
export function origProtoPort(data: Buffer): { proto?: number; dport?: number; tuple?: Buffer; zone?: Buffer } {
  const a = new Attrs(data, 4);
  const tuple = a.get(CTA_TUPLE_ORIG);
  const p = a.nested(CTA_TUPLE_ORIG)?.nested(CTA_TUPLE_PROTO);
  return { proto: p?.u8(CTA_PROTO_NUM), dport: p?.be16(CTA_PROTO_DST_PORT), tuple, zone: a.get(CTA_ZONE) };
}

/**
 * Deletes the conntrack entries of `family` (AF_INET/AF_INET6) whose
 * original direction is `proto` to one of `ports`. Returns how many went.
 */
export async function conntrackDeleteByDstPort(family: number, proto: number, ports: readonly number[]): Promise<number> {
  if (!ports.length) return 0;
  const want = new Set(ports);
  const conn = new Conn(NETLINK_NETFILTER);
  let n = 0;
  try {
    const msgs = await conn.dump(msgType(IPCTNL_MSG_CT_GET), [nfgenmsg(family)], 'conntrack dump');
    for (const m of msgs) {
      const t = origProtoPort(m.data);
      if (t.proto !== proto || t.dport === undefined || !want.has(t.dport) || !t.tuple) continue;
      const parts = [nfgenmsg(family), attr(CTA_TUPLE_ORIG | NLA_F_NESTED, t.tuple)];
      if (t.zone) parts.push(attr(CTA_ZONE, t.zone));
      try {
        await conn.request(msgType(IPCTNL_MSG_CT_DELETE), 0, parts, 'conntrack delete');
        n++;
      } catch (e) {
        if (!(e instanceof NotFoundError)) throw e; // gone meanwhile
      }
    }
  } finally {
    conn.close();
  }
  return n;
}
