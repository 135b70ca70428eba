/**
 * Which kernel notifications concern flaxd's data plane (the agent reacts
 * at once instead of at the next --reconcile-interval): our VXLAN device
 * deleted or set down, a route into the Network removed (a peer's, by
 * someone else or by us), a peer VTEP's neighbour entry on our device
 * removed. Each
 * asks for a reconcile with the known peers; what the reconcile finds
 * right changes nothing.
 */
import { type NetlinkEvent } from '../../pkg/netlink';
import { type Prefix } from '../../pkg/ip';
import { inNetwork, routeInNetwork } from './vxlan/plan';

const OUR_DEVICE = /^flannel(-v6)?\.\d+$/;

/**
 * Why `e` calls for a reconcile, or null. `networks`: Network and/or
 * IPv6Network; `ours`: the indexes of our devices now (kept by
 * OurDevices from the same events).
 */
export function kernelChangeReason(e: NetlinkEvent, networks: readonly Prefix[], ours: ReadonlySet<number>): string | null {
  switch (e.kind) {
    case 'link':
      if (!OUR_DEVICE.test(e.link.name)) return null;
      if (e.deleted) return `device ${e.link.name} deleted`;
      return e.link.up ? null : `device ${e.link.name} is down`;
    case 'route':
      return e.deleted && networks.some((n) => routeInNetwork(n, e.route.dst)) ? `route ${e.route.dst} removed` : null;
    case 'neigh': {
      // a peer VTEP's entry on our device (pods' entries on cni0 come and go)
      if (!e.deleted || !e.neigh.ip || !ours.has(e.neigh.index)) return null;
      const ip = e.neigh.ip;
      return networks.some((n) => inNetwork(n, ip)) ? `neighbour ${ip} removed` : null;
    }
  }
}

/** The indexes of our devices (flannel.<VNI>, flannel-v6.<VNI>), seeded by a link dump and kept by link events. */
export class OurDevices {
  readonly indexes = new Set<number>();

  seed(links: ReadonlyArray<{ index: number; name: string }>): void {
    for (const l of links) if (OUR_DEVICE.test(l.name)) this.indexes.add(l.index);
  }

  see(e: NetlinkEvent): void {
    if (e.kind !== 'link' || !OUR_DEVICE.test(e.link.name)) return;
    if (e.deleted) this.indexes.delete(e.link.index);
    else this.indexes.add(e.link.index);
  }
}
