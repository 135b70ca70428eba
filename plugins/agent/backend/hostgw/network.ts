/**
 * Direct routes on the external interface (plan.ts), at run time: used by
 * the host-gw backend for every peer and by vxlan's DirectRouting for the
 * on-link ones. One reconcile reads the interface's addresses (on-link
 * prefixes) and routes, plans, applies in a batch with kernel retries
 * (kernel-batch.ts); a failing route is logged and retried on the next
 * round. Between reconciles, host-gw's apply() routes the peers of store
 * events alone (delta.ts) with the prefixes the last reconcile read.
 */
import { AF_INET, AF_INET6, type NetlinkHandle } from '../../../pkg/netlink';
import { type Lease, type LeaseEvent, leaseSubnets } from '../../store/lease';
import { type Logger } from '../../log';
import { type Prefix, maskOf, parseNetwork } from '../../../pkg/ip';
import { type RoutePeer, type RouteAction, hostGwPeers, planRoutes } from './plan';
import { applyRoutePlan, type Outcome, retryKernel } from '../kernel-batch';
import { planRoutesDelta } from '../delta';
import type { ApplyResult, ReconcileResult } from '../types';
import { type PeersNow, peersNow } from '../../store/watcher';

export class DirectRoutes {
  #warned = new Set<string>();
  /** what prefixes() read last */
  last?: Prefix[];

  constructor(
    private readonly h: NetlinkHandle,
    readonly ext: { index: number; name: string },
    private readonly network: Prefix,
    private readonly log: Logger,
  ) {}

  /** The external interface's prefixes of the network's family: a peer inside one is on-link. */
  async prefixes(): Promise<Prefix[]> {
    const addrs = await retryKernel(() => this.h.addrList(this.ext.index, this.network.v6 ? AF_INET6 : AF_INET));
    return (this.last = addrs.filter((a) => a.scope === 0).map((a) => {
      const n = parseNetwork(a.cidr);
      return { ...n, ip: n.ip & maskOf(n.prefixLen, n.v6) };
    }));
  }

  /** Logs a reason once per (peer, reason). */
  warnOnce(key: string, msg: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.log.warn(msg);
  }

  /** Makes the interface's routes in the Network exactly `peers`' routes (a function: asked once the routes are read). */
  async reconcile(peers: readonly RoutePeer[] | (() => readonly RoutePeer[])): Promise<{ repairs: number; failures: number; failedPeers: number }> {
    const routes = await retryKernel(() => this.h.routeList({ index: this.ext.index, family: this.network.v6 ? AF_INET6 : AF_INET }));
    const plan = planRoutes(typeof peers === 'function' ? peers() : peers, routes.map((r) => ({ dst: r.dst, gw: r.gw })), this.network);
    return this.run(plan);
  }

  /** Applies route actions (one batch). */
  run(plan: readonly RouteAction[]): Promise<Outcome> {
    return applyRoutePlan(this.h, this.ext, plan, this.log);
  }
}

/** The host-gw backend: no device, one route per on-link peer. */
export class HostGwNetwork {
  readonly #routes: DirectRoutes;

  constructor(h: NetlinkHandle, ext: { index: number; name: string }, private readonly network: Prefix, log: Logger) {
    this.#routes = new DirectRoutes(h, ext, network, log);
  }

  async reconcile(peerLeases: PeersNow): Promise<ReconcileResult> {
    const prefixes = await this.#routes.prefixes();
    let peers: RoutePeer[] = [];
    // the peers as they are once the routes are read (store events may have been applied meanwhile)
    const r = await this.#routes.reconcile(() => {
      const hp = hostGwPeers(peersNow(peerLeases), this.network, prefixes, this.#routes.ext.name);
      for (const s of hp.skipped) this.#routes.warnOnce(`${leaseSubnets(s.lease)} ${s.reason}`, `ignoring lease ${leaseSubnets(s.lease)} of ${this.network.v6 ? s.lease.attrs.publicIPv6 : s.lease.attrs.publicIP}: ${s.reason}`);
      return (peers = hp.peers);
    });
    return { deviceCreated: false, peers: peers.length, routes: peers.length - r.failedPeers, repairs: r.repairs, failures: r.failures };
  }

  /** The peers of store events alone (null before the first reconcile: no prefixes known yet). */
  async apply(changes: readonly LeaseEvent[], current: readonly Lease[]): Promise<ApplyResult | null> {
    if (!this.#routes.last) return null;
    const d = planRoutesDelta(changes, current, this.network, this.#routes.last);
    const o = await this.#routes.run(d.plan);
    return { repairs: o.repairs, failures: o.failures, peers: d.peers, routes: d.peers };
  }
}
