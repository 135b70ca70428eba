import { afterEach, describe, expect, it, vi } from 'vitest';
import { Backoff, Closers, restartingWatch, type WatchRun } from './watch-life';

describe('watch life', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('Backoff doubles from 0.5 s to 30 s, resets, and a cancelled retry never runs', () => {
    vi.useFakeTimers();
    const b = new Backoff();
    const seen: number[] = [];
    for (let i = 0; i < 9; i++) {
      seen.push(b.pause);
      b.later(() => undefined);
    }
    expect(seen).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    b.reset();
    expect(b.pause).toBe(500);
    const fn = vi.fn();
    b.later(fn);
    b.cancel();
    vi.advanceTimersByTime(60_000);
    expect(fn).not.toHaveBeenCalled();
    b.later(fn);
    vi.advanceTimersByTime(999);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('Closers: each close runs once, closeAll runs only those still open', () => {
    const c = new Closers();
    const a = vi.fn(), b = vi.fn(), d = vi.fn();
    const ha = c.add(a);
    c.add(b);
    c.add(d);
    ha.close();
    ha.close();
    c.closeAll();
    c.closeAll();
    expect([a.mock.calls.length, b.mock.calls.length, d.mock.calls.length]).toEqual([1, 1, 1]);
  });

  it('restartingWatch: an ended stream is opened again after the backoff, a failed open is reported and retried, close() stops both', async () => {
    vi.useFakeTimers();
    const runs: WatchRun[] = [];
    const stopped: number[] = [];
    const failures: number[] = [];
    let fail = false;
    const w = restartingWatch(new Closers(), async (run) => {
      if (fail) throw new Error('unreachable');
      const i = runs.push(run);
      return { stop: () => stopped.push(i) };
    }, (_e, pause) => failures.push(pause));
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toHaveLength(1);
    runs[0].restart();
    runs[0].restart(); // once per run
    await vi.advanceTimersByTimeAsync(499);
    expect(runs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toHaveLength(2);
    fail = true;
    runs[1].restart();
    await vi.advanceTimersByTimeAsync(1000); // the second pause: 1 s
    expect(failures).toEqual([2000]); // and the retry after it waits 2 s
    fail = false;
    await vi.advanceTimersByTimeAsync(2000);
    expect(runs).toHaveLength(3);
    w.close();
    expect(stopped).toEqual([3]);
    expect(runs[2].closed).toBe(true);
    runs[2].restart(); // after close: nothing
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runs).toHaveLength(3);
  });

  it('restartingWatch: a stream that ends while it is being opened is not kept (close() does not stop it again)', async () => {
    const stopped: string[] = [];
    const w = restartingWatch(new Closers(), async (run) => {
      run.restart();
      return { stop: () => stopped.push('ended one') };
    }, () => undefined);
    await new Promise((r) => setImmediate(r));
    w.close();
    expect(stopped).toEqual([]);
  });
});
