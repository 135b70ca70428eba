import { describe, it, expect } from 'vitest';
import { netnsPath, sysctlPath, trySysctl } from './ns';
import { NetnsError } from './errors';

describe('sysctlPath', () => {
  it('accepts net/ keys with slashes or dots', () => {
    expect(sysctlPath('net/ipv4/ip_forward')).toBe('/proc/sys/net/ipv4/ip_forward');
    expect(sysctlPath('net.ipv4.ip_forward')).toBe('/proc/sys/net/ipv4/ip_forward');
    // an interface name with a dot keeps it when slashes are used
    expect(sysctlPath('net/ipv4/conf/eth0.100/rp_filter')).toBe('/proc/sys/net/ipv4/conf/eth0.100/rp_filter');
    // under another root (a CNI server worker writing through the caller's /proc)
    expect(sysctlPath('net.ipv4.ip_forward', '/proc/self/fd/9/proc/sys')).toBe('/proc/self/fd/9/proc/sys/net/ipv4/ip_forward');
  });
  it('rejects keys outside net/ and traversal', () => {
    for (const k of ['kernel/hostname', 'net', 'net/../kernel/x', 'net/ipv4/./x', 'net//ipv4', 'vm.swappiness', '../net/x']) {
      expect(() => sysctlPath(k), k).toThrow(NetnsError);
    }
  });
});

describe('trySysctl', () => {
  it('is false for a knob that does not exist, and checks the key as writeSysctl does', () => {
    expect(trySysctl(null, 'net/ipv4/conf/flaxnosuch0/arp_notify', '1')).toBe(false);
    expect(() => trySysctl(null, 'kernel/hostname', 'x')).toThrow(NetnsError);
  });
});

describe('netnsPath', () => {
  it('pins names under the run dir and keeps absolute paths', () => {
    expect(netnsPath('cni-1')).toBe('/run/netns/cni-1');
    expect(netnsPath('x', '/tmp/pins')).toBe('/tmp/pins/x');
    expect(netnsPath('/proc/1/ns/net')).toBe('/proc/1/ns/net');
    for (const bad of ['', '.', '..', 'a/b']) expect(() => netnsPath(bad)).toThrow(NetnsError);
  });
});
