/**
 * The installed self-contained executables on a host without Node.js: every
 * call runs in its own mount namespace (unshare -m) where each `node` /
 * `nodejs` on PATH is masked (/dev/null bound over the binary), so nothing
 * can fall back to an installed node. A bridge ADD/CHECK/DEL (with its
 * host-local IPAM exec'd through the same multi-call binary, and ipMasq's
 * nft) in throwaway "host" and container netns, `flax --version`, and
 * `flaxd --version` when the package has flaxd.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestNetns, destroyTestNetns } from '../lib/netns';
import { ensurePackage, PKG } from '../lib/pkg';
import { ipj } from '../lib/cni';

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
let scratch = '';
let bin = '';
let nsPaths: string[] = [];

/** Every node binary reachable from PATH (and the one running us), resolved. */
function nodeBinaries(): string[] {
  const found = new Set<string>([realpathSync(process.execPath)]);
  for (const dir of `${PATH}:${process.env.PATH ?? ''}`.split(':')) {
    for (const n of ['node', 'nodejs']) {
      const p = path.join(dir, n);
      try { if (statSync(p).isFile()) found.add(realpathSync(p)); } catch { /* none */ }
    }
  }
  return [...found];
}

/** Runs argv in a fresh mount namespace with node masked; `hostNs` is the netns it runs in. */
function noNode(argv: string[], o: { env?: Record<string, string>; input?: string; hostNs?: string } = {}) {
  const mask = nodeBinaries().map((b) => `mount --bind /dev/null '${b}' || exit 90`).join('\n');
  const script = `${mask}\nif command -v node >/dev/null || node -e 0 2>/dev/null; then echo 'node still runs' >&2; exit 91; fi\nexec "$@"`;
  const inner = o.hostNs ? ['nsenter', `--net=${o.hostNs}`, '--', ...argv] : argv;
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...inner], {
    encoding: 'utf8', input: o.input ?? '', env: { PATH, ...o.env },
  });
  let json: any;
  try { json = JSON.parse(r.stdout); } catch { /* not JSON */ }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json };
}

beforeAll(async () => {
  await ensurePackage();
  scratch = mkdtempSync(path.join(tmpdir(), 'flax-nonode-'));
  bin = path.join(scratch, 'bin');
  const r = spawnSync(path.join(PKG, 'flax'), ['install', '--cni-bin-dir', bin, '--cni-conf-dir', path.join(scratch, 'net.d'), '--from', PKG], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`flax install: ${r.stderr}`);
  nsPaths = createTestNetns(2);
}, 180_000);
afterAll(() => {
  destroyTestNetns(nsPaths);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('without Node.js', () => {
  it('the mask works: node does not run in the namespace, the installed flax does', () => {
    const r = noNode(['sh', '-c', 'node -e 0; echo "node exit $?"']);
    expect(r.stdout).toMatch(/node exit (126|127)/);
    const v = noNode([path.join(bin, 'flax'), '--version']);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/^flax \d+\.\d+\.\d+ \(CNI spec/);
  });

  it('every installed plugin answers VERSION by its own name', () => {
    const pkg = JSON.parse(readFileSync(path.join(PKG, 'PACKAGE.json'), 'utf8')) as { executables: string[] };
    for (const name of ['bridge', 'host-local', 'loopback', 'flannel', 'portmap']) {
      expect(pkg.executables).toContain(name);
      const r = noNode([path.join(bin, name)], { env: { CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}' });
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
      expect(r.json.supportedVersions).toContain('1.1.0');
      const about = noNode([path.join(bin, name)]);
      expect(about.stderr).toContain(`CNI ${name} plugin (flax)`);
    }
  });

  it('bridge ADD, CHECK, DEL (host-local and nft exec\'d without node)', () => {
    const [host, ctr] = nsPaths;
    const conf = {
      cniVersion: '1.1.0', name: 'nonode', type: 'bridge', bridge: 'nn0', isGateway: true, ipMasq: true,
      ipam: { type: 'host-local', subnet: '10.99.7.0/24', dataDir: path.join(scratch, 'ipam') },
    };
    const env = (cmd: string, extra: object = {}) => ({ CNI_COMMAND: cmd, CNI_CONTAINERID: 'nonode-1', CNI_NETNS: ctr, CNI_IFNAME: 'eth0', CNI_PATH: bin, ...extra });
    const add = noNode([path.join(bin, 'bridge')], { env: env('ADD'), input: JSON.stringify(conf), hostNs: host });
    expect(add.code, add.stdout + add.stderr).toBe(0);
    const res = add.json;
    expect(res.cniVersion).toBe('1.1.0');
    expect(res.interfaces.map((i: { name: string }) => i.name)).toContain('nn0');
    const eth0 = res.interfaces.findIndex((i: { name: string; sandbox?: string }) => i.name === 'eth0' && i.sandbox === ctr);
    expect(eth0).toBeGreaterThanOrEqual(0);
    expect(res.ips).toEqual([{ address: '10.99.7.2/24', gateway: '10.99.7.1', interface: eth0 }]);
    const addrs = ipj(ctr, ['addr', 'show', 'eth0'])[0].addr_info.map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`);
    expect(addrs).toContain('10.99.7.2/24');
    expect(existsSync(path.join(scratch, 'ipam/nonode/10.99.7.2'))).toBe(true);

    const check = noNode([path.join(bin, 'bridge')], { env: env('CHECK'), input: JSON.stringify({ ...conf, prevResult: res }), hostNs: host });
    expect(check.code, check.stdout + check.stderr).toBe(0);

    const del = noNode([path.join(bin, 'bridge')], { env: env('DEL'), input: JSON.stringify(conf), hostNs: host });
    expect(del.code, del.stdout + del.stderr).toBe(0);
    expect(ipj(ctr, ['link', 'show']).map((l: { ifname: string }) => l.ifname)).not.toContain('eth0');
    expect(existsSync(path.join(scratch, 'ipam/nonode/10.99.7.2'))).toBe(false);
    const again = noNode([path.join(bin, 'bridge')], { env: env('DEL'), input: JSON.stringify(conf), hostNs: host });
    expect(again.code, again.stderr).toBe(0);
  });

  const hasFlaxd = () => (JSON.parse(readFileSync(path.join(PKG, 'PACKAGE.json'), 'utf8')) as { executables: string[] }).executables.includes('flaxd');
  it.skipIf(!existsSync(path.join(PKG, 'PACKAGE.json')) || !hasFlaxd())('flaxd --version (when the package has flaxd)', () => {
    const r = noNode([path.join(bin, 'flaxd'), '--version']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/flaxd/);
  });
});
