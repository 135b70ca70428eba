/**
 * `flax cni` as a cnitool replacement, black-box through dist/bin/flax
 * (FLAX_BIN overrides), run inside a throwaway "node" netns with
 * NETCONFPATH / CNI_PATH / --cache-dir in a temp dir. Plus `flax status`,
 * `flax netns` and error reporting.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestNetns, destroyTestNetns, uniqueName } from '../helpers/netns';

const root = path.resolve(__dirname, '../..');
const flax = process.env.FLAX_BIN ?? path.join(root, 'dist/bin/flax');
const pluginDir = ['loopback', 'bridge', 'host-local'].every((p) => existsSync(path.join(root, 'dist/bin', p))) ? path.join(root, 'dist/bin') : '/usr/lib/cni';
const isRoot = process.getuid?.() === 0;

function run(args: string[], env: Record<string, string> = {}, netns?: string) {
  const argv = netns ? ['nsenter', `--net=${netns}`, '--', flax, ...args] : [flax, ...args];
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: { PATH: process.env.PATH!, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!isRoot || !existsSync(flax))('flax cni (cnitool-compatible)', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-cli-'));
  const [node, pod] = createTestNetns(2);
  afterAll(() => {
    destroyTestNetns([pod, node]);
    rmSync(tmp, { recursive: true, force: true });
  });
  const confDir = path.join(tmp, 'net.d');
  const dataDir = path.join(tmp, 'ipam');
  const cacheDir = path.join(tmp, 'cache');
  spawnSync('mkdir', ['-p', confDir]);
  writeFileSync(path.join(confDir, '10-clinet.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: 'clinet',
    plugins: [{ type: 'loopback' }, { type: 'bridge', bridge: 'flaxc0', isGateway: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.252.0.0/24' }]], dataDir } }],
  }));
  writeFileSync(path.join(confDir, '20-broken.conflist'), '{ nope');
  const env = { NETCONFPATH: confDir, CNI_PATH: pluginDir, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=p1' };
  const cid = 'cnitool-' + createHash('sha512').update(pod).digest().subarray(0, 10).toString('hex');

  it('add prints the result JSON and caches under cnitool\'s container id', () => {
    const r = run(['cni', 'add', 'clinet', pod, '--cache-dir', cacheDir], env, node);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.cniVersion).toBe('1.0.0');
    expect(res.ips[0].address).toBe('10.252.0.2/24');
    expect(r.stdout).toMatch(/^\{\n {4}"cniVersion": "1.0.0",\n {4}"interfaces"/);
    expect(readdirSync(path.join(cacheDir, 'results'))).toEqual([`clinet-${cid}-eth0`]);
    const cached = JSON.parse(readFileSync(path.join(cacheDir, 'results', `clinet-${cid}-eth0`), 'utf8'));
    expect(cached.cniArgs).toEqual([['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'p1']]);
    expect(cached.netns).toBe(pod);
  });

  it('check succeeds silently; -o table reports', () => {
    expect(run(['cni', 'check', 'clinet', pod, '--cache-dir', cacheDir], env, node)).toMatchObject({ code: 0, stdout: '' });
    expect(run(['cni', 'check', 'clinet', pod, '--cache-dir', cacheDir, '-o', 'table'], env, node).stdout).toContain('OK');
  });

  it('a second interface with --ifname / --container-id and -o table', () => {
    const r = run(['cni', 'add', 'clinet', pod, '--cache-dir', cacheDir, '--ifname', 'net1', '--container-id', 'custom-id', '-o', 'table'], env, node);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ADDRESS\s+GATEWAY\s+INTERFACE/);
    expect(r.stdout).toMatch(/10\.252\.0\.3\/24\s+10\.252\.0\.1\s+net1/);
  });

  it('flax status lists networks, the broken file, attachments and range usage', () => {
    const r = run(['status', '--cache-dir', cacheDir], { NETCONFPATH: confDir });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/clinet\s+1\.0\.0\s+loopback > bridge\s+10-clinet\.conflist/);
    expect(r.stdout).toContain('20-broken.conflist');
    expect(r.stdout).toMatch(new RegExp(`clinet\\s+${cid}\\s+eth0\\s+${pod}\\s+10\\.252\\.0\\.2/24`));
    expect(r.stdout).toMatch(/clinet\s+10\.252\.0\.0\/24\s+2\s+251\s/);
    const j = JSON.parse(run(['status', '--cache-dir', cacheDir, '-o', 'json'], { NETCONFPATH: confDir }).stdout);
    expect(j.ranges[0]).toMatchObject({ used: 2, free: '251' });
  });

  it('gc with --valid keeps that attachment and DELs the other', () => {
    const r = run(['cni', 'gc', 'clinet', '--cache-dir', cacheDir, '--valid', `${cid}/eth0`, '-o', 'table'], env, node);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/custom-id\s+net1/);
    expect(readdirSync(path.join(cacheDir, 'results'))).toEqual([`clinet-${cid}-eth0`]);
  });

  it('del removes the attachment and releases the address', () => {
    expect(run(['cni', 'del', 'clinet', pod, '--cache-dir', cacheDir], env, node).code).toBe(0);
    expect(readdirSync(path.join(cacheDir, 'results'))).toEqual([]);
    expect(readdirSync(path.join(dataDir, 'clinet')).filter((f) => f.startsWith('10.'))).toEqual([]);
  });

  it('errors: unknown network (naming the broken file), missing plugin, bad CAP_ARGS → exit 1 with a message', () => {
    const a = run(['cni', 'add', 'nonet', pod, '--cache-dir', cacheDir], env, node);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/no net configuration with name "nonet".*20-broken\.conflist/);
    const b = run(['cni', 'add', 'clinet', pod, '--cache-dir', cacheDir], { ...env, CNI_PATH: tmp }, node);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain('plugin type="loopback" failed (add): failed to find plugin "loopback"');
    const c = run(['cni', 'add', 'clinet', pod, '--cache-dir', cacheDir], { ...env, CAP_ARGS: '{' }, node);
    expect(c.stderr).toMatch(/CAP_ARGS is not valid JSON/);
    const d = run(['cni', 'frob', 'clinet', pod]);
    expect(d.code).toBe(1);
    expect(d.stderr).toMatch(/Invalid values|choices/i);
  });

  it('help exists for every command', () => {
    for (const c of [[], ['cni'], ['netns'], ['status'], ['demo']]) {
      const r = run([...c, '--help']);
      expect(r.code, c.join(' ')).toBe(0);
      expect(r.stdout.length).toBeGreaterThan(100);
    }
  });
});

describe.skipIf(!isRoot || !existsSync(flax))('flax netns', () => {
  it('add / list / del a pinned namespace', () => {
    const n = uniqueName('flaxt-cli');
    expect(run(['netns', 'add', n]).stdout.trim()).toBe(`/run/netns/${n}`);
    expect(run(['netns', 'list']).stdout.split('\n')).toContain(n);
    expect(run(['netns', 'add', n]).code).toBe(1);
    expect(run(['netns', 'del', n]).code).toBe(0);
    expect(existsSync(`/run/netns/${n}`)).toBe(false);
  });
});

describe.skipIf(!isRoot || !existsSync(flax))('flax cni del without args', () => {
  it('reuses the CNI_ARGS and CAP_ARGS cached at ADD (so portmap-like plugins find their rules)', () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-cli-del-'));
    try {
      const confDir = path.join(tmp, 'net.d');
      const rec = path.join(tmp, 'rec');
      spawnSync('mkdir', ['-p', confDir, rec]);
      const stubs = path.join(root, 'test/fixtures/stub-plugins');
      writeFileSync(path.join(confDir, 'a.conflist'), JSON.stringify({
        cniVersion: '1.0.0', name: 'delargs', plugins: [{ type: 'alpha', capabilities: { portMappings: true } }],
      }));
      const base = { NETCONFPATH: confDir, CNI_PATH: stubs, STUB_RECORD_DIR: rec };
      const cache = ['--cache-dir', path.join(tmp, 'cache'), '--container-id', 'c-delargs'];
      const add = run(['cni', 'add', 'delargs', '/run/netns/none', ...cache], { ...base, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=p9', CAP_ARGS: '{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}' });
      expect(add.code, add.stderr).toBe(0);
      const del = run(['cni', 'del', 'delargs', '/run/netns/none', ...cache], base);
      expect(del.code, del.stderr).toBe(0);
      const delFiles = readdirSync(rec).filter((f) => f.includes('-DEL.'));
      const env = readFileSync(path.join(rec, delFiles.find((f) => f.endsWith('.env'))!), 'utf8');
      const stdin = JSON.parse(readFileSync(path.join(rec, delFiles.find((f) => f.endsWith('.stdin'))!), 'utf8'));
      expect(env).toContain('CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=p9');
      expect(stdin.runtimeConfig).toEqual({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
