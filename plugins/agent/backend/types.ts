/**
 * What a backend's network is to the loop: a full reconcile against the
 * peers' leases, and optionally an incremental apply of store events. The
 * loop (loop.ts) drives one PeerNetwork; setup.ts makes it per Backend.Type.
 */
import { type Lease, type LeaseEvent } from '../store/lease';
import { type PeersNow } from '../store/watcher';

export interface ReconcileResult {
  deviceCreated: boolean;
  peers: number;
  /** peers whose route is in place after this reconcile */
  routes: number;
  /** actions applied (0 = the kernel already matched) */
  repairs: number;
  failures: number;
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
  /**
   * Reconciles the data plane with the peers' leases (reads the kernel's
   * state, repairs every difference). A function is called once, when the
   * kernel's state has been read and the plan is made.
   */
  reconcile(peers: PeersNow): Promise<ReconcileResult>;
  /**
   * Programs only the peers in `changes` (added: new or changed, with the
   * lease it replaces; removed), without reading the kernel's state;
   * `current`: every peer's lease after them. null:
   * it cannot (nothing reconciled yet); failures > 0: some were not done.
   * Either way the loop follows with a full reconcile.
   */
  apply?(changes: readonly LeaseEvent[], current: readonly Lease[]): Promise<ApplyResult | null>;
}
