/**
 * `flax doctor` on two namespace nodes running flaxd (flaxd-helpers'
 * Cluster: veth underlay, file lease store). A healthy node exits 0; then
 * each finding is driven: break it, see the exact object named and exit 1;
 * mend it, exit 0 again. flaxd repairs its own data plane within a second
 * (kernel events), so the device/peer breaks are made with the agent
 * stopped (the agent finding fails too) and mended by starting it again.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestNetns, destroyTestNetns, execIn } from '../lib/netns';
import { ours, requireBuilt } from '../lib/cni';
import { Cluster, NETWORK, type Node, addV6Underlay, ip6Of, waitFor } from './flaxd-helpers';

const cl = new Cluster();
let n1: Node;
let n2: Node;
const AGENT_FLAGS = ['--iptables-resync', '3600'];

interface Finding { status: string; check: string; object: string; problem: string; fix: string }
type Doctor = ReturnType<typeof doctorOn>;
/** `flax doctor -o json` on a node of `c` (its lease dir and net-conf.json), and the assertions on its findings. */
function doctorOn(c: Cluster, agentFlags: string[]) {
  function doctor(n: Node, extra: string[] = [], wrap: string[] = []): { code: number; findings: Finding[]; out: string } {
    const confDir = path.join(c.tmp, 'net.d');
    const cacheDir = path.join(c.tmp, 'cache');
    mkdirSync(confDir, { recursive: true });
    mkdirSync(cacheDir, { recursive: true });
    const r = spawnSync('nsenter', [`--net=${n.ns}`, '--', ...wrap, ours('flax'), 'doctor', '-o', 'json', '--subnet-file', n.subnetFile, '--lease-dir', c.leaseDir,
      '--net-config-path', c.netConf, '--cni-conf-dir', confDir, '--cache-dir', cacheDir, '--bridge', 'cni0', ...extra], { encoding: 'utf8' });
    let findings: Finding[] = [];
    try { findings = JSON.parse(r.stdout).findings; } catch { /* shown by the assertion */ }
    return { code: r.status ?? -1, findings, out: r.stdout + r.stderr };
  }
  const failing = (d: ReturnType<typeof doctor>) => d.findings.filter((f) => f.status === 'fail');
  function expectHealthy(n: Node) {
    const d = doctor(n);
    expect(failing(d), d.out).toEqual([]);
    expect(d.code).toBe(0);
    return d;
  }
  function expectNamed(n: Node, check: string, object: RegExp | string, problem?: RegExp, d = doctor(n)) {
    expect(d.code, d.out).toBe(1);
    const f = failing(d).find((x) => x.check === check && (typeof object === 'string' ? x.object === object : object.test(x.object)));
    expect(f, d.out).toBeDefined();
    if (problem) expect(f!.problem).toMatch(problem);
    expect(f!.fix).not.toBe('');
    return f!;
  }
  async function restart(n: Node) {
    c.startAgent(n, agentFlags);
    await c.waitReady(n);
    await waitFor(`node ${n.i} healthy`, () => doctor(n).code === 0, 15_000, 250);
  }
  return { doctor, expectHealthy, expectNamed, restart };
}
const { doctor, expectHealthy, expectNamed, restart } = doctorOn(cl, AGENT_FLAGS);

beforeAll(async () => {
  requireBuilt('flaxd', 'flax');
  await cl.create(2);
  [n1, n2] = cl.nodes as [Node, Node];
  for (const n of cl.nodes) cl.startAgent(n, AGENT_FLAGS);
  for (const n of cl.nodes) await cl.waitReady(n);
  await waitFor('peers programmed', () => doctor(n1).code === 0 && doctor(n2).code === 0, 20_000, 250);
}, 90_000);
afterAll(() => cl.destroy(), 60_000);

describe('flax doctor on netns nodes', () => {
  it('a healthy node: every check ok, the peer probed over the overlay, exit 0; the table says the same', () => {
    const d = doctor(n1);
    expect(d.code, d.out).toBe(0);
    const checks = new Set(d.findings.map((f) => f.check));
    for (const c of ['agent', 'subnet.env', 'vxlan', 'peer', 'probe', 'bridge', 'forwarding', 'leases']) expect(checks, c).toContain(c);
    expect(d.findings.find((f) => f.check === 'probe')!.object).toContain(`public ${n2.ip}`);
    const t = spawnSync('nsenter', [`--net=${n1.ns}`, '--', ours('flax'), 'doctor', '--subnet-file', n1.subnetFile, '--lease-dir', cl.leaseDir, '--net-config-path', cl.netConf], { encoding: 'utf8' });
    expect(t.status, t.stdout + t.stderr).toBe(0);
    expect(t.stdout).toMatch(/^STATUS\s+OBJECT\s+PROBLEM\s+FIX/);
  });

  it('agent stopped: the subnet file lock is named; restarted: ok', async () => {
    await cl.stopAgent(n1);
    expectNamed(n1, 'agent', `${n1.subnetFile}.lock`, /not running/);
    await restart(n1);
  });

  it('subnet.env missing, then not matching any lease', async () => {
    const keep = `${n1.subnetFile}.keep`;
    renameSync(n1.subnetFile, keep);
    expectNamed(n1, 'subnet.env', n1.subnetFile, /does not exist/);
    writeFileSync(n1.subnetFile, 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.250.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n');
    expectNamed(n1, 'subnet.env', n1.subnetFile, /matches no lease/);
    renameSync(keep, n1.subnetFile);
    expectHealthy(n1);
  });

  it('the VXLAN device down, and a peer\'s route and neighbour deleted (agent stopped, else it repairs them at once)', async () => {
    await cl.stopAgent(n1);
    execIn(n1.ns, 'ip', ['link', 'set', 'flannel.1', 'down']);
    expectNamed(n1, 'vxlan', 'flannel.1', /is down/);
    execIn(n1.ns, 'ip', ['link', 'set', 'flannel.1', 'up']);
    const prefix = cl.leaseOf(n2).prefix;
    execIn(n1.ns, 'ip', ['route', 'del', `${prefix}.0/24`, 'dev', 'flannel.1'], { allowFail: true }); // (gone already with the link down)
    execIn(n1.ns, 'ip', ['neigh', 'del', `${prefix}.0`, 'dev', 'flannel.1'], { allowFail: true });
    const f = expectNamed(n1, 'peer', `peer ${prefix}.0/24 (${n2.ip})`, /route .*onlink/);
    expect(f.problem).toContain(`neighbour ${prefix}.0`);
    await restart(n1);
  });

  it('UDP 8472 dropped on the peer: the probe names the peer\'s public address and the likely cause', () => {
    execIn(n2.ns, 'iptables', ['-w', '-I', 'INPUT', '-p', 'udp', '--dport', '8472', '-j', 'DROP']);
    try {
      expectNamed(n1, 'probe', new RegExp(`public ${n2.ip.replace(/\./g, '\\.')}`), /UDP 8472/);
    } finally {
      execIn(n2.ns, 'iptables', ['-w', '-D', 'INPUT', '-p', 'udp', '--dport', '8472', '-j', 'DROP']);
    }
    expectHealthy(n1);
  });

  it('the bridge holds a stale gateway: named with its address (and said healable when no pods)', () => {
    execIn(n1.ns, 'ip', ['link', 'add', 'cni0', 'type', 'bridge']);
    try {
      execIn(n1.ns, 'ip', ['addr', 'add', '10.244.251.1/24', 'dev', 'cni0']);
      const f = expectNamed(n1, 'bridge', 'cni0 10.244.251.1/24', /stale gateway/);
      expect(f.problem).toContain('no pods attached');
      execIn(n1.ns, 'ip', ['link', 'add', 'vethdoc0', 'type', 'veth', 'peer', 'name', 'vethdoc1']);
      execIn(n1.ns, 'ip', ['link', 'set', 'vethdoc0', 'master', 'cni0']);
      expect(expectNamed(n1, 'bridge', 'cni0 10.244.251.1/24').problem).toContain('vethdoc0');
      execIn(n1.ns, 'ip', ['addr', 'flush', 'dev', 'cni0']);
      execIn(n1.ns, 'ip', ['addr', 'add', cl.leaseOf(n1).prefix + '.1/24', 'dev', 'cni0']);
      expectHealthy(n1);
    } finally {
      execIn(n1.ns, 'ip', ['link', 'del', 'cni0'], { allowFail: true });
      execIn(n1.ns, 'ip', ['link', 'del', 'vethdoc0'], { allowFail: true });
    }
    expectHealthy(n1);
  });

  it('a pod whose interface MTU is above the overlay\'s (read through the libcni cache) is named; set back: ok', () => {
    // a real pod on n1 through the flannel plugin and `flax cni add`, so the cache entry is libcni's own
    const confDir = path.join(cl.tmp, 'net.d');
    const cacheDir = path.join(cl.tmp, 'cache');
    const list = { cniVersion: '1.0.0', name: 'docnet', plugins: [{ type: 'flannel', subnetFile: n1.subnetFile, dataDir: path.join(cl.tmp, 'docflannel'), delegate: { bridge: 'cni0' } }] };
    writeFileSync(path.join(confDir, '10-docnet.conflist'), JSON.stringify(list));
    const [pod] = createTestNetns(1);
    const cli = (verb: string) => spawnSync('nsenter', [`--net=${n1.ns}`, '--', ours('flax'), 'cni', verb, 'docnet', pod, '--cni-conf-dir', confDir, '--cache-dir', cacheDir],
      { encoding: 'utf8', env: { PATH: process.env.PATH, CNI_PATH: path.dirname(ours('flax')), FLAX_CNI_SOCKET: '' } });
    try {
      const add = cli('add');
      expect(add.status, add.stdout + add.stderr).toBe(0);
      expectHealthy(n1);
      execIn(pod, 'ip', ['link', 'set', 'eth0', 'mtu', '1500']);
      const f = expectNamed(n1, 'pod-mtu', new RegExp(`eth0`), /MTU 1500 above the overlay's 14\d\d/);
      expect(f.object).toContain(pod);
      const mtu = /^FLANNEL_MTU=(\d+)$/m.exec(readFileSync(n1.subnetFile, 'utf8'))![1];
      execIn(pod, 'ip', ['link', 'set', 'eth0', 'mtu', mtu]);
      expectHealthy(n1);
    } finally {
      cli('del');
      rmSync(path.join(confDir, '10-docnet.conflist'), { force: true });
      destroyTestNetns([pod]);
    }
  });

  it('forwarding: ip_forward off; rp_filter strict on the overlay device; FORWARD drops without FLANNEL-FWD', () => {
    execIn(n1.ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=0']);
    expectNamed(n1, 'forwarding', 'net.ipv4.ip_forward', /is 0/);
    execIn(n1.ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    execIn(n1.ns, 'sysctl', ['-qw', 'net.ipv4.conf.flannel/1.rp_filter=1']);
    expectNamed(n1, 'forwarding', 'net.ipv4.conf.flannel.1.rp_filter', /strict/);
    execIn(n1.ns, 'sysctl', ['-qw', 'net.ipv4.conf.flannel/1.rp_filter=0']);
    expectHealthy(n1);
    execIn(n1.ns, 'iptables', ['-w', '-P', 'FORWARD', 'DROP']);
    try {
      const fwd = execIn(n1.ns, 'iptables', ['-w', '-S', 'FORWARD']);
      if (/FLANNEL-FWD/.test(fwd)) {
        expectHealthy(n1); // policy DROP, but FLANNEL-FWD accepts the Network
        execIn(n1.ns, 'iptables', ['-w', '-F', 'FLANNEL-FWD']);
      }
      expectNamed(n1, 'forwarding', 'iptables filter FORWARD', /policy DROP/);
    } finally {
      execIn(n1.ns, 'iptables', ['-w', '-P', 'FORWARD', 'ACCEPT']);
    }
    expectHealthy(n1);
  });

  it('two overlapping leases are named', () => {
    const p = cl.leaseOf(n1).prefix;
    const file = path.join(cl.leaseDir, 'subnets', `${p}.128-25.json`);
    writeFileSync(file, JSON.stringify({ Value: { PublicIP: '192.168.77.99', PublicIPv6: null, BackendType: 'host-gw' }, Expiration: new Date(Date.now() + 3600_000).toISOString() }) + '\n');
    try {
      expectNamed(n1, 'leases', new RegExp(`${p.replace(/\./g, '\\.')}\\.(0/24|128/25).*and`), /overlap/);
    } finally {
      rmSync(file, { force: true });
    }
    expectHealthy(n1);
  });
});

describe('flax doctor: dual-stack vxlan in nftables mode; conntrack', () => {
  const c6 = new Cluster();
  const D: Doctor = doctorOn(c6, AGENT_FLAGS);
  let m1: Node;
  let m2: Node;
  const peer6 = () => new RegExp(`\\(${ip6Of(m2)}\\)$`);
  beforeAll(async () => {
    await c6.create(2, { Network: NETWORK, EnableIPv6: true, IPv6Network: 'fc00::/48', EnableNFTables: true, Backend: { Type: 'vxlan' } });
    await addV6Underlay(c6);
    [m1, m2] = c6.nodes as [Node, Node];
    for (const n of c6.nodes) c6.startAgent(n, AGENT_FLAGS);
    for (const n of c6.nodes) await c6.waitReady(n);
    await waitFor('peers programmed', () => D.doctor(m1).code === 0 && D.doctor(m2).code === 0, 20_000, 250);
  }, 90_000);
  afterAll(() => c6.destroy(), 60_000);

  it('healthy: flannel-v6.1, the IPv6 peer and its VTEP answering over IPv6, IPv6 forwarding, both nftables forward chains', () => {
    const d = D.expectHealthy(m1);
    const objs = d.findings.map((f) => f.object);
    for (const o of ['flannel.1', 'flannel-v6.1', 'net.ipv6.conf.all.forwarding', 'nftables ip flannel-ipv4 chain forward', 'nftables ip6 flannel-ipv6 chain forward']) expect(objs, d.out).toContain(o);
    expect(d.findings.some((f) => f.check === 'peer' && peer6().test(f.object)), d.out).toBe(true);
    expect(d.findings.some((f) => f.check === 'probe' && f.object.includes(`(public ${ip6Of(m2)})`)), d.out).toBe(true);
  });

  it('flannel-v6.1 down, then the IPv6 peer\'s route gone (agent stopped, else it repairs them at once)', async () => {
    await c6.stopAgent(m1);
    execIn(m1.ns, 'ip', ['link', 'set', 'flannel-v6.1', 'down']);
    D.expectNamed(m1, 'vxlan', 'flannel-v6.1', /is down/);
    execIn(m1.ns, 'ip', ['link', 'set', 'flannel-v6.1', 'up']); // the kernel dropped its routes with the link
    D.expectNamed(m1, 'peer', peer6(), /route fc00:/);
    await D.restart(m1);
  });

  it('UDP 8472 over IPv6 dropped on the peer: the IPv6 probe names its public IPv6', () => {
    execIn(m2.ns, 'ip6tables', ['-w', '-I', 'INPUT', '-p', 'udp', '--dport', '8472', '-j', 'DROP']);
    try {
      const f = D.expectNamed(m1, 'probe', new RegExp(`\\(public ${ip6Of(m2)}\\)$`), /UDP 8472/);
      expect(f.problem).toContain('flannel-v6.1');
    } finally {
      execIn(m2.ns, 'ip6tables', ['-w', '-D', 'INPUT', '-p', 'udp', '--dport', '8472', '-j', 'DROP']);
    }
    D.expectHealthy(m1);
  });

  it('IPv6 forwarding off is named; on again: ok', () => {
    execIn(m1.ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=0']);
    try {
      D.expectNamed(m1, 'forwarding', 'net.ipv6.conf.all.forwarding', /is 0/);
    } finally {
      execIn(m1.ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
    }
    D.expectHealthy(m1);
  });

  it('nftables: our forward chain emptied is named; an iptables FORWARD policy DROP still drops, and is named', async () => {
    execIn(m1.ns, 'nft', ['flush', 'chain', 'ip6', 'flannel-ipv6', 'forward']);
    D.expectNamed(m1, 'forwarding', 'nftables ip6 flannel-ipv6 chain forward', /does not accept fc00::\/48/);
    execIn(m1.ns, 'nft', ['delete', 'chain', 'ip', 'flannel-ipv4', 'forward']);
    D.expectNamed(m1, 'forwarding', 'nftables ip flannel-ipv4 chain forward', /is missing/);
    await c6.stopAgent(m1);
    await D.restart(m1); // flaxd rebuilds both chains at start
    execIn(m1.ns, 'iptables', ['-w', '-P', 'FORWARD', 'DROP']);
    try {
      D.expectNamed(m1, 'forwarding', 'iptables filter FORWARD', /EnableNFTables/);
    } finally {
      execIn(m1.ns, 'iptables', ['-w', '-P', 'FORWARD', 'ACCEPT']);
    }
    D.expectHealthy(m1);
  });

  it('conntrack near full warns, full fails (the count is the node netns\' real one; nf_conntrack_max, which a netns cannot set, is read through a bind mount in a private mount namespace)', () => {
    const rule = ['INPUT', '-p', 'udp', '--dport', '20000:20999', '-m', 'conntrack', '--ctstate', 'NEW'];
    execIn(m1.ns, 'iptables', ['-w', '-I', ...rule]); // conntrack tracks in this netns once a rule needs it
    const maxFile = path.join(c6.tmp, 'nf_conntrack_max');
    const wrap = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /proc/sys/net/netfilter/nf_conntrack_max && exec "$@"', maxFile];
    try {
      execIn(m2.ns, 'bash', ['-c', `for p in $(seq 20001 20400); do echo x > /dev/udp/${m1.ip}/$p; done`]);
      const count = Number(execIn(m1.ns, 'cat', ['/proc/sys/net/netfilter/nf_conntrack_count']).trim());
      expect(count).toBeGreaterThanOrEqual(400);
      writeFileSync(maxFile, `${Math.round(count / 0.87)}\n`);
      const near = D.doctor(m1, ['--no-probe'], wrap);
      expect(near.code, near.out).toBe(0);
      expect(near.findings.find((f) => f.check === 'conntrack'), near.out).toMatchObject({ status: 'warn', object: 'net.netfilter.nf_conntrack_count', problem: expect.stringMatching(/near full/) });
      writeFileSync(maxFile, `${count}\n`);
      D.expectNamed(m1, 'conntrack', 'net.netfilter.nf_conntrack_count', /table full/, D.doctor(m1, ['--no-probe'], wrap));
    } finally {
      execIn(m1.ns, 'iptables', ['-w', '-D', ...rule]);
    }
    D.expectHealthy(m1);
  });
});
