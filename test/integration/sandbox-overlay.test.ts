/**
 * `flax sandbox` on the flannel network (issue 14, "once the overlay
 * exists"): the overlay of `flax demo --keep --nodes 2` (an underlay, two
 * node netns with a flaxd each), one sandbox per node attached through
 * kube-flannel's conflist; each gets an address of its node's subnet,
 * reaches its gateway and the other node's sandbox over VXLAN; rm leaves
 * no reservation, flannel file, pin or cache file. Everything is removed
 * after, also on failure.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DIST_BIN } from '../lib/cni';

const flax = path.join(DIST_BIN, 'flax');
const ready = process.getuid?.() === 0 && ['flax', 'flaxd', 'flannel', 'portmap', 'bridge', 'host-local', 'nsexec', 'pause'].every((b) => existsSync(path.join(DIST_BIN, b)));
const mountsUnder = (dir: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m === dir || m?.startsWith(dir + '/'));

describe.skipIf(!ready)('flax sandbox on the flannel overlay', () => {
  const prefix = `flaxt-sbov-${process.pid}`;
  const scratch = path.join(os.tmpdir(), `${prefix}-scratch`);
  const sbRoot = `/run/flaxt-sbov-${process.pid}`;
  const mine = path.join(os.tmpdir(), `${prefix}-net.d`);
  const run = (node: number, args: string[]) => {
    const env = { PATH: process.env.PATH!, FLAX_SANDBOX_DIR: sbRoot, NETCONFPATH: path.join(mine, `n${node}`), CNI_PATH: DIST_BIN };
    const r = spawnSync('nsenter', [`--net=/run/netns/${prefix}-n${node}`, '--', flax, ...args], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  afterAll(() => {
    try {
      for (const [n, name] of [[1, 'ov1'], [2, 'ov2']] as const) run(n, ['sandbox', 'rm', name, '--force', '--timeout', '1s']);
    } finally {
      for (const m of mountsUnder(sbRoot).sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
      rmSync(sbRoot, { recursive: true, force: true });
      spawnSync(flax, ['demo', '--prefix', prefix, '--scratch', scratch, '--cleanup']);
      rmSync(mine, { recursive: true, force: true });
    }
  });

  it('a sandbox per node on flannel: node subnet address, gateway, the other node\'s sandbox; rm leaves nothing', () => {
    const up = spawnSync(flax, ['demo', '--prefix', prefix, '--scratch', scratch, '--nodes', '2', '--keep'], { encoding: 'utf8', timeout: 120_000 });
    expect(up.stdout, up.stderr).toContain('demo OK');
    const addrs: string[] = [];
    for (const n of [1, 2]) {
      const dir = path.join(scratch, `n${n}`);
      const conf = {
        name: 'cbr0', cniVersion: '0.3.1',
        plugins: [
          { type: 'flannel', subnetFile: path.join(dir, 'subnet.env'), dataDir: path.join(dir, 'flannel'), ipam: { dataDir: path.join(dir, 'ipam') }, delegate: { hairpinMode: true, isDefaultGateway: true } },
          { type: 'portmap', capabilities: { portMappings: true } },
        ],
      };
      mkdirSync(path.join(mine, `n${n}`), { recursive: true });
      writeFileSync(path.join(mine, `n${n}`, '10-flannel.conflist'), JSON.stringify(conf));
      const r = run(n, ['sandbox', 'run', `ov${n}`, '--net', 'cbr0', '--cache-dir', path.join(dir, 'cache')]);
      expect(r.code, r.stderr).toBe(0);
      const subnet = /FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1\/24/.exec(readFileSync(path.join(dir, 'subnet.env'), 'utf8'))![1];
      const info = JSON.parse(run(n, ['sandbox', 'inspect', `ov${n}`]).stdout);
      const addr = info.networks[0].addresses[0] as string;
      expect(addr.startsWith(`${subnet}.`), `${addr} in ${subnet}.0/24`).toBe(true);
      expect(run(n, ['sandbox', 'exec', `ov${n}`, '--', 'ping', '-c', '1', '-W', '2', `${subnet}.1`]).code).toBe(0);
      addrs.push(addr.split('/')[0]);
    }
    expect(run(1, ['sandbox', 'exec', 'ov1', '--', 'ping', '-c', '1', '-W', '2', addrs[1]]).code).toBe(0);
    expect(run(2, ['sandbox', 'exec', 'ov2', '--', 'ping', '-c', '1', '-W', '2', addrs[0]]).code).toBe(0);
    for (const n of [1, 2]) {
      expect(run(n, ['sandbox', 'rm', `ov${n}`]).code).toBe(0);
      const dir = path.join(scratch, `n${n}`);
      // only the demo's own pod is left on each node
      const mineOnly = (names: string[]) => names.filter((f) => f.includes(`flax-sandbox-ov${n}`));
      expect(mineOnly(readdirSync(path.join(dir, 'flannel')))).toEqual([]);
      const owners = readdirSync(path.join(dir, 'ipam', 'cbr0')).filter((f) => /^\d/.test(f)).map((f) => readFileSync(path.join(dir, 'ipam', 'cbr0', f), 'utf8'));
      expect(mineOnly(owners)).toEqual([]);
      expect(owners).toHaveLength(1);
      expect(mineOnly(readdirSync(path.join(dir, 'cache', 'results')))).toEqual([]);
    }
    expect(mountsUnder(sbRoot).filter((m) => m !== sbRoot)).toEqual([]);
  });
});
