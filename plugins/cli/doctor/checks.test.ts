import { describe, expect, it } from 'vitest';
import { parseNetwork } from '../../pkg/ip';
import { type Facts, runChecks } from './checks';

const lease = (sn: string, ip: string, mac: string) => ({ subnet: parseNetwork(sn), attrs: { publicIP: ip, publicIPv6: null, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: mac } }, expiration: null });
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

  describe('dual-stack (flannel-v6.<VNI>, BackendV6Data, PublicIPv6) and nftables mode', () => {
    const dual = (sn: string, sn6: string, ip: string, ip6: string, mac: string, mac6: string) => ({
      subnet: parseNetwork(sn), ipv6Subnet: parseNetwork(sn6), expiration: null,
      attrs: { publicIP: ip, publicIPv6: ip6, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: mac }, backendV6Data: { VNI: 1, VtepMAC: mac6 } },
    });
    const own = dual('10.244.1.0/24', 'fc00:0:0:1::/64', '192.168.1.1', 'fd77::11', 'aa:aa:aa:aa:aa:01', 'bb:bb:bb:bb:bb:01');
    const peer = dual('10.244.2.0/24', 'fc00:0:0:2::/64', '192.168.1.2', 'fd77::12', 'aa:aa:aa:aa:aa:02', 'bb:bb:bb:bb:bb:02');
    const nftForward = (family: 'ip' | 'ip6', table: string, net: string, field: 'saddr' | 'daddr' = 'daddr') => {
      const [addr, len] = net.split('/');
      const m = (f: string) => ({ match: { op: '==', left: { payload: { protocol: family, field: f } }, right: { prefix: { addr, len: Number(len) } } } });
      return {
        chains: [{ family, table, name: 'forward', type: 'filter', hook: 'forward', prio: 0, policy: 'accept' }],
        rules: [{ family, table, chain: 'forward', expr: [m('saddr'), { accept: null }] }, { family, table, chain: 'forward', expr: [m(field), { accept: null }] }],
      };
    };
    function dfacts(o: Partial<Facts> = {}): Facts {
      const base = facts();
      return {
        ...base,
        subnetEnv: { env: { networks: ['10.244.0.0/16'], subnet: '10.244.1.1/24', ip6Networks: ['fc00::/48'], ip6Subnet: 'fc00:0:0:1::1/64', mtu: 1450, ipmasq: false } },
        leases: { leases: [own, peer] as never, source: 'lease dir /l' },
        vxlan6: {
          name: 'flannel-v6.1', up: true, kind: 'vxlan', vni: 1, port: 8472, local: 'fd77::11', mtu: 1430, mac: 'bb:bb:bb:bb:bb:01',
          state: { neighs: [{ ip: 'fc00:0:0:2::', mac: 'bb:bb:bb:bb:bb:02', permanent: true }], fdb: [{ mac: 'bb:bb:bb:bb:bb:02', dst: 'fd77::12' }], routes: [{ dst: 'fc00:0:0:2::/64', gw: 'fc00:0:0:2::', onlink: true }] },
        },
        vxlan6Name: 'flannel-v6.1',
        probes: { '10.244.2.0': { small: true, full: true }, 'fc00:0:0:2::': { small: true, full: true } },
        sysctl: { ...base.sysctl, ip6Forward: '1' },
        forward6: { policy: 'ACCEPT', forwardRules: [], flannelFwd: [] },
        ...o,
      };
    }
    it('healthy: both devices, both peers, both probes ok', () => {
      const all = runChecks(dfacts());
      expect(all.filter((x) => x.status !== 'ok')).toEqual([]);
      expect(all.filter((x) => x.check === 'peer').map((x) => x.object)).toEqual(['peer 10.244.2.0/24 (192.168.1.2)', 'peer fc00:0:0:2::/64 (fd77::12)']);
      expect(all.some((x) => x.check === 'vxlan' && x.object === 'flannel-v6.1')).toBe(true);
      expect(all.some((x) => x.object === 'net.ipv6.conf.all.forwarding')).toBe(true);
    });
    it('the IPv6 device missing, wrong local address or MTU, a peer\'s IPv6 route missing', () => {
      expect(fails(dfacts({ vxlan6: null }))[0]).toMatchObject({ check: 'vxlan', object: 'flannel-v6.1', problem: expect.stringContaining('no IPv6 pod traffic') });
      const f = dfacts();
      f.vxlan6 = { ...f.vxlan6!, local: 'fd77::99', mtu: 1450 };
      expect(fails(f).map((x) => x.problem)).toEqual([
        'local address fd77::99, the lease\'s public IPv6 is fd77::11: peers send to an address this device does not use',
        'MTU 1450, expected 1430 (FLANNEL_MTU=1450 less the 20 bytes IPv6 encapsulation takes more)',
      ]);
      const g = dfacts();
      g.vxlan6!.state.routes = [];
      expect(fails(g)[0]).toMatchObject({ check: 'peer', object: 'peer fc00:0:0:2::/64 (fd77::12)' });
    });
    it('an IPv6 VTEP that does not answer is named with its public IPv6', () => {
      const x = fails(dfacts({ probes: { '10.244.2.0': { small: true, full: true }, 'fc00:0:0:2::': { small: false } } }))[0]!;
      expect(x.object).toBe('peer fc00:0:0:2::/64 VTEP fc00:0:0:2:: (public fd77::12)');
    });
    it('IPv6 forwarding off; subnet.env\'s IPv6 subnet not our lease\'s', () => {
      expect(fails(dfacts({ sysctl: { ipForward: '1', ip6Forward: '0', brNetfilter: true } }))[0]).toMatchObject({ object: 'net.ipv6.conf.all.forwarding' });
      const f = dfacts();
      (f.subnetEnv as { env: { ip6Subnet: string } }).env.ip6Subnet = 'fc00:0:0:9::1/64';
      expect(fails(f).find((x) => x.check === 'subnet.env')!.problem).toContain('FLANNEL_IPV6_SUBNET=fc00:0:0:9::1/64');
    });
    it('nftables mode: our forward chain per family; an iptables DROP policy still drops', () => {
      const nft = { v4: nftForward('ip', 'flannel-ipv4', '10.244.0.0/16') as never, v6: nftForward('ip6', 'flannel-ipv6', 'fc00::/48') as never };
      const f = dfacts({ nftables: true, nft, forward: { policy: 'ACCEPT', forwardRules: [], flannelFwd: [] } });
      expect(fails(f)).toEqual([]);
      expect(runChecks(f).some((x) => x.object === 'nftables ip6 flannel-ipv6 chain forward' && x.status === 'ok')).toBe(true);
      const broken = dfacts({ nftables: true, nft: { ...nft, v6: nftForward('ip6', 'flannel-ipv6', 'fc00::/48', 'saddr') as never }, forward: { policy: 'ACCEPT', forwardRules: [], flannelFwd: [] } });
      expect(fails(broken)[0]).toMatchObject({ object: 'nftables ip6 flannel-ipv6 chain forward', problem: expect.stringContaining('does not accept fc00::/48') });
      const missing = dfacts({ nftables: true, nft: { ...nft, v4: { chains: [], rules: [], tables: [] } as never }, forward: { policy: 'ACCEPT', forwardRules: [], flannelFwd: [] } });
      expect(fails(missing)[0]!.problem).toMatch(/^is missing/);
      const drop = dfacts({ nftables: true, nft, forward: { policy: 'DROP', forwardRules: [], flannelFwd: [] } });
      expect(fails(drop)[0]).toMatchObject({ object: 'iptables filter FORWARD', problem: expect.stringContaining('EnableNFTables') });
    });
  });
});
