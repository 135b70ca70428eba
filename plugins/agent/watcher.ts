/**
 * The lease watcher (flannel pkg/lease LeaseWatcher): keeps the set of other
 * nodes' leases and turns a full snapshot (reset) or a batch of store events
 * (update) into added/removed peer events. Pure: no store, no clock.
 * Unlike flannel's Reset, a lease whose attributes changed (a new VTEP MAC or
 * public IP) is reported as added again, so its stale entries get replaced.
 */
import { type Lease, leaseKey, marshalLeaseAttrs } from './lease';

export interface LeaseEvent {
  type: 'added' | 'removed';
  lease: Lease;
}

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

  /** Diffs a full snapshot against the known peers and adopts it. */
  reset(snapshot: readonly Lease[]): LeaseEvent[] {
    const events: LeaseEvent[] = [];
    const next = new Map<string, Lease>();
    for (const l of snapshot) {
      if (this.#isOwn(l)) continue;
      const k = leaseKey(l);
      const old = this.#peers.get(k);
      if (!old || !sameAttrs(old, l)) events.push({ type: 'added', lease: l });
      next.set(k, l);
    }
    for (const [k, l] of this.#peers) if (!next.has(k)) events.push({ type: 'removed', lease: l });
    this.#peers = next;
    return events;
  }

  /** Applies store events (added = created or changed, removed = deleted or expired). */
  update(events: readonly LeaseEvent[]): LeaseEvent[] {
    const out: LeaseEvent[] = [];
    for (const e of events) {
      if (this.#isOwn(e.lease)) continue;
      const k = leaseKey(e.lease);
      if (e.type === 'added') {
        this.#peers.set(k, e.lease);
        out.push(e);
      } else {
        const old = this.#peers.get(k);
        this.#peers.delete(k);
        out.push({ type: 'removed', lease: old ?? e.lease });
      }
    }
    return out;
  }
}
