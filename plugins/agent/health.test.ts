import { describe, expect, it } from 'vitest';
import { respond } from './health';
import { AgentMetrics } from './metrics';

describe('healthz / readyz / metrics', () => {
  it('healthz is 200 always; readyz 503 until ready; unknown paths 404; only GET/HEAD', async () => {
    let ready = false;
    const o = { metrics: await AgentMetrics.create(), ready: () => ready };
    expect((await respond(o, 'GET', '/healthz')).status).toBe(200);
    expect(await respond(o, 'GET', '/readyz')).toMatchObject({ status: 503, body: expect.stringContaining('subnet file not written yet') });
    ready = true;
    expect((await respond(o, 'GET', '/readyz?verbose')).status).toBe(200);
    expect((await respond(o, 'GET', '/nope')).status).toBe(404);
    expect((await respond(o, 'POST', '/healthz')).status).toBe(405);
  });

  it('metrics: reconcile results, store errors, lease expiry and sweeps in the exposition format', async () => {
    const m = await AgentMetrics.create();
    m.reconciled({ deviceCreated: false, peers: 3, routes: 2, repairs: 4, failures: 1 });
    m.reconciled({ deviceCreated: false, peers: 3, routes: 3, repairs: 0, failures: 0 });
    m.storeError('list');
    m.leaseExpiration(1_800_000_000_000);
    m.sweepItems.inc({ kind: 'attachment' }, 2);
    const r = await respond({ metrics: m, ready: () => true }, 'GET', '/metrics');
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const line of ['flaxd_peers 3', 'flaxd_routes_programmed 3', 'flaxd_reconcile_runs_total 2', 'flaxd_reconcile_repairs_total 4',
      'flaxd_reconcile_failures_total 1', 'flaxd_store_errors_total{op="list"} 1', 'flaxd_lease_expiration_timestamp_seconds 1800000000',
      'flaxd_sweep_items_total{kind="attachment"} 2', 'flaxd_sweep_failures_total 0']) expect(r.body.split('\n')).toContain(line);
    m.leaseExpiration(null);
    expect((await m.render()).body).toContain('flaxd_lease_expiration_timestamp_seconds 0\n');
  });
});
