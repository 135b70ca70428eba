/**
 * NetlinkHandle against the real kernel, in throwaway namespaces only: the
 * fixture's `ns` plays the host, `ns2` the pod. Kernel state is checked with
 * iproute2 (`ip -n`-style via nsenter) as well as with our own parsers.
 */
import { afterAll, beforeAll, describe, expect } from 'vitest';
import {
  AF_BRIDGE, AF_INET, AF_INET6, ExistsError, LinkNotFoundError, NetlinkError, NotFoundError, NotSupportedError,
  NUD, openHandle, openHandleAt, RT_SCOPE,
} from '../../plugins/pkg/netlink';
import { NetnsNotFoundError, NotNetnsError, openNetns, writeSysctl } from '../../plugins/pkg/ns';
import { execIn, ipJson, netnsTest as it, rootLinkNames, waitLinkUp } from '../lib/netns';

interface IpLink {
  ifname: string; ifindex: number; mtu: number; address: string; master?: string; link_netnsid?: number;
  flags: string[]; operstate: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown>; info_slave_kind?: string; info_slave_data?: Record<string, unknown> };
}

let rootLinks: string[] = [];
beforeAll(() => { rootLinks = rootLinkNames(); });
afterAll(() => { expect(rootLinkNames()).toEqual(rootLinks); });

describe('links', () => {
  it('creates a veth with the peer directly in another netns', async ({ ns, ns2, h, h2 }) => {
    const pod = openNetns(ns2);
    try {
      const v = await h.linkAdd({ kind: 'veth', name: 'veth-host', peerName: 'eth0', peerNetns: pod, mtu: 1400, mac: '02:00:00:00:00:01', peerMac: '02:00:00:00:00:02' });
      expect(v).toMatchObject({ name: 'veth-host', kind: 'veth', mtu: 1400, mac: '02:00:00:00:00:01', up: false, masterIndex: 0 });
      expect(v.linkNetnsId).toBeTypeOf('number');
      const peer = ipJson<IpLink[]>(ns2, ['-d', 'link', 'show', 'eth0'])[0];
      expect(peer).toMatchObject({ ifname: 'eth0', mtu: 1400, address: '02:00:00:00:00:02' });
      expect(peer.linkinfo?.info_kind).toBe('veth');
      expect(v.peerIndex).toBe(peer.ifindex);
      expect(ipJson<IpLink[]>(ns, ['link', 'show', 'eth0'].slice(0, 2)).map((l) => l.ifname)).not.toContain('eth0');
      const p = await h2.linkByName('eth0');
      expect(p.peerIndex).toBe(v.index);
      // up both ends -> operstate up
      await h.linkSetUp(v.index);
      await h2.linkSetUp(p.index);
      const up = await waitLinkUp(h, v.index);
      expect(up.up).toBe(true);
      expect(ipJson<IpLink[]>(ns, ['link', 'show', 'veth-host'])[0].flags).toContain('UP');
      // list contains lo + veth
      expect((await h.linkList()).map((l) => l.name).sort()).toEqual(['lo', 'veth-host']);
      // deleting one end removes the peer
      await h.linkDel(v.index);
      expect(await h2.linkByNameOrNull('eth0')).toBeNull();
    } finally {
      pod.close();
    }
  });

  it('sets mtu, mac, name, promisc and moves links between namespaces', async ({ ns, ns2, h, h2 }) => {
    const v = await h.linkAdd({ kind: 'veth', name: 'a0', peerName: 'a1' });
    await h.linkSetMtu(v.index, 1300);
    await h.linkSetMac(v.index, '0A:BB:CC:DD:EE:01');
    await h.linkSetPromisc(v.index, true);
    await h.linkSetName(v.index, 'a0new');
    let l = await h.linkByIndex(v.index);
    expect(l).toMatchObject({ name: 'a0new', mtu: 1300, mac: '0a:bb:cc:dd:ee:01', promisc: true });
    expect(ipJson<IpLink[]>(ns, ['link', 'show', 'a0new'])[0]).toMatchObject({ mtu: 1300, address: '0a:bb:cc:dd:ee:01' });
    await h.linkSetPromisc(v.index, false);
    await h.linkSet(v.index, { up: true, mtu: 1280 });
    l = await h.linkByIndex(v.index);
    expect(l).toMatchObject({ promisc: false, up: true, mtu: 1280 });
    const peer = await h.linkByName('a1');
    const pod = openNetns(ns2);
    try {
      await h.linkSetNetns(peer.index, pod);
    } finally {
      pod.close();
    }
    expect(await h.linkByNameOrNull('a1')).toBeNull();
    expect((await h2.linkByName('a1')).kind).toBe('veth');
    expect(ipJson<IpLink[]>(ns2, ['link', 'show', 'a1'])).toHaveLength(1);
  });

  it('creates a bridge, enslaves a port and sets hairpin / isolated / learning', async ({ ns, h }) => {
    const br = await h.linkAdd({ kind: 'bridge', name: 'br0', mtu: 1450, mac: '02:11:22:33:44:55' });
    expect(br).toMatchObject({ kind: 'bridge', mtu: 1450, mac: '02:11:22:33:44:55' });
    expect(br.bridge?.vlanFiltering).toBe(false);
    const v = await h.linkAdd({ kind: 'veth', name: 'p0', peerName: 'p0peer', mtu: 1450 });
    await h.linkSetMaster(v.index, br.index);
    await h.linkSetBrportHairpin(v.index, true);
    await h.linkSetBrportIsolated(v.index, true);
    await h.linkSetBrportLearning(v.index, false);
    const port = await h.linkByIndex(v.index);
    expect(port.masterIndex).toBe(br.index);
    expect(port.slaveKind).toBe('bridge');
    expect(port.brport).toMatchObject({ hairpin: true, isolated: true, learning: false });
    const ip = ipJson<IpLink[]>(ns, ['-d', 'link', 'show', 'p0'])[0];
    expect(ip.master).toBe('br0');
    expect(ip.linkinfo?.info_slave_data).toMatchObject({ hairpin: true, isolated: true, learning: false });
    await h.linkSetBrportHairpin(v.index, false);
    expect((await h.linkByIndex(v.index)).brport?.hairpin).toBe(false);
    await h.linkSetMaster(v.index, 0);
    expect((await h.linkByIndex(v.index)).masterIndex).toBe(0);
    expect(ipJson<IpLink[]>(ns, ['link', 'show', 'p0'])[0].master).toBeUndefined();
  });

  it('creates a vxlan with vni/port/local/learning=false on an underlay', async ({ ns, h }) => {
    const u = await h.linkAdd({ kind: 'veth', name: 'under0', peerName: 'under1' });
    await h.addrAdd(u.index, '10.99.0.1/24');
    const vx = await h.linkAdd({
      kind: 'vxlan', name: 'flannel.1', vni: 1, port: 8472, local: '10.99.0.1', srcLink: u.index,
      learning: false, gbp: true, ttl: 0, udpCsum: false, mtu: 1450, mac: '0e:00:00:00:00:01',
    });
    expect(vx.kind).toBe('vxlan');
    expect(vx.vxlan).toMatchObject({ vni: 1, port: 8472, local: '10.99.0.1', srcLink: u.index, learning: false, gbp: true });
    expect(vx).toMatchObject({ mtu: 1450, mac: '0e:00:00:00:00:01' });
    const d = ipJson<IpLink[]>(ns, ['-d', 'link', 'show', 'flannel.1'])[0].linkinfo?.info_data;
    expect(d).toMatchObject({ id: 1, local: '10.99.0.1', port: 8472, learning: false, link: 'under0', gbp: true });
    // IPv6 local + another vni
    const vx6 = await h.linkAdd({ kind: 'vxlan', name: 'vx6', vni: 4096, port: 4789, local: 'fd00::1', learning: true });
    expect(vx6.vxlan).toMatchObject({ vni: 4096, port: 4789, local: 'fd00::1', learning: true, gbp: false });
    expect(ipJson<IpLink[]>(ns, ['-d', 'link', 'show', 'vx6'])[0].linkinfo?.info_data).toMatchObject({ id: 4096, local6: 'fd00::1', port: 4789 });
  });

  it('creates a macvlan on a veth', async ({ ns, h }) => {
    const v = await h.linkAdd({ kind: 'veth', name: 'mparent', peerName: 'mpeer' });
    const m = await h.linkAdd({ kind: 'macvlan', name: 'mv0', parentIndex: v.index, mode: 'bridge', mtu: 1400 });
    expect(m).toMatchObject({ kind: 'macvlan', parentIndex: v.index, macvlan: { mode: 'bridge' }, mtu: 1400 });
    const ip = ipJson<IpLink[]>(ns, ['-d', 'link', 'show', 'mv0'])[0];
    expect(ip.linkinfo?.info_kind).toBe('macvlan');
    expect(ip.linkinfo?.info_data).toMatchObject({ mode: 'bridge' });
  });

  it('maps kernel errors to typed classes', async ({ h }) => {
    await expect(h.linkByName('nope0')).rejects.toBeInstanceOf(LinkNotFoundError);
    expect(await h.linkByNameOrNull('nope0')).toBeNull();
    await expect(h.linkByIndex(9999)).rejects.toBeInstanceOf(LinkNotFoundError);
    expect(await h.linkByIndexOrNull(9999)).toBeNull();
    await expect(h.linkDel(9999)).rejects.toBeInstanceOf(LinkNotFoundError);
    await expect(h.linkSetUp(9999)).rejects.toBeInstanceOf(LinkNotFoundError);
    expect(await h.linkDelByName('nope0')).toBe(false);
    await h.linkAdd({ kind: 'veth', name: 'dup0', peerName: 'dup1' });
    const e = await h.linkAdd({ kind: 'veth', name: 'dup0', peerName: 'dup2' }).catch((x) => x);
    expect(e).toBeInstanceOf(ExistsError);
    expect(e).toMatchObject({ errno: 17, code: 'EEXIST' });
    expect((e as NetlinkError).op).toContain('linkAdd');
    expect(await h.linkDelByName('dup0')).toBe(true);
  });

  it('reports missing link kinds as NotSupportedError (dummy, vlan on this kernel)', async ({ h, skip }) => {
    const r = await h.linkAdd({ kind: 'dummy', name: 'dummy0' }).then(() => null, (x) => x);
    if (r === null) skip('kernel supports dummy links; nothing to check');
    expect(r).toBeInstanceOf(NotSupportedError);
    expect(r).toMatchObject({ code: 'EOPNOTSUPP', errno: 95 });
  });

  it('creates a vlan link when the kernel has 8021q', async ({ ns, h, skip }) => {
    const v = await h.linkAdd({ kind: 'veth', name: 'trunk0', peerName: 'trunk1' });
    const r = await h.linkAdd({ kind: 'vlan', name: 'trunk0.100', parentIndex: v.index, vlanId: 100 }).catch((x) => x);
    if (r instanceof NotSupportedError) skip(`kernel answered ${r.code} for kind vlan`);
    expect(r).toMatchObject({ kind: 'vlan', vlan: { id: 100 }, parentIndex: v.index });
    expect(ipJson<IpLink[]>(ns, ['-d', 'link', 'show', 'trunk0.100'])[0].linkinfo?.info_data).toMatchObject({ id: 100 });
  });

  it('adds bridge vlans when the kernel has vlan filtering', async ({ ns, h, skip }) => {
    const br = await h.linkAdd({ kind: 'bridge', name: 'brv', vlanFiltering: true, vlanDefaultPvid: 1 }).catch((x) => x);
    if (br instanceof NotSupportedError) skip(`kernel answered ${br.code} for bridge vlan_filtering 1`);
    const v = await h.linkAdd({ kind: 'veth', name: 'vp0', peerName: 'vp1' });
    await h.linkSetMaster(v.index, br.index);
    await h.bridgeVlanAdd(v.index, 100, { pvid: true, untagged: true });
    expect(execIn(ns, 'bridge', ['vlan', 'show', 'dev', 'vp0'])).toMatch(/100 PVID.*Untagged/);
    await h.bridgeVlanDel(v.index, 100);
    expect(execIn(ns, 'bridge', ['vlan', 'show', 'dev', 'vp0'])).not.toMatch(/100/);
  });
});

describe('addresses', () => {
  it('adds, lists and deletes IPv4 and IPv6 addresses', async ({ ns, h }) => {
    writeSysctl(ns, 'net/ipv6/conf/all/disable_ipv6', 0);
    const v = await h.linkAdd({ kind: 'veth', name: 'ad0', peerName: 'ad1' });
    await h.addrAdd(v.index, '10.1.0.2/24');
    await h.addrAdd(v.index, 'fd00:1::2/64', { noDad: true });
    await h.addrAdd(v.index, '10.1.1.2/32', { noPrefixRoute: true, scope: 'link' });
    await expect(h.addrAdd(v.index, '10.1.0.2/24')).rejects.toBeInstanceOf(ExistsError);
    await h.addrReplace(v.index, '10.1.0.2/24');
    const all = await h.addrList(v.index);
    const v4 = all.find((a) => a.address === '10.1.0.2');
    expect(v4).toMatchObject({ family: AF_INET, prefixLen: 24, cidr: '10.1.0.2/24', broadcast: '10.1.0.255', scope: 0, index: v.index });
    expect(all.find((a) => a.address === '10.1.1.2')).toMatchObject({ noPrefixRoute: true, scope: RT_SCOPE.link });
    const v6 = (await h.addrList(v.index, AF_INET6)).find((a) => a.address === 'fd00:1::2');
    expect(v6).toMatchObject({ family: AF_INET6, prefixLen: 64, noDad: true, tentative: false, dadfailed: false, permanent: true });
    expect((await h.addrList((await h.linkByName('ad0')).index, AF_INET)).map((a) => a.cidr).sort()).toEqual(['10.1.0.2/24', '10.1.1.2/32']);
    const ipAddrs = ipJson<Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>>(ns, ['addr', 'show', 'dev', 'ad0'])[0].addr_info;
    expect(ipAddrs.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(expect.arrayContaining(['10.1.0.2/24', 'fd00:1::2/64', '10.1.1.2/32']));
    await h.addrDel(v.index, '10.1.0.2/24');
    await h.addrDel(v.index, 'fd00:1::2/64');
    await expect(h.addrDel(v.index, '10.1.0.2/24')).rejects.toBeInstanceOf(NotFoundError);
    expect((await h.addrList(v.index)).filter((a) => a.family === AF_INET).map((a) => a.cidr)).toEqual(['10.1.1.2/32']);
    // a tentative v6 address (DAD on, link up with carrier) is flagged
    await h.linkSetUp(v.index);
    await h.linkSetUp((await h.linkByName('ad1')).index);
    await h.addrAdd(v.index, 'fd00:2::2/64');
    const t = (await h.addrList(v.index, AF_INET6)).find((a) => a.address === 'fd00:2::2');
    expect(t?.tentative).toBe(true);
  });
});

describe('routes', () => {
  it('adds, replaces, lists and deletes routes incl. gateway/onlink/scope/table/metric/mtu', async ({ ns, ns2, h }) => {
    writeSysctl(ns, 'net/ipv6/conf/all/disable_ipv6', 0);
    const pod = openNetns(ns2);
    let v;
    try {
      v = await h.linkAdd({ kind: 'veth', name: 'r0', peerName: 'r1', peerNetns: pod });
    } finally {
      pod.close();
    }
    await h.addrAdd(v.index, '10.2.0.1/24');
    await h.addrAdd(v.index, 'fd00:2::1/64', { noDad: true });
    await h.linkSetUp(v.index);
    await h.routeAdd({ dst: '10.3.0.0/16', gw: '10.2.0.254', oif: v.index, metric: 100, mtu: 1400, advmss: 1360 });
    await h.routeAdd({ dst: '0.0.0.0/0', gw: '10.2.0.1', oif: v.index });
    await h.routeAdd({ dst: '192.168.50.0/24', gw: '172.16.0.1', oif: v.index, onlink: true });
    await h.routeAdd({ dst: '10.4.0.0/24', oif: v.index }); // scope link by default (no gw)
    await h.routeAdd({ dst: '10.5.0.0/24', oif: v.index, scope: 'universe', table: 100, src: '10.2.0.1' });
    await h.routeAdd({ dst: 'fd00:9::/64', gw: 'fd00:2::fe', oif: v.index, metric: 50 });
    await expect(h.routeAdd({ dst: '10.3.0.0/16', gw: '10.2.0.254', oif: v.index, metric: 100 })).rejects.toBeInstanceOf(ExistsError);

    const main = await h.routeList({ family: AF_INET });
    const r = main.find((x) => x.dst === '10.3.0.0/16');
    expect(r).toMatchObject({ gw: '10.2.0.254', oif: v.index, metric: 100, mtu: 1400, advmss: 1360, table: 254, scope: 0, type: 'unicast', protocol: 3 });
    expect(main.find((x) => x.dst === '0.0.0.0/0')).toMatchObject({ gw: '10.2.0.1' });
    expect(main.find((x) => x.dst === '192.168.50.0/24')).toMatchObject({ gw: '172.16.0.1', onlink: true });
    expect(main.find((x) => x.dst === '10.4.0.0/24')).toMatchObject({ scope: RT_SCOPE.link });
    expect(main.find((x) => x.dst === '10.5.0.0/24')).toBeUndefined();
    expect((await h.routeList({ table: 100 })).map((x) => [x.dst, x.src, x.scope])).toEqual([['10.5.0.0/24', '10.2.0.1', 0]]);
    expect((await h.routeList({ table: 0 })).some((x) => x.table === 255)).toBe(true); // local table included
    expect((await h.routeList({ family: AF_INET6, index: v.index })).find((x) => x.dst === 'fd00:9::/64')).toMatchObject({ gw: 'fd00:2::fe', metric: 50 });

    const ipr = ipJson<Array<Record<string, unknown>>>(ns, ['route', 'show', '10.3.0.0/16']);
    expect(ipr[0]).toMatchObject({ gateway: '10.2.0.254', metric: 100, dev: 'r0' });
    expect(execIn(ns, 'ip', ['route', 'show', '10.3.0.0/16'])).toMatch(/mtu 1400 advmss 1360/);
    expect(execIn(ns, 'ip', ['route', 'show', '192.168.50.0/24'])).toMatch(/onlink/);
    expect(execIn(ns, 'ip', ['route', 'show', 'table', '100'])).toMatch(/10\.5\.0\.0\/24 dev r0 .*src 10\.2\.0\.1/);

    await h.routeReplace({ dst: '10.3.0.0/16', gw: '10.2.0.253', oif: v.index, metric: 100 });
    const rr = (await h.routeList({ index: v.index })).filter((x) => x.dst === '10.3.0.0/16');
    expect(rr).toHaveLength(1);
    expect(rr[0]).toMatchObject({ gw: '10.2.0.253' });
    expect(rr[0].mtu).toBeUndefined();

    await h.routeDel({ dst: '10.3.0.0/16', metric: 100 });
    await h.routeDel({ dst: '10.5.0.0/24', table: 100 });
    await h.routeDel({ dst: 'default', gw: '10.2.0.1' });
    await expect(h.routeDel({ dst: '10.3.0.0/16', metric: 100 })).rejects.toBeInstanceOf(NotFoundError);
    const after = (await h.routeList({ family: AF_INET })).map((x) => x.dst);
    expect(after).not.toContain('10.3.0.0/16');
    expect(after).not.toContain('0.0.0.0/0');
    expect(await h.routeList({ table: 100 })).toEqual([]);
  });
});

describe('neighbours and FDB', () => {
  it('sets, lists and deletes permanent neighbours', async ({ ns, h }) => {
    writeSysctl(ns, 'net/ipv6/conf/all/disable_ipv6', 0);
    const v = await h.linkAdd({ kind: 'veth', name: 'n0', peerName: 'n1' });
    await h.neighSet({ index: v.index, ip: '10.6.0.9', mac: '02:aa:bb:cc:dd:09' });
    await h.neighSet({ index: v.index, ip: '10.6.0.9', mac: '02:aa:bb:cc:dd:0a' }); // replace
    await h.neighSet({ index: v.index, ip: 'fd00:6::9', mac: '02:aa:bb:cc:dd:0b' });
    const l = await h.neighList(v.index);
    expect(l.find((n) => n.ip === '10.6.0.9')).toMatchObject({ mac: '02:aa:bb:cc:dd:0a', permanent: true, family: AF_INET, state: NUD.PERMANENT });
    expect((await h.neighList(v.index, AF_INET6)).find((n) => n.ip === 'fd00:6::9')).toMatchObject({ mac: '02:aa:bb:cc:dd:0b' });
    const ipn = ipJson<Array<{ dst: string; lladdr: string; state: string[] }>>(ns, ['neigh', 'show', 'dev', 'n0']);
    expect(ipn).toEqual(expect.arrayContaining([expect.objectContaining({ dst: '10.6.0.9', lladdr: '02:aa:bb:cc:dd:0a', state: ['PERMANENT'] })]));
    await h.neighDel(v.index, '10.6.0.9');
    await expect(h.neighDel(v.index, '10.6.0.9')).rejects.toBeInstanceOf(NotFoundError);
    expect((await h.neighList(v.index, AF_INET)).find((n) => n.ip === '10.6.0.9')).toBeUndefined();
  });

  it('appends, sets, lists and deletes vxlan FDB entries', async ({ ns, h }) => {
    const vx = await h.linkAdd({ kind: 'vxlan', name: 'vxf', vni: 7, port: 8472, learning: false, local: '10.7.0.1' });
    await h.fdbAppend(vx.index, '00:00:00:00:00:00', '10.7.0.2');
    await h.fdbAppend(vx.index, '00:00:00:00:00:00', '10.7.0.3');
    await h.fdbSet(vx.index, '0e:00:00:00:00:02', '10.7.0.2');
    await h.fdbSet(vx.index, '0e:00:00:00:00:02', '10.7.0.4'); // replace
    const fdb = (await h.fdbList(vx.index)).filter((n) => n.ip);
    expect(fdb.filter((n) => n.mac === '00:00:00:00:00:00').map((n) => n.ip).sort()).toEqual(['10.7.0.2', '10.7.0.3']);
    expect(fdb.filter((n) => n.mac === '0e:00:00:00:00:02')).toEqual([expect.objectContaining({ ip: '10.7.0.4', self: true, permanent: true, family: AF_BRIDGE })]);
    const br = ipJson<Array<{ mac: string; dst?: string; flags: string[] }>>(ns, ['link', 'show']).length; // ip works
    expect(br).toBeGreaterThan(0);
    const bf = JSON.parse(execIn(ns, 'bridge', ['-j', 'fdb', 'show', 'dev', 'vxf'])) as Array<{ mac: string; dst?: string; state?: string }>;
    expect(bf).toEqual(expect.arrayContaining([expect.objectContaining({ mac: '0e:00:00:00:00:02', dst: '10.7.0.4', state: 'permanent' })]));
    await h.fdbDel(vx.index, '0e:00:00:00:00:02', '10.7.0.4');
    await h.fdbDel(vx.index, '00:00:00:00:00:00', '10.7.0.3');
    await expect(h.fdbDel(vx.index, '0e:00:00:00:00:02', '10.7.0.4')).rejects.toBeInstanceOf(NotFoundError);
    const left = (await h.fdbList(vx.index)).filter((n) => n.ip).map((n) => `${n.mac} ${n.ip}`);
    expect(left).toEqual(['00:00:00:00:00:00 10.7.0.2']);
  });
});

describe('handles', () => {
  it('openHandle works in the current netns (read-only) and survives dumps', async () => {
    const h = openHandle();
    try {
      const links = await h.linkList();
      expect(links.some((l) => l.name === 'lo')).toBe(true);
      await Promise.all([h.linkList(), h.addrList(), h.routeList({ table: 0 }), h.neighList()]);
    } finally {
      h.close();
    }
    await expect(h.linkList()).rejects.toThrow(/closed/);
  });

  it('openHandleAt rejects missing and non-network namespaces with typed errors', () => {
    expect(() => openHandleAt('/run/netns/flaxt-missing')).toThrow(NetnsNotFoundError);
    expect(() => openHandleAt('/proc/self/ns/uts')).toThrow(NotNetnsError);
  });

  it('handles many concurrent requests and dumps on one socket', async ({ h }) => {
    const names = Array.from({ length: 20 }, (_, i) => `c${i}`);
    await Promise.all(names.map((n) => h.linkAdd({ kind: 'veth', name: n, peerName: `${n}p` })));
    const [links, addrs] = await Promise.all([h.linkList(), h.addrList(), h.neighList(), h.fdbList()]);
    expect(links.map((l) => l.name)).toEqual(expect.arrayContaining([...names, ...names.map((n) => `${n}p`)]));
    expect(Array.isArray(addrs)).toBe(true);
    await Promise.all(links.filter((l) => l.kind === 'veth' && !l.name.endsWith('p')).map((l) => h.linkDel(l.index)));
    expect((await h.linkList()).map((l) => l.name)).toEqual(['lo']);
  });
});
