/**
 * Issue 22 item 7: cnitool (the newest github.com/containernetworking/cni
 * release, built by scripts/peers.sh) drives every flax plugin — loopback,
 * bridge + host-local, portmap chained, flannel (delegating to bridge) —
 * through libcni: add, check, del, and gc and status (cnitool ≥ 1.2 has them;
 * libcni calls them for cniVersion ≥ 1.1.0 only).
 *
 * cnitool runs the plugins in its own network namespace and keeps libcni's
 * cache in /var/lib/cni (no flag moves it), so it runs inside a throwaway
 * "host" netns (nsenter) and a private mount namespace whose /var/lib/cni is
 * a scratch dir bind-mounted over it: nothing of the machine is touched.
 * CNI_PATH=dist/bin, NETCONFPATH a scratch dir, the pod netns a pin under
 * /run/netns with a unique name. cnitool names its container
 * `cnitool-<sha512(netns path)[:10]>`.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { DIST_BIN, requireBuilt } from '../lib/cni';
import { netnsTest as it } from '../lib/netns';
import { netnsState, ping, podView, reservations } from '../lib/state';
import { portmapState } from '../lib/portmap';
import { CNITOOL, missing, peerVersions } from '../lib/peers';

const SKIP = missing(CNITOOL);
let root: string;
let netconf: string;
let cache: string;

beforeAll(() => {
  if (SKIP) return;
  requireBuilt('bridge', 'host-local', 'loopback', 'portmap', 'flannel');
  root = mkdtempSync(path.join(tmpdir(), 'flax-cnitool-'));
  netconf = path.join(root, 'net.d');
  cache = path.join(root, 'cache');
  mkdirSync(netconf);
  mkdirSync(cache);
});
afterAll(() => { if (root) rmSync(root, { recursive: true, force: true }); });

interface Out { code: number | null; stdout: string; stderr: string; json?: any }
/** `cnitool <cmd> <net> <pod>` inside the host netns, libcni's cache on scratch */
function cnitool(host: string, cmd: string, net: string, pod: string, env: Record<string, string> = {}): Out {
  const script = 'mount --bind "$FLAXT_CACHE" /var/lib/cni && exec "$@"';
  const r = spawnSync('nsenter', [`--net=${host}`, '--', 'unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', CNITOOL, cmd, net, pod], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_PATH: DIST_BIN, NETCONFPATH: netconf, FLAXT_CACHE: cache, ...env },
  });
  let json: any;
  try { json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined; } catch { json = undefined; }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json };
}
const containerId = (pod: string) => `cnitool-${createHash('sha512').update(pod).digest('hex').slice(0, 20)}`;
const writeConf = (name: string, conf: object) => writeFileSync(path.join(netconf, `${name}.conflist`), JSON.stringify(conf));
const age = (dir: string) => {
  const old = new Date(Date.now() - 3600_000);
  for (const f of readdirSync(dir)) utimesSync(path.join(dir, f), old, old);
};

describe.skipIf(!!SKIP)(`cnitool ${peerVersions().get('cnitool') ?? ''} drives the flax plugins`, () => {
  it('loopback: add brings lo up with 127.0.0.1/8, check passes, del brings it down; status and gc succeed', ({ ns, ns2 }) => {
    writeConf('lo', { cniVersion: '1.1.0', name: 'lo', plugins: [{ type: 'loopback' }] });
    expect(podView(ns2, 'lo').up).toBe(false);
    const a = cnitool(ns, 'add', 'lo', ns2);
    expect(a.code, a.stderr).toBe(0);
    expect(a.json.interfaces).toEqual([{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: ns2 }]);
    expect(a.json.ips.map((i: { address: string }) => i.address)).toEqual(['127.0.0.1/8', '::1/128']);
    expect(podView(ns2, 'lo').up).toBe(true);
    expect(ping(ns2, '127.0.0.1')).toBe(true);
    // libcni cached the result under the scratch /var/lib/cni, not the machine's
    expect(readdirSync(path.join(cache, 'results'))).toEqual([`lo-${containerId(ns2)}-eth0`]);
    const c = cnitool(ns, 'check', 'lo', ns2);
    expect(c.code, c.stderr).toBe(0);
    expect(cnitool(ns, 'status', 'lo', ns2).code).toBe(0);
    const d = cnitool(ns, 'del', 'lo', ns2);
    expect(d.code, d.stderr).toBe(0);
    expect(podView(ns2, 'lo').up).toBe(false);
    // check on a down lo fails (the cached result went with del: re-add first)
    expect(cnitool(ns, 'add', 'lo', ns2).code).toBe(0);
    spawnSync('nsenter', [`--net=${ns2}`, '--', 'ip', 'link', 'set', 'lo', 'down']);
    const bad = cnitool(ns, 'check', 'lo', ns2);
    expect(bad.code).not.toBe(0);
    expect(cnitool(ns, 'gc', 'lo', ns2).code).toBe(0);
    expect(cnitool(ns, 'del', 'lo', ns2).code).toBe(0);
  });

  it('bridge + host-local + portmap: add/check/status/del leave nothing; gc DELs what libcni cached and sweeps nothing else (no valid-attachments list)', ({ ns, ns2 }) => {
    const dataDir = path.join(root, 'ipam-br');
    writeConf('brnet', {
      cniVersion: '1.1.0', name: 'brnet', plugins: [
        { type: 'bridge', bridge: 'flaxct0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.66.0.0/24' }], [{ subnet: 'fd66::/64' }]], routes: [{ dst: '0.0.0.0/0' }] } },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    });
    const caps = { CAP_ARGS: JSON.stringify({ portMappings: [{ hostPort: 18081, containerPort: 80, protocol: 'tcp' }] }) };
    const a = cnitool(ns, 'add', 'brnet', ns2, caps);
    expect(a.code, a.stderr).toBe(0);
    expect(a.json.cniVersion).toBe('1.1.0');
    expect(a.json.ips.map((i: { address: string }) => i.address)).toEqual(['10.66.0.2/24', 'fd66::2/64']);
    expect(podView(ns2, 'eth0').addrs).toContain('10.66.0.2/24');
    expect(ping(ns2, '10.66.0.1')).toBe(true);
    expect(reservations(dataDir, 'brnet')).toEqual(['10.66.0.2', 'fd66::2']);
    const host = netnsState(ns);
    expect(host.links).toContain('flaxct0');
    expect(host.masqRules.length).toBeGreaterThan(0);
    expect(portmapState(ns).nft.join('\n')).toMatch(/18081/); // the DNAT rule for the hostPort (nftables)
    const c = cnitool(ns, 'check', 'brnet', ns2, caps);
    expect(c.code, c.stderr).toBe(0);
    expect(cnitool(ns, 'status', 'brnet', ns2).code).toBe(0);
    const d = cnitool(ns, 'del', 'brnet', ns2, caps);
    expect(d.code, d.stderr).toBe(0);
    expect(reservations(dataDir, 'brnet')).toEqual([]);
    const after = netnsState(ns);
    expect(after.links.filter((l) => l.startsWith('veth'))).toEqual([]);
    expect(after.masqRules).toEqual([]);
    expect(portmapState(ns)).toEqual({ nft: [], ipt: [] });
    expect(netnsState(ns2).links).toEqual([]);

    // gc: cnitool 1.3 passes libcni no GCArgs, so libcni DELs every
    // attachment it has cached for the network (this pod) and then sends
    // the plugins GC WITHOUT `cni.dev/valid-attachments`: a plugin is told
    // nothing is invalid, and flax sweeps nothing it was not told about —
    // not even an aged reservation no attachment owns
    expect(cnitool(ns, 'add', 'brnet', ns2).code).toBe(0);
    expect(reservations(dataDir, 'brnet')).toEqual(['10.66.0.3', 'fd66::3']);
    writeFileSync(path.join(dataDir, 'brnet', '10.66.0.9'), 'ghost\r\neth0');
    age(path.join(dataDir, 'brnet'));
    const g = cnitool(ns, 'gc', 'brnet', ns2);
    expect(g.code, g.stderr).toBe(0);
    expect(readdirSync(path.join(cache, 'results')).filter((f) => f.startsWith('brnet-'))).toEqual([]);
    expect(netnsState(ns).links.filter((l) => l.startsWith('veth'))).toEqual([]);
    expect(netnsState(ns2).links).toEqual([]);
    expect(netnsState(ns).masqRules).toEqual([]);
    expect(portmapState(ns)).toEqual({ nft: [], ipt: [] });
    expect(reservations(dataDir, 'brnet')).toEqual(['10.66.0.9']);
  });

  it('flannel (delegating to bridge + host-local): add/check/status/del; status fails while the subnet file is missing', ({ ns, ns2 }) => {
    const subnetFile = path.join(root, 'subnet.env');
    const dataDir = path.join(root, 'flannel-data');
    const ipamDir = path.join(root, 'ipam-fl');
    writeConf('flnet', {
      cniVersion: '1.1.0', name: 'flnet', plugins: [
        { type: 'flannel', subnetFile, dataDir, delegate: { bridge: 'flaxctf0', hairpinMode: true, isDefaultGateway: true }, ipam: { dataDir: ipamDir } },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    });
    const st0 = cnitool(ns, 'status', 'flnet', ns2);
    expect(st0.code).not.toBe(0);
    expect(st0.stdout + st0.stderr).toMatch(/subnet file/);
    writeFileSync(subnetFile, 'FLANNEL_NETWORK=10.67.0.0/16\nFLANNEL_SUBNET=10.67.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    expect(cnitool(ns, 'status', 'flnet', ns2).code).toBe(0);
    const a = cnitool(ns, 'add', 'flnet', ns2);
    expect(a.code, a.stderr).toBe(0);
    expect(a.json.ips.map((i: { address: string }) => i.address)).toEqual(['10.67.3.2/24']);
    const pod = podView(ns2, 'eth0');
    expect(pod.mtu).toBe(1450);
    expect(pod.routes).toContain('default via 10.67.3.1');
    expect(ping(ns2, '10.67.3.1')).toBe(true);
    expect(existsSync(path.join(dataDir, containerId(ns2)))).toBe(true);
    expect(cnitool(ns, 'check', 'flnet', ns2).code).toBe(0);
    const d = cnitool(ns, 'del', 'flnet', ns2);
    expect(d.code, d.stderr).toBe(0);
    expect(existsSync(path.join(dataDir, containerId(ns2)))).toBe(false);
    expect(reservations(ipamDir, 'flnet')).toEqual([]);
    expect(netnsState(ns).links.filter((l) => l.startsWith('veth'))).toEqual([]);
    expect(netnsState(ns2).links).toEqual([]);
    expect(cnitool(ns, 'gc', 'flnet', ns2).code).toBe(0);
  });
});
