/**
 * `flax cni` as a cnitool replacement, black-box through dist/bin/flax
 * (FLAX_BIN overrides), run inside a throwaway "node" netns with
 * NETCONFPATH / CNI_PATH / --cache-dir in a temp dir. Plus `flax status`,
 * `flax netns`, `flax demo`, `flax version`, error reporting, and the
 * usage-error contract: one line on stderr, exit 2, nothing run.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestNetns, destroyTestNetns, ipJson, uniqueName, withTestNetns } from '../lib/netns';
import { publicDistBin } from '../lib/cni';

const root = path.resolve(__dirname, '../..');
const flax = process.env.FLAX_BIN ?? path.join(root, 'dist/bin/flax');
const pluginDir = ['loopback', 'bridge', 'host-local'].every((p) => existsSync(path.join(root, 'dist/bin', p))) ? path.join(root, 'dist/bin') : '/usr/lib/cni';
const isRoot = process.getuid?.() === 0;

function run(args: string[], env: Record<string, string> = {}, netns?: string) {
  const argv = netns ? ['nsenter', `--net=${netns}`, '--', flax, ...args] : [flax, ...args];
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: { PATH: process.env.PATH!, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A usage error: exit 2, nothing on stdout, ONE line on stderr matching `re`, pointing at --help once. */
function expectUsageError(r: ReturnType<typeof run>, re: RegExp) {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr.trimEnd().split('\n'), r.stderr).toHaveLength(1);
  expect(r.stderr).toMatch(re);
  expect(r.stderr.match(/--help/g)).toHaveLength(1);
  expect(r.stderr).not.toMatch(/undefined/);
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

  it('usage errors run nothing: the attachment, its address and its interface stay; no new one appears', () => {
    const cache = () => readdirSync(path.join(cacheDir, 'results'));
    const held = () => readdirSync(path.join(dataDir, 'clinet')).filter((f) => f.startsWith('10.'));
    const links = () => ipJson<Array<{ ifname: string }>>(pod, ['link', 'show']).map((l) => l.ifname).sort();
    const before = { cache: cache(), held: held(), links: links() };
    expect(before.cache).toEqual([`clinet-${cid}-eth0`]);
    const c = ['--cache-dir', cacheDir];
    const cases: [string[], RegExp][] = [
      [['cni', 'del', 'clinet', pod, ...c, '--dry-run'], /^flax: cni: unknown option --dry-run \(see 'flax cni --help'\)$/m],
      [['cni', 'del', 'clinet', pod, ...c, '--dryRun'], /unknown option --dryRun/],
      [['cni', 'ad', 'clinet', pod, ...c], /invalid <verb> "ad": choose one of add, del, check, gc, status/],
      [['cni', 'add', 'clinet', pod, ...c, '--ifname', 'net9', '-o', 'yaml'], /invalid --output "yaml": choose one of json, table/],
      [['cni', 'add', 'clinet', pod, ...c, '--ifname', 'net9', '--timeout', 'soon'], /--timeout wants a duration such as 30s/],
      [['cni', 'add', 'clinet', pod, ...c, '--ifname', 'net9', '--cap-args', '{'], /CAP_ARGS is not valid JSON/],
      [['cni', 'add', 'clinet', pod, ...c, '--ifname', 'net9', '--args', 'novalue'], /invalid CNI_ARGS pair "novalue"/],
      [['cni', 'del', 'clinet', ...c], /missing <netns>/],
      [['cni', 'del', ...c], /missing <network>/],
      [['cni'], /missing <verb> \(add, del, check, gc, status\)/],
      [['cni', 'del', 'clinet', pod, 'extra', ...c], /unexpected argument "extra"/],
      [['cni', 'del', 'clinet', pod, '--cache-dir'], /--cache-dir needs a value/],
      [['cni', 'gc', 'clinet', ...c, '--valid', 'nocontainer'], /--valid wants <containerID>\/<ifname>/],
    ];
    for (const [args, re] of cases) expectUsageError(run(args, env, node), re);
    expect({ cache: cache(), held: held(), links: links() }).toEqual(before);
  });

  it('--cni-conf-dir (and its alias --netconf-path) over NETCONFPATH, on the fast path and through yargs', () => {
    const noEnvConf = { ...env, NETCONFPATH: path.join(tmp, 'no-such-conf') };
    for (const flag of ['--cni-conf-dir', '--netconf-path']) {
      expect(run(['cni', 'check', 'clinet', pod, '--cache-dir', cacheDir, flag, confDir], noEnvConf, node)).toMatchObject({ code: 0, stdout: '', stderr: '' });
      // `=` form, with -o table
      expect(run(['cni', 'check', 'clinet', pod, '--cache-dir', cacheDir, `${flag}=${confDir}`, '-o', 'table'], noEnvConf, node).stdout).toContain('OK');
    }
    expect(run(['cni', 'check', 'clinet', pod, '--cache-dir', cacheDir], noEnvConf, node).stderr).toContain('no-such-conf');
  });

  it('check succeeds silently; -o table reports; a netns NAME is /run/netns/NAME', () => {
    expect(run(['cni', 'check', 'clinet', pod, '--cache-dir', cacheDir], env, node)).toMatchObject({ code: 0, stdout: '' });
    expect(run(['cni', 'check', 'clinet', pod, '--cache-dir', cacheDir, '-o', 'table'], env, node).stdout).toContain('OK');
    // the same attachment (same cnitool container id) by name, as cnitool users type it
    expect(run(['cni', 'check', 'clinet', path.basename(pod), '--cache-dir', cacheDir], env, node)).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const r = run(['cni', 'add', 'clinet', 'flaxt-no-such-ns', '--cache-dir', cacheDir], env, node);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`flax: netns "flaxt-no-such-ns" not found: tried /run/netns/flaxt-no-such-ns and ${path.join(process.cwd(), 'flaxt-no-such-ns')}\n`);
  });

  it('check of an attachment that was never added says there is none', () => {
    for (const [ns, ifname] of [[pod, 'eth7'], [node, 'eth0']]) {
      const r = run(['cni', 'check', 'clinet', ns, '--cache-dir', cacheDir, '--ifname', ifname], env, node);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^flax: no cached attachment of network "clinet" for container cnitool-[0-9a-f]{20}, ${ifname} \\(netns ${ns}\\)`));
      expect(r.stderr).not.toMatch(/loopback|plugin/);
    }
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
    // a JSON error names file, line and column on one line
    expect(r.stdout).toContain(`${path.join(confDir, '20-broken.conflist')}:1:3: error parsing configuration list: `);
    expect(r.stdout).toMatch(/NETWORK\s+CONTAINER\s+IFNAME\s+NETNS\s+STATE\s+IPS/);
    expect(r.stdout).toMatch(new RegExp(`clinet\\s+${cid}\\s+eth0\\s+${pod}\\s+ok\\s+10\\.252\\.0\\.2/24`));
    expect(r.stdout).toMatch(/clinet\s+10\.252\.0\.0\/24\s+2\s+251\s/);
    const j = JSON.parse(run(['status', '--cache-dir', cacheDir, '-o', 'json'], { NETCONFPATH: confDir }).stdout);
    expect(j.ranges[0]).toMatchObject({ size: 253, used: 2, free: 251 });
    expect(j.attachments.map((a: { state: string }) => a.state)).toEqual(['ok', 'ok']);
  });

  it('flax status marks an attachment whose netns is gone as stale', () => {
    const [gone] = createTestNetns(1);
    let removed = false;
    try {
      expect(run(['cni', 'add', 'clinet', gone, '--cache-dir', cacheDir, '--container-id', 'doomed'], env, node).code).toBe(0);
      destroyTestNetns([gone]);
      removed = true;
      const r = run(['status', '--cache-dir', cacheDir], { NETCONFPATH: confDir });
      expect(r.stdout).toMatch(new RegExp(`clinet\\s+doomed\\s+eth0\\s+${gone}\\s+stale\\s+10\\.252\\.0\\.\\d+/24`));
      expect(r.stdout).toMatch(new RegExp(`clinet\\s+${cid}\\s+eth0\\s+${pod}\\s+ok\\s`));
      expect(r.stdout).toContain('1 stale: the netns is gone');
      const j = JSON.parse(run(['status', '--cache-dir', cacheDir, '-o', 'json'], { NETCONFPATH: confDir }).stdout);
      expect(j.attachments.find((a: { containerId: string }) => a.containerId === 'doomed').state).toBe('stale');
    } finally {
      if (!removed) destroyTestNetns([gone]);
      // DEL works with the netns gone and releases the address
      expect(run(['cni', 'del', 'clinet', gone, '--cache-dir', cacheDir, '--container-id', 'doomed'], env, node).code).toBe(0);
    }
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
    expectUsageError(run(['cni', 'frob', 'clinet', pod]), /invalid <verb> "frob"/);
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
    try {
      expect(run(['netns', 'add', n]).stdout.trim()).toBe(`/run/netns/${n}`);
      expect(run(['netns', 'list']).stdout.split('\n')).toContain(n);
      expect(run(['netns', 'add', n]).code).toBe(1);
      expect(run(['netns', 'del', n]).code).toBe(0);
      expect(existsSync(`/run/netns/${n}`)).toBe(false);
    } finally {
      destroyTestNetns([`/run/netns/${n}`].filter(existsSync));
    }
  });

  it('usage errors run nothing: the namespace stays, none is created', () => withTestNetns(1, ([ns]) => {
    const name = path.basename(ns);
    const fresh = uniqueName('flaxt-cli');
    try {
      expectUsageError(run(['netns', 'del', name, '--force']), /^flax: netns: unknown option --force \(see 'flax netns --help'\)$/m);
      expectUsageError(run(['netns', 'dle', name]), /invalid <verb> "dle": choose one of add, del, list/);
      expectUsageError(run(['netns', 'add', fresh, '--bogus']), /unknown option --bogus/);
      expectUsageError(run(['netns', 'add']), /add needs a <name>/);
      expectUsageError(run(['netns', 'del']), /del needs a <name>/);
      expectUsageError(run(['netns']), /missing <verb> \(add, del, list\)/);
      expectUsageError(run(['netns', 'list', name]), /list takes no names/);
      expect(existsSync(ns)).toBe(true);
      expect(existsSync(`/run/netns/${fresh}`)).toBe(false);
    } finally {
      destroyTestNetns([`/run/netns/${fresh}`].filter(existsSync));
    }
  }));

  it('del of a namespace that does not exist says so and fails (like ip netns del)', () => {
    const r = run(['netns', 'del', 'flaxt-never-was']);
    expect(r).toMatchObject({ code: 1, stdout: '', stderr: 'flax: netns "flaxt-never-was" does not exist (/run/netns/flaxt-never-was)\n' });
  });
});

describe.skipIf(!isRoot || !existsSync(flax))('flax usage errors, version, status, demo', () => {
  const commands = () => [...run(['--help']).stdout.matchAll(/^ {2}flax (\w+)/gm)].map((m) => m[1]);

  it('every command refuses an unknown option with exit 2 and one line, before running anything', () => withTestNetns(1, ([node]) => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-cli-usage-'));
    try {
      const cmds = commands();
      expect(cmds).toEqual(expect.arrayContaining(['cni', 'netns', 'status', 'demo', 'version']));
      // in a throwaway netns, with empty config/state dirs: even if a command did run, it could touch nothing real
      const env = { NETCONFPATH: tmp, TMPDIR: tmp };
      for (const c of cmds) expectUsageError(run([c, '--no-such-flag'], env, node), new RegExp(`^flax: ${c}: unknown option --no-such-flag \\(see 'flax ${c} --help'\\)$`, 'm'));
      expectUsageError(run(['frob']), /^flax: unknown command "frob" \(see 'flax --help'\)$/m);
      expectUsageError(run([]), /^flax: missing command \(cni, netns, status, demo/m);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }));

  it('flax --version and flax version print the version', () => {
    const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
    for (const args of [['--version'], ['version']]) {
      const r = run(args);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      expect(r.stdout).toBe(`flax ${version} (CNI spec 0.1.0 - 1.1.0)\n`);
    }
    expectUsageError(run(['version', 'extra']), /unexpected argument "extra"/);
  });

  it('status: a usage error prints nothing else; -o yaml is refused', () => {
    const env = { NETCONFPATH: os.tmpdir() };
    expectUsageError(run(['status', '--bogus'], env), /unknown option --bogus/);
    expectUsageError(run(['status', '-o', 'yaml'], env), /invalid --output "yaml": choose one of table, json/);
    const empty = mkdtempSync(path.join(os.tmpdir(), 'flaxt-empty-'));
    try {
      const r = run(['status', '--cache-dir', empty], { NETCONFPATH: path.join(os.tmpdir(), 'flaxt-empty-conf') });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('(no network configurations)');
      expect(r.stdout).toContain('(no cached attachments)');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('demo: a usage error leaves a previous run\'s leftovers alone (the cleanup never ran)', () => withTestNetns(0, () => {
    const prefix = uniqueName('flaxt-du');
    const scratch = mkdtempSync(path.join(os.tmpdir(), 'flax-demo-usage-'));
    const nodeNs = `/run/netns/${prefix}-node`;
    try {
      expect(run(['netns', 'add', `${prefix}-node`]).code).toBe(0);
      writeFileSync(path.join(scratch, 'leftover'), '');
      const base = ['demo', '--single-node', '--prefix', prefix, '--scratch', scratch];
      expectUsageError(run([...base, '--cleanup', '--bogus']), /unknown option --bogus/);
      expectUsageError(run([...base, '--pods', '0']), /--pods wants a whole number from 1 to 50, got "0"/);
      expectUsageError(run([...base, '--timeout', 'a while']), /--timeout wants a duration such as 30s/);
      expect(existsSync(nodeNs)).toBe(true);
      expect(existsSync(path.join(scratch, 'leftover'))).toBe(true);
    } finally {
      destroyTestNetns([nodeNs].filter(existsSync));
      rmSync(scratch, { recursive: true, force: true });
    }
  }));

  it('demo --help states the cniVersion the demo really negotiates with these plugins', () => {
    const help = run(['demo', '--help']).stdout.replace(/\s+/g, ' ');
    const stated = /negotiated — the highest of ([\d., ]+) that every plugin supports: ([\d.]+) with flax/.exec(help);
    expect(stated, help).not.toBeNull();
    const offered = stated![1].split(/, /).map((v) => v.trim());
    const supported = ['loopback', 'bridge', 'host-local'].map((p) => {
      const r = spawnSync(path.join(root, 'dist/bin', p), [], { input: '{"cniVersion":"1.0.0"}', encoding: 'utf8', env: { PATH: process.env.PATH!, CNI_COMMAND: 'VERSION' } });
      return JSON.parse(r.stdout).supportedVersions as string[];
    });
    const best = offered.filter((v) => supported.every((s) => s.includes(v))).pop();
    expect(stated![2]).toBe(best);
    expect(help).toMatch(/--timeout per-plugin timeout: a duration such as 30s, 500ms, 2m; a bare number is seconds/);
    expect(run(['cni', '--help']).stdout.replace(/\s+/g, ' ')).toMatch(/--timeout per-plugin timeout: a duration such as 30s, 500ms, 2m; a bare number is seconds/);
  });
});

describe.skipIf(!isRoot || !existsSync(flax) || pluginDir !== path.join(root, 'dist/bin'))('conf/ samples run with the plugins flax ships', () => {
  const samples = readdirSync(path.join(root, 'conf')).filter((f) => f.endsWith('.conflist'));

  it.each(samples)('%s: add, check, del in a throwaway node', (file) => withTestNetns(2, ([node, pod]) => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-conf-sample-'));
    try {
      const list = JSON.parse(readFileSync(path.join(root, 'conf', file), 'utf8'));
      for (const p of list.plugins) expect(existsSync(path.join(pluginDir, p.type)), `${file}: plugin ${p.type} is not one flax ships`).toBe(true);
      // host-local state goes to the scratch dir, not the machine's /var/lib/cni
      for (const p of list.plugins) if (p.ipam?.type === 'host-local') p.ipam.dataDir = path.join(tmp, 'ipam');
      // flannel reads the agent's subnet file: give it one, and keep its files in the scratch dir too
      for (const p of list.plugins.filter((x: { type: string }) => x.type === 'flannel')) {
        writeFileSync(path.join(tmp, 'subnet.env'), 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.9.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
        Object.assign(p, { subnetFile: path.join(tmp, 'subnet.env'), dataDir: path.join(tmp, 'flannel'), ipam: { dataDir: path.join(tmp, 'ipam') } });
      }
      mkdirSync(path.join(tmp, 'net.d'));
      writeFileSync(path.join(tmp, 'net.d', file), JSON.stringify(list));
      const env = { NETCONFPATH: path.join(tmp, 'net.d'), CNI_PATH: pluginDir };
      const c = ['--cache-dir', path.join(tmp, 'cache')];
      const add = run(['cni', 'add', list.name, pod, ...c], env, node);
      expect(add.code, add.stderr).toBe(0);
      if (!/^0\.[123]\./.test(list.cniVersion)) { // CHECK exists from 0.4.0 (kube-flannel's conflist is 0.3.1)
        const check = run(['cni', 'check', list.name, pod, ...c], env, node);
        expect(check.code, check.stderr).toBe(0);
      }
      const del = run(['cni', 'del', list.name, pod, ...c], env, node);
      expect(del.code, del.stderr).toBe(0);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }));
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

  it('a plugin\'s stderr (e.g. its rollback notes) is shown once, and the error line points at it', () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-cli-stderr-'));
    try {
      const confDir = path.join(tmp, 'net.d');
      mkdirSync(confDir);
      writeFileSync(path.join(confDir, 'a.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'noisy', plugins: [{ type: 'alpha' }] }));
      const r = run(['cni', 'add', 'noisy', '/run/netns/none', '--cache-dir', path.join(tmp, 'cache')],
        { NETCONFPATH: confDir, CNI_PATH: path.join(root, 'test/fixtures/stub-plugins'), STUB_STDERR: 'alpha' });
      expect(r.code).toBe(1);
      expect(r.stderr.match(/stub alpha exploded/g)).toHaveLength(1);
      expect(r.stderr).toBe('panic: stub alpha exploded\nflax: plugin type="alpha" failed (add): see its stderr above (code 999)\n');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!isRoot || !existsSync(flax))('issue 21 item 8: one output flag, one config-dir flag, completion, root, bad values', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-cli-i21-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const nobody = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', path.join(publicDistBin(path.dirname(flax)), path.basename(flax)), ...args], { encoding: 'utf8', env: { PATH: process.env.PATH!, ...env } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it.each([['gc'], ['status'], ['tombstones']])('flax %s as an unprivileged user: exit 1, "must run as root", no report', (cmd) => {
    const r = nobody([cmd], { NETCONFPATH: tmp });
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toBe(`flax: ${cmd}: must run as root (running as uid 65534)\n`);
  });

  it('status --cache-dir /nonexistent exits 1 naming it; --cni-conf-dir likewise', () => {
    const missing = path.join(tmp, 'nonexistent');
    expect(run(['status', '--cache-dir', missing], { NETCONFPATH: tmp })).toMatchObject({ code: 1, stdout: '', stderr: `flax: status: --cache-dir ${missing}: no such directory\n` });
    expect(run(['status', '--cni-conf-dir', missing, '--cache-dir', tmp])).toMatchObject({ code: 1, stdout: '', stderr: `flax: status: --cni-conf-dir ${missing}: no such directory\n` });
  });

  it('netns add bad/name is a bad value: exit 2, nothing created', () => {
    expectUsageError(run(['netns', 'add', 'bad/name']), /^flax: netns: invalid netns name "bad\/name"/);
    expectUsageError(run(['netns', 'add', '..']), /invalid netns name "\.\."/);
    expect(existsSync('/run/netns/bad')).toBe(false);
  });

  it('gc --min-age abc says "expected seconds" and shows what was typed', () => {
    expectUsageError(run(['gc', '--dry-run', '--min-age', 'abc'], { NETCONFPATH: tmp }), /--min-age: expected seconds \(a number >= 0\), got "abc"/);
    expectUsageError(run(['demo', '--single-node', '--pods', 'many']), /--pods wants a whole number from 1 to 50, got "many"/);
  });

  it('--help shows numbers as numbers', () => {
    const help = (args: string[]) => run([...args, '--help']).stdout.replace(/\s+/g, ' ');
    expect(help(['gc'])).toMatch(/--min-age seconds: [^[]*\[number\] \[default: 60\]/);
    for (const o of ['--nodes', '--pods-per-node', '--pods']) expect(help(['demo'])).toMatch(new RegExp(`${o} [^[]*\\[number\\]`));
    expect(help(['demo'])).not.toMatch(/--pods[^[]*\[string\]/);
  });

  it('sandbox run --help lists run\'s options only (and each verb its own)', () => {
    const r = run(['sandbox', 'run', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^flax sandbox run <name>/);
    for (const o of ['--net', '--hostname', '--share-pid', '--cap-args', '--args', '--cni-conf-dir, --netconf-path', '--cni-path', '--cache-dir', '--sandbox-dir']) expect(r.stdout).toContain(o);
    for (const o of ['--detach', '--force', '--timeout', '--json', '--output']) expect(r.stdout).not.toContain(o);
    const rm = run(['sandbox', 'rm', '--help']).stdout;
    for (const o of ['--force', '--timeout', '--cni-path']) expect(rm).toContain(o);
    expect(rm).not.toContain('--net ');
    // the whole command's help still lists everything
    expect(run(['sandbox', '--help']).stdout).toContain('--detach');
  });

  /** A one-network conf dir (loopback only): what gc needs to judge anything. */
  const writeLoopbackList = (dir: string) => writeFileSync(path.join(dir, '99-lo.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'clilo', plugins: [{ type: 'loopback' }] }));

  it('-o json|table (and --json) on gc, sandbox ls/inspect, status, version', () => {
    const conf = path.join(tmp, 'conf');
    const cache = path.join(tmp, 'cache');
    const sandboxes = path.join(tmp, 'sandboxes');
    for (const d of [conf, cache, sandboxes]) mkdirSync(d, { recursive: true });
    writeLoopbackList(conf); // a sweeper that sees no network sweeps nothing (and says so instead)
    const env = { NETCONFPATH: conf, FLAX_SANDBOX_DIR: sandboxes, FLAX_CNI_SOCKET: '' };
    for (const o of [['-o', 'json'], ['--json'], ['--output', 'json']]) {
      const gc = run(['gc', '--dry-run', '--cache-dir', cache, ...o], env);
      expect(gc.code, gc.stderr).toBe(0);
      expect(JSON.parse(gc.stdout)).toMatchObject({ dryRun: true });
      expect(JSON.parse(run(['sandbox', 'ls', ...o], env).stdout)).toEqual([]);
      expect(JSON.parse(run(['status', '--cache-dir', cache, ...o], env).stdout)).toMatchObject({ confDir: conf, cacheDir: cache });
      expect(JSON.parse(run(['version', ...o]).stdout)).toMatchObject({ version: expect.any(String), cniVersions: expect.arrayContaining(['1.1.0']) });
    }
    expect(run(['gc', '--dry-run', '--cache-dir', cache, '-o', 'table'], env).stdout).toContain(`nothing to remove (networks in ${conf}`);
    expect(run(['sandbox', 'ls', '-o', 'table'], env).stdout).toMatch(/^NAME\s+PAUSE-PID/);
    expect(run(['version', '-o', 'table']).stdout).toMatch(/^flax \S+ \(CNI spec/);
    expectUsageError(run(['sandbox', 'inspect', 'nope', '-o', 'yaml'], env), /invalid --output "yaml": choose one of table, json/);
    expectUsageError(run(['gc', '--json', '-o', 'table'], env), /--json and -o table contradict each other/);
    expectUsageError(run(['sandbox', 'run', 'x', '--json'], env), /--json does not apply to run/);
  });

  it('gc and tombstones take NETCONFPATH (and gc CNI_PATH) when no flag is given; the flag wins', () => {
    const conf = mkdtempSync(path.join(tmp, 'envconf-'));
    const other = mkdtempSync(path.join(tmp, 'flagconf-'));
    const cache = mkdtempSync(path.join(tmp, 'envcache-'));
    for (const d of [conf, other]) writeLoopbackList(d);
    expect(run(['gc', '--dry-run', '--cache-dir', cache], { NETCONFPATH: conf, CNI_PATH: tmp }).stdout).toContain(`networks in ${conf}`);
    expect(run(['gc', '--dry-run', '--cache-dir', cache, '--netconf-path', other], { NETCONFPATH: conf }).stdout).toContain(`networks in ${other}`);
    const t = run(['tombstones', '--dry-run', '--cache-dir', cache, '--cni-conf-dir', other], { NETCONFPATH: path.join(tmp, 'nope') });
    expect(t.code, t.stderr).toBe(0);
  });

  it('completion bash: the script completes commands, verbs, options and choices with dist/bin/flax as typed', () => {
    const script = run(['completion', 'bash']);
    expect(script.code).toBe(0);
    const file = path.join(tmp, 'flax.bash');
    writeFileSync(file, script.stdout);
    const complete = (...words: string[]) => {
      const r = spawnSync('bash', ['-c', `source ${file}; COMP_WORDS=("$@"); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); _flax_completions; printf '%s\\n' "\${COMPREPLY[@]}"; complete -p flax`, 'bash', flax, ...words], { encoding: 'utf8', env: { PATH: process.env.PATH! } });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout.trim().split('\n');
    };
    const top = complete('');
    expect(top).toEqual(expect.arrayContaining(['cni', 'netns', 'status', 'gc', 'sandbox', 'tombstones', 'completion']));
    expect(top[top.length - 1]).toBe('complete -o bashdefault -o default -F _flax_completions flax');
    expect(complete('sa')).toContain('sandbox');
    expect(complete('cni', '')).toEqual(expect.arrayContaining(['add', 'del', 'check', 'gc', 'status']));
    expect(complete('status', '-o', '')).toEqual(expect.arrayContaining(['table', 'json']));
    expect(complete('gc', '--cni-c')).toContain('--cni-conf-dir');
    expect(complete('completion', '')).toEqual(expect.arrayContaining(['bash', 'zsh']));
  });

  it('completion zsh: a #compdef script; under zsh it hands name:description pairs to _describe', () => {
    const script = run(['completion', 'zsh']);
    expect(script.code).toBe(0);
    expect(script.stdout).toMatch(/^#compdef flax\n/);
    const file = path.join(tmp, '_flax');
    writeFileSync(file, script.stdout);
    const zsh = spawnSync('sh', ['-c', 'command -v zsh'], { encoding: 'utf8' }).stdout.trim();
    if (!zsh) return; // no zsh here: the script's shape is all that can be checked
    expect(spawnSync(zsh, ['-n', file]).status).toBe(0);
    // compdef/_describe/_default stubbed: what the script hands zsh's completion system
    const r = spawnSync(zsh, ['-fc', `compdef() { :; }; _describe() { print -l -- "\${(@P)2}"; }; _default() { print DEFAULT; }; source ${file}; words=("$@"); CURRENT=$#; _flax_completions`, 'zsh', flax, ''], { encoding: 'utf8', env: { PATH: process.env.PATH! } });
    expect(r.status, r.stderr).toBe(0);
    const top = r.stdout.trim().split('\n');
    expect(top).toEqual(expect.arrayContaining([expect.stringMatching(/^cni:run a network list/), expect.stringMatching(/^status:/)]));
  });
});
