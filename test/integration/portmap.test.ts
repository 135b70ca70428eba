/**
 * portmap, black-box through dist/bin/portmap chained after our bridge +
 * host-local, in throwaway namespaces (the "host" is itself a fresh netns;
 * the machine's root netns is never touched). A server in the pod is
 * reached through the host port from another namespace, from the host via
 * localhost and from the pod itself (hairpin), on both backends.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { ours, requireBuilt, sh } from '../lib/cni';
import { HOST_V4, HOST_V6, chainAdd, pmNetwork, pmTest as it, portmapState, probe, run, withMappings } from '../lib/portmap';

const PM = ours('portmap');
let dataRoot: string;
beforeAll(() => {
  requireBuilt('bridge', 'host-local', 'portmap');
  dataRoot = mkdtempSync(path.join(tmpdir(), 'flax-pm-'));
});
afterAll(() => rmSync(dataRoot, { recursive: true, force: true }));

const POD_V4 = '10.88.0.2';

for (const backend of ['nftables', 'iptables'] as const) {
  describe(`portmap reachability (${backend})`, () => {
    it('TCP and UDP over IPv4 and IPv6: from another netns, from localhost, hairpin; DEL with empty CNI_NETNS leaves nothing', async ({ host, pod, client, serve }) => {
      const f = { host, pod, client, serve };
      const net = pmNetwork(dataRoot, { backend });
      await f.serve(f.pod, 'tcp', 8080, 'tcp-pod');
      await f.serve(f.pod, 'udp', 5353, 'udp-pod');
      const { br, pm } = chainAdd(f, net, [
        { hostPort: 18080, containerPort: 8080, protocol: 'tcp' },
        { hostPort: 15353, containerPort: 5353, protocol: 'udp' },
      ]);
      expect(pm.code, pm.stdout + pm.stderr).toBe(0);
      expect(pm.json).toEqual(br.json); // prevResult passed through
      expect(pm.stderr).toBe('');

      expect(probe(f.client, 'tcp', HOST_V4, 18080)).toBe('tcp-pod from 192.168.77.2');
      expect(probe(f.client, 'tcp', HOST_V6, 18080)).toBe('tcp-pod from fd77::2');
      expect(probe(f.client, 'udp', HOST_V4, 15353)).toBe('udp-pod ping');
      expect(probe(f.client, 'udp', HOST_V6, 15353)).toBe('udp-pod ping');
      // localhost on the node: DNAT in OUTPUT, route_localnet on the bridge, masquerade to the gateway address
      expect(probe(f.host, 'tcp', '127.0.0.1', 18080)).toBe('tcp-pod from 10.88.0.1');
      expect(sh(f.host, 'sysctl', ['-n', 'net.ipv4.conf.pmbr0.route_localnet']).trim()).toBe('1');
      // hairpin: the pod reaches its own host port (masqueraded, else the reply would not come back)
      expect(probe(f.pod, 'tcp', HOST_V4, 18080)).toBe('tcp-pod from 10.88.0.1');
      expect(probe(f.pod, 'udp', HOST_V4, 15353)).toBe('udp-pod ping');
      expect(probe(f.pod, 'tcp', HOST_V6, 18080)).toBe('tcp-pod from fd00:88::1');
      // a port that is not mapped is not forwarded
      expect(probe(f.client, 'tcp', HOST_V4, 18081)).toMatch(/ERR ECONNREFUSED/);

      const st = portmapState(f.host);
      if (backend === 'nftables') {
        expect(st.nft.length).toBe(2 * 2 + 2 + 1); // 2 DNAT per family, hairpin per family, localhost v4
        expect(st.ipt).toEqual([]);
      } else {
        expect(st.nft).toEqual([]);
        expect(st.ipt.filter((l) => l.includes('-N CNI-DN-'))).toHaveLength(2);
      }
      const chk = run(PM, 'CHECK', f, withMappings(net.portmap, [
        { hostPort: 18080, containerPort: 8080, protocol: 'tcp' }, { hostPort: 15353, containerPort: 5353, protocol: 'udp' }], br.json));
      expect(chk.code, chk.stdout).toBe(0);
      expect(chk.stdout).toBe('');

      // DEL with an empty CNI_NETNS (as containerd's ctr sends) and the mappings in the request
      const d = run(PM, 'DEL', f, withMappings(net.portmap, [], br.json), { netns: '' });
      expect(d.code, d.stdout).toBe(0);
      expect(portmapState(f.host)).toEqual({ nft: [], ipt: [] });
      expect(probe(f.client, 'tcp', HOST_V4, 18080)).toMatch(/ERR ECONNREFUSED/);
      // CHECK now fails, naming what is missing
      const chk2 = run(PM, 'CHECK', f, withMappings(net.portmap, [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp' }], br.json));
      expect(chk2.code).toBe(1);
      expect(chk2.json.msg).toMatch(/missing/);
      expect(run(PM, 'DEL', f, net.portmap, { netns: '' }).code).toBe(0); // idempotent
    });

    it('SCTP mapping and hostIP: rules for the family of hostIP only', ({ host, pod, client, serve }) => {
      const f = { host, pod, client, serve };
      const net = pmNetwork(dataRoot, { backend });
      const { pm } = chainAdd(f, net, [
        { hostPort: 19000, containerPort: 9000, protocol: 'SCTP' },
        { hostPort: 19001, containerPort: 9001, protocol: 'tcp', hostIP: HOST_V4 },
      ]);
      expect(pm.code, pm.stdout + pm.stderr).toBe(0);
      const st = portmapState(f.host);
      const all = [...st.nft, ...st.ipt].join('\n');
      expect(all).toMatch(/sctp/);
      if (backend === 'nftables') {
        const hostIpRules = st.nft.filter((l) => l.includes(HOST_V4));
        expect(hostIpRules).toHaveLength(1);
        expect(hostIpRules[0]).toMatch(/^ip hostports/);
        expect(st.nft.filter((l) => l.startsWith('ip6 hostports'))).toHaveLength(1); // sctp only
      } else {
        expect(st.ipt.filter((l) => l.startsWith('ip6tables') && l.includes('-d 192.168.77.1'))).toEqual([]);
        expect(st.ipt.some((l) => l.startsWith('iptables') && l.includes('-d 192.168.77.1/32'))).toBe(true);
      }
      expect(probe(f.client, 'tcp', HOST_V4, 19001)).toMatch(/ERR ECONNREFUSED/); // rule exists, no server: refused by the pod
      expect(run(PM, 'DEL', f, net.portmap).code).toBe(0);
      expect(portmapState(f.host)).toEqual({ nft: [], ipt: [] });
    });
  });
}

describe('portmap protocol behaviour', () => {
  it('no prevResult → error; no portMappings → prevResult passed through unchanged, no rules', ({ host, pod, client, serve }) => {
      const f = { host, pod, client, serve };
    const net = pmNetwork(dataRoot);
    const e = run(PM, 'ADD', f, withMappings(net.portmap, [{ hostPort: 1, containerPort: 1 }]));
    expect(e.code).toBe(1);
    expect(e.json.msg).toMatch(/chained plugin/);
    const { br, pm } = chainAdd(f, net, []);
    expect(pm.code).toBe(0);
    expect(pm.json).toEqual(br.json);
    expect(portmapState(f.host)).toEqual({ nft: [], ipt: [] });
  });

  it('prevResult in an older version is converted to the config version', ({ host, pod, client, serve }) => {
      const f = { host, pod, client, serve };
    const net = pmNetwork(dataRoot, {}, '0.4.0');
    const { br, pm } = chainAdd(f, { ...net, bridge: { ...net.bridge, cniVersion: '0.4.0' } }, [{ hostPort: 18090, containerPort: 80 }]);
    expect(pm.code, pm.stdout).toBe(0);
    expect(pm.json).toEqual(br.json);
    expect(pm.json.ips[0].version).toBe('4');
    expect(run(PM, 'DEL', f, net.portmap).code).toBe(0);
  });

  it('invalid configs are refused with code 7 before any rule is written', ({ host, pod, client, serve }) => {
      const f = { host, pod, client, serve };
    const net = pmNetwork(dataRoot);
    const prev = { cniVersion: '1.0.0', ips: [{ address: '10.88.0.9/24' }] };
    for (const [extra, maps, re] of [
      [{}, [{ hostPort: 0, containerPort: 80 }], /hostPort/],
      [{}, [{ hostPort: 80, containerPort: 70000 }], /containerPort/],
      [{}, [{ hostPort: 80, containerPort: 80, protocol: 'icmp' }], /protocol/],
      [{}, [{ hostPort: 80, containerPort: 80, hostIP: 'nope' }], /hostIP/],
      [{ markMasqBit: 14, externalSetMarkChain: 'KUBE-MARK-MASQ' }, [{ hostPort: 80, containerPort: 80 }], /externalSetMarkChain and markMasqBit/],
      [{ markMasqBit: 32 }, [{ hostPort: 80, containerPort: 80 }], /markMasqBit/],
      [{ backend: 'nftables', conditionsV4: ['-d', '10.0.0.1'] }, [{ hostPort: 80, containerPort: 80 }], /iptables-specific options \[conditionsV4\]/],
      [{ backend: 'iptables', conditionsV4: ['ip', 'daddr', '10.0.0.1'] }, [{ hostPort: 80, containerPort: 80 }], /nftables-specific/],
    ] as const) {
      const r = run(PM, 'ADD', f, withMappings({ ...net.portmap, ...extra }, maps as any, prev));
      expect(r.code, JSON.stringify(extra)).toBe(1);
      expect(r.json.code).toBe(7);
      expect(r.json.msg).toMatch(re);
    }
    expect(portmapState(f.host)).toEqual({ nft: [], ipt: [] });
  });

  it('conditionsV4 (nft text) restrict the entry path; DEL without portMappings still removes the rules', async ({ host, pod, client, serve }) => {
      const f = { host, pod, client, serve };
    const net = pmNetwork(dataRoot, { conditionsV4: ['ip', 'saddr', '!=', '192.168.77.2'] });
    await f.serve(f.pod, 'tcp', 8080, 'cond');
    const { pm } = chainAdd(f, net, [{ hostPort: 18080, containerPort: 8080 }]);
    expect(pm.code, pm.stdout + pm.stderr).toBe(0);
    expect(probe(f.client, 'tcp', HOST_V4, 18080)).toMatch(/ERR ECONNREFUSED/); // excluded by the condition
    expect(probe(f.client, 'tcp', HOST_V6, 18080)).toBe('cond from fd77::2'); // conditionsV6 unset
    expect(probe(f.host, 'tcp', '127.0.0.1', 18080)).toBe('cond from 10.88.0.1');
    expect(sh(f.host, 'nft', ['list', 'tables'])).not.toMatch(/flax_cond/); // the translation table is gone
    const d = run(PM, 'DEL', f, net.portmap); // no runtimeConfig: the reference would leak here
    expect(d.code).toBe(0);
    expect(portmapState(f.host)).toEqual({ nft: [], ipt: [] });
  });

  // flax writes v1.10.0's comment, the bare container id, which names no network: a network's GC
  // leaves such rules alone (judged against this network's valid list, a container mapped by
  // another network would lose its rules; the node sweeper judges them across networks). flax's
  // legacy comments (`name: N id: C`, nodes upgraded from an older flax) name their network: GC
  // removes this network's.
  it('GC (1.1.0) removes this network\'s legacy rules of containers not in the valid list, and no bare-id rule (another network\'s container keeps its mapping)', ({ host, pod, client, serve }) => {
    const f = { host, pod, client, serve };
    const net = pmNetwork(dataRoot, {}, '1.1.0');
    const other = pmNetwork(dataRoot, {}, '1.1.0');
    const prev = (ip: string) => ({ cniVersion: '1.1.0', ips: [{ address: `${ip}/24` }] });
    for (const [n, id, ip] of [[net, 'gc-a', '10.88.0.10'], [net, 'gc-b', '10.88.0.11'], [other, 'gc-c', '10.88.0.12']] as const) {
      const r = run(PM, 'ADD', f, withMappings(n.portmap, [{ hostPort: 2000 + Number(ip.split('.')[3]), containerPort: 80 }], prev(ip)), { containerId: id });
      expect(r.code, r.stdout).toBe(0);
    }
    // rules an older flax wrote: one of this network, one of the other, neither container valid
    for (const [n, id, port] of [[net, 'gc-d', 2013], [other, 'gc-e', 2014]] as const) {
      sh(f.host, 'nft', ['add', 'rule', 'ip', 'cni_hostport', 'hostports', 'tcp', 'dport', String(port), 'dnat', 'to', '10.88.0.99:80', 'comment', `"name: ${n.name} id: ${id}"`]);
    }
    const comments = () => portmapState(f.host).nft.map((l) => l.split(' ').slice(2, -1).join(' '));
    expect(new Set(comments())).toEqual(new Set(['gc-a', 'gc-b', 'gc-c', `name: ${net.name} id: gc-d`, `name: ${other.name} id: gc-e`]));
    const g = run(PM, 'GC', f, { ...net.portmap, 'cni.dev/valid-attachments': [{ containerID: 'gc-a', ifname: 'eth0' }] }, { containerId: undefined, netns: undefined, ifname: undefined });
    expect(g.code, g.stdout).toBe(0);
    expect(new Set(comments())).toEqual(new Set(['gc-a', 'gc-b', 'gc-c', `name: ${other.name} id: gc-e`]));
    const st = run(PM, 'STATUS', f, net.portmap, { containerId: undefined, netns: undefined, ifname: undefined });
    expect(st.code).toBe(0);
  });
});
