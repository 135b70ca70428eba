/**
 * flaxd's run loop, after start-up: re-list the leases and reconcile on
 * every store change and every reconcile interval (one reconcile at a time;
 * triggers during one coalesce into exactly one more), renew our lease
 * `renewMargin` before it expires (retrying every minute on failure), and
 * stop on request (signal) or when our own lease leaves the store.
 */
import { type Clock, type Lease, type LeaseStore, leaseKey, renewDelay, SUBNET_TTL_MS } from './lease';
import { type Logger } from './log';
import { formatNet } from './subnet';
import { type ReconcileResult } from './vxlan/network';
import { LeaseWatcher } from './watcher';

/** Our own lease left the store: fatal, as in flanneld. */
export class LeaseRevokedError extends Error {}

/** What the loop reports (metrics.ts implements it). */
export interface LoopObserver {
  reconciled(r: ReconcileResult): void;
  storeError(op: 'list' | 'renew'): void;
  leaseExpiration(ms: number | null): void;
}

export interface LoopParts {
  store: LeaseStore;
  /** the backend network: reconciles the data plane with the peers' leases */
  net: { reconcile(peers: readonly Lease[]): Promise<ReconcileResult> };
  own: Lease;
  log: Logger;
  clock: Clock;
  reconcileIntervalMs: number;
  renewMarginMinutes: number;
  observer?: LoopObserver;
}

export class AgentLoop {
  readonly #watcher: LeaseWatcher;
  #running: Promise<void> | null = null;
  #again = false;
  #stopped = false;
  #finish: ((r: { code: number } | { error: Error }) => void) | null = null;
  #result: { code: number } | { error: Error } | null = null;
  #cleanup: (() => void) | null = null;

  constructor(private readonly p: LoopParts) {
    this.#watcher = new LeaseWatcher(p.own);
  }

  /** Re-lists the leases and reconciles with them. Throws LeaseRevokedError when our lease is gone. */
  async sync(why: string): Promise<ReconcileResult> {
    const { store, net, own, log, observer } = this.p;
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
    for (const e of this.#watcher.reset(leases)) {
      log.info(`peer ${e.type}: ${formatNet(e.lease.subnet)} public ${e.lease.attrs.publicIP}`);
    }
    const r = await net.reconcile(this.#watcher.leases);
    observer?.reconciled(r);
    log.debug(`reconcile (${why}): ${r.peers} peers, ${r.repairs} changes, ${r.failures} failures`);
    return r;
  }

  #trigger(why: string): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.sync(why).then(() => undefined, (e: Error) => {
      if (e instanceof LeaseRevokedError) this.#end({ error: e });
      else this.p.log.error(`reconcile (${why}) failed: ${e.message}; retrying`);
    }).finally(() => {
      this.#running = null;
      if (this.#again) {
        this.#again = false;
        this.#trigger('pending change');
      }
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
      const watch = store.watch(() => this.#trigger('store change'));
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
