/**
 * bridge, black-box through dist/bin/bridge (+ our host-local) in throwaway
 * namespaces: the plugin runs under `nsenter --net=<host ns>`, so the
 * "host" is itself a fresh netns; the machine's root netns is never touched.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, vi } from 'vitest';
import { createTestNetns, destroyTestNetns, netnsTest } from '../lib/netns';
import { cni, cniAsync, ipj, ours, requireBuilt, sh, type CniCall } from '../lib/cni';
import { linkDetail, netnsState, nftRuleset, ping, podView, reservations } from '../lib/state';
import { buildTestBin } from '../lib/build-test-bin';

const BIN = ours('bridge');
const VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
let dataRoot: string;
let faulty: string;

beforeAll(async () => {
  requireBuilt('bridge', 'host-local');
  dataRoot = mkdtempSync(path.join(tmpdir(), 'flax-br-'));
  faulty = await buildTestBin('test/lib/bins/faulty-bridge.ts', 'bridge');
}, 120_000);
afterAll(() => {
  rmSync(dataRoot, { recursive: true, force: true });
  if (faulty) rmSync(path.dirname(faulty), { recursive: true, force: true });
});

let nNet = 0;
/** A bridge network config with its own host-local dataDir. */
function netConf(o: Record<string, unknown> = {}, ipam: Record<string, unknown> | null = { ranges: [[{ subnet: '10.88.0.0/24' }]] }) {
  const name = `brnet${++nNet}`;
  const dataDir = path.join(dataRoot, name);
  const conf: Record<string, unknown> = { cniVersion: '1.0.0', name, type: 'bridge', bridge: 'flaxbr0', ...o };
  if (ipam) conf.ipam = { type: 'host-local', dataDir, ...ipam };
  return { conf, name, dataDir };
}
const DUAL = { ranges: [[{ subnet: '10.88.0.0/24' }], [{ subnet: 'fd00:88::/64' }]] };
const V6 = { ranges: [[{ subnet: 'fd00:88::/64' }]] };

interface Fx { host: string; pod: string }
const it = netnsTest.extend<Fx>({
  host: async ({ ns }, use) => use(ns),
  pod: async ({ ns2 }, use) => use(ns2),
});

function add(f: Fx, conf: object, over: Partial<CniCall> = {}, bin = BIN) {
  return cni(bin, { command: 'ADD', containerId: 'ctr1', netns: f.pod, ifname: 'eth0', stdin: conf, hostNs: f.host, ...over });
}
function del(f: Fx, conf: object, over: Partial<CniCall> = {}, bin = BIN) {
  return cni(bin, { command: 'DEL', containerId: 'ctr1', netns: f.pod, ifname: 'eth0', stdin: conf, hostNs: f.host, ...over });
}
const withPrev = (conf: Record<string, unknown>, prev: unknown) => ({ ...conf, prevResult: prev });

/** Nothing of ours remains in host or pod, and no IP is reserved. */
function expectClean(f: Fx, dataDir: string, name: string, opts: { bridgeMayStay?: boolean } = {}) {
  const h = netnsState(f.host);
  if (!opts.bridgeMayStay) expect(h.links).toEqual([]);
  else expect(h.links.filter((l) => l.startsWith('veth'))).toEqual([]);
  expect(h.masqRules).toEqual([]);
  expect(h.spoofRules).toEqual([]);
  expect(h.iptCni).toEqual([]);
  expect(netnsState(f.pod).links).toEqual([]);
  expect(reservations(dataDir, name)).toEqual([]);
}

describe('bridge DEL: the device is gone when DEL returns', () => {
  // the DEL no longer waits for the kernel's answer to RTM_DELLINK, only until the link is unlisted (issue 24)
  it('five ADD/DEL rounds: after each DEL no veth in host or pod, the address is free; a second DEL succeeds', ({ host, pod, skip }) => {
    const f = { host, pod, skip };
    const { conf, name, dataDir } = netConf({ isGateway: true });
    for (let i = 0; i < 5; i++) {
      const r = add(f, conf);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json.ips[0].address).toMatch(/^10\.88\.0\.\d+\/24$/);
      const d = del(f, conf);
      expect(d.code, d.stdout + d.stderr).toBe(0);
      expectClean(f, dataDir, name, { bridgeMayStay: true });
      const again = del(f, conf);
      expect(again.code, again.stdout + again.stderr).toBe(0);
    }
  });
});

describe('bridge ADD/DEL per cniVersion (IPv4)', () => {
  for (const v of VERSIONS) {
    it(`cniVersion ${v}`, ({ host, pod, skip }) => {
      const f = { host, pod, skip };
      const { conf, name, dataDir } = netConf({ cniVersion: v, isGateway: true });
      const r = add(f, conf);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json.cniVersion).toBe(v);
      const view = podView(f.pod, 'eth0');
      expect(view.addrs).toEqual(['10.88.0.2/24']);
      expect(view.up).toBe(true);
      const br = linkDetail(f.host, 'flaxbr0');
      expect(br.linkinfo.info_kind).toBe('bridge');
      const veths = ipj(f.host, ['link', 'show', 'type', 'veth']);
      expect(veths).toHaveLength(1);
      expect(veths[0].ifname).toMatch(/^veth[0-9a-f]{8}$/);
      expect(veths[0].master).toBe('flaxbr0');
      expect(ipj(f.host, ['addr', 'show', 'dev', 'flaxbr0'])[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`)).toContain('10.88.0.1/24');
      if (v === '0.1.0' || v === '0.2.0') {
        expect(r.json).toEqual({ cniVersion: v, ip4: { ip: '10.88.0.2/24', gateway: '10.88.0.1' }, dns: {} });
      } else {
        expect(r.json.interfaces.map((i: any) => i.name)).toEqual(['flaxbr0', veths[0].ifname, 'eth0']);
        expect(r.json.interfaces[0].mac).toBe(br.address);
        expect(r.json.interfaces[1].mac).toBe(veths[0].address);
        expect(r.json.interfaces[2]).toMatchObject({ name: 'eth0', mac: view.mac, sandbox: f.pod });
        const ip = { interface: 2, address: '10.88.0.2/24', gateway: '10.88.0.1' };
        expect(r.json.ips).toEqual([v < '1.0.0' ? { version: '4', ...ip } : ip]);
        if (v === '1.1.0') expect(r.json.interfaces[2].mtu).toBe(1500);
        else expect(r.json.interfaces[2].mtu).toBeUndefined();
      }
      expect(ping(f.pod, '10.88.0.1')).toBe(true);
      const d = del(f, conf);
      expect(d.code, d.stdout).toBe(0);
      expectClean(f, dataDir, name, { bridgeMayStay: true });
      expect(del(f, conf).code).toBe(0); // idempotent
    });
  }
});

describe('bridge address families and connectivity', () => {
  it('IPv6 only: address, gateway, default route, ping', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf, name, dataDir } = netConf({ isDefaultGateway: true }, V6);
    const r = add(f, conf);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json.ips).toEqual([{ interface: 2, address: 'fd00:88::2/64', gateway: 'fd00:88::1' }]);
    expect(r.json.routes).toEqual([{ dst: '::/0', gw: 'fd00:88::1' }]);
    const view = podView(f.pod, 'eth0');
    expect(view.addrs).toEqual(['fd00:88::2/64']);
    expect(view.routes).toContain('default via fd00:88::1');
    expect(ping(f.pod, 'fd00:88::1')).toBe(true);
    expect(sh(f.host, 'sysctl', ['-n', 'net.ipv6.conf.all.forwarding']).trim()).toBe('1');
    expect(del(f, conf).code).toBe(0);
    expectClean(f, dataDir, name, { bridgeMayStay: true });
  });

  it('dual-stack: two pods reach each other and the gateway on both families', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const [pod2] = createTestNetns(1);
    try {
      const { conf, name, dataDir } = netConf({ isDefaultGateway: true }, DUAL);
      const a = add(f, conf);
      expect(a.code, a.stdout + a.stderr).toBe(0);
      const b = add(f, conf, { containerId: 'ctr2', netns: pod2 });
      expect(b.code, b.stdout + b.stderr).toBe(0);
      expect(a.json.ips.map((i: any) => i.address)).toEqual(['10.88.0.2/24', 'fd00:88::2/64']);
      expect(b.json.ips.map((i: any) => i.address)).toEqual(['10.88.0.3/24', 'fd00:88::3/64']);
      expect(a.json.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.88.0.1' }, { dst: '::/0', gw: 'fd00:88::1' }]);
      expect(podView(f.pod, 'eth0').routes).toEqual(expect.arrayContaining(['default via 10.88.0.1', 'default via fd00:88::1']));
      for (const [from, to] of [[f.pod, '10.88.0.3'], [f.pod, 'fd00:88::3'], [pod2, '10.88.0.2'], [pod2, 'fd00:88::2'], [f.pod, '10.88.0.1'], [f.pod, 'fd00:88::1'], [pod2, 'fd00:88::1']]) {
        expect(ping(from, to), `${from} -> ${to}`).toBe(true);
      }
      expect(sh(f.host, 'sysctl', ['-n', 'net.ipv4.ip_forward']).trim()).toBe('1');
      expect(del(f, conf).code).toBe(0);
      expect(del(f, conf, { containerId: 'ctr2', netns: pod2 }).code).toBe(0);
      expectClean(f, dataDir, name, { bridgeMayStay: true });
    } finally {
      destroyTestNetns([pod2]);
    }
  });

  it('L2 only (ipam {}): no addresses, link up, interfaces only; 0.2.0 refused and rolled back', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf } = netConf({}, null);
    conf.ipam = {};
    const r = add(f, conf);
    expect(r.code, r.stdout).toBe(0);
    expect(r.json.ips).toBeUndefined();
    expect(r.json.interfaces).toHaveLength(3);
    expect(podView(f.pod, 'eth0')).toMatchObject({ addrs: [], up: true });
    expect(del(f, conf).code).toBe(0);
    const old = add(f, { ...conf, cniVersion: '0.2.0' });
    expect(old.code).toBe(1);
    expect(old.json.msg).toMatch(/no valid IP addresses/);
    expect(netnsState(f.host).links.filter((l) => l.startsWith('veth'))).toEqual([]);
    expect(netnsState(f.pod).links).toEqual([]);
  });
});

describe('bridge options', () => {
  it('mtu sets bridge, host veth and container MTU', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf } = netConf({ mtu: 1400 });
    const r = add(f, conf);
    expect(r.code, r.stdout).toBe(0);
    expect(linkDetail(f.host, 'flaxbr0').mtu).toBe(1400);
    expect(linkDetail(f.host, r.json.interfaces[1].name).mtu).toBe(1400);
    expect(podView(f.pod, 'eth0').mtu).toBe(1400);
  });

  it('hairpinMode and portIsolation set the bridge port flags', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf } = netConf({ hairpinMode: true, portIsolation: true });
    const r = add(f, conf);
    expect(r.code, r.stdout).toBe(0);
    const port = linkDetail(f.host, r.json.interfaces[1].name).linkinfo.info_slave_data;
    expect(port.hairpin).toBe(true);
    expect(port.isolated).toBe(true);
  });

  it('promiscMode puts the bridge in promiscuous mode', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf } = netConf({ promiscMode: true });
    expect(add(f, conf).code).toBe(0);
    expect(linkDetail(f.host, 'flaxbr0').promiscuity).toBeGreaterThan(0);
  });

  it('the bridge MAC is pinned and accept_ra is 0', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf } = netConf({ isGateway: true });
    const r = add(f, conf);
    expect(r.code).toBe(0);
    const mac = linkDetail(f.host, 'flaxbr0').address;
    const [pod2] = createTestNetns(1);
    try {
      expect(add(f, conf, { containerId: 'c2', netns: pod2 }).code).toBe(0);
      expect(del(f, conf).code).toBe(0);
      expect(linkDetail(f.host, 'flaxbr0').address).toBe(mac);
      expect(sh(f.host, 'sysctl', ['-n', 'net.ipv6.conf.flaxbr0.accept_ra']).trim()).toBe('0');
    } finally {
      destroyTestNetns([pod2]);
    }
  });

  it('MAC from runtimeConfig.mac wins over args.cni.mac and CNI_ARGS MAC', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf } = netConf({ args: { cni: { mac: '02:00:00:00:00:02' } }, runtimeConfig: { mac: '02:00:00:00:00:03' } });
    const r = add(f, conf, { args: 'IgnoreUnknown=1;MAC=02:00:00:00:00:01' });
    expect(r.code, r.stdout).toBe(0);
    expect(podView(f.pod, 'eth0').mac).toBe('02:00:00:00:00:03');
    expect(r.json.interfaces[2].mac).toBe('02:00:00:00:00:03');
    const { conf: c2 } = netConf();
    const [pod2] = createTestNetns(1);
    try {
      expect(add(f, c2, { containerId: 'c2', netns: pod2, args: 'MAC=02:00:00:00:00:01' }).code).toBe(0);
      expect(podView(pod2, 'eth0').mac).toBe('02:00:00:00:00:01');
    } finally {
      destroyTestNetns([pod2]);
    }
  });

  it('forceAddress: a different bridge IPv4 is an error (rolled back) unless forced', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    sh(f.host, 'ip', ['link', 'add', 'flaxbr0', 'type', 'bridge']);
    sh(f.host, 'ip', ['addr', 'add', '10.99.0.1/24', 'dev', 'flaxbr0']);
    const { conf, name, dataDir } = netConf({ isGateway: true });
    const r = add(f, conf);
    expect(r.code).toBe(1);
    expect(r.json.msg).toBe('"flaxbr0" already has an IP address different from 10.88.0.1/24');
    expectClean(f, dataDir, name, { bridgeMayStay: true });
    expect(ipj(f.host, ['addr', 'show', 'dev', 'flaxbr0'])[0].addr_info.map((a: any) => a.local)).toContain('10.99.0.1');
    const forced = add(f, { ...conf, forceAddress: true });
    expect(forced.code, forced.stdout).toBe(0);
    const addrs = ipj(f.host, ['-4', 'addr', 'show', 'dev', 'flaxbr0'])[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
    expect(addrs).toEqual(['10.88.0.1/24']);
  });

  it('disableContainerInterface leaves the container end down (L2 only)', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf } = netConf({ disableContainerInterface: true }, null);
    const r = add(f, conf);
    expect(r.code, r.stdout).toBe(0);
    expect(podView(f.pod, 'eth0').up).toBe(false);
    const bad = add(f, { ...netConf({ disableContainerInterface: true }).conf }, { ifname: 'eth1' });
    expect(bad.json.code).toBe(7);
    expect(bad.json.msg).toMatch(/cannot use IPAM when DisableContainerInterface/);
  });

  it('enabledad: DAD on (enhanced), address settled (not tentative) when ADD returns', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf } = netConf({ enabledad: true, isGateway: true }, V6);
    const r = add(f, conf);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(sh(f.pod, 'sysctl', ['-n', 'net.ipv6.conf.eth0.accept_dad']).trim()).toBe('1');
    expect(sh(f.pod, 'sysctl', ['-n', 'net.ipv6.conf.eth0.enhanced_dad']).trim()).toBe('1');
    const ai = ipj(f.pod, ['-6', 'addr', 'show', 'dev', 'eth0'])[0].addr_info.find((a: any) => a.local === 'fd00:88::2');
    expect(ai.tentative).toBeUndefined();
    const { conf: c2 } = netConf({}, V6);
    const [pod2] = createTestNetns(1);
    try {
      expect(add(f, c2, { containerId: 'c2', netns: pod2 }).code).toBe(0);
      expect(sh(pod2, 'sysctl', ['-n', 'net.ipv6.conf.eth0.accept_dad']).trim()).toBe('0');
    } finally {
      destroyTestNetns([pod2]);
    }
  });

  it('dns in the config overrides the IPAM dns', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf } = netConf({ dns: { nameservers: ['10.88.0.10'], search: ['cluster.local'] } });
    const r = add(f, conf);
    expect(r.code).toBe(0);
    expect(r.json.dns).toEqual({ nameservers: ['10.88.0.10'], search: ['cluster.local'] });
  });

  it('macspoofchk: drop rules for foreign source MACs, removed on DEL', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf, name, dataDir } = netConf({ macspoofchk: true });
    const r = add(f, conf);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const rs = nftRuleset(f.host);
    const mac = r.json.interfaces[2].mac;
    const rules = rs.filter((x) => x.rule?.comment === 'macspoofchk-ctr1-eth0');
    expect(rules.length).toBe(4);
    expect(JSON.stringify(rules)).toContain(mac);
    expect(JSON.stringify(rules)).toContain(r.json.interfaces[1].name);
    expect(del(f, conf).code).toBe(0);
    expectClean(f, dataDir, name, { bridgeMayStay: true });
  });

  for (const [what, opt] of [['vlan', { vlan: 100 }], ['vlanTrunk', { vlanTrunk: [{ minID: 100, maxID: 110 }] }], ['vlan + isGateway', { vlan: 100, isGateway: true, preserveDefaultVlan: false }]] as const) {
    it(`${what} (needs bridge VLAN filtering)`, ({ host, pod, skip }) => {
      const f = { host, pod, skip };
      const probe = sh(f.host, 'ip', ['link', 'add', 'flaxprobe0', 'type', 'bridge', 'vlan_filtering', '1'], true);
      const supported = ipj(f.host, ['link', 'show']).some((l: any) => l.ifname === 'flaxprobe0');
      const { conf, name, dataDir } = netConf(opt);
      const r = add(f, conf);
      if (!supported) {
        expect(probe).toBe('');
        expect(r.code).toBe(1);
        expect(r.json.msg).toMatch(/VLAN filtering/);
        expectClean(f, dataDir, name);
        f.skip(`kernel: ${r.json.msg}`);
        return;
      }
      sh(f.host, 'ip', ['link', 'del', 'flaxprobe0']);
      expect(r.code, r.stdout).toBe(0);
      const vl = sh(f.host, 'bridge', ['-j', 'vlan', 'show', 'dev', r.json.interfaces[1].name]);
      expect(vl).toContain('100');
    });
  }
});

describe('bridge masquerade', () => {
  it('nftables (default): rule keyed by network + container, CHECK verifies it, DEL removes it', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf, name, dataDir } = netConf({ isGateway: true, ipMasq: true }, DUAL);
    const r = add(f, conf);
    expect(r.code, r.stdout).toBe(0);
    const st = netnsState(f.host);
    expect(st.masqRules).toHaveLength(2);
    expect(st.masqRules[0]).toContain('10.88.0.2');
    expect(st.masqRules[0]).toContain(`, net: ${name}, if: eth0, id: ctr1`); // v1.10.0's comment form
    expect(st.masqRules[1]).toContain('fd00:88::2');
    const chk = cni(BIN, { command: 'CHECK', containerId: 'ctr1', netns: f.pod, ifname: 'eth0', stdin: withPrev(conf, r.json), hostNs: f.host });
    expect(chk.code, chk.stdout).toBe(0);
    // CHECK notices a missing rule
    sh(f.host, 'nft', ['flush', 'chain', 'inet', 'cni_plugins_masquerade', 'masq_checks']);
    const chk2 = cni(BIN, { command: 'CHECK', containerId: 'ctr1', netns: f.pod, ifname: 'eth0', stdin: withPrev(conf, r.json), hostNs: f.host });
    expect(chk2.code).toBe(1);
    expect(chk2.json.msg).toMatch(/masquerade rule for 10.88.0.2 missing/);
    expect(add(f, conf, { containerId: 'ctr9', ifname: 'eth9' }).code).toBe(0);
    expect(del(f, conf).code).toBe(0);
    expect(netnsState(f.host).masqRules.join()).not.toContain('id: ctr1');
    expect(del(f, conf, { containerId: 'ctr9', ifname: 'eth9' }).code).toBe(0);
    expectClean(f, dataDir, name, { bridgeMayStay: true });
  });

  it('iptables backend: the reference chain layout, removed on DEL', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf, name, dataDir } = netConf({ isGateway: true, ipMasq: true, ipMasqBackend: 'iptables' });
    const r = add(f, conf);
    expect(r.code, r.stdout).toBe(0);
    const ipt = netnsState(f.host).iptCni.join('\n');
    expect(ipt).toMatch(/-N CNI-[0-9a-f]{24}/);
    expect(ipt).toMatch(new RegExp(`-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \\\\"${name}\\\\" id: \\\\"ctr1\\\\"" -j CNI-`));
    expect(ipt).toMatch(/-d 10.88.0.0\/24 .*-j ACCEPT/);
    expect(ipt).toMatch(/! -d 224.0.0.0\/4 .*-j MASQUERADE/);
    const chk = cni(BIN, { command: 'CHECK', containerId: 'ctr1', netns: f.pod, ifname: 'eth0', stdin: withPrev(conf, r.json), hostNs: f.host });
    expect(chk.code, chk.stdout).toBe(0);
    expect(del(f, conf).code).toBe(0);
    expectClean(f, dataDir, name, { bridgeMayStay: true });
  });

  for (const [what, netns] of [['an EMPTY CNI_NETNS (containerd ctr)', ''], ['a netns path that is gone', '/run/netns/flax-gone-xyz']] as const) {
    it(`DEL with ${what} still releases the IP and removes the masquerade rules`, ({ host, pod, skip }) => {
      const f = { host, pod, skip };
      const { conf, name, dataDir } = netConf({ isGateway: true, ipMasq: true });
      expect(add(f, conf).code).toBe(0);
      expect(reservations(dataDir, name)).toHaveLength(1);
      const d = del(f, conf, { netns });
      expect(d.code, d.stdout).toBe(0);
      expect(reservations(dataDir, name)).toEqual([]);
      expect(netnsState(f.host).masqRules).toEqual([]);
    });
  }

  it('DEL with a stale pin (the runtime unmounted the netns, the file stays) succeeds and cleans up', async ({ host, pod, skip }) => {
    const f = { host, pod, skip };
    const { conf, name, dataDir } = netConf({ isGateway: true, ipMasq: true });
    const [p2] = createTestNetns(1);
    try {
      expect(add(f, conf, { netns: p2 }).code).toBe(0);
      sh(null, 'umount', [p2]);
      const d = del(f, conf, { netns: p2 });
      expect(d.code, d.stdout).toBe(0);
      expect(reservations(dataDir, name)).toEqual([]);
      expect(netnsState(f.host).masqRules).toEqual([]);
      // the veth dies with the pod netns, which the kernel tears down
      // asynchronously after the unmount: a fast DEL (the resident server)
      // can return before that has happened
      await vi.waitFor(() => expect(netnsState(f.host).links.filter((l) => l.startsWith('veth'))).toEqual([]), { timeout: 5000, interval: 50 });
    } finally {
      destroyTestNetns([p2]);
      rmSync(p2, { force: true });
    }
  });

  it('GC removes masquerade state of containers not in the valid list', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf, name, dataDir } = netConf({ cniVersion: '1.1.0', isGateway: true, ipMasq: true });
    const [pod2] = createTestNetns(1);
    try {
      expect(add(f, conf).code).toBe(0);
      expect(add(f, conf, { containerId: 'ctr2', netns: pod2 }).code).toBe(0);
      const gc = cni(BIN, { command: 'GC', hostNs: f.host, stdin: { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'ctr2', ifname: 'eth0' }] } });
      expect(gc.code, gc.stdout).toBe(0);
      const st = netnsState(f.host);
      expect(st.masqRules).toHaveLength(1);
      expect(st.masqRules[0]).toContain('id: ctr2');
      // (host-local's own GC keeps reservations younger than its grace period)
      expect(reservations(dataDir, name)).toContain('10.88.0.3');
      const status = cni(BIN, { command: 'STATUS', hostNs: f.host, stdin: conf });
      expect(status.code, status.stdout).toBe(0);
    } finally {
      destroyTestNetns([pod2]);
    }
  });
});

describe('bridge CHECK', () => {
  it('verifies interfaces, addresses and routes; needs prevResult', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf } = netConf({ isDefaultGateway: true });
    const r = add(f, conf);
    expect(r.code).toBe(0);
    const call = (stdin: object) => cni(BIN, { command: 'CHECK', containerId: 'ctr1', netns: f.pod, ifname: 'eth0', stdin, hostNs: f.host });
    expect(call(withPrev(conf, r.json)).code).toBe(0);
    const none = call(conf);
    expect(none.code).toBe(1);
    expect(none.json.msg).toBe('Required prevResult missing');
    expect(call({ ...withPrev(conf, r.json), cniVersion: '0.3.1' }).json.code).toBe(1);
    sh(f.pod, 'ip', ['route', 'del', 'default']);
    expect(call(withPrev(conf, r.json)).json.msg).toMatch(/Failed to match route 0.0.0.0\/0 via 10.88.0.1/);
    sh(f.pod, 'ip', ['addr', 'del', '10.88.0.2/24', 'dev', 'eth0']);
    expect(call(withPrev(conf, r.json)).json.msg).toMatch(/Failed to match addr 10.88.0.2\/24/);
    sh(f.host, 'ip', ['link', 'set', r.json.interfaces[1].name, 'nomaster']);
    expect(call(withPrev(conf, r.json)).json.msg).toMatch(/not attached to bridge/);
  });
});

describe('bridge rejects bad input before any side effect', () => {
  it('bad config, existing interface, missing netns', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const { conf, name, dataDir } = netConf();
    const cases: [Partial<CniCall>, number, RegExp][] = [
      [{ stdin: '{"cniVersion":' }, 6, /error parsing/],
      [{ stdin: { ...conf, vlan: 5000 } }, 7, /invalid VLAN ID/],
      [{ stdin: { ...conf, hairpinMode: true, promiscMode: true } }, 7, /hairpin/],
      [{ stdin: { ...conf, mtu: 'big' } }, 7, /mtu/],
      [{ stdin: { ...conf, ipam: { type: '../x' } } }, 7, /invalid IPAM plugin type/],
      [{ stdin: { ...conf, ipam: { type: 'nope-ipam' } } }, 7, /failed to find plugin "nope-ipam"/],
      [{ stdin: { ...conf, cniVersion: '2.0.0' } }, 1, /incompatible/],
      [{ netns: '/run/netns/flax-nope' }, 4, /CNI_NETNS.*does not exist/],
      [{ netns: '/etc/hostname' }, 4, /not a namespace/],
      [{ containerId: 'a/../b' }, 4, /containerID/],
      [{ ifname: 'eth0/x' }, 4, /interface name/],
      [{ args: 'BOGUS=1' }, 4, /unknown args/],
    ];
    for (const [over, code, msg] of cases) {
      const r = add(f, conf, over);
      expect(r.json?.code, JSON.stringify(over) + r.stdout).toBe(code);
      expect(r.json.msg + ' ' + (r.json.details ?? '')).toMatch(msg);
      expectClean(f, dataDir, name);
    }
    sh(f.pod, 'ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'x0']);
    const dup = add(f, conf);
    expect(dup.code).toBe(1);
    expect(dup.json.msg).toBe('container veth name provided (eth0) already exists');
    expect(netnsState(f.host).links).toEqual([]);
    expect(reservations(dataDir, name)).toEqual([]);
  });
});

describe('bridge ADD is transactional', () => {
  const steps = ['bridge', 'veth', 'port', 'macspoofchk', 'ipam', 'container', 'gateway', 'forwarding', 'ipmasq', 'port-wait', 'result'];
  for (const step of steps) {
    it(`a failure after step "${step}" leaves nothing (fresh bridge)`, ({ host, pod, skip }) => {
      const f = { host, pod, skip };
      const { conf, name, dataDir } = netConf({ isDefaultGateway: true, ipMasq: true, macspoofchk: true, hairpinMode: true }, DUAL);
      const r = add(f, conf, { env: { FLAX_FAULT_INJECT: step } }, faulty);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.json.msg).toBe(`injected fault at step "${step}"`);
      expectClean(f, dataDir, name);
      // and the same ADD then works
      const ok = add(f, conf, {}, faulty);
      expect(ok.code, ok.stdout).toBe(0);
    });
  }
  it('rollback with a shared bridge keeps the bridge, its gateway and the other pod', ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const [pod2] = createTestNetns(1);
    try {
      const { conf, name, dataDir } = netConf({ isGateway: true, ipMasq: true }, DUAL);
      expect(add(f, conf, { containerId: 'other', netns: pod2 }).code).toBe(0);
      const before = netnsState(f.host);
      for (const step of ['ipam', 'gateway', 'ipmasq', 'result']) {
        const r = add(f, conf, { env: { FLAX_FAULT_INJECT: step } }, faulty);
        expect(r.json.msg).toMatch(/injected fault/);
        expect(netnsState(f.host)).toEqual(before);
        expect(netnsState(f.pod).links).toEqual([]);
        expect(reservations(dataDir, name)).toEqual(['10.88.0.2', 'fd00:88::2']);
      }
      expect(ping(pod2, '10.88.0.1')).toBe(true);
    } finally {
      destroyTestNetns([pod2]);
    }
  });
});

describe('bridge concurrency', () => {
  it('10 concurrent ADDs on a new bridge: distinct addresses, then nothing left', async ({ host, pod, skip }) => {
      const f = { host, pod, skip };
    const pods = createTestNetns(10);
    try {
      const { conf, name, dataDir } = netConf({ isGateway: true, ipMasq: true });
      const adds = await Promise.all(pods.map((p, i) => cniAsync(BIN, { command: 'ADD', containerId: `burst${i}`, netns: p, ifname: 'eth0', stdin: conf, hostNs: f.host })));
      for (const r of adds) expect(r.code, r.stdout + r.stderr).toBe(0);
      const ips = adds.map((r) => r.json.ips[0].address);
      expect(new Set(ips).size).toBe(10);
      expect(netnsState(f.host).masqRules).toHaveLength(10);
      const dels = await Promise.all(pods.map((p, i) => cniAsync(BIN, { command: 'DEL', containerId: `burst${i}`, netns: p, ifname: 'eth0', stdin: conf, hostNs: f.host })));
      for (const r of dels) expect(r.code, r.stdout + r.stderr).toBe(0);
      expectClean({ host: f.host, pod: pods[0] }, dataDir, name, { bridgeMayStay: true });
    } finally {
      destroyTestNetns(pods);
    }
  });
});
