/**
 * The VXLAN devices `flannel.<VNI>` and `flannel-v6.<VNI>` (local = our
 * IPv6 address) (flannel backend/vxlan device.go) over
 * our netlink layer: created with learning off, local = public address,
 * dev = external interface, MTU = underlay − 50 (IPv6: − 70) and a MAC chosen before
 * creation; an existing device with the same VNI, port, local address,
 * underlay device and GBP is reused as it is (its MAC is what the lease
 * publishes), anything else is deleted and re-created. Then accept_ra=0,
 * address `<subnet>.0/32` or `<v6 subnet>::/128` (other in-Network
 * addresses removed), up.
 */
import { type Link, type NetlinkHandle, type VxlanSpec, isExists, isNotFound, AF_INET, AF_INET6 } from '../../../pkg/netlink';
import { writeSysctl } from '../../../pkg/ns';
import { type Prefix, bigIntToIp, prefixContains, toAddr } from '../../../pkg/ip';
import { type Logger } from '../../log';

export const VXLAN_OVERHEAD = 50;
/**
 * Over an IPv6 underlay the outer header is 20 bytes longer: the kernel
 * caps flannel-v6.<VNI>'s MTU at underlay − 70 (it clamps flanneld's − 50
 * at creation and refuses it later with EINVAL).
 */
export const VXLAN6_OVERHEAD = 70;
/** The kernel's default VXLAN UDP port, used when Backend.Port is 0. */
export const KERNEL_VXLAN_PORT = 8472;

export interface VxlanDeviceWant {
  name: string;
  vni: number;
  /** 0 = the kernel default (8472) */
  port: number;
  local: string;
  /** ifindex of the external interface */
  srcLink: number;
  mtu: number;
  gbp: boolean;
  learning: boolean;
  /** used only when the device is created */
  mac: string;
}

/** Why an existing link cannot be reused (flannel vxlanLinksIncompat), or null. */
export function vxlanIncompat(want: VxlanDeviceWant, l: Link): string | null {
  if (l.kind !== 'vxlan' || !l.vxlan) return `link type: vxlan vs ${l.kind || 'device'}`;
  const v = l.vxlan;
  if (v.vni !== want.vni) return `vni: ${want.vni} vs ${v.vni}`;
  if (v.srcLink !== undefined && v.srcLink > 0 && v.srcLink !== want.srcLink) return `vtep (external) interface: ${want.srcLink} vs ${v.srcLink}`;
  if (v.local !== undefined && v.local !== want.local) return `vtep (external) IP: ${want.local} vs ${v.local}`;
  if (v.group !== undefined && v.group !== '0.0.0.0' && v.group !== '::') return `group address: none vs ${v.group}`;
  const port = want.port || KERNEL_VXLAN_PORT;
  if (v.port !== undefined && v.port > 0 && v.port !== port) return `port: ${port} vs ${v.port}`;
  if (v.gbp !== want.gbp) return `gbp: ${want.gbp} vs ${v.gbp}`;
  return null;
}

export function vxlanSpec(want: VxlanDeviceWant): VxlanSpec {
  return {
    kind: 'vxlan', name: want.name, vni: want.vni, port: want.port || undefined, local: want.local,
    srcLink: want.srcLink, learning: want.learning, gbp: want.gbp, mtu: want.mtu, mac: want.mac,
  };
}

/**
 * Makes the device exist as wanted; returns it and whether it was (re)created.
 * Call with a handle bound to the node's netns.
 */
export async function ensureVxlanDevice(h: NetlinkHandle, want: VxlanDeviceWant, log: Logger): Promise<{ link: Link; created: boolean }> {
  const existing = await h.linkByNameOrNull(want.name);
  if (existing) {
    const why = vxlanIncompat(want, existing);
    if (!why) {
      if (existing.mtu !== want.mtu) {
        log.info(`${want.name}: MTU ${existing.mtu} -> ${want.mtu}`);
        await h.linkSetMtu(existing.index, want.mtu);
      }
      return { link: await h.linkByIndex(existing.index), created: false };
    }
    log.warn(`${want.name} exists with an incompatible configuration (${why}); re-creating it`);
    await h.linkDel(existing.index);
  }
  let link: Link;
  try {
    link = await h.linkAdd(vxlanSpec(want));
  } catch (e) {
    if (!isExists(e)) throw e;
    // created concurrently (by hand?): take what is there on the next round
    throw new Error(`${want.name} appeared while it was being created; will retry`);
  }
  try {
    writeSysctl(null, `net/ipv6/conf/${want.name}/accept_ra`, 0);
  } catch (e) {
    log.debug(`${want.name}: accept_ra not set (${(e as Error).message}); IPv6 may be disabled`);
  }
  return { link, created: true };
}

/**
 * Ensures `<subnet>.0/32` (IPv6: `<subnet>::/128`, as flanneld's
 * ConfigureIPv6, without DAD or prefix route) on the device, removes other
 * addresses inside the network (a previous subnet), and brings the device up.
 */
export async function configureVxlanDevice(h: NetlinkHandle, link: Link, subnet: Prefix, network: Prefix, log: Logger): Promise<void> {
  const v6 = subnet.v6;
  const want = `${bigIntToIp(subnet.ip, v6)}/${v6 ? 128 : 32}`;
  const addrs = await h.addrList(link.index, v6 ? AF_INET6 : AF_INET);
  let have = false;
  for (const a of addrs) {
    if (a.cidr === want) {
      have = true;
      continue;
    }
    const ip = toAddr(a.address);
    if (prefixContains(network, ip.n, ip.v6)) {
      log.info(`${link.name}: removing stale address ${a.cidr}`);
      try {
        await h.addrDel(link.index, a.cidr);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
  }
  if (!have) {
    try {
      await h.addrAdd(link.index, want, v6 ? { noDad: true, noPrefixRoute: true } : {});
      log.info(`${link.name}: address ${want}`);
    } catch (e) {
      if (!isExists(e)) throw e;
    }
  }
  if (!link.up) await h.linkSetUp(link.index);
}
