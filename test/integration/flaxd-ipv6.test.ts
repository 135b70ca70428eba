/**
 * flaxd's IPv6 overlays on the real kernel (namespace nodes on one
 * underlay bridge, flaxd-helpers' Cluster; each node's eth0 also gets
 * fd77::1<i>/64, IPv6 and forwarding switched on inside the node and pod
 * namespaces only):
 *  - dual-stack vxlan, 3 nodes, --ip-masq (iptables): lease files keyed
 *    `<v4>-24&<v6>-64` with PublicIPv6 and BackendV6Data as flanneld writes
 *    them, subnet.env with the IPv6 pair in flanneld's order, flannel.1 and
 *    flannel-v6.1 (local = our IPv6 address, `<v6 subnet>::/128`), per peer
 *    neighbour / FDB / route on each, ip6tables FLANNEL-POSTRTG/FLANNEL-FWD
 *    (a pod talking outside IPv6Network is seen as its node, a pod on
 *    another node as itself);
 *    pods ping across nodes over IPv4 and IPv6; repairs (route, neighbour,
 *    the whole flannel-v6.1) and a departed node's IPv6 entries removed;
 *  - IPv6-only vxlan (EnableIPv4 false), 3 nodes: key `0.0.0.0-0&<v6>-64`,
 *    PublicIP "0.0.0.0", no BackendData, no flannel.1; pods ping over IPv6;
 *    a restarted agent keeps its lease;
 *  - dual-stack host-gw with nftables and --ip-masq: `<v6 subnet> via
 *    <peer's PublicIPv6> dev eth0`, table ip6 flannel-ipv6; pods ping;
 *  - dual-stack vxlan with DirectRouting: IPv6 direct routes on eth0;
 *  - mixed: two flaxd nodes beside one configured by hand exactly as
 *    flanneld configures itself (both devices, its lease bytes): programmed
 *    both ways, pods ping over IPv4 and IPv6;
 *  - dual-stack and IPv6-only (flanneld's IPv6-only mode) with the kube
 *    store (the fake API server of flaxd-kube.test.ts): podCIDRs,
 *    public-ipv6 and backend-v6-data annotations, peers programmed from
 *    them; pods ping;
 *  - dual-stack pods attached by `flax cni add` through kube-flannel's
 *    conflist (flannel reads flaxd's subnet.env → bridge + host-local with
 *    both ranges): pods ping across nodes over IPv4 and IPv6;
 *  - IPv6 enabled on a running IPv4 cluster: restarted agents keep their
 *    IPv4 subnets and MACs and gain IPv6 subnets;
 *  - FLANNELD_PUBLIC_IPV6: published and used by peers, not the default address;
 *  - dual-stack with the etcd store (Debian's etcd, etcd-helpers): keys
 *    `<prefix>/subnets/<v4>-24&<v6>-64`, value bytes, 24 h etcd lease; pods ping.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHandleAt } from '../../plugins/pkg/netlink';
import { withNetns, writeSysctl } from '../../plugins/pkg/ns';
import { FakeKubeApi } from '../lib/agent/kube-fake-api';
import { ANN } from '../../plugins/agent/store/kube';
import { createTestNetns, destroyTestNetns, execIn, ipJson } from '../lib/netns';
import { DIST_BIN, requireBuilt } from '../lib/cni';
import { Cluster, moreLogLines, NETWORK, type Node, addV6Underlay, ip6Of, pingFrom, sourceSeen, waitFor } from './flaxd-helpers';
import { ETCD_URL, EtcdServer, requireEtcd, tearDownEtcdCluster } from './etcd-helpers';

const NET6 = 'fc00::/48';
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

interface Lease6 {
  file: string;
  /** "10.244.7" or '' (IPv6-only) */
  prefix: string;
  /** "fc00:0:0:2a::" */
  net6: string;
  value: { PublicIP: string; PublicIPv6: string | null; BackendType: string; BackendData?: { VNI: number; VtepMAC: string }; BackendV6Data?: { VNI: number; VtepMAC: string } };
  text: string;
}

/** The lease files, parsed from their names (`10.244.7.0-24&fc00:0:0:2a::-64.json`). */
function leases6(cl: Cluster): Lease6[] {
  const dir = path.join(cl.leaseDir, 'subnets');
  return readdirSync(dir).filter((f) => !f.startsWith('.')).map((file) => {
    const m = /^(\d+\.\d+\.\d+\.\d+)-(\d+)(?:&([0-9a-f:]+)-64)?\.json$/.exec(file);
    if (!m) throw new Error(`unexpected lease file ${file}`);
    const text = readFileSync(path.join(dir, file), 'utf8');
    return { file, prefix: m[2] === '0' ? '' : m[1].replace(/\.0$/, ''), net6: m[3] ?? '', value: JSON.parse(text).Value, text };
  });
}
const leaseOf6 = (cl: Cluster, n: Node): Lease6 => {
  const l = leases6(cl).find((x) => x.value.PublicIPv6 === ip6Of(n));
  if (!l) throw new Error(`no lease for node ${n.i}`);
  return l;
};

/** A pod behind the node's `vpod`: <prefix>.2/24 (when IPv4, by the helper) and <net6>2/64, default routes via .1 and <net6>1. */
async function addPod6(cl: Cluster, n: Node, l: Lease6): Promise<void> {
  await cl.addPod(n, l.prefix);
  writeSysctl(n.pod!, 'net.ipv6.conf.all.disable_ipv6', 0);
  execIn(n.ns, 'ip', ['-6', 'addr', 'add', `${l.net6}1/64`, 'dev', 'vpod', 'nodad']);
  execIn(n.pod!, 'ip', ['-6', 'addr', 'add', `${l.net6}2/64`, 'dev', 'eth0', 'nodad']);
  execIn(n.pod!, 'ip', ['-6', 'route', 'add', 'default', 'via', `${l.net6}1`]);
  // neighbour discovery between a fresh pod and its node can miss the first echo: settle it before cross-node pings
  await waitFor(`pod ${n.i} reaches its IPv6 gateway`, () => pingFrom(n.pod!, `${l.net6}1`), 10_000, 100);
}

/** The kernel's view of flannel-v6.1 through iproute2, reduced to the overlay's entries. */
function v6View(ns: string) {
  const j = (args: string[]) => {
    const out = execIn(ns, args[0], ['-j', ...args.slice(1)], { allowFail: true });
    return (out.trim() ? JSON.parse(out) : []) as any[];
  };
  return {
    link: j(['ip', '-d', 'link', 'show', 'dev', 'flannel-v6.1'])[0],
    addrs: (j(['ip', '-6', 'addr', 'show', 'dev', 'flannel-v6.1'])[0]?.addr_info ?? []).filter((a: any) => a.scope === 'global').map((a: any) => `${a.local}/${a.prefixlen}`),
    neighs: j(['ip', '-6', 'neigh', 'show', 'dev', 'flannel-v6.1']).filter((x) => x.dst.startsWith('fc00:')).map((x) => `${x.dst} ${x.lladdr} ${(x.state ?? []).join(',')}`).sort(),
    fdb: j(['bridge', 'fdb', 'show', 'dev', 'flannel-v6.1']).map((x) => `${x.mac} ${x.dst} ${(x.flags ?? []).join(',')} ${x.state ?? ''}`.trim()).sort(),
    routes: j(['ip', '-6', 'route', 'show', 'dev', 'flannel-v6.1']).filter((x) => x.dst.startsWith('fc00:')).map((x) => `${x.dst} via ${x.gateway} ${(x.flags ?? []).join(',')}`).sort(),
  };
}
const v6Peers = (ps: Array<{ l: Lease6; n: Node }>) => ({
  neighs: ps.map(({ l }) => `${l.net6} ${l.value.BackendV6Data!.VtepMAC} PERMANENT`).sort(),
  fdb: ps.map(({ l, n }) => `${l.value.BackendV6Data!.VtepMAC} ${ip6Of(n)} self permanent`).sort(),
  routes: ps.map(({ l }) => `${l.net6}/64 via ${l.net6} onlink`).sort(),
});
const peerState6 = (n: Node) => {
  const v = v6View(n.ns);
  return JSON.stringify({ neighs: v.neighs, fdb: v.fdb, routes: v.routes });
};
const wantPeers6 = (cl: Cluster, n: Node, nodes = cl.nodes) => JSON.stringify(v6Peers(nodes.filter((o) => o !== n).map((o) => ({ l: leaseOf6(cl, o), n: o }))));

async function start(cl: Cluster, netConf: object, extra: string[] = [], nodes = 3): Promise<void> {
  requireBuilt('flaxd');
  await cl.create(nodes, netConf);
  await addV6Underlay(cl);
  for (const n of cl.nodes) cl.startAgent(n, extra);
  for (const n of cl.nodes) await cl.waitReady(n);
  for (const n of cl.nodes) await addPod6(cl, n, leaseOf6(cl, n));
}
/** `from` (a pod's netns) pings `to`, allowing a few seconds for neighbour discovery to settle; fails naming both. */
const reach = (from: string, to: string): Promise<boolean> => waitFor(`${from} -> ${to}`, () => pingFrom(from, to), 10_000, 200);

/**
 * Every ordered pair of pods pings over IPv4 (when on) and IPv6. A first echo
 * may be lost while neighbour discovery settles on a loaded machine, so each
 * pair gets a few seconds; a pair that never answers fails, named.
 */
async function pingsAll(cl: Cluster, v4: boolean): Promise<void> {
  for (const a of cl.nodes) {
    for (const b of cl.nodes) {
      if (a === b) continue;
      const lb = leaseOf6(cl, b);
      const targets = [...(v4 ? [`${lb.prefix}.2`] : []), `${lb.net6}2`];
      for (const t of targets) await reach(a.pod!, t);
    }
  }
}

describe('flaxd dual-stack vxlan', () => {
  const cl = new Cluster();
  beforeAll(() => start(cl, { Network: NETWORK, EnableIPv6: true, IPv6Network: NET6, Backend: { Type: 'vxlan' } }, ['--ip-masq', '--iptables-resync', '1']), 60_000);
  afterAll(() => cl.destroy(), 60_000);

  it("leases carry both subnets, PublicIPv6 and BackendV6Data as flanneld writes them; subnet.env has the IPv6 pair in flanneld's order", () => {
    const ls = leases6(cl);
    expect(ls).toHaveLength(3);
    for (const n of cl.nodes) {
      const l = leaseOf6(cl, n);
      expect(l.file).toMatch(/^10\.244\.\d+\.0-24&fc00:0:0:[0-9a-f]+::-64\.json$/);
      const v4mac = l.value.BackendData!.VtepMAC;
      const v6mac = l.value.BackendV6Data!.VtepMAC;
      expect(v4mac).toMatch(MAC);
      expect(v6mac).toMatch(MAC);
      expect(l.text).toMatch(new RegExp(`^\\{"Value":\\{"PublicIP":"${n.ip}","PublicIPv6":"${ip6Of(n)}","BackendType":"vxlan","BackendData":\\{"VNI":1,"VtepMAC":"${v4mac}"\\},"BackendV6Data":\\{"VNI":1,"VtepMAC":"${v6mac}"\\}\\},"Expiration":"[^"]+"\\}\\n$`));
      expect(readFileSync(n.subnetFile, 'utf8')).toBe(`FLANNEL_NETWORK=${NETWORK}\nFLANNEL_SUBNET=${l.prefix}.1/24\nFLANNEL_IPV6_NETWORK=${NET6}\nFLANNEL_IPV6_SUBNET=${l.net6}1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`);
    }
    expect(new Set(ls.map((l) => l.net6)).size).toBe(3);
  });

  it('flannel-v6.1: vxlan VNI 1, local = our IPv6 address on eth0, port 8472, learning off, MTU 1430 (IPv6 outer header), the published MAC, <v6 subnet>::/128', () => {
    for (const n of cl.nodes) {
      const l = leaseOf6(cl, n);
      const v = v6View(n.ns);
      const info = v.link.linkinfo.info_data;
      expect(v.link.address).toBe(l.value.BackendV6Data!.VtepMAC);
      expect(v.link.mtu).toBe(1430);
      expect(ipJson<any[]>(n.ns, ['link', 'show', 'dev', 'flannel.1'])[0].mtu).toBe(1450);
      expect(info).toMatchObject({ id: 1, local6: ip6Of(n), link: 'eth0', port: 8472, learning: false });
      expect(v.addrs).toEqual([`${l.net6}/128`]);
      expect(execIn(n.ns, 'sysctl', ['-n', 'net.ipv6.conf.flannel-v6/1.accept_ra']).trim()).toBe('0');
      // flannel.1 is there too, with its own MAC
      expect(ipJson<any[]>(n.ns, ['-d', 'link', 'show', 'dev', 'flannel.1'])[0].address).toBe(l.value.BackendData!.VtepMAC);
    }
  });

  it('programs each peer on flannel-v6.1 (neighbour, FDB to its PublicIPv6, onlink route) and pods ping across nodes over IPv4 and IPv6', async () => {
    for (const n of cl.nodes) await waitFor(`node ${n.i} v6 peers`, () => peerState6(n) === wantPeers6(cl, n));
    await pingsAll(cl, true);
  });

  it('ip6tables holds FLANNEL-POSTRTG (ff00::/8 spared) and FLANNEL-FWD for the IPv6 network, built once', async () => {
    const n1 = cl.nodes[0];
    const l = leaseOf6(cl, n1);
    const nat = execIn(n1.ns, 'ip6tables', ['-w', '-t', 'nat', '-S']);
    expect(nat).toContain('-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG');
    expect(nat).toContain(`-A FLANNEL-POSTRTG -s ${l.net6}/64 -d ${NET6} -m comment --comment "flanneld masq" -j RETURN`);
    expect(nat).toContain(`-A FLANNEL-POSTRTG -s ${NET6} ! -d ff00::/8 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully`);
    expect(execIn(n1.ns, 'ip6tables', ['-w', '-t', 'filter', '-S'])).toContain(`-A FLANNEL-FWD -s ${NET6} -m comment --comment "flanneld forward" -j ACCEPT`);
    await moreLogLines(n1.agent!, /firewall rules checked/, 2); // two more checks of the rules: no rebuild
    expect(n1.agent!.log().match(/ip6tables: \(re\)built/g)).toHaveLength(2);
  });

  it('masquerades a pod talking IPv6 outside IPv6Network (seen as its node), not pod to pod across nodes', async () => {
    const [n1, n2] = cl.nodes;
    // the "internet": fd77::1 on the underlay bridge, with a route back to the pods through node 1
    execIn(cl.underlay, 'ip', ['-6', 'addr', 'add', 'fd77::1/64', 'dev', 'ul0', 'nodad']);
    execIn(cl.underlay, 'ip', ['-6', 'route', 'add', NET6, 'via', ip6Of(n1)]);
    expect(await sourceSeen(cl.underlay, 'fd77::1', n1.pod!)).toBe(ip6Of(n1));
    expect(await sourceSeen(n2.pod!, `${leaseOf6(cl, n2).net6}2`, n1.pod!)).toBe(`${leaseOf6(cl, n1).net6}2`);
  });

  it('repairs a deleted IPv6 route and neighbour, and a deleted flannel-v6.1 (same MAC, peers re-programmed)', async () => {
    const [n1, n2] = cl.nodes;
    const l2 = leaseOf6(cl, n2);
    execIn(n1.ns, 'ip', ['-6', 'route', 'del', `${l2.net6}/64`]);
    execIn(n1.ns, 'ip', ['-6', 'neigh', 'del', l2.net6, 'dev', 'flannel-v6.1']);
    await waitFor('v6 route and neighbour restored', () => peerState6(n1) === wantPeers6(cl, n1), 10_000);
    const mac = leaseOf6(cl, n1).value.BackendV6Data!.VtepMAC;
    execIn(n1.ns, 'ip', ['link', 'del', 'flannel-v6.1']);
    await waitFor('flannel-v6.1 re-created and re-programmed', () => peerState6(n1) === wantPeers6(cl, n1), 10_000);
    expect(v6View(n1.ns).link.address).toBe(mac);
    await reach(n1.pod!, `${l2.net6}2`);
  });

  it("a departed node's IPv6 (and IPv4) entries are removed from the others", async () => {
    const [n1, n2, n3] = cl.nodes;
    const gone = leaseOf6(cl, n3);
    expect(await cl.stopAgent(n3)).toBe(0);
    rmSync(path.join(cl.leaseDir, 'subnets', gone.file));
    for (const n of [n1, n2]) {
      await waitFor(`node ${n.i} without node 3`, () => peerState6(n) === wantPeers6(cl, n, [n1, n2]), 10_000);
      expect(execIn(n.ns, 'ip', ['route', 'show', 'dev', 'flannel.1'])).not.toContain(`${gone.prefix}.0/24`);
    }
  });
});

describe('flaxd IPv6-only vxlan', () => {
  const cl = new Cluster();
  beforeAll(() => start(cl, { EnableIPv4: false, EnableIPv6: true, IPv6Network: NET6, Backend: { Type: 'vxlan' } }), 60_000);
  afterAll(() => cl.destroy(), 60_000);

  it('leases are keyed 0.0.0.0-0&<v6>-64 with PublicIP "0.0.0.0" and only BackendV6Data; subnet.env has only the IPv6 pair', () => {
    for (const n of cl.nodes) {
      const l = leaseOf6(cl, n);
      expect(l.file).toMatch(/^0\.0\.0\.0-0&fc00:0:0:[0-9a-f]+::-64\.json$/);
      const mac = l.value.BackendV6Data!.VtepMAC;
      expect(l.text).toMatch(new RegExp(`^\\{"Value":\\{"PublicIP":"0.0.0.0","PublicIPv6":"${ip6Of(n)}","BackendType":"vxlan","BackendV6Data":\\{"VNI":1,"VtepMAC":"${mac}"\\}\\},"Expiration":"[^"]+"\\}\\n$`));
      expect(readFileSync(n.subnetFile, 'utf8')).toBe(`FLANNEL_IPV6_NETWORK=${NET6}\nFLANNEL_IPV6_SUBNET=${l.net6}1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n`);
      expect(execIn(n.ns, 'ip', ['link', 'show', 'flannel.1'], { allowFail: true })).toBe('');
      expect(v6View(n.ns).link.address).toBe(mac);
    }
  });

  it('programs the peers on flannel-v6.1 and pods ping across nodes over IPv6', async () => {
    for (const n of cl.nodes) await waitFor(`node ${n.i} v6 peers`, () => peerState6(n) === wantPeers6(cl, n));
    await pingsAll(cl, false);
  });

  it('a restarted agent keeps its lease, its device and its subnet.env; the peers stay programmed', async () => {
    const n1 = cl.nodes[0];
    const before = { lease: leaseOf6(cl, n1).file, env: readFileSync(n1.subnetFile, 'utf8'), idx: v6View(n1.ns).link.ifindex };
    expect(await cl.stopAgent(n1)).toBe(0);
    writeSysctl(n1.ns, 'net.ipv6.conf.all.forwarding', 0); // said in the log, not changed by flaxd
    cl.startAgent(n1);
    await cl.waitReady(n1);
    expect(n1.agent!.log()).toMatch(/^W\d{4} [^\]]*\] net\.ipv6\.conf\.all\.forwarding is 0: pods on other nodes will not be reached/m);
    writeSysctl(n1.ns, 'net.ipv6.conf.all.forwarding', 1);
    expect(leaseOf6(cl, n1).file).toBe(before.lease);
    expect(readFileSync(n1.subnetFile, 'utf8')).toBe(before.env);
    expect(v6View(n1.ns).link.ifindex).toBe(before.idx);
    expect(n1.agent!.log()).toMatch(/found lease fc00:0:0:[0-9a-f]+::\/64 for our public IPv6 fd77::11, reusing/);
    expect(peerState6(n1)).toBe(wantPeers6(cl, n1));
    await reach(n1.pod!, `${leaseOf6(cl, cl.nodes[1]).net6}2`);
  });
});

describe('flaxd dual-stack host-gw (nftables)', () => {
  const cl = new Cluster();
  beforeAll(() => start(cl, { Network: NETWORK, EnableIPv6: true, IPv6Network: NET6, EnableNFTables: true, Backend: { Type: 'host-gw' } }, ['--ip-masq']), 60_000);
  afterAll(() => cl.destroy(), 60_000);

  const routes6 = (n: Node) => ipJson<any[]>(n.ns, ['-6', 'route', 'show', 'dev', 'eth0'])
    .filter((r) => r.dst.startsWith('fc00:')).map((r) => `${r.dst} via ${r.gateway}`).sort().join('\n');
  const want6 = (cl: Cluster, n: Node) => cl.nodes.filter((o) => o !== n).map((o) => `${leaseOf6(cl, o).net6}/64 via ${ip6Of(o)}`).sort().join('\n');

  it('routes each peer IPv6 subnet via its PublicIPv6 on eth0 (no vxlan device), pods ping over both families', async () => {
    for (const n of cl.nodes) {
      const l = leaseOf6(cl, n);
      expect(l.text).toMatch(new RegExp(`^\\{"Value":\\{"PublicIP":"${n.ip}","PublicIPv6":"${ip6Of(n)}","BackendType":"host-gw"\\},`));
      expect(readFileSync(n.subnetFile, 'utf8')).toBe(`FLANNEL_NETWORK=${NETWORK}\nFLANNEL_SUBNET=${l.prefix}.1/24\nFLANNEL_IPV6_NETWORK=${NET6}\nFLANNEL_IPV6_SUBNET=${l.net6}1/64\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n`);
      expect(execIn(n.ns, 'ip', ['link', 'show', 'flannel-v6.1'], { allowFail: true })).toBe('');
      await waitFor(`node ${n.i} v6 routes`, () => routes6(n) === want6(cl, n));
    }
    await pingsAll(cl, true);
  });

  it('nftables: table ip6 flannel-ipv6 with postrtg and forward for the IPv6 network', () => {
    const n1 = cl.nodes[0];
    const t = execIn(n1.ns, 'nft', ['list', 'table', 'ip6', 'flannel-ipv6']);
    expect(t).toContain(`ip6 saddr ${NET6} ip6 daddr != ff00::/8 masquerade fully-random`);
    expect(t).toContain(`ip6 saddr ${leaseOf6(cl, n1).net6}/64 ip6 daddr ${NET6} return`);
    expect(t).toContain(`ip6 daddr ${NET6} accept`);
    expect(execIn(n1.ns, 'nft', ['list', 'table', 'ip', 'flannel-ipv4'])).toContain(`ip saddr ${NETWORK} accept`);
  });

  it('a deleted IPv6 route comes back', async () => {
    const [n1, n2] = cl.nodes;
    execIn(n1.ns, 'ip', ['-6', 'route', 'del', `${leaseOf6(cl, n2).net6}/64`]);
    await waitFor('v6 route restored', () => routes6(n1) === want6(cl, n1), 10_000);
  });
});

describe('flaxd dual-stack vxlan with DirectRouting', () => {
  const cl = new Cluster();
  beforeAll(() => start(cl, { Network: NETWORK, EnableIPv6: true, IPv6Network: NET6, Backend: { Type: 'vxlan', DirectRouting: true } }, [], 2), 60_000);
  afterAll(() => cl.destroy(), 60_000);

  it('on-link peers get `<v6 subnet> via <PublicIPv6>` on eth0 and nothing on flannel-v6.1; pods ping over IPv6', async () => {
    const [a, b] = cl.nodes;
    for (const [n, o] of [[a, b], [b, a]]) {
      const want = `${leaseOf6(cl, o).net6}/64 via ${ip6Of(o)}`;
      await waitFor(`node ${n.i} direct v6 route`, () => ipJson<any[]>(n.ns, ['-6', 'route', 'show', 'dev', 'eth0'])
        .filter((r) => r.dst.startsWith('fc00:')).map((r) => `${r.dst} via ${r.gateway}`).join() === want);
      expect(peerState6(n)).toBe(JSON.stringify({ neighs: [], fdb: [], routes: [] }));
    }
    await reach(a.pod!, `${leaseOf6(cl, b).net6}2`);
    await reach(b.pod!, `${leaseOf6(cl, a).net6}2`);
  });
});

for (const v4 of [true, false]) describe(`flaxd ${v4 ? 'dual-stack' : 'IPv6-only'} with the kube store (fake API server)`, () => {
  const API_IP = '192.168.77.5';
  const cl = new Cluster();
  const api = new FakeKubeApi();
  const nodeName = (n: Node) => `node-${n.i}`;
  const lease = (n: Node): Lease6 => ({ file: '', prefix: v4 ? `10.244.${n.i}` : '', net6: `fc00:0:0:${n.i}::`, value: { PublicIP: n.ip, PublicIPv6: ip6Of(n), BackendType: 'vxlan' }, text: '' });

  beforeAll(async () => {
    requireBuilt('flaxd');
    await cl.create(2, { ...(v4 ? { Network: NETWORK } : { EnableIPv4: false }), EnableIPv6: true, IPv6Network: NET6, Backend: { Type: 'vxlan' } });
    await addV6Underlay(cl);
    const h = openHandleAt(cl.underlay);
    try {
      await h.addrAdd((await h.linkByName('ul0')).index, `${API_IP}/24`);
    } finally {
      h.close();
    }
    withNetns(cl.underlay, () => api.listenAll(6443, API_IP));
    for (const n of cl.nodes) {
      const cidrs = [...(v4 ? [`10.244.${n.i}.0/24`] : []), `fc00:0:0:${n.i}::/64`];
      api.addNode({ metadata: { name: nodeName(n) }, spec: { podCIDR: cidrs[0], podCIDRs: cidrs } });
    }
    for (const n of cl.nodes) cl.startAgent(n, ['--kube-subnet-mgr', '--kubeconfig-file', api.kubeconfig(), '--node-name', nodeName(n)]);
    for (const n of cl.nodes) await cl.waitReady(n);
    for (const n of cl.nodes) await addPod6(cl, n, lease(n));
  }, 60_000);
  afterAll(async () => {
    await cl.destroy();
    await api.stop();
  }, 60_000);

  it(`takes the podCIDRs, writes flanneld's annotations (${v4 ? 'both families' : 'no backend-data or public-ip'}) and subnet.env`, () => {
    for (const n of cl.nodes) {
      const v = v6View(n.ns);
      const v4ann = v4 ? { [ANN.backendData]: `{"VNI":1,"VtepMAC":"${ipJson<any[]>(n.ns, ['link', 'show', 'dev', 'flannel.1'])[0].address}"}`, [ANN.publicIP]: n.ip } : {};
      expect(api.nodes.get(nodeName(n))!.metadata.annotations).toEqual({
        ...v4ann, [ANN.backendType]: 'vxlan', [ANN.subnetManager]: 'true',
        [ANN.backendV6Data]: `{"VNI":1,"VtepMAC":"${v.link.address}"}`, [ANN.publicIPv6]: ip6Of(n),
      });
      expect(readFileSync(n.subnetFile, 'utf8')).toBe(`${v4 ? `FLANNEL_NETWORK=${NETWORK}\nFLANNEL_SUBNET=10.244.${n.i}.1/24\n` : ''}FLANNEL_IPV6_NETWORK=${NET6}\nFLANNEL_IPV6_SUBNET=fc00:0:0:${n.i}::1/64\nFLANNEL_MTU=${v4 ? 1450 : 1430}\nFLANNEL_IPMASQ=false\n`);
      expect(v.addrs).toEqual([`fc00:0:0:${n.i}::/128`]);
    }
  });

  it(`programs the other node on flannel-v6.1 from its annotations; pods ping over ${v4 ? 'IPv4 and ' : ''}IPv6`, async () => {
    const [a, b] = cl.nodes;
    for (const [n, o] of [[a, b], [b, a]]) {
      const l = { ...lease(o), value: { ...lease(o).value, BackendV6Data: { VNI: 1, VtepMAC: v6View(o.ns).link.address } } };
      const want = JSON.stringify(v6Peers([{ l, n: o }]));
      await waitFor(`node ${n.i} v6 peer`, () => peerState6(n) === want);
    }
    if (v4) await reach(a.pod!, `${lease(b).prefix}.2`);
    await reach(a.pod!, `${lease(b).net6}2`);
    await reach(b.pod!, `${lease(a).net6}2`);
  });
});

describe('flaxd dual-stack beside a node configured as flanneld configures itself', () => {
  const cl = new Cluster();
  const HAND = { prefix: '10.244.50', net6: 'fc00:0:0:50::', mac4: '0e:00:00:00:50:04', mac6: '0e:00:00:00:50:06' };
  let hand: Node;

  beforeAll(async () => {
    requireBuilt('flaxd');
    await cl.create(3, { Network: NETWORK, EnableIPv6: true, IPv6Network: NET6, Backend: { Type: 'vxlan' } });
    await addV6Underlay(cl);
    hand = cl.nodes[2];
    // node 3: flanneld's devices, addresses and lease (its value bytes as flanneld marshals them)
    const ex = (args: string[]) => execIn(hand.ns, 'ip', args);
    ex(['link', 'add', 'flannel.1', 'address', HAND.mac4, 'mtu', '1450', 'type', 'vxlan', 'id', '1', 'local', hand.ip, 'dev', 'eth0', 'dstport', '8472', 'nolearning']);
    ex(['link', 'add', 'flannel-v6.1', 'address', HAND.mac6, 'type', 'vxlan', 'id', '1', 'local', ip6Of(hand), 'dev', 'eth0', 'dstport', '8472', 'nolearning']);
    ex(['addr', 'add', `${HAND.prefix}.0/32`, 'dev', 'flannel.1']);
    ex(['-6', 'addr', 'add', `${HAND.net6}/128`, 'dev', 'flannel-v6.1', 'nodad']);
    ex(['link', 'set', 'flannel.1', 'up']);
    ex(['link', 'set', 'flannel-v6.1', 'up']);
    const value = `{"PublicIP":"${hand.ip}","PublicIPv6":"${ip6Of(hand)}","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${HAND.mac4}"},"BackendV6Data":{"VNI":1,"VtepMAC":"${HAND.mac6}"}}`;
    mkdirSync(path.join(cl.leaseDir, 'subnets'), { recursive: true });
    writeFileSync(path.join(cl.leaseDir, 'subnets', `${HAND.prefix}.0-24&${HAND.net6}-64.json`),
      `{"Value":${value},"Expiration":"${new Date(Date.now() + 3600_000).toISOString()}"}\n`);
    for (const n of cl.nodes.slice(0, 2)) cl.startAgent(n);
    for (const n of cl.nodes.slice(0, 2)) await cl.waitReady(n);
    // flanneld's handleSubnetEvents on node 3, from the flaxd nodes' leases: neighbour, FDB, route per family
    for (const n of cl.nodes.slice(0, 2)) {
      const l = leaseOf6(cl, n);
      ex(['neigh', 'replace', `${l.prefix}.0`, 'lladdr', l.value.BackendData!.VtepMAC, 'dev', 'flannel.1', 'nud', 'permanent']);
      execIn(hand.ns, 'bridge', ['fdb', 'replace', l.value.BackendData!.VtepMAC, 'dev', 'flannel.1', 'dst', n.ip, 'self', 'permanent']);
      ex(['route', 'replace', `${l.prefix}.0/24`, 'via', `${l.prefix}.0`, 'dev', 'flannel.1', 'onlink']);
      ex(['-6', 'neigh', 'replace', l.net6, 'lladdr', l.value.BackendV6Data!.VtepMAC, 'dev', 'flannel-v6.1', 'nud', 'permanent']);
      execIn(hand.ns, 'bridge', ['fdb', 'replace', l.value.BackendV6Data!.VtepMAC, 'dev', 'flannel-v6.1', 'dst', ip6Of(n), 'self', 'permanent']);
      ex(['-6', 'route', 'replace', `${l.net6}/64`, 'via', l.net6, 'dev', 'flannel-v6.1', 'onlink']);
    }
    for (const n of cl.nodes) await addPod6(cl, n, leaseOf6(cl, n));
  }, 60_000);
  afterAll(() => cl.destroy(), 60_000);

  it("flaxd programs the flanneld node from its lease, and pods ping both ways over IPv4 and IPv6", async () => {
    for (const n of cl.nodes.slice(0, 2)) await waitFor(`node ${n.i} programmed`, () => peerState6(n) === wantPeers6(cl, n));
    expect(v6View(cl.nodes[0].ns).neighs).toContain(`${HAND.net6} ${HAND.mac6} PERMANENT`);
    for (const n of cl.nodes.slice(0, 2)) {
      const l = leaseOf6(cl, n);
      await reach(n.pod!, `${HAND.net6}2`);
      await reach(hand.pod!, `${l.net6}2`);
      await reach(n.pod!, `${HAND.prefix}.2`);
      await reach(hand.pod!, `${l.prefix}.2`);
    }
  });

  it("a new IPv6 VTEP MAC in the flanneld node's lease replaces its neighbour and FDB entries on flannel-v6.1 (nothing stale left)", async () => {
    const file = path.join(cl.leaseDir, 'subnets', `${HAND.prefix}.0-24&${HAND.net6}-64.json`);
    const NEW = '0e:00:00:00:50:66';
    writeFileSync(file, readFileSync(file, 'utf8').replace(HAND.mac6, NEW));
    for (const n of cl.nodes.slice(0, 2)) {
      await waitFor(`node ${n.i} re-programmed`, () => peerState6(n) === wantPeers6(cl, n), 10_000);
      const v = v6View(n.ns);
      expect(v.neighs).toContain(`${HAND.net6} ${NEW} PERMANENT`);
      expect(v.fdb.some((f) => f.startsWith(HAND.mac6))).toBe(false);
    }
  });
});

describe('flaxd dual-stack with the etcd store', () => {
  const PREFIX = '/coreos.com/network';
  const cl = new Cluster();
  const etcd = new EtcdServer();
  const leasesIn = () => [...etcd.getPrefix(`${PREFIX}/subnets/`)].map(([key, v]) => {
    const m = /\/subnets\/(\d+\.\d+\.\d+)\.0-24&(fc00:0:0:[0-9a-f]+::)-64$/.exec(key);
    if (!m) throw new Error(`unexpected key ${key}`);
    return { key, ...v, prefix: m[1], net6: m[2], attrs: JSON.parse(v.value) as Lease6['value'] };
  });
  const leaseIn = (n: Node) => leasesIn().find((l) => l.attrs.PublicIPv6 === ip6Of(n))!;

  beforeAll(async () => {
    requireBuilt('flaxd');
    requireEtcd();
    await cl.create(2);
    await addV6Underlay(cl);
    await etcd.start(cl.underlay);
    etcd.ctl(['put', `${PREFIX}/config`, JSON.stringify({ Network: NETWORK, EnableIPv6: true, IPv6Network: NET6, Backend: { Type: 'vxlan' } })]);
    for (const n of cl.nodes) cl.startAgent(n, ['--etcd-endpoints', ETCD_URL, '--net-config-path', path.join(cl.tmp, 'absent.json')]);
    for (const n of cl.nodes) await cl.waitReady(n);
    for (const n of cl.nodes) {
      const l = leaseIn(n);
      await addPod6(cl, n, { file: '', prefix: l.prefix, net6: l.net6, value: l.attrs, text: l.value });
    }
  }, 90_000);
  afterAll(() => tearDownEtcdCluster(cl, etcd), 60_000);

  it("keys <prefix>/subnets/<v4>-24&<v6>-64 hold flanneld's value bytes on a 24 h etcd lease; subnet.env from them", () => {
    const ls = leasesIn();
    expect(ls).toHaveLength(2);
    for (const n of cl.nodes) {
      const l = leaseIn(n);
      const m4 = ipJson<any[]>(n.ns, ['link', 'show', 'dev', 'flannel.1'])[0].address;
      const m6 = v6View(n.ns).link.address;
      expect(l.value).toBe(`{"PublicIP":"${n.ip}","PublicIPv6":"${ip6Of(n)}","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${m4}"},"BackendV6Data":{"VNI":1,"VtepMAC":"${m6}"}}`);
      expect(l.lease).not.toBe('0');
      const ttl = Number(/remaining\((\d+)s\)/.exec(etcd.ctl(['lease', 'timetolive', l.lease]).out)?.[1]);
      expect(ttl).toBeGreaterThan(24 * 3600 - 120);
      expect(readFileSync(n.subnetFile, 'utf8')).toBe(`FLANNEL_NETWORK=${NETWORK}\nFLANNEL_SUBNET=${l.prefix}.1/24\nFLANNEL_IPV6_NETWORK=${NET6}\nFLANNEL_IPV6_SUBNET=${l.net6}1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n`);
    }
  });

  it('programs the peer on flannel-v6.1 from etcd and pods ping over IPv4 and IPv6', async () => {
    const [a, b] = cl.nodes;
    for (const [n, o] of [[a, b], [b, a]]) {
      const l = leaseIn(o);
      const want = JSON.stringify(v6Peers([{ l: { file: '', prefix: l.prefix, net6: l.net6, value: l.attrs, text: '' }, n: o }]));
      await waitFor(`node ${n.i} v6 peer`, () => peerState6(n) === want);
    }
    await reach(a.pod!, `${leaseIn(b).prefix}.2`);
    await reach(a.pod!, `${leaseIn(b).net6}2`);
    await reach(b.pod!, `${leaseIn(a).net6}2`);
  });
});

describe('flaxd dual-stack with pods attached through the flannel conflist (flannel → bridge + host-local)', () => {
  const cl = new Cluster();
  const NET = 'cbr0';
  const pods = new Map<Node, string>();
  const podAddrs = (pod: string) => ipJson<any[]>(pod, ['addr', 'show', 'dev', 'eth0'])[0].addr_info
    .filter((a: any) => a.scope === 'global').map((a: any) => `${a.local}/${a.prefixlen}`).sort();

  beforeAll(async () => {
    requireBuilt('flaxd', 'flax', 'flannel', 'bridge', 'host-local');
    await cl.create(2, { Network: NETWORK, EnableIPv6: true, IPv6Network: NET6, Backend: { Type: 'vxlan' } });
    await addV6Underlay(cl);
    for (const n of cl.nodes) cl.startAgent(n);
    for (const n of cl.nodes) await cl.waitReady(n);
    for (const n of cl.nodes) {
      const confDir = path.join(n.dir, 'net.d');
      mkdirSync(confDir);
      writeFileSync(path.join(confDir, '10-flannel.conflist'), JSON.stringify({
        cniVersion: '1.0.0', name: NET,
        plugins: [{ type: 'flannel', subnetFile: n.subnetFile, dataDir: path.join(n.dir, 'flannel'), delegate: { hairpinMode: true, isDefaultGateway: true }, ipam: { dataDir: path.join(n.dir, 'ipam') } }],
      }));
      const [pod] = createTestNetns(1);
      pods.set(n, pod);
      writeSysctl(pod, 'net.ipv6.conf.all.disable_ipv6', 0);
      const r = spawnSync('nsenter', [`--net=${n.ns}`, '--', path.join(DIST_BIN, 'flax'), 'cni', 'add', NET, pod, '--cache-dir', path.join(n.dir, 'cache')],
        { encoding: 'utf8', env: { PATH: process.env.PATH!, NETCONFPATH: confDir, CNI_PATH: DIST_BIN } });
      if (r.status !== 0) throw new Error(`flax cni add on node ${n.i}: ${r.stderr}`);
    }
  }, 90_000);
  afterAll(async () => {
    await cl.destroy();
    destroyTestNetns([...pods.values()]);
  }, 60_000);

  it("each pod gets an address of both subnets from subnet.env and pings the other node's pod over IPv4 and IPv6", async () => {
    const [a, b] = cl.nodes;
    for (const n of cl.nodes) {
      const l = leaseOf6(cl, n);
      expect(podAddrs(pods.get(n)!)).toEqual([`${l.prefix}.2/24`, `${l.net6}2/64`].sort());
    }
    const lb = leaseOf6(cl, b);
    for (const n of cl.nodes) await waitFor(`node ${n.i} v6 peers`, () => peerState6(n) === wantPeers6(cl, n));
    await reach(pods.get(a)!, `${lb.prefix}.2`);
    await reach(pods.get(a)!, `${lb.net6}2`);
    await reach(pods.get(b)!, `${leaseOf6(cl, a).net6}2`);
  });
});

describe('flaxd: IPv6 enabled on a running IPv4 cluster', () => {
  const cl = new Cluster();
  beforeAll(async () => {
    requireBuilt('flaxd');
    await cl.create(2, { Network: NETWORK, Backend: { Type: 'vxlan' } });
    await addV6Underlay(cl);
    for (const n of cl.nodes) cl.startAgent(n);
    for (const n of cl.nodes) await cl.waitReady(n);
  }, 60_000);
  afterAll(() => cl.destroy(), 60_000);

  it('restarted with EnableIPv6, each node keeps its IPv4 subnet and VTEP MAC and gains an IPv6 subnet; pods ping over both', async () => {
    const before = new Map(cl.nodes.map((n) => [n, { env: readFileSync(n.subnetFile, 'utf8'), mac: ipJson<any[]>(n.ns, ['link', 'show', 'dev', 'flannel.1'])[0].address }]));
    writeFileSync(cl.netConf, JSON.stringify({ Network: NETWORK, EnableIPv6: true, IPv6Network: NET6, Backend: { Type: 'vxlan' } }));
    for (const n of cl.nodes) {
      expect(await cl.stopAgent(n)).toBe(0);
      cl.startAgent(n);
      await cl.waitReady(n);
    }
    for (const n of cl.nodes) {
      const l = leaseOf6(cl, n);
      const env = readFileSync(n.subnetFile, 'utf8');
      expect(env.split('\n').slice(0, 2).join('\n')).toBe(before.get(n)!.env.split('\n').slice(0, 2).join('\n'));
      expect(env).toContain(`FLANNEL_IPV6_SUBNET=${l.net6}1/64\n`);
      expect(l.value.BackendData!.VtepMAC).toBe(before.get(n)!.mac);
      await addPod6(cl, n, l);
    }
    expect(leases6(cl)).toHaveLength(2); // the IPv4-only leases were replaced, not left behind
    for (const n of cl.nodes) await waitFor(`node ${n.i} v6 peers`, () => peerState6(n) === wantPeers6(cl, n));
    const [a, b] = cl.nodes;
    await reach(a.pod!, `${leaseOf6(cl, b).prefix}.2`);
    await reach(a.pod!, `${leaseOf6(cl, b).net6}2`);
  });
});

describe('flaxd IPv6-only with FLANNELD_PUBLIC_IPV6', () => {
  const cl = new Cluster();
  beforeAll(async () => {
    requireBuilt('flaxd');
    await cl.create(2, { EnableIPv4: false, EnableIPv6: true, IPv6Network: NET6, Backend: { Type: 'vxlan' } });
    await addV6Underlay(cl);
    // node 2's first IPv6 address is now fd77::99 (the kernel lists the newest first): the default choice
    execIn(cl.nodes[1].ns, 'ip', ['-6', 'addr', 'add', 'fd77::99/64', 'dev', 'eth0', 'nodad']);
    cl.startAgent(cl.nodes[0]);
    cl.startAgent(cl.nodes[1], [], { ...process.env, FLANNELD_PUBLIC_IPV6: 'FD77:0::12' });
    for (const n of cl.nodes) await cl.waitReady(n);
  }, 60_000);
  afterAll(() => cl.destroy(), 60_000);

  it('the lease publishes the given address (not the default fd77::99, which stays the VXLAN local), peers send to it; pods ping', async () => {
    const [a, b] = cl.nodes;
    const lb = leaseOf6(cl, b);
    expect(lb.text).toContain('"PublicIP":"0.0.0.0","PublicIPv6":"fd77::12"');
    expect(v6View(b.ns).link.linkinfo.info_data.local6).toBe('fd77::99');
    await waitFor('node 1 sends to fd77::12', () => v6View(a.ns).fdb.join() === `${lb.value.BackendV6Data!.VtepMAC} fd77::12 self permanent`);
    const la = leaseOf6(cl, a);
    await addPod6(cl, a, la);
    await addPod6(cl, b, lb);
    await reach(a.pod!, `${lb.net6}2`);
    await reach(b.pod!, `${la.net6}2`);
  });
});
