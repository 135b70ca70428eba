/**
 * An in-memory LeaseStore for pure tests (after host-local's fake_store.go):
 * expiry against an injected clock, create-if-absent, change callbacks, and
 * a hook to fail or race the next create.
 */
import { type AcquireHints, type Clock, type Lease, type LeaseAttrs, LeaseExistsError, type LeaseListing, type LeaseStore, leaseKey, listing, type StoreEvent, type UnreadableLease } from '../../../plugins/agent/store/lease';
import { acquireLease } from '../../../plugins/agent/store/acquire';
import { type Prefix } from '../../../plugins/pkg/ip';

export class FakeLeaseStore implements LeaseStore {
  readonly leases = new Map<string, Lease>();
  /** keys whose value cannot be parsed (see corrupt()) */
  readonly unreadable = new Map<string, UnreadableLease>();
  readonly calls: string[] = [];
  /** runs before each create (e.g. to let a "racing" node take the subnet first) */
  beforeCreate?: (sn: Prefix) => void;
  #watchers = new Set<(events?: StoreEvent[]) => void>();
  /** false: notify without events (a store that makes the agent re-list) */
  events = true;

  constructor(readonly clock: Clock) {}

  /** Puts a lease directly (another node's), notifying watchers. */
  put(l: Lease): void {
    this.leases.set(leaseKey(l), l);
    this.unreadable.delete(leaseKey(l));
    this.#notify({ type: 'added', lease: l });
  }

  remove(sn: Prefix, sn6?: Prefix): void {
    const k = leaseKey({ subnet: sn, ipv6Subnet: sn6 });
    const l = this.leases.get(k);
    const bad = this.unreadable.get(k);
    this.leases.delete(k);
    this.unreadable.delete(k);
    if (l) this.#notify({ type: 'removed', lease: l });
    else if (bad) this.#notify({ type: 'removed', lease: { subnet: sn, ipv6Subnet: sn6, attrs: { publicIP: '0.0.0.0', publicIPv6: null, backendType: '' }, expiration: null } });
  }

  /** Makes a key's value unparseable (an emptied lease file, a garbage etcd value), notifying watchers. */
  corrupt(sn: Prefix, sn6?: Prefix, why = 'unexpected end of JSON input'): void {
    const k = leaseKey({ subnet: sn, ipv6Subnet: sn6 });
    const u: UnreadableLease = { subnet: sn, where: `fake:${k}`, why };
    if (sn6) u.ipv6Subnet = sn6;
    this.leases.delete(k);
    this.unreadable.set(k, u);
    this.#notify({ type: 'unreadable', ...u });
  }

  #notify(e: StoreEvent): void {
    for (const w of this.#watchers) w(this.events ? [e] : undefined);
  }

  #live(): Lease[] {
    const now = this.clock.now();
    return [...this.leases.values()].filter((l) => l.expiration === null || l.expiration > now);
  }

  #write(sn: Prefix, sn6: Prefix | undefined, attrs: LeaseAttrs, ttlMs: number): number | null {
    const expiration = ttlMs > 0 ? this.clock.now() + ttlMs : null;
    this.put({ subnet: sn, ipv6Subnet: sn6, attrs, expiration });
    return expiration;
  }

  async list(): Promise<LeaseListing> {
    this.calls.push('list');
    return listing(this.#live(), [...this.unreadable.values()]);
  }

  async create(sn: Prefix, sn6: Prefix | undefined, attrs: LeaseAttrs, ttlMs: number): Promise<number | null> {
    this.calls.push(`create ${leaseKey({ subnet: sn, ipv6Subnet: sn6 })}`);
    this.beforeCreate?.(sn);
    const key = leaseKey({ subnet: sn, ipv6Subnet: sn6 });
    if (this.#live().some((l) => leaseKey(l) === key)) throw new LeaseExistsError(`${key} exists`);
    return this.#write(sn, sn6, attrs, ttlMs);
  }

  async update(sn: Prefix, sn6: Prefix | undefined, attrs: LeaseAttrs, ttlMs: number): Promise<number | null> {
    this.calls.push(`update ${leaseKey({ subnet: sn, ipv6Subnet: sn6 })} ttl=${ttlMs}`);
    return this.#write(sn, sn6, attrs, ttlMs);
  }

  async delete(sn: Prefix, sn6: Prefix | undefined): Promise<void> {
    this.calls.push(`delete ${leaseKey({ subnet: sn, ipv6Subnet: sn6 })}`);
    this.remove(sn, sn6);
  }

  watch(onChange: (events?: StoreEvent[]) => void): { close(): void } {
    this.#watchers.add(onChange);
    return { close: () => this.#watchers.delete(onChange) };
  }

  acquire(attrs: LeaseAttrs, hints: AcquireHints): Promise<Lease> {
    return acquireLease({ ...hints, store: this }, attrs);
  }

  close(): void {
    this.#watchers.clear();
  }
}
