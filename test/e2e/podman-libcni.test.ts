// e2e suite: owned by the runtime-e2e engineer
/**
 * libcni compatibility against a real libcni: podman 4.3 (Debian 12, CNI
 * backend) links github.com/containernetworking/cni/libcni 1.1.x and keeps
 * its attachment cache in the default /var/lib/cni/results. Two proofs
 * (issue 5):
 *
 * 1. "a cache written by us is what libcni would write": podman runs a
 *    container and its libcni writes the cache entry; then `flax cni add`
 *    attaches a throwaway netns with the same network list file, container
 *    id, ifname, CNI_ARGS and capability args (taken from podman's entry)
 *    and writes its entry into a scratch cache dir. The two files are
 *    compared field by field and, after substituting the values that
 *    legitimately differ, byte for byte. Both directions of reading are
 *    proven too: our reader parses podman's file, and podman's libcni reads
 *    an entry written by our writer (on `podman rm`, it hands the cached
 *    result to every plugin's DEL as prevResult).
 *
 *    What legitimately differs:
 *    - addresses, MACs, the host veth name, the sandbox path (another
 *      attachment);
 *    - `"netns"`: libcni ≥ 1.2 writes it (omitempty, after networkName),
 *      1.1 does not. We write it (it is what lets GC DEL a stale attachment
 *      with its netns); libcni 1.1 ignores the unknown field (proven
 *      below), and our reader treats a missing one as "" (libcni 1.2 too);
 *    - key order inside `capabilityArgs` values: libcni marshals whatever
 *      Go value the runtime hands it. podman passes its portMappings as a
 *      Go struct (hostPort, containerPort, protocol); a runtime whose
 *      capability args are JSON — cnitool, flax, CAP_ARGS — has maps, whose
 *      keys Go sorts. We hold JSON, so we write what libcni writes for
 *      cnitool. Same values; readers parse both.
 *
 * 2. "`flax cni del` cleans an attachment that podman created": podman
 *    runs a container (with the reference plugins, then with ours), then
 *    `flax cni del` with podman's network config dir, plugin dir, the
 *    container's full id and netns, the attachment's CNI_ARGS / CAP_ARGS
 *    (as a runtime passes them on DEL: libcni never takes them from the
 *    cache for DEL, and the reference portmap's DEL does nothing without
 *    runtimeConfig.portMappings) and the default cache dir finds
 *    podman's cached result, runs the chain's DEL in reverse with it as
 *    prevResult, and everything of the attachment is gone (reservation,
 *    veth, masquerade/portmap rules, cache file). `podman rm -f` still
 *    succeeds afterwards (its own DEL finds no cache entry and every
 *    plugin's DEL is idempotent).
 *
 * Dedicated names (network flaxe2e-pl, bridge flaxe2e-pl0, 10.231.179.0/24,
 * host port 27879), the machine-wide lock, scratch dirs, firewall / CNI
 * state snapshots: see test/lib/e2e.ts.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CNI_STATE, type PluginDir, type PluginSet, type TraceEntry, cacheFileOf, copyFlaxCli, failedCalls, formatTrace, makePluginDir,
  missingPrereq, readTrace, run,
} from '../lib/e2e';
import { deleteLink, firewallMentions, keyShape, linkExists, linkNames, reservations } from '../lib/host-state';
import { type PodmanNetwork, PodmanSuite } from '../lib/podman';
import { loadConfList } from '../../plugins/pkg/invoke/conf';
import { listAttachments, marshalCache, readCache, unmarshalCache, writeCache } from '../../plugins/pkg/invoke/cache';
import { CniConfig } from '../../plugins/pkg/invoke/api';
import { goMarshal } from '../../plugins/pkg/invoke/gojson';

const NET = 'flaxe2e-pl';
const BRIDGE = 'flaxe2e-pl0';
const SUBNET = '10.231.179.0/24';
const GW = '10.231.179.1';
const HOST_PORT = 27879;
const CTR_PORT = 8080;
const IMAGE = 'localhost/flaxe2e-busybox:latest';
/** the throwaway netns `flax cni add` attaches */
const NETNS = `flaxe2e-pl-${process.pid}`;
const NETNS_PATH = `/run/netns/${NETNS}`;
/** a value no plugin produces, planted in a cache entry to see whether libcni read it */
const MARKER_NS = '10.231.179.253';
const DEL_ORDER = ['tuning', 'firewall', 'portmap', 'bridge', 'host-local'];

const skipReason = missingPrereq(['podman', 'runc', 'conmon', 'nft', 'iptables', 'ip', 'flock', 'busybox', 'nsenter']);
if (skipReason) console.warn(`podman libcni e2e skipped: ${skipReason}`);

interface Iface { name: string; mac?: string; sandbox?: string }
interface CacheJson {
  kind: string; containerId: string; config: string; ifName: string; networkName: string; netns?: string;
  cniArgs?: [string, string][]; capabilityArgs?: Record<string, unknown>;
  result: { cniVersion: string; interfaces: Iface[]; ips: Array<{ address: string; gateway?: string; interface?: number; version?: string }>; [k: string]: unknown };
}

type Scenario = PodmanNetwork;
interface Started { cid: string; name: string; netns: string; ip: string; hostVeth: string; cacheText: string; cache: CacheJson }

describe.skipIf(!!skipReason)('libcni compatibility with podman 4.3 (libcni 1.1)', () => {
  const suite = new PodmanSuite({ tag: 'podman-libcni', net: NET, bridge: BRIDGE, image: IMAGE });
  const { cids, ips, hostVeths, podman } = suite;
  let flax = '';
  /** our scratch cache dirs that may still hold an attachment (cleanup DELs them) */
  const ourAttachments: Array<{ netDir: string; pluginDir: string; cacheDir: string; cid: string }> = [];

  const flaxCni = (args: string[], netDir: string, pluginDir: string, extraEnv: Record<string, string> = {}) => run(flax, ['cni', ...args], {
    env: { ...cleanEnv(), NETCONFPATH: netDir, CNI_PATH: pluginDir, ...extraEnv }, allowFail: true, timeoutMs: 120_000,
  });

  beforeAll(async () => {
    run('ip', ['netns', 'del', NETNS], { allowFail: true });
    await suite.setUp();
    flax = copyFlaxCli(suite.base);
  }, 180_000);

  afterAll(() => suite.tearDown(() => {
    // an attachment of ours still cached (a test failed half-way): DEL it through the chain first
    for (const a of ourAttachments) {
      if (existsSync(cacheFileOf(NET, a.cid, 'eth0', a.cacheDir))) {
        flaxCni(['del', NET, NETNS_PATH, '--container-id', a.cid, '--cache-dir', a.cacheDir], a.netDir, a.pluginDir);
      }
    }
    run('ip', ['netns', 'del', NETNS], { allowFail: true });
  }, (problems) => {
    // final verification: nothing with our bridge, veths, netns or container ids remains
    const links = run('ip', ['-o', 'link']).stdout.split('\n').filter((l) => l.includes(BRIDGE) || hostVeths.some((v) => l.includes(`${v}@`) || l.includes(`${v}:`)));
    if (links.length) problems.push(`links left: ${links.join(' | ')}`);
    if (run('ip', ['netns', 'list']).stdout.split('\n').some((l) => l.split(' ')[0] === NETNS)) problems.push(`netns ${NETNS} left`);
    const rules = firewallMentions([...cids, BRIDGE, `"${NET}"`, `\\"${NET}\\"`]);
    if (rules.length) problems.push(`firewall lines naming our containers/network left: ${rules.join(' | ')}`);
    const caches = cids.flatMap((c) => [cacheFileOf(NET, c)].filter((f) => existsSync(f)));
    if (caches.length) problems.push(`cache files left: ${caches.join(', ')}`);
    if (existsSync(path.join(CNI_STATE, 'networks', NET))) problems.push(`host-local dataDir ${NET} left`);
  }), 180_000);

  /** A fresh network for one scenario: plugin dir with trace wrappers, podman config pointing at it, bridge name pinned. */
  function scenario(tag: string, set: PluginSet): Scenario {
    suite.clear();
    return suite.createNetwork(tag, set, SUBNET, GW);
  }

  /** podman run -d -p …: httpd in busybox on NET; returns what the runtime and its libcni recorded. */
  function start(s: Scenario, name: string): Started {
    const r = podman(['run', '-d', '--name', name, '--network', NET, '--cap-add', 'NET_RAW', '-p', `${HOST_PORT}:${CTR_PORT}`,
      IMAGE, 'httpd', '-f', '-p', String(CTR_PORT), '-h', '/www'], true);
    if (r.code !== 0) throw new Error(s.explain(`podman run failed (${r.code}): ${r.stderr}`));
    const cid = r.stdout.trim().split('\n').pop()!;
    cids.push(cid);
    expect(failedCalls(s.trace()), s.explain('a plugin call failed during podman run')).toEqual([]);
    const insp = JSON.parse(podman(['inspect', cid]).stdout)[0];
    const netns: string = insp.NetworkSettings.SandboxKey;
    const ip: string = insp.NetworkSettings.Networks[NET].IPAddress;
    ips.push(ip);
    expect(netns, 'podman inspect → NetworkSettings.SandboxKey').toMatch(/^\/run\/netns\//);
    expect(ip).toMatch(/^10\.231\.179\.\d+$/);
    const file = cacheFileOf(NET, cid);
    expect(existsSync(file), `podman's libcni wrote ${file}`).toBe(true);
    const cacheText = readFileSync(file, 'utf8');
    const cache = JSON.parse(cacheText) as CacheJson;
    const hostVeth = cache.result.interfaces.find((i) => !i.sandbox && i.name !== BRIDGE)?.name ?? '';
    expect(hostVeth, s.explain('cached result lacks the host veth')).toMatch(/^veth[0-9a-f]{8}$/);
    hostVeths.push(hostVeth);
    return { cid, name, netns, ip, hostVeth, cacheText, cache };
  }

  /** After the trace mark: the DEL calls for one container. */
  const delsSince = (s: Scenario, cid: string, mark: bigint) => s.trace().filter((e) => e.t0 >= mark && e.command === 'DEL' && e.env.CNI_CONTAINERID === cid);
  const nowNs = () => BigInt(Date.now()) * 1_000_000n;

  /** Nothing of the attachment left on the host (reservation, veth, rules, cache file). */
  function expectAttachmentGone(c: { cid: string; ip: string; hostVeth: string }, cacheDir: string, what: string): void {
    expect(Object.entries(reservations(NET)).filter(([k, v]) => k === c.ip || v.startsWith(c.cid)), `${what}: reservation left`).toEqual([]);
    expect(linkExists(c.hostVeth), `${what}: host veth ${c.hostVeth} left`).toBe(false);
    expect(JSON.parse(run('ip', ['-j', 'link', 'show', 'master', BRIDGE]).stdout || '[]'), `${what}: ports left on the bridge`).toEqual([]);
    expect(firewallMentions([c.cid, c.ip]), `${what}: firewall rules naming the container or its IP left`).toEqual([]);
    expect(existsSync(cacheFileOf(NET, c.cid, 'eth0', cacheDir)), `${what}: cache file left`).toBe(false);
  }

  it('a cache written by us is what libcni would write (and each side reads the other\'s)', () => {
    const s = scenario('cache', 'reference');
    const c = start(s, 'flaxe2e-pl-cache');
    const { cid, cache: theirs, cacheText: theirText } = c;
    const conflistBytes = readFileSync(s.conflistPath);

    // --- podman's entry, as libcni 1.1 wrote it
    expect(Object.keys(theirs), 'libcni 1.1 entry: no netns field').toEqual(['kind', 'containerId', 'config', 'ifName', 'networkName', 'cniArgs', 'capabilityArgs', 'result']);
    expect(theirs).toMatchObject({ kind: 'cniCacheV1', containerId: cid, ifName: 'eth0', networkName: NET });
    expect(Buffer.from(theirs.config, 'base64').equals(conflistBytes), 'config = base64 of the conflist file\'s bytes').toBe(true);

    // --- reverse: our reader parses podman's file
    const read = readCache(CNI_STATE, NET, cid, 'eth0');
    expect(read.kind, 'readCache on podman\'s entry').toBe('v1');
    const info = (read as Extract<typeof read, { kind: 'v1' }>).info;
    expect(info.config.equals(conflistBytes)).toBe(true);
    expect({ ...info, config: null }).toEqual({ ...theirs, config: null }); // no netns key, everything else equal
    expect(info.netns).toBeUndefined();
    const atts = listAttachments(CNI_STATE, cid);
    expect(atts.map((a) => [a.network, a.containerId, a.ifName, a.netns]), 'listAttachments: a missing netns reads as ""').toEqual([[NET, cid, 'eth0', '']]);
    const list = loadConfList(s.netDir, NET);
    expect(list.bytes.equals(conflistBytes)).toBe(true);
    const cni = new CniConfig({ path: [s.plugins.dir], cacheDir: CNI_STATE, stderr: null });
    expect(cni.getCachedResult(list, { containerId: cid, ifName: 'eth0' }), 'getCachedResult (as prevResult for DEL/CHECK)').toEqual(theirs.result);
    // re-marshalled by our writer: byte-identical but for the capabilityArgs key order (see the header)
    const remarshalled = marshalCache(info);
    expect(capArgsText(remarshalled)).toBe(goMarshal(theirs.capabilityArgs));
    expect(withoutCapArgs(remarshalled)).toBe(withoutCapArgs(theirText));
    expect(JSON.parse(capArgsText(remarshalled))).toEqual(JSON.parse(capArgsText(theirText)));

    // --- libcni 1.1 reads an entry written by our writer: replace podman's entry with ours
    // (netns field included, a marker planted in the result's dns), then podman rm: every
    // plugin's DEL must get our result as prevResult
    const planted = { ...info, netns: c.netns, result: { ...info.result!, dns: { nameservers: [MARKER_NS] } } };
    writeCache(CNI_STATE, planted);
    expect(readFileSync(cacheFileOf(NET, cid), 'utf8')).toContain(`"networkName":"${NET}","netns":"${c.netns}","cniArgs"`);
    const mark1 = nowNs();
    const rm = podman(['rm', '-f', '-t', '0', cid], true);
    expect(rm.code, s.explain(`podman rm with our cache entry in place: ${rm.stderr}`)).toBe(0);
    const dels1 = delsSince(s, cid, mark1);
    expect(dels1.map((e) => e.plugin), s.explain('podman\'s DEL chain')).toEqual(DEL_ORDER);
    for (const e of dels1) {
      expect(e.code, s.explain(`${e.plugin} DEL`)).toBe(0);
      expect(JSON.parse(e.stdin).prevResult, `${e.plugin} DEL: prevResult is our cache entry's result, as libcni 1.1 read it`).toEqual(planted.result);
    }
    expectAttachmentGone(c, CNI_STATE, 'podman rm (our entry)');

    // --- the same attachment made by us: same list file, container id, ifname, args, capability args
    const ourCache = path.join(suite.base, 'cache', 'our-cache');
    ourAttachments.push({ netDir: s.netDir, pluginDir: s.plugins.dir, cacheDir: ourCache, cid });
    run('ip', ['netns', 'add', NETNS]);
    const cniArgs = theirs.cniArgs!.map(([k, v]) => `${k}=${v}`).join(';');
    const add = flaxCni(['add', NET, NETNS_PATH, '--container-id', cid, '--ifname', 'eth0', '--cache-dir', ourCache], s.netDir, s.plugins.dir,
      { CNI_ARGS: cniArgs, CAP_ARGS: JSON.stringify(theirs.capabilityArgs) });
    expect(add.code, s.explain(`flax cni add: ${add.stderr}`)).toBe(0);
    const ourFile = cacheFileOf(NET, cid, 'eth0', ourCache);
    const ourText = readFileSync(ourFile, 'utf8');
    const ours = JSON.parse(ourText) as CacheJson;
    const ourIp = ours.result.ips[0].address.split('/')[0];
    ips.push(ourIp);
    const ourVeth = ours.result.interfaces.find((i) => !i.sandbox && i.name !== BRIDGE)?.name ?? '';
    hostVeths.push(ourVeth);
    // the plugins got what podman's libcni gave them
    const ourAdds = s.trace().filter((e) => e.command === 'ADD' && e.env.CNI_NETNS === NETNS_PATH);
    const theirAdds = s.trace().filter((e) => e.command === 'ADD' && e.env.CNI_CONTAINERID === cid && e.env.CNI_NETNS === c.netns);
    expect(ourAdds.map((e) => e.plugin)).toEqual(theirAdds.map((e) => e.plugin));
    for (const [i, e] of ourAdds.entries()) {
      expect(e.env.CNI_ARGS, `${e.plugin} ADD: CNI_ARGS`).toBe(theirAdds[i].env.CNI_ARGS);
      expect(JSON.parse(e.stdin).runtimeConfig, `${e.plugin} ADD: runtimeConfig`).toEqual(JSON.parse(theirAdds[i].stdin).runtimeConfig);
    }

    // field by field
    expect(Object.keys(ours), 'top-level key order: libcni ≥ 1.2\'s (netns after networkName), else libcni 1.1\'s')
      .toEqual(['kind', 'containerId', 'config', 'ifName', 'networkName', 'netns', 'cniArgs', 'capabilityArgs', 'result']);
    expect(ours.kind).toBe(theirs.kind);
    expect(ours.containerId).toBe(theirs.containerId);
    expect(ours.config, 'config: base64 of the same bytes').toBe(theirs.config);
    expect(ours.ifName).toBe(theirs.ifName);
    expect(ours.networkName).toBe(theirs.networkName);
    expect(ours.netns).toBe(NETNS_PATH);
    expect(ours.cniArgs).toEqual(theirs.cniArgs);
    expect(ours.capabilityArgs, 'capabilityArgs: same values').toEqual(theirs.capabilityArgs);
    expect(capArgsText(ourText), 'capabilityArgs: keys sorted, as libcni writes JSON-born args (cnitool)').toBe(goMarshal(theirs.capabilityArgs));
    expect(keyShape(ours.result), 'result: key shape').toEqual(keyShape(theirs.result));
    expect(unsortedObjects(ours.result), 'result: keys sorted at every level (Go map)').toEqual([]);
    expect(unsortedObjects(theirs.result), 'podman\'s result: keys sorted at every level').toEqual([]);
    expect(ours.result.cniVersion).toBe(theirs.result.cniVersion);
    expect(ours.result.interfaces[0], 'the bridge (same link)').toEqual(theirs.result.interfaces[0]);
    expect(ours.result.interfaces.map((i) => i.name)).toEqual([BRIDGE, ourVeth, 'eth0']);
    expect(ours.result.interfaces[2].sandbox).toBe(NETNS_PATH);
    expect(ours.result.ips.map(({ address: _a, ...rest }) => rest)).toEqual(theirs.result.ips.map(({ address: _a, ...rest }) => rest));
    expect(ourIp).toMatch(/^10\.231\.179\.\d+$/);
    for (const k of Object.keys(theirs.result).filter((x) => !['interfaces', 'ips'].includes(x))) expect(ours.result[k], `result.${k}`).toEqual(theirs.result[k]);
    // byte for byte, once the values that legitimately differ are swapped for podman's
    const subst: Array<[string, string]> = [
      [`,"netns":${JSON.stringify(NETNS_PATH)}`, ''],
      [capArgsText(ourText), capArgsText(theirText)],
      [JSON.stringify(ours.result.ips[0].address), JSON.stringify(theirs.result.ips[0].address)],
      [JSON.stringify(ours.result.interfaces[1].mac), JSON.stringify(theirs.result.interfaces[1].mac)],
      [JSON.stringify(ourVeth), JSON.stringify(c.hostVeth)],
      [JSON.stringify(ours.result.interfaces[2].mac), JSON.stringify(theirs.result.interfaces[2].mac)],
      [JSON.stringify(NETNS_PATH), JSON.stringify(theirs.result.interfaces[2].sandbox)],
    ];
    let normalised = ourText;
    for (const [from, to] of subst) {
      expect(normalised.split(from).length - 1, `exactly one ${from} in our entry`).toBe(1);
      normalised = normalised.split(from).join(to);
    }
    if (process.env.FLAX_E2E_VERBOSE === '1') console.log(`podman's (libcni 1.1) cache entry:\n${theirText}\nours:\n${ourText}`);
    expect(normalised, 'our entry = podman\'s, but for the documented differences').toBe(theirText);
    expect((statSync(ourFile).mode & 0o777).toString(8)).toBe('600');
    expect((statSync(path.dirname(ourFile)).mode & 0o777).toString(8)).toBe('700');

    // and ours goes away through the chain as well
    const del = flaxCni(['del', NET, NETNS_PATH, '--container-id', cid, '--ifname', 'eth0', '--cache-dir', ourCache], s.netDir, s.plugins.dir,
      { CNI_ARGS: cniArgs, CAP_ARGS: JSON.stringify(theirs.capabilityArgs) });
    expect(del.code, s.explain(`flax cni del: ${del.stderr}`)).toBe(0);
    expectAttachmentGone({ cid, ip: ourIp, hostVeth: ourVeth }, ourCache, 'flax cni del of our attachment');
    run('ip', ['netns', 'del', NETNS]);
    expect(failedCalls(s.trace()), s.explain('a plugin call failed')).toEqual([]);
    tidy(cid);
  });

  for (const set of ['reference', 'ours'] as PluginSet[]) {
    it(`${set} plugins: \`flax cni del\` cleans an attachment that podman created; podman rm -f still succeeds`, () => {
      const s = scenario(`del-${set}`, set);
      const c = start(s, `flaxe2e-pl-${set}`);
      const { cid } = c;
      // there while it runs
      expect(reservations(NET)[c.ip], s.explain(`no reservation for ${c.ip}`)).toBe(`${cid}\r\neth0`);
      expect(linkNames()).toContain(c.hostVeth);
      expect(firewallMentions([cid]).length, 'masquerade/portmap rules name the container while it runs').toBeGreaterThan(0);

      // a runtime's DEL carries the attachment's CNI_ARGS and capability args (podman recomputes them from
      // the container; here they come from its cache entry): libcni hands DEL the caller's, never the cached
      // ones, and portmap's DEL does nothing without runtimeConfig.portMappings
      const argsEnv = { CNI_ARGS: c.cache.cniArgs!.map(([k, v]) => `${k}=${v}`).join(';'), CAP_ARGS: JSON.stringify(c.cache.capabilityArgs) };
      const mark = nowNs();
      const del = flaxCni(['del', NET, c.netns, '--container-id', cid, '--cache-dir', CNI_STATE], s.netDir, s.plugins.dir, argsEnv);
      expect(del.code, s.explain(`flax cni del: ${del.stderr}`)).toBe(0);
      const dels = delsSince(s, cid, mark);
      expect(dels.map((e) => e.plugin), s.explain('flax\'s DEL chain')).toEqual(DEL_ORDER);
      for (const e of dels) {
        expect(e.code, s.explain(`${e.plugin} DEL`)).toBe(0);
        expect([e.env.CNI_NETNS, e.env.CNI_IFNAME], `${e.plugin} DEL: netns, ifname`).toEqual([c.netns, 'eth0']);
        expect(JSON.parse(e.stdin).prevResult, `${e.plugin} DEL: prevResult is podman's cached result`).toEqual(c.cache.result);
      }
      expectAttachmentGone(c, CNI_STATE, 'flax cni del');
      const inside = run('nsenter', [`--net=${c.netns}`, 'ip', '-o', 'link']).stdout;
      expect(inside, 'eth0 gone from the container netns').not.toMatch(/\beth0[@:]/);

      // podman's own teardown: no cache entry any more, every plugin's DEL is idempotent
      const mark2 = nowNs();
      const rm = podman(['rm', '-f', '-t', '0', cid], true);
      expect(rm.code, s.explain(`podman rm -f after flax cni del: ${rm.stderr}`)).toBe(0);
      const dels2 = delsSince(s, cid, mark2);
      expect(dels2.map((e) => e.plugin), s.explain('podman\'s DEL chain after ours')).toEqual(DEL_ORDER);
      for (const e of dels2) expect(JSON.parse(e.stdin).prevResult, `${e.plugin}: no cached result left for podman`).toBeUndefined();
      expect(failedCalls(s.trace()), s.explain('a plugin call failed')).toEqual([]);
      expectAttachmentGone(c, CNI_STATE, 'podman rm -f');
      expect(existsSync(c.netns), 'netns left').toBe(false);
      tidy(cid);
    });
  }

  /** Between scenarios: network, bridge (CNI never deletes bridges), dataDir, shared firewall scaffolding. */
  function tidy(cid: string): void {
    podman(['network', 'rm', '-f', NET]);
    deleteLink(BRIDGE);
    suite.restoreFor([cid], ips);
  }
});

/** process.env without CNI_* (a stray CNI_ARGS / CAP_ARGS in the caller's env must not leak into flax). */
function cleanEnv(): NodeJS.ProcessEnv {
  const e = { ...process.env };
  for (const k of Object.keys(e)) if (k.startsWith('CNI_') || k === 'CAP_ARGS' || k === 'NETCONFPATH') delete e[k];
  return e;
}

/** The `"capabilityArgs":{…}` value's text in a compact cache entry. */
function capArgsText(entry: string): string {
  const from = entry.indexOf('"capabilityArgs":');
  const to = entry.indexOf(',"result":');
  if (from < 0 || to < from) throw new Error(`no capabilityArgs before result in ${entry}`);
  return entry.slice(from + '"capabilityArgs":'.length, to);
}

function withoutCapArgs(entry: string): string {
  return entry.split(capArgsText(entry)).join('<capabilityArgs>');
}

/** Paths of the objects whose keys are not in Go's map order (bytewise sorted). */
function unsortedObjects(v: unknown, at = '$'): string[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => unsortedObjects(x, `${at}[${i}]`));
  if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    const sorted = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const bad = keys.join() === sorted.join() ? [] : [`${at}: ${keys.join(',')}`];
    return [...bad, ...Object.entries(v).flatMap(([k, x]) => unsortedObjects(x, `${at}.${k}`))];
  }
  return [];
}
