/**
 * Interoperability with Debian's reference plugins (/usr/lib/cni, v1.1.1,
 * cniVersion <= 1.0.0): our bridge delegating to their host-local and theirs
 * to ours; ADD by one suite and DEL by the other leaves nothing — veth, IP
 * reservation, iptables CNI- chain (written for the nftables backend by
 * `flax tombstones` or `iptablesTombstone`). Runs in throwaway namespaces.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { netnsTest } from '../lib/netns';
import { cni, ours, requireBuilt, theirs, type CniCall } from '../lib/cni';
import { iptablesChainName } from '../../plugins/pkg/nft/masq';
import { linkDetail, netnsState, ping, podView, reservations } from '../lib/state';

const HAVE_REF = existsSync(theirs('bridge')) && existsSync(theirs('host-local'));
let root: string;
/** CNI_PATH dirs: all ours, all theirs, and the two mixes. */
const P = { ours: '', theirs: '', oursBrTheirIpam: '', theirBrOurIpam: '' };

beforeAll(() => {
  if (!HAVE_REF) return;
  requireBuilt('bridge', 'host-local', 'flax');
  root = mkdtempSync(path.join(tmpdir(), 'flax-interop-'));
  const mk = (name: keyof typeof P, br: string, ipam: string) => {
    const d = path.join(root, name);
    mkdirSync(d);
    symlinkSync(br, path.join(d, 'bridge'));
    symlinkSync(ipam, path.join(d, 'host-local'));
    P[name] = d;
  };
  mk('ours', ours('bridge'), ours('host-local'));
  mk('theirs', theirs('bridge'), theirs('host-local'));
  mk('oursBrTheirIpam', ours('bridge'), theirs('host-local'));
  mk('theirBrOurIpam', theirs('bridge'), ours('host-local'));
});
afterAll(() => { if (root) rmSync(root, { recursive: true, force: true }); });

const it = netnsTest.extend<{ host: string; pod: string }>({
  host: async ({ ns }, use) => use(ns),
  pod: async ({ ns2 }, use) => use(ns2),
});

let n = 0;
function conf(v: string, extra: object = {}) {
  const name = `interop${++n}`;
  const dataDir = path.join(root, `ipam-${name}`);
  return {
    name, dataDir,
    conf: {
      cniVersion: v, name, type: 'bridge', bridge: 'flaxbr1', isGateway: true, ipMasq: true, ...extra,
      ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.89.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] },
    },
  };
}
/** `flax tombstones` inside the host netns, with empty config and cache dirs. */
const tombstones = (host: string) => {
  const r = spawnSync('nsenter', [`--net=${host}`, '--', ours('flax'), 'tombstones', '--netconf-path', path.join(root, 'no-conf'), '--cache-dir', path.join(root, 'no-cache')], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};
const run = (dir: string, command: string, f: { host: string; pod: string }, stdin: object, over: Partial<CniCall> = {}) =>
  cni(path.join(dir, 'bridge'), { command, containerId: 'interop-ctr', netns: f.pod, ifname: 'eth0', path: dir, stdin, hostNs: f.host, ...over });

function expectClean(f: { host: string; pod: string }, dataDir: string, name: string) {
  const h = netnsState(f.host);
  expect(h.links.filter((l) => l.startsWith('veth'))).toEqual([]);
  expect(h.iptCni).toEqual([]);
  expect(h.masqRules).toEqual([]);
  expect(netnsState(f.pod).links).toEqual([]);
  expect(reservations(dataDir, name)).toEqual([]);
}

describe.skipIf(!HAVE_REF)('interop with the reference plugins v1.1.1', () => {
  it('what an ADD leaves matches the reference\'s: veth txqueuelen (both ends) and the reservation file\'s mode', ({ host, pod }) => {
    const f = { host, pod };
    const leaves = (dir: string) => {
      const c = conf('1.0.0');
      const r = run(dir, 'ADD', f, c.conf);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const hostVeth = r.json.interfaces.find((i: { name: string; sandbox?: string }) => !i.sandbox && i.name.startsWith('veth')).name;
      // `ip -j` leaves txqlen out when it is 0
      const seen = {
        hostVethTxqlen: linkDetail(host, hostVeth).txqlen ?? 0,
        podTxqlen: linkDetail(pod, 'eth0').txqlen ?? 0,
        reservationMode: (statSync(path.join(c.dataDir, c.name, '10.89.0.2')).mode & 0o7777).toString(8),
      };
      expect(run(dir, 'DEL', f, { ...c.conf, prevResult: r.json }).code).toBe(0);
      expectClean(f, c.dataDir, c.name);
      return seen;
    };
    const ref = leaves(P.theirs);
    expect(ref).toEqual({ hostVethTxqlen: 0, podTxqlen: 0, reservationMode: (0o644 & ~process.umask()).toString(8) });
    expect(leaves(P.ours)).toEqual(ref);
  });

  for (const v of ['0.4.0', '1.0.0']) {
    it(`our bridge delegates to their host-local (${v})`, ({ host, pod }) => {
      const f = { host, pod };
      const c = conf(v);
      const r = run(P.oursBrTheirIpam, 'ADD', f, c.conf);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json.ips[0].address).toBe('10.89.0.2/24');
      expect(podView(pod, 'eth0').routes).toContain('default via 10.89.0.1');
      expect(ping(pod, '10.89.0.1')).toBe(true);
      expect(run(P.oursBrTheirIpam, 'CHECK', f, { ...c.conf, prevResult: r.json }).code).toBe(0);
      expect(run(P.oursBrTheirIpam, 'DEL', f, { ...c.conf, prevResult: r.json }).code).toBe(0);
      expectClean(f, c.dataDir, c.name);
    });

    it(`their bridge delegates to our host-local (${v})`, ({ host, pod }) => {
      const f = { host, pod };
      const c = conf(v);
      const r = run(P.theirBrOurIpam, 'ADD', f, c.conf);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json.ips[0].address).toBe('10.89.0.2/24');
      expect(ping(pod, '10.89.0.1')).toBe(true);
      const chk = run(P.theirBrOurIpam, 'CHECK', f, { ...c.conf, prevResult: r.json });
      expect(chk.code, chk.stdout + chk.stderr).toBe(0);
      expect(run(P.theirBrOurIpam, 'DEL', f, { ...c.conf, prevResult: r.json }).code).toBe(0);
      expectClean(f, c.dataDir, c.name);
    });

    it(`ADD by theirs, CHECK and DEL by ours leaves nothing, iptables chain included (${v})`, ({ host, pod }) => {
      const f = { host, pod };
      const c = conf(v, { ipMasqBackend: 'iptables' });
      const r = run(P.theirs, 'ADD', f, c.conf);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(netnsState(host).iptCni.join('\n')).toMatch(/-N CNI-[0-9a-f]{24}/);
      expect(reservations(c.dataDir, c.name)).toEqual(['10.89.0.2']);
      const chk = run(P.ours, 'CHECK', f, { ...c.conf, prevResult: r.json });
      expect(chk.code, chk.stdout).toBe(0);
      const d = run(P.ours, 'DEL', f, { ...c.conf, prevResult: r.json });
      expect(d.code, d.stdout).toBe(0);
      expectClean(f, c.dataDir, c.name);
    });

    it(`ADD by ours (iptables backend), DEL by theirs leaves nothing (${v})`, ({ host, pod }) => {
      const f = { host, pod };
      const c = conf(v, { ipMasqBackend: 'iptables' });
      const r = run(P.ours, 'ADD', f, c.conf);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const d = run(P.theirs, 'DEL', f, { ...c.conf, prevResult: r.json });
      expect(d.code, d.stdout + d.stderr).toBe(0);
      expectClean(f, c.dataDir, c.name);
    });
  }

  it('ADD by ours (default nftables backend) writes no iptables chain; `flax tombstones` does, once; then DEL by theirs succeeds', ({ host, pod }) => {
    const f = { host, pod };
    const c = conf('1.0.0');
    const r = run(P.ours, 'ADD', f, c.conf);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(netnsState(host).iptCni).toEqual([]); // no exec of iptables-restore on the ADD path
    expect(netnsState(host).masqRules).toHaveLength(1);
    const chain = iptablesChainName(c.name, 'interop-ctr');
    const t = tombstones(host);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toBe(`wrote ${c.name} interop-ctr ${chain} (10.89.0.2)\nwrote 1 tombstone(s), 0 already present, 0 skipped\n`);
    const written = netnsState(host).iptCni;
    expect(written).toEqual([`iptables -N ${chain}`, expect.stringMatching(new RegExp(`^iptables -A POSTROUTING -s 10.89.0.2/32 .*-j ${chain}$`))]);
    // idempotent: nothing written, no second POSTROUTING jump
    const again = tombstones(host);
    expect(again.stdout).toBe('wrote 0 tombstone(s), 1 already present, 0 skipped\n');
    expect(netnsState(host).iptCni).toEqual(written);
    // a chain whose jump went (their DEL deletes the jump first, and fails without it) is completed
    const jump = spawnSync('nsenter', [`--net=${host}`, '--', 'iptables', '-w', '-t', 'nat', '-S', 'POSTROUTING'], { encoding: 'utf8' }).stdout.split('\n').find((l) => l.includes(chain))!;
    expect(spawnSync('nsenter', [`--net=${host}`, '--', 'sh', '-c', `iptables -w -t nat ${jump.replace(/^-A /, '-D ')}`]).status).toBe(0);
    expect(netnsState(host).iptCni).toEqual([`iptables -N ${chain}`]);
    expect(tombstones(host).stdout).toBe(`wrote ${c.name} interop-ctr ${chain} (10.89.0.2)\nwrote 1 tombstone(s), 0 already present, 0 skipped\n`);
    expect(netnsState(host).iptCni).toEqual(written);
    // without the (empty) reference chain their DEL fails: "Chain 'CNI-…' does not exist"
    const d = run(P.theirs, 'DEL', f, { ...c.conf, prevResult: r.json });
    expect(d.code, d.stdout).toBe(0);
    // veth, IP and the tombstone are gone; the nft rule is not (v1.1.1 knows only iptables)
    expect(netnsState(host).iptCni).toEqual([]);
    expect(netnsState(host).masqRules).toHaveLength(1);
    expect(reservations(c.dataDir, c.name)).toEqual([]);
    expect(run(P.ours, 'DEL', f, { ...c.conf, prevResult: r.json }).code).toBe(0);
    expectClean(f, c.dataDir, c.name);
  });

  it('without the tombstone their DEL fails (why `flax tombstones` runs before a switch back); ours cleans up', ({ host, pod }) => {
    const f = { host, pod };
    const c = conf('1.0.0');
    const r = run(P.ours, 'ADD', f, c.conf);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const d = run(P.theirs, 'DEL', f, { ...c.conf, prevResult: r.json });
    expect(d.code).not.toBe(0);
    expect(d.stdout + d.stderr).toMatch(/does not exist/);
    expect(run(P.ours, 'DEL', f, { ...c.conf, prevResult: r.json }).code).toBe(0);
    expectClean(f, c.dataDir, c.name);
  });

  it('"iptablesTombstone": true writes the tombstone at ADD (both families); our DEL removes it', ({ host, pod }) => {
    const f = { host, pod };
    const c = conf('1.0.0', { iptablesTombstone: true });
    c.conf.ipam.ranges.push([{ subnet: 'fd89::/64' }]);
    const r = run(P.ours, 'ADD', f, c.conf);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const chain = iptablesChainName(c.name, 'interop-ctr');
    const ipt = netnsState(host).iptCni;
    expect(ipt.filter((l) => l.endsWith(`-N ${chain}`))).toEqual([`iptables -N ${chain}`, `ip6tables -N ${chain}`]);
    expect(ipt.filter((l) => l.includes('-A POSTROUTING -s 10.89.0.2/32 ') || l.includes('-A POSTROUTING -s fd89::2/128 '))).toHaveLength(2);
    expect(tombstones(host).stdout).toBe('wrote 0 tombstone(s), 1 already present, 0 skipped\n');
    expect(run(P.ours, 'DEL', f, { ...c.conf, prevResult: r.json }).code).toBe(0);
    expectClean(f, c.dataDir, c.name);
  });

  it('with an EMPTY CNI_NETNS the reference leaks its iptables chain (plugins#810); ours cleans it', ({ host, pod }) => {
    const f = { host, pod };
    const c = conf('1.0.0', { ipMasqBackend: 'iptables' });
    expect(run(P.theirs, 'ADD', f, c.conf).code).toBe(0);
    expect(run(P.theirs, 'DEL', f, c.conf, { netns: '' }).code).toBe(0);
    expect(reservations(c.dataDir, c.name)).toEqual([]);
    expect(netnsState(host).iptCni.length).toBeGreaterThan(0); // the reference's leak
    expect(run(P.ours, 'DEL', f, c.conf, { netns: '' }).code).toBe(0);
    expect(netnsState(host).iptCni).toEqual([]);
  });
});
