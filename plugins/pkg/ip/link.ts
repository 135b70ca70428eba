/**
 * Link helpers on top of NetlinkHandle (after containernetworking/plugins
 * pkg/ip): veth setup with the peer created directly in the pod netns,
 * idempotent bridge creation, waiting for a link to come up.
 */
import { randomBytes } from 'node:crypto';
import {
  ERRNO, ExistsError, LinkNotFoundError, NetlinkHandle, WrongKindError, openHandleAt,
  type Addr, type BridgeSpec, type Link,
} from '../netlink';
import { openNetns, type NetNS } from '../ns';

/** 'veth' + 8 random hex digits (IFNAMSIZ-safe, like the reference plugins). */
export function randomVethName(): string {
  return `veth${randomBytes(4).toString('hex')}`;
}

export const ZERO_MAC = '00:00:00:00:00:00';

/** A random locally administered unicast MAC (02:xx:…, as the kernel's eth_random_addr). */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export interface VethPair {
  /** the host side, as seen in the host handle's netns */
  hostLink: Link;
  /** the pod side, as seen in the pod netns */
  contLink: Link;
}

/**
 * Creates a veth pair: `hostIfName` (random when omitted; retried on name
 * clashes) in the host handle's netns and `ifname` directly in `podNs`, sets
 * MTU (both ends) and the pod side's MAC, and brings both ends up. Throws
 * ExistsError if `ifname` already exists in the pod netns (or an explicit
 * hostIfName is taken). Nothing is left behind on failure.
 */
export async function setupVeth(
  host: NetlinkHandle, podNs: NetNS | string, ifname: string, hostIfName: string | undefined, mtu?: number, mac?: string,
): Promise<VethPair> {
  const ns = typeof podNs === 'string' ? openNetns(podNs) : podNs;
  const pod = openHandleAt(ns);
  try {
    if (await pod.linkByNameOrNull(ifname)) {
      throw new ExistsError(ERRNO.EEXIST, `setupVeth ${ifname}`, `container veth name provided (${ifname}) already exists`);
    }
    let hostLink: Link | undefined;
    for (let i = 0; i < 10 && !hostLink; i++) {
      const name = hostIfName ?? randomVethName();
      try {
        hostLink = await host.linkAdd({ kind: 'veth', name, peerName: ifname, peerNetns: ns, mtu, peerMac: mac });
      } catch (e) {
        if (!(e instanceof ExistsError) || hostIfName !== undefined) throw e;
        // random name clash in the host netns (or a racing creation in the pod): retry
        if (await pod.linkByNameOrNull(ifname)) throw e;
      }
    }
    if (!hostLink) throw new ExistsError(ERRNO.EEXIST, 'setupVeth', 'could not find a free host veth name');
    try {
      await host.linkSetUp(hostLink.index);
      const cont = await pod.linkByName(ifname);
      await pod.linkSetUp(cont.index);
      return { hostLink: await host.linkByIndex(hostLink.index), contLink: await pod.linkByIndex(cont.index) };
    } catch (e) {
      await host.linkDel(hostLink.index).catch(() => undefined);
      throw e;
    }
  } finally {
    pod.close();
    if (typeof podNs === 'string') ns.close();
  }
}

/** Deletes `ifname` in the pod netns (its host peer goes with it). Missing link: false. */
export async function teardownVeth(podNs: NetNS | string, ifname: string): Promise<boolean> {
  const pod = openHandleAt(podNs);
  try {
    return await pod.linkDelByName(ifname);
  } finally {
    pod.close();
  }
}

/** Polls until the link's operstate is up (or it is IFF_UP with lower_up). */
export async function waitLinkUp(h: NetlinkHandle, index: number, timeoutMs = 5000, intervalMs = 20): Promise<Link> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const l = await h.linkByIndex(index);
    if (l.operstate === 'up' || (l.up && l.lowerUp)) return l;
    if (Date.now() >= deadline) {
      throw new Error(`link ${l.name} (${index}) not up after ${timeoutMs} ms (operstate ${l.operstate})`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface EnsureBridgeOptions extends Omit<BridgeSpec, 'kind' | 'name'> {
  promisc?: boolean;
  /** default true */
  up?: boolean;
}

/**
 * Idempotent bridge creation (bridge.go ensureBridge): create; on EEXIST
 * re-fetch and require kind 'bridge' (WrongKindError otherwise); then set
 * promisc and up as asked. Returns the bridge as it is now.
 */
export async function ensureBridge(h: NetlinkHandle, name: string, opts: EnsureBridgeOptions = {}): Promise<Link> {
  const { promisc, up = true, ...spec } = opts;
  let br: Link;
  try {
    br = await h.linkAdd({ kind: 'bridge', name, ...spec });
  } catch (e) {
    if (!(e instanceof ExistsError)) throw e;
    br = await h.linkByName(name);
    if (br.kind !== 'bridge') {
      throw new WrongKindError(ERRNO.EEXIST, `ensureBridge ${name}`, `${name} already exists but is a ${br.kind || 'device'}, not a bridge`);
    }
  }
  if (promisc !== undefined && br.promisc !== promisc) await h.linkSetPromisc(br.index, promisc);
  if (up && !br.up) await h.linkSetUp(br.index);
  return h.linkByIndex(br.index);
}

/** Addresses of a link given by name or index; LinkNotFoundError if absent. */
export async function getLinkAddrs(h: NetlinkHandle, link: string | number, family?: number): Promise<Addr[]> {
  const l = typeof link === 'number' ? await h.linkByIndex(link) : await h.linkByName(link);
  return h.addrList(l.index, family);
}

export { LinkNotFoundError };
