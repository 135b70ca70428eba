/**
 * flaxd on the real kernel: three namespace "nodes" on an underlay bridge,
 * one dist/bin/flaxd each with a shared file lease store. Checks the device
 * attributes, every peer's neighbour/FDB/route, subnet.env and lease bytes,
 * pod-to-pod pings across nodes over VXLAN, then the faults: a restart
 * (nothing duplicated, nothing re-created), a deleted device and a deleted
 * route (repaired), a second agent on the same subnet file (refused), a
 * lease removed while one agent is down and another runs (entries gone, the
 * lease's own agent exits).
 */
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execIn } from '../lib/netns';
import { spawnSync } from 'node:child_process';
import { requireBuilt } from '../lib/cni';
import { Cluster, peerEntries, peerState as peerStateOf, FLAXD, type Node, pingFrom, vxlanView, waitFor } from './flaxd-helpers';

const cl = new Cluster();
const macOf = (n: Node): string => vxlanView(n.ns).link.address;
/** What flannel.1 on `n` must hold for the peers `others`. */
function expected(others: Node[]) {
  return peerEntries(others.map((p) => ({ prefix: cl.leaseOf(p).prefix, mac: macOf(p), ip: p.ip })));
}
const peerState = (n: Node) => peerStateOf(n.ns);
async function converged(n: Node, others: Node[]): Promise<void> {
  const want = expected(others);
  await waitFor(`node ${n.i} programmed for ${others.map((o) => o.i).join(',') || 'no peer'}`, () => JSON.stringify(peerState(n)) === JSON.stringify(want), 15_000);
}

beforeAll(async () => {
  requireBuilt('flaxd');
  await cl.create(3);
  for (const n of cl.nodes) cl.startAgent(n);
  for (const n of cl.nodes) await cl.waitReady(n);
}, 60_000);
afterAll(() => cl.destroy(), 60_000);

describe('flaxd: three vxlan nodes with the file store', () => {
  it('leases one subnet per node, written as flanneld writes them', () => {
    const leases = cl.leases();
    expect(leases.size).toBe(3);
    const prefixes = new Set<string>();
    for (const n of cl.nodes) {
      const { file, prefix } = cl.leaseOf(n);
      expect(file).toMatch(/^10\.244\.\d+\.0-24\.json$/);
      prefixes.add(prefix);
      expect(leases.get(file)!.text).toMatch(new RegExp(
        `^\\{"Value":\\{"PublicIP":"${n.ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":\\{"VNI":1,"VtepMAC":"${macOf(n)}"\\}\\},"Expiration":"[0-9T:.-]+Z"\\}\\n$`));
      const exp = Date.parse(JSON.parse(leases.get(file)!.text).Expiration);
      expect(Math.abs(exp - Date.now() - 24 * 3600_000)).toBeLessThan(120_000);
    }
    expect(prefixes.size).toBe(3);
  });

  it('writes subnet.env byte for byte (0644) once the lease and the device exist', () => {
    for (const n of cl.nodes) {
      const { prefix } = cl.leaseOf(n);
      expect(readFileSync(n.subnetFile, 'utf8')).toBe(`FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=${prefix}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n`);
      expect(statSync(n.subnetFile).mode & 0o777).toBe(0o644);
    }
  });

  it("creates flannel.1 with flanneld's attributes", () => {
    for (const n of cl.nodes) {
      const v = vxlanView(n.ns);
      const d = v.link.linkinfo.info_data;
      expect({ kind: v.link.linkinfo.info_kind, id: d.id, local: d.local, link: d.link, port: d.port, learning: d.learning, mtu: v.link.mtu })
        .toEqual({ kind: 'vxlan', id: 1, local: n.ip, link: 'eth0', port: 8472, learning: false, mtu: 1450 });
      expect(v.link.flags).toContain('UP');
      expect(v.link.address).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
      expect(parseInt(v.link.address.slice(0, 2), 16) & 0x03).toBe(0x02); // locally administered, unicast
      expect(v.addrs).toEqual([`${cl.leaseOf(n).prefix}.0/32`]);
      expect(execIn(n.ns, 'cat', ['/proc/sys/net/ipv6/conf/flannel.1/accept_ra']).trim()).toBe('0');
    }
  });

  it('programs every peer: neighbour, FDB entry and onlink route', async () => {
    for (const n of cl.nodes) await converged(n, cl.nodes.filter((o) => o !== n));
  });

  it('carries pod-to-pod traffic across nodes over vxlan', async () => {
    for (const n of cl.nodes) await cl.addPod(n, cl.leaseOf(n).prefix);
    for (const a of cl.nodes) {
      for (const b of cl.nodes) {
        if (a !== b) expect(pingFrom(a.pod!, `${cl.leaseOf(b).prefix}.2`), `pod ${a.i} -> pod ${b.i}`).toBe(true);
      }
    }
  });

  it('restart: SIGTERM leaves the data plane; the new agent reuses lease, device and MAC and duplicates nothing', async () => {
    const [n1, n2] = cl.nodes;
    const before = { lease: cl.leaseOf(n1), mac: macOf(n1), ifindex: vxlanView(n1.ns).link.ifindex, env: readFileSync(n1.subnetFile, 'utf8'), state: peerState(n1) };
    expect(await cl.stopAgent(n1)).toBe(0);
    expect(vxlanView(n1.ns).link.ifindex).toBe(before.ifindex);
    expect(pingFrom(n1.pod!, `${cl.leaseOf(n2).prefix}.2`)).toBe(true); // no agent, still forwarding
    cl.startAgent(n1);
    await cl.waitReady(n1);
    const log = n1.agent!.log();
    expect(log).toMatch(/reusing the existing device/);
    expect(log).toMatch(/found lease .* reusing/);
    expect(log).not.toMatch(/peer 10\.244\.\d+\.0\/24 .*: (neighbour|fdb|route)/); // nothing re-programmed
    expect({ lease: cl.leaseOf(n1), mac: macOf(n1), ifindex: vxlanView(n1.ns).link.ifindex, env: readFileSync(n1.subnetFile, 'utf8'), state: peerState(n1) }).toEqual(before);
    expect(cl.leases().size).toBe(3);
  });

  it('a second agent on the same subnet file exits 1 naming the holder, touching nothing', async () => {
    const n1 = cl.nodes[0];
    const env = readFileSync(n1.subnetFile, 'utf8');
    const mtime = statSync(n1.subnetFile).mtimeMs;
    const leasesBefore = [...cl.leases().values()].map((l) => l.text);
    const holder = n1.agent!.proc.pid;
    const second = cl.startAgent({ ...n1 }); // a copy: n1.agent stays the running one
    expect(await second.exited).toBe(1);
    expect(second.log().trim().split('\n')).toHaveLength(1);
    expect(second.log()).toContain(`another agent holds ${n1.subnetFile}.lock: pid ${holder} (`);
    expect(readFileSync(n1.subnetFile, 'utf8')).toBe(env);
    expect(statSync(n1.subnetFile).mtimeMs).toBe(mtime);
    expect([...cl.leases().values()].map((l) => l.text)).toEqual(leasesBefore);
  });

  it('re-creates a deleted device with the same MAC and re-programs every peer; re-adds a deleted route', async () => {
    const [n1, n2, n3] = cl.nodes;
    const mac = macOf(n2);
    execIn(n2.ns, 'ip', ['link', 'del', 'flannel.1']);
    await waitFor('flannel.1 re-created on node 2', () => vxlanView(n2.ns).link);
    expect(macOf(n2)).toBe(mac);
    await converged(n2, [n1, n3]);
    expect(vxlanView(n2.ns).addrs).toEqual([`${cl.leaseOf(n2).prefix}.0/32`]);
    expect(pingFrom(n2.pod!, `${cl.leaseOf(n3).prefix}.2`)).toBe(true);
    expect(pingFrom(n1.pod!, `${cl.leaseOf(n2).prefix}.2`)).toBe(true);
    expect(n2.agent!.log()).toMatch(/flannel\.1: created/);

    execIn(n3.ns, 'ip', ['route', 'del', `${cl.leaseOf(n1).prefix}.0/24`, 'dev', 'flannel.1']);
    await converged(n3, [n1, n2]);
  });

  it("replaces a peer's neighbour and FDB entries when its lease publishes another VTEP MAC, and back", async () => {
    const [n1, n2, n3] = cl.nodes;
    const { file, prefix } = cl.leaseOf(n2);
    const real = macOf(n2);
    expect(await cl.stopAgent(n2)).toBe(0);
    const leaseFile = path.join(cl.leaseDir, 'subnets', file);
    writeFileSync(leaseFile, readFileSync(leaseFile, 'utf8').replace(real, '02:de:ad:be:ef:01')); // as a peer whose device was re-created
    const stale = (n: Node) => peerState(n);
    await waitFor('node 1 switched to the new MAC', () => {
      const s = stale(n1);
      return s.neighs.includes(`${prefix}.0 02:de:ad:be:ef:01 PERMANENT`) && s.fdb.includes(`02:de:ad:be:ef:01 ${n2.ip} self permanent`)
        && !s.neighs.concat(s.fdb).some((x) => x.includes(real));
    });
    expect(stale(n1).fdb).toHaveLength(2);
    cl.startAgent(n2); // reuses its device: the lease gets the real MAC again
    await cl.waitReady(n2);
    expect(macOf(n2)).toBe(real);
    for (const n of [n1, n3]) await converged(n, cl.nodes.filter((o) => o !== n));
    expect(pingFrom(n1.pod!, `${prefix}.2`)).toBe(true);
  });

  it('a removed lease: its peer entries go on running nodes, at start on a node that was down, and its own agent exits 1', async () => {
    const [n1, n2, n3] = cl.nodes;
    const gone = cl.leaseOf(n3);
    expect(await cl.stopAgent(n1)).toBe(0);
    const n3agent = n3.agent!;
    rmSync(path.join(cl.leaseDir, 'subnets', gone.file));
    await converged(n2, [n1]);
    expect(await Promise.race([n3agent.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))])).toBe(1);
    expect(n3agent.log()).toMatch(/E\d{4} [^\]]*\] our lease 10\.244\.\d+\.0\/24 was removed from the store/);
    n3.agent = undefined;
    // node 1 was down when the lease went (flannel#2554): its stale entries go at start
    expect(peerState(n1).routes.some((r) => r.startsWith(`${gone.prefix}.0/24`))).toBe(true);
    cl.startAgent(n1);
    await cl.waitReady(n1);
    await converged(n1, [n2]);
    expect(pingFrom(n1.pod!, `${cl.leaseOf(n2).prefix}.2`)).toBe(true);
    expect(pingFrom(n1.pod!, `${gone.prefix}.2`)).toBe(false);
  });
});

describe('flaxd: refusals before any side effect', () => {
  const run = (args: string[], env: Record<string, string> = {}) => {
    // in the underlay netns: should a refusal not happen, nothing lands in the machine's own netns
    const r = spawnSync('nsenter', [`--net=${cl.underlay}`, '--', FLAXD, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env } });
    return { code: r.status, err: r.stderr };
  };
  const sf = () => path.join(cl.tmp, `refusal-${Math.random().toString(36).slice(2)}`, 'subnet.env');

  it('exits 2 with one line naming an unknown flag or a bad value', () => {
    for (const [args, env, msg] of [
      [['--bogus'], {}, 'unknown flag --bogus'],
      [['--subnet-lease-renew-margin', '0'], {}, 'invalid value "0" for --subnet-lease-renew-margin'],
      [[], { FLANNELD_HEALTHZ_PORT: 'eighty' }, 'invalid value "eighty" for FLANNELD_HEALTHZ_PORT'],
    ] as Array<[string[], Record<string, string>, string]>) {
      const r = run(args, env);
      expect(r.code, r.err).toBe(2);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toContain(msg);
    }
  });

  it('exits 1 on a config error, naming the field, and writes no subnet.env', () => {
    const conf = path.join(cl.tmp, 'bad-net-conf.json');
    for (const [json, msg] of [
      ['{"Network":"10.244.0.0/16","SubnetLen":31,"Backend":{"Type":"vxlan"}}', 'SubnetLen: SubnetLen must be less than /31'],
      ['{"Network":"10.244.0.0/33"}', 'Network: invalid CIDR address'],
      ['{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":"one"}}', 'Backend.VNI: '],
      ['{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}', 'Backend.Type: backend "udp" is not supported'],
    ]) {
      writeFileSync(conf, json);
      const subnetFile = sf();
      const r = run(['--net-config-path', conf, '--subnet-file', subnetFile, '--lease-dir', path.join(cl.tmp, 'refusal-leases')]);
      expect(r.code, r.err).toBe(1);
      expect(r.err).toContain(msg);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(existsSync(subnetFile)).toBe(false);
    }
    // etcd unreachable at start: flaxd-etcd.test.ts
  });
});
