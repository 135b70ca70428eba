/**
 * Issue 22 item 5: etcd mode with the real flanneld (built by
 * scripts/peers.sh). Two flaxd nodes and one flanneld node share one etcd
 * prefix (Debian's etcd in its own netns on the underlay, as in
 * test/integration/flaxd-etcd.test.ts); vxlan and host-gw, IPv4 and
 * dual-stack. Each node is a netns on the underlay bridge (flaxd-helpers'
 * Cluster); flanneld runs in its node's netns like flaxd (--iface eth0,
 * --subnet-file in the node's scratch dir; its iptables rules stay in that
 * netns). Checks: one lease per node under the shared prefix, flanneld's
 * subnet.env, every node programmed for the others (flanneld's and flaxd's
 * leases alike) and pods pinging across every pair, over IPv4 and IPv6.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSysctl } from '../../plugins/pkg/ns';
import { requireBuilt } from '../lib/cni';
import { execIn } from '../lib/netns';
import { FLANNELD, missing, peerVersions } from '../lib/peers';
import { ETCD_URL, EtcdServer, requireEtcd } from '../integration/etcd-helpers';
import { Cluster, NETWORK, type Node, addV6Underlay, ip6Of, pingFrom, waitFor } from '../integration/flaxd-helpers';

const SKIP = missing(FLANNELD, '/usr/bin/etcd');
const PREFIX = '/flaxt/cluster/network';
const NET6 = 'fc00::/48';

interface Lease { key: string; prefix: string; net6: string; attrs: { PublicIP: string; PublicIPv6?: string | null; BackendType: string } }

const scenarios = [
  { name: 'vxlan, IPv4', backend: 'vxlan', v6: false },
  { name: 'host-gw, IPv4', backend: 'host-gw', v6: false },
  { name: 'vxlan, dual-stack', backend: 'vxlan', v6: true },
  { name: 'host-gw, dual-stack', backend: 'host-gw', v6: true },
];

describe.skipIf(!!SKIP)(`flanneld ${peerVersions().get('flanneld') ?? ''} and flaxd share one etcd prefix`, () => {
  describe.each(scenarios)('$name', ({ backend, v6 }) => {
    const cl = new Cluster();
    const etcd = new EtcdServer();
    let flanneld: { proc: ChildProcess; log: () => string; exited: Promise<unknown> } | undefined;
    const netConf = { Network: NETWORK, ...(v6 ? { EnableIPv6: true, IPv6Network: NET6 } : {}), Backend: { Type: backend } };

    const leases = (): Lease[] => [...etcd.getPrefix(`${PREFIX}/subnets/`)].map(([key, v]) => {
      const m = /\/subnets\/(\d+\.\d+\.\d+)\.0-24(?:&([0-9a-f:]+)-64)?$/.exec(key);
      if (!m) throw new Error(`unexpected key ${key}`);
      return { key, prefix: m[1], net6: m[2] ?? '', attrs: JSON.parse(v.value) };
    });
    const leaseOf = (n: Node): Lease => {
      const l = leases().find((x) => x.attrs.PublicIP === n.ip);
      if (!l) throw new Error(`no lease in etcd for node ${n.i} (${n.ip})`);
      return l;
    };

    function startFlanneld(n: Node) {
      const args = ['--etcd-endpoints', ETCD_URL, '--etcd-prefix', PREFIX, '--iface', 'eth0', '--subnet-file', n.subnetFile, '--ip-masq=false', '-v', '1'];
      const proc = spawn('nsenter', [`--net=${n.ns}`, '--', FLANNELD, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
      flanneld = { proc, log: () => err, exited: new Promise((r) => proc.on('exit', r)) };
    }

    beforeAll(async () => {
      requireBuilt('flaxd');
      requireEtcd();
      await cl.create(3);
      if (v6) await addV6Underlay(cl);
      await etcd.start(cl.underlay);
      etcd.ctl(['put', `${PREFIX}/config`, JSON.stringify(netConf)]);
      const [n1, n2, n3] = cl.nodes;
      for (const n of [n1, n2]) {
        cl.startAgent(n, ['--etcd-endpoints', ETCD_URL, '--etcd-prefix', PREFIX, '--net-config-path', path.join(n.dir, 'absent-net-conf.json')]);
      }
      startFlanneld(n3);
      for (const n of [n1, n2]) await cl.waitReady(n);
      await waitFor('flanneld subnet file', () => {
        if (flanneld!.proc.exitCode !== null) throw new Error(`flanneld exited ${flanneld!.proc.exitCode}:\n${flanneld!.log().slice(-3000)}`);
        return existsSync(n3.subnetFile) && readFileSync(n3.subnetFile, 'utf8');
      }, 30_000);
      for (const n of cl.nodes) {
        const l = leaseOf(n);
        await cl.addPod(n, l.prefix);
        if (v6) {
          writeSysctl(n.pod!, 'net.ipv6.conf.all.disable_ipv6', 0);
          execIn(n.ns, 'ip', ['-6', 'addr', 'add', `${l.net6}1/64`, 'dev', 'vpod', 'nodad']);
          execIn(n.pod!, 'ip', ['-6', 'addr', 'add', `${l.net6}2/64`, 'dev', 'eth0', 'nodad']);
          execIn(n.pod!, 'ip', ['-6', 'route', 'add', 'default', 'via', `${l.net6}1`]);
          await waitFor(`pod ${n.i} reaches its IPv6 gateway`, () => pingFrom(n.pod!, `${l.net6}1`), 10_000, 100);
        }
      }
    }, 120_000);

    afterAll(async () => {
      try {
        if (flanneld && flanneld.proc.exitCode === null && flanneld.proc.signalCode === null) {
          flanneld.proc.kill('SIGTERM');
          const done = await Promise.race([flanneld.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]);
          if (!done) flanneld.proc.kill('SIGKILL');
        }
        await cl.destroy();
      } finally {
        await etcd.destroy();
      }
    }, 60_000);

    it('one lease per node under the shared prefix, in the same format from flanneld and flaxd', () => {
      const ls = leases();
      expect(ls).toHaveLength(3);
      expect(new Set(ls.map((l) => l.prefix)).size).toBe(3);
      for (const n of cl.nodes) {
        const l = leaseOf(n);
        expect(l.attrs.BackendType).toBe(backend);
        if (v6) {
          expect(l.net6).toMatch(/^fc00:0:0:[0-9a-f]+::$/);
          expect(l.attrs.PublicIPv6).toBe(ip6Of(n));
        } else {
          expect(l.net6).toBe('');
        }
      }
      // the same attribute keys, in the same order, whoever wrote the lease
      const keys = (n: Node) => Object.keys(leaseOf(n).attrs).join(',');
      expect(keys(cl.nodes[0])).toBe(keys(cl.nodes[2]));
    });

    it("flanneld's subnet.env has the shape flaxd writes", () => {
      const env = (n: Node) => readFileSync(n.subnetFile, 'utf8').split('\n').filter(Boolean).map((l) => l.split('=')[0]).sort();
      expect(env(cl.nodes[2])).toEqual(env(cl.nodes[0]));
      expect(readFileSync(cl.nodes[2].subnetFile, 'utf8')).toContain(`FLANNEL_SUBNET=${leaseOf(cl.nodes[2]).prefix}.1/24`);
    });

    it('pods ping across every pair of nodes, flanneld and flaxd alike' + (v6 ? ' (IPv4 and IPv6)' : ''), async () => {
      const targets = (n: Node) => [`${leaseOf(n).prefix}.2`, ...(v6 ? [`${leaseOf(n).net6}2`] : [])];
      const bad = () => {
        const out: string[] = [];
        for (const a of cl.nodes) for (const b of cl.nodes) if (a !== b) for (const t of targets(b)) if (!pingFrom(a.pod!, t)) out.push(`${a.i}->${b.i} ${t}`);
        return out;
      };
      // every agent programs its peers asynchronously: wait until all pairs answer, then require it
      await waitFor('every pair pinging', () => bad().length === 0, 45_000, 500).catch(() => undefined);
      expect(bad(), `flanneld log ends:\n${flanneld?.log().split('\n').slice(-20).join('\n')}`).toEqual([]);
    }, 120_000);
  });
});
