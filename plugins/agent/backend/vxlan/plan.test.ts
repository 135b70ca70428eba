import { describe, expect, it } from 'vitest';
import { type Lease, vxlanBackendData } from '../../store/lease';
import { parseNetwork } from '../../../pkg/ip';
import { type DeviceState, peersFromLeases, planVxlan, type VxlanPeer } from './plan';

const NET = parseNetwork('10.244.0.0/16');
const peer = (i: number, mac = `02:00:00:00:00:0${i}`): VxlanPeer => ({ subnet: `10.244.${i}.0/24`, gateway: `10.244.${i}.0`, vtepMAC: mac, publicIP: `192.168.0.${i}` });
const empty = (): DeviceState => ({ neighs: [], fdb: [], routes: [] });
/** the kernel state after programming the peers */
const programmed = (ps: VxlanPeer[]): DeviceState => ({
  neighs: ps.map((p) => ({ ip: p.gateway, mac: p.vtepMAC, permanent: true })),
  fdb: ps.map((p) => ({ mac: p.vtepMAC, dst: p.publicIP })),
  routes: ps.map((p) => ({ dst: p.subnet, gw: p.gateway, onlink: true })),
});

describe('planVxlan', () => {
  it('programs each new peer neighbour → FDB → route', () => {
    const p = planVxlan([peer(2), peer(3)], empty(), NET);
    expect(p.removals).toEqual([]);
    expect(p.peers.map((x) => x.actions)).toEqual([
      [{ op: 'neighSet', ip: '10.244.2.0', mac: '02:00:00:00:00:02' }, { op: 'fdbSet', mac: '02:00:00:00:00:02', dst: '192.168.0.2' }, { op: 'routeReplace', dst: '10.244.2.0/24', gw: '10.244.2.0' }],
      [{ op: 'neighSet', ip: '10.244.3.0', mac: '02:00:00:00:00:03' }, { op: 'fdbSet', mac: '02:00:00:00:00:03', dst: '192.168.0.3' }, { op: 'routeReplace', dst: '10.244.3.0/24', gw: '10.244.3.0' }],
    ]);
  });

  it('does nothing when the kernel already matches (restart, takeover from flanneld)', () => {
    expect(planVxlan([peer(2), peer(3)], programmed([peer(2), peer(3)]), NET)).toEqual({ removals: [], peers: [] });
  });

  it('re-adds only what drifted: a deleted route, a non-permanent neighbour, a route without onlink', () => {
    const s = programmed([peer(2), peer(3), peer(4)]);
    s.routes = s.routes.filter((r) => r.dst !== '10.244.2.0/24');
    s.neighs[1].permanent = false;
    s.routes.find((r) => r.dst === '10.244.4.0/24')!.onlink = false;
    const p = planVxlan([peer(2), peer(3), peer(4)], s, NET);
    expect(p.removals).toEqual([]);
    expect(p.peers.map((x) => [x.peer.subnet, x.actions.map((a) => a.op)])).toEqual([
      ['10.244.2.0/24', ['routeReplace']], ['10.244.3.0/24', ['neighSet']], ['10.244.4.0/24', ['routeReplace']],
    ]);
  });

  it('removes what belongs to vanished leases, route first, and leaves foreign entries alone', () => {
    const s = programmed([peer(2), peer(3)]);
    s.routes.push({ dst: '192.168.50.0/24', gw: '10.244.3.0', onlink: true }); // not in Network: not ours
    s.neighs.push({ ip: '192.168.0.50', mac: '02:aa:00:00:00:01', permanent: true });
    s.fdb.push({ mac: '00:00:00:00:00:00', dst: '239.1.1.1' });
    const p = planVxlan([peer(2)], s, NET);
    expect(p.removals).toEqual([
      { op: 'routeDel', dst: '10.244.3.0/24', gw: '10.244.3.0' },
      { op: 'fdbDel', mac: '02:00:00:00:00:03', dst: '192.168.0.3' },
      { op: 'neighDel', ip: '10.244.3.0' },
    ]);
    expect(p.peers).toEqual([]);
  });

  it("replaces a peer's stale entries when its VTEP MAC changed", () => {
    const p = planVxlan([peer(2, '02:00:00:00:00:99')], programmed([peer(2)]), NET);
    expect(p.removals).toEqual([{ op: 'fdbDel', mac: '02:00:00:00:00:02', dst: '192.168.0.2' }]);
    expect(p.peers[0].actions).toEqual([
      { op: 'neighSet', ip: '10.244.2.0', mac: '02:00:00:00:00:99' },
      { op: 'fdbSet', mac: '02:00:00:00:00:99', dst: '192.168.0.2' },
    ]);
  });

  it('fixes an FDB entry pointing elsewhere; drops extra remotes of our MAC', () => {
    const s = programmed([peer(2)]);
    s.fdb[0].dst = '192.168.0.222';
    expect(planVxlan([peer(2)], s, NET).peers[0].actions).toEqual([{ op: 'fdbSet', mac: '02:00:00:00:00:02', dst: '192.168.0.2' }]);
    const t = programmed([peer(2)]);
    t.fdb.push({ mac: '02:00:00:00:00:02', dst: '192.168.0.223' });
    const p = planVxlan([peer(2)], t, NET);
    expect(p.removals).toEqual([{ op: 'fdbDel', mac: '02:00:00:00:00:02', dst: '192.168.0.223' }]);
    expect(p.peers).toEqual([]);
  });
});

describe('peersFromLeases', () => {
  const lease = (sn: string, bt: string, data: unknown): Lease => ({ subnet: parseNetwork(sn), attrs: { publicIP: '192.168.0.9', publicIPv6: null, backendType: bt, backendData: data }, expiration: null });
  it('keeps vxlan leases inside the network and says why the others are skipped', () => {
    const { peers, skipped } = peersFromLeases([
      lease('10.244.9.0/24', 'vxlan', vxlanBackendData({ vni: 1, vtepMAC: '02:00:00:00:00:09' })),
      lease('10.244.8.0/24', 'host-gw', undefined),
      lease('10.99.1.0/24', 'vxlan', vxlanBackendData({ vni: 1, vtepMAC: '02:00:00:00:00:08' })),
      lease('10.244.7.0/24', 'vxlan', { VNI: 1 }),
    ], NET);
    expect(peers).toEqual([{ subnet: '10.244.9.0/24', gateway: '10.244.9.0', vtepMAC: '02:00:00:00:00:09', publicIP: '192.168.0.9' }]);
    expect(skipped.map((s) => s.reason)).toEqual([
      'backend type "host-gw" is not vxlan', 'subnet 10.99.1.0/24 is outside the network 10.244.0.0/16', 'BackendData has no valid VNI and VtepMAC',
    ]);
  });
});
