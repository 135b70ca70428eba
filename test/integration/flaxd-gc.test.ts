/**
 * The sweeper inside flaxd (issue 13): one vxlan node running flaxd with
 * --gc-interval 1 and scratch CNI directories. Two pods are attached in
 * the node netns through `flax cni add` with kube-flannel's conflist
 * (flannel → bridge + host-local) reading the subnet.env this very agent
 * wrote; one pod's netns is then deleted with no DEL, as an OOM-killed
 * runtime leaves it. The agent's next sweep removes the dead attachment
 * (cache, flannel file, reservation, host veth) and counts it in
 * /metrics; the live pod keeps everything and still reaches its gateway.
 * Cache files are back-dated past the sweeper's 60 s minimum age.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestNetns, destroyTestNetns, execIn } from '../lib/netns';
import { DIST_BIN, requireBuilt } from '../lib/cni';
import { reservations } from '../lib/state';
import { Cluster, pingFrom, waitFor } from './flaxd-helpers';

const NET = 'cbr0';
const cl = new Cluster();
const pods: string[] = [];
let confDir = '', cacheDir = '', flDir = '', ipamDir = '';

const metric = (ns: string, name: string): number | undefined => {
  const out = execIn(ns, 'curl', ['-s', '-m', '2', 'http://127.0.0.1:9111/metrics'], { allowFail: true });
  const line = out.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
};

beforeAll(async () => {
  requireBuilt('flaxd', 'flax', 'flannel', 'bridge', 'host-local');
  await cl.create(1);
  const n = cl.nodes[0];
  [confDir, cacheDir, flDir, ipamDir] = ['net.d', 'cache', 'flannel', 'ipam'].map((d) => path.join(n.dir, d));
  mkdirSync(confDir);
  writeFileSync(path.join(confDir, '10-flannel.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: NET,
    plugins: [{ type: 'flannel', subnetFile: n.subnetFile, dataDir: flDir, delegate: { hairpinMode: true, isDefaultGateway: true }, ipam: { dataDir: ipamDir } }],
  }));
  const sandboxDir = path.join(n.dir, 'sandboxes');
  // --gc-sandbox-dir: the sweeper walks this root, never the machine's /run/flax/sandboxes
  cl.startAgent(n, ['--gc-interval', '1', '--gc-cni-conf-dir', confDir, '--gc-cache-dir', cacheDir, '--gc-cni-path', DIST_BIN, '--gc-sandbox-dir', sandboxDir,
    '--healthz-ip', '127.0.0.1', '--healthz-port', '9111']);
  await cl.waitReady(n);
  pods.push(...createTestNetns(2));
}, 60_000);
afterAll(async () => {
  await cl.destroy();
  destroyTestNetns(pods.filter((p) => existsSync(p)));
}, 60_000);

describe('flaxd --gc-interval: the sweeper in the agent', () => {
  it('sweeps a dead pod attached through the flannel conflist, keeps the live one', async () => {
    const n = cl.nodes[0];
    const ids: string[] = [];
    for (const p of pods) {
      const r = spawnSync('nsenter', [`--net=${n.ns}`, '--', path.join(DIST_BIN, 'flax'), 'cni', 'add', NET, p, '--cache-dir', cacheDir],
        { encoding: 'utf8', env: { PATH: process.env.PATH!, NETCONFPATH: confDir, CNI_PATH: DIST_BIN } });
      expect(r.status, r.stderr).toBe(0);
      ids.push(readdirSync(path.join(cacheDir, 'results')).map((f) => f.slice(NET.length + 1, -'-eth0'.length)).find((id) => !ids.includes(id))!);
    }
    const [deadId, liveId] = ids;
    const prefix = cl.leaseOf(n).prefix;
    expect(pingFrom(pods[1], `${prefix}.1`)).toBe(true);
    // young attachments are never touched, even dead ones: give the agent a few sweeps first
    await waitFor('two sweeps', () => (metric(n.ns, 'flaxd_sweep_runs_total') ?? 0) >= 2);
    expect(readdirSync(flDir).sort()).toEqual([...ids].sort());

    destroyTestNetns([pods[0]]);
    const old = new Date(Date.now() - 120_000);
    for (const f of readdirSync(path.join(cacheDir, 'results'))) utimesSync(path.join(cacheDir, 'results', f), old, old);

    // the sweep is done once the cached result goes too (the flannel plugin's DEL removes its file before that)
    await waitFor('dead attachment swept', () => readdirSync(flDir).length === 1 && readdirSync(path.join(cacheDir, 'results')).length === 1, 15_000);
    expect(readdirSync(flDir)).toEqual([liveId]);
    expect(readdirSync(path.join(cacheDir, 'results'))).toEqual([`${NET}-${liveId}-eth0`]);
    const held = reservations(ipamDir, NET);
    expect(held).toHaveLength(1);
    expect(execIn(n.ns, 'cat', [path.join(ipamDir, NET, held[0])]).startsWith(liveId)).toBe(true);
    expect(n.agent!.log()).toMatch(new RegExp(`sweeper: removed attachment ${NET}/${deadId}/eth0`));
    expect(n.agent!.log()).not.toContain(liveId);
    await waitFor('sweep metric', () => metric(n.ns, 'flaxd_sweep_items_total{kind="attachment"}') === 1);
    expect(metric(n.ns, 'flaxd_sweep_failures_total')).toBe(0);
    expect(metric(n.ns, 'flaxd_sweeper_blind')).toBe(0); // it sees the node's netns pins
    expect(pingFrom(pods[1], `${prefix}.1`)).toBe(true);
    expect(n.agent!.proc.exitCode).toBeNull();
  });

  it('a sweep that cannot read its directories is logged and counted; the agent runs on', async () => {
    const n = cl.nodes[0];
    const before = metric(n.ns, 'flaxd_sweep_failures_total')!;
    writeFileSync(path.join(confDir, '20-broken.conflist'), '{not json');
    await waitFor('failure counted', () => metric(n.ns, 'flaxd_sweep_failures_total')! > before, 10_000);
    await waitFor('the warning logged', () => /W\d{4} [^\]]*\] sweeper: .*20-broken\.conflist/.test(n.agent!.log()), 5000, 50); // the log may trail the metric
    expect(n.agent!.proc.exitCode).toBeNull();
    expect(execIn(n.ns, 'curl', ['-s', '-m', '2', 'http://127.0.0.1:9111/readyz'])).toBe('ok\n');
  });
});
