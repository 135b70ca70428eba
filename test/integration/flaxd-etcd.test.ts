/**
 * flaxd with the etcd v3 store, on the real kernel and a real etcd (Debian's
 * etcd-server, in its own netns on the underlay at 192.168.77.5): three
 * namespace nodes run dist/bin/flaxd --etcd-endpoints, with the network
 * config read from etcd's <prefix>/config (no file). Checks the etcd keys,
 * values (flanneld's bytes) and lease TTLs, subnet.env, peers and pod pings,
 * a restart (same key and value, nothing changed on the peers);
 * then the faults: etcd stopped for 10 s (pods keep talking, agents keep
 * running) and restarted (a node joining then is programmed everywhere, also
 * on a node cut off from etcd until its history was compacted: its watch is
 * cancelled, it re-lists and watches again). Two of the three first nodes
 * reconcile only on watch events (--reconcile-interval 300); a
 * lease deleted in etcd (peers drop it, its agent exits 1); etcd unreachable
 * at start (exit 1, no subnet.env). Mixed cluster: a node configured by the
 * test as flanneld configures itself (device with ip, lease JSON as flanneld
 * writes it) is programmed by the flaxd nodes, pods ping both ways.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execIn } from '../lib/netns';
import { ETCD_IP, ETCD_URL, EtcdServer, setUpEtcdCluster, tearDownEtcdCluster } from './etcd-helpers';
import { Cluster, peerEntries, peerState as peerStateOf, type Node, pingFrom, vxlanView, waitFor } from './flaxd-helpers';

const PREFIX = '/coreos.com/network';
const cl = new Cluster();
const etcd = new EtcdServer();
let running: Node[] = [];

const subnetsOf = () => {
  const m = new Map<string, { key: string; value: string; lease: string; prefix: string; attrs: { PublicIP: string; BackendData: { VtepMAC: string } } }>();
  for (const [key, v] of etcd.getPrefix(`${PREFIX}/subnets/`)) {
    const attrs = JSON.parse(v.value);
    m.set(attrs.PublicIP, { key, ...v, prefix: key.replace(/^.*\/subnets\/(\d+\.\d+\.\d+)\.0-24$/, '$1'), attrs });
  }
  return m;
};
const leaseOf = (n: Node) => {
  const l = subnetsOf().get(n.ip);
  if (!l) throw new Error(`no lease in etcd for node ${n.i} (${n.ip})`);
  return l;
};
const macOf = (n: Node): string => vxlanView(n.ns).link.address;
function expected(others: Node[]) {
  return peerEntries(others.map((p) => ({ prefix: leaseOf(p).prefix, mac: macOf(p), ip: p.ip })));
}
const peerState = (n: Node) => peerStateOf(n.ns);
/** Each node of `check` holds exactly the entries of the other nodes of `all`. */
async function converged(check: Node[], timeoutMs = 20_000, all = check): Promise<void> {
  for (const n of check) {
    const others = all.filter((o) => o !== n);
    await waitFor(`node ${n.i} programmed for ${others.map((o) => o.i).join(',')}`,
      () => JSON.stringify(peerState(n)) === JSON.stringify(expected(others)), timeoutMs)
      .catch((e: Error) => { throw new Error(`${e.message}; its log ends:\n${n.agent?.log().split('\n').slice(-25).join('\n')}`); });
  }
}
const podIp = (n: Node) => `${leaseOf(n).prefix}.2`;
/** Every ordered pair of pods pings (a failure names the pair). */
function allPing(nodes: Node[]): string[] {
  const bad: string[] = [];
  for (const a of nodes) for (const b of nodes) if (a !== b && !pingFrom(a.pod!, podIp(b))) bad.push(`${a.i}->${b.i}`);
  return bad;
}
// node 3 re-lists every second (the outage fallback of list() is exercised there); the others only on
// watch events and reconnections (a 300 s interval): what converges them is the watch
const interval = (n: Node) => (n.i === 3 ? '1' : '300');
const etcdArgs = (n: Node) => ['--etcd-endpoints', ETCD_URL, '--net-config-path', path.join(n.dir, 'absent-net-conf.json'), '--reconcile-interval', interval(n)];
async function join(n: Node): Promise<void> {
  cl.startAgent(n, etcdArgs(n));
  await cl.waitReady(n);
  await cl.addPod(n, leaseOf(n).prefix);
  running.push(n);
}

beforeAll(async () => {
  running = await setUpEtcdCluster(cl, etcd, { nodes: 5, agents: 3, prefix: PREFIX, args: etcdArgs });
  for (const n of running) await cl.addPod(n, leaseOf(n).prefix);
}, 90_000);
afterAll(() => tearDownEtcdCluster(cl, etcd), 60_000);

describe('flaxd: three vxlan nodes with the etcd store', () => {
  it("leases one subnet per node in etcd: flanneld's key and value bytes, on an etcd lease of 24 h", () => {
    const subnets = subnetsOf();
    expect(subnets.size).toBe(3);
    for (const n of running) {
      const l = leaseOf(n);
      expect(l.key).toMatch(/^\/coreos\.com\/network\/subnets\/10\.244\.\d+\.0-24$/);
      expect(l.value).toBe(`{"PublicIP":"${n.ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${macOf(n)}"}}`);
      expect(l.lease).not.toBe('0');
      const ttl = etcd.ttl(l.lease);
      expect(ttl).toBeGreaterThan(24 * 3600 - 300);
      expect(ttl).toBeLessThanOrEqual(24 * 3600);
    }
    expect(new Set([...subnets.values()].map((l) => l.prefix)).size).toBe(3);
  });

  it("takes the network config from etcd's <prefix>/config and writes subnet.env", () => {
    for (const n of running) {
      expect(readFileSync(n.subnetFile, 'utf8')).toBe(`FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=${leaseOf(n).prefix}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n`);
    }
  });

  it('programs every peer and carries pod-to-pod traffic across nodes', async () => {
    await converged(running);
    expect(allPing(running)).toEqual([]);
  });

  it('restart: SIGTERM exits 0 leaving the data plane; the new agent reuses its etcd key (same value, a fresh etcd lease)', async () => {
    const n = cl.nodes[1];
    const before = { lease: leaseOf(n), state: running.map((x) => peerState(x)) };
    expect(await cl.stopAgent(n)).toBe(0);
    cl.startAgent(n, etcdArgs(n));
    await cl.waitReady(n);
    const after = leaseOf(n);
    expect([after.key, after.value]).toEqual([before.lease.key, before.lease.value]);
    expect(after.lease).not.toBe(before.lease.lease);
    expect(n.agent!.log()).toMatch(/found lease 10\.244\.\d+\.0\/24 for our public IP .*, reusing/);
    expect(running.map((x) => peerState(x))).toEqual(before.state);
    expect(subnetsOf().size).toBe(3);
  });

  it('etcd stopped for 10 s: agents keep running and pods keep talking; after the restart a joining node is programmed everywhere', async () => {
    const before = new Map(running.map((n) => [n, expected(running.filter((o) => o !== n))]));
    const pods = new Map(running.map((n) => [n, podIp(n)]));
    await etcd.stop();
    const t0 = Date.now();
    while (Date.now() - t0 < 10_000) {
      for (const a of running) for (const b of running) if (a !== b) expect(pingFrom(a.pod!, pods.get(b)!), `${a.i}->${b.i}`).toBe(true);
      for (const n of running) expect(n.agent!.proc.exitCode, n.agent!.log()).toBeNull();
      await new Promise((r) => setTimeout(r, 1000));
    }
    for (const n of running) {
      expect(peerState(n)).toEqual(before.get(n));
      expect(n.agent!.log()).toMatch(/etcd watch disconnected/);
    }
    expect(cl.nodes[2].agent!.log()).toMatch(/etcd unreachable \(.*\); keeping the last known 3 leases/);
    // node 1 stays cut off from etcd while a node joins and etcd compacts its history:
    // its watch then resumes from a compacted revision, is cancelled, and must re-list
    const n1 = cl.nodes[0];
    execIn(n1.ns, 'ip', ['route', 'add', 'prohibit', `${ETCD_IP}/32`]);
    await etcd.resume();
    await join(cl.nodes[3]);
    await converged(running.filter((n) => n !== n1), 30_000, running);
    // writes elsewhere, so that the compaction passes node 4's creation and the revision node 1 resumes from
    etcd.ctl(['put', '/flax-test/filler', 'x']);
    etcd.ctl(['del', '/flax-test/filler']);
    const rev = (JSON.parse(etcd.ctl(['get', 'none', '-w', 'json']).out) as { header: { revision: number } }).header.revision;
    etcd.ctl(['compact', String(rev)]);
    execIn(n1.ns, 'ip', ['route', 'del', 'prohibit', `${ETCD_IP}/32`]);
    await converged(running, 30_000);
    await waitFor('node 1 to see its watch cancelled', () => /etcd watch cancelled \(by etcd: history compacted.*\); re-listing and watching again/.test(n1.agent!.log()), 10_000);
    // (the next test's deletion reaches node 1 only through the watch it started again)
    expect(allPing(running)).toEqual([]);
    for (const n of running.slice(0, 3)) expect(n.agent!.proc.exitCode, n.agent!.log()).toBeNull();
  }, 120_000);

  it('a lease deleted in etcd: the peers drop its entries and its own agent exits 1', async () => {
    const gone = cl.nodes[3];
    const l = leaseOf(gone);
    etcd.ctl(['del', l.key]);
    const code = await Promise.race([gone.agent!.exited, new Promise((r) => setTimeout(() => r('still running'), 15_000))]);
    expect(code, gone.agent!.log()).toBe(1);
    expect(gone.agent!.log()).toContain('was removed from the store');
    running = running.filter((n) => n !== gone);
    await converged(running);
    expect(allPing(running)).toEqual([]);
  }, 60_000);

  it("mixed cluster: a node set up exactly as flanneld sets itself up is programmed by the flaxd nodes, and pods ping both ways", async () => {
    const f = cl.nodes[4];
    const mac = '0e:fa:00:00:00:05';
    const prefix = '10.244.250';
    // the device as flanneld creates it, and its lease as flanneld serialises it, on a 24 h etcd lease
    const ip = (...a: string[]) => execIn(f.ns, a[0], a.slice(1));
    ip('ip', 'link', 'add', 'flannel.1', 'address', mac, 'mtu', '1450', 'type', 'vxlan', 'id', '1', 'local', f.ip, 'dev', 'eth0', 'dstport', '8472', 'nolearning');
    ip('ip', 'addr', 'add', `${prefix}.0/32`, 'dev', 'flannel.1');
    ip('ip', 'link', 'set', 'flannel.1', 'up');
    const granted = /lease ([0-9a-f]+) granted/.exec(etcd.ctl(['lease', 'grant', '86400']).out)![1];
    etcd.ctl(['put', `--lease=${granted}`, `${PREFIX}/subnets/${prefix}.0-24`,
      `{"PublicIP":"${f.ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`]);
    // what flanneld programs for each flaxd peer, from the flaxd leases (every field it reads is there)
    for (const p of running) {
      const l = leaseOf(p);
      expect(l.attrs).toMatchObject({ PublicIP: p.ip, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: macOf(p) } });
      ip('ip', 'neigh', 'replace', `${l.prefix}.0`, 'lladdr', l.attrs.BackendData.VtepMAC, 'dev', 'flannel.1', 'nud', 'permanent');
      ip('bridge', 'fdb', 'append', l.attrs.BackendData.VtepMAC, 'dev', 'flannel.1', 'dst', p.ip, 'self', 'permanent');
      ip('ip', 'route', 'replace', `${l.prefix}.0/24`, 'via', `${l.prefix}.0`, 'dev', 'flannel.1', 'onlink');
    }
    await cl.addPod(f, prefix);
    await converged(running, 20_000, [...running, f]);
    for (const n of running) {
      expect(pingFrom(n.pod!, `${prefix}.2`), `${n.i}->flanneld`).toBe(true);
      expect(pingFrom(f.pod!, podIp(n)), `flanneld->${n.i}`).toBe(true);
    }
    // and its lease gone (flanneld's node leaves): the flaxd nodes drop it
    etcd.ctl(['del', `${PREFIX}/subnets/${prefix}.0-24`]);
    await converged(running);
  }, 60_000);

  it('etcd unreachable at start: exits 1 after a bounded retry naming the endpoint, and writes no subnet.env', async () => {
    const n = cl.nodes[3];
    const subnetFile = path.join(n.dir, 'unreachable', 'subnet.env');
    const a = cl.startAgent(n, ['--etcd-endpoints', `http://${ETCD_IP}:2999`, '--subnet-file', subnetFile]);
    const code = await Promise.race([a.exited, new Promise((r) => setTimeout(() => r('still running'), 45_000))]);
    expect(code, a.log()).toBe(1);
    expect(a.log()).toMatch(new RegExp(`E\\d{4} [^\\]]*\\] config: etcd unreachable at http://${ETCD_IP.replace(/\./g, '\\.')}:2999 after 5 attempts`));
    expect(existsSync(subnetFile)).toBe(false);
  }, 60_000);
});
