// e2e suite: issue 21 item 6
/**
 * Every conflist flax ships or writes (conf/*.conflist, `flax install
 * --network bridge|flannel`, the DaemonSets' ConfigMap — see
 * test/lib/shipped-conflists.ts) loaded by a real libcni 1.1: podman 4.3
 * (Debian 12, CNI backend) with flax's plugins. libcni 1.1 — podman 4,
 * containerd 1.6/1.7, cnitool 1.1.2 — ignores `cniVersions` and cannot read a
 * 1.1.0 result: a `"cniVersion": "1.1.0"` list fails its first ADD with
 * "unsupported CNI result version 1.1.0" after loopback already ran.
 *
 * Each distinct conflist goes into podman's network config dir with only
 * what would touch the machine's own networks renamed: the network name
 * (flaxe2e-cf), the bridge (flaxe2e-cf0), the subnet (10.231.180.0/24), a
 * host-local dataDir left to its default under the network's name; for
 * flannel, a subnet.env and its dataDir in the scratch dir. cniVersion,
 * cniVersions and the plugin chain are the shipped ones. Then `podman run`
 * (ADD of the whole chain through libcni) and `podman rm -f` (DEL) must
 * succeed with no plugin call failing, and leave no reservation, veth or
 * cache file.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CNI_STATE, cacheFileOf, failedCalls, formatTrace, makePluginDir, missingPrereq, readTrace } from '../lib/e2e';
import { deleteLink, firewallMentions, linkExists, reservations } from '../lib/host-state';
import { PodmanSuite } from '../lib/podman';
import { distinctShippedConflists } from '../lib/shipped-conflists';

const NET = 'flaxe2e-cf';
const BRIDGE = 'flaxe2e-cf0';
const SUBNET = '10.231.180.0/24';
const PREFIX = '10.231.180.';
const IMAGE = 'localhost/flaxe2e-busybox:latest';
const OURS = ['bridge', 'host-local', 'loopback', 'portmap', 'flannel'];

const skipReason = missingPrereq(['podman', 'runc', 'conmon', 'nft', 'iptables', 'ip', 'flock', 'busybox']);
if (skipReason) console.warn(`shipped conflists through podman's libcni: skipped: ${skipReason}`);

type Conf = Record<string, any>;

/** The shipped list with what would touch the machine's networks renamed (see the header). */
function localise(shipped: Conf, scratch: string): Conf {
  const c = structuredClone(shipped);
  c.name = NET;
  for (const p of c.plugins as Conf[]) {
    if (p.type === 'bridge') p.bridge = BRIDGE;
    if (p.ipam?.type === 'host-local') {
      p.ipam.ranges = [[{ subnet: SUBNET }]];
      delete p.ipam.dataDir; // the default, /var/lib/cni/networks/<NET>: put back by the suite's teardown
    }
    if (p.type === 'flannel') {
      writeFileSync(path.join(scratch, 'subnet.env'), `FLANNEL_NETWORK=10.231.180.0/22\nFLANNEL_SUBNET=${PREFIX}1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`);
      p.subnetFile = path.join(scratch, 'subnet.env');
      p.dataDir = path.join(scratch, 'flannel');
      p.delegate = { ...p.delegate, bridge: BRIDGE };
    }
  }
  return c;
}

describe.skipIf(!!skipReason)('shipped conflists through podman 4.3\'s libcni 1.1', () => {
  const suite = new PodmanSuite({ tag: 'conflists-podman', net: NET, bridge: BRIDGE, image: IMAGE });
  const { cids, ips, hostVeths, podman } = suite;

  beforeAll(async () => {
    await suite.setUp();
  }, 180_000);

  afterAll(() => suite.tearDown(() => undefined, (problems) => {
    if (linkExists(BRIDGE)) problems.push(`bridge ${BRIDGE} left`);
    const veths = hostVeths.filter((v) => linkExists(v));
    if (veths.length) problems.push(`veths left: ${veths.join(', ')}`);
    const caches = cids.map((c) => cacheFileOf(NET, c)).filter((f) => existsSync(f));
    if (caches.length) problems.push(`cache files left: ${caches.join(', ')}`);
    if (existsSync(path.join(CNI_STATE, 'networks', NET))) problems.push(`host-local dataDir ${NET} left`);
  }), 180_000);

  const lists = distinctShippedConflists();
  it.each(lists.map((l, i) => [l.sources.join(' = '), i] as const))('%s: podman run (ADD) and podman rm (DEL) succeed', (_what, i) => {
    const { conf: shipped } = lists[i];
    suite.clear();
    const dir = path.join(suite.base, `list-${i}`);
    const plugins = makePluginDir(dir, 'ours', OURS, []);
    const netDir = path.join(dir, 'net.d');
    suite.writeConf(plugins.dir, netDir);
    const conf = localise(shipped, dir);
    writeFileSync(path.join(netDir, `${NET}.conflist`), JSON.stringify(conf, null, 2));
    const explain = (what: string) => `${what}\n\nconflist:\n${JSON.stringify(conf)}\n\nplugin calls:\n${formatTrace(readTrace(plugins.traceDir))}`;

    const r = podman(['run', '-d', '--name', `flaxe2e-cf-${i}`, '--network', NET, IMAGE, 'sleep', '600'], true);
    expect(r.code, explain(`podman run with the shipped ${String(shipped.cniVersion)} list: ${r.stderr}`)).toBe(0);
    const cid = r.stdout.trim().split('\n').pop()!;
    cids.push(cid);
    const trace = readTrace(plugins.traceDir);
    const adds = trace.filter((e) => e.command === 'ADD' && e.env.CNI_CONTAINERID === cid);
    expect(adds.map((e) => e.plugin), explain('ADD of every plugin of the list, in order')).toEqual(
      expect.arrayContaining((conf.plugins as Conf[]).map((p) => p.type)));
    // libcni 1.1 ignores cniVersions: the plugins get the list's cniVersion
    for (const e of adds) expect(JSON.parse(e.stdin).cniVersion, `${e.plugin} ADD's cniVersion`).toBe(shipped.cniVersion);
    const cache = JSON.parse(readFileSync(cacheFileOf(NET, cid), 'utf8'));
    expect(cache.result.cniVersion, 'the result libcni cached').toBe(shipped.cniVersion);
    const hasIpam = (conf.plugins as Conf[]).some((p) => p.type === 'bridge' || p.type === 'flannel');
    if (hasIpam) {
      const ip: string = JSON.parse(podman(['inspect', cid]).stdout)[0].NetworkSettings.Networks[NET].IPAddress;
      expect(ip.startsWith(PREFIX), `podman inspect's address ${ip}`).toBe(true);
      ips.push(ip);
      expect(reservations(NET)[ip], 'host-local reservation').toBe(`${cid}\r\neth0`);
      const veth = cache.result.interfaces.find((x: { name: string; sandbox?: string }) => !x.sandbox && x.name !== BRIDGE)?.name;
      expect(veth).toMatch(/^veth/);
      hostVeths.push(veth);
      expect(linkExists(veth), `host veth ${veth}`).toBe(true);
    }

    const rm = podman(['rm', '-f', '-t', '0', cid], true);
    expect(rm.code, explain(`podman rm -f: ${rm.stderr}`)).toBe(0);
    const after = readTrace(plugins.traceDir);
    const dels = after.filter((e) => e.command === 'DEL' && e.env.CNI_CONTAINERID === cid);
    expect(dels.map((e) => e.plugin), explain('DEL of every plugin of the list')).toEqual(expect.arrayContaining((conf.plugins as Conf[]).map((p) => p.type)));
    expect(failedCalls(after), explain('a plugin call failed')).toEqual([]);
    expect(existsSync(cacheFileOf(NET, cid)), 'cache file left').toBe(false);
    expect(Object.keys(reservations(NET)).filter((k) => k.startsWith(PREFIX)), 'reservations left').toEqual([]);
    for (const v of hostVeths) expect(linkExists(v), `veth ${v} left`).toBe(false);
    expect(firewallMentions([cid]), 'firewall rules naming the container left').toEqual([]);
    podman(['network', 'rm', '-f', NET], true);
    deleteLink(BRIDGE);
    suite.restoreFor([cid], ips);
  });
});
