/**
 * `flax gc` blind to the node's netns pins (issue 21.1): run where the
 * node's /run/netns is not visible — here a private mount namespace whose
 * /run/netns is an empty tmpfs, as inside a container that does not mount
 * the host's pin directories — every netns path looks gone. A live pod with
 * a bridge attachment (its host veth alive) and a loopback-only one (no
 * host interface: only its netns path tells) must both be kept, and the
 * report must say the view is blind; once the pod's netns is really gone
 * (its veth with it), the same blind sweep removes both. The machine's own
 * /run/netns is never changed: the tmpfs lives in the sweep's mount ns only.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestNetns, destroyTestNetns } from '../lib/netns';
import { DIST_BIN, requireBuilt } from '../lib/cni';
import { netnsState, reservations } from '../lib/state';

const flax = path.join(DIST_BIN, 'flax');

describe('flax gc where the node\'s netns pins are not visible', () => {
  requireBuilt('flax', 'bridge', 'host-local', 'loopback');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-blind-'));
  const [node, pod] = createTestNetns(2);
  afterAll(() => {
    destroyTestNetns([pod, node].filter((p) => existsSync(p)));
    rmSync(tmp, { recursive: true, force: true });
  });
  const confDir = path.join(tmp, 'net.d');
  const dataDir = path.join(tmp, 'ipam');
  const cacheDir = path.join(tmp, 'cache');
  const sandboxDir = path.join(tmp, 'sandboxes');
  mkdirSync(confDir);
  mkdirSync(sandboxDir);
  writeFileSync(path.join(confDir, '10-blindbr.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: 'blindbr',
    plugins: [{ type: 'bridge', bridge: 'flaxbl0', isGateway: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.253.7.0/24' }]], dataDir } }],
  }));
  writeFileSync(path.join(confDir, '20-blindlo.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'blindlo', plugins: [{ type: 'loopback' }] }));
  const env = { PATH: process.env.PATH!, NETCONFPATH: confDir, CNI_PATH: DIST_BIN, FLAX_SANDBOX_DIR: sandboxDir };
  const inNode = (args: string[]) => spawnSync('nsenter', [`--net=${node}`, '--', flax, ...args], { encoding: 'utf8', env });
  /** `flax gc` in the node netns and a private mount ns whose /run/netns is an empty tmpfs */
  const blindGc = (...extra: string[]) => spawnSync('nsenter', [`--net=${node}`, '--', 'unshare', '--mount', '--propagation', 'private', '--',
    'sh', '-c', 'mount -t tmpfs flaxt-blind /run/netns && [ -z "$(ls -A /run/netns)" ] && exec "$@"', 'sh',
    flax, 'gc', '--cni-conf-dir', confDir, '--cache-dir', cacheDir, '--cni-path', DIST_BIN, '--min-age', '0', ...extra], { encoding: 'utf8', env });
  const cached = () => readdirSync(path.join(cacheDir, 'results')).sort();

  it('keeps a live pod\'s bridge and loopback-only attachments, says the view is blind; sweeps both once the pod is gone', async () => {
    for (const net of ['blindbr', 'blindlo']) {
      const r = inNode(['cni', 'add', net, pod, '--cache-dir', cacheDir]);
      expect(r.status, r.stderr).toBe(0);
    }
    expect(cached()).toHaveLength(2);
    const veth = netnsState(node).links.filter((l) => l.startsWith('veth'));
    expect(veth).toHaveLength(1);

    const r = blindGc('--json');
    expect(r.status, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.findings.filter((f: any) => f.kind === 'attachment')).toEqual([]);
    expect(rep.kept.filter((f: any) => f.kind === 'attachment').map((f: any) => f.network).sort()).toEqual(['blindbr', 'blindlo']);
    expect(rep.blind?.reason).toContain(`host interface ${veth[0]} of blindbr/`);
    expect(rep.blind?.reason).toContain(`netns ${pod} is missing`);
    expect(rep.blind?.kept).toBe(1); // the loopback-only one: its death rested on the netns path alone
    expect(rep.kept.find((f: any) => f.network === 'blindlo').reason).toMatch(/cannot see the node's netns pins/);
    expect(cached()).toHaveLength(2);
    expect(reservations(dataDir, 'blindbr')).toHaveLength(1);

    // the view is blind whichever networks are swept
    const lo = blindGc('--network', 'blindlo', '--json');
    expect(lo.status, lo.stderr).toBe(0);
    expect(JSON.parse(lo.stdout)).toMatchObject({ findings: [], blind: { kept: 1 } });

    const text = blindGc();
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^blind: this sweeper cannot see the node's netns pins \(.*\); kept 1 attachment\(s\) whose death rests on a missing netns path$/m);
    expect(cached()).toHaveLength(2);

    // the pod really dies (no DEL): its veth goes with its netns
    destroyTestNetns([pod]);
    for (let i = 0; i < 500 && netnsState(node).links.some((l) => l.startsWith('veth')); i++) await new Promise((res) => setTimeout(res, 20));
    expect(netnsState(node).links.filter((l) => l.startsWith('veth'))).toEqual([]);
    const swept = blindGc('--json');
    expect(swept.status, swept.stderr).toBe(0);
    const after = JSON.parse(swept.stdout);
    expect(after.blind).toBeUndefined();
    expect(after.findings.filter((f: any) => f.kind === 'attachment').map((f: any) => [f.network, f.action]).sort())
      .toEqual([['blindbr', 'removed'], ['blindlo', 'removed']]);
    expect(existsSync(path.join(cacheDir, 'results')) ? cached() : []).toEqual([]);
    expect(reservations(dataDir, 'blindbr')).toEqual([]);
  });

  it('finds no network configuration at all: sweeps nothing, and says why', () => {
    const empty = path.join(tmp, 'empty.d');
    mkdirSync(empty);
    // a dead attachment it would otherwise remove
    const [gone] = createTestNetns(1);
    const add = inNode(['cni', 'add', 'blindlo', gone, '--cache-dir', cacheDir]);
    expect(add.status, add.stderr).toBe(0);
    destroyTestNetns([gone]);
    for (const dir of [empty, path.join(tmp, 'absent.d')]) {
      const r = inNode(['gc', '--cni-conf-dir', dir, '--cache-dir', cacheDir, '--cni-path', DIST_BIN, '--min-age', '0', '--json']);
      expect(r.status, r.stderr).toBe(0);
      const rep = JSON.parse(r.stdout);
      expect(rep.skipped).toBe(`no network configuration in ${dir}: nothing swept`);
      expect(rep.findings).toEqual([]);
      const t = inNode(['gc', '--cni-conf-dir', dir, '--cache-dir', cacheDir, '--cni-path', DIST_BIN, '--min-age', '0']);
      expect(t.status, t.stderr).toBe(0);
      expect(t.stdout).toContain(`no network configuration in ${dir}: nothing swept`);
    }
    expect(cached()).toEqual([expect.stringMatching(/^blindlo-/)]);
    // with its configuration it is swept
    const r = inNode(['gc', '--cni-conf-dir', confDir, '--cache-dir', cacheDir, '--cni-path', DIST_BIN, '--min-age', '0', '--json']);
    expect(JSON.parse(r.stdout).findings.map((f: any) => [f.kind, f.network, f.action])).toEqual([['attachment', 'blindlo', 'removed']]);
    expect(cached()).toEqual([]);
  });
});
