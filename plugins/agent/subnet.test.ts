import { describe, expect, it } from 'vitest';
import { formatIp, formatNet, netContainsNet, netOverlaps, nextNet, parseCidr, parseIp, parseSubnetKey, subnetKey } from './subnet';

describe('subnet arithmetic', () => {
  it('parses CIDRs as Go net.ParseCIDR does: host bits cleared, both families', () => {
    expect(formatNet(parseCidr('10.244.7.9/16'))).toBe('10.244.0.0/16');
    expect(formatNet(parseCidr('fc00:0:0:1::5/64'))).toBe('fc00:0:0:1::/64');
    for (const bad of ['10.244.0.0', '10.244.0.0/33', '10.244.0/16', 'x/8', '10.0.0.0/-1', 'fc00::/129', '']) {
      expect(() => parseCidr(bad), bad).toThrow(/invalid CIDR/);
    }
    expect(() => parseIp('10.0.0.1/8')).toThrow();
  });

  it('walks, contains and overlaps subnets', () => {
    const a = parseCidr('10.244.1.0/24');
    expect(formatNet(nextNet(a))).toBe('10.244.2.0/24');
    expect(formatNet(nextNet(parseCidr('10.244.255.0/24')))).toBe('10.245.0.0/24');
    expect(netContainsNet(parseCidr('10.244.0.0/16'), a)).toBe(true);
    expect(netContainsNet(a, parseCidr('10.244.0.0/16'))).toBe(false);
    expect(netOverlaps(a, parseCidr('10.244.1.128/25'))).toBe(true);
    expect(netOverlaps(a, parseCidr('10.244.2.0/24'))).toBe(false);
    expect(netOverlaps(a, parseCidr('fc00::/64'))).toBe(false);
    expect(formatIp(parseIp('2001:db8:0:0:1:0:0:1').n, true)).toBe('2001:db8::1:0:0:1');
  });

  it("writes and reads flannel's subnet keys", () => {
    const sn = parseCidr('10.244.1.0/24');
    const sn6 = parseCidr('fc00::/64');
    expect(subnetKey(sn)).toBe('10.244.1.0-24');
    expect(subnetKey(sn, sn6)).toBe('10.244.1.0-24&fc00::-64');
    const back = parseSubnetKey('/coreos.com/network/subnets/10.244.1.0-24&fc00::-64');
    expect(back && subnetKey(back.sn, back.sn6)).toBe('10.244.1.0-24&fc00::-64');
    expect(parseSubnetKey('10.244.3.0-24')?.sn6).toBeUndefined();
    for (const bad of ['10.244.1.0_24', '10.244.1.0-33', '300.1.1.1-24', 'nothing']) expect(parseSubnetKey(bad), bad).toBeNull();
  });
});
