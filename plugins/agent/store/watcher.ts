/**
 * The lease watcher (flannel pkg/lease LeaseWatcher): keeps the set of other
 * nodes' leases and turns a full snapshot (reset) or a batch of store events
 * (update) into added/removed peer events. Pure: no store, no clock.
 * Unlike flannel's Reset, a lease whose attributes changed (a new VTEP MAC or
 * public IP) is reported as added again, so its stale entries get replaced.
 * A lease whose value cannot be read (an empty or garbled lease file, etcd
 * value or Node annotation) is no removal: the last good lease is kept
 * until the lease is really gone (deleted, or expired by its last good
 * expiration); one never read good is skipped.
 */
import { type Lease, type LeaseEvent, type StoreEvent, type UnreadableLease, leaseKey, marshalLeaseAttrs } from './lease';

/** The peers' leases for a full reconcile: as they are, or asked for when the plan is made (see AgentLoop). */
export type PeersNow = readonly Lease[] | (() => readonly Lease[]);
export const peersNow = (p: PeersNow): readonly Lease[] => (typeof p === 'function' ? p() : p);

const sameAttrs = (a: Lease, b: Lease): boolean => marshalLeaseAttrs(a.attrs) === marshalLeaseAttrs(b.attrs);

export class LeaseWatcher {
  #own: Lease;
  #peers = new Map<string, Lease>();

  constructor(ownLease: Lease) {
    this.#own = ownLease;
  }

  /** The current peers' leases (never our own). */
  get leases(): Lease[] {
    return [...this.#peers.values()];
  }

  #isOwn(l: Lease): boolean {
    return leaseKey(l) === leaseKey(this.#own);
  }

  /**
   * Diffs a full snapshot against the known peers and adopts it. A known
   * peer among the snapshot's unreadable keys keeps its last good lease
   * (unless that has expired by `now`).
   */
  reset(snapshot: readonly Lease[], unreadable: readonly UnreadableLease[] = [], now = -Infinity): LeaseEvent[] {
    const events: LeaseEvent[] = [];
    const next = new Map<string, Lease>();
    for (const u of unreadable) {
      const k = leaseKey(u);
      const old = this.#peers.get(k);
      if (old && (old.expiration === null || old.expiration > now)) next.set(k, old);
    }
    for (const l of snapshot) {
      if (this.#isOwn(l)) continue;
      const k = leaseKey(l);
      const old = this.#peers.get(k);
      if (!old) events.push({ type: 'added', lease: l });
      else if (!sameAttrs(old, l)) events.push({ type: 'added', lease: l, old });
      next.set(k, l);
    }
    for (const [k, l] of this.#peers) if (!next.has(k)) events.push({ type: 'removed', lease: l });
    this.#peers = next;
    return events;
  }

  /**
   * Applies store events (added = created or changed, removed = deleted or
   * expired) and returns what they change: a renewal (same attributes) and
   * the removal of an unknown lease change nothing; a changed lease comes
   * back as added with the lease it replaces (`old`), a removal with the
   * lease we knew (the entries to remove are the ones we programmed). An
   * unreadable value changes nothing: the last good lease stays.
   */
  update(events: readonly StoreEvent[]): LeaseEvent[] {
    // net effect per key: several events on one lease in a batch collapse into one
    const before = new Map<string, Lease | undefined>();
    for (const e of events) {
      if (e.type === 'unreadable' || this.#isOwn(e.lease)) continue;
      const k = leaseKey(e.lease);
      if (!before.has(k)) before.set(k, this.#peers.get(k));
      if (e.type === 'added') this.#peers.set(k, e.lease);
      else this.#peers.delete(k);
    }
    const out: LeaseEvent[] = [];
    for (const [k, old] of before) {
      const now = this.#peers.get(k);
      if (now && !old) out.push({ type: 'added', lease: now });
      else if (now && old && !sameAttrs(old, now)) out.push({ type: 'added', lease: now, old });
      else if (!now && old) out.push({ type: 'removed', lease: old });
    }
    return out;
  }
}
