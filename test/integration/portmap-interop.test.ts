/**
 * portmap interoperability with Debian's reference plugin (/usr/lib/cni/
 * portmap v1.1.1, iptables only, cniVersion ≤ 1.0.0), chained after our
 * bridge in throwaway namespaces: ADD by theirs + DEL by ours leaves
 * nothing, and ADD by ours (iptables backend) + DEL by theirs leaves
 * nothing. Plus the stale UDP conntrack entry that ADD must delete.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { ours, requireBuilt, sh, theirs } from '../lib/cni';
import { HOST_V4, chainAdd, pmNetwork, pmTest as it, portmapState, probe, run, withMappings } from '../lib/portmap';

const HAVE_REF = existsSync(theirs('portmap'));
const MAPS = [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp' }, { hostPort: 15353, containerPort: 5353, protocol: 'udp' }];
let dataRoot: string;
beforeAll(() => {
  requireBuilt('bridge', 'host-local', 'portmap');
  dataRoot = mkdtempSync(path.join(tmpdir(), 'flax-pmi-'));
});
afterAll(() => rmSync(dataRoot, { recursive: true, force: true }));

describe.skipIf(!HAVE_REF)('portmap interop with the reference v1.1.1', () => {
  it('ADD by theirs, traffic flows, DEL by ours (empty CNI_NETNS, no mappings) leaves nothing', async ({ host, pod, client, serve }) => {
    const f = { host, pod, client, serve };
    const net = pmNetwork(dataRoot);
    await f.serve(f.pod, 'tcp', 8080, 'ref');
    const { br, pm } = chainAdd(f, net, MAPS, {}, theirs('portmap'));
    expect(pm.code, pm.stdout + pm.stderr).toBe(0);
    expect(probe(f.client, 'tcp', HOST_V4, 18080)).toBe('ref from 192.168.77.2');
    expect(portmapState(f.host).ipt.filter((l) => l.includes('-N CNI-DN-'))).toHaveLength(2);
    // ours CHECKs their rules with the iptables backend (same layout)
    const chk = run(ours('portmap'), 'CHECK', f, withMappings({ ...net.portmap, backend: 'iptables' }, MAPS, br.json));
    expect(chk.code, chk.stdout).toBe(0);
    const d = run(ours('portmap'), 'DEL', f, { ...net.portmap, prevResult: br.json }, { netns: '' });
    expect(d.code, d.stdout).toBe(0);
    expect(portmapState(f.host)).toEqual({ nft: [], ipt: [] });
    expect(probe(f.client, 'tcp', HOST_V4, 18080)).toMatch(/ERR ECONNREFUSED/);
  });

  it('ADD by ours (iptables backend), DEL by theirs leaves nothing', async ({ host, pod, client, serve }) => {
    const f = { host, pod, client, serve };
    const net = pmNetwork(dataRoot, { backend: 'iptables' });
    await f.serve(f.pod, 'tcp', 8080, 'ours');
    const { br, pm } = chainAdd(f, net, MAPS);
    expect(pm.code, pm.stdout + pm.stderr).toBe(0);
    expect(probe(f.client, 'tcp', HOST_V4, 18080)).toBe('ours from 192.168.77.2');
    // (v1.1.1's CHECK cannot be used here: it looks for an IPv6 DNAT chain on every pod and fails, IPv4-only or dual-stack)
    const refConf = withMappings({ ...net.portmap, backend: undefined }, MAPS, br.json);
    const d = run(theirs('portmap'), 'DEL', f, refConf);
    expect(d.code, d.stdout + d.stderr).toBe(0);
    expect(portmapState(f.host)).toEqual({ nft: [], ipt: [] });
  });

  it('v1.1.1\'s CHECK fails on an IPv4-only pod too (it looks for an IPv6 DNAT chain anyway); ours passes on the same rules', ({ host, pod, client, serve }) => {
    const f = { host, pod, client, serve };
    const net = pmNetwork(dataRoot);
    net.bridge.ipam.ranges = [[{ subnet: '10.88.0.0/24' }]];
    const { br, pm } = chainAdd(f, net, MAPS, {}, theirs('portmap'));
    expect(pm.code, pm.stdout + pm.stderr).toBe(0);
    expect(br.json.ips.map((i: { address: string }) => i.address)).toEqual(['10.88.0.2/24']);
    const refConf = withMappings(net.portmap, MAPS, pm.json);
    const theirCheck = run(theirs('portmap'), 'CHECK', f, refConf);
    expect(theirCheck.code).not.toBe(0);
    expect(theirCheck.json.msg).toMatch(/could not check ipv6 dnat/);
    const chk = run(ours('portmap'), 'CHECK', f, withMappings({ ...net.portmap, backend: 'iptables' }, MAPS, pm.json));
    expect(chk.code, chk.stdout).toBe(0);
    expect(run(theirs('portmap'), 'DEL', f, refConf).code).toBe(0);
    expect(run(ours('bridge'), 'DEL', f, { ...net.bridge, prevResult: br.json }).code).toBe(0);
    expect(portmapState(f.host)).toEqual({ nft: [], ipt: [] });
  });

  it('ADD by ours (nftables): theirs cannot see nft rules (its DEL succeeds, leaves them); ours cleans up after it', ({ host, pod, client, serve }) => {
    const f = { host, pod, client, serve };
    const net = pmNetwork(dataRoot);
    const { br, pm } = chainAdd(f, net, MAPS);
    expect(pm.code).toBe(0);
    const d = run(theirs('portmap'), 'DEL', f, withMappings(net.portmap, MAPS, br.json));
    expect(d.code, d.stdout + d.stderr).toBe(0);
    expect(portmapState(f.host).nft.length).toBeGreaterThan(0);
    expect(run(ours('portmap'), 'DEL', f, net.portmap).code).toBe(0);
    expect(portmapState(f.host)).toEqual({ nft: [], ipt: [] });
  });
});

describe('portmap UDP conntrack', () => {
  it('ADD deletes the stale conntrack entry of a UDP flow that hit the host port before the mapping', async ({ host, pod, client, serve }) => {
    const f = { host, pod, client, serve };
    const net = pmNetwork(dataRoot);
    await f.serve(f.pod, 'udp', 5353, 'udp-pod');
    // another pod's mapping first: conntrack runs in a netns only once a NAT hook is there (as on any node with pods)
    const other = run(ours('portmap'), 'ADD', f, withMappings(net.portmap, [{ hostPort: 19999, containerPort: 1 }], { cniVersion: '1.0.0', ips: [{ address: '10.88.0.50/24' }] }), { containerId: 'other' });
    expect(other.code, other.stdout).toBe(0);
    expect(probe(f.client, 'udp', HOST_V4, 15353, 40000)).not.toMatch(/udp-pod/); // nothing mapped yet
    const ct = () => sh(f.host, 'cat', ['/proc/net/nf_conntrack']).split('\n').filter((l) => / udp /.test(l) && /sport=40000 dport=15353/.test(l));
    expect(ct()).toHaveLength(1);
    const { pm } = chainAdd(f, net, MAPS);
    expect(pm.code, pm.stdout + pm.stderr).toBe(0);
    // the same 5-tuple is NATed now: its old entry (no DNAT) is gone
    expect(probe(f.client, 'udp', HOST_V4, 15353, 40000)).toBe('udp-pod ping');
    expect(run(ours('portmap'), 'DEL', f, net.portmap).code).toBe(0);
    expect(run(ours('portmap'), 'DEL', f, net.portmap, { containerId: 'other' }).code).toBe(0);
    expect(portmapState(f.host)).toEqual({ nft: [], ipt: [] });
  });
});
