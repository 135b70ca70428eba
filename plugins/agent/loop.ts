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
 *  - two lanes, one piece of work at a time in each: full syncs, and
 *    applies; triggers meanwhile coalesce (events accumulate; a pending
 *    re-list covers what came before it). An apply may run while a full
 *    reconcile reads the kernel's tables: the reconcile plans with the peers
 *    as they are once it has read them (a function of the network's), so it
 *    sees what the apply did; the changes applied after it planned are
 *    applied again once it is done, in case its batch ran after them. Only
 *    while a full sync lists the store and adopts the listing do applies
 *    wait;
 *  - renew our lease `renewMargin` before it expires (retrying every minute
 *    on failure), and stop on request (signal) or when our own lease leaves
 *    the store;
 *  - a lease value that cannot be parsed (an emptied or garbled lease file,
 *    etcd value, Node annotation) is no removal: a warning naming it (once
 *    each time a key turns unreadable) and flaxd_lease_parse_errors_total;
 *    a peer keeps its last good lease (one never read good is skipped), and
 *    our own is written again from the lease we hold, at once (re-listed
 *    first, so a value caught mid-write by another writer is read again).
 */
import { type Clock, type Lease, type LeaseEvent, type LeaseListing, type LeaseStore, leaseKey, leaseSubnets, renewDelay, type StoreEvent, SUBNET_TTL_MS, type UnreadableLease } from './store/lease';
import { type Logger } from './log';
import { type ApplyResult, type PeerNetwork, type ReconcileResult } from './backend/types';
import { LeaseWatcher } from './store/watcher';

/** Our own lease left the store: fatal, as in flanneld. */
export class LeaseRevokedError extends Error {}

/** What the loop reports (metrics.ts implements it). */
export interface LoopObserver {
  reconciled(r: ReconcileResult): void;
  storeError(op: 'list' | 'renew'): void;
  leaseExpiration(ms: number | null): void;
  /** a lease key turned unreadable (its value cannot be parsed) */
  leaseParseError?(): void;
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
  /** kernel changes to our data plane (backend/kernel-events.ts): each asks for a reconcile with the known peers */
  kernelChanges?(onChange: (why: string) => void): { close(): void };
}

export class AgentLoop {
  readonly #watcher: LeaseWatcher;
  /** the full sync (or reconcile) in flight, and the one to run next */
  #full: Promise<void> | null = null;
  #pendingFull: { why: string; relist: boolean } | null = null;
  /** the apply in flight; the store events and replays waiting for it */
  #applying: Promise<void> | null = null;
  #events: StoreEvent[] = [];
  #replay: LeaseEvent[] = [];
  /** a full sync is listing the store and adopting the listing: applies wait */
  #listing = false;
  /** the full reconcile in flight has made its plan: what is applied now is applied again after it */
  #planned = false;
  #applied: LeaseEvent[] = [];
  #stopped = false;
  #finish: ((r: { code: number } | { error: Error }) => void) | null = null;
  #result: { code: number } | { error: Error } | null = null;
  #cleanup: (() => void) | null = null;
  /** the last full reconcile's result, kept current by the applies (metrics) */
  #last: ReconcileResult | null = null;
  /** the lease keys unreadable now (warned about and counted once each time one turns unreadable) */
  #unreadable = new Set<string>();

  constructor(private readonly p: LoopParts) {
    this.#watcher = new LeaseWatcher(p.own);
  }

  #logPeers(events: readonly LeaseEvent[]): void {
    for (const e of events) {
      this.p.log.info(`peer ${e.old ? 'changed' : e.type}: ${leaseSubnets(e.lease)} public ${[e.lease.attrs.publicIP, e.lease.attrs.publicIPv6].filter((a) => a && a !== '0.0.0.0').join(', ')}`);
    }
  }

  /** A key whose value cannot be parsed: warned about and counted when it turns unreadable. */
  #noteUnreadable(u: UnreadableLease): void {
    const k = leaseKey(u);
    if (this.#unreadable.has(k)) return;
    this.#unreadable.add(k);
    this.p.observer?.leaseParseError?.();
    const peer = this.#watcher.leases.find((l) => leaseKey(l) === k);
    const what = k === leaseKey(this.p.own) ? 'this is our lease: writing it again'
      : peer ? `keeping the last good lease of ${peer.attrs.publicIP !== '0.0.0.0' ? peer.attrs.publicIP : peer.attrs.publicIPv6}` : 'skipped (never read good)';
    this.p.log.warn(`lease ${u.where} (${leaseSubnets(u)}) cannot be parsed: ${u.why}; ${what}`);
  }

  /** Writes our lease again from the one we hold (its value in the store could not be parsed). */
  async #rewriteOwn(u: UnreadableLease): Promise<void> {
    const { store, own, observer, log } = this.p;
    const exp = await store.update(own.subnet, own.ipv6Subnet, own.attrs, own.expiration === null ? 0 : SUBNET_TTL_MS);
    own.expiration = exp;
    observer?.leaseExpiration(exp);
    this.#unreadable.delete(leaseKey(own));
    log.info(`our lease ${u.where} written again (${leaseSubnets(own)}, expires ${exp === null ? 'never' : new Date(exp).toISOString()})`);
  }

  /** Re-lists the leases and reconciles with them. Throws LeaseRevokedError when our lease is gone. */
  async sync(why: string): Promise<ReconcileResult> {
    const { store, own, observer } = this.p;
    // applies wait until the listing is adopted: applied before it, an event the listing predates would be undone
    this.#listing = true;
    try {
      let leases: LeaseListing;
      try {
        leases = await store.list();
      } catch (e) {
        observer?.storeError('list');
        throw e;
      }
      const unreadable = leases.unreadable ?? [];
      const bad = new Set(unreadable.map((u) => leaseKey(u)));
      for (const k of this.#unreadable) if (!bad.has(k)) this.#unreadable.delete(k);
      for (const u of unreadable) this.#noteUnreadable(u);
      if (!leases.some((l) => leaseKey(l) === leaseKey(own))) {
        const mine = unreadable.find((u) => leaseKey(u) === leaseKey(own));
        if (!mine) throw new LeaseRevokedError(`our lease ${leaseSubnets(own)} was removed from the store (revoked or expired); shutting down`);
        await this.#rewriteOwn(mine);
      }
      this.#logPeers(this.#watcher.reset(leases, unreadable, this.p.clock.now()));
    } finally {
      this.#listing = false;
      this.#pump(); // the events that waited
    }
    return this.#reconcile(why);
  }

  /** A full reconcile with the peers we know (no re-list); they are read when the network plans. */
  async #reconcile(why: string): Promise<ReconcileResult> {
    const t0 = performance.now();
    let r: ReconcileResult;
    try {
      r = await this.p.net.reconcile(() => {
        this.#planned = true;
        return this.#watcher.leases;
      });
    } finally {
      this.#planned = false;
      // what was applied after the plan was made: once more, after the reconcile's own changes
      this.#replay.push(...this.#applied.splice(0));
    }
    this.#last = { ...r };
    this.p.observer?.reconciled(r);
    this.p.log.debug(`reconcile (${why}): ${r.peers} peers, ${r.repairs} changes, ${r.failures} failures in ${Math.round(performance.now() - t0)} ms`);
    return r;
  }

  /** Applies store events (or replays changes): only the peers they change, or a full reconcile when the backend cannot. */
  async #apply(events: readonly StoreEvent[], replay: boolean): Promise<void> {
    const { net, own, log, observer } = this.p;
    if (!replay) {
      for (const e of events) {
        if (e.type === 'unreadable') this.#noteUnreadable(e);
        else this.#unreadable.delete(leaseKey(e.lease));
      }
      const ownKey = (e: StoreEvent) => leaseKey('lease' in e ? e.lease : e) === leaseKey(own);
      // our lease removed: the re-list confirms (LeaseRevokedError) or repairs; unreadable: the re-list writes it again
      const mine = events.filter(ownKey).at(-1);
      if (mine && mine.type !== 'added') {
        this.#want(mine.type === 'removed' ? 'our lease removed?' : 'our lease unreadable', true);
        return;
      }
    }
    const changes = replay ? events as LeaseEvent[] : this.#watcher.update(events);
    if (!changes.length) return;
    if (!replay) this.#logPeers(changes);
    if (this.#planned) this.#applied.push(...changes);
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
      if (replay) return;
      const last = this.#last;
      last.peers += r.peers;
      last.routes += r.routes;
      observer?.reconciled({ deviceCreated: false, peers: last.peers, routes: last.routes, repairs: r.repairs, failures: 0 });
      log.debug(`applied ${changes.length} peer changes: ${r.repairs} kernel changes in ${Math.round(performance.now() - t0)} ms`);
      return;
    }
    this.#want(r ? `${r.failures} of ${changes.length} peer changes failed` : 'peer changes', false);
  }

  /** Asks for a full sync (relist) or reconcile with the known peers; a pending re-list covers a reconcile. */
  #want(why: string, relist: boolean): void {
    const w = this.#pendingFull;
    this.#pendingFull = { why: relist || !w ? why : w.why, relist: relist || !!w?.relist };
    this.#pump();
  }

  #trigger(why: string, events?: readonly StoreEvent[]): void {
    if (this.#stopped) return;
    if (!events) return this.#want(why, true);
    this.#events.push(...events);
    this.#pump();
  }

  /** Starts what can run: a full sync when none runs; an apply when none runs and no listing is under way. */
  #pump(): void {
    if (this.#stopped) return;
    const fail = (what: string) => (e: Error) => {
      if (e instanceof LeaseRevokedError) this.#end({ error: e });
      else this.p.log.error(`${what} failed: ${e.message}; retrying`);
    };
    if (this.#pendingFull && !this.#full) {
      const w = this.#pendingFull;
      this.#pendingFull = null;
      if (w.relist) this.#events = []; // the listing covers them
      const run = w.relist ? this.sync(w.why) : this.#reconcile(w.why);
      this.#full = run.then(() => undefined, fail(`reconcile (${w.why})`)).finally(() => {
        this.#full = null;
        this.#pump();
      });
    }
    if (!this.#applying && !this.#listing && (this.#replay.length || this.#events.length)) {
      const replay = this.#replay.length > 0;
      const batch = replay ? this.#replay.splice(0) : this.#events.splice(0);
      this.#applying = this.#apply(batch, replay).catch((e: Error) => {
        fail('applying store events')(e);
        this.#want('after a failed apply', true);
      }).finally(() => {
        this.#applying = null;
        this.#pump();
      });
    }
  }

  #end(r: { code: number } | { error: Error }): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#cleanup?.();
    // let the work in flight finish: the data plane is never left half-programmed by us
    Promise.all([this.#full, this.#applying]).finally(() => {
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
      const kernel = this.p.kernelChanges?.((why) => {
        if (this.#stopped) return;
        log.debug(`kernel: ${why}; reconciling`);
        this.#want(why, false);
      });
      let renewTimer: NodeJS.Timeout | undefined;
      const scheduleRenew = (delay: number | null) => {
        if (delay === null || this.#stopped) return;
        renewTimer = setTimeout(() => {
          store.update(own.subnet, own.ipv6Subnet, own.attrs, SUBNET_TTL_MS).then((exp) => {
            own.expiration = exp;
            this.p.observer?.leaseExpiration(exp);
            log.info(`lease ${leaseSubnets(own)} renewed, expires ${exp === null ? 'never' : new Date(exp).toISOString()}`);
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
        kernel?.close();
        clearInterval(tick);
        clearTimeout(renewTimer);
      };
      if (this.#stopped) this.#cleanup();
      this.#settle();
    });
  }
}
