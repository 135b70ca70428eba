/**
 * `flax gc` and `flax sandbox` (issues 13, 14): a sandbox whose pause was
 * SIGKILLed (no `rm`) is found dead and cleaned by the sweep — its network
 * DELeted (address, veth, masquerade, cache), its pins and state removed —
 * while a live sandbox is kept. Inside a throwaway "node" netns; the
 * sandbox root is a scratch dir (FLAX_SANDBOX_DIR).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestNetns, destroyTestNetns } from '../lib/netns';
import { DIST_BIN } from '../lib/cni';
import { netnsState, reservations } from '../lib/state';

const flax = path.join(DIST_BIN, 'flax');
const ready = process.getuid?.() === 0 && ['flax', 'nsexec', 'pause', 'bridge', 'loopback', 'host-local'].every((b) => existsSync(path.join(DIST_BIN, b)));

describe.skipIf(!ready)('flax gc sweeps dead sandboxes', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-gcsb-'));
  const sbRoot = `/run/flaxt-gcsb-${process.pid}`;
  const confDir = path.join(tmp, 'net.d');
  const cacheDir = path.join(tmp, 'cache');
  const dataDir = path.join(tmp, 'ipam');
  const [node] = createTestNetns(1);
  mkdirSync(confDir, { recursive: true });
  writeFileSync(path.join(confDir, '10-gcsb.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: 'gcsb',
    plugins: [{ type: 'loopback' }, { type: 'bridge', bridge: 'flaxgcsb0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.254.9.0/24' }]], dataDir } }],
  }));
  const env = { PATH: process.env.PATH!, FLAX_SANDBOX_DIR: sbRoot, NETCONFPATH: confDir, CNI_PATH: DIST_BIN };
  const run = (args: string[]) => {
    const r = spawnSync('nsenter', [`--net=${node}`, '--', flax, ...args], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  afterAll(() => {
    try {
      for (const n of ['alive', 'dead']) run(['sandbox', 'rm', n, '--force', '--timeout', '1s']);
    } finally {
      // the sandbox root is a shared mount point (as /run/netns): unmount what is left, then it
      const mounts = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m === sbRoot || m?.startsWith(sbRoot + '/'));
      for (const m of mounts().sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
      for (let i = 0; i < 5 && mounts().length; i++) spawnSync('umount', ['-l', sbRoot]);
      rmSync(sbRoot, { recursive: true, force: true });
      destroyTestNetns([node]);
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('a sandbox whose pause was SIGKILLed is removed with its network; a live one is kept', async () => {
    for (const n of ['alive', 'dead']) {
      const r = run(['sandbox', 'run', n, '--net', 'gcsb', '--cache-dir', cacheDir]);
      expect(r.code, r.stderr).toBe(0);
    }
    const state = JSON.parse(readFileSync(path.join(sbRoot, 'dead', 'state.json'), 'utf8'));
    process.kill(state.pause.pid, 'SIGKILL');
    for (let i = 0; i < 100 && existsSync(`/proc/${state.pause.pid}`) && !/\) [ZX] /.test(readFileSync(`/proc/${state.pause.pid}/stat`, 'utf8')); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(reservations(dataDir, 'gcsb')).toHaveLength(2);
    const gc = (...x: string[]) => run(['gc', '--cni-conf-dir', confDir, '--cache-dir', cacheDir, '--cni-path', DIST_BIN, '--min-age', '0', ...x]);
    // --sandbox-dir (shown in --help) is the only root walked: another one's dead sandbox is not touched
    expect(run(['gc', '--help']).stdout).toMatch(/^\s+--sandbox-dir\s/m);
    const elsewhere = path.join(tmp, 'other-sandboxes');
    mkdirSync(elsewhere);
    const other = gc('--sandbox-dir', elsewhere, '--json');
    expect(other.code, other.stderr).toBe(0);
    expect(JSON.parse(other.stdout).findings.filter((f: any) => f.kind === 'sandbox')).toEqual([]);
    expect(existsSync(path.join(sbRoot, 'dead'))).toBe(true);
    // FLAX_SANDBOX_DIR still names the root when --sandbox-dir is not given
    const dry = gc('--dry-run');
    expect(dry.stdout).toMatch(/sandbox\s+gcsb\s+flax-sandbox-dead\s.*pause \(pid \d+\) is gone.*would remove/);
    expect(existsSync(path.join(sbRoot, 'dead'))).toBe(true);
    // and --sandbox-dir wins over it
    const r = spawnSync('nsenter', [`--net=${node}`, '--', flax, 'gc', '--cni-conf-dir', confDir, '--cache-dir', cacheDir, '--cni-path', DIST_BIN, '--min-age', '0', '--json', '--sandbox-dir', sbRoot],
      { encoding: 'utf8', env: { ...env, FLAX_SANDBOX_DIR: elsewhere } });
    expect(r.status, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.findings.map((f: any) => [f.kind, f.containerId, f.action])).toEqual([['sandbox', 'flax-sandbox-dead', 'removed']]);
    expect(rep.kept.some((f: any) => f.kind === 'sandbox' && f.containerId === 'flax-sandbox-alive')).toBe(true);
    expect(existsSync(path.join(sbRoot, 'dead'))).toBe(false);
    expect(existsSync(path.join(sbRoot, 'alive'))).toBe(true);
    expect(reservations(dataDir, 'gcsb')).toHaveLength(1);
    expect(readdirSync(path.join(cacheDir, 'results'))).toEqual(['gcsb-flax-sandbox-alive-eth0']);
    expect(netnsState(node).masqRules).toHaveLength(1);
    expect(netnsState(node).links.filter((l) => l.startsWith('veth'))).toHaveLength(1);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(`${sbRoot}/dead/`);
  });
});
