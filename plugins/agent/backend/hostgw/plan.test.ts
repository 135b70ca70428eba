import { describe, expect, it } from 'vitest';
import { type Lease } from '../../store/lease';
import { parseNetwork } from '../../../pkg/ip';
import { hostGwPeers, isOnLink, planRoutes } from './plan';

const net = parseNetwork('10.244.0.0/16');
const onlink = [parseNetwork('192.168.77.0/24')];
const lease = (sn: string, ip: string, backendType = 'host-gw'): Lease => ({ subnet: parseNetwork(sn), attrs: { publicIP: ip, publicIPv6: null, backendType }, expiration: null });

describe('host-gw plan', () => {
  it('on-link: inside a prefix of the external interface', () => {
    expect(isOnLink('192.168.77.12', onlink)).toBe(true);
    expect(isOnLink('192.168.78.12', onlink)).toBe(false);
    expect(isOnLink('fd00::1', onlink)).toBe(false);
    expect(isOnLink('nonsense', onlink)).toBe(false);
  });

  it('peers: host-gw leases in the Network whose public IP is on-link; the rest skipped with the reason', () => {
    const { peers, skipped } = hostGwPeers([lease('10.244.2.0/24', '192.168.77.12'), lease('10.244.3.0/24', '10.99.0.5'),
      lease('10.244.4.0/24', '192.168.77.14', 'vxlan'), lease('10.9.0.0/24', '192.168.77.15')], net, onlink, 'eth0');
    expect(peers).toEqual([{ subnet: '10.244.2.0/24', gw: '192.168.77.12' }]);
    expect(skipped.map((s) => s.reason)).toEqual([
      'public IP 10.99.0.5 is not on-link on eth0 (host-gw needs every node on one L2 network; use vxlan)',
      'backend type "vxlan" is not host-gw', 'subnet 10.9.0.0/24 is outside the network 10.244.0.0/16']);
  });

  it('routes: stale gatewayed routes in the Network removed first, then missing or wrong ones replaced; others untouched', () => {
    const peers = [{ subnet: '10.244.2.0/24', gw: '192.168.77.12' }, { subnet: '10.244.3.0/24', gw: '192.168.77.13' }];
    expect(planRoutes(peers, [
      { dst: '192.168.77.0/24' }, // connected
      { dst: '0.0.0.0/0', gw: '192.168.77.1' }, // outside the Network
      { dst: '10.244.2.0/24', gw: '192.168.77.12' }, // right
      { dst: '10.244.3.0/24', gw: '192.168.77.99' }, // wrong gateway
      { dst: '10.244.9.0/24', gw: '192.168.77.19' }, // a peer gone
    ], net)).toEqual([
      { op: 'routeDel', dst: '10.244.9.0/24', gw: '192.168.77.19' },
      { op: 'routeReplace', dst: '10.244.3.0/24', gw: '192.168.77.13' },
    ]);
    expect(planRoutes(peers, [{ dst: '10.244.2.0/24', gw: '192.168.77.12' }, { dst: '10.244.3.0/24', gw: '192.168.77.13' }], net)).toEqual([]);
  });
});
