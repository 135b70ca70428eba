import { describe, expect, it } from 'vitest';
import { planRoutesDelta, planVxlanDelta } from './delta';
import { type Lease, vxlanBackendData } from '../store/lease';
import { parseNetwork } from '../../pkg/ip';
import { type LeaseEvent } from '../store/lease';

const NET = parseNetwork('10.244.0.0/16');
const vx = (i: number, mac = `02:00:00:00:00:0${i}`, pub = `192.168.0.${i}`): Lease =>
  ({ subnet: parseNetwork(`10.244.${i}.0/24`), attrs: { publicIP: pub, publicIPv6: null, backendType: 'vxlan', backendData: vxlanBackendData({ vni: 1, vtepMAC: mac }) }, expiration: null });
const hg = (i: number, pub = `192.168.0.${i}`): Lease =>
  ({ subnet: parseNetwork(`10.244.${i}.0/24`), attrs: { publicIP: pub, publicIPv6: null, backendType: 'host-gw' }, expiration: null });
const add = (lease: Lease, old?: Lease): LeaseEvent => (old ? { type: 'added', lease, old } : { type: 'added', lease });
const rm = (lease: Lease): LeaseEvent => ({ type: 'removed', lease });

describe('planVxlanDelta', () => {
  it('a new peer: neighbour → FDB → route, nothing removed', () => {
    const d = planVxlanDelta([add(vx(2))], [vx(2), vx(3)], NET);
    expect(d.plan.removals).toEqual([]);
    expect(d.plan.peers.map((p) => p.actions)).toEqual([[
      { op: 'neighSet', ip: '10.244.2.0', mac: '02:00:00:00:00:02' },
      { op: 'fdbSet', mac: '02:00:00:00:00:02', dst: '192.168.0.2' },
      { op: 'routeReplace', dst: '10.244.2.0/24', gw: '10.244.2.0' },
    ]]);
    expect(d.peers).toBe(1);
  });

  it('a removed peer: its route, FDB entry and neighbour go', () => {
    const d = planVxlanDelta([rm(vx(2))], [vx(3)], NET);
    expect(d.plan).toEqual({ peers: [], removals: [
      { op: 'routeDel', dst: '10.244.2.0/24', gw: '10.244.2.0' },
      { op: 'fdbDel', mac: '02:00:00:00:00:02', dst: '192.168.0.2' },
      { op: 'neighDel', ip: '10.244.2.0' },
    ] });
    expect(d.peers).toBe(-1);
  });

  it('a changed VTEP MAC: the stale FDB entry goes, the neighbour and route are replaced', () => {
    const d = planVxlanDelta([add(vx(2, '02:00:00:00:00:99'), vx(2))], [vx(2, '02:00:00:00:00:99')], NET);
    expect(d.plan.removals).toEqual([{ op: 'fdbDel', mac: '02:00:00:00:00:02', dst: '192.168.0.2' }]);
    expect(d.plan.peers[0].actions.map((a) => a.op)).toEqual(['neighSet', 'fdbSet', 'routeReplace']);
    expect(d.peers).toBe(0);
  });

  it('a node back with a new subnet and its old MAC keeps its FDB entry', () => {
    const d = planVxlanDelta([rm(vx(2, '02:00:00:00:00:77')), add(vx(5, '02:00:00:00:00:77'))], [vx(5, '02:00:00:00:00:77')], NET);
    expect(d.plan.removals.map((a) => a.op)).toEqual(['routeDel', 'neighDel']);
    expect(d.plan.peers.map((p) => p.peer.subnet)).toEqual(['10.244.5.0/24']);
  });

  it('leases that are not vxlan peers of this network program nothing', () => {
    const d = planVxlanDelta([add(hg(2)), rm(hg(3)), add({ ...vx(4), subnet: parseNetwork('10.9.4.0/24') })], [], NET);
    expect(d).toEqual({ plan: { removals: [], peers: [] }, peers: 0 });
  });
});

describe('planRoutesDelta', () => {
  const prefixes = [parseNetwork('192.168.0.0/24')];
  it('adds, removes and re-points routes; an off-link peer gets none (and its old route goes)', () => {
    const d = planRoutesDelta([add(hg(2)), rm(hg(3)), add(hg(4, '192.168.0.44'), hg(4)), add(hg(5, '10.99.0.5'), hg(5))], [hg(2), hg(4, '192.168.0.44'), hg(5, '10.99.0.5')], NET, prefixes);
    expect(d.plan).toEqual([
      { op: 'routeDel', dst: '10.244.3.0/24', gw: '192.168.0.3' },
      { op: 'routeDel', dst: '10.244.5.0/24', gw: '192.168.0.5' },
      { op: 'routeReplace', dst: '10.244.2.0/24', gw: '192.168.0.2' },
      { op: 'routeReplace', dst: '10.244.4.0/24', gw: '192.168.0.44' },
    ]);
    expect(d.peers).toBe(-1);
  });
});
