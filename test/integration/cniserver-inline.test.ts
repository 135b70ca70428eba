/**
 * Issue 24: a server a client waits for (`flaxd --no-overlay`: auto-started,
 * or socket-activated) serves on its main thread until its first worker
 * runs, so the first call waits for a Node start only. The main thread then
 * moves into a caller's netns for the call; a thread made meanwhile would
 * start there (a thread starts in its maker's netns), so every worker first
 * enters the server's.
 *
 * flaxd (dist/bin) runs in a netns of its own ("srv"), on a socket handed
 * over as systemd does (python binds it in srv); the calls come from
 * another netns ("node"). The first call is queued on the socket before
 * flaxd starts: a bridge ADD, served on the main thread. Then a burst (more
 * workers start) and the DELs. Every call does what it does standalone, and
 * afterwards every thread of flaxd is back in srv's netns.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cniAsync, type CniCall, ours, requireBuilt } from '../lib/cni';
import { waitFor } from '../lib/e2e';
import { createTestNetns, destroyTestNetns, ipJson } from '../lib/netns';

let tmp: string;
let ns: string[] = [];
let flaxdPid = 0;
beforeAll(() => {
  requireBuilt('flaxd', 'bridge', 'cni-worker.js');
  tmp = mkdtempSync(path.join(tmpdir(), 'flax-inline-'));
  ns = createTestNetns(2 + 5);
});
afterAll(() => {
  if (flaxdPid) try { process.kill(flaxdPid, 'SIGKILL'); } catch { /* gone */ }
  destroyTestNetns(ns);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** systemd's part, in python inside `srvNs`: bind + listen, print "ready"; on a line on stdin, start flaxd with the socket as fd 3 and print its pid. */
const MINI_SYSTEMD = `
import os, socket, sys
path, log, flaxd = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
os.umask(0o177); s.bind(path)
s.listen(64)
print('ready', flush=True)
sys.stdin.readline()
pid = os.fork()
if pid == 0:
    os.dup2(s.fileno(), 3)
    os.set_inheritable(3, True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 2)
    env = dict(os.environ, LISTEN_PID=str(os.getpid()), LISTEN_FDS='1')
    os.execve(flaxd, [flaxd, '--no-overlay', '--cni-socket', path, '--gc-interval', '0'], env)
print(pid, flush=True)
sys.stdin.readline()
`;

const until = <T>(what: string, fn: () => T | undefined | false, ms = 30_000) => waitFor(what, fn, ms, 20);

describe('a server a client waits for serves on its main thread while its first worker starts', () => {
  it('a bridge ADD queued before flaxd starts is served on the main thread; a burst and the DELs by workers; every thread ends in the server\'s netns', async () => {
    const [srv, node, ...pods] = ns;
    const socket = path.join(tmp, 'cni.sock');
    const log = path.join(tmp, 'flaxd.log');
    const sd = spawn('nsenter', [`--net=${srv}`, '--', 'python3', '-c', MINI_SYSTEMD, socket, log, ours('flaxd')], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    sd.stdout!.setEncoding('utf8').on('data', (d) => { out += d; });
    try {
      await until('the socket', () => out.includes('ready'));
      const conf = { cniVersion: '1.0.0', name: 'inline', type: 'bridge', bridge: 'inl0', isGateway: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.251.0.0/24' }]], dataDir: path.join(tmp, 'ipam') } };
      const call = (command: string, i: number): CniCall => ({
        command, containerId: `inline-${i}`, netns: pods[i], ifname: 'eth0', stdin: conf, hostNs: node,
        env: { FLAX_CNI_SOCKET: socket, FLAX_CNI_SERVER: 'off' },
      });
      // queued: connected and sent before anyone accepts
      const first = cniAsync(ours('bridge'), call('ADD', 0));
      await new Promise((r) => setTimeout(r, 300));
      sd.stdin!.write('start\n');
      flaxdPid = Number(await until('flaxd\'s pid', () => out.split('\n')[1]?.trim()));
      const a0 = await first;
      expect(a0.code, a0.stderr + a0.stdout).toBe(0);
      expect(a0.json.ips[0].address).toMatch(/^10\.251\.0\.\d+\/24$/);
      await until('flaxd to run', () => /listening on /.test(readFileSync(log, 'utf8')));
      expect(readFileSync(log, 'utf8')).toMatch(/1 call\(s\) served on the main thread while the first worker started/);

      const burst = await Promise.all([1, 2, 3, 4].map((i) => cniAsync(ours('bridge'), call('ADD', i))));
      for (const r of burst) expect(r.code, r.stderr + r.stdout).toBe(0);
      const addrs = [a0, ...burst].map((r) => r.json.ips[0].address);
      expect(new Set(addrs).size).toBe(5);
      // each pod got its interface and address (the calls acted in node's netns and the pods')
      for (const [i, p] of pods.entries()) {
        const eth0 = ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(p, ['addr', 'show', 'eth0'])[0];
        expect(eth0.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toContain(addrs[i]);
      }
      expect(ipJson<unknown[]>(node, ['link', 'show', 'inl0'])).toHaveLength(1);
      expect(ipJson<unknown[]>(srv, ['link', 'show'])).toHaveLength(1); // only lo: nothing happened in the server's netns
      const dels = await Promise.all([0, 1, 2, 3, 4].map((i) => cniAsync(ours('bridge'), call('DEL', i))));
      for (const r of dels) expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(readdirSync(path.join(tmp, 'ipam/inline')).filter((f) => /^10\./.test(f))).toEqual([]);

      // every thread of flaxd (main, workers, libuv's, the addon's) is in the server's netns
      const want = statSync(srv).ino;
      const threads = readdirSync(`/proc/${flaxdPid}/task`);
      expect(threads.length).toBeGreaterThan(2);
      const where = threads.map((t) => ({ t, ino: statSync(`/proc/${flaxdPid}/task/${t}/ns/net`).ino }));
      expect(where.filter((w) => w.ino !== want), 'threads outside the server\'s netns').toEqual([]);

      process.kill(flaxdPid, 'SIGTERM');
      await until('flaxd to stop', () => /served \d+/.test(readFileSync(log, 'utf8'))).catch((e) => { throw new Error(`${(e as Error).message}; its log:\n${readFileSync(log, 'utf8')}`); });
      expect(readFileSync(log, 'utf8')).toMatch(/served 10, failed 0/);
      flaxdPid = 0;
    } finally {
      sd.kill('SIGKILL');
      if (existsSync(socket)) rmSync(socket);
    }
  }, 120_000);
});
