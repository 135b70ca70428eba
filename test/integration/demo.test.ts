/**
 * `flax demo` end to end: 3 pods in throwaway namespaces, pings asserted,
 * everything removed. With the reference plugins always, with flax's when
 * dist/bin has them; and a chain that hands out unreachable addresses must
 * make the demo fail loudly.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '../..');
const flax = process.env.FLAX_BIN ?? path.join(root, 'dist/bin/flax');
const isRoot = process.getuid?.() === 0;
const hasFlaxPlugins = ['loopback', 'bridge', 'host-local'].every((p) => existsSync(path.join(root, 'dist/bin', p)));

function demo(args: string[]) {
  const prefix = `flaxt-demo-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  const r = spawnSync(flax, ['demo', '--single-node', '--prefix', prefix, ...args], { encoding: 'utf8', timeout: 120_000 });
  const left = readdirSync('/run/netns').filter((n) => n.startsWith(prefix));
  return { code: r.status, out: r.stdout + r.stderr, left, prefix };
}

/**
 * A CNI server outside the demo, as a flaxd of this machine would be: a
 * socket in a scratch dir, handed to the demo as FLAX_CNI_SOCKET (the
 * plugin clients' server). It counts the calls that reach it and answers
 * none (the client then fails the call).
 */
async function withOutsideServer<T>(fn: (socket: string) => Promise<T>): Promise<{ value: T; calls: number }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'flaxt-outside-'));
  const socket = path.join(dir, 'cni.sock');
  let calls = 0;
  const srv = net.createServer((c) => { calls++; c.destroy(); });
  await new Promise<void>((r) => srv.listen(socket, r));
  try {
    return { value: await fn(socket), calls };
  } finally {
    await new Promise((r) => srv.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs flax without blocking this process (the outside server must answer meanwhile). */
function flaxAsync(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(flax, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('close', (code) => resolve({ code, out }));
  });
}

/**
 * The commands a --keep run prints ("Try:" lines and "Remove with:"), each
 * run as printed by `sh -c` with a PATH that lacks dist/bin, no NETCONFPATH
 * or CNI_PATH, and a 60 s bound (a ping without -c would never end).
 */
function keepHints(out: string): { tries: string[]; remove: string } {
  const lines = out.split('\n');
  const at = lines.findIndex((l) => l.startsWith('--keep: left up. Try:'));
  expect(at, out).toBeGreaterThanOrEqual(0);
  const tries: string[] = [];
  for (const l of lines.slice(at + 1)) {
    if (!l.startsWith('  ')) break;
    tries.push(l.trim());
  }
  const remove = lines.find((l) => l.startsWith('Remove with: '))?.slice('Remove with: '.length) ?? '';
  return { tries, remove };
}
function runHint(cmd: string) {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 60_000, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: process.env.HOME ?? '/root' } });
  expect({ cmd, status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ cmd, status: 0, signal: null, stderr: r.stderr });
  return r.stdout;
}

describe.skipIf(!isRoot || !existsSync(flax))('flax demo --single-node', () => {
  it.skipIf(!hasFlaxPlugins)('its plugin calls never reach a CNI server outside the demo', async () => {
    const prefix = `flaxt-iso-${process.pid}`;
    const { value: r, calls } = await withOutsideServer((socket) => flaxAsync(['demo', '--single-node', '--prefix', prefix, '--pods', '2'], { ...process.env, FLAX_CNI_SOCKET: socket }));
    expect(calls).toBe(0);
    expect(r.out).toContain('demo OK');
    expect(r.code).toBe(0);
    expect(readdirSync('/run/netns').filter((n) => n.startsWith(prefix))).toEqual([]);
  });

  const cases = [
    { name: 'reference plugins (negotiates 1.0.0)', args: ['--cni-path', '/usr/lib/cni'], version: '1.0.0' },
    { name: 'reference plugins, --cni-version 0.4.0', args: ['--cni-path', '/usr/lib/cni', '--cni-version', '0.4.0'], version: '0.4.0' },
  ];
  if (hasFlaxPlugins) cases.push({ name: 'flax plugins (negotiates 1.1.0)', args: [], version: '1.1.0' });
  for (const c of cases) {
    it(`runs with ${c.name}: 3 pods, every ping ok, nothing left behind`, () => {
      const r = demo(c.args);
      expect(r.out).toContain('demo OK');
      expect(r.out).toContain(`cniVersion ${c.version} (`);
      expect(r.code).toBe(0);
      const pings = r.out.split('\n').filter((l) => /^(pod\d|node)\s+\S.*\s(ok|FAIL)\s/.test(l));
      expect(pings.length).toBe(8);
      expect(pings.every((l) => /\sok\s/.test(l))).toBe(true);
      expect(r.out).toMatch(/pod3\s+\/run\/netns\/\S+-pod3\s+\S+\s+eth0\s+10\.250\.0\.4\/24/);
      expect(r.out).toContain('host-local released every address; cache empty');
      expect(r.left).toEqual([]);
    });
  }

  it('--keep leaves it up; --cleanup (or a re-run) removes it', () => {
    const scratch = mkdtempSync(path.join(os.tmpdir(), 'flaxt-demo-'));
    const prefix = `flaxt-keep-${process.pid}`;
    const base = ['demo', '--single-node', '--prefix', prefix, '--scratch', scratch, '--cni-path', '/usr/lib/cni', '--pods', '2'];
    const a = spawnSync(flax, [...base, '--keep'], { encoding: 'utf8' });
    expect(a.status).toBe(0);
    expect(readdirSync('/run/netns').filter((n) => n.startsWith(prefix)).sort()).toEqual([`${prefix}-node`, `${prefix}-pod1`, `${prefix}-pod2`]);
    try {
      // every hint runs as printed: flax by its absolute path, status with the demo's dirs, a ping that ends
      const hints = keepHints(a.stdout);
      expect(hints.tries.map((t) => t.split(' ')[0])).toEqual(['nsenter', 'nsenter', path.resolve(flax)]);
      const outs = hints.tries.map(runHint);
      expect(outs[1]).toMatch(/3 packets transmitted, 3 received/);
      expect(outs[2]).toContain(`${prefix}-net`);
      expect(outs[2]).toMatch(new RegExp(`${prefix}-pod1\\s+eth0\\s+\\S+\\s+ok\\s+10\\.250\\.0\\.2/24`));
      const b = runHint(hints.remove);
      expect(b).toContain('DEL leftover attachment');
    } finally {
      spawnSync(flax, [...base, '--cleanup'], { encoding: 'utf8' }); // when a hint failed (else: nothing left to remove)
    }
    expect(readdirSync('/run/netns').filter((n) => n.startsWith(prefix))).toEqual([]);
    expect(existsSync(scratch)).toBe(false);
  });

  it('fails loudly (exit 1) when pings fail, and still cleans up', () => {
    // stub "plugins" that report addresses without configuring anything
    const dir = mkdtempSync(path.join(os.tmpdir(), 'flaxt-fake-'));
    for (const p of ['loopback', 'bridge', 'host-local']) symlinkSync(path.join(root, 'test/fixtures/stub-plugins/stub'), path.join(dir, p));
    const r = demo(['--cni-path', dir]);
    rmSync(dir, { recursive: true, force: true });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/FAIL/);
    expect(r.out).toContain('demo FAILED');
    expect(r.left).toEqual([]);
  });
});

const hasOverlay = ['flaxd', 'flannel', 'portmap', 'bridge', 'host-local'].every((p) => existsSync(path.join(root, 'dist/bin', p)));

describe.skipIf(!isRoot || !hasOverlay)('flax demo (the overlay)', () => {
  it('3 nodes with a flaxd each, 2 pods per node: every pod pair pings (across nodes and over a node\'s bridge), the port mapping answers, nothing is left', () => {
    const prefix = `flaxt-ov-${process.pid}`;
    const scratch = path.join(os.tmpdir(), `${prefix}-scratch`);
    const r = spawnSync(flax, ['demo', '--prefix', prefix, '--scratch', scratch, '--pods-per-node', '2'], { encoding: 'utf8', timeout: 120_000 });
    const out = r.stdout + r.stderr;
    expect(out).toContain('demo OK');
    expect(r.status).toBe(0);
    const nodes = out.split('\n').filter((l) => /^n\d\s+192\.168\.77\.\d+\s+10\.244\.\d+\.1\/24\s+[0-9a-f:]{17}\s+2$/.test(l));
    expect(nodes).toHaveLength(3);
    expect(new Set(nodes.map((l) => l.split(/\s+/)[2])).size).toBe(3); // distinct subnets
    const pings = out.split('\n').filter((l) => /^n\d-p\d\s+n\d-p\d\s/.test(l));
    expect(pings).toHaveLength(30);
    expect(pings.filter((l) => /^n(\d)-p\d\s+n\1-p\d\s/.test(l))).toHaveLength(6); // same node, over its bridge
    expect(pings.every((l) => /\sok\s/.test(l))).toBe(true);
    expect(out).toMatch(/ok: hello from n1-p1/);
    expect(readdirSync('/run/netns').filter((n) => n.startsWith(prefix))).toEqual([]);
    expect(existsSync(scratch)).toBe(false);
  });

  it.skipIf(!existsSync('/usr/bin/etcd'))('--store etcd: Debian\'s etcd on the underlay holds the config and the leases; the same checks pass and nothing is left', () => {
    const prefix = `flaxt-ove-${process.pid}`;
    const scratch = path.join(os.tmpdir(), `${prefix}-scratch`);
    const r = spawnSync(flax, ['demo', '--prefix', prefix, '--scratch', scratch, '--nodes', '2', '--store', 'etcd'], { encoding: 'utf8', timeout: 120_000 });
    const out = r.stdout + r.stderr;
    expect(out).toContain('etcd store: Debian\'s etcd at http://192.168.77.1:2379');
    expect(out).toContain('demo OK');
    expect(r.status).toBe(0);
    expect(out.split('\n').filter((l) => /^n\d-p1\s+n\d-p1\s.*\sok\s/.test(l))).toHaveLength(2);
    expect(readdirSync('/run/netns').filter((n) => n.startsWith(prefix))).toEqual([]);
    expect(existsSync(scratch)).toBe(false);
    expect(spawnSync('pgrep', ['-f', `${prefix}-scratch/etcd`]).status).toBe(1); // etcd stopped
  });

  it('--keep leaves it up (agents without a sweeper; no plugin call reaches a server outside the demo); --cleanup stops the agents and removes it', async () => {
    const prefix = `flaxt-ovk-${process.pid}`;
    const scratch = path.join(os.tmpdir(), `${prefix}-scratch`);
    const { value: a, calls } = await withOutsideServer((socket) => flaxAsync(['demo', '--prefix', prefix, '--scratch', scratch, '--nodes', '2', '--keep'], { ...process.env, FLAX_CNI_SOCKET: socket }));
    try {
      expect(calls).toBe(0);
      expect(a.out).toContain('demo OK');
      // the agents run no sweeper (its defaults are this machine's /etc/cni/net.d, /var/lib/cni, /run/flax/sandboxes)
      for (const n of ['n1', 'n2']) {
        const log = readFileSync(path.join(scratch, n, 'flaxd.log'), 'utf8');
        expect(log).toMatch(/subnet/i); // the agent's own log
        expect(log).not.toMatch(/sweeper/);
      }
      expect(readdirSync('/run/netns').filter((n) => n.startsWith(prefix)).sort()).toEqual([`${prefix}-n1`, `${prefix}-n1-p1`, `${prefix}-n2`, `${prefix}-n2-p1`, `${prefix}-ul`]);
      const pids = readdirSync(scratch).filter((f) => f.endsWith('.pid')).map((f) => Number(readFileSync(path.join(scratch, f), 'utf8')));
      expect(pids.every((p) => existsSync(`/proc/${p}`))).toBe(true);
      // every hint runs as printed (then "Remove with:" is the cleanup)
      const hints = keepHints(a.out);
      expect(hints.tries.map((t) => t.split(' ')[0])).toEqual(['nsenter', path.resolve(flax), 'nsenter']);
      const outs = hints.tries.map(runHint);
      expect(outs[0]).toMatch(/10\.244\.\d+\.0\/24 via 10\.244\.\d+\.0 dev flannel\.1/);
      expect(outs[1]).toContain('cbr0');
      expect(outs[1]).toMatch(new RegExp(`${prefix}-n1-p1\\s+eth0\\s+\\S+\\s+ok\\s+10\\.244\\.`));
      expect(outs[2]).toMatch(/3 packets transmitted, 3 received/);
      expect(hints.remove).toBe(`${path.resolve(flax)} demo --cleanup --prefix ${prefix} --scratch ${scratch}`);
    } finally {
      const printed = /^Remove with: (.*)$/m.exec(a.out)?.[1];
      const b = spawnSync('sh', ['-c', printed ?? `${flax} demo --prefix ${prefix} --scratch ${scratch} --cleanup`], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
      expect(b.status, b.stdout + b.stderr).toBe(0);
    }
    expect(readdirSync('/run/netns').filter((n) => n.startsWith(prefix))).toEqual([]);
    expect(existsSync(scratch)).toBe(false);
  });
});

describe.skipIf(!isRoot || !hasFlaxPlugins)("the README's main command", () => {
  it('runs the demo exactly as the README says (npm run demo)', () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const first = readme.split('\n').find((l) => l.includes('&&'))!;
    const mainCmd = first.split('&&')[1].split('#')[0].trim();
    expect(mainCmd).toBe('npm run demo');
    const r = spawnSync('sh', ['-c', mainCmd], { cwd: root, encoding: 'utf8', timeout: 180_000 });
    expect(r.stdout + r.stderr).toContain('demo OK');
    expect(r.status).toBe(0);
  });
});
