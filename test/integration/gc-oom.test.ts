/**
 * `flax gc` after a simulated node OOM (issue 13): 100 pods attached
 * through the library (loopback + bridge/host-local with ipMasq), some by
 * the reference plugins, some with /proc/<pid>/ns/net paths as ctr sends;
 * 60 "killed" with no DEL (pins removed, processes killed), 40 alive.
 * The sweep removes every trace of the 60 and nothing of the 40; a dry run
 * changes nothing; an ADD racing the sweep is untouched; then a simulated
 * reboot (every namespace gone, the cache and data dir kept) is swept too.
 * Everything runs inside a throwaway "node" netns.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestNetns, destroyTestNetns } from '../lib/netns';
import { DIST_BIN, REF_BIN, requireBuilt } from '../lib/cni';
import { netnsState, nftRuleset, ping, reservations } from '../lib/state';

const flax = path.join(DIST_BIN, 'flax');
const NET = 'oomnet';
const PODS = 100;
const KILL = 60;

interface Pod { id: string; netns: string; ip?: string; ref: boolean; proc?: ChildProcess }

function runIn(ns: string, args: string[], env: Record<string, string>) {
  const r = spawnSync('nsenter', [`--net=${ns}`, '--', flax, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH!, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
function runInAsync(ns: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('nsenter', [`--net=${ns}`, '--', flax, ...args], { env: { PATH: process.env.PATH!, ...env } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
const cid = (netns: string) => 'cnitool-' + createHash('sha512').update(netns).digest().subarray(0, 10).toString('hex');

/** The whole observable state, for "a dry run changes nothing". */
function snapshot(node: string, dataDir: string, cacheDir: string) {
  const files = (d: string) => { try { return readdirSync(d).sort().map((f) => [f, readFileSync(path.join(d, f), 'utf8')]); } catch { return []; } };
  return {
    res: files(path.join(dataDir, NET)), cache: files(path.join(cacheDir, 'results')),
    nft: JSON.stringify(nftRuleset(node).map((x) => x.rule ?? x.chain ?? x.table)), links: netnsState(node).links,
  };
}

describe('flax gc after a node OOM and a reboot', () => {
  requireBuilt('flax', 'bridge', 'host-local', 'loopback');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-oom-'));
  const confDir = path.join(tmp, 'net.d');
  const dataDir = path.join(tmp, 'ipam');
  const cacheDir = path.join(tmp, 'cache');
  const noLoopback = path.join(tmp, 'bin-no-loopback');
  let node = createTestNetns(1)[0];
  const pods: Pod[] = [];
  const extraNs: string[] = [];
  const env = (cniPath = DIST_BIN) => ({ NETCONFPATH: confDir, CNI_PATH: cniPath });
  const gc = (...extra: string[]) => runIn(node, ['gc', '--cni-conf-dir', confDir, '--cache-dir', cacheDir, '--cni-path', DIST_BIN, '--min-age', '0', ...extra], {});

  beforeAll(async () => {
    mkdirSync(confDir);
    mkdirSync(noLoopback);
    for (const p of ['bridge', 'host-local']) symlinkSync(path.join(DIST_BIN, p), path.join(noLoopback, p));
    // 101 addresses: 100 pods + the racer; new ADDs after the sweep must reuse freed ones
    writeFileSync(path.join(confDir, '10-oom.conflist'), JSON.stringify({
      cniVersion: '1.0.0', name: NET,
      plugins: [{ type: 'loopback' }, {
        type: 'bridge', bridge: 'flaxoom0', isGateway: true, ipMasq: true,
        ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.254.0.0/24', rangeStart: '10.254.0.2', rangeEnd: '10.254.0.102' }]] },
      }],
    }));
    const pins = createTestNetns(PODS - 10);
    for (let i = 0; i < PODS; i++) {
      let netns: string;
      let proc: ChildProcess | undefined;
      if (i < PODS - 10) netns = pins[i];
      else { // ctr-style: the pod netns is held by a process, named by /proc/<pid>/ns/net
        proc = spawn('unshare', ['-n', 'sleep', '600'], { stdio: 'ignore' });
        await new Promise((r) => setTimeout(r, 30));
        netns = `/proc/${proc.pid}/ns/net`;
      }
      pods.push({ id: cid(netns), netns, ref: i % 10 === 3, proc });
    }
    // attach 4 at a time; every 10th pod by the reference plugins
    for (let i = 0; i < pods.length; i += 4) {
      const batch = pods.slice(i, i + 4);
      const rs = await Promise.all(batch.map((p) => runInAsync(node, ['cni', 'add', NET, p.netns, '--cache-dir', cacheDir], env(p.ref ? REF_BIN : DIST_BIN))));
      rs.forEach((r, j) => {
        if (r.code !== 0) throw new Error(`ADD ${batch[j].netns}: ${r.stdout}${r.stderr}`);
        batch[j].ip = JSON.parse(r.stdout).ips[0].address.split('/')[0];
      });
    }
  }, 240_000);

  afterAll(() => {
    for (const p of pods) p.proc?.kill('SIGKILL');
    destroyTestNetns([...pods.filter((p) => !p.proc).map((p) => p.netns), ...extraNs, node]);
    rmSync(tmp, { recursive: true, force: true });
  });

  // killed: 54 pinned pods (every 10th by the reference) and 6 process-held ones
  const killed = () => [...pods.slice(0, KILL - 6), ...pods.slice(PODS - 10, PODS - 4)];
  const alive = () => pods.filter((p) => !killed().includes(p));

  it('sweeps the 60 dead pods completely and leaves the 40 live ones untouched', async () => {
    expect(reservations(dataDir, NET)).toHaveLength(PODS);
    for (const p of killed()) {
      if (p.proc) { p.proc.kill('SIGKILL'); await new Promise((r) => p.proc!.once('exit', r)); } else destroyTestNetns([p.netns]);
    }
    // the kernel destroys a dead namespace's veths asynchronously: wait for it
    for (let i = 0; i < 200 && netnsState(node).links.filter((l) => l.startsWith('veth')).length > alive().length; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    // a garbage cache file: reported, kept
    writeFileSync(path.join(cacheDir, 'results', `${NET}-garbage-eth0`), '{not json');

    const before = snapshot(node, dataDir, cacheDir);
    const dry = gc('--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`would sweep 0 sandbox\\(es\\), ${KILL} attachment\\(s\\)`));
    expect(snapshot(node, dataDir, cacheDir)).toEqual(before);

    // an ADD racing the sweep
    const [racer] = createTestNetns(1);
    extraNs.push(racer);
    const [sweep, add] = await Promise.all([
      runInAsync(node, ['gc', '--cni-conf-dir', confDir, '--cache-dir', cacheDir, '--cni-path', DIST_BIN, '--min-age', '0', '--json'], {}),
      runInAsync(node, ['cni', 'add', NET, racer, '--cache-dir', cacheDir], env()),
    ]);
    expect(add.code, add.stderr).toBe(0);
    expect(sweep.code, sweep.stderr).toBe(0);
    const rep = JSON.parse(sweep.stdout);
    const swept = rep.findings.filter((f: any) => f.kind === 'attachment');
    expect(swept.map((f: any) => f.containerId).sort()).toEqual(killed().map((p) => p.id).sort());
    expect(swept.every((f: any) => f.action === 'removed' && /^DEL loopback\+bridge$/.test(f.removed))).toBe(true);
    expect(rep.errors.some((e: string) => /garbage.*kept/.test(e))).toBe(true);

    const racerIp = JSON.parse(add.stdout).ips[0].address.split('/')[0];
    const want = [...alive().map((p) => p.ip!), racerIp].sort();
    expect(reservations(dataDir, NET).sort()).toEqual(want);
    const cached = readdirSync(path.join(cacheDir, 'results')).filter((f) => !f.includes('garbage'));
    expect(cached.sort()).toEqual([...alive().map((p) => p.id), cid(racer)].map((id) => `${NET}-${id}-eth0`).sort());
    const st = netnsState(node);
    expect(st.masqRules).toHaveLength(want.length - alive().filter((p) => p.ref).length); // the reference uses iptables
    for (const p of killed()) {
      expect(st.masqRules.some((r) => r.includes(`"${p.ip}"`)), p.ip).toBe(false);
      expect(st.iptCni.some((l) => l.includes(p.id)), p.id).toBe(false);
    }
    for (const p of alive().filter((x) => x.ref)) expect(st.iptCni.some((l) => l.includes(p.id))).toBe(true);
    expect(st.links.filter((l) => l.startsWith('veth'))).toHaveLength(want.length);
    // the live still work
    const live = alive();
    for (const p of [live[0], live[5], live[live.length - 1]]) expect(ping(p.netns, '10.254.0.1'), p.netns).toBe(true);
    expect(ping(live[0].netns, live[1].ip!)).toBe(true);

    // a second sweep finds nothing
    const again = gc();
    expect(again.stdout).toMatch(/swept 0 sandbox\(es\), 0 attachment\(s\), 0 orphaned rule\(s\), 0 ownerless/);

    // new ADDs reuse the freed addresses (the range holds exactly 100)
    const fresh = createTestNetns(5);
    extraNs.push(...fresh);
    const freed = new Set(killed().map((p) => p.ip));
    for (const ns of fresh) {
      const r = runIn(node, ['cni', 'add', NET, ns, '--cache-dir', cacheDir], env());
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(freed.has(JSON.parse(r.stdout).ips[0].address.split('/')[0])).toBe(true);
    }
  }, 240_000);

  it('a missing plugin binary: DEL fails, the fallback still cleans, the sweep goes on', () => {
    const victim = alive()[0];
    destroyTestNetns([victim.netns]);
    const r = runIn(node, ['gc', '--cni-conf-dir', confDir, '--cache-dir', cacheDir, '--cni-path', noLoopback, '--min-age', '0', '--json'], {});
    expect(r.code, r.stderr).toBe(0);
    const f = JSON.parse(r.stdout).findings.find((x: any) => x.containerId === victim.id);
    expect(f.removed).toMatch(/DEL failed .*loopback.*fallback: .*cache file removed/);
    expect(reservations(dataDir, NET)).not.toContain(victim.ip);
    expect(netnsState(node).masqRules.some((x) => x.includes(`"${victim.ip}"`))).toBe(false);
  });

  it('after a reboot (every namespace gone, /var/lib/cni kept) everything is swept', () => {
    for (const p of pods) p.proc?.kill('SIGKILL');
    destroyTestNetns([...alive().filter((p) => !p.proc).map((p) => p.netns), ...extraNs, node]);
    extraNs.length = 0;
    node = createTestNetns(1)[0];
    const r = gc();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/kept 0 live attachment/);
    expect(reservations(dataDir, NET)).toEqual([]);
    expect(readdirSync(path.join(cacheDir, 'results')).filter((f) => !f.includes('garbage'))).toEqual([]);
  });
});
