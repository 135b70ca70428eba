import { describe, expect, it } from 'vitest';
import { parseNetwork as parseCidr } from '../../pkg/ip';
import { type Facts, runChecks } from './checks';

const lease = (sn: string, ip: string, mac: string) => ({ subnet: parseCidr(sn), attrs: { publicIP: ip, publicIPv6: null, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: mac } }, expiration: null });
function facts(o: Partial<Facts> = {}): Facts {
  return {
    subnetFile: '/run/flannel/subnet.env',
    agent: { running: true, pid: 7 },
    subnetEnv: { env: { networks: ['10.244.0.0/16'], subnet: '10.244.1.0/24', ip6Networks: [], mtu: 1450, ipmasq: true } },
    leases: { leases: [lease('10.244.1.0/24', '192.168.1.1', 'aa:aa:aa:aa:aa:01'), lease('10.244.2.0/24', '192.168.1.2', 'aa:aa:aa:aa:aa:02')], source: 'lease dir /l' },
    vxlan: {
      name: 'flannel.1', up: true, kind: 'vxlan', vni: 1, port: 8472, local: '192.168.1.1', mtu: 1450, mac: 'aa:aa:aa:aa:aa:01',
      state: { neighs: [{ ip: '10.244.2.0', mac: 'aa:aa:aa:aa:aa:02', permanent: true }], fdb: [{ mac: 'aa:aa:aa:aa:aa:02', dst: '192.168.1.2' }], routes: [{ dst: '10.244.2.0/24', gw: '10.244.2.0', onlink: true }] },
    },
    vxlanName: 'flannel.1',
    probes: { '10.244.2.0': { small: true, full: true } },
    bridge: { name: 'cni0', addrs: ['10.244.1.1/24'], ports: ['veth1'] },
    bridgeName: 'cni0',
    pods: [{ network: 'cbr0', containerId: 'c1', ifName: 'eth0', netns: '/run/netns/p', mtu: 1450 }],
    sysctl: { ipForward: '1', brNetfilter: true, rpFilterAll: '0', rpFilterDev: '2' },
    forward: { policy: 'DROP', forwardRules: ['-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD'], flannelFwd: ['-A FLANNEL-FWD -s 10.244.0.0/16 -j ACCEPT', '-A FLANNEL-FWD -d 10.244.0.0/16 -j ACCEPT'] },
    conntrack: { count: 10, max: 1000 },
    ...o,
  };
}
const fails = (f: Facts) => runChecks(f).filter((x) => x.status !== 'ok');

describe('flax doctor checks (pure)', () => {
  it('a healthy node: nothing but ok', () => {
    expect(fails(facts())).toEqual([]);
  });
  it('VNI, local address and MTU of the device against the lease and subnet.env', () => {
    const f = facts();
    f.vxlan = { ...f.vxlan!, vni: 2, local: '192.168.1.9', mtu: 1500 };
    expect(fails(f).map((x) => x.problem)).toEqual([
      'VNI 2, the lease says 1',
      'local address 192.168.1.9, the lease\'s public IP is 192.168.1.1: peers send to an address this device does not use',
      'MTU 1500, subnet.env says FLANNEL_MTU=1450',
    ]);
  });
  it('a peer whose FDB entry points elsewhere is named with the entry', () => {
    const f = facts();
    f.vxlan!.state.fdb = [{ mac: 'aa:aa:aa:aa:aa:02', dst: '192.168.1.99' }];
    const x = fails(f).find((y) => y.check === 'peer')!;
    expect(x.object).toBe('peer 10.244.2.0/24 (192.168.1.2)');
    expect(x.problem).toContain('fdb aa:aa:aa:aa:aa:02 dst 192.168.1.2');
  });
  it('a VTEP answering small probes only: MTU trouble', () => {
    const x = fails(facts({ probes: { '10.244.2.0': { small: true, full: false } } }))[0]!;
    expect(x.object).toBe('peer 10.244.2.0/24 VTEP 10.244.2.0 (public 192.168.1.2)');
    expect(x.problem).toMatch(/MTU trouble/);
  });
  it('a pod interface above the overlay MTU', () => {
    const x = fails(facts({ pods: [{ network: 'cbr0', containerId: 'c1', ifName: 'eth0', netns: '/run/netns/p', mtu: 1500 }] }))[0]!;
    expect(x.check).toBe('pod-mtu');
    expect(x.object).toBe('cbr0/c1 eth0 (/run/netns/p)');
  });
  it('conntrack near full warns, full fails', () => {
    expect(fails(facts({ conntrack: { count: 850, max: 1000 } }))[0]).toMatchObject({ status: 'warn', check: 'conntrack' });
    expect(fails(facts({ conntrack: { count: 990, max: 1000 } }))[0]).toMatchObject({ status: 'fail', check: 'conntrack' });
  });
  it('FORWARD policy DROP without FLANNEL-FWD accepting the Network', () => {
    const x = fails(facts({ forward: { policy: 'DROP', forwardRules: [], flannelFwd: [] } }))[0]!;
    expect(x.object).toBe('iptables filter FORWARD');
    expect(x.problem).toContain('no jump to FLANNEL-FWD');
  });
  it('the bridge with a stale gateway, with and without ports', () => {
    const withPods = fails(facts({ bridge: { name: 'cni0', addrs: ['10.244.9.1/24'], ports: ['vethA'] } }))[0]!;
    expect(withPods.object).toBe('cni0 10.244.9.1/24');
    expect(withPods.problem).toContain('vethA');
    expect(fails(facts({ bridge: { name: 'cni0', addrs: ['10.244.9.1/24'], ports: [] } }))[0]!.problem).toContain('no pods attached');
  });
  it('overlapping leases', () => {
    const f = facts();
    (f.leases as { leases: unknown[] }).leases.push(lease('10.244.2.128/25', '192.168.1.3', 'aa:aa:aa:aa:aa:03'));
    expect(fails(f).some((x) => x.check === 'leases' && x.object === '10.244.2.0/24 (192.168.1.2) and 10.244.2.128/25 (192.168.1.3)')).toBe(true);
  });
});
