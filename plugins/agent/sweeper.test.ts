import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Finding, type SweepOptions, type SweepReport } from '../sweep/report';
import { type Logger } from './log';
import { AgentMetrics } from './metrics';
import { GC_MIN_AGE_MS, NodeSweeper } from './sweeper';

const finding = (kind: Finding['kind'], action: Finding['action']): Finding =>
  ({ kind, network: 'cbr0', containerId: 'c1', ifname: 'eth0', netns: '', address: '10.244.1.5', reason: 'netns gone', action });

function setup(answers: Array<SweepReport | Error>, intervalS = 10, sandboxDir?: string) {
  const lines: string[] = [];
  const log: Logger = { error: (m) => lines.push(`E ${m}`), warn: (m) => lines.push(`W ${m}`), info: (m) => lines.push(`I ${m}`), debug: () => {} };
  const calls: SweepOptions[] = [];
  const sweep = async (o: SweepOptions) => {
    calls.push(o);
    const a = answers.shift() ?? { findings: [], kept: [], errors: [] };
    if (a instanceof Error) throw a;
    return a;
  };
  return { lines, calls, sweep, make: (m: AgentMetrics) => new NodeSweeper({ intervalS, confDir: '/c', cacheDir: '/k', cniPath: ['/b'], sandboxDir }, log, m, sweep) };
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

  it('a sweep blind to the node\'s netns pins: warned, flaxd_sweeper_blind 1 until a sweep sees them again', async () => {
    const m = await AgentMetrics.create();
    const blind = { reason: 'host interface veth1 of cbr0/c1/eth0 is alive while its netns /run/netns/p is missing here', kept: 2 };
    const t = setup([{ findings: [], kept: [], errors: [], blind }, { findings: [], kept: [], errors: [] }]);
    const s = t.make(m);
    expect((await value(m, 'flaxd_sweeper_blind'))[0].value).toBe(0);
    s.start();
    await vi.advanceTimersByTimeAsync(1);
    expect((await value(m, 'flaxd_sweeper_blind'))[0].value).toBe(1);
    expect(t.lines).toContainEqual(expect.stringMatching(/^W sweeper: cannot see the node's netns pins \(host interface veth1 of cbr0\/c1\/eth0 .*\): kept 2 attachment\(s\) whose death rests on a missing netns path/));
    await vi.advanceTimersByTimeAsync(10_000);
    expect((await value(m, 'flaxd_sweeper_blind'))[0].value).toBe(0);
    await s.stop();
  });

  it('a sweep that found no network configuration is warned about; --gc-sandbox-dir reaches the sweep', async () => {
    const t = setup([{ findings: [], kept: [], errors: [], skipped: 'no network configuration in /c: nothing swept' }], 10, '/sb');
    const s = t.make(await AgentMetrics.create());
    s.start();
    await vi.advanceTimersByTimeAsync(1);
    expect(t.calls[0].sandboxDir).toBe('/sb');
    expect(t.lines).toContain('W sweeper: no network configuration in /c: nothing swept (is the node\'s CNI config dir mounted at /c?)');
    await s.stop();
  });

  it('--gc-interval 0: never sweeps', async () => {
    const t = setup([], 0);
    t.make(await AgentMetrics.create()).start();
    await vi.advanceTimersByTimeAsync(600_000);
    expect(t.calls).toEqual([]);
  });
});
