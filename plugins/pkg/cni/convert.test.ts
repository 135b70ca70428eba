import { describe, expect, it } from 'vitest';
import { convertResult, parseResult } from './convert';
import { CniError } from './errors';
import type { Result } from './types';
import { SUPPORTED_VERSIONS } from './version';

const full: Result = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'cni0', mac: '0a:58:0a:01:00:01', mtu: 1500 },
    { name: 'veth1234abcd', mac: '0a:58:0a:01:00:02' },
    { name: 'eth0', mac: '0a:58:0a:01:00:03', sandbox: '/run/netns/x', mtu: 1450, socketPath: '/s', pciID: '0000:00:01.0' },
  ],
  ips: [
    { interface: 2, address: '10.1.0.5/24', gateway: '10.1.0.1' },
    { interface: 2, address: 'fd00::5/64', gateway: 'fd00::1' },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400, priority: 5, table: 100, scope: 0, advmss: 1300 }, { dst: '::/0', gw: 'fd00::1' }],
  dns: { nameservers: ['10.1.0.1'], domain: 'cluster.local', search: ['a.b'], options: ['ndots:5'] },
};

describe('convertResult', () => {
  it('1.1.0 keeps every field', () => {
    const o = convertResult(full, '1.1.0') as any;
    expect(o.cniVersion).toBe('1.1.0');
    expect(o.interfaces[2]).toEqual(full.interfaces![2]);
    expect(o.routes[0]).toEqual(full.routes![0]);
    expect(o.ips[0].version).toBeUndefined();
  });
  it('1.0.0 drops the 1.1.0 fields', () => {
    const o = convertResult(full, '1.0.0') as any;
    expect(o.interfaces[2]).toEqual({ name: 'eth0', mac: '0a:58:0a:01:00:03', sandbox: '/run/netns/x' });
    expect(o.routes[0]).toEqual({ dst: '0.0.0.0/0', gw: '10.1.0.1' });
    expect(o.ips[0]).toEqual({ interface: 2, address: '10.1.0.5/24', gateway: '10.1.0.1' });
  });
  for (const v of ['0.3.0', '0.3.1', '0.4.0']) {
    it(`${v} adds ip versions`, () => {
      const o = convertResult(full, v) as any;
      expect(o.cniVersion).toBe(v);
      expect(o.ips.map((i: any) => i.version)).toEqual(['4', '6']);
      expect(o.interfaces[0]).toEqual({ name: 'cni0', mac: '0a:58:0a:01:00:01' });
    });
  }
  for (const v of ['0.1.0', '0.2.0']) {
    it(`${v} uses the ip4/ip6 form`, () => {
      const o = convertResult(full, v) as any;
      expect(o).toEqual({
        cniVersion: v,
        ip4: { ip: '10.1.0.5/24', gateway: '10.1.0.1', routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }] },
        ip6: { ip: 'fd00::5/64', gateway: 'fd00::1', routes: [{ dst: '::/0', gw: 'fd00::1' }] },
        dns: full.dns,
      });
    });
    it(`${v} without IPs fails like the reference`, () => {
      expect(() => convertResult({ cniVersion: v, interfaces: [{ name: 'lo' }] }, v)).toThrow('cannot convert: no valid IP addresses');
    });
  }
  it('rejects unknown versions with code 1', () => {
    try { convertResult(full, '9.9.9'); expect.unreachable(); } catch (e) { expect((e as CniError).code).toBe(1); }
  });
});

describe('every conversion pair round-trips what the target can hold', () => {
  for (const from of SUPPORTED_VERSIONS) {
    for (const to of SUPPORTED_VERSIONS) {
      it(`${from} -> ${to}`, () => {
        const src = convertResult(full, from);
        const canon = parseResult(src, from);
        const out = convertResult(canon, to) as any;
        const direct = convertResult(parseResult(convertResult(full, from), from), to);
        expect(out).toEqual(direct);
        expect(out.cniVersion).toBe(to);
        // the first address of each family survives every path
        const text = JSON.stringify(out);
        expect(text).toContain('10.1.0.5/24');
        expect(text).toContain('fd00::5/64');
        // and parsing the output gives back at least those addresses
        const back = parseResult(out, to);
        expect(back.ips!.map((i) => i.address)).toEqual(['10.1.0.5/24', 'fd00::5/64']);
      });
    }
  }
});

describe('parseResult', () => {
  it('reads a legacy prevResult under a newer config', () => {
    const r = parseResult({ ip4: { ip: '10.0.0.2/24', gateway: '10.0.0.1' } }, '1.0.0');
    expect(r.ips).toEqual([{ address: '10.0.0.2/24', gateway: '10.0.0.1' }]);
  });
  it('rejects wrong types with code 6', () => {
    for (const bad of [[], 'x', { ips: 'no' }, { ips: [{ address: 5 }] }, { interfaces: [{}] }, { routes: [{ dst: '0.0.0.0/0', mtu: 'x' }] }, { dns: { nameservers: [1] } }]) {
      try { parseResult(bad, '1.0.0'); expect.unreachable(); } catch (e) { expect((e as CniError).code).toBe(6); }
    }
  });
});
