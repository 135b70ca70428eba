import { closeSync, fstatSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, expect } from 'vitest';
import { clearNetnsAliases, netnsPath, openNsFile, setNetnsAlias, sysctlPath, trySysctl } from './ns';
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

describe('netns aliases (the resident CNI server: CNI_NETNS as the caller opened it)', () => {
  const fsError = (p: string): unknown => {
    try {
      openSync(p, 'r');
    } catch (e) {
      return e;
    }
    throw new Error(`${p} opened`);
  };
  it('an errno alias fails as fs.openSync fails on that path: same message, code, errno', () => {
    const p = '/nonexistent-flax-test/netns';
    setNetnsAlias(p, { errno: 2 });
    try {
      const want = fsError(p) as NodeJS.ErrnoException;
      let got: NodeJS.ErrnoException | undefined;
      try { openNsFile(p); } catch (e) { got = e as NodeJS.ErrnoException; }
      expect(got).toBeDefined();
      expect({ message: got!.message, code: got!.code, errno: got!.errno, syscall: got!.syscall, path: got!.path })
        .toEqual({ message: want.message, code: want.code, errno: want.errno, syscall: want.syscall, path: want.path });
    } finally {
      clearNetnsAliases();
    }
  });
  it('an fd alias reopens that file, whatever the path now names; cleared, the path is opened again', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'flax-alias-'));
    const a = path.join(dir, 'a');
    writeFileSync(a, 'x');
    const fd = openSync(a, 'r');
    try {
      setNetnsAlias('/elsewhere/pod', { fd });
      const re = openNsFile('/elsewhere/pod');
      expect(fstatSync(re).ino).toBe(fstatSync(fd).ino);
      closeSync(re);
      clearNetnsAliases();
      expect(() => openNsFile('/elsewhere/pod')).toThrow(/ENOENT/);
    } finally {
      clearNetnsAliases();
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
