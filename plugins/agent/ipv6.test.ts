/**
 * The pure parts of flaxd's IPv6 and dual-stack support: allocation and
 * lease reuse for both families, lease values and keys as flanneld writes
 * them, subnet.env, the external interface's IPv6 address, --public-ipv6,
 * the vxlan and host-gw plans per family, the ip6tables/nftables rules and
 * the kube store's annotations and pod CIDRs.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Addr, type Link } from '../pkg/netlink';
import { freeSubnets } from './store/alloc';
import { parseNetConfig } from './config';
import { FakeLeaseStore } from '../../test/lib/agent/fake-store';
import { parseFlags, UsageError } from './flags';
import { ifaceAddrs, selectExtIface } from './backend/iface';
import { ANN, leaseAnnotations, nodePodCidr, nodeToLease, openKubeLeaseStore } from './store/kube';
import { FakeKubeApi } from '../../test/lib/agent/kube-fake-api';
import { type Lease, type LeaseAttrs, leaseKey, marshalLeaseAttrs, SUBNET_TTL_MS, unmarshalLeaseAttrs, vxlanBackendData } from './store/lease';
import { acquireLease, isIPv6SubnetCompat, isSubnetCompat } from './store/acquire';
import { familyRules, iptChains, nftChains, nftRepair } from './firewall/rules';
import { EMPTY_V4, formatPrefix, parseNetwork } from '../pkg/ip';
import { readSubnetFileCidr, renderSubnetEnv } from './subnet-env';
import { hostGwPeers, planRoutes } from './backend/hostgw/plan';
import { peersFromLeases, planVxlan } from './backend/vxlan/plan';
import { emptyRuleset } from '../pkg/nft';
import { thrownMessage } from '../../test/lib/thrown';
import { bothFamilies } from './backend/setup';
import { leaseEtcdKey, parseLeaseKv } from './store/etcd-keys';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const clock = { now: () => T0 };
const dual = parseNetConfig('{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fc00::/48","Backend":{"Type":"vxlan"}}');
const v6only = parseNetConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fc00::/48","Backend":{"Type":"vxlan"}}');
const mac = (i: number) => `02:00:00:00:00:0${i}`;
const attrs = (i: number, v4 = true): LeaseAttrs => ({
  publicIP: v4 ? `192.168.0.${i}` : '0.0.0.0', publicIPv6: `fd77::${i}`, backendType: 'vxlan',
  ...(v4 ? { backendData: vxlanBackendData({ vni: 1, vtepMAC: mac(i) }) } : {}), backendV6Data: vxlanBackendData({ vni: 1, vtepMAC: `06:00:00:00:00:0${i}` }),
});
const lease = (sn: string, sn6: string | undefined, a: LeaseAttrs): Lease =>
  (sn6 ? { subnet: sn ? parseNetwork(sn) : EMPTY_V4, ipv6Subnet: parseNetwork(sn6), attrs: a, expiration: T0 + SUBNET_TTL_MS } : { subnet: parseNetwork(sn), attrs: a, expiration: T0 + SUBNET_TTL_MS });

describe('IPv6 config', () => {
  it('refuses a config with neither family, as flanneld ("none defined stack")', () => {
    expect(() => parseNetConfig('{"EnableIPv4":false,"Network":"10.244.0.0/16"}')).toThrow(/^EnableIPv4: neither IPv4 nor IPv6 is enabled/);
    expect(v6only.network).toBeUndefined();
    expect([dual.ipv6SubnetLen, formatPrefix({ v6: true, ip: dual.ipv6SubnetMin, prefixLen: 64 })]).toEqual([64, 'fc00:0:0:1::/64']);
  });
});

describe('IPv6 leases', () => {
  it("values and keys are flanneld's: PublicIPv6 and BackendV6Data; IPv6-only = PublicIP 0.0.0.0, key 0.0.0.0-0&<v6>-64", () => {
    expect(marshalLeaseAttrs(attrs(3))).toBe('{"PublicIP":"192.168.0.3","PublicIPv6":"fd77::3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:03"},"BackendV6Data":{"VNI":1,"VtepMAC":"06:00:00:00:00:03"}}');
    expect(marshalLeaseAttrs(attrs(4, false))).toBe('{"PublicIP":"0.0.0.0","PublicIPv6":"fd77::4","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"06:00:00:00:00:04"}}');
    expect(unmarshalLeaseAttrs('{"PublicIP":"0.0.0.0","PublicIPv6":"FD77:0:0::4","BackendType":"host-gw","BackendData":null}'))
      .toEqual({ publicIP: '0.0.0.0', publicIPv6: 'fd77::4', backendType: 'host-gw' });
    expect(leaseKey(lease('10.244.7.0/24', 'fc00:0:0:2a::/64', attrs(1)))).toBe('10.244.7.0-24&fc00:0:0:2a::-64');
    expect(leaseKey(lease('', 'fc00:0:0:2a::/64', attrs(1, false)))).toBe('0.0.0.0-0&fc00:0:0:2a::-64');
  });

  it('etcd: the IPv6-only key round-trips (flanneld writes no such key: its IPv6-only mode is kube only)', () => {
    const key = leaseEtcdKey('/coreos.com/network', EMPTY_V4, parseNetwork('fc00:0:0:2a::/64'));
    expect(key).toBe('/coreos.com/network/subnets/0.0.0.0-0&fc00:0:0:2a::-64');
    const p = parseLeaseKv('/coreos.com/network', { key: Buffer.from(key), value: Buffer.from(marshalLeaseAttrs(attrs(4, false))), lease: '7' });
    expect(p.kind === 'lease' && [leaseKey({ subnet: p.subnet, ipv6Subnet: p.ipv6Subnet }), p.attrs.publicIPv6, p.reservation]).toEqual(['0.0.0.0-0&fc00:0:0:2a::-64', 'fd77::4', false]);
  });

  it('free IPv6 subnets: IPv6SubnetLen steps from IPv6SubnetMin, skipping the taken ones and ignoring leases without an IPv6 part', () => {
    const taken = [lease('10.244.1.0/24', 'fc00:0:0:1::/64', attrs(1)), lease('10.244.2.0/24', undefined, attrs(2))];
    expect(freeSubnets(dual, taken, 3, true).map(formatPrefix)).toEqual(['fc00:0:0:2::/64', 'fc00:0:0:3::/64', 'fc00:0:0:4::/64']);
    // an IPv6-only lease's empty IPv4 part overlaps no IPv4 subnet
    expect(freeSubnets(dual, [lease('', 'fc00:0:0:9::/64', attrs(9, false))], 1).map(formatPrefix)).toEqual(['10.244.1.0/24']);
    const small = parseNetConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fc00::/124"}'); // /126 subnets: ::4 ::8 ::c
    expect(freeSubnets(small, [], 100, true).map(formatPrefix)).toEqual(['fc00::4/126', 'fc00::8/126', 'fc00::c/126']);
  });

  it('compatibility: each enabled family in its range with its length; a disabled family must be empty', () => {
    expect(isIPv6SubnetCompat(dual, parseNetwork('fc00:0:0:5::/64'))).toBe(true);
    expect(isIPv6SubnetCompat(dual, parseNetwork('fc00::/64'))).toBe(false); // below IPv6SubnetMin (the first subnet is skipped)
    expect(isIPv6SubnetCompat(dual, parseNetwork('fc00:0:0:5::/80'))).toBe(false);
    expect(isIPv6SubnetCompat(dual, undefined)).toBe(false);
    const v4 = parseNetConfig('{"Network":"10.244.0.0/16"}');
    expect(isIPv6SubnetCompat(v4, undefined)).toBe(true);
    expect(isIPv6SubnetCompat(v4, parseNetwork('fc00:0:0:5::/64'))).toBe(false);
    expect(isSubnetCompat(v6only, EMPTY_V4)).toBe(true);
    expect(isSubnetCompat(v6only, parseNetwork('10.244.1.0/24'))).toBe(false);
  });

  it('dual-stack acquire: a pair of random free subnets, created once; reused by PublicIP on restart', async () => {
    const s = new FakeLeaseStore(clock);
    s.put(lease('10.244.1.0/24', 'fc00:0:0:1::/64', attrs(1)));
    const offered: number[] = [];
    const l = await acquireLease({ store: s, config: dual, randInt: (n) => { offered.push(n); return 1; } }, attrs(2));
    expect(offered).toEqual([100, 100]);
    expect([formatPrefix(l.subnet), formatPrefix(l.ipv6Subnet!)]).toEqual(['10.244.3.0/24', 'fc00:0:0:3::/64']);
    expect(s.calls).toContain('create 10.244.3.0-24&fc00:0:0:3::-64');
    const again = await acquireLease({ store: s, config: dual, randInt: () => 0 }, attrs(2));
    expect(leaseKey(again)).toBe('10.244.3.0-24&fc00:0:0:3::-64');
    expect(s.calls.at(-1)).toBe(`update 10.244.3.0-24&fc00:0:0:3::-64 ttl=${SUBNET_TTL_MS}`);
  });

  it('dual-stack acquire: gives up a pair whose IPv4 subnet another node leased meanwhile under another key, and takes another', async () => {
    const s = new FakeLeaseStore(clock);
    let raced = false;
    s.beforeCreate = (sn) => {
      if (!raced) { raced = true; s.put(lease(formatPrefix(sn), 'fc00:0:0:77::/64', attrs(7))); }
    };
    const l = await acquireLease({ store: s, config: dual, randInt: () => 0 }, attrs(2));
    expect(s.calls.filter((c) => /^(create|delete)/.test(c))).toEqual(['create 10.244.1.0-24&fc00:0:0:1::-64', 'delete 10.244.1.0-24&fc00:0:0:1::-64', 'create 10.244.2.0-24&fc00:0:0:1::-64']);
    expect(leaseKey(l)).toBe('10.244.2.0-24&fc00:0:0:1::-64');
    expect([...s.leases.keys()].sort()).toEqual(['10.244.1.0-24&fc00:0:0:77::-64', '10.244.2.0-24&fc00:0:0:1::-64']);
    // an IPv6-only lease (empty IPv4 part) in the listing clashes with nothing
    const t = new FakeLeaseStore(clock);
    t.put(lease('', 'fc00:0:0:9::/64', attrs(9, false)));
    expect(leaseKey(await acquireLease({ store: t, config: dual, randInt: () => 0 }, attrs(2)))).toBe('10.244.1.0-24&fc00:0:0:1::-64');
  });

  it("dual-stack acquire: subnet.env's subnet of each family when free and fitting; our IPv4-only lease is replaced, keeping its IPv4 subnet", async () => {
    const s = new FakeLeaseStore(clock);
    const l = await acquireLease({ store: s, config: dual, prevSubnet: parseNetwork('10.244.42.0/24'), prevIPv6Subnet: parseNetwork('fc00:0:0:42::/64'), randInt: () => 0 }, attrs(2));
    expect(leaseKey(l)).toBe('10.244.42.0-24&fc00:0:0:42::-64');
    const t = new FakeLeaseStore(clock);
    t.put(lease('10.244.8.0/24', undefined, attrs(2))); // before EnableIPv6
    t.put(lease('10.244.9.0/24', 'fc00:0:0:42::/64', attrs(9))); // the old v6 subnet is taken
    const m = await acquireLease({ store: t, config: dual, prevSubnet: parseNetwork('10.244.77.0/24'), prevIPv6Subnet: parseNetwork('fc00:0:0:42::/64'), randInt: () => 0 }, attrs(2));
    expect(t.calls).toContain('delete 10.244.8.0-24');
    expect(leaseKey(m)).toBe('10.244.77.0-24&fc00:0:0:1::-64'); // subnet.env's IPv4 subnet; its IPv6 one was taken
    // IPv6 enabled on a running IPv4 node without a subnet.env: its lease's IPv4 subnet stays (flanneld would move it)
    const u = new FakeLeaseStore(clock);
    u.put(lease('10.244.8.0/24', undefined, attrs(2)));
    const k = await acquireLease({ store: u, config: dual, randInt: () => 3 }, attrs(2));
    expect(u.calls.filter((c) => /^(create|delete)/.test(c))).toEqual(['delete 10.244.8.0-24', 'create 10.244.8.0-24&fc00:0:0:4::-64']);
    expect(leaseKey(k)).toBe('10.244.8.0-24&fc00:0:0:4::-64');
  });

  it('IPv6-only acquire: found by PublicIPv6, key 0.0.0.0-0&<v6>-64, previous FLANNEL_IPV6_SUBNET reused', async () => {
    const s = new FakeLeaseStore(clock);
    s.put(lease('', 'fc00:0:0:1::/64', attrs(1, false)));
    const l = await acquireLease({ store: s, config: v6only, randInt: () => 0 }, attrs(2, false));
    expect(leaseKey(l)).toBe('0.0.0.0-0&fc00:0:0:2::-64');
    expect(l.subnet).toEqual(EMPTY_V4);
    const again = await acquireLease({ store: s, config: v6only, randInt: () => 5 }, attrs(2, false));
    expect(leaseKey(again)).toBe('0.0.0.0-0&fc00:0:0:2::-64');
    const t = new FakeLeaseStore(clock);
    const p = await acquireLease({ store: t, config: v6only, prevIPv6Subnet: parseNetwork('fc00:0:0:beef::/64'), randInt: () => 0 }, attrs(3, false));
    expect(leaseKey(p)).toBe('0.0.0.0-0&fc00:0:0:beef::-64');
  });

  it('subnet.env: IPv6-only has only the IPv6 pair; FLANNEL_IPV6_SUBNET is read back as its network', () => {
    expect(renderSubnetEnv(v6only, false, EMPTY_V4, parseNetwork('fc00:0:0:2a::/64'), 1430))
      .toBe('FLANNEL_IPV6_NETWORK=fc00::/48\nFLANNEL_IPV6_SUBNET=fc00:0:0:2a::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n');
    const dir = mkdtempSync(path.join(tmpdir(), 'flaxd-v6env-'));
    try {
      const f = path.join(dir, 'subnet.env');
      writeFileSync(f, renderSubnetEnv(dual, true, parseNetwork('10.244.9.0/24'), parseNetwork('fc00:0:0:9::/64'), 1450));
      expect(formatPrefix(readSubnetFileCidr(f, 'FLANNEL_IPV6_SUBNET')!)).toBe('fc00:0:0:9::/64');
      expect(formatPrefix(readSubnetFileCidr(f, 'FLANNEL_SUBNET')!)).toBe('10.244.9.0/24');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('IPv6 external interface and flags', () => {
  const link = (index: number, name: string): Link => ({ index, name, kind: '', mtu: 1500, mac: '', flags: 0, up: true, lowerUp: true, promisc: false, masterIndex: 0, operstate: 'up' });
  const a = (index: number, address: string, o: Partial<Addr> = {}): Addr => ({ index, family: address.includes(':') ? 10 : 2, address, prefixLen: 64, cidr: `${address}/64`,
    scope: address.startsWith('fe80') ? 253 : 0, flags: 0, tentative: false, dadfailed: false, permanent: true, noDad: false, noPrefixRoute: false, ...o });
  const links = [link(1, 'lo'), link(2, 'eth0'), link(3, 'eth1')];
  const addrs = [a(2, '192.168.0.1'), a(2, 'fe80::1'), a(2, '2001:db8::9', { permanent: false }), a(2, 'fd00::1'), a(3, '10.0.0.1'), a(3, 'fd01::1', { flags: 0x20 })];
  const sel = (o: object = {}) => ({ iface: [], ifaceRegex: [], publicIp: '', ...o });
  const pick = (r: ReturnType<typeof selectExtIface>) => ('error' in r ? r.error : `${r.link.name} ${r.ifaceAddr || '-'} ${r.publicIP || '-'} ${r.ifaceV6Addr} ${r.publicIPv6}`);

  it("orders IPv6 addresses as flanneld: global before link-local, permanent before autoconfigured; deprecated ones skipped", () => {
    expect(ifaceAddrs(addrs, 2, true)).toEqual(['fd00::1', '2001:db8::9', 'fe80::1']);
    expect(ifaceAddrs(addrs, 3, true)).toEqual([]);
  });

  it('dual-stack: one interface with both families (default routes must agree); --public-ipv6 overrides the published one', () => {
    const both = { v4: true, v6: true };
    expect(pick(selectExtIface(sel(), links, addrs, 2, both, 2))).toBe('eth0 192.168.0.1 192.168.0.1 fd00::1 fd00::1');
    expect(pick(selectExtIface(sel({ iface: ['eth0'], publicIpv6: '2001:DB8:0:0::77' }), links, addrs, 2, both))).toBe('eth0 192.168.0.1 192.168.0.1 fd00::1 2001:db8::77');
    expect(pick(selectExtIface(sel({ iface: ['2001:db8::9'] }), links, addrs, 2, both))).toBe('eth0 192.168.0.1 192.168.0.1 2001:db8::9 2001:db8::9');
    expect(pick(selectExtIface(sel({ iface: ['eth1'] }), links, addrs, 2, both))).toMatch(/^failed to find an interface with an IPv4 and IPv6 address matching --iface eth1$/);
    expect(pick(selectExtIface(sel(), links, addrs, 2, both, 3))).toMatch(/IPv6 default route's interface eth1 must be the IPv4 one's, eth0/);
  });

  it('IPv6-only: the IPv6 default route, no IPv4 address needed; regex on addresses', () => {
    const v6 = { v4: false, v6: true };
    expect(pick(selectExtIface(sel(), links, addrs, undefined, v6, 2))).toBe('eth0 - - fd00::1 fd00::1');
    expect(pick(selectExtIface(sel(), links, addrs, 2, v6, undefined))).toMatch(/no IPv6 default route/);
    expect(pick(selectExtIface(sel({ ifaceRegex: ['^2001:'] }), links, addrs, undefined, v6))).toBe('eth0 - - 2001:db8::9 2001:db8::9');
  });

  it('--public-ipv6 / FLANNELD_PUBLIC_IPV6 take an IPv6 address', () => {
    expect(parseFlags(['--public-ipv6', 'fd00::5']).publicIpv6).toBe('fd00::5');
    expect(parseFlags([], { FLANNELD_PUBLIC_IPV6: 'fd00::6' }).publicIpv6).toBe('fd00::6');
    expect(thrownMessage(() => parseFlags(['--public-ipv6', '10.0.0.1']), UsageError)).toBe('invalid value "10.0.0.1" for --public-ipv6: not an IPv6 address');
  });
});

describe('IPv6 plans', () => {
  const NET6 = parseNetwork('fc00::/48');
  const peers = [lease('10.244.2.0/24', 'fc00:0:0:2::/64', attrs(2)), lease('', 'fc00:0:0:3::/64', attrs(3, false)), lease('10.244.4.0/24', undefined, attrs(4))];

  it('vxlan: IPv6 peers from the IPv6 subnet, BackendV6Data and PublicIPv6; IPv4 peers from the IPv4 part', () => {
    const { peers: p6, skipped } = peersFromLeases(peers, NET6);
    expect(p6).toEqual([
      { subnet: 'fc00:0:0:2::/64', gateway: 'fc00:0:0:2::', vtepMAC: '06:00:00:00:00:02', publicIP: 'fd77::2' },
      { subnet: 'fc00:0:0:3::/64', gateway: 'fc00:0:0:3::', vtepMAC: '06:00:00:00:00:03', publicIP: 'fd77::3' },
    ]);
    expect(skipped.map((s) => s.reason)).toEqual(['it has no IPv6 subnet']);
    expect(peersFromLeases(peers, parseNetwork('10.244.0.0/16')).peers.map((p) => p.subnet)).toEqual(['10.244.2.0/24', '10.244.4.0/24']);
    const plan = planVxlan(p6.slice(0, 1), { neighs: [], fdb: [], routes: [] }, NET6);
    expect(plan.peers[0].actions).toEqual([
      { op: 'neighSet', ip: 'fc00:0:0:2::', mac: '06:00:00:00:00:02' },
      { op: 'fdbSet', mac: '06:00:00:00:00:02', dst: 'fd77::2' },
      { op: 'routeReplace', dst: 'fc00:0:0:2::/64', gw: 'fc00:0:0:2::' },
    ]);
  });

  it("vxlan: stale IPv6 entries go; the kernel's gateway-less prefix route of our /128 and link-local entries stay", () => {
    const plan = planVxlan([], {
      neighs: [{ ip: 'fc00:0:0:9::', mac: '06:00:00:00:00:09', permanent: true }, { ip: 'fe80::1', mac: '06:00:00:00:00:08', permanent: false }],
      fdb: [{ mac: '06:00:00:00:00:09', dst: 'fd77::9' }],
      routes: [{ dst: 'fc00:0:0:9::/64', gw: 'fc00:0:0:9::', onlink: true }, { dst: 'fc00:0:0:1::/128', onlink: false }, { dst: 'fe80::/64', onlink: false }],
    }, NET6);
    expect(plan.removals).toEqual([
      { op: 'routeDel', dst: 'fc00:0:0:9::/64', gw: 'fc00:0:0:9::' },
      { op: 'fdbDel', mac: '06:00:00:00:00:09', dst: 'fd77::9' },
      { op: 'neighDel', ip: 'fc00:0:0:9::' },
    ]);
  });

  it('host-gw: `<v6 subnet> via <PublicIPv6>` for on-link peers; IPv4 routes are not touched by the IPv6 plan', () => {
    const hg = peers.map((l) => ({ ...l, attrs: { ...l.attrs, backendType: 'host-gw' } }));
    const { peers: p, skipped } = hostGwPeers(hg, NET6, [parseNetwork('fd77::/64')], 'eth0');
    expect(p).toEqual([{ subnet: 'fc00:0:0:2::/64', gw: 'fd77::2' }, { subnet: 'fc00:0:0:3::/64', gw: 'fd77::3' }]);
    expect(skipped.map((s) => s.reason)).toEqual(['it has no IPv6 subnet']);
    expect(hostGwPeers(hg, NET6, [parseNetwork('fd99::/64')], 'eth0').skipped[0].reason).toBe('public IPv6 fd77::2 is not on-link on eth0 (host-gw needs every node on one L2 network; use vxlan)');
    expect(planRoutes(p, [{ dst: 'fc00:0:0:7::/64', gw: 'fd77::7' }, { dst: '10.244.7.0/24', gw: '192.168.0.7' }, { dst: 'fd77::/64' }], NET6)).toEqual([
      { op: 'routeDel', dst: 'fc00:0:0:7::/64', gw: 'fd77::7' },
      { op: 'routeReplace', dst: 'fc00:0:0:2::/64', gw: 'fd77::2' },
      { op: 'routeReplace', dst: 'fc00:0:0:3::/64', gw: 'fd77::3' },
    ]);
  });
});

describe('IPv6 rules', () => {
  const own = { subnet: parseNetwork('10.244.3.0/24'), ipv6Subnet: parseNetwork('fc00:0:0:3::/64') };
  const C = '-m comment --comment "flanneld masq"';

  it('one input per enabled family', () => {
    expect(familyRules(dual, own, { masq: true, forward: true })).toEqual([
      { network: '10.244.0.0/16', podCidr: '10.244.3.0/24', masq: true, forward: true },
      { network: 'fc00::/48', podCidr: 'fc00:0:0:3::/64', masq: true, forward: true, v6: true },
    ]);
    expect(familyRules(v6only, { subnet: EMPTY_V4, ipv6Subnet: own.ipv6Subnet }, { masq: false, forward: true }).map((r) => r.network)).toEqual(['fc00::/48']);
  });

  it("ip6tables: flanneld's masqIP6Rules (ff00::/8 spared) and FLANNEL-FWD", () => {
    const [nat, filter] = iptChains({ network: 'fc00::/48', podCidr: 'fc00:0:0:3::/64', masq: true, forward: true, v6: true });
    expect(nat.rules).toEqual([
      `-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 ${C} -j RETURN`,
      `-A FLANNEL-POSTRTG -s fc00:0:0:3::/64 -d fc00::/48 ${C} -j RETURN`,
      `-A FLANNEL-POSTRTG -s fc00::/48 -d fc00:0:0:3::/64 ${C} -j RETURN`,
      `-A FLANNEL-POSTRTG ! -s fc00::/48 -d fc00:0:0:3::/64 ${C} -j RETURN`,
      `-A FLANNEL-POSTRTG -s fc00::/48 ! -d ff00::/8 ${C} -j MASQUERADE --random-fully`,
      `-A FLANNEL-POSTRTG ! -s fc00::/48 -d fc00::/48 ${C} -j MASQUERADE --random-fully`,
    ]);
    expect(filter.rules[0]).toBe('-A FLANNEL-FWD -s fc00::/48 -m comment --comment "flanneld forward" -j ACCEPT');
  });

  it('nftables: table ip6 flannel-ipv6 with ip6 matches, rebuilt in its own family', () => {
    const want = nftChains({ network: 'fc00::/48', podCidr: 'fc00:0:0:3::/64', masq: true, forward: true, v6: true });
    expect(want[0].chain).toMatchObject({ family: 'ip6', table: 'flannel-ipv6', name: 'postrtg', hook: 'postrouting' });
    expect(want[0].rules[4]).toEqual([
      { match: { op: '==', left: { payload: { protocol: 'ip6', field: 'saddr' } }, right: { prefix: { addr: 'fc00::', len: 48 } } } },
      { match: { op: '!=', left: { payload: { protocol: 'ip6', field: 'daddr' } }, right: { prefix: { addr: 'ff00::', len: 8 } } } },
      { masquerade: { flags: 'fully-random' } },
    ]);
    const { cmds } = nftRepair(want, emptyRuleset());
    expect(cmds[0]).toEqual({ add: { table: { family: 'ip6', name: 'flannel-ipv6', comment: 'rules for flannel-ipv6' } } });
    expect(cmds.every((c) => JSON.stringify(c).includes('"family":"ip6"'))).toBe(true);
  });
});

describe('IPv6 in the kube store', () => {
  it("annotations as flanneld writes them: IPv6-only vxlan without backend-data/public-ip, host-gw with backend-v6-data null", () => {
    expect(leaseAnnotations(attrs(2))).toEqual({
      [ANN.backendType]: 'vxlan', [ANN.backendData]: '{"VNI":1,"VtepMAC":"02:00:00:00:00:02"}', [ANN.publicIP]: '192.168.0.2',
      [ANN.backendV6Data]: '{"VNI":1,"VtepMAC":"06:00:00:00:00:02"}', [ANN.publicIPv6]: 'fd77::2', [ANN.subnetManager]: 'true',
    });
    expect(leaseAnnotations(attrs(3, false))).toEqual({
      [ANN.backendType]: 'vxlan', [ANN.backendV6Data]: '{"VNI":1,"VtepMAC":"06:00:00:00:00:03"}', [ANN.publicIPv6]: 'fd77::3', [ANN.subnetManager]: 'true',
    });
    expect(leaseAnnotations({ publicIP: '192.168.0.4', publicIPv6: 'fd77::4', backendType: 'host-gw' })).toEqual({
      [ANN.backendType]: 'host-gw', [ANN.backendData]: 'null', [ANN.publicIP]: '192.168.0.4', [ANN.backendV6Data]: 'null', [ANN.publicIPv6]: 'fd77::4', [ANN.subnetManager]: 'true',
    });
  });

  it('nodes as leases per enabled family: podCIDRs v6, public-ipv6, backend-v6-data', () => {
    const node = (podCIDRs: string[], ann: Record<string, string>) => ({ metadata: { name: 'n', annotations: ann }, spec: { podCIDR: podCIDRs[0], podCIDRs } });
    const ann = leaseAnnotations(attrs(2));
    const n = node(['10.244.2.0/24', 'fc00:0:0:2::/64'], ann);
    expect(formatPrefix(nodePodCidr(n, true)!)).toBe('fc00:0:0:2::/64');
    const l = nodeToLease(n, { v4: true, v6: true })!;
    expect(leaseKey(l)).toBe('10.244.2.0-24&fc00:0:0:2::-64');
    expect(marshalLeaseAttrs(l.attrs)).toBe(marshalLeaseAttrs(attrs(2)));
    expect(leaseKey(nodeToLease(n)!)).toBe('10.244.2.0-24'); // IPv4-only config
    const only6 = nodeToLease(node(['fc00:0:0:3::/64'], leaseAnnotations(attrs(3, false))), { v4: false, v6: true })!;
    expect([leaseKey(only6), only6.attrs.publicIP, only6.attrs.backendData]).toEqual(['0.0.0.0-0&fc00:0:0:3::-64', '0.0.0.0', undefined]);
    expect(nodeToLease(node(['10.244.2.0/24'], ann), { v4: true, v6: true })).toBeNull(); // no IPv6 pod CIDR
  });
});

describe('both families in one network', () => {
  const net = (peers: number, apply: 'ok' | 'null' | 'none', calls: string[], name: string) => ({
    reconcile: async () => { calls.push(`${name} reconcile`); return { deviceCreated: name === 'v6', peers, routes: peers, repairs: 1, failures: 0 }; },
    ...(apply === 'none' ? {} : { apply: async () => { calls.push(`${name} apply`); return apply === 'ok' ? { peers: 1, routes: 1, repairs: 3, failures: name === 'v6' ? 1 : 0 } : null; } }),
  });

  it('reconciles IPv4 then IPv6, a peer counted once and routes per family', async () => {
    const calls: string[] = [];
    const b = bothFamilies([net(2, 'ok', calls, 'v4'), net(2, 'ok', calls, 'v6')]);
    expect(await b.reconcile([])).toEqual({ deviceCreated: true, peers: 2, routes: 4, repairs: 2, failures: 0 });
    expect(await b.apply!([], [])).toEqual({ peers: 1, routes: 2, repairs: 6, failures: 1 });
    expect(calls).toEqual(['v4 reconcile', 'v6 reconcile', 'v4 apply', 'v6 apply']);
  });

  it('an apply one family cannot do is null (the loop reconciles); without apply on both, none', async () => {
    const calls: string[] = [];
    expect(await bothFamilies([net(1, 'ok', calls, 'v4'), net(1, 'null', calls, 'v6')]).apply!([], [])).toBeNull();
    expect(bothFamilies([net(1, 'ok', calls, 'v4'), net(1, 'none', calls, 'v6')]).apply).toBeUndefined();
    const one = net(1, 'ok', calls, 'v4');
    expect(bothFamilies([one])).toBe(one);
  });
});

describe('kube store: node-public-ip(v6) inputs and public-ip(v6)-overwrite (fake API server)', () => {
  const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

  it("publishes the overwrite addresses, reads node-public-ip(v6) as our own, refuses a malformed one", async () => {
    const api = new FakeKubeApi();
    await api.start();
    const store = await openKubeLeaseStore({ kubeconfigFile: api.kubeconfig(), nodeName: 'node-a', log: quiet });
    try {
      api.addNode({ metadata: { name: 'node-a', annotations: {
        [ANN.publicIPv6Overwrite]: '2001:db8::99', [ANN.publicIPOverwrite]: '203.0.113.9', [ANN.nodePublicIPv6]: 'FD77::0:5', [ANN.nodePublicIP]: '192.168.0.5' } },
      spec: { podCIDR: '10.244.7.0/24', podCIDRs: ['10.244.7.0/24', 'fc00:0:0:7::/64'] } });
      store.useConfig({ enableIPv4: true, enableIPv6: true });
      expect(await store.storedPublicIPs()).toEqual({ publicIp: '192.168.0.5', publicIpv6: 'fd77::5' });
      const own = await store.acquire(attrs(2));
      expect(leaseKey(own)).toBe('10.244.7.0-24&fc00:0:0:7::-64');
      const ann = api.nodes.get('node-a')!.metadata.annotations!;
      expect([ann[ANN.publicIP], ann[ANN.publicIPv6]]).toEqual(['203.0.113.9', '2001:db8::99']);
      // what peers read is the overwritten address
      expect(nodeToLease(api.nodes.get('node-a')!, { v4: true, v6: true })!.attrs.publicIPv6).toBe('2001:db8::99');
      // flanneld: the IPv6Network must contain the node's IPv6 pod CIDR
      store.useConfig({ enableIPv4: true, enableIPv6: true, network: parseNetwork('10.244.0.0/16'), ipv6Network: parseNetwork('fd00::/48') });
      await expect(store.acquire(attrs(2))).rejects.toThrow("node node-a: the flannel net config's IPv6Network fd00::/48 does not contain the node's pod CIDR fc00:0:0:7::/64");
      api.nodes.get('node-a')!.metadata.annotations![ANN.nodePublicIPv6] = '10.0.0.1';
      await expect(store.storedPublicIPs()).rejects.toThrow('node node-a: annotation flannel.alpha.coreos.com/node-public-ipv6 is not an IPv6 address: "10.0.0.1"');
    } finally {
      store.close();
      await api.stop();
    }
  });
});
