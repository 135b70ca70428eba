import { describe, it, expect } from 'vitest';
import { netnsPath, sysctlPath } from './ns';
import { NetnsError } from './errors';

describe('sysctlPath', () => {
  it('accepts net/ keys with slashes or dots', () => {
    expect(sysctlPath('net/ipv4/ip_forward')).toBe('/proc/sys/net/ipv4/ip_forward');
    expect(sysctlPath('net.ipv4.ip_forward')).toBe('/proc/sys/net/ipv4/ip_forward');
    // an interface name with a dot keeps it when slashes are used
    expect(sysctlPath('net/ipv4/conf/eth0.100/rp_filter')).toBe('/proc/sys/net/ipv4/conf/eth0.100/rp_filter');
  });
  it('rejects keys outside net/ and traversal', () => {
    for (const k of ['kernel/hostname', 'net', 'net/../kernel/x', 'net/ipv4/./x', 'net//ipv4', 'vm.swappiness', '../net/x']) {
      expect(() => sysctlPath(k), k).toThrow(NetnsError);
    }
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
