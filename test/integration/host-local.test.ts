/**
 * Black-box tests of dist/bin/host-local (run `node scripts/build.mjs`
 * first). Every test uses its own temporary dataDir.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { OURS, netConf, run } from '../lib/host-local';

let dir: string;
const net = () => path.join(dir, 'hlnet');
const files = () => (existsSync(net()) ? readdirSync(net()).sort() : []);
const V4 = { ranges: [[{ subnet: '10.88.0.0/24' }]] };
const DUAL = { ranges: [[{ subnet: '10.88.0.0/24' }], [{ subnet: 'fd00:88::/64' }]] };

beforeEach(() => { dir = mkdtempSync(path.join(tmpdir(), 'flax-hl-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('host-local ADD/DEL/CHECK (black box)', () => {
  it('exists and is built', () => expect(existsSync(OURS)).toBe(true));

  it('dual-stack ADD: result shape, file names, bytes, modes', async () => {
    const r = await run(OURS, { command: 'ADD', id: 'c1', stdin: netConf(dir, DUAL) });
    expect(r.code).toBe(0);
    expect(r.json).toEqual({
      cniVersion: '1.1.0',
      ips: [{ address: '10.88.0.2/24', gateway: '10.88.0.1' }, { address: 'fd00:88::2/64', gateway: 'fd00:88::1' }],
      dns: {},
    });
    expect(files()).toEqual(['10.88.0.2', 'fd00:88::2', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
    expect(readFileSync(path.join(net(), 'fd00:88::2'), 'latin1')).toBe('c1\r\neth0');
    expect(readFileSync(path.join(net(), 'last_reserved_ip.1'), 'latin1')).toBe('fd00:88::2');
    expect(statSync(path.join(net(), '10.88.0.2')).mode & 0o777).toBe(0o644 & ~process.umask()); // the reference's mode (Go: 0644 less the umask)
  });

  it.each(['0.3.1', '0.4.0', '1.0.0', '1.1.0'])('result in cniVersion %s', async (v) => {
    const r = await run(OURS, { command: 'ADD', stdin: netConf(dir, DUAL, {}, v) });
    expect(r.code).toBe(0);
    expect(r.json.cniVersion).toBe(v);
    expect(r.json.ips).toHaveLength(2);
    for (const ip of r.json.ips) {
      expect(ip.interface).toBeUndefined();
      if (v < '1.0.0') expect(ip.version).toBe(ip.address.includes(':') ? '6' : '4');
      else expect(ip.version).toBeUndefined();
    }
  });

  it('0.2.0 legacy result', async () => {
    const r = await run(OURS, { command: 'ADD', stdin: netConf(dir, { subnet: '10.9.0.0/16', routes: [{ dst: '0.0.0.0/0' }] }, {}, '0.2.0') });
    expect(r.json).toEqual({ cniVersion: '0.2.0', ip4: { ip: '10.9.0.2/16', gateway: '10.9.0.1', routes: [{ dst: '0.0.0.0/0' }] }, dns: {} });
  });

  it('round robin across processes; DEL frees without reuse; DEL idempotent and needs no netns', async () => {
    const conf = netConf(dir, V4);
    const a = await run(OURS, { command: 'ADD', id: 'a', stdin: conf });
    const b = await run(OURS, { command: 'ADD', id: 'b', stdin: conf });
    expect([a.json.ips[0].address, b.json.ips[0].address]).toEqual(['10.88.0.2/24', '10.88.0.3/24']);
    for (let i = 0; i < 2; i++) {
      const d = await run(OURS, { command: 'DEL', id: 'a', netns: null, stdin: conf });
      expect([d.code, d.stdout]).toEqual([0, '']);
    }
    const c = await run(OURS, { command: 'ADD', id: 'c', stdin: conf });
    expect(c.json.ips[0].address).toBe('10.88.0.4/24');
    expect(files()).toEqual(['10.88.0.3', '10.88.0.4', 'last_reserved_ip.0', 'lock']);
    // empty CNI_NETNS on DEL (containerd ctr)
    expect((await run(OURS, { command: 'DEL', id: 'b', netns: '', stdin: conf })).code).toBe(0);
  });

  it('duplicate ADD for id+ifname is refused; another ifname gets its own address', async () => {
    const conf = netConf(dir, V4);
    await run(OURS, { command: 'ADD', id: 'a', stdin: conf });
    const d = await run(OURS, { command: 'ADD', id: 'a', stdin: conf });
    expect(d.code).not.toBe(0);
    expect(d.json.msg).toBe('failed to allocate for range 0: 10.88.0.2 has been allocated to a, duplicate allocation is not allowed');
    const e = await run(OURS, { command: 'ADD', id: 'a', ifname: 'net1', stdin: conf });
    expect(e.json.ips[0].address).toBe('10.88.0.3/24');
    expect(readFileSync(path.join(net(), '10.88.0.2'), 'latin1')).toBe('a\r\neth0'); // existing one kept
  });

  it('CHECK verifies the reservation (and prevResult addresses)', async () => {
    const conf = netConf(dir, V4);
    const add = await run(OURS, { command: 'ADD', id: 'a', stdin: conf });
    expect((await run(OURS, { command: 'CHECK', id: 'a', stdin: { ...conf, prevResult: add.json } })).code).toBe(0);
    const miss = await run(OURS, { command: 'CHECK', id: 'b', stdin: conf });
    expect(miss.code).not.toBe(0);
    expect(miss.json.msg).toBe('host-local: Failed to find address added by container b');
    const wrong = await run(OURS, { command: 'CHECK', id: 'a', stdin: { ...conf, prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.88.0.77/24' }] } } });
    expect(wrong.json.msg).toMatch(/10\.88\.0\.77 in prevResult is not reserved/);
    const old = await run(OURS, { command: 'CHECK', id: 'a', stdin: netConf(dir, V4, {}, '0.3.1') });
    expect(old.json.code).toBe(1);
  });

  it('requested addresses: CNI_ARGS IP= (comma list), args.cni.ips supersedes it, runtimeConfig.ips', async () => {
    const r1 = await run(OURS, { command: 'ADD', id: 'a', args: 'IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.88.0.50,fd00:88::50', stdin: netConf(dir, DUAL) });
    expect(r1.json.ips.map((i: { address: string }) => i.address)).toEqual(['10.88.0.50/24', 'fd00:88::50/64']);
    const r2 = await run(OURS, { command: 'ADD', id: 'b', args: 'IP=10.88.0.51', stdin: netConf(dir, V4, { args: { cni: { ips: ['10.88.0.52'] } } }) });
    expect(r2.json.ips[0].address).toBe('10.88.0.52/24');
    const r3 = await run(OURS, { command: 'ADD', id: 'c', stdin: netConf(dir, V4, { runtimeConfig: { ips: ['10.88.0.53/24'] } }) });
    expect(r3.json.ips[0].address).toBe('10.88.0.53/24');
    const taken = await run(OURS, { command: 'ADD', id: 'd', args: 'IP=10.88.0.53', stdin: netConf(dir, V4) });
    expect(taken.json.msg).toBe('failed to allocate for range 0: requested IP address 10.88.0.53 is not available in range set 10.88.0.1-10.88.0.254');
    expect(taken.json.code).toBe(11);
  });

  it('routes and resolvConf → dns', async () => {
    const rc = path.join(dir, 'resolv.conf');
    writeFileSync(rc, 'nameserver 10.0.0.10\nsearch svc.cluster.local cluster.local\noptions ndots:5\ndomain example\n');
    const r = await run(OURS, { command: 'ADD', stdin: netConf(dir, { ...V4, routes: [{ dst: '0.0.0.0/0' }, { dst: '192.168.0.0/16', gw: '10.88.0.254' }], resolvConf: rc }) });
    expect(r.json.routes).toEqual([{ dst: '0.0.0.0/0' }, { dst: '192.168.0.0/16', gw: '10.88.0.254' }]);
    expect(r.json.dns).toEqual({ nameservers: ['10.0.0.10'], domain: 'example', search: ['svc.cluster.local', 'cluster.local'], options: ['ndots:5'] });
  });

  it('exhaustion: reference message, a later set failing releases the earlier one', async () => {
    const conf = netConf(dir, { ranges: [[{ subnet: '10.88.0.0/24' }], [{ subnet: '10.99.0.0/30' }]] });
    expect((await run(OURS, { command: 'ADD', id: 'a', stdin: conf })).code).toBe(0);
    const r = await run(OURS, { command: 'ADD', id: 'b', stdin: conf });
    expect(r.json.msg).toBe('failed to allocate for range 1: no IP addresses available in range set: 10.99.0.1-10.99.0.2');
    // b's 10.88.0.3 was rolled back; a's reservations are untouched
    expect(files()).toEqual(['10.88.0.2', '10.99.0.2', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
  });

  it.each<[string, string | object, string | undefined, number, RegExp]>([
    ['malformed JSON', '{"cniVersion":"1.0.0",', undefined, 6, /error parsing network config/],
    ['wrong type', { cniVersion: '1.0.0', name: 'hlnet', ipam: { type: 'host-local', ranges: 'x' } }, undefined, 7, /field `ipam\.ranges`/],
    ['huge number', { cniVersion: '1.0.0', name: 'hlnet', ipam: { type: 'host-local', subnet: '10.0.0.0/24', routes: [{ dst: '0.0.0.0/0', mtu: 1e300 }] } }, undefined, 7, /ipam\.routes\[0\]\.mtu/],
    ['IP= not an IP', 'CONF', 'IP=10.88.0.x', 4, /invalid IP "10\.88\.0\.x" in CNI_ARGS IP/],
    ['requested IP outside ranges', 'CONF', 'IP=10.1.1.1', 4, /failed to allocate all requested IPs: 10\.1\.1\.1/],
    ['requested gateway', 'CONF', 'IP=10.88.0.1', 4, /is subnet's gateway/],
    ['relative dataDir', { cniVersion: '1.0.0', name: 'hlnet', ipam: { type: 'host-local', subnet: '10.0.0.0/24', dataDir: 'rel/dir' } }, undefined, 7, /ipam\.dataDir.*absolute/],
    ['name escaping dataDir', { cniVersion: '1.0.0', name: '..', ipam: { type: 'host-local', subnet: '10.0.0.0/24' } }, undefined, 7, /network name/],
    ['no ranges', { cniVersion: '1.0.0', name: 'hlnet', ipam: { type: 'host-local' } }, undefined, 7, /no IP ranges specified/],
    ['unknown CNI_ARGS key', 'CONF', 'FOO=bar', 4, /unknown args/],
    ['unsupported version', { cniVersion: '9.9.9', name: 'hlnet', ipam: { subnet: '10.0.0.0/24' } }, undefined, 1, /incompatible CNI versions/],
  ])('bad input: %s → code %s, nothing written', async (_n, stdin, args, code, msg) => {
    // object configs get this test's dataDir unless they set their own
    const conf = stdin === 'CONF' ? netConf(dir, V4) : typeof stdin === 'object' ? { ...stdin, ipam: { dataDir: dir, ...(stdin as { ipam: object }).ipam } } : stdin;
    const r = await run(OURS, { command: 'ADD', args, stdin: conf });
    expect(r.code).toBe(1);
    expect(r.json.code).toBe(code);
    expect(r.json.msg).toMatch(msg);
    expect(files().filter((f) => f !== 'lock')).toEqual([]);
  });

  it('50 concurrent ADDs with distinct ids get 50 distinct addresses', async () => {
    const conf = netConf(dir, { ranges: [[{ subnet: '10.88.0.0/26' }]] });
    const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => run(OURS, { command: 'ADD', id: `c${i}`, stdin: conf })));
    expect(rs.map((r) => r.code)).toEqual(Array(50).fill(0));
    const addrs = new Set(rs.map((r) => r.json.ips[0].address));
    expect(addrs.size).toBe(50);
    for (let i = 0; i < 50; i++) {
      const ip = rs[i].json.ips[0].address.split('/')[0];
      expect(readFileSync(path.join(net(), ip), 'latin1')).toBe(`c${i}\r\neth0`);
    }
    // and 50 concurrent DELs empty it
    await Promise.all(Array.from({ length: 50 }, (_, i) => run(OURS, { command: 'DEL', id: `c${i}`, stdin: conf })));
    expect(files()).toEqual(['last_reserved_ip.0', 'lock']);
  }, 120_000);
});

describe.skipIf(!existsSync('/usr/bin/strace'))('host-local cost does not grow with the directory', () => {
  /** Syscalls made by one whole-process call (strace -c total). */
  function syscalls(command: string, id: string, conf: object): number {
    const out = path.join(dir, `strace.${command}.${id}`);
    // file and directory syscalls only: what grows if a call walks the reservations; a thread's
    // futex/epoll/mmap count varies with the machine's load (it failed a loaded run at exactly 30)
    const r = spawnSync('strace', ['-f', '-c', '-e', 'trace=%file,getdents64', '-o', out, OURS], {
      input: JSON.stringify(conf),
      env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/x' },
    });
    expect(r.status).toBe(0);
    const total = readFileSync(out, 'utf8').trim().split('\n').pop()!;
    return Number(total.trim().split(/\s+/)[3]);
  }

  it('ADD and DEL make the same number of syscalls with 0 and 5000 reservations', async () => {
    const counts: number[][] = [];
    for (const n of [0, 5000]) {
      const dataDir = path.join(dir, `d${n}`);
      mkdirSync(path.join(dataDir, 'hlnet'), { recursive: true });
      for (let i = 2; i < n + 2; i++) writeFileSync(path.join(dataDir, 'hlnet', `10.66.${i >> 8}.${i & 255}`), `pre${i}\r\neth0`);
      if (n) writeFileSync(path.join(dataDir, 'hlnet', 'last_reserved_ip.0'), `10.66.${(n + 1) >> 8}.${(n + 1) & 255}`);
      const conf = netConf(dataDir, { ranges: [[{ subnet: '10.66.0.0/16' }]] });
      await run(OURS, { command: 'ADD', id: 'warm', stdin: conf }); // index build
      counts.push([syscalls('ADD', 'x', conf), syscalls('DEL', 'x', conf)]);
    }
    const [[a0, d0], [a1, d1]] = counts;
    expect(Math.abs(a1 - a0)).toBeLessThan(30);
    expect(Math.abs(d1 - d0)).toBeLessThan(30);
  }, 120_000);
});

describe('host-local GC and STATUS (1.1.0)', () => {
  const backdate = (ip: string) => {
    const t = new Date(Date.now() - 60_000);
    utimesSync(path.join(net(), ip), t, t);
  };

  it('removes unlisted reservations, keeps listed, young, lock and last_reserved_ip.*', async () => {
    const conf = netConf(dir, DUAL);
    for (const id of ['keep', 'gone', 'young']) await run(OURS, { command: 'ADD', id, stdin: conf });
    writeFileSync(path.join(net(), '10.88.0.200'), 'legacy-gone'); // legacy form
    writeFileSync(path.join(net(), '10.88.0.201'), 'keep'); // legacy form of a valid container
    for (const f of files()) if (/^(10|fd)/.test(f) && !['10.88.0.4', 'fd00:88::4'].includes(f)) backdate(f);
    const attachments = [{ containerID: 'keep', ifname: 'eth0' }, { containerID: 'other', ifname: 'eth9' }];
    const r = await run(OURS, { command: 'GC', stdin: { ...conf, 'cni.dev/valid-attachments': attachments } });
    expect([r.code, r.stdout]).toEqual([0, '']);
    expect(files()).toEqual(['10.88.0.2', '10.88.0.201', '10.88.0.4', 'fd00:88::2', 'fd00:88::4', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
    // our DEL/ADD still work after GC (index rebuilt)
    expect((await run(OURS, { command: 'ADD', id: 'gone', stdin: conf })).code).toBe(0);
  });

  it('the older key cni.dev/attachments works; no key = no-op; [] = sweep all old', async () => {
    const conf = netConf(dir, V4);
    await run(OURS, { command: 'ADD', id: 'a', stdin: conf });
    await run(OURS, { command: 'ADD', id: 'b', stdin: conf });
    backdate('10.88.0.2');
    backdate('10.88.0.3');
    expect((await run(OURS, { command: 'GC', stdin: conf })).code).toBe(0);
    expect(files()).toContain('10.88.0.2');
    expect((await run(OURS, { command: 'GC', stdin: { ...conf, 'cni.dev/attachments': [{ containerID: 'a', ifname: 'eth0' }] } })).code).toBe(0);
    expect(files()).toEqual(['10.88.0.2', 'last_reserved_ip.0', 'lock']);
    expect((await run(OURS, { command: 'GC', stdin: { ...conf, 'cni.dev/valid-attachments': [] } })).code).toBe(0);
    expect(files()).toEqual(['last_reserved_ip.0', 'lock']);
  });

  it('GC/STATUS need cniVersion 1.1.0; bad attachment list is code 7', async () => {
    expect((await run(OURS, { command: 'GC', stdin: netConf(dir, V4, {}, '1.0.0') })).json.code).toBe(1);
    expect((await run(OURS, { command: 'STATUS', stdin: netConf(dir, V4, {}, '1.0.0') })).json.code).toBe(1);
    const r = await run(OURS, { command: 'GC', stdin: { ...netConf(dir, V4), 'cni.dev/valid-attachments': [{ containerID: 1 }] } });
    expect(r.json.code).toBe(7);
  });

  it('STATUS: 0 when the data dir is writable, 50 when it is not', async () => {
    const ok = await run(OURS, { command: 'STATUS', stdin: netConf(dir, V4) });
    expect([ok.code, ok.stdout]).toEqual([0, '']);
    writeFileSync(path.join(dir, 'afile'), '');
    const bad = await run(OURS, { command: 'STATUS', stdin: netConf(path.join(dir, 'afile', 'sub'), V4) });
    expect(bad.json.code).toBe(50);
    const ro = await run(OURS, { command: 'STATUS', stdin: netConf('/proc/flax-hl', V4) });
    expect(ro.json.code).toBe(50);
  });
});
