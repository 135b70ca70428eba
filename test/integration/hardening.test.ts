/**
 * Regressions of issue 8 (faults found by driving bridge + host-local the way
 * a busy node does: duplicate and concurrent ADDs of one id, kill -9 while
 * reserving, rejected inputs, concurrent first ADDs, a bridge whose ports
 * were all removed). Black-box through dist/bin in throwaway namespaces.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { createTestNetns, destroyTestNetns, netnsTest } from '../lib/netns';
import { cni, cniAsync, ours, requireBuilt, sh, type CniCall } from '../lib/cni';
import { linkDetail, netnsState, ping, reservations } from '../lib/state';
import { buildTestBin } from '../lib/build-test-bin';

const BRIDGE = ours('bridge');
const HOST_LOCAL = ours('host-local');
let dataRoot: string;
let crashy: string;

beforeAll(async () => {
  requireBuilt('bridge', 'host-local', 'flaxd');
  dataRoot = mkdtempSync(path.join(tmpdir(), 'flax-hard-'));
  crashy = await buildTestBin('test/lib/bins/crashy-host-local.ts', 'host-local');
}, 120_000);
afterAll(() => {
  rmSync(dataRoot, { recursive: true, force: true });
  if (crashy) rmSync(path.dirname(crashy), { recursive: true, force: true });
});

let nNet = 0;
function netConf(o: Record<string, unknown> = {}, ipam: Record<string, unknown> = { ranges: [[{ subnet: '10.89.0.0/24' }]] }) {
  const name = `hard${++nNet}`;
  const dataDir = path.join(dataRoot, name);
  const conf = { cniVersion: '1.0.0', name, type: 'bridge', bridge: 'flaxhb0', ...o, ipam: { type: 'host-local', dataDir, ...ipam } };
  return { conf, name, dataDir };
}
const TWO = { ranges: [[{ subnet: '10.89.0.0/24', rangeStart: '10.89.0.10', rangeEnd: '10.89.0.11' }]] };

interface Fx { host: string; pod: string }
const it = netnsTest.extend<Fx>({
  host: async ({ ns }, use) => use(ns),
  pod: async ({ ns2 }, use) => use(ns2),
});
const call = (f: Fx, command: string, conf: object, over: Partial<CniCall> = {}, bin = BRIDGE) =>
  cni(bin, { command, containerId: 'ctrX', netns: f.pod, ifname: 'eth0', stdin: conf, hostNs: f.host, ...over });

/** The owner line of a reservation file, or null when it is gone. */
function ownerOf(dataDir: string, name: string, ip: string): string | null {
  const f = path.join(dataDir, name, ip);
  return existsSync(f) ? readFileSync(f, 'utf8').split('\r\n')[0] : null;
}

describe('a failed ADD never frees a reservation it did not make (issue 8.1)', () => {
  it('second ADD of the same id (duplicate, or a bad IP= arg) keeps the first pod\'s address', ({ host, pod, skip }) => {
    const f = { host, pod, skip };
    const [podB, podY, podZ] = createTestNetns(3);
    try {
      const { conf, name, dataDir } = netConf({ isGateway: true, ipMasq: true }, TWO);
      const a = call(f, 'ADD', conf);
      expect(a.code, a.stdout).toBe(0);
      expect(a.json.ips[0].address).toBe('10.89.0.10/24');

      const dup = call(f, 'ADD', conf, { netns: podB });
      expect(dup.code).toBe(1);
      expect(dup.json.msg).toMatch(/duplicate allocation is not allowed/);
      expect(ownerOf(dataDir, name, '10.89.0.10')).toBe('ctrX');

      const bad = call(f, 'ADD', conf, { netns: podB, args: 'IP=notanip' });
      expect(bad.json.code).toBe(4);
      expect(ownerOf(dataDir, name, '10.89.0.10')).toBe('ctrX');
      expect(netnsState(podB).links).toEqual([]);

      const y = call(f, 'ADD', conf, { containerId: 'ctrY', netns: podY });
      expect(y.json.ips[0].address).toBe('10.89.0.11/24');
      const z = call(f, 'ADD', conf, { containerId: 'ctrZ', netns: podZ });
      expect(z.code).toBe(1);
      expect(z.json.msg).toMatch(/no IP addresses available in range set/);
      expect(ping(f.pod, '10.89.0.1')).toBe(true); // pod A still works
    } finally {
      destroyTestNetns([podB, podY, podZ]);
    }
  });

  it('two concurrent ADDs of one id, 10 times: the winner keeps its reservation', async ({ host, pod, skip }) => {
    const f = { host, pod, skip };
    const [podB] = createTestNetns(1);
    try {
      const { conf, name, dataDir } = netConf({ isGateway: true }, TWO);
      for (let i = 0; i < 10; i++) {
        const id = `race${i}`;
        const rs = await Promise.all([f.pod, podB].map((ns) =>
          cniAsync(BRIDGE, { command: 'ADD', containerId: id, netns: ns, ifname: 'eth0', stdin: conf, hostNs: f.host })));
        const won = rs.filter((r) => r.code === 0);
        expect(won, rs.map((r) => r.stdout).join('')).toHaveLength(1);
        const ip = won[0].json.ips[0].address.split('/')[0];
        expect(ownerOf(dataDir, name, ip), `round ${i}`).toBe(id);
        for (const ns of [f.pod, podB]) {
          expect(cni(BRIDGE, { command: 'DEL', containerId: id, netns: ns, ifname: 'eth0', stdin: conf, hostNs: f.host }).code).toBe(0);
        }
        expect(reservations(dataDir, name)).toEqual([]);
      }
    } finally {
      destroyTestNetns([podB]);
    }
  });
});

describe('kill -9 while reserving leaves no ownerless reservation (issue 8.2)', () => {
  const hl = (dataDir: string) => ({ cniVersion: '1.1.0', name: 'killnet', type: 'bridge', ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.90.0.0/24' }]] } });
  const run = (bin: string, command: string, dataDir: string, id = 'victim', extra: Record<string, unknown> = {}) =>
    cni(bin, { command, containerId: id, netns: '/proc/self/ns/net', ifname: 'eth0', stdin: { ...hl(dataDir), ...extra } });

  it('the reservation appears with its owner or not at all; DEL then leaves nothing', () => {
    const dataDir = path.join(dataRoot, 'kill1');
    const r = run(crashy, 'ADD', dataDir);
    expect(r.code).not.toBe(0); // SIGKILLed at its first write of the owner
    expect(r.stdout).toBe('');
    const net = path.join(dataDir, 'killnet');
    const ipFiles = readdirSync(net).filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n));
    for (const n of ipFiles) expect(statSync(path.join(net, n)).size, `ownerless ${n}`).toBeGreaterThan(0);
    expect(run(HOST_LOCAL, 'DEL', dataDir).code).toBe(0);
    expect(reservations(dataDir, 'killnet')).toEqual([]);
    // the address is free again
    const again = run(HOST_LOCAL, 'ADD', dataDir, 'next');
    expect(again.json.ips[0].address).toBe('10.90.0.2/24');
  });

  it('GC frees ownerless files and temporaries older than the grace period, with or without a valid list', () => {
    const dataDir = path.join(dataRoot, 'kill2');
    expect(run(HOST_LOCAL, 'ADD', dataDir, 'live').code).toBe(0); // 10.90.0.2
    const net = path.join(dataDir, 'killnet');
    const old = Date.now() / 1000 - 3600;
    // what a killed reference (or older flax) writer leaves: an empty file
    writeFileSync(path.join(net, '10.90.0.50'), '');
    utimesSync(path.join(net, '10.90.0.50'), old, old);
    writeFileSync(path.join(net, '10.90.0.51'), ''); // just now: may be mid-write
    // a temporary of a writer killed before the link
    const idx = path.join(dataDir, '.flax-host-local', 'killnet');
    mkdirSync(idx, { recursive: true });
    writeFileSync(path.join(idx, '.tmp-1-dead'), 'ghost\r\neth0');
    utimesSync(path.join(idx, '.tmp-1-dead'), old, old);
    const gc = cni(HOST_LOCAL, { command: 'GC', stdin: hl(dataDir) }); // no list
    expect(gc.code, gc.stdout).toBe(0);
    expect(reservations(dataDir, 'killnet').sort()).toEqual(['10.90.0.2', '10.90.0.51']);
    expect(existsSync(path.join(idx, '.tmp-1-dead'))).toBe(false);
    // with a list naming the live pod, the fresh ownerless file still stays
    const gc2 = cni(HOST_LOCAL, { command: 'GC', stdin: { ...hl(dataDir), 'cni.dev/valid-attachments': [{ containerID: 'live', ifname: 'eth0' }] } });
    expect(gc2.code, gc2.stdout).toBe(0);
    expect(reservations(dataDir, 'killnet').sort()).toEqual(['10.90.0.2', '10.90.0.51']);
  });
});

describe('a rejected input creates nothing (issue 8.3)', () => {
  it('bad requested IPs, a missing resolvConf, IP= the gateway: refused before any link or file', ({ host, pod, skip }) => {
    const f = { host, pod, skip };
    const { conf, dataDir } = netConf({ isGateway: true, ipMasq: true });
    const cases: [string, object, Partial<CniCall>, number, RegExp][] = [
      ['runtimeConfig.ips', { ...conf, runtimeConfig: { ips: ['bad'] } }, {}, 7, /ips/],
      ['resolvConf', { ...conf, ipam: { ...conf.ipam, resolvConf: '/nonexistent/resolv.conf' } }, {}, 5, /resolvConf/],
      ['IP=notanip', conf, { args: 'IP=notanip' }, 4, /IP/],
      ['IP=gateway', conf, { args: 'IP=10.89.0.1' }, 4, /gateway/],
      ['IP= outside', conf, { args: 'IP=10.1.2.3' }, 4, /no range set|requested/],
    ];
    for (const [what, stdin, over, code, msg] of cases) {
      const r = call(f, 'ADD', stdin, over);
      expect(r.json?.code, `${what}: ${r.stdout}`).toBe(code);
      expect(r.json.msg + ' ' + (r.json.details ?? ''), what).toMatch(msg);
      expect(netnsState(f.host).links, what).toEqual([]);
      expect(netnsState(f.pod).links, what).toEqual([]);
      expect(existsSync(dataDir), `${what}: ${dataDir} created`).toBe(false);
      // the runtime's DEL after the failed ADD creates nothing either
      expect(call(f, 'DEL', stdin, over).code, what).toBe(0);
      expect(existsSync(dataDir), `${what}: DEL created ${dataDir}`).toBe(false);
    }
    expect(netnsState(f.host).masqRules).toEqual([]);
  });

  it('host-local DEL, CHECK and GC of a network that never had a reservation create nothing', () => {
    const dataDir = path.join(dataRoot, 'never');
    const conf = { cniVersion: '1.1.0', name: 'nevernet', type: 'x', ipam: { type: 'host-local', dataDir, subnet: '10.91.0.0/24' } };
    expect(cni(HOST_LOCAL, { command: 'DEL', containerId: 'c', netns: '/proc/self/ns/net', ifname: 'eth0', stdin: conf }).code).toBe(0);
    expect(cni(HOST_LOCAL, { command: 'CHECK', containerId: 'c', netns: '/proc/self/ns/net', ifname: 'eth0', stdin: conf }).json.code).toBe(3);
    expect(cni(HOST_LOCAL, { command: 'GC', stdin: { ...conf, 'cni.dev/valid-attachments': [] } }).code).toBe(0);
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe('concurrent first ADDs create the data directory race-free (issue 8.4)', () => {
  it('40 concurrent ADDs into a dataDir that does not exist yet all succeed with distinct addresses', async () => {
    const dataDir = path.join(dataRoot, 'race', 'deep', 'er');
    const conf = { cniVersion: '1.1.0', name: 'racenet', type: 'x', ipam: { type: 'host-local', dataDir, subnet: '10.92.0.0/24' } };
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) =>
      cniAsync(HOST_LOCAL, { command: 'ADD', containerId: `c${i}`, netns: '/proc/self/ns/net', ifname: 'eth0', stdin: conf })));
    for (const r of rs) expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(new Set(rs.map((r) => r.json.ips[0].address)).size).toBe(40);
  });
});

describe('isGateway on an existing bridge that lost all its ports (issue 8.5)', () => {
  it('a zero-MAC bridge gets a usable MAC and the pod reaches its gateway', ({ host, pod, skip }) => {
    const f = { host, pod, skip };
    sh(f.host, 'ip', ['link', 'add', 'flaxhb0', 'type', 'bridge']);
    sh(f.host, 'ip', ['link', 'add', 'tmpp0', 'type', 'veth', 'peer', 'name', 'tmpp1']);
    sh(f.host, 'ip', ['link', 'set', 'tmpp0', 'master', 'flaxhb0']);
    sh(f.host, 'ip', ['link', 'del', 'tmpp0']);
    expect(linkDetail(f.host, 'flaxhb0').address).toBe('00:00:00:00:00:00');
    const { conf } = netConf({ isGateway: true });
    const r = call(f, 'ADD', conf);
    expect(r.code, r.stdout).toBe(0);
    const mac = linkDetail(f.host, 'flaxhb0').address;
    expect(mac).not.toBe('00:00:00:00:00:00');
    expect(r.json.interfaces[0].mac).toBe(mac);
    expect(ping(f.pod, '10.89.0.1')).toBe(true);
  });
});

describe('paths that are not ours are never replaced nor followed (issue 21.5)', () => {
  /** flaxd in a throwaway netns; exits (or is stopped after 20 s: on a build that ignores the path it keeps running) */
  const flaxd = (args: string[]) => {
    const [ns] = createTestNetns(1);
    try {
      return spawnSync('nsenter', [`--net=${ns}`, '--', ours('flaxd'), '--gc-interval', '0', ...args], { encoding: 'utf8', timeout: 20_000 });
    } finally {
      destroyTestNetns([ns]);
    }
  };
  const precious = (dir: string, name = 'precious') => {
    const f = path.join(dir, name);
    writeFileSync(f, 'precious\n');
    return f;
  };

  it('--cni-socket naming a regular file: exit 1 naming it, the file untouched, no lock left (with and without the overlay)', () => {
    const dir = mkdtempSync(path.join(dataRoot, 'sock-'));
    const file = precious(dir, 'cni.sock');
    for (const mode of [['--no-overlay'], ['--subnet-file', path.join(dir, 'subnet.env'), '--net-config-path', path.join(dir, 'net-conf.json')]]) {
      const r = flaxd([...mode, '--cni-socket', file]);
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toContain(`${file} exists and is a regular file, not a socket: refusing to replace it`);
      expect(statSync(file).isFile()).toBe(true);
      expect(readFileSync(file, 'utf8')).toBe('precious\n');
      expect(readdirSync(dir).sort()).toEqual(['cni.sock']);
    }
  });

  it('<socket>.lock and <subnet-file>.lock planted as symbolic links: refused with a clear message, their targets untouched', () => {
    const dir = mkdtempSync(path.join(dataRoot, 'lock-'));
    const target = precious(dir);
    const sock = path.join(dir, 'cni.sock');
    symlinkSync(target, `${sock}.lock`);
    const a = flaxd(['--no-overlay', '--cni-socket', sock]);
    expect(a.status, a.stderr).toBe(1);
    expect(a.stderr).toContain(`${sock}.lock is a symbolic link: refusing to use it as a lock file`);
    const subnet = path.join(dir, 'subnet.env');
    symlinkSync(target, `${subnet}.lock`);
    const b = flaxd(['--subnet-file', subnet, '--net-config-path', path.join(dir, 'net-conf.json'), '--cni-socket', '']);
    expect(b.status, b.stderr).toBe(1);
    expect(b.stderr).toContain(`${subnet}.lock is a symbolic link: refusing to use it as a lock file`);
    expect(readFileSync(target, 'utf8')).toBe('precious\n');
    expect(existsSync(sock)).toBe(false);
  });

  it('a start that fails after taking its lock leaves no lock file behind (agent: a missing network config; server: a socket it cannot bind)', () => {
    const dir = mkdtempSync(path.join(dataRoot, 'nolock-'));
    const subnet = path.join(dir, 'subnet.env');
    const a = flaxd(['--subnet-file', subnet, '--net-config-path', path.join(dir, 'net-conf.json'), '--cni-socket', '']);
    expect(a.status, a.stderr).toBe(1);
    expect(a.stderr).toContain('cannot read network config');
    // a socket path whose temporary bind name (<path>.tmp-<pid>) is too long for a unix socket
    const deep = path.join(dir, 'd'.repeat(Math.max(1, 100 - dir.length)));
    mkdirSync(deep);
    const sock = path.join(deep, 's.sock');
    const b = flaxd(['--no-overlay', '--cni-socket', sock]);
    expect(b.status, b.stderr).toBe(1);
    expect(readdirSync(dir).sort()).toEqual([path.basename(deep)]);
    expect(readdirSync(deep)).toEqual([]);
  });

  it('host-local\'s index (.flax-host-local/<net>, its b/ and stamp) is never written through planted symbolic links', () => {
    const outside = mkdtempSync(path.join(dataRoot, 'outside-'));
    const target = precious(outside);
    const targetDir = path.join(outside, 'dir');
    mkdirSync(targetDir);
    const hl = (command: string, containerId: string, conf: object) => cni(HOST_LOCAL, { command, containerId, netns: '/proc/self/ns/net', ifname: 'eth0', stdin: conf });
    const { conf, name, dataDir } = netConf({}, { ranges: [[{ subnet: '10.91.0.0/24' }]] });
    const hlConf = { ...conf, type: 'host-local' };
    // the index directory itself, planted before the first ADD
    mkdirSync(path.join(dataDir, '.flax-host-local'), { recursive: true });
    symlinkSync(targetDir, path.join(dataDir, '.flax-host-local', name));
    expect(hl('ADD', 'c1', hlConf).json.ips[0].address).toBe('10.91.0.2/24');
    // then its stamp and bucket directory
    const idx = path.join(dataDir, '.flax-host-local', name);
    expect(lstatSync(idx).isDirectory()).toBe(true);
    rmSync(path.join(idx, 'stamp'));
    symlinkSync(target, path.join(idx, 'stamp'));
    rmSync(path.join(idx, 'b'), { recursive: true });
    symlinkSync(targetDir, path.join(idx, 'b'));
    expect(hl('ADD', 'c2', hlConf).json.ips[0].address).toBe('10.91.0.3/24');
    expect(readFileSync(target, 'utf8')).toBe('precious\n');
    expect(readdirSync(targetDir)).toEqual([]);
    expect(lstatSync(path.join(idx, 'stamp')).isFile()).toBe(true);
    expect(lstatSync(path.join(idx, 'b')).isDirectory()).toBe(true);
    // and the index still answers: a duplicate is refused, DEL frees the right address
    expect(hl('ADD', 'c1', hlConf).json.msg).toMatch(/duplicate allocation is not allowed/);
    expect(hl('DEL', 'c1', hlConf).code).toBe(0);
    expect(reservations(dataDir, name)).toEqual(['10.91.0.3']);
  });
});
