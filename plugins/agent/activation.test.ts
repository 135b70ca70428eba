import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { CniServer, CniServerStats } from '../pkg/cniserver/server';
import { signalReady, takeListenFd, takeReadyFd, untilIdle } from './activation';
import { ConfigError } from './config';
import { parseFlags, UsageError } from './flags';

describe('socket activation: takeListenFd', () => {
  it('fd 3 when LISTEN_PID is this process and LISTEN_FDS=1; the variables are removed', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: '42', LISTEN_FDNAMES: 'flax-cni.socket', OTHER: 'x' };
    expect(takeListenFd(env, 42)).toBe(3);
    expect(env).toEqual({ OTHER: 'x' });
  });
  it('none when the variables are absent or name another process (still removed)', () => {
    expect(takeListenFd({}, 42)).toBeUndefined();
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: '7' };
    expect(takeListenFd(env, 42)).toBeUndefined();
    expect(env).toEqual({});
  });
  it('more than one socket is a ConfigError', () => {
    expect(() => takeListenFd({ LISTEN_FDS: '2', LISTEN_PID: '42' }, 42)).toThrow(ConfigError);
  });
});

describe('the ready pipe of the client that started flaxd: takeReadyFd, signalReady', () => {
  /** a FIFO: `r` its read end (O_RDWR: never blocks, never sees EOF), `w` a write end (non-blocking) */
  const fifo = () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'flax-ready-'));
    const f = path.join(dir, 'p');
    expect(spawnSync('mkfifo', [f]).status).toBe(0);
    const r = openSync(f, constants.O_RDWR | constants.O_NONBLOCK);
    const w = openSync(f, constants.O_WRONLY | constants.O_NONBLOCK);
    return { dir, r, w };
  };
  const readAll = (fd: number) => {
    const b = Buffer.alloc(16);
    try {
      return b.subarray(0, readSync(fd, b)).toString();
    } catch {
      return ''; // EAGAIN: nothing written
    }
  };
  it('a pipe named by FLAX_CNI_READY_FD is taken (the variable removed); signalReady writes one byte and closes it', () => {
    const { dir, r, w } = fifo();
    try {
      const env: NodeJS.ProcessEnv = { FLAX_CNI_READY_FD: String(w), OTHER: 'x' };
      expect(takeReadyFd(env)).toBe(w);
      expect(env).toEqual({ OTHER: 'x' });
      signalReady(w, true);
      expect(readAll(r)).toBe('1');
      expect(() => closeSync(w), 'closed by signalReady').toThrow(/EBADF/);
      signalReady(undefined, true); // nothing to tell
    } finally {
      closeSync(r);
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('a failed start closes it without a byte', () => {
    const { dir, r, w } = fifo();
    try {
      signalReady(takeReadyFd({ FLAX_CNI_READY_FD: String(w) }), false);
      expect(readAll(r)).toBe('');
      expect(() => closeSync(w)).toThrow(/EBADF/);
    } finally {
      closeSync(r);
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('anything else is not taken, and the variable is removed all the same: no number, stdio, not open, not a pipe, systemd\'s socket fd', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'flax-ready-'));
    const file = path.join(dir, 'f');
    writeFileSync(file, '');
    const f = openSync(file, 'r+');
    try {
      for (const v of ['', 'x', '3x', '-4', '1', '2', '9999999', String(f)]) {
        const env: NodeJS.ProcessEnv = { FLAX_CNI_READY_FD: v };
        expect(takeReadyFd(env), v).toBeUndefined();
        expect(env).toEqual({});
      }
      expect(takeReadyFd({ FLAX_CNI_READY_FD: '999' }), 'not open').toBeUndefined();
      expect(readFileSync(file, 'utf8'), 'nothing written to a file').toBe('');
      const { dir: d2, r, w } = fifo();
      expect(takeReadyFd({ FLAX_CNI_READY_FD: String(w) }, w), 'the fd systemd handed over').toBeUndefined();
      for (const fd of [r, w]) closeSync(fd);
      rmSync(d2, { recursive: true, force: true });
    } finally {
      closeSync(f);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('--idle-exit', () => {
  it('takes a duration with --no-overlay (a bare number is seconds)', () => {
    expect(parseFlags(['--no-overlay', '--idle-exit', '10m']).idleExit).toBe(600_000);
    expect(parseFlags(['--no-overlay', '--idle-exit=1.5s']).idleExit).toBe(1500);
    expect(parseFlags(['--no-overlay', '--idle-exit', '30']).idleExit).toBe(30_000);
    expect(parseFlags(['--no-overlay', '--idle-exit', '0']).idleExit).toBe(0);
    expect(parseFlags(['--no-overlay'], { FLANNELD_IDLE_EXIT: '500ms' }).idleExit).toBe(500);
    expect(parseFlags([]).idleExit).toBe(0);
  });
  it('refuses a bad value, and the overlay agent', () => {
    expect(() => parseFlags(['--no-overlay', '--idle-exit', 'soon'])).toThrow(UsageError);
    expect(() => parseFlags(['--no-overlay', '--idle-exit', '-1s'])).toThrow(UsageError);
    expect(() => parseFlags(['--idle-exit', '10m'])).toThrow(/--idle-exit is for --no-overlay/);
  });

  const fakeServer = (stats: CniServerStats): CniServer => ({ socket: '/x', stats: () => ({ ...stats }), close: async () => {}, writeHeapSnapshots: async () => [] });
  it('resolves once the counters stop moving for that long; a call restarts the wait', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'performance'] });
    try {
      const stats: CniServerStats = { served: 0, failed: 0, refused: 0, deferred: 0, workers: 1, latency: {} };
      const idle = untilIdle(fakeServer(stats), 300);
      let done = false;
      void idle.done.then(() => { done = true; });
      // a call every 200 ms for a while: never idle
      for (let i = 0; i < 10; i++) {
        await vi.advanceTimersByTimeAsync(200);
        stats.served++;
        expect(done).toBe(false);
      }
      await vi.advanceTimersByTimeAsync(250);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(200);
      expect(done).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});
