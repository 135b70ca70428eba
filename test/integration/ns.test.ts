import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, it, expect } from 'vitest';
import {
  createNetns, currentNetnsPath, getCurrentNetns, NetnsExistsError, NetnsNotFoundError, NotNetnsError, openNetns,
  openNetnsOrNull, readSysctl, removeNetns, sameNetns, withNetns, writeSysctl,
} from '../../plugins/pkg/ns';
import { lockFile } from '../../plugins/pkg/lock';
import { uniqueName, withTestNetns } from '../lib/netns';

describe('netns create/open/remove', () => {
  it('pins a new netns like ip netns add and removes it', () => {
    const name = uniqueName();
    const p = createNetns(name);
    try {
      expect(p).toBe(`/run/netns/${name}`);
      expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).toContain(name);
      const ns = openNetns(p);
      expect(ns.fd).toBeGreaterThan(2);
      expect(sameNetns(ns, '/proc/self/ns/net')).toBe(false);
      ns.close();
      expect(ns.closed).toBe(true);
      expect(() => createNetns(name)).toThrow(NetnsExistsError);
    } finally {
      removeNetns(p);
    }
    expect(fs.existsSync(p)).toBe(false);
    expect(() => removeNetns(p)).not.toThrow(); // missing is fine
    expect(() => openNetns(p)).toThrow(NetnsNotFoundError);
  });

  it('creates in a custom pin directory', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flaxt-pins-'));
    try {
      const p = createNetns('x', dir);
      try {
        expect(p).toBe(path.join(dir, 'x'));
        openNetns(p).close();
      } finally {
        removeNetns(p);
      }
    } finally {
      execFileSync('umount', ['-l', dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('never moves the calling thread', async () => {
    const home = getCurrentNetns();
    try {
      await withTestNetns(1, ([p]) => {
        expect(sameNetns(currentNetnsPath(), home)).toBe(true);
        expect(sameNetns(p, home)).toBe(false);
      });
      expect(sameNetns(currentNetnsPath(), home)).toBe(true);
    } finally {
      home.close();
    }
  });

  it('rejects missing paths and non-netns files with typed errors', () => {
    expect(() => openNetns('/run/netns/flaxt-does-not-exist')).toThrow(NetnsNotFoundError);
    expect(openNetnsOrNull('/run/netns/flaxt-does-not-exist')).toBeNull();
    expect(() => openNetns('/proc/999999999/ns/net')).toThrow(NetnsNotFoundError);
    expect(() => openNetns('/proc/self/ns/uts')).toThrow(NotNetnsError);
    expect(() => openNetns('/proc/self/ns/mnt')).toThrow(NotNetnsError);
    const f = path.join(os.tmpdir(), `flaxt-regular-${process.pid}`);
    fs.writeFileSync(f, 'x');
    try {
      expect(() => openNetns(f)).toThrow(NotNetnsError);
    } finally {
      fs.unlinkSync(f);
    }
    expect(() => openNetns('/proc/self/status')).toThrow(NotNetnsError);
  });

  it('accepts /proc/<pid>/ns/net, /proc/<pid>/task/<tid>/ns/net and /proc/<pid>/fd/N', () => withTestNetns(1, ([p]) => {
    const a = openNetns(p);
    try {
      const viaFd = openNetns(`/proc/${process.pid}/fd/${a.fd}`);
      expect(viaFd.id()).toBe(a.id());
      viaFd.close();
      const cur = getCurrentNetns();
      expect(sameNetns(cur, `/proc/${process.pid}/ns/net`)).toBe(true);
      cur.close();
      openNetns(currentNetnsPath()).close();
    } finally {
      a.close();
    }
  }));
});

describe('withNetns and sysctls', () => {
  it('writes a sysctl in the test netns and leaves the root netns unchanged', () => withTestNetns(1, ([p]) => {
    const before = readSysctl(null, 'net/ipv4/ip_forward');
    const want = before === '1' ? '0' : '1';
    writeSysctl(p, 'net.ipv4.ip_forward', want);
    expect(readSysctl(p, 'net/ipv4/ip_forward')).toBe(want);
    expect(readSysctl(null, 'net/ipv4/ip_forward')).toBe(before);
    expect(fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim()).toBe(before);
    // per-interface key (lo exists in every netns)
    writeSysctl(p, 'net/ipv4/conf/lo/arp_notify', 1);
    expect(readSysctl(p, 'net/ipv4/conf/lo/arp_notify')).toBe('1');
  }));

  it('always switches back, also when fn throws; nesting works', () => withTestNetns(2, ([a, b]) => {
    const home = getCurrentNetns();
    try {
      expect(() => withNetns(a, () => { throw new Error('boom'); })).toThrow('boom');
      expect(sameNetns(currentNetnsPath(), home)).toBe(true);
      const seen = withNetns(a, () => {
        const inA = sameNetns(currentNetnsPath(), a);
        const inB = withNetns(b, () => sameNetns(currentNetnsPath(), b));
        return [inA, inB, sameNetns(currentNetnsPath(), a)];
      });
      expect(seen).toEqual([true, true, true]);
      expect(sameNetns(currentNetnsPath(), home)).toBe(true);
      expect(() => withNetns(a, () => Promise.resolve(1))).toThrow(TypeError);
      expect(sameNetns(currentNetnsPath(), home)).toBe(true);
      expect(() => withNetns('/proc/self/ns/uts', () => 1)).toThrow(NotNetnsError);
    } finally {
      home.close();
    }
  }));

  it('validates sysctl keys', () => {
    expect(() => readSysctl(null, 'kernel/hostname')).toThrow(/under net/);
    expect(() => readSysctl(null, 'net/../kernel/hostname')).toThrow(/invalid/);
    expect(() => writeSysctl(null, 'net/ipv4/../../kernel/x', 1)).toThrow(/invalid/);
  });
});

describe('lockFile', () => {
  it('takes an exclusive flock that a second open cannot get', () => {
    const f = path.join(os.tmpdir(), `flaxt-lock-${process.pid}`);
    const l = lockFile(f);
    try {
      expect(() => lockFile(f, { nonBlocking: true })).toThrow(expect.objectContaining({ code: expect.stringMatching(/EWOULDBLOCK|EAGAIN/) }));
      l.release();
      const l2 = lockFile(f, { nonBlocking: true });
      l2.release();
      l2.release(); // idempotent
    } finally {
      l.release();
      fs.rmSync(f, { force: true });
    }
  });
});
