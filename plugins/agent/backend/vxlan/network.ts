/**
 * The vxlan network at run time: one reconcile = ensure the device (re-create
 * it if it was deleted or changed), its address and state, read the kernel's
 * neighbours / FDB / routes on it, plan against the peers' leases (plan.ts)
 * and apply in batches (kernel-batch.ts). Kernel calls are retried on
 * transient errors (ENOBUFS, EBUSY, EAGAIN, EINTR); a peer whose programming
 * fails has what was done for it rolled back and is retried on the next
 * round. Between reconciles, apply() programs the peers of store events
 * alone (delta.ts), without reading the kernel's state.
 */
import { AF_INET, AF_INET6, type Link, type NetlinkHandle } from '../../../pkg/netlink';
import { type Lease, type LeaseEvent, leaseSubnets } from '../../store/lease';
import { type Logger } from '../../log';
import { type Prefix } from '../../../pkg/ip';
import { configureVxlanDevice, ensureVxlanDevice, type VxlanDeviceWant } from './device';
import { type DeviceState, peersFromLeases, planVxlan } from './plan';
import { applyVxlanPlan, retryKernel } from '../kernel-batch';
import { planVxlanDelta } from '../delta';
import type { ApplyResult, ReconcileResult } from '../types';
import { type PeersNow, peersNow } from '../../store/watcher';
import type { DirectRoutes } from '../hostgw/network';
import { type RoutePeer, isOnLink } from '../hostgw/plan';

export class VxlanNetwork {
  #link?: Link;
  #skipWarned = new Set<string>();

  constructor(
    private readonly h: NetlinkHandle,
    /** mac = the one our lease publishes, so a re-created device keeps it */
    private readonly want: VxlanDeviceWant,
    private readonly subnet: Prefix,
    private readonly network: Prefix,
    private readonly log: Logger,
    /** Backend.DirectRouting: on-link peers get `<subnet> via <public IP>` on the external interface instead */
    private readonly direct?: DirectRoutes,
  ) {}

  get link(): Link | undefined {
    return this.#link;
  }

  async #state(index: number): Promise<DeviceState> {
    const [neighs, fdb, routes] = await Promise.all([
      retryKernel(() => this.h.neighList(index, this.network.v6 ? AF_INET6 : AF_INET)),
      retryKernel(() => this.h.fdbList(index)),
      retryKernel(() => this.h.routeList({ index, family: this.network.v6 ? AF_INET6 : AF_INET })),
    ]);
    return {
      neighs: neighs.filter((n) => n.ip).map((n) => ({ ip: n.ip!, mac: n.mac, permanent: n.permanent })),
      fdb: fdb.filter((f) => f.mac && f.self).map((f) => ({ mac: f.mac!, dst: f.ip })),
      routes: routes.map((r) => ({ dst: r.dst, gw: r.gw, onlink: r.onlink })),
    };
  }

  /** One full reconcile against the peers' leases (our own excluded by the caller; a function: asked once the kernel's state is read). */
  async reconcile(peerLeases: PeersNow): Promise<ReconcileResult> {
    const { link, created } = await ensureVxlanDevice(this.h, this.want, this.log);
    if (created) this.log.info(`${link.name}: created (vni ${this.want.vni}, local ${this.want.local}, mtu ${this.want.mtu}, mac ${link.mac})`);
    await configureVxlanDevice(this.h, link, this.subnet, this.network, this.log);
    this.#link = link;

    const prefixes = this.direct ? await this.direct.prefixes() : [];
    const state = await this.#state(link.index);
    // the peers as they are now: store events may have been applied while the tables were read
    const { peers: all, skipped } = peersFromLeases(peersNow(peerLeases), this.network);
    let peers = all;
    let direct: RoutePeer[] = [];
    if (this.direct) {
      direct = all.filter((p) => isOnLink(p.publicIP, prefixes)).map((p) => ({ subnet: p.subnet, gw: p.publicIP }));
      peers = all.filter((p) => !isOnLink(p.publicIP, prefixes));
    }
    for (const s of skipped) {
      const k = `${leaseSubnets(s.lease)} of ${this.network.v6 ? s.lease.attrs.publicIPv6 : s.lease.attrs.publicIP}`;
      if (!this.#skipWarned.has(`${k} ${s.reason}`)) this.log.warn(`${this.want.name}: ignoring lease ${k}: ${s.reason}`);
      this.#skipWarned.add(`${k} ${s.reason}`);
    }
    const plan = planVxlan(peers, state, this.network);
    let { repairs, failures, failedPeers } = await applyVxlanPlan(this.h, link, plan, this.log);
    if (this.direct) {
      const d = await this.direct.reconcile(direct);
      repairs += d.repairs;
      failures += d.failures;
      failedPeers += d.failedPeers;
    }
    return { deviceCreated: created, peers: all.length, routes: all.length - failedPeers, repairs, failures };
  }

  /** The peers of store events alone, on the device of the last reconcile (none yet, or DirectRouting: null, reconcile). */
  async apply(changes: readonly LeaseEvent[], current: readonly Lease[]): Promise<ApplyResult | null> {
    if (!this.#link || this.direct) return null;
    const d = planVxlanDelta(changes, current, this.network);
    const o = await applyVxlanPlan(this.h, this.#link, d.plan, this.log);
    return { repairs: o.repairs, failures: o.failures, peers: d.peers, routes: d.peers };
  }
}
