/**
 * Issue 22 item 6: state drop-in both ways with the newest reference plugins
 * (github.com/containernetworking/plugins v1.10.0, built by
 * scripts/peers.sh into $FLAX_PEERS/plugins-v1.10.0), as the integration
 * interop tests do with Debian's v1.1.1: ADD by one suite, CHECK/DEL by the
 * other leaves nothing — host-local (one data dir, both binaries), bridge
 * (veth, reservation, masquerade by either backend: v1.10.0 has
 * ipMasqBackend iptables|nftables, its nftables table `inet
 * cni_plugins_masquerade` being the one flax writes), portmap (v1.10.0 has
 * backend iptables|nftables, default iptables while iptables works; its
 * nftables tables `ip|ip6 cni_hostport` are flax's layout), and flannel
 * (v1.10.0 no longer ships flannel: flax's flannel delegates to v1.10.0's
 * bridge and host-local, and DEL by v1.10.0's bridge of what it made).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { cni, ours, requireBuilt, sh, type CniCall } from '../lib/cni';
import { netnsTest } from '../lib/netns';
import { HOST_V4, chainAdd, pmNetwork, pmTest, portmapState, probe, run as pmRun, withMappings } from '../lib/portmap';
import { REF2_BIN, REF2_VERSION, missing } from '../lib/peers';
import { netnsState, nftRuleset, ping, podView, reservations } from '../lib/state';
import { MASQ_TABLE, masqComment } from '../../plugins/pkg/nft/masq';

const theirs = (n: string) => path.join(REF2_BIN, n);
const SKIP = missing(theirs('bridge'), theirs('host-local'), theirs('portmap'));
let root: string;
const P = { ours: '', theirs: '', oursBrTheirIpam: '', theirBrOurIpam: '', oursFlTheirs: '' };

beforeAll(() => {
  if (SKIP) return;
  requireBuilt('bridge', 'host-local', 'portmap', 'flannel');
  root = mkdtempSync(path.join(tmpdir(), 'flax-ref2-'));
  const mk = (name: keyof typeof P, links: Record<string, string>) => {
    const d = path.join(root, name);
    mkdirSync(d);
    for (const [n, t] of Object.entries(links)) symlinkSync(t, path.join(d, n));
    P[name] = d;
  };
  mk('ours', { bridge: ours('bridge'), 'host-local': ours('host-local') });
  mk('theirs', { bridge: theirs('bridge'), 'host-local': theirs('host-local') });
  mk('oursBrTheirIpam', { bridge: ours('bridge'), 'host-local': theirs('host-local') });
  mk('theirBrOurIpam', { bridge: theirs('bridge'), 'host-local': ours('host-local') });
  mk('oursFlTheirs', { flannel: ours('flannel'), bridge: theirs('bridge'), 'host-local': theirs('host-local') });
});
afterAll(() => { if (root) rmSync(root, { recursive: true, force: true }); });

const it = netnsTest.extend<{ host: string; pod: string }>({
  host: async ({ ns }, use) => use(ns),
  pod: async ({ ns2 }, use) => use(ns2),
});

/**
 * Every table `name` (any family) with its chains and rules, as nft lists
 * them, in listing order; handles left out, and the pod's addresses (`ips`
 * of its result: host-local hands each ADD the next one) written as POD.
 */
function tablesNamed(ns: string, name: string, ips: { address: string }[]): string[] {
  const pod = ips.map((i) => `"${i.address.split('/')[0]}"`);
  return nftRuleset(ns).filter((x) => x.table?.name === name || x.chain?.table === name || x.rule?.table === name)
    .map((x) => pod.reduce((t, a) => t.split(a).join('"POD"'), JSON.stringify(x, (k, v) => (k === 'handle' ? undefined : v))));
}

let n = 0;
function conf(v: string, extra: object = {}) {
  const name = `ref2n${++n}`;
  const dataDir = path.join(root, `ipam-${name}`);
  return {
    name, dataDir,
    conf: {
      cniVersion: v, name, type: 'bridge', bridge: 'flaxbr2', isGateway: true, ipMasq: true, ...extra,
      ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.91.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] },
    },
  };
}
const run = (dir: string, command: string, f: { host: string; pod: string }, stdin: object, over: Partial<CniCall> = {}, type = 'bridge') =>
  cni(path.join(dir, type), { command, containerId: 'ref2-ctr', netns: f.pod, ifname: 'eth0', path: dir, stdin, hostNs: f.host, ...over });

function expectClean(f: { host: string; pod: string }, dataDir: string, name: string) {
  const h = netnsState(f.host);
  expect(h.links.filter((l) => l.startsWith('veth'))).toEqual([]);
  expect(h.iptCni).toEqual([]);
  expect(h.masqRules).toEqual([]);
  expect(netnsState(f.pod).links).toEqual([]);
  expect(reservations(dataDir, name)).toEqual([]);
}

describe.skipIf(!!SKIP)(`drop-in with the reference plugins ${REF2_VERSION}`, () => {
  describe('host-local: one data directory, both binaries', () => {
    // v1.10.0's skel refuses a CNI_NETNS that is the plugin's own netns ("plugin's netns and netns from
    // CNI_NETNS should not be the same"; v1.1.1 ran with /proc/self/ns/net): a throwaway netns is given
    for (const v of ['0.4.0', '1.0.0', '1.1.0']) it(`ADD by either, CHECK/DEL by the other, round robin continued (${v})`, ({ pod }) => {
      const dir = path.join(root, `hl-${v}`);
      const hl = { cniVersion: v, name: 'hlnet', type: 'bridge', ipam: { type: 'host-local', dataDir: dir, ranges: [[{ subnet: '10.77.0.0/24' }], [{ subnet: 'fd00:77::/64' }]] } };
      const call = (bin: string, command: string, id: string) => cni(bin, { command, containerId: id, netns: pod, ifname: 'eth0', path: REF2_BIN, stdin: hl });
      const addrs = (r: { json?: any }) => r.json.ips.map((i: { address: string }) => i.address);
      const r = call(theirs('host-local'), 'ADD', 'ref1');
      expect(r.code, r.stdout).toBe(0);
      expect(addrs(r)).toEqual(['10.77.0.2/24', 'fd00:77::2/64']);
      expect(addrs(call(ours('host-local'), 'ADD', 'ours1'))).toEqual(['10.77.0.3/24', 'fd00:77::3/64']);
      expect(call(ours('host-local'), 'CHECK', 'ref1').code).toBe(0);
      expect(call(theirs('host-local'), 'CHECK', 'ours1').code).toBe(0);
      expect(call(ours('host-local'), 'ADD', 'ref1').json.msg).toMatch(/duplicate allocation is not allowed/);
      expect(call(theirs('host-local'), 'ADD', 'ours1').json.msg).toMatch(/duplicate allocation is not allowed/);
      expect(call(ours('host-local'), 'DEL', 'ref1').code).toBe(0);
      expect(call(theirs('host-local'), 'DEL', 'ours1').code).toBe(0);
      expect(readdirSync(path.join(dir, 'hlnet')).filter((f) => /^[0-9a-f]+[.:]/.test(f))).toEqual([]);
      expect(addrs(call(theirs('host-local'), 'ADD', 'ref2'))).toEqual(['10.77.0.4/24', 'fd00:77::4/64']);
      expect(addrs(call(ours('host-local'), 'ADD', 'ours2'))).toEqual(['10.77.0.5/24', 'fd00:77::5/64']);
    });
  });

  describe('bridge', () => {
    for (const v of ['0.4.0', '1.0.0', '1.1.0']) {
      it(`our bridge delegates to their host-local and theirs to ours (${v})`, ({ host, pod }) => {
        const f = { host, pod };
        for (const dir of [P.oursBrTheirIpam, P.theirBrOurIpam]) {
          const c = conf(v);
          const r = run(dir, 'ADD', f, c.conf);
          expect(r.code, r.stdout + r.stderr).toBe(0);
          expect(r.json.ips[0].address).toBe('10.91.0.2/24');
          expect(podView(pod, 'eth0').routes).toContain('default via 10.91.0.1');
          expect(ping(pod, '10.91.0.1')).toBe(true);
          const chk = run(dir, 'CHECK', f, { ...c.conf, prevResult: r.json });
          expect(chk.code, chk.stdout + chk.stderr).toBe(0);
          expect(run(dir, 'DEL', f, { ...c.conf, prevResult: r.json }).code).toBe(0);
          expectClean(f, c.dataDir, c.name);
        }
      });
    }

    for (const backend of ['iptables', 'nftables']) {
      // nftables: both suites comment the masquerade rule "<hash>, net: N, if: I, id: C" (v1.10.0's
      // pkg/ip/ipmasq_nftables_linux.go commentForInstance), so either's CHECK/DEL finds the other's rule
      it(`ADD by theirs (ipMasqBackend ${backend}), CHECK and DEL by ours leaves nothing`, ({ host, pod }) => {
        const f = { host, pod };
        const c = conf('1.0.0', { ipMasqBackend: backend });
        const r = run(P.theirs, 'ADD', f, c.conf);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        const h = netnsState(host);
        if (backend === 'iptables') expect(h.iptCni.join('\n')).toMatch(/-N CNI-[0-9a-f]{24}/);
        else expect(h.masqRules).toHaveLength(1); // their nft rule, in the table and chain flax uses
        const chk = run(P.ours, 'CHECK', f, { ...c.conf, prevResult: r.json });
        expect(chk.code, chk.stdout).toBe(0);
        const d = run(P.ours, 'DEL', f, { ...c.conf, prevResult: r.json });
        expect(d.code, d.stdout).toBe(0);
        expectClean(f, c.dataDir, c.name);
      });

      it(`ADD by ours (ipMasqBackend ${backend}), CHECK and DEL by theirs leaves nothing`, ({ host, pod }) => {
        const f = { host, pod };
        const c = conf('1.0.0', { ipMasqBackend: backend });
        const r = run(P.ours, 'ADD', f, c.conf);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        const chk = run(P.theirs, 'CHECK', f, { ...c.conf, prevResult: r.json });
        expect(chk.code, chk.stdout + chk.stderr).toBe(0);
        const d = run(P.theirs, 'DEL', f, { ...c.conf, prevResult: r.json });
        expect(d.code, d.stdout + d.stderr).toBe(0);
        expectClean(f, c.dataDir, c.name);
      });
    }

    it('nftables masquerade: the same ADD by either writes the same table, chains and rule (expressions and comment)', ({ host, pod }) => {
      const f = { host, pod };
      const c = conf('1.0.0', { ipMasqBackend: 'nftables' });
      const written: string[][] = [];
      for (const dir of [P.theirs, P.ours]) {
        const r = run(dir, 'ADD', f, c.conf);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        written.push(tablesNamed(host, MASQ_TABLE, r.json.ips));
        expect(netnsState(host).masqRules).toEqual([expect.stringContaining(` ${masqComment(c.name, 'eth0', 'ref2-ctr')}`)]);
        expect(run(dir, 'DEL', f, { ...c.conf, prevResult: r.json }).code).toBe(0);
        expect(netnsState(host).masqRules).toEqual([]);
        sh(host, 'nft', ['delete', 'table', 'inet', MASQ_TABLE]); // the next suite writes its own skeleton
      }
      expect(written[1]).toEqual(written[0]);
      expectClean(f, c.dataDir, c.name);
    });

    // flax defaults to nftables; v1.10.0 with no ipMasqBackend DELs both backends (its nft DEL by comment prefix)
    it('ADD by ours with no ipMasqBackend (flax: nftables), DEL by theirs (no ipMasqBackend) leaves nothing', ({ host, pod }) => {
      const f = { host, pod };
      const c = conf('1.0.0');
      const r = run(P.ours, 'ADD', f, c.conf);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(netnsState(host).masqRules).toHaveLength(1);
      const d = run(P.theirs, 'DEL', f, { ...c.conf, prevResult: r.json });
      expect(d.code, d.stdout + d.stderr).toBe(0);
      expectClean(f, c.dataDir, c.name);
    });
  });

  describe('portmap', () => {
    const MAPS = [{ hostPort: 18082, containerPort: 8080, protocol: 'tcp' }, { hostPort: 15354, containerPort: 5353, protocol: 'udp' }];
    pmTest('nftables: the same ADD by either writes the same per-container rules (chain, expressions, comment = the container id)', async ({ host, pod, client, serve }) => {
      const f = { host, pod, client, serve };
      const net = pmNetwork(root, { backend: 'nftables' });
      const maps = [...MAPS, { hostPort: 18083, containerPort: 8081, protocol: 'tcp', hostIP: HOST_V4 }];
      const written: string[][] = [];
      for (const bin of [theirs('portmap'), ours('portmap')]) {
        const { br, pm } = chainAdd(f, net, maps, {}, bin);
        expect(pm.code, pm.stdout + pm.stderr).toBe(0);
        written.push(tablesNamed(host, 'cni_hostport', br.json.ips));
        expect(portmapState(host).nft.every((l) => l.split(' ')[2] === 'pmctr1')).toBe(true);
        expect(pmRun(bin, 'DEL', f, withMappings(net.portmap, maps, br.json)).code).toBe(0);
        expect(portmapState(host)).toEqual({ nft: [], ipt: [] });
        for (const fam of ['ip', 'ip6']) sh(host, 'nft', ['delete', 'table', fam, 'cni_hostport']);
        expect(pmRun(ours('bridge'), 'DEL', f, { ...net.bridge, prevResult: br.json }).code).toBe(0);
      }
      expect(written[0].filter((l) => l.includes('"dnat"')).length).toBe(5); // 3 mappings (v4), 2 (v6: no hostIP one)
      expect(written[1]).toEqual(written[0]);
    });

    for (const backend of ['iptables', 'nftables']) {
      pmTest(`ADD by theirs (backend ${backend}), traffic flows, CHECK and DEL by ours leave nothing`, async ({ host, pod, client, serve }) => {
        const f = { host, pod, client, serve };
        const net = pmNetwork(root, { backend });
        await serve(pod, 'tcp', 8080, 'ref2');
        const { br, pm } = chainAdd(f, net, MAPS, {}, theirs('portmap'));
        expect(pm.code, pm.stdout + pm.stderr).toBe(0);
        expect(probe(client, 'tcp', HOST_V4, 18082)).toBe('ref2 from 192.168.77.2');
        const st = portmapState(host);
        expect(backend === 'nftables' ? st.nft.length : st.ipt.length).toBeGreaterThan(0);
        const chk = pmRun(ours('portmap'), 'CHECK', f, withMappings(net.portmap, MAPS, pm.json));
        expect(chk.code, chk.stdout).toBe(0);
        const d = pmRun(ours('portmap'), 'DEL', f, withMappings(net.portmap, MAPS, br.json));
        expect(d.code, d.stdout).toBe(0);
        expect(portmapState(host)).toEqual({ nft: [], ipt: [] });
        expect(pmRun(ours('bridge'), 'DEL', f, { ...net.bridge, prevResult: br.json }).code).toBe(0);
      });

      // nftables: v1.10.0's CHECK counts the rules of chains hostports and masquerading commented with the
      // bare container id (portmap_nftables.go checkPortsAgainstRules), the comment flax writes
      pmTest(`ADD by ours (backend ${backend}), CHECK and DEL by theirs leave nothing`, async ({ host, pod, client, serve }) => {
        const f = { host, pod, client, serve };
        const net = pmNetwork(root, { backend });
        await serve(pod, 'tcp', 8080, 'ours');
        const { br, pm } = chainAdd(f, net, MAPS);
        expect(pm.code, pm.stdout + pm.stderr).toBe(0);
        expect(probe(client, 'tcp', HOST_V4, 18082)).toBe('ours from 192.168.77.2');
        const chk = pmRun(theirs('portmap'), 'CHECK', f, withMappings(net.portmap, MAPS, pm.json));
        expect(chk.code, chk.stdout + chk.stderr).toBe(0);
        const d = pmRun(theirs('portmap'), 'DEL', f, withMappings(net.portmap, MAPS, br.json));
        expect(d.code, d.stdout + d.stderr).toBe(0);
        expect(portmapState(host)).toEqual({ nft: [], ipt: [] });
        expect(pmRun(ours('bridge'), 'DEL', f, { ...net.bridge, prevResult: br.json }).code).toBe(0);
      });
    }
  });

  describe('flannel', () => {
    it('our flannel delegates to their bridge + host-local; DEL by our flannel leaves nothing; no masquerade by the delegate when the agent does it', ({ host, pod }) => {
      const f = { host, pod };
      const subnetFile = path.join(root, 'fl-subnet.env');
      const dataDir = path.join(root, 'fl-data');
      const ipamDir = path.join(root, 'fl-ipam');
      writeFileSync(subnetFile, 'FLANNEL_NETWORK=10.93.0.0/16\nFLANNEL_SUBNET=10.93.4.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
      const fl = { cniVersion: '1.0.0', name: 'flref2', type: 'flannel', subnetFile, dataDir, delegate: { bridge: 'flaxfr2', hairpinMode: true, isDefaultGateway: true }, ipam: { dataDir: ipamDir } };
      const r = run(P.oursFlTheirs, 'ADD', f, fl, {}, 'flannel');
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json.ips.map((i: { address: string }) => i.address)).toEqual(['10.93.4.2/24']);
      expect(podView(pod, 'eth0').mtu).toBe(1450);
      expect(ping(pod, '10.93.4.1')).toBe(true);
      const h = netnsState(host);
      expect([h.iptCni, h.masqRules]).toEqual([[], []]); // FLANNEL_IPMASQ=true: the agent masquerades, the delegate gets ipMasq false
      expect(run(P.oursFlTheirs, 'CHECK', f, { ...fl, prevResult: r.json }, {}, 'flannel').code).toBe(0);
      expect(run(P.oursFlTheirs, 'DEL', f, fl, {}, 'flannel').code).toBe(0);
      expectClean(f, ipamDir, 'flref2');
      expect(existsSync(path.join(dataDir, 'ref2-ctr'))).toBe(false);
    });
  });
});
