import { describe, expect, it } from 'vitest';
import { CniError } from '../../../pkg/cni/errors';
import { FakeStore } from '../store/fake-store';
import { type Allocation, type RequestedIP, allocate, candidates } from './allocator';
import { formatIP, parseIP } from '../../../pkg/ip';
import type { RangeSpec } from './range';
import { type RangeSet, canonicalizeRangeSet } from './range-set';

const set = (...specs: RangeSpec[]): RangeSet => canonicalizeRangeSet(specs, 'ipam.ranges[0]');
const owner = (id: string, ifname = 'eth0') => ({ id, ifname });
const text = (a: Allocation[]) => a.map((x) => `${formatIP(x.ip)}/${x.prefix} gw ${formatIP(x.gateway)}`);
const req = (ip: string, source = 'args.cni.ips[0]', code = 7): RequestedIP => ({ ip: parseIP(ip)!, source, code });
function fails(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error('did not throw');
}

describe('allocator (against FakeStore)', () => {
  it('starts at rangeStart, skips the gateway (.1) and goes round robin', () => {
    const s = new FakeStore();
    const sets = [set({ subnet: '10.0.0.0/29' })];
    expect(text(allocate(s, sets, owner('a')))).toEqual(['10.0.0.2/29 gw 10.0.0.1']);
    expect(text(allocate(s, sets, owner('b')))).toEqual(['10.0.0.3/29 gw 10.0.0.1']);
    expect(s.last.get(0)).toBe('10.0.0.3');
    // releasing a does not make the next ADD reuse .2: round robin continues after last_reserved_ip
    s.releaseByOwner(owner('a'));
    expect(text(allocate(s, sets, owner('c')))).toEqual(['10.0.0.4/29 gw 10.0.0.1']);
  });

  it('wraps around after rangeEnd and never hands out network/broadcast', () => {
    const s = new FakeStore({}, { 0: '10.0.0.6' }); // last usable of a /29 is .6 (.7 is broadcast)
    const sets = [set({ subnet: '10.0.0.0/29' })];
    expect(text(allocate(s, sets, owner('a')))).toEqual(['10.0.0.2/29 gw 10.0.0.1']);
  });

  it('never hands out .0 or broadcast even when rangeStart/rangeEnd include them', () => {
    const s = new FakeStore();
    const sets = [set({ subnet: '10.0.0.0/30', rangeStart: '10.0.0.0', rangeEnd: '10.0.0.3', gateway: '10.0.0.2' })];
    expect(text(allocate(s, sets, owner('a')))).toEqual(['10.0.0.1/30 gw 10.0.0.2']);
    const e = fails(() => allocate(s, sets, owner('b')));
    expect(e.message).toBe('failed to allocate for range 0: no IP addresses available in range set: 10.0.0.0-10.0.0.3');
  });

  it('exhaustion message is the reference one, code 11, and nothing is left behind', () => {
    const s = new FakeStore();
    const sets = [set({ subnet: '10.0.0.0/30' })]; // only .2 (gw .1, bcast .3)
    allocate(s, sets, owner('a'));
    const e = fails(() => allocate(s, sets, owner('b')));
    expect(e.message).toBe('failed to allocate for range 0: no IP addresses available in range set: 10.0.0.1-10.0.0.2');
    expect(e.code).toBe(11);
    expect([...s.files.keys()]).toEqual(['10.0.0.2']);
  });

  it('visits every address exactly once per ADD (wraps from last_reserved_ip to it)', () => {
    const sets = [set({ subnet: '10.0.0.0/28', rangeStart: '10.0.0.4', rangeEnd: '10.0.0.9' }, { subnet: '10.0.1.0/28', rangeStart: '10.0.1.2', rangeEnd: '10.0.1.3' })];
    const seen = [...candidates(sets[0], parseIP('10.0.0.8'))].map((c) => formatIP({ v6: false, n: c.n }));
    expect(seen).toEqual(['10.0.0.9', '10.0.1.2', '10.0.1.3', '10.0.0.4', '10.0.0.5', '10.0.0.6', '10.0.0.7', '10.0.0.8']);
    // last_reserved_ip outside the set (indexes changed): start from the beginning
    expect([...candidates(sets[0], parseIP('192.168.0.1'))].map((c) => formatIP({ v6: false, n: c.n }))[0]).toBe('10.0.0.4');
  });

  it('fills a whole /24 with 253 distinct addresses, then reports exhaustion', () => {
    const s = new FakeStore();
    const sets = [set({ subnet: '10.1.0.0/24' })];
    const got = new Set<string>();
    for (let i = 0; i < 253; i++) got.add(text(allocate(s, sets, owner(`c${i}`)))[0]);
    expect(got.size).toBe(253);
    expect(fails(() => allocate(s, sets, owner('x'))).message).toMatch(/no IP addresses available in range set: 10\.1\.0\.1-10\.1\.0\.254$/);
  });

  it('dual-stack: one address per set, IPv6 range end is the last address', () => {
    const s = new FakeStore({}, { 1: '2001:db8::3' });
    const sets = [set({ subnet: '10.0.0.0/24' }), canonicalizeRangeSet([{ subnet: '2001:db8::/126' }], 'ipam.ranges[1]')];
    expect(text(allocate(s, sets, owner('a')))).toEqual(['10.0.0.2/24 gw 10.0.0.1', '2001:db8::2/126 gw 2001:db8::1']);
    expect(s.files.get('2001:db8::2')).toBe('a\r\neth0');
  });

  it('duplicate allocation for the same id+ifname is refused before anything is reserved', () => {
    const s = new FakeStore({ '2001:db8::5': 'a\r\neth0' });
    const sets = [set({ subnet: '10.0.0.0/24' }), canonicalizeRangeSet([{ subnet: '2001:db8::/64' }], 'ipam.ranges[1]')];
    const e = fails(() => allocate(s, sets, owner('a')));
    expect(e.message).toBe('failed to allocate for range 1: 2001:db8::5 has been allocated to a, duplicate allocation is not allowed');
    expect([...s.files.keys()]).toEqual(['2001:db8::5']); // the reference would also have dropped it
    // another ifname of the same container is a different owner
    expect(text(allocate(s, sets, owner('a', 'net1')))[0]).toBe('10.0.0.2/24 gw 10.0.0.1');
    // legacy "<id>" files count as held by every ifname of the id
    const l = new FakeStore({ '10.0.0.9': 'b' });
    expect(fails(() => allocate(l, [sets[0]], owner('b', 'eth1'))).message).toMatch(/10\.0\.0\.9 has been allocated to b/);
  });

  it('a later set failing releases exactly what this call reserved', () => {
    const s = new FakeStore({ '10.0.1.2': 'x\r\neth0' });
    const sets = [set({ subnet: '10.0.0.0/24' }), canonicalizeRangeSet([{ subnet: '10.0.1.0/30' }], 'ipam.ranges[1]')];
    const e = fails(() => allocate(s, sets, owner('a')));
    expect(e.message).toBe('failed to allocate for range 1: no IP addresses available in range set: 10.0.1.1-10.0.1.2');
    expect([...s.files.keys()]).toEqual(['10.0.1.2']);
  });

  it('requested addresses: honoured, gateway/outside/taken/two-per-set refused without side effects', () => {
    const sets = [set({ subnet: '10.0.0.0/24' }), canonicalizeRangeSet([{ subnet: '2001:db8::/64' }], 'ipam.ranges[1]')];
    const s = new FakeStore();
    expect(text(allocate(s, sets, owner('a'), [req('10.0.0.77'), req('2001:db8::77')]))).toEqual(['10.0.0.77/24 gw 10.0.0.1', '2001:db8::77/64 gw 2001:db8::1']);
    expect(s.last.get(0)).toBe('10.0.0.77');
    const before = [...s.files.keys()];
    const cases: [RequestedIP[], RegExp, number][] = [
      [[req('10.0.0.1')], /requested ip 10\.0\.0\.1 is subnet's gateway/, 7],
      [[req('10.0.0.255', 'CNI_ARGS IP', 4)], /10\.0\.0\.255 \(CNI_ARGS IP is in no range set/, 4],
      [[req('10.9.9.9', 'CNI_ARGS IP', 4)], /failed to allocate all requested IPs: 10\.9\.9\.9/, 4],
      [[req('10.0.0.5'), req('10.0.0.6')], /both in range set 0/, 7],
    ];
    for (const [r, msg, code] of cases) {
      const e = fails(() => allocate(s, sets, owner('b'), r));
      expect(e.message).toMatch(msg);
      expect(e.code).toBe(code);
      expect([...s.files.keys()]).toEqual(before);
    }
    const wide = [set({ subnet: '10.0.0.0/24', rangeStart: '10.0.0.0', rangeEnd: '10.0.0.255' })];
    expect(fails(() => allocate(s, wide, owner('b'), [req('10.0.0.255')])).message).toMatch(/10\.0\.0\.255 is the broadcast address/);
    expect(fails(() => allocate(s, wide, owner('b'), [req('10.0.0.0')])).message).toMatch(/10\.0\.0\.0 is the network address/);
    // taken: reference wording, v4 reserved first is rolled back
    const e = fails(() => allocate(s, sets, owner('b'), [req('10.0.0.8'), req('2001:db8::77')]));
    expect(e.message).toBe('failed to allocate for range 1: requested IP address 2001:db8::77 is not available in range set 2001:db8::1-2001:db8::ffff:ffff:ffff:ffff');
    expect([...s.files.keys()]).toEqual(before);
    // a requested address in one set, round robin in the other
    // (the rolled-back .8 still moved last_reserved_ip, as in the reference)
    expect(text(allocate(s, sets, owner('c'), [req('2001:db8::9')]))).toEqual(['10.0.0.9/24 gw 10.0.0.1', '2001:db8::9/64 gw 2001:db8::1']);
  });

  it('probes stay O(1) when last_reserved_ip points at free space in a large, busy range', () => {
    const files: Record<string, string> = {};
    for (let i = 2; i < 20002; i++) files[`10.0.${i >> 8}.${i & 255}`] = `c${i}\r\neth0`;
    const s = new FakeStore(files, { 0: '10.0.78.33' });
    allocate(s, [set({ subnet: '10.0.0.0/16' })], owner('new'));
    expect(s.probes).toBeLessThan(3);
  });
});
