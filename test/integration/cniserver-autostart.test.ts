/**
 * Issue 24: the CNI server on hosts without the DaemonSet.
 *  - auto mode: the static client (dist/bin/<plugin>) starts `flaxd
 *    --no-overlay` when no server answers; concurrent first calls start one;
 *    a flaxd that cannot start leaves the calls to the standalone plugin
 *    (and is not retried at every call); off is off;
 *  - `--idle-exit`: the server exits by itself once no call came;
 *  - socket activation: flaxd serves a listening socket handed over as fd 3
 *    (LISTEN_FDS=1, LISTEN_PID), as systemd's flax-cni.socket does, and
 *    leaves it listening when it stops (systemd keeps it for the next start).
 * Each test has its own temp dir: a copy of the client (it looks for flaxd
 * beside its real path) with the rest of dist/bin linked beside it, its own
 * socket, log dir and config dir; no machine path is used.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cniServersOf } from '../lib/proc';
import { DIST_BIN, publicDistBin } from '../lib/cni';

const VERSION_CONF = '{"cniVersion":"1.0.0","name":"auto","type":"loopback"}';
const STATUS_CONF = '{"cniVersion":"1.1.0","name":"auto","type":"loopback"}';
const root = mkdtempSync(path.join(tmpdir(), 'flax-autostart-'));
const started: number[] = [];

afterAll(() => {
  for (const pid of started) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  rmSync(root, { recursive: true, force: true });
});

interface Host {
  dir: string;
  bin: string;
  socket: string;
  logDir: string;
  env: NodeJS.ProcessEnv;
}

/** A plugin dir: the client copied (loopback), everything else of dist/bin (or `from`) linked; `flaxd` may be a script of the test's. */
function host(name: string, flaxd?: string, from = DIST_BIN): Host {
  const dir = path.join(root, name);
  const bin = path.join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  for (const f of readdirSync(from)) {
    if (f === 'loopback' || (flaxd !== undefined && f === 'flaxd')) continue;
    symlinkSync(path.join(from, f), path.join(bin, f));
  }
  copyFileSync(path.join(from, 'loopback'), path.join(bin, 'loopback'));
  if (flaxd !== undefined) writeFileSync(path.join(bin, 'flaxd'), flaxd, { mode: 0o755 });
  const socket = path.join(dir, 'run/cni.sock');
  const logDir = path.join(dir, 'log');
  return { dir, bin, socket, logDir, env: { PATH: process.env.PATH, FLAX_CNI_SOCKET: socket, FLAX_LOG_DIR: logDir, FLAX_CNI_SERVER: 'auto', FLAX_CNI_SERVER_WAIT_MS: '60000' } };
}

type Out = { code: number; stdout: string; stderr: string };

/** A CNI call through the client (`name` in h.bin): resolves with exit code, stdout and stderr. */
function call(h: Host, command: string, env: NodeJS.ProcessEnv = {}, name = 'loopback'): Promise<Out> {
  return new Promise((resolve) => {
    const p = spawn(path.join(h.bin, name), [], { env: { ...h.env, CNI_COMMAND: command, CNI_PATH: h.bin, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    p.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(command === 'VERSION' ? VERSION_CONF : STATUS_CONF);
  });
}
/** CNI VERSION through the client */
const versionCall = (h: Host, env: NodeJS.ProcessEnv = {}) => call(h, 'VERSION', env);
/** CNI STATUS through the client: goes where an ADD goes (a VERSION is answered by the client itself while it starts the server) */
const statusCall = (h: Host, env: NodeJS.ProcessEnv = {}) => call(h, 'STATUS', env);


async function until<T>(what: string, fn: () => T | undefined | false, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGTERM to the servers of h and wait until they are gone; returns the log. */
async function stopServers(h: Host): Promise<string> {
  for (const pid of cniServersOf(h.socket)) process.kill(pid, 'SIGTERM');
  await until('the server to exit', () => cniServersOf(h.socket).length === 0);
  return readFileSync(path.join(h.logDir, 'cni-server.log'), 'utf8');
}

const VERSION_OK = (r: { code: number; stdout: string }) => r.code === 0 && JSON.parse(r.stdout).supportedVersions?.includes('1.1.0');
/** loopback's STATUS: nothing on stdout, exit 0 */
const STATUS_OK = (r: Out) => r.code === 0 && r.stdout === '';

describe('auto mode: the client starts flaxd --no-overlay', () => {
  it('concurrent first calls start exactly one server, detached, logging under the log dir; all are served', async () => {
    const h = host('concurrent');
    const results = await Promise.all(Array.from({ length: 8 }, () => statusCall(h)));
    for (const r of results) expect(STATUS_OK(r), `${r.stdout}${r.stderr}`).toBe(true);
    const pids = cniServersOf(h.socket);
    started.push(...pids);
    expect(pids).toHaveLength(1);
    // its own session, not the caller's; root-only socket as flaxd makes it
    const stat = readFileSync(`/proc/${pids[0]}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    expect(Number(fields[3]), 'session id = its own pid').toBe(pids[0]);
    expect((statSync(h.socket).mode & 0o777).toString(8)).toBe('600');
    expect(readFileSync(`/proc/${pids[0]}/cmdline`, 'utf8').split('\0')).toEqual(expect.arrayContaining(['--idle-exit', '10m', '--gc-interval', '0']));
    // a later call finds it and starts nothing
    expect(STATUS_OK(await statusCall(h))).toBe(true);
    expect(cniServersOf(h.socket)).toEqual(pids);
    const log = await stopServers(h);
    expect(log.match(/cni server: listening on /g), log).toHaveLength(1);
    // the calls went to the server: 9 served (none ran standalone)
    expect(log, log).toMatch(/served 9, failed 0/);
  });

  it('the client waits on a ready pipe (fd 3, FLAX_CNI_READY_FD), which flaxd writes and closes once its socket listens', async () => {
    // what the started flaxd inherits, recorded before it becomes the real one (same pid)
    const rec = path.join(root, 'ready', 'inherited');
    const h = host('ready', `#!/bin/sh\necho "$$ $FLAX_CNI_READY_FD $(readlink /proc/$$/fd/3)" > ${rec}\nexec ${path.join(DIST_BIN, 'flaxd')} "$@"\n`);
    const r = await statusCall(h);
    expect(STATUS_OK(r), r.stdout + r.stderr).toBe(true);
    const [pid, fdVar, fd3] = readFileSync(rec, 'utf8').trim().split(' ');
    started.push(Number(pid));
    expect(fdVar).toBe('3');
    expect(fd3).toMatch(/^pipe:\[\d+\]$/);
    expect(cniServersOf(h.socket)).toEqual([Number(pid)]);
    // flaxd closed it (the client's copy is gone with the client): no descriptor of flaxd is that pipe any more
    const fds = readdirSync(`/proc/${pid}/fd`).map((f) => { try { return readlinkSync(`/proc/${pid}/fd/${f}`); } catch { return ''; } });
    expect(fds).not.toContain(fd3);
    const log = await stopServers(h);
    expect(log, log).toMatch(/served 1, failed 0/);
  });

  it('the mode comes from <config dir>/cni-server when FLAX_CNI_SERVER is unset; off starts nothing', async () => {
    const counter = (h: Host) => { try { return readFileSync(path.join(h.dir, 'starts'), 'utf8').trim().split('\n').length; } catch { return 0; } };
    const fake = (dir: string) => `#!/bin/sh\necho x >> ${path.join(root, dir, 'starts')}\nexit 1\n`;
    const off = host('off', fake('off'));
    const conf = path.join(off.dir, 'etc');
    mkdirSync(conf);
    writeFileSync(path.join(conf, 'cni-server'), 'systemd\n');
    const noEnv = { ...off.env, FLAX_CNI_SERVER: undefined, FLAX_CONFIG_DIR: conf };
    expect(STATUS_OK(await statusCall(off, noEnv))).toBe(true);
    expect(STATUS_OK(await statusCall(off, { FLAX_CNI_SERVER: 'off' }))).toBe(true);
    expect(VERSION_OK(await versionCall(off, noEnv))).toBe(true);
    expect(counter(off), 'no start unless auto').toBe(0);
    const on = host('on', fake('on'));
    const conf2 = path.join(on.dir, 'etc');
    mkdirSync(conf2);
    writeFileSync(path.join(conf2, 'cni-server'), 'auto\n');
    expect(STATUS_OK(await statusCall(on, { FLAX_CNI_SERVER: undefined, FLAX_CONFIG_DIR: conf2 }))).toBe(true);
    expect(counter(on), 'auto in the file: one start').toBe(1);
  });

  it('a flaxd that cannot start: the call runs standalone, and the next calls do not try again at once', async () => {
    const h = host('broken', `#!/bin/sh\necho started >> ${path.join(root, 'broken', 'starts')}\necho 'flaxd: cannot start' >&2\nexit 1\n`);
    const r1 = await statusCall(h);
    expect(STATUS_OK(r1), r1.stdout + r1.stderr).toBe(true);
    const r2 = await Promise.all([statusCall(h), statusCall(h), versionCall(h)]);
    for (const r of r2.slice(0, 2)) expect(STATUS_OK(r)).toBe(true);
    expect(VERSION_OK(r2[2])).toBe(true);
    expect(readFileSync(path.join(h.dir, 'starts'), 'utf8').trim().split('\n')).toEqual(['started']);
    // its stderr went to the log, not to the runtime's
    expect(r1.stderr).not.toContain('cannot start');
    expect(readFileSync(path.join(h.logDir, 'cni-server.log'), 'utf8')).toContain('flaxd: cannot start');
    expect(Number(readFileSync(`${h.socket}.autostart`, 'utf8').trim())).toBeGreaterThan(0);
    expect(existsSync(h.socket)).toBe(false);
  });

  it('a flaxd that never answers within the wait: the call runs standalone, the start is recorded as failed', async () => {
    const h = host('hung', `#!/bin/sh\necho started >> ${path.join(root, 'hung', 'starts')}\necho $$ > ${path.join(root, 'hung', 'pid')}\nexec sleep 600\n`);
    const r = await statusCall(h, { FLAX_CNI_SERVER_WAIT_MS: '300' });
    expect(STATUS_OK(r), r.stdout + r.stderr).toBe(true);
    expect(Number(readFileSync(`${h.socket}.autostart`, 'utf8').trim())).toBeGreaterThan(0);
    // the next call does not wait for it again
    expect(STATUS_OK(await statusCall(h, { FLAX_CNI_SERVER_WAIT_MS: '600000' }))).toBe(true);
    expect(readFileSync(path.join(h.dir, 'starts'), 'utf8').trim().split('\n')).toEqual(['started']);
    process.kill(Number(readFileSync(path.join(h.dir, 'pid'), 'utf8')), 'SIGKILL');
  });

  it('not root: no server is started (the standalone plugin runs)', async () => {
    const h = host('nonroot', `#!/bin/sh\necho x >> ${path.join(root, 'nonroot', 'starts')}\nexit 1\n`, publicDistBin());
    for (const d of [root, h.dir, h.bin]) chmodSync(d, 0o755); // the caller (nobody) reaches the plugin and what it links to
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', path.join(h.bin, 'loopback')], {
      env: { ...h.env, CNI_COMMAND: 'VERSION' }, input: VERSION_CONF, encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(path.join(h.dir, 'starts'))).toBe(false);
  });
});

describe('auto mode: a VERSION call is answered by the client itself while the server starts', () => {
  const PLUGINS = ['bridge', 'host-local', 'loopback', 'portmap', 'flannel'];

  it('answers at once, byte for byte what each plugin answers, with no standalone plugin to run; concurrent calls start one server', async () => {
    // a flaxd that never answers: a VERSION that waited for it would wait the whole minute, then find no plugin to run
    const h = host('version', `#!/bin/sh\necho started >> ${path.join(root, 'version', 'starts')}\necho $$ >> ${path.join(root, 'version', 'pids')}\nexec sleep 600\n`);
    for (const name of PLUGINS) {
      rmSync(path.join(h.bin, name), { force: true });
      copyFileSync(path.join(DIST_BIN, name), path.join(h.bin, name)); // the client, its real path here (flaxd beside it)
      rmSync(path.join(h.bin, `${name}.standalone`), { force: true });
    }
    rmSync(path.join(h.bin, 'flax'), { force: true });
    const results = await Promise.all(PLUGINS.flatMap((name) => [call(h, 'VERSION', {}, name), call(h, 'VERSION', {}, name)]));
    for (const [i, r] of results.entries()) {
      const name = PLUGINS[i >> 1];
      const own = spawnSync(path.join(DIST_BIN, `${name}.standalone`), [], { env: { PATH: process.env.PATH, CNI_COMMAND: 'VERSION' }, input: VERSION_CONF, encoding: 'utf8' });
      expect(own.status).toBe(0);
      expect({ name, code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ name, code: 0, stdout: own.stdout, stderr: '' });
    }
    // with no server and no auto mode the client answers all the same, and starts nothing
    for (const name of PLUGINS) {
      const off = await call(h, 'VERSION', { FLAX_CNI_SERVER: 'off' }, name);
      expect({ name, code: off.code, stdout: off.stdout }).toEqual({ name, code: 0, stdout: results[PLUGINS.indexOf(name) * 2].stdout });
    }
    // the start went on without the callers, once
    const starts = () => { try { return readFileSync(path.join(h.dir, 'starts'), 'utf8').trim().split('\n'); } catch { return []; } };
    await until('the start', () => starts().length > 0);
    for (const pid of readFileSync(path.join(h.dir, 'pids'), 'utf8').trim().split('\n')) started.push(Number(pid));
    await new Promise((r) => setTimeout(r, 500));
    expect(starts()).toEqual(['started']);
  });

  it('the server it starts serves the calls that follow; the VERSION was not sent to it, and the start\'s probe is not logged', async () => {
    const h = host('version-real');
    const v = await versionCall(h);
    expect(VERSION_OK(v), v.stdout + v.stderr).toBe(true);
    await until('the server', () => cniServersOf(h.socket).length > 0);
    const s = await statusCall(h);
    expect(STATUS_OK(s), s.stdout + s.stderr).toBe(true);
    const pids = cniServersOf(h.socket);
    started.push(...pids);
    expect(pids).toHaveLength(1);
    await until('the start to be recorded as done', () => readFileSync(`${h.socket}.autostart`, 'utf8') === '');
    const log = await stopServers(h);
    expect(log.match(/cni server: listening on /g), log).toHaveLength(1);
    expect(log, log).toMatch(/served 1, failed 0/);
    expect(log).not.toMatch(/dropped/);
  });

  it('a flaxd that cannot start, started by a VERSION: the failure is recorded, and the next call does not start it again', async () => {
    const h = host('version-broken', `#!/bin/sh\necho started >> ${path.join(root, 'version-broken', 'starts')}\necho 'flaxd: cannot start' >&2\nexit 1\n`);
    const v = await versionCall(h);
    expect(VERSION_OK(v), v.stdout + v.stderr).toBe(true);
    await until('the failure record', () => existsSync(`${h.socket}.autostart`) && Number(readFileSync(`${h.socket}.autostart`, 'utf8').trim()) > 0);
    expect(readFileSync(path.join(h.logDir, 'cni-server.log'), 'utf8')).toContain('flaxd: cannot start');
    const s = await statusCall(h);
    expect(STATUS_OK(s), s.stdout + s.stderr).toBe(true);
    expect(readFileSync(path.join(h.dir, 'starts'), 'utf8').trim().split('\n')).toEqual(['started']);
  });
});

describe('flaxd --idle-exit', () => {
  it('exits 0 once no call came for that long, removing its socket', async () => {
    const h = host('idle');
    mkdirSync(path.dirname(h.socket), { recursive: true });
    const p = spawn(path.join(h.bin, 'flaxd'), ['--no-overlay', '--cni-socket', h.socket, '--gc-interval', '0', '--idle-exit', '1s'], { stdio: ['ignore', 'ignore', 'pipe'] });
    started.push(p.pid!);
    let log = '';
    p.stderr.setEncoding('utf8').on('data', (d) => { log += d; });
    const code = await new Promise<number | null>((resolve) => p.on('exit', resolve));
    expect(code, log).toBe(0);
    expect(log).toMatch(/no call for 1 s \(--idle-exit\): exiting/);
    expect(existsSync(h.socket)).toBe(false);
  });

  it('is refused without --no-overlay, and needs a duration', () => {
    const flaxd = path.join(DIST_BIN, 'flaxd');
    const a = spawnSync(flaxd, ['--idle-exit', '10m'], { encoding: 'utf8' });
    expect(a.status).toBe(2);
    expect(a.stderr).toMatch(/--idle-exit is for --no-overlay/);
    const b = spawnSync(flaxd, ['--no-overlay', '--idle-exit', 'soon'], { encoding: 'utf8' });
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/invalid value "soon" for --idle-exit/);
  });
});

describe('socket activation (LISTEN_FDS), as systemd\'s flax-cni.socket starts flaxd', () => {
  /**
   * What systemd does, in python: bind the socket (0600) and listen, keep it,
   * and for each "start" line on stdin fork a flaxd with it as fd 3 and
   * LISTEN_FDS=1 LISTEN_PID=<that pid> (stderr into <log>.<n>); prints its pid.
   */
  const MINI_SYSTEMD = `
import os, socket, sys
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
os.umask(0o177); s.bind(path)
s.listen(64)
print('ready', flush=True)
n = 0
for line in sys.stdin:
    n += 1
    argv = line.split()
    pid = os.fork()
    if pid == 0:
        os.dup2(s.fileno(), 3)
        os.set_inheritable(3, True)  # dup2(3, 3) keeps the socket's close-on-exec
        fd = os.open(log + '.' + str(n), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 2)
        env = dict(os.environ, LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES='flax-cni.socket')
        os.execve(argv[0], argv, env)
    print(pid, flush=True)
`;
  /** mini systemd bound where `bound` says, serving `socket` by the flaxd it starts */
  async function miniSystemd(h: Host, bound = h.socket) {
    const p = spawn('python3', ['-c', MINI_SYSTEMD, bound, path.join(h.dir, 'flaxd.log')], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    p.stdout!.setEncoding('utf8').on('data', (d) => { out += d; });
    await until('the socket', () => out.includes('ready'));
    let n = 0;
    const start = async () => {
      const before = out.split('\n').length;
      p.stdin!.write(`${path.join(h.bin, 'flaxd')} --no-overlay --cni-socket ${h.socket} --gc-interval 0\n`);
      const pid = Number(await until('the pid', () => out.split('\n').length > before && out.trim().split('\n').pop()));
      started.push(pid);
      const file = path.join(h.dir, `flaxd.log.${++n}`);
      const log = () => { try { return readFileSync(file, 'utf8'); } catch { return ''; } };
      return { pid, log };
    };
    return { start, close: () => p.kill('SIGKILL') };
  }

  it('serves the socket handed over as fd 3, and leaves it listening when it stops', async () => {
    const h = host('activation');
    mkdirSync(path.dirname(h.socket), { recursive: true });
    const sd = await miniSystemd(h);
    try {
      const s1 = await sd.start();
      await until('flaxd to run', () => / running$/m.test(s1.log()) || !cniServersOf(h.socket).includes(s1.pid));
      expect(s1.log()).toMatch(/listening on /);
      const r = await versionCall(h, { FLAX_CNI_SERVER: 'off' });
      expect(VERSION_OK(r)).toBe(true);
      process.kill(s1.pid, 'SIGTERM');
      await until('flaxd to exit', () => /served \d+/.test(s1.log()) && !cniServersOf(h.socket).includes(s1.pid));
      expect(s1.log()).toMatch(/served 1, failed 0/);
      // systemd's socket is still there (0600) and still listening: a call waits for the next start
      expect(statSync(h.socket).isSocket()).toBe(true);
      expect((statSync(h.socket).mode & 0o777).toString(8)).toBe('600');
      const queued = versionCall(h, { FLAX_CNI_SERVER: 'off' });
      await new Promise((r2) => setTimeout(r2, 200));
      const s2 = await sd.start();
      const r2 = await queued;
      expect(VERSION_OK(r2), r2.stdout + r2.stderr).toBe(true);
      process.kill(s2.pid, 'SIGTERM');
      await until('flaxd to exit', () => /served \d+/.test(s2.log()));
      expect(s2.log(), 'the queued call was served by the second start').toMatch(/served 1, failed 0/);
    } finally {
      sd.close();
    }
  });

  it('LISTEN_PID of another process: the variables are ignored (flaxd binds its own socket)', async () => {
    const h = host('otherpid');
    mkdirSync(path.dirname(h.socket), { recursive: true });
    const p = spawn(path.join(h.bin, 'flaxd'), ['--no-overlay', '--cni-socket', h.socket, '--gc-interval', '0', '--idle-exit', '1s'], {
      stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LISTEN_FDS: '1', LISTEN_PID: '1' },
    });
    started.push(p.pid!);
    let log = '';
    p.stderr.setEncoding('utf8').on('data', (d) => { log += d; });
    expect(await new Promise((resolve) => p.on('exit', resolve)), log).toBe(0);
    expect(log).toMatch(/listening on /);
  });

  it('a handed-over socket bound elsewhere than --cni-socket is refused (exit 1, naming both)', async () => {
    const h = host('mismatch');
    mkdirSync(path.dirname(h.socket), { recursive: true });
    const other = path.join(h.dir, 'run/other.sock');
    const sd = await miniSystemd(h, other);
    try {
      const s1 = await sd.start();
      await until('flaxd to exit', () => !cniServersOf(h.socket).includes(s1.pid) && s1.log());
      expect(s1.log()).toContain(`bound to '${other}'`);
      expect(existsSync(`${h.socket}.lock`), 'a failed start leaves no lock file').toBe(false);
    } finally {
      sd.close();
    }
  });
});
