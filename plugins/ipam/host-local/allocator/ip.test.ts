import { describe, expect, it } from 'vitest';
import { canonicalIP, formatIP, parseCIDR, parseIP } from './ip';

describe('ip parse/format (Go net.IP semantics)', () => {
  it.each([
    ['10.0.0.1', '10.0.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['2001:db8::1', '2001:db8::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // first longest run wins only when longer
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // tie: first
    ['2001:db8:1:1:1:1:0:1', '2001:db8:1:1:1:1:0:1'], // single zero group not compressed
    ['::ffff:10.1.2.3', '10.1.2.3'], // v4-mapped is IPv4 (Go To4)
    ['64:ff9b::1.2.3.4', '64:ff9b::102:304'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
  ])('%s → %s', (i, o) => expect(canonicalIP(i)).toBe(o));

  it.each(['', '10.0.0', '10.0.0.256', '010.0.0.1', '1.2.3.4.5', 'a.b.c.d', '1::2::3', ':1::', '1::2:', '12345::', 'fe80::1%eth0', '1:2:3:4:5:6:7:8:9', '::1.2.3', ' 10.0.0.1'])(
    'rejects %j', (s) => expect(parseIP(s)).toBeNull());

  it('CIDR keeps host bits and refuses v4-mapped networks', () => {
    expect(parseCIDR('10.0.0.5/24')).toEqual({ ip: { family: 4, n: 0x0a000005n }, prefix: 24 });
    expect(parseCIDR('10.0.0.0/33')).toBeNull();
    expect(parseCIDR('::ffff:10.0.0.0/120')).toBeNull();
    expect(parseCIDR('10.0.0.0')).toBeNull();
    expect(parseCIDR('10.0.0.0/024')).toBeNull();
    expect(formatIP(parseCIDR('2001:db8::/64')!.ip)).toBe('2001:db8::');
  });
});
