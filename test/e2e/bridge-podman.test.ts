/**
 * bridge-focused podman e2e (the general runtime suite is podman.test.ts /
 * containerd.test.ts with test/lib/e2e.ts). podman 4.3 (CNI backend, runc) driving our bridge + host-local + loopback
 * + portmap (firewall, tuning from /usr/lib/cni). Everything podman needs
 * lives in a scratch dir (CONTAINERS_CONF, --root/--runroot, network config
 * dir, plugin dir); what it creates in the root netns (bridge flaxe2e0,
 * veths, nft/iptables rules, ip_forward) is removed in afterAll.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIST_BIN, REF_BIN, requireBuilt } from '../lib/cni';
import { acquireE2eLock } from '../lib/e2e';
import {
  type HostSnapshot, buildRootfsTar, iptRulesMentioning, masqRulesMentioning, missingTools, restoreHost, snapshotHost, vethsOf,
} from '../lib/host';

const NET = 'flaxe2e';
const BRIDGE = 'flaxe2e0';
const SUBNET = '10.231.77';
const HOSTPORT = 18080;
const missing = missingTools('podman', 'runc', 'busybox', 'nft', 'iptables');
const IMAGE = 'localhost/flaxe2e-busybox:latest';

let dir: string;
let snap: HostSnapshot | undefined;
let lock: { release: () => void } | undefined;
const env = () => ({ ...process.env, CONTAINERS_CONF: path.join(dir, 'containers.conf') });
function podman(args: string[], allowFail = false) {
  const r = spawnSync('podman', ['--root', path.join(dir, 'storage'), '--runroot', path.join(dir, 'run'), '--storage-driver', 'vfs', ...args], { env: env(), encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0 && !allowFail) throw new Error(`podman ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r;
}
const reservations = () => {
  try {
    return readdirSync(path.join(dir, 'ipam', NET)).filter((f) => f.startsWith(SUBNET));
  } catch {
    return [];
  }
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

describe.skipIf(missing.length > 0 || process.getuid?.() !== 0)(`podman (CNI backend) with flax plugins${missing.length ? ` — missing ${missing.join(' ')}` : ''}`, () => {
  beforeAll(async () => {
    requireBuilt('bridge', 'host-local', 'loopback', 'portmap');
    // the e2e suites share the root netns: one at a time (test/lib/e2e.ts)
    lock = await acquireE2eLock();
    snap = snapshotHost();
    dir = mkdtempSync(path.join(tmpdir(), 'flax-e2e-podman-'));
    for (const d of ['bin', 'net.d', 'storage', 'run', 'ipam']) mkdirSync(path.join(dir, d));
    // ours first; the rest of podman's chain from the reference suite
    for (const p of ['bridge', 'host-local', 'loopback', 'portmap']) symlinkSync(path.join(DIST_BIN, p), path.join(dir, 'bin', p));
    for (const p of ['firewall', 'tuning']) symlinkSync(path.join(REF_BIN, p), path.join(dir, 'bin', p));
    writeFileSync(path.join(dir, 'containers.conf'), [
      '[containers]',
      'default_ulimits = ["nofile=1024:1024","nproc=4096:4096"]',
      '[network]',
      'network_backend = "cni"',
      `cni_plugin_dirs = ["${dir}/bin"]`,
      `network_config_dir = "${dir}/net.d"`,
      '[engine]',
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      '',
    ].join('\n'));
    writeFileSync(path.join(dir, 'net.d', `${NET}.conflist`), JSON.stringify({
      cniVersion: '0.4.0', name: NET, plugins: [
        {
          type: 'bridge', bridge: BRIDGE, isGateway: true, ipMasq: true, hairpinMode: true,
          ipam: { type: 'host-local', dataDir: path.join(dir, 'ipam'), routes: [{ dst: '0.0.0.0/0' }], ranges: [[{ subnet: `${SUBNET}.0/24`, gateway: `${SUBNET}.1` }]] },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
        { type: 'firewall', backend: 'iptables' },
        { type: 'tuning' },
      ],
    }, null, 2));
    podman(['import', buildRootfsTar(dir), IMAGE]);
  }, 180_000);

  afterAll(() => {
    if (dir) {
      podman(['rm', '-f', '-a', '-t', '0'], true);
      podman(['rmi', '-a', '-f'], true);
    }
    if (snap) {
      const removed = restoreHost(snap, { linkPrefix: BRIDGE, networks: [NET] });
      if (removed.length) process.stderr.write(`e2e podman cleanup: ${removed.join('; ')}\n`);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
    lock?.release();
  }, 120_000);

  it('podman lists the network (VERSION probe of our plugins passes)', () => {
    expect(podman(['network', 'ls', '--format', '{{.Name}}']).stdout.split('\n')).toContain(NET);
  });

  it('a container gets an address, reaches the gateway, -p works, rm -f leaves nothing', async () => {
    const run = podman(['run', '-d', '--name', 'flaxe2e-c1', '--network', NET, '-p', `${HOSTPORT}:8080`, IMAGE, 'httpd', '-f', '-p', '8080', '-h', '/www']);
    const id = run.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const addr = podman(['exec', 'flaxe2e-c1', 'ip', '-4', '-o', 'addr', 'show', 'eth0']).stdout;
    const ip = new RegExp(`inet (${SUBNET.replace(/\./g, '\\.')}\\.\\d+)/24`).exec(addr)?.[1];
    expect(ip, addr).toBeDefined();
    expect(reservations()).toEqual([ip]);
    expect(vethsOf(BRIDGE)).toHaveLength(1);
    expect(masqRulesMentioning(id)).toEqual([`name: ${NET} id: ${id}`]);
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
    podman(['run', '-d', '--name', 'flaxe2e-a', '--network', NET, IMAGE, 'sleep', '300']);
    podman(['run', '-d', '--name', 'flaxe2e-b', '--network', NET, IMAGE, 'sleep', '300']);
    const ipB = /inet (\S+)\/24/.exec(podman(['exec', 'flaxe2e-b', 'ip', '-4', '-o', 'addr', 'show', 'eth0']).stdout)![1];
    expect(podman(['exec', 'flaxe2e-a', 'ping', '-c', '1', '-W', '2', ipB], true).stdout).toContain(' 0% packet loss');
    podman(['rm', '-f', '-t', '0', 'flaxe2e-a', 'flaxe2e-b']);
    expect(reservations()).toEqual([]);
    expect(vethsOf(BRIDGE)).toEqual([]);
  });
});
