/**
 * `flax gc` (issue 8.2, 8.6): after a node switched back to the reference
 * plugins, the reference's DEL leaves flax's nftables masquerade rule of
 * each pod flax created; the sweep removes those rules (and ownerless
 * host-local files) and keeps everything of a live attachment. Runs the
 * real executables inside a throwaway "node" netns.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestNetns, destroyTestNetns } from '../lib/netns';
import { DIST_BIN, REF_BIN, requireBuilt } from '../lib/cni';
import { netnsState, reservations } from '../lib/state';

const flax = path.join(DIST_BIN, 'flax');

function run(args: string[], env: Record<string, string>, netns: string) {
  const r = spawnSync('nsenter', [`--net=${netns}`, '--', flax, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH!, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('flax gc sweeps what the reference leaves after a switch back', () => {
  requireBuilt('flax', 'bridge', 'host-local', 'loopback');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-sweep-'));
  const [node, podA, podB] = createTestNetns(3);
  afterAll(() => {
    destroyTestNetns([podA, podB, node]);
    rmSync(tmp, { recursive: true, force: true });
  });
  const confDir = path.join(tmp, 'net.d');
  const dataDir = path.join(tmp, 'ipam');
  const cacheDir = path.join(tmp, 'cache');
  mkdirSync(confDir);
  writeFileSync(path.join(confDir, '10-sweepnet.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: 'sweepnet',
    plugins: [{ type: 'bridge', bridge: 'flaxsw0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.253.0.0/24' }]], dataDir } }],
  }));
  const env = (cniPath: string) => ({ NETCONFPATH: confDir, CNI_PATH: cniPath });
  const gc = (...extra: string[]) => run(['gc', '--cni-conf-dir', confDir, '--cache-dir', cacheDir, ...extra], env(DIST_BIN), node);

  it('removes the orphaned rule of a pod the reference deleted, keeps the live pod\'s', () => {
    for (const pod of [podA, podB]) {
      const r = run(['cni', 'add', 'sweepnet', pod, '--cache-dir', cacheDir], env(DIST_BIN), node);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(netnsState(node).masqRules).toHaveLength(2);
    // the node switches back (`flax tombstones` first, as `flax install --uninstall` does), then the reference plugins delete pod A
    const ts = run(['tombstones', '--netconf-path', confDir, '--cache-dir', cacheDir], env(DIST_BIN), node);
    expect(ts.code, ts.stderr).toBe(0);
    expect(ts.stdout).toMatch(/wrote 2 tombstone/);
    const del = run(['cni', 'del', 'sweepnet', podA, '--cache-dir', cacheDir], env(REF_BIN), node);
    expect(del.code, del.stdout + del.stderr).toBe(0);
    expect(reservations(dataDir, 'sweepnet')).toEqual(['10.253.0.3']);
    const left = netnsState(node).masqRules;
    expect(left).toHaveLength(2); // the reference left our rule for 10.253.0.2
    expect(left.some((r) => r.includes('10.253.0.2'))).toBe(true);

    const dry = gc('--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/masquerade\s+sweepnet\s+cnitool-[0-9a-f]{20}\s+-\s+-\s+10\.253\.0\.2\s+.*would remove/);
    expect(dry.stdout).not.toMatch(/10\.253\.0\.3/);
    expect(netnsState(node).masqRules).toHaveLength(2);

    const r = gc('--json');
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.findings).toEqual([expect.objectContaining({ kind: 'masquerade', network: 'sweepnet', address: '10.253.0.2', action: 'removed' })]);
    const after = netnsState(node).masqRules;
    expect(after).toHaveLength(1);
    expect(after[0]).toMatch(/10\.253\.0\.3/);
    // idempotent
    const again = gc();
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/nothing to remove/);
  });

  it('removes ownerless reservation files older than --min-age, keeps young ones', () => {
    const net = path.join(dataDir, 'sweepnet');
    const old = Date.now() / 1000 - 3600;
    writeFileSync(path.join(net, '10.253.0.77'), '');
    utimesSync(path.join(net, '10.253.0.77'), old, old);
    writeFileSync(path.join(net, '10.253.0.78'), '');
    expect(gc('--dry-run').stdout).toMatch(/reservation\s+sweepnet\s+-\s+-\s+-\s+10\.253\.0\.77\s+ownerless.*would remove/);
    expect(existsSync(path.join(net, '10.253.0.77'))).toBe(true);
    const r = gc();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/10\.253\.0\.78/);
    expect(reservations(dataDir, 'sweepnet').sort()).toEqual(['10.253.0.3', '10.253.0.78']);
    expect(netnsState(node).masqRules).toHaveLength(1);
  });
});
