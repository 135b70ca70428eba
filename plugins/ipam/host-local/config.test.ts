import { describe, expect, it } from 'vitest';
import { CniError } from '../../pkg/cni/errors';
import { loadHostLocalConf, parseResolvConfText } from './config';
import { rangeSetText } from './allocator/range-set';
import { formatIP } from '../../pkg/ip';

const conf = (ipam: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'bridge', ipam: { type: 'host-local', ...ipam }, ...extra });
function err(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error('did not throw');
}

describe('host-local config', () => {
  it('orders sets runtimeConfig.ipRanges, legacy subnet, ranges; fills defaults', () => {
    const c = loadHostLocalConf(conf(
      { subnet: '10.1.0.0/16', rangeStart: '10.1.0.10', ranges: [[{ subnet: '2001:db8::/64' }]], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: '2001:db8::1' }] },
      { runtimeConfig: { ipRanges: [[{ subnet: '10.2.0.0/24' }]] } },
    ));
    expect(c.rangeSets.map(rangeSetText)).toEqual(['10.2.0.1-10.2.0.254', '10.1.0.10-10.1.255.254', '2001:db8::1-2001:db8::ffff:ffff:ffff:ffff']);
    expect(c.rangeSets.map((s) => s.field)).toEqual(['runtimeConfig.ipRanges[0]', 'ipam', 'ipam.ranges[0]']);
    expect(c.dataDir).toBe('/var/lib/cni/networks');
    expect(c.routes).toEqual([{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: '2001:db8::1' }]);
    expect(formatIP({ v6: false, n: c.rangeSets[1].ranges[0].gateway })).toBe('10.1.0.1');
  });

  it.each<[string, string, Record<string, unknown>, Record<string, unknown>?]>([
    ['no ranges', 'field `ipam.ranges`: no IP ranges specified', {}],
    ['prefix too small', 'field `ipam.ranges[0][0].subnet`: network 10.0.0.0/31 too small to allocate from', { ranges: [[{ subnet: '10.0.0.0/31' }]] }],
    ['v6 prefix too small', 'field `ipam.subnet`: network 2001:db8::/127 too small', { subnet: '2001:db8::/127' }],
    ['host bits', 'field `ipam.subnet`: network 10.0.0.5/24 has host bits set; for a subnet mask of length 24 the network address is 10.0.0.0', { subnet: '10.0.0.5/24' }],
    ['bad CIDR', 'field `ipam.ranges[0][0].subnet`: invalid CIDR "10.0.0.0/33"', { ranges: [[{ subnet: '10.0.0.0/33' }]] }],
    ['missing subnet', 'field `ipam.ranges[0][0].subnet`: missing subnet', { ranges: [[{ rangeStart: '10.0.0.1' }]] }],
    ['start outside', 'field `ipam.ranges[0][0].rangeStart`: rangeStart 10.0.1.5 not in network 10.0.0.0/24', { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }]] }],
    ['end outside', 'field `ipam.rangeEnd`: rangeEnd 10.0.1.5 not in network 10.0.0.0/24', { subnet: '10.0.0.0/24', rangeEnd: '10.0.1.5' }],
    ['end before start', 'field `ipam.rangeEnd`: rangeEnd 10.0.0.5 is before rangeStart 10.0.0.9', { subnet: '10.0.0.0/24', rangeStart: '10.0.0.9', rangeEnd: '10.0.0.5' }],
    ['gateway family', 'field `ipam.ranges[0][0].gateway`: 2001:db8::1 is not an IPv4 address', { ranges: [[{ subnet: '10.0.0.0/24', gateway: '2001:db8::1' }]] }],
    ['gateway junk', 'field `ipam.gateway`: invalid IP address "x"', { subnet: '10.0.0.0/24', gateway: 'x' }],
    ['mixed families', 'field `ipam.ranges[0][1]`: mixed address families in one range set', { ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: '2001:db8::/64' }]] }],
    ['overlap in set', 'field `ipam.ranges[0][1]`: ranges 10.0.0.1-10.0.0.254 and 10.0.0.100-10.0.0.200 overlap', { ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: '10.0.0.0/24', rangeStart: '10.0.0.100', rangeEnd: '10.0.0.200' }]] }],
    ['overlapping sets', 'field `ipam.ranges[0]`: range set 1 overlaps with range set 0 (ipam)', { subnet: '10.0.0.0/16', ranges: [[{ subnet: '10.0.5.0/24' }]] }],
    ['overlap with runtime ipRanges', 'field `ipam.ranges[0]`: range set 1 overlaps with range set 0 (runtimeConfig.ipRanges[0])', { ranges: [[{ subnet: '10.0.5.0/24' }]] }, { runtimeConfig: { ipRanges: [[{ subnet: '10.0.0.0/16' }]] } }],
    ['empty set', 'field `ipam.ranges[0]`: empty range set', { ranges: [[]] }],
    ['rangeStart without subnet', 'field `ipam.rangeStart`: given without ipam.subnet', { rangeStart: '10.0.0.1', ranges: [[{ subnet: '10.0.0.0/24' }]] }],
    ['relative dataDir', 'field `ipam.dataDir`: must be an absolute path', { subnet: '10.0.0.0/24', dataDir: 'var/lib' }],
    ['relative resolvConf', 'field `ipam.resolvConf`: must be an absolute path', { subnet: '10.0.0.0/24', resolvConf: 'resolv.conf' }],
    ['wrong type', 'field `ipam.ranges[0][0].subnet`: Invalid input: expected string, received number', { ranges: [[{ subnet: 10 }]] }],
    ['huge string', 'field `ipam.subnet`: Too big', { subnet: '1'.repeat(100000) }],
    ['too many sets', 'field `ipam.ranges`: Too big', { ranges: Array.from({ length: 200 }, (_, i) => [{ subnet: `10.${i}.0.0/24` }]) }],
    ['route dst', 'field `ipam.routes[0].dst`: invalid CIDR "0.0.0.0"', { subnet: '10.0.0.0/24', routes: [{ dst: '0.0.0.0' }] }],
    ['route gw family', 'field `ipam.routes[0].gw`: gateway 10.0.0.1 and destination ::/0 are of different families', { subnet: '10.0.0.0/24', routes: [{ dst: '::/0', gw: '10.0.0.1' }] }],
    ['route mtu', 'field `ipam.routes[0].mtu`', { subnet: '10.0.0.0/24', routes: [{ dst: '::/0', mtu: 1e20 }] }],
  ])('%s → code 7', (_n, msg, ipam, extra) => {
    const e = err(() => loadHostLocalConf(conf(ipam, extra)));
    expect(e.code).toBe(7);
    expect(e.message).toContain(msg);
  });

  it('missing ipam key, malformed JSON, bad name', () => {
    expect(err(() => loadHostLocalConf('{"cniVersion":"1.0.0","name":"n"}')).message).toBe("IPAM config missing 'ipam' key");
    expect(err(() => loadHostLocalConf('{"cniVersion":')).code).toBe(6);
    expect(err(() => loadHostLocalConf(JSON.stringify({ cniVersion: '1.0.0', name: '../x', ipam: { subnet: '10.0.0.0/24' } }))).code).toBe(7);
  });

  it('0.2.0 refuses two sets of one family', () => {
    const e = err(() => loadHostLocalConf(JSON.stringify({ cniVersion: '0.2.0', name: 'n', ipam: { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.1.0.0/24' }]] } })));
    expect(e.message).toBe('CNI version 0.2.0 does not support more than 1 address per family');
  });

  it('requested IPs: args.cni.ips supersedes CNI_ARGS IP=, runtimeConfig.ips add; bad ones named', () => {
    const base = { subnet: '10.0.0.0/24' };
    const a = loadHostLocalConf(conf(base), { requested: true, cniArgs: 'IgnoreUnknown=1;IP=10.0.0.5, 10.0.0.6' });
    expect(a.requested.map((r) => [formatIP(r.ip), r.source, r.code])).toEqual([['10.0.0.5', 'CNI_ARGS IP', 4], ['10.0.0.6', 'CNI_ARGS IP', 4]]);
    const b = loadHostLocalConf(conf(base, { args: { cni: { ips: ['10.0.0.7/24'] } }, runtimeConfig: { ips: ['10.0.0.8'] } }), { requested: true, cniArgs: 'IP=10.0.0.5' });
    expect(b.requested.map((r) => formatIP(r.ip))).toEqual(['10.0.0.7', '10.0.0.8']);
    const e1 = err(() => loadHostLocalConf(conf(base), { requested: true, cniArgs: 'IP=10.0.0.300' }));
    expect([e1.code, e1.message]).toEqual([4, 'invalid IP "10.0.0.300" in CNI_ARGS IP']);
    const e2 = err(() => loadHostLocalConf(conf(base, { runtimeConfig: { ips: ['nope'] } }), { requested: true }));
    expect([e2.code, e2.message]).toEqual([7, 'invalid network config: field `runtimeConfig.ips[0]`: invalid IP "nope" in runtimeConfig.ips[0]']);
    expect(err(() => loadHostLocalConf(conf(base), { requested: true, cniArgs: 'FOO=1' })).code).toBe(4);
    // DEL ignores CNI_ARGS
    expect(loadHostLocalConf(conf(base), { cniArgs: 'IP=junk' }).requested).toEqual([]);
  });

  it('parses resolv.conf like the reference', () => {
    expect(parseResolvConfText('# c\n; c\nnameserver 1.1.1.1\nnameserver  8.8.8.8 \ndomain example.com\nsearch a.b c.d\noptions ndots:5 rotate\nbogus\n')).toEqual({
      nameservers: ['1.1.1.1', '8.8.8.8'], domain: 'example.com', search: ['a.b', 'c.d'], options: ['ndots:5', 'rotate'],
    });
  });
});
