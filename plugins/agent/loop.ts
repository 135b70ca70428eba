/**
 * flaxd's run loop, after start-up:
 *  - a store change that comes with its events (the lease files or etcd keys
 *    that changed) is applied incrementally: the peers it adds, changes or
 *    removes are programmed alone, without re-listing the store or reading
 *    the kernel's tables (the backend's apply); a backend without apply, or
 *    an apply that could not do it all, gets a full reconcile with the known
 *    peers instead;
 *  - a change without events, and every reconcile interval, re-list the
 *    leases and reconcile in full (the backstop that repairs any drift);
 *  - one piece of work at a time: triggers during one coalesce (events
 *    accumulate; a pending full re-list covers them);
 *  - renew our lease `renewMargin` before it expires (retrying every minute
 *    on failure), and stop on request (signal) or when our own lease leaves
 *    the store.
 */
import { type Clock, type Lease, type LeaseStore, leaseKey, renewDelay, SUBNET_TTL_MS } from './lease';
import { type Logger } from './log';
import { formatNet } from './subnet';
import { type ReconcileResult } from './vxlan/network';
import { type LeaseEvent, LeaseWatcher } from './watcher';

/** Our own lease left the store: fatal, as in flanneld. */
export class LeaseRevokedError extends Error {}

/** What the loop reports (metrics.ts implements it). */
export interface LoopObserver {
  reconciled(r: ReconcileResult): void;
  storeError(op: 'list' | 'renew'): void;
  leaseExpiration(ms: number | null): void;
}

/** What an incremental apply did: kernel changes, failures, and how many peers and routes it added (negative: removed). */
export interface ApplyResult {
  repairs: number;
  failures: number;
  peers: number;
  routes: number;
}

/** The backend network as the loop drives it. */
export interface PeerNetwork {
  /** reconciles the data plane with the peers' leases (reads the kernel's state, repairs every difference) */
  reconcile(peers: readonly Lease[]): Promise<ReconcileResult>;
  /**
   * Programs only the peers in `changes` (added: new or changed, with the
   * lease it replaces; removed), without reading the kernel's state;
   * `current`: every peer's lease after them. null:
   * it cannot (nothing reconciled yet); failures > 0: some were not done.
   * Either way the loop follows with a full reconcile.
   */
  apply?(changes: readonly LeaseEvent[], current: readonly Lease[]): Promise<ApplyResult | null>;
}

export interface LoopParts {
  store: LeaseStore;
  /** the backend network */
  net: PeerNetwork;
  own: Lease;
  log: Logger;
  clock: Clock;
  reconcileIntervalMs: number;
  renewMarginMinutes: number;
  observer?: LoopObserver;
}

interface Work {
  /** re-list and reconcile in full */
  full: boolean;
  why: string;
  events: LeaseEvent[];
}

export class AgentLoop {
  readonly #watcher: LeaseWatcher;
  #running: Promise<void> | null = null;
  #pending: Work | null = null;
  #stopped = false;
  #finish: ((r: { code: number } | { error: Error }) => void) | null = null;
  #result: { code: number } | { error: Error } | null = null;
  #cleanup: (() => void) | null = null;
  /** the last full reconcile's result, kept current by the applies (metrics) */
  #last: ReconcileResult | null = null;

  constructor(private readonly p: LoopParts) {
    this.#watcher = new LeaseWatcher(p.own);
  }

  #logPeers(events: readonly LeaseEvent[]): void {
    for (const e of events) {
      this.p.log.info(`peer ${e.old ? 'changed' : e.type}: ${formatNet(e.lease.subnet)} public ${e.lease.attrs.publicIP}`);
    }
  }

  /** Re-lists the leases and reconciles with them. Throws LeaseRevokedError when our lease is gone. */
  async sync(why: string): Promise<ReconcileResult> {
    const { store, own, observer } = this.p;
    let leases: Lease[];
    try {
      leases = await store.list();
    } catch (e) {
      observer?.storeError('list');
      throw e;
    }
    if (!leases.some((l) => leaseKey(l) === leaseKey(own))) {
      throw new LeaseRevokedError(`our lease ${formatNet(own.subnet)} was removed from the store (revoked or expired); shutting down`);
    }
    this.#logPeers(this.#watcher.reset(leases));
    return this.#reconcile(why);
  }

  /** A full reconcile with the peers we know (no re-list). */
  async #reconcile(why: string): Promise<ReconcileResult> {
    const t0 = performance.now();
    const r = await this.p.net.reconcile(this.#watcher.leases);
    this.#last = { ...r };
    this.p.observer?.reconciled(r);
    this.p.log.debug(`reconcile (${why}): ${r.peers} peers, ${r.repairs} changes, ${r.failures} failures in ${Math.round(performance.now() - t0)} ms`);
    return r;
  }

  /** Applies store events: only the peers they change, or a full reconcile when the backend cannot. */
  async #apply(events: readonly LeaseEvent[]): Promise<void> {
    const { net, own, log, observer } = this.p;
    if (events.some((e) => e.type === 'removed' && leaseKey(e.lease) === leaseKey(own))) {
      await this.sync('our lease removed?'); // confirms (LeaseRevokedError) or repairs
      return;
    }
    const changes = this.#watcher.update(events);
    if (!changes.length) return;
    this.#logPeers(changes);
    let r: ApplyResult | null = null;
    const t0 = performance.now();
    if (net.apply) {
      try {
        r = await net.apply(changes, this.#watcher.leases);
      } catch (e) {
        log.error(`applying ${changes.length} peer changes failed: ${(e as Error).message}; reconciling in full`);
      }
    }
    if (r && r.failures === 0 && this.#last) {
      const last = this.#last;
      last.peers += r.peers;
      last.routes += r.routes;
      observer?.reconciled({ deviceCreated: false, peers: last.peers, routes: last.routes, repairs: r.repairs, failures: 0 });
      log.debug(`applied ${changes.length} peer changes: ${r.repairs} kernel changes in ${Math.round(performance.now() - t0)} ms`);
      return;
    }
    await this.#reconcile(r ? `${r.failures} of ${changes.length} peer changes failed` : 'peer changes');
  }

  #trigger(why: string, events?: readonly LeaseEvent[]): void {
    if (this.#stopped) return;
    const w = (this.#pending ??= { full: false, why, events: [] });
    if (events) w.events.push(...events);
    else {
      w.full = true;
      w.why = why;
    }
    if (!this.#running) this.#drain();
  }

  #drain(): void {
    const w = this.#pending;
    if (!w || this.#stopped) return;
    this.#pending = null;
    const work = w.full ? this.sync(w.why).then(() => undefined) : this.#apply(w.events);
    this.#running = work.catch((e: Error) => {
      if (e instanceof LeaseRevokedError) this.#end({ error: e });
      else {
        this.p.log.error(`reconcile (${w.why}) failed: ${e.message}; retrying`);
        if (!w.full) this.#trigger('after a failed apply');
      }
    }).finally(() => {
      this.#running = null;
      this.#drain();
    });
  }

  #end(r: { code: number } | { error: Error }): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#cleanup?.();
    // let a reconcile in flight finish: the data plane is never left half-programmed by us
    Promise.resolve(this.#running).finally(() => {
      this.#result = r;
      this.#settle();
    });
  }

  #settle(): void {
    if (this.#result && this.#finish) this.#finish(this.#result);
  }

  /** Ends run() with 0 once a reconcile in flight is done. Idempotent. */
  stop(): void {
    this.#end({ code: 0 });
  }

  /** Resolves 0 after stop(); rejects with LeaseRevokedError when our lease is gone. */
  run(): Promise<number> {
    const { store, log, clock, own, reconcileIntervalMs, renewMarginMinutes } = this.p;
    return new Promise<number>((resolve, reject) => {
      this.#finish = (r) => ('code' in r ? resolve(r.code) : reject(r.error));
      const watch = store.watch((events) => this.#trigger('store change', events));
      const tick = setInterval(() => this.#trigger('interval'), reconcileIntervalMs);
      let renewTimer: NodeJS.Timeout | undefined;
      const scheduleRenew = (delay: number | null) => {
        if (delay === null || this.#stopped) return;
        renewTimer = setTimeout(() => {
          store.update(own.subnet, own.ipv6Subnet, own.attrs, SUBNET_TTL_MS).then((exp) => {
            own.expiration = exp;
            this.p.observer?.leaseExpiration(exp);
            log.info(`lease ${formatNet(own.subnet)} renewed, expires ${exp === null ? 'never' : new Date(exp).toISOString()}`);
            scheduleRenew(renewDelay(own, clock.now(), renewMarginMinutes));
          }, (e: Error) => {
            this.p.observer?.storeError('renew');
            log.error(`lease renewal failed: ${e.message}; retrying in 1 min`);
            scheduleRenew(60_000);
          });
        }, Math.min(delay, 2 ** 31 - 1));
      };
      scheduleRenew(renewDelay(own, clock.now(), renewMarginMinutes));
      this.#cleanup = () => {
        watch.close();
        clearInterval(tick);
        clearTimeout(renewTimer);
      };
      if (this.#stopped) this.#cleanup();
      this.#settle();
    });
  }
}
