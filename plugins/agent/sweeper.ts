/**
 * The node sweeper inside flaxd: `flax gc`'s sweepNode at start
 * and every --gc-interval seconds (0 = off), one sweep at a time. A sweep
 * that fails, whole or in part, is logged and counted
 * (flaxd_sweep_failures_total) and never stops the agent; what it removed
 * is counted by kind (flaxd_sweep_items_total). A sweep that cannot see the
 * node's netns pins keeps what only a netns path would prove dead: it warns
 * and sets the gauge flaxd_sweeper_blind to 1 (0 when it sees them).
 */
import { sweepNode } from '../suite';
import type { SweepOptions, SweepReport } from '../sweep/report';
import { type Logger } from './log';
import { type AgentMetrics } from './metrics';

/** Nothing younger is touched (an ADD may be finishing): `flax gc`'s default --min-age. */
export const GC_MIN_AGE_MS = 60_000;

export interface SweeperOptions {
  /** seconds; 0 = off */
  intervalS: number;
  confDir: string;
  cacheDir: string;
  cniPath: string[];
  /** `flax sandbox`'s root ('' or absent: $FLAX_SANDBOX_DIR or /run/flax/sandboxes) */
  sandboxDir?: string;
}

/** The sweeper's options from flaxd's --gc-* flags (both ways flaxd runs, with and without the overlay). */
export function sweeperOptions(o: { gcInterval: number; gcCniConfDir: string; gcCacheDir: string; gcCniPath: string; gcSandboxDir: string }): SweeperOptions {
  return { intervalS: o.gcInterval, confDir: o.gcCniConfDir, cacheDir: o.gcCacheDir, cniPath: o.gcCniPath.split(':').filter(Boolean), sandboxDir: o.gcSandboxDir };
}

type Sweep = (o: SweepOptions) => Promise<SweepReport>;

export class NodeSweeper {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | null = null;
  #stopped = false;

  constructor(
    private readonly o: SweeperOptions,
    private readonly log: Logger,
    private readonly metrics: Pick<AgentMetrics, 'sweepRuns' | 'sweepItems' | 'sweepFailures' | 'sweeperBlind'>,
    private readonly sweep: Sweep = sweepNode,
  ) {}

  /** First sweep now, then every interval. No-op when the interval is 0. */
  start(): void {
    if (this.o.intervalS <= 0 || this.#stopped) return;
    this.log.info(`sweeper: every ${this.o.intervalS} s (conf ${this.o.confDir}, cache ${this.o.cacheDir})`);
    void this.runOnce();
    this.#timer = setInterval(() => void this.runOnce(), this.o.intervalS * 1000);
  }

  /** One sweep; skipped while another runs. Never rejects. */
  runOnce(): Promise<void> {
    if (this.#running || this.#stopped) return this.#running ?? Promise.resolve();
    this.#running = this.#sweepOnce().finally(() => { this.#running = null; });
    return this.#running;
  }

  async #sweepOnce(): Promise<void> {
    const { metrics, log } = this;
    metrics.sweepRuns.inc();
    let rep: SweepReport;
    try {
      rep = await this.sweep({
        confDir: this.o.confDir, cacheDir: this.o.cacheDir, cniPath: this.o.cniPath, networks: [], minAgeMs: GC_MIN_AGE_MS, dryRun: false,
        ...(this.o.sandboxDir ? { sandboxDir: this.o.sandboxDir } : {}),
      });
    } catch (e) {
      metrics.sweepFailures.inc();
      log.error(`sweeper: sweep failed: ${(e as Error).message}; next in ${this.o.intervalS} s`);
      return;
    }
    if (rep.skipped) log.warn(`sweeper: ${rep.skipped} (is the node's CNI config dir mounted at ${this.o.confDir}?)`);
    metrics.sweeperBlind.set(rep.blind ? 1 : 0);
    if (rep.blind) {
      log.warn(`sweeper: cannot see the node's netns pins (${rep.blind.reason}): kept ${rep.blind.kept} attachment(s) whose death rests on a missing netns path`
        + ' (give flaxd the host\'s /var/run/netns and /run/netns, read-only, mountPropagation HostToContainer)');
    }
    for (const f of rep.findings) {
      const what = `${f.kind} ${f.network}/${f.containerId}${f.ifname ? `/${f.ifname}` : ''}${f.address ? ` (${f.address})` : ''}`;
      if (f.action === 'removed') {
        metrics.sweepItems.inc({ kind: f.kind });
        log.info(`sweeper: removed ${what}: ${f.reason}${f.removed ? `; ${f.removed}` : ''}`);
      } else if (f.action === 'failed') {
        metrics.sweepFailures.inc();
        log.warn(`sweeper: could not remove ${what}: ${f.error ?? 'failed'}`);
      }
    }
    for (const e of rep.errors) {
      metrics.sweepFailures.inc();
      log.warn(`sweeper: ${e}`);
    }
    log.debug(`sweeper: ${rep.findings.length} finding(s), ${rep.kept.length} kept, ${rep.errors.length} error(s)`);
  }

  /** Stops the timer and waits for a sweep in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running;
  }
}
