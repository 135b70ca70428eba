import { afterEach, describe, expect, it, vi } from 'vitest';
import { Backoff, Closers } from './watch-life';

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
});
