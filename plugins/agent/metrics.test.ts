import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { AgentMetrics, buildInfo } from './metrics';
import { cniMetrics, verbLabel } from './flaxd';

describe('flaxd /metrics', () => {
  it("adds prom-client's process_ and nodejs_ defaults and flaxd_build_info{version,commit}", async () => {
    const m = await AgentMetrics.create();
    const { body } = await m.render();
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
      expect(body).toMatch(new RegExp(`^${name} `, 'm'));
    }
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    // from source: no build-time commit
    expect(body).toContain(`flaxd_build_info{version="${version}",commit="unknown"} 1`);
    // two agents in one process (tests): each registry has its own defaults
    expect((await (await AgentMetrics.create()).render()).body).toMatch(/^process_cpu_seconds_total /m);
  });

  it('build info: the bundle\'s version and commit (scripts/build.mjs), else the source\'s and "unknown"', () => {
    expect(buildInfo({ FLAX_BUILD_VERSION: '1.2.3', FLAX_BUILD_COMMIT: '0123456789ab' })).toEqual({ version: '1.2.3', commit: '0123456789ab' });
    expect(buildInfo({}).commit).toBe('unknown');
  });

  it('an unknown CNI_COMMAND is one `other` label value, never a new series', async () => {
    expect(['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'].map(verbLabel)).toEqual(['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS']);
    const m = await AgentMetrics.create();
    const c = await cniMetrics(m, () => undefined);
    for (const verb of ['ADD', 'FOO', 'add', 'x'.repeat(40), '']) c.errors.inc({ plugin: 'bridge', verb: verbLabel(verb) });
    const { body } = await m.render();
    const series = body.split('\n').filter((l) => l.startsWith('flaxd_cni_request_errors_total{'));
    expect(series.sort()).toEqual(['flaxd_cni_request_errors_total{plugin="bridge",verb="ADD"} 1', 'flaxd_cni_request_errors_total{plugin="bridge",verb="other"} 4']);
  });
});
