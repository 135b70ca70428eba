/**
 * `flax sandbox` on the real kernel, black-box through dist/bin/flax, run
 * inside a throwaway "node" netns (nsenter --net) so the bridge, veths and
 * masquerade rules live there; the sandbox root is a scratch dir under /run
 * (FLAX_SANDBOX_DIR), the conflists, libcni cache and host-local dataDir a
 * temp dir. Plus run's rollback with a fault injected at every step
 * (in-process, loopback-only network: nothing outside the sandbox).
 *
 * What it proves: reaping under a --share-pid pause (orphans re-parented to
 * pause, none left a zombie: /proc), sharing (hostname, SysV IPC, 127.0.0.1
 * between two execs; a third sandbox sees none of it), networks (address,
 * gateway, another sandbox; the attachment cached so `flax cni check` sees
 * it; rm leaves no reservation, veth, rule, pin or cache file), bad input
 * (clear error, nothing changed), failure midway (everything undone), a
 * SIGKILLed pause (ls shows it dead, rm cleans up).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { childrenOf } from '../lib/proc';
import { createTestNetns, destroyTestNetns, execIn } from '../lib/netns';
import { faultAt, InjectedFault } from '../../plugins/pkg/rollback';

const root = path.resolve(__dirname, '../..');
const flax = process.env.FLAX_BIN ?? path.join(root, 'dist/bin/flax');
const binDir = path.dirname(flax);
const isRoot = process.getuid?.() === 0;
const ready = isRoot && ['flax', 'nsexec', 'pause', 'bridge', 'loopback', 'host-local'].every((b) => existsSync(path.join(binDir, b)));

const NET = 'sbnet';
const BRIDGE = 'flaxsb0';
const GW = '10.254.7.1';

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(30);
  }
}
/** pids of running pause processes of sandboxes under dir (their stderr is <dir>/<name>/pause.log). */
function pausesUnder(dir: string): number[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).filter((e) => {
    try { return readlinkSync(`/proc/${e}/fd/2`).startsWith(dir + '/'); } catch { return false; }
  }).filter((e) => readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0')[0].endsWith('/pause')).map(Number);
}
/** Mount points under dir (from /proc/self/mountinfo). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m && m.startsWith(dir + '/'));
}

describe.skipIf(!ready)('flax sandbox', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-sb-'));
  const sbRoot = `/run/flaxt-sb-${process.pid}`;
  const confDir = path.join(tmp, 'net.d');
  const cacheDir = path.join(tmp, 'cache');
  const dataDir = path.join(tmp, 'ipam');
  const [node] = createTestNetns(1);
  mkdirSync(confDir, { recursive: true });
  writeFileSync(path.join(confDir, '10-sbnet.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: NET,
    plugins: [{ type: 'loopback' }, { type: 'bridge', bridge: BRIDGE, isGateway: true, ipMasq: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.254.7.0/24' }]], dataDir } }],
  }));
  // a network whose ADD fails after sbnet's succeeded (its plugin does not exist)
  writeFileSync(path.join(confDir, '20-broken.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'broken', plugins: [{ type: 'no-such-plugin-flaxt' }] }));
  writeFileSync(path.join(confDir, '30-lo.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'lonet', plugins: [{ type: 'loopback' }] }));
  const env = { PATH: process.env.PATH!, FLAX_SANDBOX_DIR: sbRoot, NETCONFPATH: confDir, CNI_PATH: binDir };

  /** flax … inside the node netns */
  function run(args: string[], extraEnv: Record<string, string> = {}) {
    const r = spawnSync('nsenter', [`--net=${node}`, '--', flax, ...args], { encoding: 'utf8', env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }
  const ok = (args: string[]) => {
    const r = run(args);
    if (r.code !== 0) throw new Error(`flax ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  const sbRun = (name: string, ...more: string[]) => ok(['sandbox', 'run', name, '--cache-dir', cacheDir, ...more]);
  const inspect = (name: string) => JSON.parse(ok(['sandbox', 'inspect', name]));
  const exec = (name: string, cmd: string[]) => run(['sandbox', 'exec', name, '--', ...cmd]);
  const cacheFiles = () => (existsSync(path.join(cacheDir, 'results')) ? readdirSync(path.join(cacheDir, 'results')) : []);
  const reservations = () => (existsSync(path.join(dataDir, NET)) ? readdirSync(path.join(dataDir, NET)).filter((f) => /^\d/.test(f)) : []);
  const nodeLinks = () => (JSON.parse(execIn(node, 'ip', ['-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname);
  const rules = () => execIn(node, 'nft', ['list', 'ruleset']);

  afterAll(() => {
    try {
      const left = existsSync(sbRoot) ? readdirSync(sbRoot).filter((n) => !n.startsWith('.')) : [];
      for (const n of left) run(['sandbox', 'rm', n, '--force', '--timeout', '1s']);
    } finally {
      for (const m of mountsUnder(sbRoot).sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
      while (readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === sbRoot)) {
        if (spawnSync('umount', ['-l', sbRoot]).status !== 0) break;
      }
      rmSync(sbRoot, { recursive: true, force: true });
      destroyTestNetns([node]);
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('reaping: orphans of a --share-pid sandbox become pause\'s children and none is left a zombie (200 in a loop)', async () => {
    sbRun('reap', '--share-pid');
    const s = inspect('reap');
    expect(s.alive).toBe(true);
    expect(s.pins.map((p: string) => path.basename(p))).toEqual(['net', 'ipc', 'uts', 'pid']);
    const pause = s.pausePid as number;
    // the exec'd shell double-forks: the grandchild is orphaned while it sleeps
    // (its output away from flax's pipes, or spawnSync would wait for it)
    expect(exec('reap', ['sh', '-c', '(sleep 1 >/dev/null 2>&1 &); exit 0']).code).toBe(0);
    await until('the orphan under pause', () => childrenOf(pause).some((c) => c.comm === 'sleep'));
    // inside, pause is PID 1 and the command is another pid of its namespace
    expect(exec('reap', ['sh', '-c', 'echo $$']).stdout.trim()).not.toBe('1');
    expect(exec('reap', ['sh', '-c', 'i=0; while [ $i -lt 200 ]; do (sh -c "exit 0" &); i=$((i+1)); done']).code).toBe(0);
    await until('pause without children', () => childrenOf(pause).length === 0);
    expect(childrenOf(pause).filter((c) => c.state === 'Z')).toEqual([]);
    expect(alive(pause)).toBe(true);
    ok(['sandbox', 'rm', 'reap']);
    expect(alive(pause)).toBe(false);
  });

  it('sharing: two execs see one hostname, SysV IPC and 127.0.0.1; a third sandbox sees none of it', async () => {
    sbRun('shareA', '--hostname', 'flaxt-a');
    sbRun('shareB');
    const hostBefore = readFileSync('/proc/sys/kernel/hostname', 'utf8');
    expect(exec('shareA', ['hostname']).stdout.trim()).toBe('flaxt-a');
    expect(exec('shareA', ['cat', '/proc/sys/kernel/hostname']).stdout.trim()).toBe('flaxt-a');
    expect(exec('shareB', ['hostname']).stdout.trim()).toBe('shareB');
    expect(readFileSync('/proc/sys/kernel/hostname', 'utf8')).toBe(hostBefore);
    // SysV shared memory made by one exec is seen by the next, not by B nor the host
    const id = exec('shareA', ['ipcmk', '-M', '4096']).stdout.match(/(\d+)/)?.[1];
    expect(id).toBeDefined();
    const segments = (out: string) => out.split('\n').filter((l) => /^0x[0-9a-f]+\s/.test(l)).map((l) => l.split(/\s+/));
    const inA = segments(exec('shareA', ['ipcs', '-m']).stdout);
    expect(inA.map((r) => [r[1], r[4]])).toEqual([[id, '4096']]);
    const key = inA[0][0];
    expect(segments(exec('shareB', ['ipcs', '-m']).stdout)).toEqual([]);
    expect(segments(spawnSync('ipcs', ['-m'], { encoding: 'utf8' }).stdout).map((r) => r[0])).not.toContain(key);
    // a server on 127.0.0.1 started detached; another exec connects
    const server = "require('net').createServer((s) => s.end('flaxt-hello')).listen(7777, '127.0.0.1')";
    const d = run(['sandbox', 'exec', 'shareA', '-d', '--', process.execPath, '-e', server]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/^\d+\n$/);
    const client = "const c = require('net').connect(7777, '127.0.0.1'); c.on('data', (d) => process.stdout.write(d)); c.on('error', (e) => { console.log(e.code); process.exit(3); })";
    let got = '';
    await until('the server', () => (got = exec('shareA', [process.execPath, '-e', client]).stdout) === 'flaxt-hello');
    expect(got).toBe('flaxt-hello');
    const fromB = exec('shareB', [process.execPath, '-e', client]);
    expect(fromB.stdout.trim()).toBe('ECONNREFUSED');
    expect(fromB.code).toBe(3);
    // rm stops the detached server too (it lives in the sandbox's netns)
    const serverPid = Number(d.stdout);
    ok(['sandbox', 'rm', 'shareA']);
    ok(['sandbox', 'rm', 'shareB']);
    expect(alive(serverPid)).toBe(false);
  });

  it('networks: address, gateway, another sandbox; cached for flax cni; rm leaves no reservation, veth, rule, pin or cache file', () => {
    const out = sbRun('web1', '--net', NET);
    expect(out).toMatch(new RegExp(`${NET}\\s+eth0\\s+10\\.254\\.7\\.\\d+/24\\s+${GW.replace(/\./g, '\\.')}`));
    sbRun('web2', '--net', NET, '--args', 'IgnoreUnknown=1;K8S_POD_NAME=web2');
    const s1 = inspect('web1');
    const s2 = inspect('web2');
    const ip2 = s2.networks[0].addresses[0].split('/')[0];
    expect(exec('web1', ['ping', '-c', '1', '-W', '2', GW]).code).toBe(0);
    expect(exec('web1', ['ping', '-c', '1', '-W', '2', ip2]).code).toBe(0);
    expect(exec('web1', ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']).stdout).toContain(s1.networks[0].addresses[0]);
    // cached as a runtime does: flax cni sees (and checks) the attachment
    expect(cacheFiles().sort()).toEqual([`${NET}-flax-sandbox-web1-eth0`, `${NET}-flax-sandbox-web2-eth0`]);
    const cached = JSON.parse(readFileSync(path.join(cacheDir, 'results', `${NET}-flax-sandbox-web2-eth0`), 'utf8'));
    expect(cached).toMatchObject({ kind: 'cniCacheV1', containerId: 'flax-sandbox-web2', netns: path.join(sbRoot, 'web2/net'), cniArgs: [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'web2']] });
    const check = run(['cni', 'check', NET, path.join(sbRoot, 'web1/net'), '--container-id', 'flax-sandbox-web1', '--cache-dir', cacheDir]);
    expect(check.code, check.stderr).toBe(0);
    const hostVeth = (s1.state.networks[0].result.interfaces as { name: string; sandbox?: string }[]).find((i) => !i.sandbox && i.name !== BRIDGE)!.name;
    expect(nodeLinks()).toContain(hostVeth);
    expect(rules()).toContain('flax-sandbox-web1');
    const ls = JSON.parse(ok(['sandbox', 'ls', '--json']));
    expect(ls.map((x: { name: string; alive: boolean }) => [x.name, x.alive])).toEqual([['web1', true], ['web2', true]]);
    expect(ok(['sandbox', 'ls'])).toMatch(new RegExp(`web1\\s+${s1.pausePid}\\s+yes\\s+${NET}\\s+10\\.254\\.7\\.\\d+/24\\s+\\d+s`));

    expect(ok(['sandbox', 'rm', 'web1'])).toBe('web1\n');
    expect(alive(s1.pausePid)).toBe(false);
    expect(cacheFiles()).toEqual([`${NET}-flax-sandbox-web2-eth0`]);
    expect(reservations()).toEqual([ip2]);
    expect(nodeLinks()).not.toContain(hostVeth);
    expect(rules()).not.toContain('flax-sandbox-web1');
    expect(mountsUnder(path.join(sbRoot, 'web1'))).toEqual([]);
    expect(existsSync(path.join(sbRoot, 'web1'))).toBe(false);
    // idempotent
    const again = run(['sandbox', 'rm', 'web1']);
    expect(again).toMatchObject({ code: 0, stdout: '' });
    expect(again.stderr).toMatch(/no sandbox web1: nothing to remove/);
    ok(['sandbox', 'rm', 'web2']);
    expect([cacheFiles(), reservations(), mountsUnder(sbRoot)]).toEqual([[], [], []]);
    expect(rules()).not.toContain('flax-sandbox-web2');
  });

  it('bad input: a clear error and nothing changed (usage errors exit 2, a second run of a name exits 1)', () => {
    sbRun('dup', '--net', NET);
    const before = { s: inspect('dup'), cache: cacheFiles(), resv: reservations(), mounts: mountsUnder(sbRoot), links: nodeLinks() };
    const usage: [string[], RegExp][] = [
      [['sandbox', 'run', '../x'], /invalid sandbox name "\.\.\/x"/],
      [['sandbox', 'run', 'a/b'], /invalid sandbox name "a\/b"/],
      [['sandbox', 'run', '.hidden'], /invalid sandbox name "\.hidden"/],
      [['sandbox', 'run'], /run needs <name>/],
      [['sandbox', 'exec', 'dup'], /exec needs a command/],
      [['sandbox', 'ls', 'dup'], /ls takes no name/],
      [['sandbox', 'rm', 'dup', '--net', NET], /--net does not apply to rm/],
      [['sandbox', 'run', 'x1', '--cap-args', '{'], /--cap-args is not valid JSON/],
      [['sandbox', 'run', 'x1', '--args', 'novalue'], /invalid CNI_ARGS pair "novalue"/],
      [['sandbox', 'frob', 'x1'], /invalid <verb> "frob"/],
    ];
    for (const [args, re] of usage) {
      const r = run(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(re);
    }
    const failures: [string[], RegExp][] = [
      [['sandbox', 'run', 'dup', '--cache-dir', cacheDir], new RegExp(`sandbox dup already exists \\(pause pid ${before.s.pausePid}, alive\\): flax sandbox rm dup first`)],
      [['sandbox', 'run', 'x2', '--net', 'nosuchnet'], /nosuchnet/],
      [['sandbox', 'run', 'x3', '--hostname', 'bad_host!'], /invalid hostname "bad_host!"/],
      [['sandbox', 'run', 'x4', '--net', NET, '--net', NET], /network sbnet given twice/],
      [['sandbox', 'exec', 'nosuch', '--', 'true'], /no sandbox nosuch/],
      [['sandbox', 'inspect', 'nosuch'], /no sandbox nosuch/],
    ];
    for (const [args, re] of failures) {
      const r = run(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(re);
    }
    expect({ s: inspect('dup'), cache: cacheFiles(), resv: reservations(), mounts: mountsUnder(sbRoot), links: nodeLinks() }).toEqual(before);
    expect(readdirSync(sbRoot).filter((n) => !n.startsWith('.'))).toEqual(['dup']);
    ok(['sandbox', 'rm', 'dup']);
  });

  it('a failure midway (the second network\'s ADD) undoes everything: DEL of the first, pause, pins, state', () => {
    const links = nodeLinks();
    const r = run(['sandbox', 'run', 'half', '--net', NET, '--net', 'broken', '--cache-dir', cacheDir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no-such-plugin-flaxt/);
    expect(existsSync(path.join(sbRoot, 'half'))).toBe(false);
    expect(existsSync(path.join(sbRoot, '.locks', 'half'))).toBe(false);
    expect([cacheFiles(), reservations(), mountsUnder(sbRoot)]).toEqual([[], [], []]);
    expect(nodeLinks().sort()).toEqual(links.sort());
    expect(rules()).not.toContain('flax-sandbox-half');
    expect(pausesUnder(sbRoot)).toEqual([]);
  });

  it('a SIGKILLed pause: ls shows it dead, exec refuses, rm cleans everything', async () => {
    sbRun('doomed', '--net', NET, '--share-pid');
    const s = inspect('doomed');
    process.kill(s.pausePid, 'SIGKILL');
    await until('pause gone', () => !alive(s.pausePid));
    const ls = JSON.parse(ok(['sandbox', 'ls', '--json']));
    expect(ls.find((x: { name: string }) => x.name === 'doomed')).toMatchObject({ alive: false, pausePid: s.pausePid });
    expect(ok(['sandbox', 'ls'])).toMatch(/doomed\s+\d+\s+no\s+sbnet/);
    const e = exec('doomed', ['true']);
    expect(e.code).toBe(1);
    expect(e.stderr).toMatch(/sandbox doomed is dead \(pause pid \d+ is gone\): flax sandbox rm doomed/);
    expect(cacheFiles()).toHaveLength(1);
    ok(['sandbox', 'rm', 'doomed']);
    expect([cacheFiles(), reservations(), mountsUnder(sbRoot)]).toEqual([[], [], []]);
    expect(existsSync(path.join(sbRoot, 'doomed'))).toBe(false);
  });

  it('liveness compares the start time (a reused pid is dead); removeSandbox ifDead keeps a live sandbox, removes a dead one', async () => {
    sbRun('reused');
    const file = path.join(sbRoot, 'reused/state.json');
    const st = JSON.parse(readFileSync(file, 'utf8'));
    const real = st.pause.startTime;
    writeFileSync(file, JSON.stringify({ ...st, pause: { ...st.pause, startTime: String(Number(real) - 1) } }));
    expect(inspect('reused').alive).toBe(false);
    writeFileSync(file, JSON.stringify(st));
    expect(inspect('reused').alive).toBe(true);
    // what a sweeper calls (no network here: in-process DELs would run in this process's netns)
    const { listSandboxes } = await import('../../plugins/sandbox/state');
    const { removeSandbox } = await import('../../plugins/sandbox/remove');
    expect(await removeSandbox('reused', { root: sbRoot, ifDead: true })).toMatchObject({ existed: true, keptAlive: true });
    expect(listSandboxes(sbRoot).map((x) => [x.name, x.alive])).toEqual([['reused', true]]);
    process.kill(st.pause.pid, 'SIGKILL');
    await until('pause gone', () => !alive(st.pause.pid));
    expect(listSandboxes(sbRoot).map((x) => [x.name, x.alive, x.pins.length])).toEqual([['reused', false, 3]]);
    expect(await removeSandbox('reused', { root: sbRoot, ifDead: true })).toMatchObject({ existed: true, killed: [] });
    expect(listSandboxes(sbRoot)).toEqual([]);
    expect(mountsUnder(sbRoot)).toEqual([]);
  });

  it('run rolls back from a fault at every step (in-process, loopback-only network)', async () => {
    const { runSandbox, RUN_STEPS } = await import('../../plugins/sandbox/run');
    const { listSandboxes } = await import('../../plugins/sandbox/state');
    const { isSameProcess } = await import('../../plugins/sandbox/proc');
    const steps = RUN_STEPS.map((s) => s.replace('<network>', 'lonet'));
    for (const step of steps) {
      let seen: { pid: number; startTime: string } | undefined;
      const hook = faultAt(step)!;
      const err = await runSandbox({
        name: 'faulty', root: sbRoot, nets: ['lonet'], confDir, cniPath: [binDir], cacheDir, stderr: null,
        fault: (s) => {
          const f = path.join(sbRoot, 'faulty/state.json');
          if (existsSync(f)) seen = JSON.parse(readFileSync(f, 'utf8')).pause;
          hook(s);
        },
      }).then(() => null, (e: unknown) => e);
      expect(err, step).toBeInstanceOf(InjectedFault);
      expect(listSandboxes(sbRoot).map((s) => s.name), step).toEqual([]);
      expect(mountsUnder(sbRoot), step).toEqual([]);
      expect(cacheFiles(), step).toEqual([]);
      if (seen) expect(isSameProcess(seen.pid, seen.startTime), `${step}: pause still runs`).toBe(false);
      expect(pausesUnder(sbRoot), step).toEqual([]);
    }
  });
});
