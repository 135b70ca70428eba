/**
 * Issue 25: the node's subnet changed (a new lease), cni0 keeps the old
 * gateway, and every ADD failed with "cni0 already has an IP address
 * different from …" — the reference's bridge still does (checked below).
 * flax's bridge (and so flannel's delegate) replaces a stale gateway on a
 * bridge without pods, and refuses — changing nothing — while pods are on it.
 * Black-box through dist/bin/flannel in throwaway namespaces.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { createTestNetns, destroyTestNetns, netnsTest } from '../lib/netns';
import { cni, ours, requireBuilt, sh, theirs } from '../lib/cni';
import { netnsState, ping, podView, reservations } from '../lib/state';

let tmp: string;
beforeAll(() => {
  requireBuilt('flannel', 'bridge', 'host-local');
  tmp = mkdtempSync(path.join(tmpdir(), 'flax-stale-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const env = (sub: string) => `FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=${sub}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`;
let n = 0;
function setup() {
  const dir = path.join(tmp, `n${++n}`);
  mkdirSync(dir, { recursive: true });
  const subnetFile = path.join(dir, 'subnet.env');
  const ipamDir = path.join(dir, 'ipam');
  const conf = { cniVersion: '1.0.0', name: 'flnet', type: 'flannel', subnetFile, dataDir: path.join(dir, 'flannel'), delegate: { bridge: 'flaxst0' }, ipam: { dataDir: ipamDir } };
  return { conf, subnetFile, ipamDir };
}
const brAddrs = (ns: string) => (JSON.parse(sh(ns, 'ip', ['-j', '-4', 'addr', 'show', 'dev', 'flaxst0'])) as any[])[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
const brPorts = (ns: string) => (JSON.parse(sh(ns, 'ip', ['-j', 'link', 'show', 'master', 'flaxst0'])) as any[]).map((l) => l.ifname as string);

const it = netnsTest.extend<{ pod2: string }>({
  // eslint-disable-next-line no-empty-pattern
  pod2: async ({}, use) => {
    const [p] = createTestNetns(1);
    try { await use(p); } finally { destroyTestNetns([p]); }
  },
});

describe('a stale gateway on the bridge (the node got a new subnet)', () => {
  it('the reference bridge fails with "already has an IP address different from" (what flax heals)', ({ ns, ns2 }) => {
    sh(ns, 'ip', ['link', 'add', 'flaxst0', 'type', 'bridge']);
    sh(ns, 'ip', ['addr', 'add', '10.244.3.1/24', 'dev', 'flaxst0']);
    const conf = { cniVersion: '1.0.0', name: 'refnet', type: 'bridge', bridge: 'flaxst0', isGateway: true, ipam: { type: 'host-local', dataDir: path.join(tmp, 'ref'), ranges: [[{ subnet: '10.244.5.0/24' }]], routes: [{ dst: '10.244.0.0/16' }] } };
    const r = cni(theirs('bridge'), { command: 'ADD', containerId: 'ref1', netns: ns2, ifname: 'eth0', stdin: conf, hostNs: ns, path: '/usr/lib/cni' });
    expect(r.code).toBe(1);
    expect(r.json.msg).toContain('"flaxst0" already has an IP address different from 10.244.5.1/24');
  });

  it('no pods on it: ADD replaces the stale address, logs it and goes on', ({ ns, ns2 }) => {
    const { conf, subnetFile } = setup();
    sh(ns, 'ip', ['link', 'add', 'flaxst0', 'type', 'bridge']);
    sh(ns, 'ip', ['addr', 'add', '10.244.3.1/24', 'dev', 'flaxst0']);
    writeFileSync(subnetFile, env('10.244.5.1/24'));
    const r = cni(ours('flannel'), { command: 'ADD', containerId: 'p1', netns: ns2, ifname: 'eth0', stdin: conf, hostNs: ns });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toContain('"flaxst0" holds 10.244.3.1/24, a stale gateway');
    expect(brAddrs(ns)).toEqual(['10.244.5.1/24']);
    expect(podView(ns2, 'eth0').addrs).toEqual(['10.244.5.2/24']);
    expect(ping(ns2, '10.244.5.1')).toBe(true);
  });

  it('an address outside the overlay Network is not stale: refused, left alone', ({ ns, ns2 }) => {
    const { conf, subnetFile, ipamDir } = setup();
    sh(ns, 'ip', ['link', 'add', 'flaxst0', 'type', 'bridge']);
    sh(ns, 'ip', ['addr', 'add', '192.168.77.1/24', 'dev', 'flaxst0']);
    writeFileSync(subnetFile, env('10.244.5.1/24'));
    const r = cni(ours('flannel'), { command: 'ADD', containerId: 'p1', netns: ns2, ifname: 'eth0', stdin: conf, hostNs: ns });
    expect(r.code).toBe(1);
    expect(r.json.msg).toContain('192.168.77.1/24');
    expect(brAddrs(ns)).toEqual(['192.168.77.1/24']);
    expect(reservations(ipamDir, 'flnet')).toEqual([]);
  });

  it('pods on it: ADD is refused naming the stale address, the ports and the fix; nothing changes; after the pods go, ADD heals', ({ ns, ns2, pod2 }) => {
    const { conf, subnetFile, ipamDir } = setup();
    writeFileSync(subnetFile, env('10.244.3.1/24'));
    const a1 = cni(ours('flannel'), { command: 'ADD', containerId: 'old', netns: ns2, ifname: 'eth0', stdin: conf, hostNs: ns });
    expect(a1.code, a1.stdout + a1.stderr).toBe(0);
    const ports = brPorts(ns);
    expect(ports).toHaveLength(1);
    const before = { links: netnsState(ns).links, pod2: netnsState(pod2).links, res: reservations(ipamDir, 'flnet') };

    writeFileSync(subnetFile, env('10.244.5.1/24')); // the node's new lease
    const r = cni(ours('flannel'), { command: 'ADD', containerId: 'new', netns: pod2, ifname: 'eth0', stdin: conf, hostNs: ns });
    expect(r.code).toBe(1);
    expect(r.json.msg).toContain('"flaxst0" already has an IP address different from 10.244.5.1/24');
    expect(r.json.msg).toContain('10.244.3.1/24');
    expect(r.json.msg).toContain(`ports ${ports[0]}`);
    expect(r.json.msg).toContain('fix:');
    expect(brAddrs(ns)).toEqual(['10.244.3.1/24']);
    expect(brPorts(ns)).toEqual(ports);
    expect({ links: netnsState(ns).links, pod2: netnsState(pod2).links, res: reservations(ipamDir, 'flnet') }).toEqual(before);

    // the old pod goes (its DEL reads its own stored delegate config), then ADD heals
    expect(cni(ours('flannel'), { command: 'DEL', containerId: 'old', netns: ns2, ifname: 'eth0', stdin: conf, hostNs: ns }).code).toBe(0);
    const r2 = cni(ours('flannel'), { command: 'ADD', containerId: 'new', netns: pod2, ifname: 'eth0', stdin: conf, hostNs: ns });
    expect(r2.code, r2.stdout + r2.stderr).toBe(0);
    expect(brAddrs(ns)).toEqual(['10.244.5.1/24']);
    expect(ping(pod2, '10.244.5.1')).toBe(true);
  });
});
