/**
 * The resident CNI server (plugins/pkg/cniserver) and its static client
 * (dist/bin/<plugin> = native/cniclient), black-box: the server runs in its
 * own throwaway netns, the client in another ("host") one, as a runtime
 * would call it; every answer is compared with the standalone executable's
 * (dist/bin/<plugin>.standalone) made in the same conditions.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestNetns, destroyTestNetns, ipJson } from '../lib/netns';
import { startServer, type RunningServer } from '../helpers/cniserver';
import { cni, cniAsync, ours, requireBuilt, type CniCall, type CniOut } from '../lib/cni';

const VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
const PLUGINS = ['bridge', 'host-local', 'loopback', 'flannel', 'portmap'];
let srvNs: string, host: string, tmp: string;
let srv: RunningServer;

beforeAll(async () => {
  requireBuilt(...PLUGINS, ...PLUGINS.map((p) => `${p}.standalone`));
  [srvNs, host] = createTestNetns(2);
  tmp = mkdtempSync(path.join(tmpdir(), 'flax-cnisrv-t-'));
  srv = await startServer(srvNs);
}, 120_000);
afterAll(async () => {
  await srv?.stop();
  destroyTestNetns([srvNs, host].filter(Boolean));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** One call through the client (server up) and the same through the standalone. */
const viaServer = (name: string, c: CniCall) => cni(ours(name), { ...c, env: { ...c.env, FLAX_CNI_SOCKET: srv.socket } });
const standalone = (name: string, c: CniCall) => cni(ours(`${name}.standalone`), c);
const same = (a: CniOut, b: CniOut) => expect({ code: a.code, stdout: a.stdout, stderr: a.stderr }).toEqual({ code: b.code, stdout: b.stdout, stderr: b.stderr });
/** Random per-attachment names and MACs, the only bytes two bridge ADDs may differ in. */
const norm = (s: string) => s.replace(/veth[0-9a-f]{8}/g, 'vethX').replace(/([0-9a-f]{2}:){5}[0-9a-f]{2}/g, 'MAC');

let nNet = 0;
function hostLocalConf(v: string, dataDir: string) {
  const name = `srvnet${++nNet}`;
  return { conf: { cniVersion: v, name, type: 'bridge', ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.77.0.0/24' }], [{ subnet: 'fd00:77::/64' }]], routes: [{ dst: '0.0.0.0/0' }] } }, netDir: path.join(dataDir, name) };
}

describe('answers byte for byte as the standalone plugin', () => {
  it('VERSION, no CNI_COMMAND, bad env, bad JSON — every plugin', () => {
    for (const p of PLUGINS) {
      for (const stdin of ['{"cniVersion":"1.0.0"}', '{"cniVersion":"0.3.1"}', '']) same(viaServer(p, { command: 'VERSION', stdin }), standalone(p, { command: 'VERSION', stdin }));
      const about = { command: '', unset: ['CNI_COMMAND'] };
      same(viaServer(p, about), standalone(p, about));
      const bad = { command: 'ADD', containerId: 'bad id!', netns: host, ifname: 'eth0', stdin: '{"cniVersion":"1.0.0","name":"n","type":"x"}' };
      same(viaServer(p, bad), standalone(p, bad));
      const json = { command: 'ADD', containerId: 'c1', netns: host, ifname: 'eth0', stdin: '{"cniVersion":"1.0.0",' };
      same(viaServer(p, json), standalone(p, json));
      const missing = { command: 'DEL', stdin: '{"cniVersion":"1.0.0","name":"n","type":"x"}' };
      same(viaServer(p, missing), standalone(p, missing));
    }
  });

  it('host-local ADD/CHECK/DEL/GC/STATUS in every cniVersion (two data dirs, same calls)', () => {
    for (const v of VERSIONS) {
      const a = hostLocalConf(v, path.join(tmp, `hl-a-${v}`)).conf;
      const b = { ...a, ipam: { ...a.ipam, dataDir: path.join(tmp, `hl-b-${v}`) } };
      const call = (verb: string, conf: object) => ({ command: verb, containerId: 'ctr-1', netns: host, ifname: 'eth0', hostNs: host, stdin: conf });
      const addS = viaServer('host-local', call('ADD', a));
      const addL = standalone('host-local', call('ADD', b));
      same(addS, addL);
      if (v !== '0.1.0' && v !== '0.2.0') expect(addS.code, addS.stdout).toBe(0);
      for (const verb of ['CHECK', 'STATUS', 'GC', 'DEL', 'DEL']) {
        const s = viaServer('host-local', call(verb, { ...a, prevResult: addS.json }));
        const l = standalone('host-local', call(verb, { ...b, prevResult: addL.json }));
        same(s, l);
      }
    }
  });

  it('loopback ADD/CHECK/DEL in a pod netns, and with CNI_NETNS missing, not a netns, or empty', () => {
    const [pod] = createTestNetns(1);
    try {
      for (const v of VERSIONS) {
        const call = (verb: string, over: Partial<CniCall> = {}) => ({ command: verb, containerId: 'ctr-lo', netns: pod, ifname: 'lo', hostNs: host, stdin: { cniVersion: v, name: 'lo', type: 'loopback' }, ...over });
        for (const verb of ['ADD', 'CHECK', 'DEL', 'CHECK', 'DEL']) same(viaServer('loopback', call(verb)), standalone('loopback', call(verb)));
      }
      const file = path.join(tmp, 'not-a-netns');
      writeFileSync(file, '');
      for (const netns of ['/nonexistent/netns', file, '', 'relative/path', '/proc/self/ns/net/x']) {
        for (const verb of ['ADD', 'CHECK', 'DEL']) {
          const c = { command: verb, containerId: 'ctr-lo', netns, ifname: 'lo', hostNs: host, stdin: { cniVersion: '1.0.0', name: 'lo', type: 'loopback', prevResult: { cniVersion: '1.0.0' } } };
          same(viaServer('loopback', c), standalone('loopback', c));
        }
      }
    } finally {
      destroyTestNetns([pod]);
    }
  });

  it('bridge + in-process host-local in every cniVersion, acting in the CALLER\'s netns (not the server\'s)', () => {
    const pods = createTestNetns(2);
    try {
      for (const v of VERSIONS) {
        const res: CniOut[][] = [];
        for (const [i, run] of [viaServer, standalone].entries()) {
          const conf = { cniVersion: v, name: `brsrv-${i}`, type: 'bridge', bridge: `flaxsrv${i}`, isGateway: true, ipMasq: true, ipam: { type: 'host-local', dataDir: path.join(tmp, `br-${v}`), ranges: [[{ subnet: `10.7${i}.0.0/24` }]] } };
          const call = (verb: string, prev?: unknown) => ({ command: verb, containerId: 'ctr-br', netns: pods[i], ifname: 'eth0', hostNs: host, stdin: prev ? { ...conf, prevResult: prev } : conf });
          const add = run('bridge', call('ADD'));
          expect(add.code, add.stdout + add.stderr).toBe(0);
          const check = run('bridge', call('CHECK', add.json));
          const del = run('bridge', call('DEL', add.json));
          res.push([add, check, del]);
        }
        // only the network's own names differ (index 0 vs 1), and veth names/MACs
        const [s, l] = res.map((r) => r.map((o) => ({ code: o.code, stdout: norm(o.stdout).replaceAll(pods[0], 'POD').replaceAll(pods[1], 'POD').replace(/flaxsrv\d|brsrv-\d|10\.7\d\./g, 'N'), stderr: o.stderr })));
        expect(s).toEqual(l);
      }
      // what the server's calls made is in the host ns; nothing in the server's own ns
      const hostLinks = ipJson<{ ifname: string }[]>(host, ['link', 'show']).map((l) => l.ifname);
      expect(hostLinks).toContain('flaxsrv0');
      expect(ipJson<{ ifname: string }[]>(srvNs, ['link', 'show']).map((l) => l.ifname)).toEqual(['lo']);
      // nor any firewall rule (nft runs in process, on the worker thread that entered the caller's netns)
      expect(spawnSync('nsenter', [`--net=${srvNs}`, '--', 'nft', 'list', 'ruleset'], { encoding: 'utf8' }).stdout).toBe('');
    } finally {
      destroyTestNetns(pods);
    }
  });

  it('a 4 MB stdin arrives whole; a 16 MiB one gets the same refusal', () => {
    for (const size of [4_000_000, 16 << 20]) {
      const { conf } = hostLocalConf('1.0.0', path.join(tmp, `huge-a-${size}`));
      const a = { ...conf, pad: 'x'.repeat(size) };
      const b = { ...a, ipam: { ...a.ipam, dataDir: path.join(tmp, `huge-b-${size}`) } };
      const s = viaServer('host-local', { command: 'ADD', containerId: 'ctr-huge', netns: host, ifname: 'eth0', stdin: a });
      const l = standalone('host-local', { command: 'ADD', containerId: 'ctr-huge', netns: host, ifname: 'eth0', stdin: b });
      expect(s.code, s.stdout).toBe(size < 4 << 20 ? 0 : 1);
      same(s, l);
    }
  });
});

describe('concurrency', () => {
  it('20 concurrent bridge ADDs then DELs through the server: all succeed, distinct addresses, nothing left', async () => {
    const pods = createTestNetns(20);
    try {
      const conf = { cniVersion: '1.0.0', name: 'burst', type: 'bridge', bridge: 'flaxburst0', isGateway: true, ipam: { type: 'host-local', dataDir: path.join(tmp, 'burst'), ranges: [[{ subnet: '10.79.0.0/24' }]] } };
      const call = (verb: string, i: number): CniCall => ({ command: verb, containerId: `burst-${i}`, netns: pods[i], ifname: 'eth0', hostNs: host, stdin: conf, env: { FLAX_CNI_SOCKET: srv.socket } });
      const adds = await Promise.all(pods.map((_, i) => cniAsync(ours('bridge'), call('ADD', i))));
      for (const a of adds) expect(a.code, a.stdout + a.stderr).toBe(0);
      const ips = adds.map((a) => a.json.ips[0].address as string);
      expect(new Set(ips).size).toBe(20);
      const dels = await Promise.all(pods.map((_, i) => cniAsync(ours('bridge'), call('DEL', i))));
      for (const d of dels) expect(d.code, d.stdout).toBe(0);
      const left = ipJson<{ ifname: string }[]>(host, ['link', 'show']).map((l) => l.ifname).filter((n) => n.startsWith('veth'));
      expect(left).toEqual([]);
    } finally {
      destroyTestNetns(pods);
    }
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Polls `cond` until it holds (a state to reach, not a time to wait). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await sleep(20);
}

/** Holds the flock on `file` until release() (flock -o: only flock itself holds it; its sleep goes with it). */
function holdLock(file: string) {
  const p = spawn('flock', ['-o', file, 'sleep', '600'], { stdio: 'ignore', detached: true });
  return { release: () => { try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ } } };
}

/**
 * Waits until `n` processes wait for the flock on `file` (/proc/locks lists
 * waiters with "->"); with `held`, until someone holds it.
 */
async function lockWaiters(file: string, n: number, held = false): Promise<void> {
  const lines = () => {
    let ino: number;
    try { ino = statSync(file).ino; } catch { return []; }
    return readFileSync('/proc/locks', 'utf8').split('\n').filter((l) => l.split(/\s+/).some((f) => f.endsWith(`:${ino}`)));
  };
  await until(() => lines().filter((l) => l.includes('->')).length >= n && (!held || lines().some((l) => !l.includes('->'))));
}

/**
 * A server socket that accepts and closes the connection as a dying flaxd
 * would: at once, after reading the whole request, or after a reply header
 * announcing more than it sends (wire: native/addon/cniserver.cc).
 */
async function fakeServer(socket: string, mode: 'at-accept' | 'after-request' | 'mid-reply') {
  let n = 0;
  const srv = net.createServer((c) => {
    n++;
    if (mode === 'at-accept') return c.destroy();
    let buf = Buffer.alloc(0);
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 40) return;
      const want = 40 + buf.readUInt32LE(8) + buf.readUInt32LE(12) + Number(buf.readBigUInt64LE(16));
      if (buf.length < want) return;
      if (mode === 'after-request') return c.destroy();
      const hdr = Buffer.alloc(32);
      hdr.write('FLAXCNR1');
      hdr.writeBigUInt64LE(100n, 16);
      c.end(Buffer.concat([hdr, Buffer.from('{"partial":')]));
    });
    c.on('error', () => {});
  });
  await new Promise<void>((resolve) => srv.listen(socket, resolve));
  return { socket, connections: () => n, close: () => new Promise<void>((resolve) => srv.close(() => resolve())) };
}

/** A copy of the client named `probe` beside a `probe.standalone` that says so: tells who answered. */
function probeDir(): string {
  const dir = mkdtempSync(path.join(tmp, 'probe-'));
  copyFileSync(ours('bridge'), path.join(dir, 'probe'));
  writeFileSync(path.join(dir, 'probe.standalone'), '#!/bin/sh\necho standalone "$CNI_COMMAND"\n', { mode: 0o755 });
  return path.join(dir, 'probe');
}

describe('callers in another mount namespace (unshare -m, as ctr runs its CNI calls)', () => {
  /** `bin` run in a private mount namespace after `mount --bind src dst`, with the CNI env and stdin. */
  const inPrivateMnt = (binds: Array<[string, string]>, bin: string, env: Record<string, string>, stdin: object) => {
    const script = binds.map(([src, dst]) => `mount --bind '${src}' '${dst}' &&`).join(' ') + ` exec '${bin}'`;
    const r = spawnSync('unshare', ['-m', 'sh', '-c', script], { env: { PATH: process.env.PATH, ...env }, input: JSON.stringify(stdin), encoding: 'utf8' });
    let json: any;
    try { json = JSON.parse(r.stdout); } catch { /* none */ }
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, json };
  };
  const status = () => JSON.parse(spawnSync(ours('flax'), ['status', '--cache-dir', tmp, '-o', 'json'], {
    env: { PATH: process.env.PATH, NETCONFPATH: path.join(tmp, 'no-conf'), FLAX_CNI_SOCKET: srv.socket }, encoding: 'utf8',
  }).stdout).cniCalls;

  it('CNI_NETNS visible only in the caller\'s mount namespace: served through the fd the client sent (the server never opens the path)', () => {
    const [pod] = createTestNetns(1);
    try {
      const dir = mkdtempSync(path.join(tmp, 'mntns-'));
      const nsFile = path.join(dir, 'pod-netns');
      writeFileSync(nsFile, ''); // in the server's view: an empty file, not a netns
      const before = status();
      const env = (socket: string, verb: string) => ({ CNI_COMMAND: verb, CNI_CONTAINERID: 'ctr-mnt', CNI_NETNS: nsFile, CNI_IFNAME: 'lo', CNI_PATH: path.dirname(ours('loopback')), FLAX_CNI_SOCKET: socket });
      const conf = { cniVersion: '1.0.0', name: 'lo', type: 'loopback' };
      const served = inPrivateMnt([[pod, nsFile]], ours('loopback'), env(srv.socket, 'ADD'), conf);
      expect(served.code, served.stdout + served.stderr).toBe(0);
      const after = status();
      expect(after.served).toBe(before.served + 1);
      expect(after.deferred).toBe(before.deferred);
      const alone = inPrivateMnt([[pod, nsFile]], ours('loopback'), env('', 'ADD'), conf);
      expect({ code: served.code, stdout: served.stdout, stderr: served.stderr }).toEqual({ code: alone.code, stdout: alone.stdout, stderr: alone.stderr });
      expect(served.json.interfaces[0].sandbox).toBe(nsFile); // the runtime's path, not the fd
      expect(ipJson<{ ifname: string; operstate: string; flags: string[] }[]>(pod, ['link', 'show', 'lo'])[0].flags).toContain('UP');
      // and the server itself sees no netns at that path
      expect(cni(ours('loopback.standalone'), { command: 'ADD', containerId: 'x', netns: nsFile, ifname: 'lo', stdin: conf }).code).toBe(1);
    } finally {
      destroyTestNetns([pod]);
    }
  });

  it('a dataDir the caller sees elsewhere (a bind mount in its namespace): handed back untouched, the standalone plugin runs in the caller\'s view', async () => {
    const hostView = mkdtempSync(path.join(tmp, 'view-host-'));
    const callerView = mkdtempSync(path.join(tmp, 'view-caller-'));
    const { conf } = hostLocalConf('1.0.0', hostView);
    const before = status();
    const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr-view', CNI_NETNS: host, CNI_IFNAME: 'eth0', CNI_PATH: path.dirname(ours('host-local')), FLAX_CNI_SOCKET: srv.socket };
    const r = inPrivateMnt([[callerView, hostView]], ours('host-local'), env, conf);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json.ips[0].address).toBe('10.77.0.2/24');
    const after = status();
    expect(after.deferred).toBe(before.deferred + 1);
    expect(after.served).toBe(before.served);
    // the reservation is where the caller sees its dataDir, nothing where the server would have written it
    expect(readdirSync(path.join(callerView, conf.name))).toContain('10.77.0.2');
    expect(readdirSync(hostView)).toEqual([]);
    for (let t = 0; t < 50 && !srv.log().includes(`sees ${hostView} otherwise`); t++) await new Promise((res) => setTimeout(res, 20)); // stderr arrives on the event loop
    expect(srv.log()).toContain(`sees ${hostView} otherwise than this server (another mount namespace)`);
    // VERSION touches no file: served as usual
    const v = inPrivateMnt([[callerView, hostView]], ours('host-local'), { ...env, CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' });
    expect(v.code).toBe(0);
    expect(status().deferred).toBe(after.deferred);
  });

  it('flaxd\'s /metrics counts the calls handed back to the standalone plugin, by reason (all reasons present from the start)', async () => {
    const m = await startServer(srvNs, ['--healthz-ip', '127.0.0.1', '--healthz-port', '9127']);
    try {
      const metrics = () => spawnSync('nsenter', [`--net=${srvNs}`, '--', 'curl', '-s', '-m', '5', 'http://127.0.0.1:9127/metrics'], { encoding: 'utf8' }).stdout;
      const sample = (series: string) => metrics().split('\n').find((l) => l.startsWith(`${series} `))?.split(' ')[1];
      spawnSync('nsenter', [`--net=${srvNs}`, '--', 'ip', 'link', 'set', 'lo', 'up']); // the health server listens on 127.0.0.1
      expect(sample('flaxd_cni_calls_handed_back_total{reason="mount_namespace"}'), metrics()).toBe('0');
      expect(sample('flaxd_cni_calls_handed_back_total{reason="setns"}')).toBe('0');
      expect(sample('flaxd_cni_server_workers')).toBe('1'); // one worker while idle (issue 24); a burst starts more
      const hostView = mkdtempSync(path.join(tmp, 'view-host-'));
      const callerView = mkdtempSync(path.join(tmp, 'view-caller-'));
      const { conf } = hostLocalConf('1.0.0', hostView);
      const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr-view-m', CNI_NETNS: host, CNI_IFNAME: 'eth0', CNI_PATH: path.dirname(ours('host-local')), FLAX_CNI_SOCKET: m.socket };
      for (const id of ['a', 'b']) {
        const r = inPrivateMnt([[callerView, hostView]], ours('host-local'), { ...env, CNI_CONTAINERID: `ctr-view-${id}` }, conf);
        expect(r.code, r.stdout + r.stderr).toBe(0);
      }
      expect(sample('flaxd_cni_calls_handed_back_total{reason="mount_namespace"}')).toBe('2');
      expect(sample('flaxd_cni_calls_handed_back_total{reason="netns_path"}')).toBe('0');
    } finally {
      await m.stop();
    }
  });
});

describe('fallback and failures', () => {
  it('no server (socket missing), a stale socket file, FLAX_CNI_SOCKET empty: the standalone plugin runs; a live server answers', async () => {
    const probe = probeDir();
    const run = (socket: string) => cni(probe, { command: 'VERSION', env: { FLAX_CNI_SOCKET: socket } });
    expect(run(path.join(tmp, 'nothing.sock')).stdout).toBe('standalone VERSION\n');
    expect(run('').stdout).toBe('standalone VERSION\n');
    const live = run(srv.socket);
    expect(live.code).toBe(1);
    expect(live.json.msg).toBe('flax CNI server: no plugin named "probe"');
    // a server killed with SIGKILL leaves its socket file: a stale one
    const dead = await startServer(null);
    const stale = path.join(tmp, 'stale.sock');
    spawnSync('cp', ['-a', dead.socket, stale]);
    await dead.kill();
    expect(run(stale).stdout).toBe('standalone VERSION\n');
    // and a new server replaces a stale socket file; a second one on a live socket fails
    const again = await startServer(null, ['--cni-socket', stale]);
    try {
      expect(run(stale).json.msg).toBe('flax CNI server: no plugin named "probe"');
      await expect(startServer(null, ['--cni-socket', stale])).rejects.toThrow(new RegExp(`exited 1: .*another CNI server holds ${stale}\\.lock \\(pid ${again.proc.pid}\\)`));
    } finally {
      await again.stop();
    }
  });

  it('no server: the client answers as <plugin>.standalone (it execs node with the snapshot itself when the launcher\'s node is the one in PATH, else the launcher)', () => {
    for (const p of PLUGINS) {
      for (const c of [{ command: 'VERSION', stdin: '{"cniVersion":"0.4.0"}' }, { command: 'ADD', containerId: 'bad id!', netns: host, ifname: 'eth0', stdin: '{"cniVersion":"1.0.0","name":"n","type":"x"}' }]) {
        same(cni(ours(p), { ...c, env: { FLAX_CNI_SOCKET: '' } }), standalone(p, c));
      }
    }
    // a launcher naming another node: the client runs the launcher
    const dir = mkdtempSync(path.join(tmp, 'launcher-'));
    copyFileSync(ours('bridge'), path.join(dir, 'probe'));
    for (const f of ['probe.blob', 'probe.js']) writeFileSync(path.join(dir, f), '');
    writeFileSync(path.join(dir, 'probe.standalone'), '#!/bin/sh\n# flax-executable launcher: test\n[ "$(stat -Lc %d:%i:%s:%Y node)" = "1:2:3:4" ] && exit 9\necho launcher "$CNI_COMMAND"\n', { mode: 0o755 });
    expect(cni(path.join(dir, 'probe'), { command: 'VERSION', env: { FLAX_CNI_SOCKET: '' } }).stdout).toBe('launcher VERSION\n');
  });

  it('flax status: "served by flaxd" (its pid and counts) while it answers; "standalone plugins" and why otherwise', () => {
    const st = (socket: string, ...more: string[]) => spawnSync(ours('flax'), ['status', '--cache-dir', tmp, ...more], {
      env: { PATH: process.env.PATH, NETCONFPATH: path.join(tmp, 'no-conf'), FLAX_CNI_SOCKET: socket }, encoding: 'utf8',
    });
    expect(viaServer('bridge', { command: 'VERSION', stdin: '{"cniVersion":"1.0.0"}' }).code).toBe(0);
    const r = st(srv.socket);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`CNI calls (plugin clients -> ${srv.socket})`);
    expect(r.stdout).toMatch(new RegExp(`served by flaxd \\(pid ${srv.proc.pid}, up \\d+(s|m\\d+s), \\d+ workers?\\): \\d+ calls answered, \\d+ with an error, 0 refused`));
    const j = JSON.parse(st(srv.socket, '-o', 'json').stdout).cniCalls;
    expect(j).toMatchObject({ servedBy: 'flaxd', socket: srv.socket, pid: srv.proc.pid });
    expect(j.served).toBeGreaterThan(0);
    const none = path.join(tmp, 'none.sock');
    expect(st(none).stdout).toContain(`standalone plugins: no socket at ${none}`);
    expect(st('').stdout).toContain('CNI calls (plugin clients -> FLAX_CNI_SOCKET=\'\')\n  standalone plugins: FLAX_CNI_SOCKET is empty');
    const stale = path.join(tmp, 'status-stale.sock');
    spawnSync('cp', ['-a', srv.socket, stale]); // a socket file nobody listens on
    expect(st(stale).stdout).toContain(`standalone plugins: ${stale} is stale (nobody listens on it)`);
    expect(JSON.parse(st(stale, '-o', 'json').stdout).cniCalls).toMatchObject({ servedBy: 'standalone', socket: stale });
  });

  it('a flaxd without CAP_SYS_ADMIN (could enter no caller\'s netns) starts no server: --no-overlay exits 1 saying so, no socket', () => {
    const sock = path.join(tmp, 'nocap.sock');
    const r = spawnSync('setpriv', ['--bounding-set', '-sys_admin', '--inh-caps', '-sys_admin', ours('flaxd'), '--no-overlay', '--cni-socket', sock, '--gc-interval', '0'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot enter network namespaces \(setns: Operation not permitted\): serving CNI calls needs CAP_SYS_ADMIN/);
    expect(existsSync(sock)).toBe(false);
  });

  it('non-root callers: refused by the server (SO_PEERCRED); with the default 0600 socket they cannot connect and run the standalone plugin', async () => {
    const probe = probeDir();
    spawnSync('chmod', ['-R', 'a+rX', path.dirname(probe), tmp]);
    const asNobody = (socket: string) => spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', probe], { env: { CNI_COMMAND: 'VERSION', FLAX_CNI_SOCKET: socket }, encoding: 'utf8' });
    const open = await startServer(null);
    try {
      spawnSync('chmod', ['a+x', open.dir]);
      spawnSync('chmod', ['666', open.socket]); // past the file mode: the server's own check
      const r = asNobody(open.socket);
      expect(r.status).toBe(1);
      expect(JSON.parse(r.stdout).msg).toBe('flax CNI server: refused: caller uid 65534 is not root');
    } finally {
      await open.stop();
    }
    spawnSync('chmod', ['a+x', srv.dir]);
    expect(asNobody(srv.socket).stdout).toBe('standalone VERSION\n');
  });

  it('the server killed (kill -9) with calls in flight: the DEL runs again standalone, the ADD answers code 11 "try again later" and is not run again', async () => {
    const s = await startServer(srvNs);
    const { conf, netDir } = hostLocalConf('1.0.0', path.join(tmp, 'killed'));
    const call = (verb: string, id: string, socket: string): CniCall => ({ command: verb, containerId: id, netns: host, ifname: 'eth0', stdin: conf, env: { FLAX_CNI_SOCKET: socket } });
    // a reservation for the DEL to remove (made standalone)
    const before = await cniAsync(ours('host-local'), call('ADD', 'ctr-d', ''));
    expect(before.code, before.stdout).toBe(0);
    const lock = path.join(netDir, 'lock');
    // hold host-local's lock so that the server's ADD and DEL wait inside the plugin
    const holder = holdLock(lock);
    try {
      await lockWaiters(lock, 0, true);
      const add = cniAsync(ours('host-local'), call('ADD', 'ctr-k', s.socket));
      const del = cniAsync(ours('host-local'), call('DEL', 'ctr-d', s.socket));
      await lockWaiters(lock, 2); // both calls are inside the server, blocked on the lock
      await s.kill();
      const a = await add;
      expect(a.code).toBe(1);
      expect(a.json).toMatchObject({ cniVersion: '1.0.0', code: 11 });
      expect(a.json.msg).toMatch(/closed the connection before replying .*the ADD was not run again: try again later/);
      holder.release(); // the DEL, run again standalone, waits for the lock too
      const d = await del;
      expect(d.code, d.stdout + d.stderr).toBe(0);
    } finally {
      holder.release();
    }
    // the DEL was done (ctr-d's reservation gone); the ADD was not (nothing reserved for ctr-k)
    const files = readdirSync(netDir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
    expect(files).toEqual([]);
  }, 60_000);

  it('a server that closes the connection before a complete reply: DEL, CHECK, STATUS, GC, VERSION run standalone with the same stdin; ADD answers code 11 in the request\'s cniVersion', async () => {
    const probe = probeDir();
    writeFileSync(`${probe}.standalone`, '#!/bin/sh\nprintf "standalone %s %s" "$CNI_COMMAND" "$(cat)"\n', { mode: 0o755 });
    // the three ways a dying server leaves: before reading the request, after reading it, in the middle of its reply
    for (const mode of ['at-accept', 'after-request', 'mid-reply'] as const) {
      const fake = await fakeServer(path.join(tmp, `fake-${mode}.sock`), mode);
      try {
        for (const verb of ['DEL', 'CHECK', 'STATUS', 'GC', 'VERSION']) {
          const stdin = JSON.stringify({ cniVersion: '0.4.0', name: 'n', type: 'probe', pad: verb.repeat(50_000) });
          const r = await cniAsync(probe, { command: verb, containerId: 'c1', netns: host, ifname: 'eth0', stdin, env: { FLAX_CNI_SOCKET: fake.socket } });
          expect({ mode, code: r.code, stdout: r.stdout }).toEqual({ mode, code: 0, stdout: `standalone ${verb} ${stdin}` });
        }
        for (const v of ['0.4.0', '1.1.0']) {
          const r = await cniAsync(probe, { command: 'ADD', containerId: 'c1', netns: host, ifname: 'eth0', stdin: { cniVersion: v, name: 'n', type: 'probe' }, env: { FLAX_CNI_SOCKET: fake.socket } });
          expect(r.code).toBe(1);
          expect(r.json).toMatchObject({ cniVersion: v, code: 11 });
          expect(r.stdout).not.toContain('standalone');
        }
        expect(fake.connections()).toBe(7);
      } finally {
        await fake.close();
      }
    }
  });
});

describe('SIGTERM: flaxd stops accepting and lets the calls in flight finish', () => {
  it('calls in flight complete after SIGTERM; new calls run the standalone plugin meanwhile; then flaxd exits 0', async () => {
    const s = await startServer(srvNs);
    const { conf, netDir } = hostLocalConf('1.0.0', path.join(tmp, 'drain'));
    const lock = path.join(netDir, 'lock');
    spawnSync('mkdir', ['-p', netDir]);
    const holder = holdLock(lock);
    try {
      await lockWaiters(lock, 0, true);
      const call = (verb: string, id: string): CniCall => ({ command: verb, containerId: id, netns: host, ifname: 'eth0', stdin: conf, env: { FLAX_CNI_SOCKET: s.socket } });
      const adds = ['ctr-t1', 'ctr-t2', 'ctr-t3'].map((id) => cniAsync(ours('host-local'), call('ADD', id)));
      await lockWaiters(lock, 3);
      const exited = new Promise<number | null>((resolve) => s.proc.once('exit', (code) => resolve(code)));
      s.proc.kill('SIGTERM');
      await until(() => s.log().includes('cni server: stopping: 3 calls in flight'));
      expect(existsSync(s.socket)).toBe(false);
      expect(s.proc.exitCode).toBe(null);
      const probe = probeDir();
      expect(cni(probe, { command: 'VERSION', env: { FLAX_CNI_SOCKET: s.socket } }).stdout).toBe('standalone VERSION\n');
      holder.release();
      const res = await Promise.all(adds);
      for (const r of res) expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(new Set(res.map((r) => r.json.ips[0].address)).size).toBe(3);
      expect(await exited).toBe(0);
      expect(s.log()).toMatch(/cni server: stopped; served 3, failed 0/);
    } finally {
      holder.release();
      await s.kill();
    }
  }, 60_000);

  it('a call that does not finish within the bound (10 s) is cut and flaxd exits: its client re-runs the DEL standalone and answers the ADD with code 11', async () => {
    const s = await startServer(srvNs);
    const { conf, netDir } = hostLocalConf('1.0.0', path.join(tmp, 'drain-cut'));
    const lock = path.join(netDir, 'lock');
    spawnSync('mkdir', ['-p', netDir]);
    const holder = holdLock(lock);
    try {
      await lockWaiters(lock, 0, true);
      const call = (verb: string, id: string): CniCall => ({ command: verb, containerId: id, netns: host, ifname: 'eth0', stdin: conf, env: { FLAX_CNI_SOCKET: s.socket } });
      const add = cniAsync(ours('host-local'), call('ADD', 'ctr-c1'));
      const del = cniAsync(ours('host-local'), call('DEL', 'ctr-c2'));
      await lockWaiters(lock, 2);
      const exited = new Promise<number | null>((resolve) => s.proc.once('exit', (code) => resolve(code)));
      s.proc.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(s.log()).toContain('cni server: 2 calls still running after 10 s: cut');
      const a = await add;
      expect(a.json).toMatchObject({ cniVersion: '1.0.0', code: 11 });
      holder.release();
      const d = await del;
      expect(d.code, d.stdout + d.stderr).toBe(0);
    } finally {
      holder.release();
      await s.kill();
    }
    expect(readdirSync(netDir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))).toEqual([]);
  }, 60_000);
});
