import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Finding, type SweepOptions, type SweepReport } from '../cli/sweep/sweep';
import { type Logger } from './log';
import { AgentMetrics } from './metrics';
import { GC_MIN_AGE_MS, NodeSweeper } from './sweeper';

const finding = (kind: Finding['kind'], action: Finding['action']): Finding =>
  ({ kind, network: 'cbr0', containerId: 'c1', ifname: 'eth0', netns: '', address: '10.244.1.5', reason: 'netns gone', action });

function setup(answers: Array<SweepReport | Error>, intervalS = 10) {
  const lines: string[] = [];
  const log: Logger = { error: (m) => lines.push(`E ${m}`), warn: (m) => lines.push(`W ${m}`), info: (m) => lines.push(`I ${m}`), debug: () => {} };
  const calls: SweepOptions[] = [];
  const sweep = async (o: SweepOptions) => {
    calls.push(o);
    const a = answers.shift() ?? { findings: [], kept: [], errors: [] };
    if (a instanceof Error) throw a;
    return a;
  };
  return { lines, calls, sweep, make: (m: AgentMetrics) => new NodeSweeper({ intervalS, confDir: '/c', cacheDir: '/k', cniPath: ['/b'] }, log, m, sweep) };
}
const value = async (m: AgentMetrics, name: string) => (await m.registry.getSingleMetric(name)!.get()).values;

beforeEach(() => { vi.useFakeTimers(); });
afterEach(() => { vi.useRealTimers(); });

describe('NodeSweeper', () => {
  it('sweeps at start and every interval with the CNI dirs, counting removed items by kind', async () => {
    const m = await AgentMetrics.create();
    const t = setup([{ findings: [finding('attachment', 'removed'), finding('masquerade', 'removed'), finding('attachment', 'removed'), finding('reservation', 'would remove')], kept: [], errors: [] }]);
    const s = t.make(m);
    s.start();
    await vi.advanceTimersByTimeAsync(1);
    expect(t.calls).toEqual([{ confDir: '/c', cacheDir: '/k', cniPath: ['/b'], networks: [], minAgeMs: GC_MIN_AGE_MS, dryRun: false }]);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(t.calls).toHaveLength(3);
    expect((await value(m, 'flaxd_sweep_items_total')).map((v) => [v.labels.kind, v.value])).toEqual([['attachment', 2], ['masquerade', 1]]);
    expect((await value(m, 'flaxd_sweep_runs_total'))[0].value).toBe(3);
    expect(t.lines.filter((l) => l.startsWith('I sweeper: removed'))).toHaveLength(3);
    await s.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.calls).toHaveLength(3);
  });

  it('a sweep that throws, a failed removal and sweep errors are logged and counted; the next sweep still runs', async () => {
    const m = await AgentMetrics.create();
    const t = setup([new Error('cache dir unreadable'), { findings: [{ ...finding('attachment', 'failed'), error: 'DEL failed' }], kept: [], errors: ['nft: busy'] }]);
    const s = t.make(m);
    s.start();
    await vi.advanceTimersByTimeAsync(10_001);
    expect(t.calls).toHaveLength(2);
    expect(t.lines).toContain('E sweeper: sweep failed: cache dir unreadable; next in 10 s');
    expect(t.lines.some((l) => l.startsWith('W sweeper: could not remove attachment cbr0/c1/eth0'))).toBe(true);
    expect(t.lines).toContain('W sweeper: nft: busy');
    expect((await value(m, 'flaxd_sweep_failures_total'))[0].value).toBe(3);
    await s.stop();
  });

  it('--gc-interval 0: never sweeps', async () => {
    const t = setup([], 0);
    t.make(await AgentMetrics.create()).start();
    await vi.advanceTimersByTimeAsync(600_000);
    expect(t.calls).toEqual([]);
  });
});
