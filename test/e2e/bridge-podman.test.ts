/**
 * bridge-focused podman e2e (the general runtime suite is podman.test.ts /
 * containerd.test.ts with test/lib/e2e.ts). podman 4.3 (CNI backend, runc) driving our bridge + host-local + loopback
 * + portmap (firewall, tuning from /usr/lib/cni). Everything podman needs
 * lives in a scratch dir (CONTAINERS_CONF, --root/--runroot, network config
 * dir, plugin dir); what it creates in the root netns (bridge flaxe2e0,
 * veths, nft/iptables rules, ip_forward) is removed in afterAll.
 */
import { readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIST_BIN, REF_BIN, requireBuilt } from '../lib/cni';
import { missingPrereq } from '../lib/e2e';
import { masqComment } from '../../plugins/pkg/nft/masq';
import { iptRulesMentioning, masqRulesMentioning, vethsOf } from '../lib/host-state';
import { PodmanSuite } from '../lib/podman';

const NET = 'flaxe2e';
const BRIDGE = 'flaxe2e0';
const SUBNET = '10.231.77';
const HOSTPORT = 18080;
const skipReason = missingPrereq(['podman', 'runc', 'conmon', 'busybox', 'nft', 'iptables', 'ip', 'flock']);
const IMAGE = 'localhost/flaxe2e-busybox:latest';

const suite = new PodmanSuite({ tag: 'bridge-podman', net: NET, bridge: BRIDGE, image: IMAGE });
const { podman } = suite;
const reservations = () => {
  try {
    return readdirSync(path.join(suite.base, 'ipam', NET)).filter((f) => f.startsWith(SUBNET));
  } catch {
    return [];
  }
};
/** podman run -d …: the container's id, recorded for the cleanup */
const runDetached = (args: string[]) => {
  const id = podman(['run', '-d', ...args]).stdout.trim();
  suite.cids.push(id);
  return id;
};
function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, (r) => {
      let d = '';
      r.on('data', (c) => { d += c; });
      r.on('end', () => resolve(d));
    }).on('error', reject);
  });
}

describe.skipIf(!!skipReason || process.getuid?.() !== 0)(`podman (CNI backend) with flax plugins${skipReason ? ` — ${skipReason}` : ''}`, () => {
  beforeAll(async () => {
    requireBuilt('bridge', 'host-local', 'loopback', 'portmap');
    await suite.setUp();
    const bin = path.join(suite.base, 'bin');
    const netDir = path.join(suite.base, 'plugins-net.d');
    suite.writeConf(bin, netDir);
    // ours first; the rest of podman's chain from the reference suite
    for (const p of ['bridge', 'host-local', 'loopback', 'portmap']) symlinkSync(path.join(DIST_BIN, p), path.join(bin, p));
    for (const p of ['firewall', 'tuning']) symlinkSync(path.join(REF_BIN, p), path.join(bin, p));
    writeFileSync(path.join(netDir, `${NET}.conflist`), JSON.stringify({
      cniVersion: '0.4.0', name: NET, plugins: [
        {
          type: 'bridge', bridge: BRIDGE, isGateway: true, ipMasq: true, hairpinMode: true,
          ipam: { type: 'host-local', dataDir: path.join(suite.base, 'ipam'), routes: [{ dst: '0.0.0.0/0' }], ranges: [[{ subnet: `${SUBNET}.0/24`, gateway: `${SUBNET}.1` }]] },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
        { type: 'firewall', backend: 'iptables' },
        { type: 'tuning' },
      ],
    }, null, 2));
  }, 180_000);

  afterAll(() => suite.tearDown(undefined, (problems) => {
    if (vethsOf(BRIDGE).length) problems.push(`veths left on ${BRIDGE}`);
    for (const id of suite.cids) if (masqRulesMentioning(id).length || iptRulesMentioning(id).length) problems.push(`rules of ${id} left`);
  }), 180_000);

  it('podman lists the network (VERSION probe of our plugins passes)', () => {
    expect(podman(['network', 'ls', '--format', '{{.Name}}']).stdout.split('\n')).toContain(NET);
  });

  it('a container gets an address, reaches the gateway, -p works, rm -f leaves nothing', async () => {
    const id = runDetached(['--name', 'flaxe2e-c1', '--network', NET, '-p', `${HOSTPORT}:8080`, IMAGE, 'httpd', '-f', '-p', '8080', '-h', '/www']);
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const addr = podman(['exec', 'flaxe2e-c1', 'ip', '-4', '-o', 'addr', 'show', 'eth0']).stdout;
    const ip = new RegExp(`inet (${SUBNET.replace(/\./g, '\\.')}\\.\\d+)/24`).exec(addr)?.[1];
    expect(ip, addr).toBeDefined();
    suite.ips.push(ip!);
    expect(reservations()).toEqual([ip]);
    expect(vethsOf(BRIDGE)).toHaveLength(1);
    expect(masqRulesMentioning(id)).toEqual([masqComment(NET, 'eth0', id)]); // v1.10.0's comment form
    const ping = podman(['exec', 'flaxe2e-c1', 'ping', '-c', '1', '-W', '2', `${SUBNET}.1`], true);
    expect(ping.stdout).toContain(' 0% packet loss');
    expect(await httpGet(`http://${SUBNET}.1:${HOSTPORT}/`)).toBe('flax-e2e-ok\n');

    podman(['rm', '-f', '-t', '0', 'flaxe2e-c1']);
    expect(reservations()).toEqual([]);
    expect(vethsOf(BRIDGE)).toEqual([]);
    expect(masqRulesMentioning(id)).toEqual([]);
    expect(iptRulesMentioning(id)).toEqual([]);
    expect(iptRulesMentioning(ip!)).toEqual([]);
  });

  it('two containers talk to each other over the bridge', () => {
    runDetached(['--name', 'flaxe2e-a', '--network', NET, IMAGE, 'sleep', '300']);
    runDetached(['--name', 'flaxe2e-b', '--network', NET, IMAGE, 'sleep', '300']);
    const ipB = /inet (\S+)\/24/.exec(podman(['exec', 'flaxe2e-b', 'ip', '-4', '-o', 'addr', 'show', 'eth0']).stdout)![1];
    expect(podman(['exec', 'flaxe2e-a', 'ping', '-c', '1', '-W', '2', ipB], true).stdout).toContain(' 0% packet loss');
    podman(['rm', '-f', '-t', '0', 'flaxe2e-a', 'flaxe2e-b']);
    expect(reservations()).toEqual([]);
    expect(vethsOf(BRIDGE)).toEqual([]);
  });
});
