/**
 * loopback, black-box through dist/bin/loopback in throwaway namespaces:
 * every verb, every cniVersion, bad input (which must change nothing).
 */
import { rmSync } from 'node:fs';
import { beforeAll, describe, expect } from 'vitest';
import { createTestNetns, destroyTestNetns, netnsTest as it } from '../lib/netns';
import { cni, ipj, ours, requireBuilt, sh, type CniCall } from '../lib/cni';

const BIN = ours('loopback');
const VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
const conf = (v: string, extra: object = {}) => ({ cniVersion: v, name: 'lonet', type: 'loopback', ...extra });
const call = (netns: string, over: Partial<CniCall> = {}): CniCall => ({
  command: 'ADD', containerId: 'ctr-lo-1', netns, ifname: 'eth0', stdin: conf('1.0.0'), ...over,
});
const loState = (ns: string) => ipj(ns, ['link', 'show', 'lo'])[0] as { flags: string[]; operstate: string };
const loUp = (ns: string) => loState(ns).flags.includes('UP');

beforeAll(() => requireBuilt('loopback'));

describe('loopback ADD', () => {
  for (const v of VERSIONS) {
    it(`brings lo up and reports its addresses (cniVersion ${v})`, ({ ns }) => {
      expect(loUp(ns)).toBe(false);
      const r = cni(BIN, call(ns, { stdin: conf(v), ifname: 'eth7' }));
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(loUp(ns)).toBe(true);
      expect(r.json.cniVersion).toBe(v);
      if (v === '0.1.0' || v === '0.2.0') {
        expect(r.json).toEqual({ cniVersion: v, ip4: { ip: '127.0.0.1/8' }, ip6: { ip: '::1/128' }, dns: {} });
      } else {
        expect(r.json.interfaces).toEqual([{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: ns }]);
        const ver = v < '1.0.0' ? (x: string) => ({ version: x }) : () => ({});
        expect(r.json.ips).toEqual([
          { ...ver('4'), interface: 0, address: '127.0.0.1/8' },
          { ...ver('6'), interface: 0, address: '::1/128' },
        ]);
      }
    });
  }

  it('reports only the addresses present (IPv6 disabled on lo)', ({ ns }) => {
    sh(ns, 'sysctl', ['-q', '-w', 'net.ipv6.conf.lo.disable_ipv6=1']);
    const r = cni(BIN, call(ns));
    expect(r.code, r.stdout).toBe(0);
    expect(r.json.ips).toEqual([{ interface: 0, address: '127.0.0.1/8' }]);
  });

  it('passes prevResult through unchanged, in the config version', ({ ns }) => {
    const prev = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'eth0', mac: '0a:58:0a:01:01:05', sandbox: ns }],
      ips: [{ interface: 0, address: '10.1.1.5/24', gateway: '10.1.1.1' }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.1.1.1' }],
      dns: { nameservers: ['10.1.1.1'] },
    };
    const r = cni(BIN, call(ns, { stdin: conf('1.0.0', { prevResult: prev }) }));
    expect(r.code, r.stdout).toBe(0);
    expect(r.json).toEqual(prev);
    expect(loUp(ns)).toBe(true);
    // an older config version re-emits the prevResult in that version
    const r2 = cni(BIN, call(ns, { stdin: conf('0.4.0', { prevResult: { ...prev, cniVersion: '0.4.0', ips: [{ version: '4', interface: 0, address: '10.1.1.5/24', gateway: '10.1.1.1' }] } }) }));
    expect(r2.code, r2.stdout).toBe(0);
    expect(r2.json).toEqual({ ...prev, cniVersion: '0.4.0', ips: [{ version: '4', interface: 0, address: '10.1.1.5/24', gateway: '10.1.1.1' }] });
  });
});

describe('loopback DEL / CHECK / STATUS / GC / VERSION', () => {
  it('DEL brings lo down, is idempotent, and succeeds without a netns', ({ ns }) => {
    expect(cni(BIN, call(ns)).code).toBe(0);
    const d = cni(BIN, call(ns, { command: 'DEL' }));
    expect(d.code, d.stdout).toBe(0);
    expect(d.stdout).toBe('');
    expect(loUp(ns)).toBe(false);
    expect(cni(BIN, call(ns, { command: 'DEL' })).code).toBe(0);
    expect(cni(BIN, call('', { command: 'DEL' })).code).toBe(0);
    expect(cni(BIN, call('/run/netns/flax-does-not-exist', { command: 'DEL' })).code).toBe(0);
    expect(cni(BIN, call(ns, { command: 'DEL', unset: ['CNI_NETNS'] })).code).toBe(0);
  });

  it('DEL with a stale pin (netns unmounted, file left behind) succeeds; a non-netns file is still code 4', () => {
    const [p] = createTestNetns(1);
    try {
      expect(cni(BIN, call(p)).code).toBe(0);
      sh(null, 'umount', [p]);
      const d = cni(BIN, call(p, { command: 'DEL' }));
      expect(d.code, d.stdout).toBe(0);
      expect(d.stdout).toBe('');
      // a namespace of another type is not "gone": still an error
      const notNet = cni(BIN, call('/proc/self/ns/mnt', { command: 'DEL' }));
      expect(notNet.json?.code, notNet.stdout).toBe(4);
    } finally {
      destroyTestNetns([p]);
      rmSync(p, { force: true });
    }
  });

  it('CHECK passes when lo is up and fails when it is down', ({ ns }) => {
    expect(cni(BIN, call(ns)).code).toBe(0);
    const ok = cni(BIN, call(ns, { command: 'CHECK' }));
    expect(ok.code, ok.stdout).toBe(0);
    expect(ok.stdout).toBe('');
    cni(BIN, call(ns, { command: 'DEL' }));
    const bad = cni(BIN, call(ns, { command: 'CHECK' }));
    expect(bad.code).toBe(1);
    expect(bad.json.msg).toBe('loopback interface is down');
    const old = cni(BIN, call(ns, { command: 'CHECK', stdin: conf('0.3.1') }));
    expect(old.json.code).toBe(1);
  });

  it('STATUS and GC succeed on 1.1.0 and are refused before', ({ ns }) => {
    for (const command of ['STATUS', 'GC']) {
      const r = cni(BIN, { command, stdin: conf('1.1.0') });
      expect(r.code, r.stdout).toBe(0);
      expect(r.stdout).toBe('');
      expect(cni(BIN, { command, stdin: conf('1.0.0') }).json.code).toBe(1);
    }
    expect(loUp(ns)).toBe(false);
  });

  it('VERSION lists every version', () => {
    const r = cni(BIN, { command: 'VERSION', stdin: '{"cniVersion":"1.0.0"}' });
    expect(r.code).toBe(0);
    expect(r.json.supportedVersions).toEqual(VERSIONS);
  });
});

describe('loopback bad input changes nothing', () => {
  const cases: [string, (ns: string) => Partial<CniCall>, number, RegExp][] = [
    ['malformed JSON', () => ({ stdin: '{"cniVersion":"1.0.0",' }), 6, /error parsing/],
    ['not an object', () => ({ stdin: '[1,2]' }), 6, /not a JSON object/],
    ['name of the wrong type', () => ({ stdin: { cniVersion: '1.0.0', name: 5, type: 'loopback' } }), 7, /network name/],
    ['cniVersion of the wrong type', () => ({ stdin: { cniVersion: 1, name: 'n', type: 'loopback' } }), 7, /cniVersion/],
    ['dns of the wrong type', () => ({ stdin: { cniVersion: '1.0.0', name: 'n', type: 'loopback', dns: 'x' } }), 7, /dns/],
    ['unknown version', () => ({ stdin: conf('9.9.9') }), 1, /incompatible CNI versions/],
    ['container id with ../', () => ({ containerId: '../etc' }), 4, /containerID/],
    ['ifname with ../', () => ({ ifname: '../x' }), 4, /interface name/],
    ['empty container id', () => ({ containerId: '' }), 4, /CNI_CONTAINERID\] missing/],
    ['missing env', () => ({ unset: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'] }), 4, /\[CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH\] missing/],
    ['netns that does not exist', () => ({ netns: '/run/netns/flax-nope-xyz' }), 4, /CNI_NETNS.*does not exist/],
    ['netns that is a regular file', () => ({ netns: '/etc/hostname' }), 4, /CNI_NETNS.*not a namespace/],
    ['netns that is another namespace type', () => ({ netns: '/proc/self/ns/uts' }), 4, /CNI_NETNS.*not a network namespace/],
    ['relative netns', () => ({ netns: 'run/netns/x' }), 4, /CNI_NETNS must be an absolute path/],
    ['unknown CNI_ARGS are ignored by loopback', () => ({ args: 'FOO=bar' }), 0, /.*/],
  ];
  for (const [what, over, code, msg] of cases) {
    it(what, ({ ns }) => {
      const r = cni(BIN, call(ns, over(ns)));
      if (code === 0) {
        expect(r.code).toBe(0);
        return;
      }
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.json.code).toBe(code);
      expect(r.json.msg + ' ' + (r.json.details ?? '')).toMatch(msg);
      expect(loUp(ns)).toBe(false);
    });
  }
  it('no CNI_COMMAND prints the about line', () => {
    const r = cni(BIN, { command: '', unset: ['CNI_COMMAND'] });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/CNI loopback plugin/);
  });
});
