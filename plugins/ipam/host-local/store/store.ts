/**
 * What the allocator needs from storage (host-local's backend.Store).
 * Every method is synchronous and is called with the store's lock held, so
 * one ADD/DEL is a single critical section (see disk-store.ts).
 *
 * A reservation belongs to an owner: `<containerID>\r\n<ifname>`, or — for
 * files written by old reference versions — just `<containerID>`.
 */
export interface Owner {
  id: string;
  ifname: string;
}

/** The reservation file content for an owner (reference: `id\r\nifname`). */
export const ownerText = (o: Owner): string => `${o.id.trim()}\r\n${o.ifname}`;
/** The legacy (pre-ifname) content: just the id. */
export const legacyOwnerText = (o: Owner): string => o.id.trim();

export interface Store {
  /** Creates the reservation exclusively and records it as the set's last
   * reserved IP; false when the address is already taken. */
  reserve(owner: Owner, ip: string, setIndex: number): boolean;
  /** Removes one reservation if it still belongs to `owner` (rollback). */
  release(owner: Owner, ip: string): void;
  /** The set's `last_reserved_ip.N`, or null. */
  lastReservedIP(setIndex: number): string | null;
  /** Addresses held by the owner, in either file form (reference GetByID). */
  getByOwner(owner: Owner): string[];
  /** Releases every reservation of the owner; when none has the
   * `id\r\nifname` form, the legacy `id` ones (reference ReleaseByID).
   * Returns the released addresses. */
  releaseByOwner(owner: Owner): string[];
}
