/**
 * NetlinkHandle.subscribe on the real kernel, in a throwaway netns: link,
 * neighbour and route changes made through another handle arrive as typed
 * events (the same Link/Neigh/Route objects dumps give); events of another
 * netns do not; a closed subscription hears nothing more.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NetlinkEvent, type NetlinkHandle, openHandleAt, RTMGRP } from '../../plugins/pkg/netlink';
import { createTestNetns, destroyTestNetns } from '../lib/netns';

let ns: string, other: string;
let h: NetlinkHandle, ho: NetlinkHandle;

beforeAll(() => {
  [ns, other] = createTestNetns(2);
  h = openHandleAt(ns);
  ho = openHandleAt(other);
});
afterAll(() => {
  h?.close();
  ho?.close();
  if (ns) destroyTestNetns([ns, other]);
});

const until = async (what: string, seen: NetlinkEvent[], pred: (e: NetlinkEvent) => boolean): Promise<NetlinkEvent> => {
  for (let i = 0; i < 200; i++) {
    const e = seen.find(pred);
    if (e) return e;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no event: ${what}; saw ${seen.map((e) => `${e.deleted ? 'del' : 'new'} ${e.kind}`).join(', ')}`);
};

describe('netlink events', () => {
  it('link, neighbour and route changes arrive as typed events, only from the handle\'s netns', async () => {
    const seen: NetlinkEvent[] = [];
    const lost: string[] = [];
    const sub = h.subscribe(RTMGRP.LINK | RTMGRP.NEIGH | RTMGRP.IPV4_ROUTE, (e) => seen.push(e), (w) => lost.push(w));
    try {
      await ho.linkAdd({ kind: 'veth', name: 'elsewhere0', peerName: 'elsewhere1' });
      const v = await h.linkAdd({ kind: 'veth', name: 'ev0', peerName: 'ev1' });
      const e1 = await until('new link ev0', seen, (e) => e.kind === 'link' && !e.deleted && e.link.name === 'ev0');
      expect(e1.kind === 'link' && e1.link.index).toBe(v.index);
      await h.addrAdd(v.index, '10.77.0.1/24');
      await h.linkSetUp(v.index);
      await h.routeReplace({ dst: '10.78.0.0/24', gw: '10.77.0.2', oif: v.index });
      const r = await until('new route 10.78.0.0/24', seen, (e) => e.kind === 'route' && !e.deleted && e.route.dst === '10.78.0.0/24');
      expect(r.kind === 'route' && r.route.gw).toBe('10.77.0.2');
      await h.neighSet({ index: v.index, ip: '10.77.0.9', mac: '02:00:00:00:00:09' });
      await until('new neighbour 10.77.0.9', seen, (e) => e.kind === 'neigh' && !e.deleted && e.neigh.ip === '10.77.0.9');
      await h.routeDel({ dst: '10.78.0.0/24', gw: '10.77.0.2', oif: v.index });
      await until('deleted route', seen, (e) => e.kind === 'route' && e.deleted && e.route.dst === '10.78.0.0/24');
      await h.linkDel(v.index);
      await until('deleted link ev0', seen, (e) => e.kind === 'link' && e.deleted && e.link.name === 'ev0');
      expect(seen.some((e) => e.kind === 'link' && e.link.name.startsWith('elsewhere'))).toBe(false);
      expect(lost).toEqual([]);
    } finally {
      sub.close();
    }
    const n = seen.length;
    await h.linkAdd({ kind: 'veth', name: 'ev2', peerName: 'ev3' });
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.length).toBe(n);
  });
});
