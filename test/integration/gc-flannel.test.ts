/**
 * `flax gc` on flannel's conflist (flannel → bridge/host-local, then
 * portmap), issue 13: 10 pods with port mappings, 6 killed without DEL.
 * The sweep removes their flannel files, reservations, port-mapping rules
 * and cache files, and nothing of the 4 live ones; then an orphaned
 * port-mapping rule (no cache, no reservation) goes too. Inside a
 * throwaway "node" netns.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestNetns, destroyTestNetns } from '../lib/netns';
import { DIST_BIN, requireBuilt } from '../lib/cni';
import { netnsState, nftRuleset, reservations } from '../lib/state';

const flax = path.join(DIST_BIN, 'flax');
const NET = 'gcfl';

describe('flax gc on the flannel conflist', () => {
  requireBuilt('flax', 'flannel', 'portmap', 'bridge', 'host-local');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-gcfl-'));
  const confDir = path.join(tmp, 'net.d');
  const cacheDir = path.join(tmp, 'cache');
  const flDir = path.join(tmp, 'flannel');
  const ipamDir = path.join(tmp, 'ipam');
  const subnetFile = path.join(tmp, 'subnet.env');
  const [node] = createTestNetns(1);
  const pods = createTestNetns(10);
  afterAll(() => {
    destroyTestNetns([...pods, node]);
    rmSync(tmp, { recursive: true, force: true });
  });
  mkdirSync(confDir);
  writeFileSync(subnetFile, 'FLANNEL_NETWORK=10.246.0.0/16\nFLANNEL_SUBNET=10.246.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
  writeFileSync(path.join(confDir, '10-flannel.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: NET,
    plugins: [
      { type: 'flannel', subnetFile, dataDir: flDir, delegate: { bridge: 'flaxgcfl0', hairpinMode: true, isDefaultGateway: true }, ipam: { dataDir: ipamDir } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }));
  const run = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync('nsenter', [`--net=${node}`, '--', flax, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH!, NETCONFPATH: confDir, CNI_PATH: DIST_BIN, ...env } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const pmRules = () => nftRuleset(node).filter((x) => x.rule?.table === 'cni_hostport' && x.rule.comment).map((x) => x.rule.comment as string);

  it('sweeps dead pods\' flannel files, reservations and port mappings; keeps the live', async () => {
    const ids: string[] = [];
    for (const [i, p] of pods.entries()) {
      const r = run(['cni', 'add', NET, p, '--cache-dir', cacheDir], { CAP_ARGS: JSON.stringify({ portMappings: [{ hostPort: 18100 + i, containerPort: 80, protocol: 'tcp' }] }) });
      expect(r.code, r.stderr).toBe(0);
      ids.push(readdirSync(path.join(cacheDir, 'results')).map((f) => f.slice(NET.length + 1, -'-eth0'.length)).find((id) => !ids.includes(id))!);
    }
    expect(readdirSync(flDir)).toHaveLength(10);
    expect(pmRules().length).toBeGreaterThanOrEqual(10);
    const dead = pods.slice(0, 6);
    destroyTestNetns(dead);
    for (let i = 0; i < 200 && netnsState(node).links.filter((l) => l.startsWith('veth')).length > 4; i++) await new Promise((r) => setTimeout(r, 50));
    const deadIds = ids.slice(0, 6);
    const liveIds = ids.slice(6);

    const r = run(['gc', '--cni-conf-dir', confDir, '--cache-dir', cacheDir, '--cni-path', DIST_BIN, '--min-age', '0', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.findings.filter((f: any) => f.kind === 'attachment').map((f: any) => f.containerId).sort()).toEqual([...deadIds].sort());
    expect(rep.findings.every((f: any) => f.action === 'removed' && (f.kind !== 'attachment' || f.removed === 'DEL flannel+portmap'))).toBe(true);
    expect(readdirSync(flDir).sort()).toEqual([...liveIds].sort());
    expect(reservations(ipamDir, NET)).toHaveLength(4);
    const rules = pmRules();
    for (const id of deadIds) expect(rules.some((c) => c.includes(id)), id).toBe(false);
    for (const id of liveIds) expect(rules.some((c) => c.includes(id)), id).toBe(true);

    // an orphaned port-mapping rule: its container has no cache entry and no address
    const victim = liveIds[0];
    rmSync(path.join(cacheDir, 'results', `${NET}-${victim}-eth0`));
    for (const f of readdirSync(path.join(ipamDir, NET))) {
      if (/^\d/.test(f) && readFileSync(path.join(ipamDir, NET, f), 'utf8').startsWith(victim)) rmSync(path.join(ipamDir, NET, f));
    }
    const again = run(['gc', '--cni-conf-dir', confDir, '--cache-dir', cacheDir, '--cni-path', DIST_BIN, '--min-age', '0', '--json']);
    expect(again.code, again.stderr).toBe(0);
    const kinds = JSON.parse(again.stdout).findings.map((f: any) => [f.kind, f.containerId]);
    expect(kinds.length).toBeGreaterThan(0);
    expect(kinds.every(([k, id]: string[]) => (k === 'portmap' || k === 'masquerade') && id === victim)).toBe(true);
    expect(pmRules().some((c) => c.includes(victim))).toBe(false);
    for (const id of liveIds.slice(1)) expect(pmRules().some((c) => c.includes(id)), id).toBe(true);
  });

  it('an ADD in flight (flannel has written its file; no address, no cache yet) is kept while younger than --min-age, swept after', () => {
    // a network at 1.1.0 (the sweeper's GC phase needs it), sharing flannel's dataDir
    const conf11 = path.join(confDir, '20-flannel11.conflist');
    writeFileSync(conf11, JSON.stringify({
      cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'], name: `${NET}11`,
      plugins: [{ type: 'flannel', subnetFile, dataDir: flDir, delegate: { bridge: 'flaxgcfl1' }, ipam: { dataDir: ipamDir } }],
    }));
    const id = 'inflight0123456789abcdef';
    const file = path.join(flDir, id);
    writeFileSync(file, '{"cniVersion":"1.0.0","name":"gcfl","type":"bridge"}');
    const aged = (s: number) => { const t = new Date(Date.now() - s * 1000); utimesSync(file, t, t); };
    aged(10); // older than the flannel plugin's own 5 s GC grace, younger than the sweeper's minimum age
    const gc = () => run(['gc', '--cni-conf-dir', confDir, '--cache-dir', cacheDir, '--cni-path', DIST_BIN, '--min-age', '60', '--json']);
    const r = gc();
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(file)).toBe(true);
    aged(120);
    const again = gc();
    expect(again.code, again.stderr).toBe(0);
    expect(existsSync(file)).toBe(false);
    rmSync(conf11);
  });
});
