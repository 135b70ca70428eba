import { describe, expect, it } from 'vitest';
import { Address6 } from 'ip-address';
import { bigIntToIp, bufferToIp, canonicalIP, formatIP, ipToBuffer, parseAddr, parseIP, toAddr } from './addr';
import { bufferToMac, macToBuffer, randomMac } from './mac';
import {
  broadcastOf, formatPrefix, maskedPrefix, nextIp, nextPrefix, parseAddrOrPrefix, parseCIDR, parseNetwork, parsePrefix, parseSubnetKey,
  prefixContains, prefixContainsIP, prefixContainsPrefix, prefixEqual, prefixIP, prefixSize, prefixesOverlap, subnetKey,
} from './prefix';

describe('addresses (Go net.IP semantics)', () => {
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

  it('prints IPv6 as Go does for every pattern of zero groups', () => {
    // reference printer: RFC 5952 §4.2 written out on the eight words
    const goString = (w: number[]): string => {
      let best = -1, len = 0;
      for (let i = 0; i < 8;) {
        let j = i;
        while (j < 8 && w[j] === 0) j++;
        if (j - i >= 2 && j - i > len) { best = i; len = j - i; }
        i = j === i ? i + 1 : j;
      }
      const h = w.map((x) => x.toString(16));
      return best < 0 ? h.join(':') : `${h.slice(0, best).join(':')}::${h.slice(best + len).join(':')}`;
    };
    for (let mask = 0; mask < 256; mask++) {
      const w = Array.from({ length: 8 }, (_, i) => (mask & (1 << i) ? 0xab0 + i : 0));
      const n = w.reduce((a, x) => (a << 16n) | BigInt(x), 0n);
      expect(formatIP({ v6: true, n })).toBe(goString(w));
    }
  });

  it('prints IPv6 as the ip-address package\'s RFC 5952 correctForm does (every zero pattern, random words)', () => {
    for (let mask = 0; mask < 256; mask++) {
      for (const r of [0, 1]) {
        const w = Array.from({ length: 8 }, (_, i) => (mask & (1 << i) ? (r ? Math.floor(Math.random() * 0xffff) + 1 : 1) : 0));
        const n = w.reduce((a, x) => (a << 16n) | BigInt(x), 0n);
        expect(formatIP({ v6: true, n })).toBe(Address6.fromBigInt(n).correctForm());
      }
    }
  });

  it('converts to and from netlink bytes (IPv4-mapped kept IPv6)', () => {
    for (const ip of ['::', '::1', 'fd00::1', '2001:db8::ff00:42:8329', 'fe80::1:0:0:1', '1:2:3:4:5:6:7:8', '::ffff:10.1.2.3', '10.0.0.1']) {
      expect(bufferToIp(ipToBuffer(ip))).toBe(ip);
    }
    expect(bufferToIp(ipToBuffer('2001:0db8:0000:0000:0000:0000:0000:0001'))).toBe('2001:db8::1');
    expect(bufferToIp(ipToBuffer('::1.2.3.4'))).toBe('::102:304');
    expect(() => ipToBuffer('10.0.0.256')).toThrow(/invalid IP address/);
    expect(() => bufferToIp(Buffer.alloc(5))).toThrow(/bad IP length/);
  });

  it('MACs', () => {
    expect(macToBuffer('0A-0b-0c-0d-0e-0f').toString('hex')).toBe('0a0b0c0d0e0f');
    expect(() => macToBuffer('0a:0b')).toThrow();
    expect(bufferToMac(Buffer.from([1, 2, 0xab, 0, 0, 0xff]))).toBe('01:02:ab:00:00:ff');
    const m = macToBuffer(randomMac());
    expect(m[0] & 0x03).toBe(0x02); // locally administered, unicast
  });
});

describe('parseCIDR (host-local: Go ParseCIDR)', () => {
  it('keeps host bits and refuses v4-mapped networks', () => {
    expect(parseCIDR('10.0.0.5/24')).toEqual({ v6: false, ip: 0x0a000005n, prefixLen: 24 });
    expect(parseCIDR('10.0.0.0/33')).toBeNull();
    expect(parseCIDR('::ffff:10.0.0.0/120')).toBeNull();
    expect(parseCIDR('10.0.0.0')).toBeNull();
    expect(parseCIDR('10.0.0.0/024')).toBeNull();
    expect(formatPrefix(parseCIDR('2001:db8::/64')!)).toBe('2001:db8::/64');
  });
});

describe('Prefix (text + prefix)', () => {
  it('parses and formats both families', () => {
    expect(parsePrefix('10.1.2.3/24')).toEqual({ v6: false, ip: 0x0a010203n, prefixLen: 24 });
    expect(prefixIP(parsePrefix('2001:DB8::1/64'))).toBe('2001:db8::1');
    expect(formatPrefix(parsePrefix('2001:DB8:0:0:0:0:0:1/64'))).toBe('2001:db8::1/64');
    const text = (s: string) => formatIP(toAddr(s));
    expect(text('fe80:0:0:0:1:0:0:0')).toBe('fe80::1:0:0:0');
    expect(text('0:0:0:0:0:0:0:0')).toBe('::');
    expect(text('1:0:2:0:3:0:4:0')).toBe('1:0:2:0:3:0:4:0');
    expect(text('::ffff:1.2.3.4')).toBe('::ffff:102:304');
    expect(() => toAddr('10.0.0.1/8')).toThrow(/invalid IP address "10.0.0.1\/8"/);
    for (const bad of ['10.1.2.3', '10.1.2.3/33', 'x/8', '::1/129', '10.1.2.3/a']) expect(() => parsePrefix(bad)).toThrow(/invalid CIDR/);
  });
  it('takes a bare address as a host route where netlink wants one', () => {
    expect(formatPrefix(parseAddrOrPrefix('10.1.2.3'))).toBe('10.1.2.3/32');
    expect(formatPrefix(parseAddrOrPrefix('fd00::1'))).toBe('fd00::1/128');
    expect(() => parseAddrOrPrefix('10.1.2.3/33')).toThrow();
    expect(() => parseAddrOrPrefix('nope/3')).toThrow();
  });
  it('networks, broadcast, next address, containment', () => {
    expect(formatPrefix(maskedPrefix(parsePrefix('10.1.2.3/24')))).toBe('10.1.2.0/24');
    expect(formatPrefix(maskedPrefix(parsePrefix('10.1.2.3/20')))).toBe('10.1.0.0/20');
    expect(broadcastOf(parsePrefix('10.1.2.3/20'))).toBe('10.1.15.255');
    expect(formatPrefix(maskedPrefix(parsePrefix('2001:db8::abcd/64')))).toBe('2001:db8::/64');
    expect(nextIp('10.1.2.0')).toBe('10.1.2.1');
    expect(nextIp('10.1.2.255')).toBe('10.1.3.0');
    expect(nextIp('255.255.255.255')).toBe('0.0.0.0');
    expect(nextIp('2001:db8::')).toBe('2001:db8::1');
    expect(prefixContainsIP(parsePrefix('10.1.0.0/16'), '10.1.200.3')).toBe(true);
    expect(prefixContainsIP(parsePrefix('10.1.0.0/16'), '10.2.0.1')).toBe(false);
    expect(prefixContainsIP(parsePrefix('10.1.0.0/16'), '::1')).toBe(false);
    expect(prefixContainsIP(parsePrefix('fd00::/8'), 'fd12::1')).toBe(true);
  });
});

describe('Prefix (bigint network, flannel IP4Net/IP6Net)', () => {
  it('parses like net.ParseCIDR (host bits cleared, both families) and formats', () => {
    expect(formatPrefix(parseNetwork('10.244.3.7/24'))).toBe('10.244.3.0/24');
    expect(formatPrefix(parseNetwork('10.244.7.9/16'))).toBe('10.244.0.0/16');
    expect(formatPrefix(parseNetwork('fc00:0:0:1::5/64'))).toBe('fc00:0:0:1::/64');
    expect(parseNetwork('::ffff:10.0.0.0/104')).toEqual({ v6: true, ip: 0xffff0a000000n, prefixLen: 104 }); // IPv4-mapped stays IPv6
    for (const bad of ['10.0.0.1', '10.0.0.0/33', '10.244.0/16', 'fc00::/129', 'x/8', '10.0.0.0/ 8', '10.0.0.0/-1', '']) {
      expect(() => parseNetwork(bad), bad).toThrow(/invalid CIDR/);
    }
  });
  it('is immutable', () => {
    expect(Object.isFrozen(parseNetwork('10.0.0.0/8'))).toBe(true);
    expect(Object.isFrozen(parseAddr('10.0.0.1'))).toBe(true);
  });
  it('size, next, containment, overlap, equality', () => {
    const a = parseNetwork('10.244.1.0/24');
    expect(prefixSize(a)).toBe(256n);
    expect(formatPrefix(nextPrefix(a))).toBe('10.244.2.0/24');
    expect(formatPrefix(nextPrefix(parseNetwork('10.244.255.0/24')))).toBe('10.245.0.0/24');
    expect(prefixContains(a, parseNetwork('10.244.1.9/32').ip)).toBe(true);
    expect(prefixContains(a, parseNetwork('10.244.2.9/32').ip)).toBe(false);
    expect(prefixContainsPrefix(parseNetwork('10.244.0.0/16'), a)).toBe(true);
    expect(prefixContainsPrefix(a, parseNetwork('10.244.0.0/16'))).toBe(false);
    expect(prefixesOverlap(a, parseNetwork('10.244.0.0/16'))).toBe(true);
    expect(prefixesOverlap(a, parseNetwork('10.244.1.128/25'))).toBe(true);
    expect(prefixesOverlap(a, parseNetwork('10.245.0.0/16'))).toBe(false);
    expect(prefixesOverlap(a, parseNetwork('fc00::/64'))).toBe(false);
    expect(prefixEqual(a, parseNetwork('10.244.1.77/24'))).toBe(true);
    expect(prefixEqual(a, nextPrefix(a))).toBe(false);
    expect(bigIntToIp(toAddr('2001:db8:0:0:1:0:0:1').n, true)).toBe('2001:db8::1:0:0:1');
  });
  it("writes and reads flannel's subnet keys", () => {
    const sn = parseNetwork('10.244.1.0/24');
    const sn6 = parseNetwork('fc00::/64');
    expect(subnetKey(sn)).toBe('10.244.1.0-24');
    expect(subnetKey(sn, sn6)).toBe('10.244.1.0-24&fc00::-64');
    const back = parseSubnetKey('/coreos.com/network/subnets/10.244.1.0-24&fc00::-64');
    expect(back && subnetKey(back.sn, back.sn6)).toBe('10.244.1.0-24&fc00::-64');
    expect(parseSubnetKey('10.244.3.0-24')?.sn6).toBeUndefined();
    for (const bad of ['10.244.1.0_24', '10.244.1.0-33', '300.1.1.1-24', 'nothing']) expect(parseSubnetKey(bad), bad).toBeNull();
  });
});
