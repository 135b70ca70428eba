import { describe, expect, it, vi } from 'vitest';
import type { CniServer, CniServerStats } from '../pkg/cniserver/server';
import { takeListenFd, untilIdle } from './activation';
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
