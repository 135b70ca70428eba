import { closeSync, fstatSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { callerHost, callerNetnsOpener } from './caller-host';

describe('callerNetnsOpener (the resident CNI server: CNI_NETNS as the caller opened it)', () => {
  const fsError = (p: string): unknown => {
    try {
      openSync(p, 'r');
    } catch (e) {
      return e;
    }
    throw new Error(`${p} opened`);
  };
  it('the caller\'s errno fails as fs.openSync fails on that path: same message, code, errno', () => {
    const p = '/nonexistent-flax-test/netns';
    const open = callerNetnsOpener(p, { errno: 2 });
    const want = fsError(p) as NodeJS.ErrnoException;
    let got: NodeJS.ErrnoException | undefined;
    try { open(p); } catch (e) { got = e as NodeJS.ErrnoException; }
    expect(got).toBeDefined();
    expect({ message: got!.message, code: got!.code, errno: got!.errno, syscall: got!.syscall, path: got!.path })
      .toEqual({ message: want.message, code: want.code, errno: want.errno, syscall: want.syscall, path: want.path });
  });
  it('the caller\'s fd reopens that file, whatever the path names here; another call\'s Host opens the path again', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'flax-alias-'));
    const a = path.join(dir, 'a');
    writeFileSync(a, 'x');
    const fd = openSync(a, 'r');
    try {
      const host = callerHost({ env: { CNI_NETNS: '/elsewhere/pod' }, stderr: { write: () => true }, netns: { fd } });
      const re = host.openNetnsFile('/elsewhere/pod');
      expect(fstatSync(re).ino).toBe(fstatSync(fd).ino);
      closeSync(re);
      expect(() => host.openNetnsFile(a + '-other')).toThrow(/ENOENT/);
      const next = callerHost({ env: { CNI_NETNS: '/elsewhere/pod' }, stderr: { write: () => true } });
      expect(() => next.openNetnsFile('/elsewhere/pod')).toThrow(/ENOENT/);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('callerHost (one call\'s Host: nothing global is set)', () => {
  it('is the caller\'s environment and sysctl root, and this process\'s otherwise', () => {
    const stderr = { write: () => true };
    const h = callerHost({ env: { PATH: '/nonexistent-flax', FLAX_DEBUG: '1' }, stderr, sysctlRoot: '/proc/self/fd/7/proc/sys' });
    expect(h.env).toEqual({ PATH: '/nonexistent-flax', FLAX_DEBUG: '1' });
    expect(h.stderr).toBe(stderr);
    expect(h.sysctlRoot).toBe('/proc/self/fd/7/proc/sys');
    expect(process.env.FLAX_DEBUG).toBeUndefined();
    expect(callerHost({ env: {}, stderr }).sysctlRoot).toBe('/proc/sys');
  });
});
