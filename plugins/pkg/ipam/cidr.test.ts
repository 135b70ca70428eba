import { describe, expect, it } from 'vitest';
import { canonicalIp, cidrContains, formatCidr, networkOf, nextIp, parseCidr } from './cidr';

describe('cidr', () => {
  it('parses and formats both families', () => {
    expect(parseCidr('10.1.2.3/24')).toEqual({ ip: '10.1.2.3', prefixLen: 24, v6: false });
    expect(formatCidr(parseCidr('2001:DB8:0:0:0:0:0:1/64'))).toBe('2001:db8::1/64');
    expect(canonicalIp('fe80:0:0:0:1:0:0:0')).toBe('fe80::1:0:0:0');
    expect(canonicalIp('0:0:0:0:0:0:0:0')).toBe('::');
    expect(canonicalIp('1:0:2:0:3:0:4:0')).toBe('1:0:2:0:3:0:4:0');
    expect(canonicalIp('::ffff:1.2.3.4')).toBe('::ffff:102:304');
    for (const bad of ['10.1.2.3', '10.1.2.3/33', 'x/8', '::1/129', '10.1.2.3/a']) expect(() => parseCidr(bad)).toThrow(/invalid CIDR/);
  });
  it('networks, next address, containment', () => {
    expect(formatCidr(networkOf(parseCidr('10.1.2.3/24')))).toBe('10.1.2.0/24');
    expect(formatCidr(networkOf(parseCidr('2001:db8::abcd/64')))).toBe('2001:db8::/64');
    expect(nextIp('10.1.2.0')).toBe('10.1.2.1');
    expect(nextIp('10.1.2.255')).toBe('10.1.3.0');
    expect(nextIp('2001:db8::')).toBe('2001:db8::1');
    expect(cidrContains(parseCidr('10.1.0.0/16'), '10.1.200.3')).toBe(true);
    expect(cidrContains(parseCidr('10.1.0.0/16'), '10.2.0.1')).toBe(false);
    expect(cidrContains(parseCidr('10.1.0.0/16'), '::1')).toBe(false);
    expect(cidrContains(parseCidr('fd00::/8'), 'fd12::1')).toBe(true);
  });
});
