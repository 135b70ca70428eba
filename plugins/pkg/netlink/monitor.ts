/**
 * Kernel change notifications (`ip monitor`): a NETLINK_ROUTE socket bound
 * to multicast groups, its messages decoded with the same parsers as dumps
 * (one type per object for requests, dumps and events). A receive buffer
 * overrun means events were lost: `onLost` tells the subscriber to re-read
 * what it cares about (flaxd: a full reconcile).
 */
import { RawNetlinkSocket } from 'netlink/dist/raw';
import { decodeMsgs } from './attrs';
import { ENOBUFS } from './conn';
import { NETLINK_ROUTE, RTM } from './constants';
import { type Link, parseLink } from './link';
import { type Neigh, parseNeigh } from './neigh';
import { parseRoute, type Route } from './route';

/** The legacy RTMGRP_* bits (bind-time group mask). */
export const RTMGRP = { LINK: 0x1, NEIGH: 0x4, IPV4_ROUTE: 0x40, IPV6_ROUTE: 0x400 } as const;

export type NetlinkEvent =
  | { kind: 'link'; deleted: boolean; link: Link }
  | { kind: 'neigh'; deleted: boolean; neigh: Neigh }
  | { kind: 'route'; deleted: boolean; route: Route };

export interface Subscription {
  close(): void;
  [Symbol.dispose](): void;
}


/** The events of one datagram; messages of other types or that do not parse are skipped. */
export function decodeEvents(buf: Buffer): NetlinkEvent[] {
  const out: NetlinkEvent[] = [];
  for (const m of decodeMsgs(buf)) {
    try {
      switch (m.type) {
        case RTM.NEWLINK: case RTM.DELLINK:
          out.push({ kind: 'link', deleted: m.type === RTM.DELLINK, link: parseLink(m.data) });
          break;
        case RTM.NEWNEIGH: case RTM.DELNEIGH:
          out.push({ kind: 'neigh', deleted: m.type === RTM.DELNEIGH, neigh: parseNeigh(m.data) });
          break;
        case RTM.NEWROUTE: case RTM.DELROUTE:
          out.push({ kind: 'route', deleted: m.type === RTM.DELROUTE, route: parseRoute(m.data) });
          break;
        default:
      }
    } catch { /* a message we cannot read is not an event we act on */ }
  }
  return out;
}

/**
 * Subscribes, in the calling thread's current netns, to the RTMGRP_* bits
 * in `groups`. The socket does not keep the process alive.
 */
export function subscribeEvents(groups: number, onEvent: (e: NetlinkEvent) => void, onLost: (why: string) => void): Subscription {
  const socket = new RawNetlinkSocket(NETLINK_ROUTE, { localGroups: groups, recvBufferSize: 1 << 21, sendBufferSize: 1 << 12 });
  socket.unref();
  let closed = false;
  socket.on('message', (buf) => {
    if (!closed) for (const e of decodeEvents(buf)) onEvent(e);
  });
  socket.on('error', (err) => {
    if (closed) return;
    onLost(Math.abs(err.errno ?? 0) === ENOBUFS ? 'netlink event buffer overrun: events lost' : `netlink event socket: ${err.message}`);
  });
  const close = (): void => {
    if (closed) return;
    closed = true;
    socket.close();
  };
  return { close, [Symbol.dispose]: close };
}
