import { describe, expect, it, vi } from 'vitest';
import { InjectedFault, Rollback, faultAt } from './rollback';

describe('Rollback', () => {
  it('runs undos in reverse and rethrows the original error', async () => {
    const order: string[] = [];
    const rb = new Rollback('t');
    const err = new Error('boom');
    await expect(
      rb.guard(async (r) => {
        r.push('a', () => order.push('a'));
        r.push('b', async () => order.push('b'));
        r.push('c', () => order.push('c'));
        throw err;
      }),
    ).rejects.toBe(err);
    expect(order).toEqual(['c', 'b', 'a']);
  });

  it('an undo failure is logged and never replaces the original error', async () => {
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const order: string[] = [];
    const rb = new Rollback('t');
    const err = new Error('original');
    await expect(
      rb.guard(async (r) => {
        r.push('a', () => order.push('a'));
        r.push('bad', () => { throw new Error('undo broke'); });
        r.push('c', () => order.push('c'));
        throw err;
      }),
    ).rejects.toBe(err);
    expect(order).toEqual(['c', 'a']);
    expect(spy.mock.calls.map((c) => String(c[0])).join('')).toContain('undo "bad" failed: undo broke');
    spy.mockRestore();
  });

  it('commit makes the list inert', async () => {
    const undo = vi.fn();
    const rb = new Rollback('t');
    const v = await rb.guard(async (r) => {
      r.push('a', undo);
      return 42;
    });
    expect(v).toBe(42);
    expect(await rb.run()).toEqual([]);
    expect(undo).not.toHaveBeenCalled();
    expect(() => rb.push('late', undo)).toThrow(/after commit/);
  });

  it('run returns the names of failed undos', async () => {
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const rb = new Rollback('t');
    rb.push('ok', () => undefined);
    rb.push('f1', () => Promise.reject(new Error('x')));
    expect(rb.pending).toEqual(['ok', 'f1']);
    expect(await rb.run()).toEqual(['f1']);
    spy.mockRestore();
  });

  it('fault hook fails exactly the named step, after earlier undos were pushed', async () => {
    const undone: string[] = [];
    const rb = new Rollback('t', faultAt('two'));
    const p = rb.guard(async (r) => {
      r.step('one');
      r.push('one', () => undone.push('one'));
      r.step('two');
      r.push('two', () => undone.push('two'));
      return 'unreachable';
    });
    await expect(p).rejects.toBeInstanceOf(InjectedFault);
    expect(undone).toEqual(['one']);
    expect(rb.steps).toEqual(['one', 'two']);
    expect(faultAt(undefined)).toBeUndefined();
    expect(faultAt('')).toBeUndefined();
  });
});
