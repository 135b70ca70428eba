/**
 * `flax install` (the packaged flax, dist/pkg/flax) into scratch dirs:
 * fresh, idempotent re-run, refusal to overwrite foreign files (and --force
 * keeping them for --uninstall to restore), --uninstall removing exactly
 * what was installed, and upgrades while a loop of CNI calls through the
 * installed symlinks runs in a throwaway netns and never fails.
 */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensurePackage, PKG, ROOT } from '../lib/pkg';
import { createTestNetns, destroyTestNetns, withTestNetns } from '../lib/netns';
import { cni, ours, theirs } from '../lib/cni';
import { netnsState } from '../lib/state';
import { iptablesChainName } from '../../plugins/pkg/nft/masq';

const EXES = ['bridge', 'flannel', 'flax', 'host-local', 'loopback', 'portmap'];
const CLIENTS = ['bridge', 'flannel', 'host-local', 'loopback', 'portmap'];
const scratch: string[] = [];
afterEach(() => { while (scratch.length) rmSync(scratch.pop()!, { recursive: true, force: true }); });
function dirs() {
  const d = mkdtempSync(path.join(tmpdir(), 'flax-install-'));
  scratch.push(d);
  return { d, bin: path.join(d, 'bin'), conf: path.join(d, 'net.d') };
}
/** --uninstall writes iptables tombstones in its netns: it runs in a throwaway one (`ns`, default the file's) */
let uninstallNs = '';
function flax(args: string[], from = PKG, ns = uninstallNs) {
  const argv = [path.join(from, 'flax'), 'install', ...args, ...(args.includes('--uninstall') ? [] : ['--from', from])];
  const r = args.includes('--uninstall') ? spawnSync('nsenter', [`--net=${ns}`, '--', ...argv], { encoding: 'utf8' }) : spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
/** Every path under dir with what it is (symlink target, file content hash-free size+head) — a tree snapshot. */
function tree(dir: string): Record<string, string> {
  const o: Record<string, string> = {};
  if (!existsSync(dir)) return o;
  for (const e of readdirSync(dir, { recursive: true }) as string[]) {
    const p = path.join(dir, e);
    const st = lstatSync(p);
    o[e] = st.isSymbolicLink() ? `-> ${readlinkSync(p)}` : st.isDirectory() ? 'dir' : `${st.size}:${st.ino}:${readFileSync(p).subarray(0, 64).toString('hex')}`;
  }
  return o;
}

beforeAll(async () => {
  await ensurePackage();
  [uninstallNs] = createTestNetns(1);
}, 180_000);
afterAll(() => destroyTestNetns([uninstallNs]));

describe('flax install', () => {
  it('fresh: symlinks to one versioned binary, the conflist, a manifest; a re-run changes nothing', () => {
    const { bin, conf } = dirs();
    const r = flax(['--cni-bin-dir', bin, '--cni-conf-dir', conf, '--network', 'bridge']);
    expect(r.code, r.err).toBe(0);
    const m = JSON.parse(readFileSync(path.join(bin, '.flax/install.json'), 'utf8'));
    for (const e of EXES) {
      // the plugins are the CNI server's static client; the CLI the multi-call binary
      const target = `.flax/${m.current}/${CLIENTS.includes(e) ? 'cniclient' : 'flax'}`;
      expect(readlinkSync(path.join(bin, e)), e).toBe(target);
      expect(r.out).toContain(`linked ${path.join(bin, e)} -> ${target}`);
    }
    expect(readdirSync(path.join(bin, '.flax', m.current)).sort()).toEqual(['cni-worker.js', 'cniclient', 'flax', 'flax-deps.js', 'flax.node', 'netlink.node', 'nsexec', 'pause']);
    expect(readFileSync(path.join(bin, '.flax', m.current, 'flax')).equals(readFileSync(path.join(PKG, 'flax')))).toBe(true);
    // the conflist is flax's bridge network, as conf/ ships it
    expect(JSON.parse(readFileSync(path.join(conf, '10-flax-bridge.conflist'), 'utf8'))).toEqual(JSON.parse(readFileSync(path.join(ROOT, 'conf/10-flax-bridge.conflist'), 'utf8')));
    expect(readdirSync(conf)).toEqual(['10-flax-bridge.conflist']);
    // the installed names run (the plugin answers to its own name)
    const v = spawnSync(path.join(bin, 'host-local'), [], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
    expect(v.stderr).toMatch(/^CNI host-local plugin \(flax\)/);

    const before = tree(path.dirname(bin));
    const again = flax(['--cni-bin-dir', bin, '--cni-conf-dir', conf, '--network', 'bridge']);
    expect(again.code, again.err).toBe(0);
    expect(again.out.trim().split('\n').every((l) => l.startsWith('flax install: unchanged '))).toBe(true);
    expect(tree(path.dirname(bin))).toEqual(before);
  });

  it('the installed plugins work without flaxd (the package\'s flax as the plugin) and are served by the installed flaxd --no-overlay when it runs: same bytes', async () => {
    const { d, bin, conf } = dirs();
    expect(flax(['--cni-bin-dir', bin, '--cni-conf-dir', conf, '--network', 'bridge']).code).toBe(0);
    const sock = path.join(d, 'cni.sock');
    await withTestNetns(1, async ([ns]) => {
      const lo = (verb: string, socket: string) => spawnSync(path.join(bin, 'loopback'), [], {
        input: JSON.stringify({ cniVersion: '1.0.0', name: 'lo', type: 'loopback' }), encoding: 'utf8',
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: verb, CNI_CONTAINERID: 'c1', CNI_NETNS: ns, CNI_IFNAME: 'lo', CNI_PATH: bin, FLAX_CNI_SOCKET: socket },
      });
      const alone = lo('ADD', sock); // no server on it yet
      expect(alone.status, alone.stdout + alone.stderr).toBe(0);
      expect(JSON.parse(alone.stdout).interfaces[0].name).toBe('lo');
      const srv = spawn(path.join(bin, 'flaxd'), ['--no-overlay', '--cni-socket', sock, '--gc-interval', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      srv.stderr!.on('data', (c) => { log += c; });
      const exited = new Promise((r) => srv.on('exit', r));
      try {
        for (let t = 0; t < 100 && !/ running$/m.test(log); t++) await new Promise((r) => setTimeout(r, 100));
        expect(log).toContain(`cni server: listening on ${sock}`);
        const served = lo('ADD', sock);
        expect({ code: served.status, out: served.stdout, err: served.stderr }).toEqual({ code: alone.status, out: alone.stdout, err: alone.stderr });
        const st = spawnSync(path.join(bin, 'flax'), ['status', '--cache-dir', d], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', NETCONFPATH: conf, FLAX_CNI_SOCKET: sock } });
        expect(st.stdout).toMatch(new RegExp(`served by flaxd \\(pid ${srv.pid}, .*\\): 1 calls answered`));
      } finally {
        srv.kill('SIGTERM');
        await exited;
      }
      expect(log).toMatch(/cni server: stopped; served 1, failed 0/);
    });
  }, 60_000);

  it('refuses to overwrite files it did not write, changing nothing; --force keeps them and --uninstall puts them back', () => {
    const { d, bin, conf } = dirs();
    cpSync('/work/main/conf', conf, { filter: () => false });
    spawnSync('mkdir', ['-p', bin, conf]);
    writeFileSync(path.join(bin, 'bridge'), '#!/bin/sh\necho reference bridge\n', { mode: 0o755 });
    writeFileSync(path.join(bin, 'dhcp'), 'someone else\'s plugin\n', { mode: 0o755 });
    writeFileSync(path.join(conf, '10-flannel.conflist'), '{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel"}]}\n');
    const before = tree(d);

    const r = flax(['--cni-bin-dir', bin, '--cni-conf-dir', conf, '--network', 'flannel']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('refusing to overwrite');
    expect(r.err).toContain(path.join(bin, 'bridge'));
    expect(r.err).toContain(path.join(conf, '10-flannel.conflist'));
    expect(r.out).toBe('');
    // only the (empty) lock of the state dir may have appeared
    const after = tree(d);
    for (const k of Object.keys(after)) if (!(k in before)) expect(k).toMatch(/^bin\/\.flax(\/lock)?$/);
    for (const [k, v] of Object.entries(before)) expect(after[k], k).toBe(v);

    const f = flax(['--cni-bin-dir', bin, '--cni-conf-dir', conf, '--network', 'flannel', '--force']);
    expect(f.code, f.err).toBe(0);
    expect(f.out).toContain(`replaced ${path.join(bin, 'bridge')}`);
    expect(readFileSync(path.join(bin, '.bridge.flax-replaced'), 'utf8')).toContain('reference bridge');
    expect(JSON.parse(readFileSync(path.join(conf, '10-flannel.conflist'), 'utf8')).plugins.map((p: { type: string }) => p.type)).toEqual(['flannel', 'portmap']);
    // now ours: a second install needs no --force
    expect(flax(['--cni-bin-dir', bin, '--cni-conf-dir', conf, '--network', 'flannel']).code).toBe(0);

    const u = flax(['--uninstall', '--cni-bin-dir', bin]);
    expect(u.code, u.err).toBe(0);
    expect(u.out).toContain(`restored ${path.join(bin, 'bridge')}`);
    expect(u.out).toContain(`restored ${path.join(conf, '10-flannel.conflist')}`);
    expect(tree(d)).toEqual(before);
  });

  it('--uninstall removes exactly what it installed: other files stay, a file changed since is kept', () => {
    const { d, bin, conf } = dirs();
    spawnSync('mkdir', ['-p', bin, conf]);
    writeFileSync(path.join(bin, 'dhcp'), 'x', { mode: 0o755 });
    writeFileSync(path.join(conf, '99-other.conflist'), '{}');
    const before = tree(d);
    const conflist = path.join(d, 'mine.conflist');
    writeFileSync(conflist, JSON.stringify({ cniVersion: '1.0.0', name: 'mine', plugins: [{ type: 'loopback' }] }));
    expect(flax(['--cni-bin-dir', bin, '--cni-conf-dir', conf, '--conflist', conflist]).code).toBe(0);
    expect(existsSync(path.join(conf, 'mine.conflist'))).toBe(true);
    rmSync(conflist);

    const u = flax(['--uninstall', '--cni-bin-dir', bin]);
    expect(u.code, u.err).toBe(0);
    expect(tree(d)).toEqual(before);
    expect(flax(['--uninstall', '--cni-bin-dir', bin]).out).toContain('nothing to uninstall');

    // a conflist edited after install is not flax's to remove
    expect(flax(['--cni-bin-dir', bin, '--cni-conf-dir', conf, '--network', 'bridge']).code).toBe(0);
    writeFileSync(path.join(conf, '10-flax-bridge.conflist'), '{"edited":true}\n');
    const u2 = flax(['--uninstall', '--cni-bin-dir', bin]);
    expect(u2.out).toContain(`kept ${path.join(conf, '10-flax-bridge.conflist')} (changed since flax installed it)`);
    expect(readFileSync(path.join(conf, '10-flax-bridge.conflist'), 'utf8')).toBe('{"edited":true}\n');
    expect(existsSync(path.join(bin, 'bridge'))).toBe(false);
  });

  it('--uninstall first writes the iptables tombstone of a live pod (in its netns), so that the reference plugins\' DEL succeeds', async () => {
    const { d, bin, conf } = dirs();
    expect(flax(['--cni-bin-dir', bin, '--cni-conf-dir', conf, '--network', 'bridge']).code).toBe(0);
    await withTestNetns(2, ([host, pod]) => {
      const net = { cniVersion: '1.0.0', name: 'uninst', type: 'bridge', bridge: 'flaxbr9', isGateway: true, ipMasq: true,
        ipam: { type: 'host-local', dataDir: path.join(d, 'ipam'), ranges: [[{ subnet: '10.91.0.0/24' }]] } };
      const call = (bridge: string, command: string, stdin: object) => cni(bridge, { command, containerId: 'uninst-ctr', netns: pod, ifname: 'eth0', path: path.dirname(bridge), stdin, hostNs: host });
      const add = call(ours('bridge'), 'ADD', net);
      expect(add.code, add.stdout + add.stderr).toBe(0);
      expect(netnsState(host).iptCni).toEqual([]);
      const u = flax(['--uninstall', '--cni-bin-dir', bin, '--cni-conf-dir', conf, '--cache-dir', path.join(d, 'cache')], PKG, host);
      expect(u.code, u.err).toBe(0);
      expect(u.out.split('\n')[0]).toBe('flax install: wrote 1 tombstone(s), 0 already present, 0 skipped (iptables chains the reference plugins\' DEL needs)');
      expect(existsSync(path.join(bin, 'bridge'))).toBe(false);
      expect(netnsState(host).iptCni).toContain(`iptables -N ${iptablesChainName('uninst', 'uninst-ctr')}`);
      const prev = { ...net, prevResult: add.json };
      // Debian's reference plugins, when installed, are what the node switched back to
      if (existsSync(theirs('bridge')) && existsSync(theirs('host-local'))) {
        const del = call(theirs('bridge'), 'DEL', prev);
        expect(del.code, del.stdout + del.stderr).toBe(0);
        expect(netnsState(host).iptCni).toEqual([]);
      }
      expect(call(ours('bridge'), 'DEL', prev).code).toBe(0);
      expect(netnsState(host).masqRules).toEqual([]);
    });
  }, 60_000);

  it('usage errors exit 2 and install nothing', () => {
    const { d, bin, conf } = dirs();
    for (const args of [['--network', 'bridge', '--conflist', '/dev/null'], ['--uninstall', '--network', 'bridge'], ['--network', 'calico'], ['--conf-name', 'x.conflist']]) {
      const r = flax(['--cni-bin-dir', bin, '--cni-conf-dir', conf, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
    writeFileSync(path.join(d, 'bad.conflist'), '{"name":"x","plugins":[]}');
    expect(flax(['--cni-bin-dir', bin, '--conflist', path.join(d, 'bad.conflist')]).code).toBe(2);
    expect(existsSync(bin)).toBe(false);
  });

  it('upgrades and downgrades while a loop of CNI calls through the installed names never fails', async () => {
    const { d, bin, conf } = dirs();
    // a second version: the same package with a different binary (a byte appended after the ELF)
    const v2 = path.join(d, 'pkg2');
    cpSync(PKG, v2, { recursive: true, verbatimSymlinks: true });
    appendFileSync(path.join(v2, 'flax'), '\n');
    expect(flax(['--cni-bin-dir', bin, '--cni-conf-dir', conf, '--network', 'bridge']).code).toBe(0);

    await withTestNetns(1, async ([ns]) => {
      const stop = path.join(d, 'stop');
      const log = path.join(d, 'calls.log');
      const lo = JSON.stringify({ cniVersion: '1.0.0', name: 'lo', type: 'loopback' });
      // ADD (loopback in the netns) and VERSION (host-local), each call logged with its exit code
      const script = `
        n=0
        while [ ! -e '${stop}' ]; do
          echo '${lo}' | CNI_COMMAND=ADD CNI_CONTAINERID=c$n CNI_NETNS='${ns}' CNI_IFNAME=lo CNI_PATH='${bin}' '${bin}/loopback' >/dev/null 2>'${d}/err'
          echo "add $?" >> '${log}'
          echo '{"cniVersion":"1.0.0"}' | CNI_COMMAND=VERSION '${bin}/host-local' >/dev/null 2>>'${d}/err'
          echo "version $?" >> '${log}'
          n=$((n+1))
        done`;
      const loop = spawn('sh', ['-c', script], { stdio: 'ignore' });
      const exited = new Promise((r) => loop.on('exit', r));
      try {
        const ids = new Set<string>();
        for (const from of [v2, PKG, v2, PKG]) {
          await new Promise((r) => setTimeout(r, 300));
          const r = spawnSync(path.join(from, 'flax'), ['install', '--cni-bin-dir', bin, '--cni-conf-dir', conf, '--network', 'bridge', '--from', from], { encoding: 'utf8' });
          expect(r.status, r.stderr).toBe(0);
          expect(r.stdout).toMatch(/upgraded .*\/loopback -> \.flax\//);
          ids.add(readlinkSync(path.join(bin, 'loopback')));
        }
        expect(ids.size).toBe(2);
        // only the current and the previous version are kept
        expect(readdirSync(path.join(bin, '.flax')).filter((f) => /^[0-9a-f]{16}$/.test(f))).toHaveLength(2);
        await new Promise((r) => setTimeout(r, 300));
      } finally {
        writeFileSync(stop, '');
        await exited;
      }
      const calls = readFileSync(log, 'utf8').trim().split('\n');
      const failed = calls.filter((l) => !l.endsWith(' 0'));
      expect(failed, readFileSync(path.join(d, 'err'), 'utf8')).toEqual([]);
      expect(calls.length).toBeGreaterThanOrEqual(20);
    });
  }, 120_000);
});
