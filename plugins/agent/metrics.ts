/**
 * flaxd's Prometheus metrics (prom-client), in a registry of their own (no
 * module-level state: one per agent, so tests can run several). The loop
 * and the sweeper report through the LoopObserver / SweepObserver methods.
 */
import type { Counter, Gauge, Registry } from 'prom-client';
import { type ReconcileResult } from './backend/types';
import { FLAX_VERSION } from '../pkg/skel/skel';

/**
 * flaxd_build_info's labels: package.json's version and the commit, both
 * set by scripts/build.mjs in the bundle; from source, FLAX_VERSION and
 * "unknown".
 */
export function buildInfo(env: Record<string, string | undefined> = { FLAX_BUILD_VERSION: process.env.FLAX_BUILD_VERSION, FLAX_BUILD_COMMIT: process.env.FLAX_BUILD_COMMIT }): { version: string; commit: string } {
  return { version: env.FLAX_BUILD_VERSION || FLAX_VERSION, commit: env.FLAX_BUILD_COMMIT || 'unknown' };
}

type PromClient = typeof import('prom-client');

export class AgentMetrics {
  readonly registry: Registry;
  readonly peers: Gauge;
  readonly routes: Gauge;
  readonly reconcileRuns: Counter;
  readonly reconcileRepairs: Counter;
  readonly reconcileFailures: Counter;
  readonly storeErrors: Counter<'op'>;
  readonly leaseExpiry: Gauge;
  readonly leaseParseErrors: Counter;
  readonly sweepRuns: Counter;
  readonly sweepItems: Counter<'kind'>;
  readonly sweepFailures: Counter;
  readonly sweeperBlind: Gauge;

  /**
   * prom-client is loaded here, not at module load: it requires node:http,
   * which cannot be part of a V8 startup snapshot (scripts/build.mjs).
   */
  static async create(): Promise<AgentMetrics> {
    return new AgentMetrics(await import('prom-client'));
  }

  private constructor({ Counter, Gauge, Registry, collectDefaultMetrics }: PromClient) {
    this.registry = new Registry();
    // process_* and nodejs_* (CPU, memory, fds, event loop lag, GC), as any Prometheus client's defaults
    collectDefaultMetrics({ register: this.registry });
    new Gauge({ name: 'flaxd_build_info', help: 'Always 1: the flaxd build (package version and git commit, "unknown" when not built from a checkout)', labelNames: ['version', 'commit'] as const, registers: [this.registry] })
      .set(buildInfo(), 1);
    this.peers = new Gauge({ name: 'flaxd_peers', help: 'Remote nodes (peer leases) the data plane is programmed for', registers: [this.registry] });
    this.routes = new Gauge({ name: 'flaxd_routes_programmed', help: 'Peer subnet routes in place after the last reconcile', registers: [this.registry] });
    this.reconcileRuns = new Counter({ name: 'flaxd_reconcile_runs_total', help: 'Reconciles of the data plane with the leases', registers: [this.registry] });
    this.reconcileRepairs = new Counter({ name: 'flaxd_reconcile_repairs_total', help: 'Kernel changes made by reconciles (entries added, replaced or removed; firewall chains rebuilt)', registers: [this.registry] });
    this.reconcileFailures = new Counter({ name: 'flaxd_reconcile_failures_total', help: 'Peers, removals or firewall checks that failed in a reconcile (retried on the next)', registers: [this.registry] });
    this.storeErrors = new Counter({ name: 'flaxd_store_errors_total', help: 'Failed lease store operations (list, renew)', labelNames: ['op'] as const, registers: [this.registry] });
    this.leaseExpiry = new Gauge({ name: 'flaxd_lease_expiration_timestamp_seconds', help: 'When our subnet lease expires (unix seconds; 0 = a reservation, never)', registers: [this.registry] });
    this.leaseParseErrors = new Counter({ name: 'flaxd_lease_parse_errors_total', help: 'Lease values that could not be parsed (lease file, etcd value, Node annotations), counted each time a lease turns unreadable; skipped, never taken as a removal', registers: [this.registry] });
    this.sweepRuns = new Counter({ name: 'flaxd_sweep_runs_total', help: 'Node sweeps (gc) run', registers: [this.registry] });
    this.sweepItems = new Counter({ name: 'flaxd_sweep_items_total', help: 'Items removed by the node sweeper, by kind', labelNames: ['kind'] as const, registers: [this.registry] });
    this.sweepFailures = new Counter({ name: 'flaxd_sweep_failures_total', help: 'Sweeper removals that failed, and sweeps that failed as a whole', registers: [this.registry] });
    this.sweeperBlind = new Gauge({ name: 'flaxd_sweeper_blind', help: '1 when the last sweep could not see the node\'s netns pins (a host veth alive while its netns path is missing in flaxd\'s view: mount the host\'s /var/run/netns and /run/netns) and so kept every attachment only a netns path proved dead; 0 otherwise', registers: [this.registry] });
  }

  reconciled(r: ReconcileResult): void {
    this.reconcileRuns.inc();
    this.reconcileRepairs.inc(r.repairs);
    this.reconcileFailures.inc(r.failures);
    this.peers.set(r.peers);
    this.routes.set(r.routes);
  }

  storeError(op: string): void {
    this.storeErrors.inc({ op });
  }

  leaseExpiration(ms: number | null): void {
    this.leaseExpiry.set(ms === null ? 0 : ms / 1000);
  }

  leaseParseError(): void {
    this.leaseParseErrors.inc();
  }

  /** Exposition text and its content type. */
  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
