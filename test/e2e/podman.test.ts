// e2e suite: owned by the runtime-e2e engineer
/**
 * podman 4.3 (Debian 12, CNI backend, runc) driving flax's bridge,
 * host-local, loopback and portmap, with the reference firewall/tuning that
 * podman's generated chain also calls.
 *
 * Nothing global is configured: CONTAINERS_CONF points at a scratch
 * containers.conf (cni backend, scratch plugin dir and network config dir),
 * storage is --root/--runroot in a scratch dir (vfs driver), the image is a
 * busybox-static rootfs imported with `podman import`. What podman cannot
 * redirect lives in the root netns and /var/lib/cni (host-local dataDir and
 * libcni's cache) under dedicated names, and is removed in afterAll.
 *
 * The scenario runs once with the reference plugins (control: proves the
 * harness, gives the timing baseline) and once with ours; set
 * FLAX_E2E_SETS=ours to skip the control.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type PluginDir, type PluginSet, ROOT, chainSpan, failedCalls, formatTrace, makePluginDir, missingPrereq, readTrace, run, waitFor,
} from '../lib/e2e';
import { cacheFiles, deleteLink, firewallMentions, keyShape, linkNames, redact, reservations } from '../lib/host-state';
import { type PodmanNetwork, PodmanSuite } from '../lib/podman';

const NET = 'flaxe2e-pm';
const BRIDGE = 'flaxe2e-pm0';
const SUBNET = '10.231.177.0/24';
const GW = '10.231.177.1';
const HOST_PORT = 27877;
const CTR_PORT = 8080;
const IMAGE = 'localhost/flaxe2e-busybox:latest';
const FIXTURE = path.join(ROOT, 'test/fixtures/podman-cache-sample.json');
const SETS: PluginSet[] = (process.env.FLAX_E2E_SETS?.split(',') as PluginSet[] | undefined) ?? ['reference', 'ours'];

const skipReason = missingPrereq(['podman', 'runc', 'conmon', 'nft', 'iptables', 'ip', 'flock', 'busybox']);
if (skipReason) console.warn(`podman e2e skipped: ${skipReason}`);

interface RunRecord {
  set: PluginSet;
  cid: string;
  ip: string;
  cache?: Record<string, unknown>;
  add?: { ms: number; calls: string[] } | null;
  del?: { ms: number; calls: string[] } | null;
  versions?: string;
  runMs: number;
  rmMs: number;
}

describe.skipIf(!!skipReason)('podman 4.3 with the CNI backend', () => {
  const suite = new PodmanSuite({ tag: 'podman', net: NET, bridge: BRIDGE, image: IMAGE });
  const { cids, hostVeths, ips, podman } = suite;
  const records: RunRecord[] = [];

  beforeAll(() => suite.setUp(), 180_000);

  afterAll(() => suite.tearDown(undefined, (problems) => {
    // final verification: nothing of ours in the root netns
    const links = linkNames().filter((l) => l === BRIDGE || hostVeths.includes(l));
    if (links.length) problems.push(`links left: ${links.join(', ')}`);
    const rules = firewallMentions(cids);
    if (rules.length) problems.push(`firewall lines naming our containers left: ${rules.join(' | ')}`);
    for (const r of records) {
      console.log(`podman e2e [${r.set}]: podman run ${r.runMs.toFixed(0)} ms, rm ${r.rmMs.toFixed(0)} ms; `
        + `chain ADD ${r.add?.ms.toFixed(1)} ms (${r.add?.calls.join(', ')}), DEL ${r.del?.ms.toFixed(1)} ms (${r.del?.calls.join(', ')}); `
        + `VERSION probes: ${r.versions}`);
    }
  }), 180_000);

  for (const set of SETS) {
    it(`${set} plugins: run -p, address, gateway, port mapping, and rm -f leaves nothing`, async () => {
      // a previous set that failed half-way must not leave its container or network behind
      suite.reset();

      const { trace, explain }: PodmanNetwork = suite.createNetwork(set, set, SUBNET, GW);

      const name = `flaxe2e-${set}`;
      const r1 = podman(['run', '-d', '--name', name, '--network', NET, '--cap-add', 'NET_RAW', '-p', `${HOST_PORT}:${CTR_PORT}`,
        IMAGE, 'httpd', '-f', '-p', String(CTR_PORT), '-h', '/www'], true);
      if (r1.code !== 0) throw new Error(explain(`podman run failed (${r1.code}): ${r1.stderr}`));
      const cid = r1.stdout.trim().split('\n').pop()!;
      cids.push(cid);
      const rec: RunRecord = { set, cid, ip: '', runMs: r1.ms, rmMs: NaN };
      records.push(rec);

      // every VERSION probe and the ADD chain succeeded
      expect(failedCalls(trace()), explain('a plugin call failed')).toEqual([]);

      // address in the subnet, seen by podman and inside the container
      const nets = JSON.parse(podman(['inspect', '--format', '{{json .NetworkSettings.Networks}}', cid]).stdout);
      const ip: string = nets[NET]?.IPAddress;
      rec.ip = ip;
      ips.push(ip);
      expect(ip, explain('no address')).toMatch(/^10\.231\.177\.\d+$/);
      expect(nets[NET].Gateway).toBe(GW);
      const inside = podman(['exec', cid, 'ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']).stdout;
      expect(inside).toContain(`inet ${ip}/24`);
      // podman 4.3 brings lo up itself (it never calls a loopback plugin)
      const lo = podman(['exec', cid, 'ip', '-o', 'link', 'show', 'dev', 'lo']).stdout;
      expect(lo, 'lo up in the container').toMatch(/[<,]UP[,>]/);

      // gateway reachable
      const ping = podman(['exec', cid, 'ping', '-c', '1', '-W', '2', GW], true);
      expect(ping.code, explain(`ping ${GW} from the container: ${ping.stdout}${ping.stderr}`)).toBe(0);

      // the port mapping (portmap DNAT) reaches httpd; the gateway is a local address of the host
      const body = await waitFor('httpd through the port mapping', () => httpGetSync(`http://${GW}:${HOST_PORT}/`), 10_000, 200);
      expect(body).toBe('flax-e2e-ok\n');

      // host-local reservation, libcni cache, host veth, masquerade while it runs
      const resv = reservations(NET);
      expect(resv[ip], explain(`no reservation file for ${ip}`)).toBe(`${cid}\r\neth0`);
      const cache = cacheFiles(cid);
      expect(cache, 'podman writes libcni cache /var/lib/cni/results/<net>-<id>-<ifname>').toEqual([`/var/lib/cni/results/${NET}-${cid}-eth0`]);
      const raw = readFileSync(cache[0], 'utf8');
      // as libcni writes it: compact JSON, no trailing newline, file 0600 in a 0700 dir
      expect(raw.endsWith('}') && !raw.includes('\n'), 'compact JSON without newline').toBe(true);
      expect((statSync(cache[0]).mode & 0o777).toString(8)).toBe('600');
      expect((statSync(path.dirname(cache[0])).mode & 0o777).toString(8)).toBe('700');
      const cacheJson = JSON.parse(raw);
      rec.cache = cacheJson;
      const ifs: Array<{ name: string; mac: string; sandbox?: string }> = cacheJson.result.interfaces;
      const hostVeth = ifs.find((i) => !i.sandbox && i.name !== BRIDGE)?.name;
      const netnsPath = ifs.find((i) => i.sandbox)?.sandbox;
      expect(hostVeth, explain('cached result lacks the host veth')).toMatch(/^veth[0-9a-f]{8}$/);
      hostVeths.push(hostVeth!);
      expect(linkNames()).toContain(hostVeth);
      expect(ifs.map((i) => i.name)).toEqual([BRIDGE, hostVeth, 'eth0']);
      expect(firewallMentions([cid]).length, 'masquerade/portmap rules name the container while it runs').toBeGreaterThan(0);
      expect(firewallMentions([ip]).filter((l) => /masquerade|MASQUERADE|-j CNI-/.test(l)), explain(`no masquerade rule for ${ip} (ipMasq: true)`)).not.toEqual([]);

      // remove: DEL through the whole chain
      const r2 = podman(['rm', '-f', '-t', '0', cid], true);
      rec.rmMs = r2.ms;
      const t = trace();
      rec.add = chainSpan(t, 'ADD', cid);
      rec.del = chainSpan(t, 'DEL', cid);
      const vers = t.filter((e) => e.command === 'VERSION');
      rec.versions = `${vers.length} calls, ${vers.reduce((a, e) => a + e.ms, 0).toFixed(0)} ms total`;
      expect(r2.code, explain(`podman rm failed: ${r2.stderr}`)).toBe(0);
      expect(failedCalls(t), explain('a plugin call failed')).toEqual([]);
      const dels = t.filter((e) => e.command === 'DEL' && e.env.CNI_CONTAINERID === cid);
      expect(dels.map((e) => e.plugin)).toEqual(['tuning', 'firewall', 'portmap', 'bridge', 'host-local']);
      expect(dels.find((e) => e.plugin === 'bridge')!.env.CNI_NETNS).toBe(netnsPath);

      // nothing left
      expect(Object.entries(reservations(NET)).filter(([, v]) => v.startsWith(cid)), 'reservation left').toEqual([]);
      expect(cacheFiles(cid), 'libcni cache left').toEqual([]);
      expect(linkNames().filter((l) => l === hostVeth), 'host veth left').toEqual([]);
      expect(JSON.parse(run('ip', ['-j', 'link', 'show', 'master', BRIDGE]).stdout || '[]'), 'ports left on the bridge').toEqual([]);
      expect(firewallMentions([cid, ip]), 'firewall rules naming the container or its IP left').toEqual([]);
      if (netnsPath) expect(existsSync(netnsPath), 'netns left').toBe(false);

      // tidy for the next set: network, bridge (CNI never deletes bridges), dataDir, shared firewall scaffolding
      podman(['network', 'rm', '-f', NET]);
      deleteLink(BRIDGE);
      suite.restoreFor([cid], [ip]); // the next set may get the same IP: start it from a clean firewall
    });
  }

  it('podman\'s libcni cache file has the shape of test/fixtures/podman-cache-sample.json', () => {
    const withCache = records.filter((r) => r.cache);
    expect(withCache.length, 'no podman run captured a cache file').toBeGreaterThan(0);
    const ref = withCache.find((r) => r.set === 'reference') ?? withCache[0];
    const sample = sanitizeCache(ref.cache!, ref.cid);
    if (!existsSync(FIXTURE) || process.env.FLAX_E2E_UPDATE_FIXTURES === '1') {
      writeFileSync(FIXTURE, JSON.stringify(sample, null, 2) + '\n');
    }
    const fixture = JSON.parse(readFileSync(FIXTURE, 'utf8'));
    for (const r of withCache) {
      // key order as podman/libcni wrote it (top level, and the result's)
      expect(Object.keys(r.cache!), `${r.set}: cache top-level key order`).toEqual(Object.keys(fixture));
      expect(Object.keys(r.cache!.result as object), `${r.set}: cached result key order`).toEqual(Object.keys(fixture.result));
      expect(keyShape(sanitizeCache(r.cache!, r.cid)), `${r.set}: full key shape`).toEqual(keyShape(fixture));
    }
  });
});

/** The cache with ids, MACs, veth and netns names replaced. */
function sanitizeCache(c: Record<string, unknown>, cid: string): Record<string, unknown> {
  const result = c.result as { interfaces: Array<{ name: string; mac: string; sandbox?: string }> };
  const map: Record<string, string> = { [cid]: '<container-id>', [cid.slice(0, 12)]: '<short-id>' };
  for (const i of result.interfaces) {
    if (i.mac) map[i.mac] = `<mac-${i.name.startsWith('veth') ? 'host-veth' : i.name}>`;
    if (i.name.startsWith('veth')) map[i.name] = '<host-veth>';
    if (i.sandbox) map[i.sandbox] = '/run/netns/<netns>';
  }
  const out = redact(c, map);
  (out as Record<string, unknown>).cniArgs = (out.cniArgs as string[][]).map(([k, v]) => [k, k === 'K8S_POD_NAME' ? '<container-name>' : v]);
  return out;
}

/** GET via a child process (keeps the test synchronous-poll friendly); undefined on failure. */
function httpGetSync(url: string): string | undefined {
  const r = run(process.execPath, ['-e', `
    const http = require('http');
    const req = http.get(${JSON.stringify(url)}, { timeout: 2000 }, (res) => { let b = ''; res.on('data', (d) => b += d); res.on('end', () => { process.stdout.write(b); process.exit(res.statusCode === 200 ? 0 : 1); }); });
    req.on('timeout', () => { req.destroy(); process.exit(2); });
    req.on('error', () => process.exit(3));`], { allowFail: true, timeoutMs: 5000 });
  return r.code === 0 ? r.stdout : undefined;
}
