/**
 * NetlinkHandle.batch on the real kernel, in a throwaway netns: thousands
 * of neighbour/FDB/route changes in a few datagrams, each acked by seq, in
 * order; an item the kernel refuses reports its own error and the others
 * still apply.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AF_INET, type BatchRequest, type NetlinkHandle, NotFoundError, openHandleAt } from '../../plugins/pkg/netlink';
import { BATCH_MAX_MSGS } from '../../plugins/pkg/netlink/conn';
import { createTestNetns, destroyTestNetns, execIn } from '../lib/netns';

let ns: string;
let h: NetlinkHandle;
let vx: number;

beforeAll(async () => {
  [ns] = createTestNetns(1);
  h = openHandleAt(ns);
  const d = await h.linkAdd({ kind: 'veth', name: 'ul0', peerName: 'ul0p' });
  await h.linkSetUp((await h.linkByName('ul0p')).index);
  await h.addrAdd(d.index, '192.168.90.1/24');
  await h.linkSetUp(d.index);
  execIn(ns, 'ip', ['link', 'add', 'vx0', 'type', 'vxlan', 'id', '7', 'dstport', '8472', 'local', '192.168.90.1', 'dev', 'ul0', 'nolearning']);
  vx = (await h.linkByName('vx0')).index;
  await h.linkSetUp(vx);
});
afterAll(() => {
  h?.close();
  if (ns) destroyTestNetns([ns]);
});

const mac = (i: number) => `02:aa:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
const peer = (i: number): BatchRequest[] => {
  const gw = `10.${100 + (i >> 8)}.${i & 0xff}.0`;
  return [
    { op: 'neighSet', neigh: { index: vx, ip: gw, mac: mac(i) } },
    { op: 'fdbSet', index: vx, mac: mac(i), dst: `192.168.91.${(i % 250) + 1}` },
    { op: 'routeReplace', route: { dst: `${gw}/24`, gw, oif: vx, onlink: true } },
  ];
};

describe('NetlinkHandle.batch', () => {
  it('programs 1000 peers (3000 requests, many per datagram) and removes them again', async () => {
    const reqs = Array.from({ length: 1000 }, (_, i) => peer(i)).flat();
    expect(reqs.length).toBeGreaterThan(BATCH_MAX_MSGS * 10);
    const res = await h.batch(reqs);
    expect(res.filter((e) => e !== null)).toEqual([]);
    const routes = await h.routeList({ index: vx, family: AF_INET });
    expect(routes.filter((r) => r.gw).length).toBe(1000);
    expect((await h.neighList(vx, AF_INET)).filter((n) => n.mac?.startsWith('02:aa')).length).toBe(1000);
    expect((await h.fdbList(vx)).filter((f) => f.mac?.startsWith('02:aa')).length).toBe(1000);
    // the kernel's own view, through iproute2
    expect(execIn(ns, 'ip', ['-4', 'route', 'show', 'dev', 'vx0']).trim().split('\n').filter((l) => l.includes('via')).length).toBe(1000);

    const dels = reqs.map((r): BatchRequest => {
      if (r.op === 'routeReplace') return { op: 'routeDel', route: r.route };
      if (r.op === 'fdbSet') return { op: 'fdbDel', index: r.index, mac: r.mac, dst: r.dst };
      return { op: 'neighDel', index: vx, ip: (r as { neigh: { ip: string } }).neigh.ip };
    }).reverse();
    expect((await h.batch(dels)).filter((e) => e !== null)).toEqual([]);
    expect((await h.routeList({ index: vx, family: AF_INET })).filter((r) => r.gw)).toEqual([]);
  });

  it('an item the kernel refuses gets its own error; the items around it apply, in order', async () => {
    const res = await h.batch([
      ...peer(1),
      { op: 'routeDel', route: { dst: '10.250.0.0/24', gw: '10.250.0.0', oif: vx } },
      ...peer(2),
      // the same route twice, the second after a delete: order is kept
      { op: 'routeDel', route: { dst: '10.100.2.0/24', gw: '10.100.2.0', oif: vx } },
    ]);
    expect(res.map((e) => (e === null ? 'ok' : e.constructor.name))).toEqual(['ok', 'ok', 'ok', 'NotFoundError', 'ok', 'ok', 'ok', 'ok']);
    expect(res[3]).toBeInstanceOf(NotFoundError);
    expect((res[3] as NotFoundError).op).toBe('routeDel 10.250.0.0/24');
    const dsts = (await h.routeList({ index: vx, family: AF_INET })).map((r) => r.dst);
    expect(dsts).toContain('10.100.1.0/24');
    expect(dsts).not.toContain('10.100.2.0/24');
  });

  it('single-request methods still behave as before (NotFoundError on a missing delete)', async () => {
    await expect(h.neighDel(vx, '10.251.0.0')).rejects.toBeInstanceOf(NotFoundError);
    await h.routeReplace({ dst: '10.252.0.0/24', gw: '10.252.0.0', oif: vx, onlink: true });
    await h.routeDel({ dst: '10.252.0.0/24', gw: '10.252.0.0', oif: vx });
  });
});
