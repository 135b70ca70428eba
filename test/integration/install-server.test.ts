/**
 * `flax install --server auto` with the packaged flax (dist/pkg) into
 * scratch dirs: the mode is recorded where the plugin clients read it, an
 * installed client starts the package's flaxd (the multi-call binary as
 * `flaxd`) at its first call, and --uninstall stops that server and removes
 * the record. The config dir and the socket are the test's own
 * ($FLAX_CONFIG_DIR, $FLAX_CNI_SOCKET; the log: $FLAX_LOG_DIR).
 * (--server systemd writes into /etc/systemd/system: its units are checked
 * in plugins/cli/install/server.test.ts, flaxd's socket hand-over in
 * cniserver-autostart.test.ts.)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cniServersOf } from '../lib/proc';
import { ensurePackage, PKG } from '../lib/pkg';
import { createTestNetns, destroyTestNetns } from '../lib/netns';

const d = mkdtempSync(path.join(tmpdir(), 'flax-install-server-'));
const bin = path.join(d, 'bin');
const env = { PATH: process.env.PATH, FLAX_CONFIG_DIR: path.join(d, 'etc'), FLAX_CNI_SOCKET: path.join(d, 'run/cni.sock'), FLAX_LOG_DIR: path.join(d, 'log') };
let ns = '';


beforeAll(async () => {
  await ensurePackage();
  [ns] = createTestNetns(1);
}, 180_000);
afterAll(() => {
  for (const pid of cniServersOf(env.FLAX_CNI_SOCKET)) process.kill(pid, 'SIGKILL');
  destroyTestNetns([ns]);
  rmSync(d, { recursive: true, force: true });
});

describe('flax install --server auto (package)', () => {
  it('records auto, the installed client starts the package\'s flaxd, --uninstall stops it and removes the record', async () => {
    const flax = (args: string[], inNs = false) => {
      const argv = [path.join(PKG, 'flax'), 'install', '--cni-bin-dir', bin, '--cni-conf-dir', path.join(d, 'net.d'), ...args];
      const r = inNs ? spawnSync('nsenter', [`--net=${ns}`, '--', ...argv], { encoding: 'utf8', env }) : spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    const r = flax(['--network', 'bridge', '--server', 'auto', '--from', PKG]);
    expect(r.code, r.err).toBe(0);
    const record = path.join(env.FLAX_CONFIG_DIR, 'cni-server');
    expect(r.out).toContain(`flax install: wrote ${record}`);
    expect(readFileSync(record, 'utf8')).toBe('auto\n');
    expect(JSON.parse(readFileSync(path.join(bin, '.flax/install.json'), 'utf8')).server.mode).toBe('auto');

    // (a STATUS: a VERSION would be answered by the client itself, the server started behind it)
    const status = { ...env, CNI_COMMAND: 'STATUS', CNI_PATH: bin };
    const v = spawnSync(path.join(bin, 'loopback'), [], { env: status, input: '{"cniVersion":"1.1.0","name":"n","type":"loopback"}', encoding: 'utf8' });
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout).toBe('');
    const pids = cniServersOf(env.FLAX_CNI_SOCKET);
    expect(pids).toHaveLength(1);
    expect(readFileSync(`/proc/${pids[0]}/cmdline`, 'utf8').split('\0')[0]).toBe('flaxd');
    // the first call was answered on the server's main thread; it logs "listening" once its first worker runs
    const log = () => readFileSync(path.join(env.FLAX_LOG_DIR, 'cni-server.log'), 'utf8');
    for (let t = Date.now(); !/listening on /.test(log()) && Date.now() - t < 20_000;) await new Promise((w) => setTimeout(w, 20));
    expect(log()).toMatch(/cni server: 1 call\(s\) served on the main thread while the first worker started\n.*cni server: listening on /);

    // a re-run without --server is off: the record goes (the server stops)
    const off = flax(['--network', 'bridge', '--from', PKG]);
    expect(off.code, off.err).toBe(0);
    expect(off.out).toContain(`removed ${record}`);
    expect(off.out).toContain(`stopped the CNI server the plugin clients started (pid ${pids[0]})`);
    expect(existsSync(record)).toBe(false);
    for (let i = 0; i < 200 && cniServersOf(env.FLAX_CNI_SOCKET).length; i++) await new Promise((res) => setTimeout(res, 50));
    expect(cniServersOf(env.FLAX_CNI_SOCKET)).toEqual([]);

    // auto again, a call, then --uninstall
    expect(flax(['--network', 'bridge', '--server', 'auto', '--from', PKG]).code).toBe(0);
    expect(spawnSync(path.join(bin, 'loopback'), [], { env: status, input: '{"cniVersion":"1.1.0","name":"n","type":"loopback"}' }).status).toBe(0);
    const pid2 = cniServersOf(env.FLAX_CNI_SOCKET);
    expect(pid2).toHaveLength(1);
    const u = flax(['--uninstall'], true);
    expect(u.code, u.err).toBe(0);
    expect(u.out).toContain(`stopped the CNI server the plugin clients started (pid ${pid2[0]})`);
    expect(u.out).toContain(`removed ${record}`);
    expect(existsSync(record)).toBe(false);
  }, 120_000);
});
