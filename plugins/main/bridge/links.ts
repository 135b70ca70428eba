/**
 * bridge's kernel-side steps (reference: bridge.go): the bridge, the veth
 * pair and its port, the container side (addresses, routes, DAD), the
 * gateway address and forwarding, and the masquerade backend choice.
 * Called by bridge.ts's ADD/DEL/CHECK with handles bound to the right netns.
 */
import { randomBytes } from 'node:crypto';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import type { IPConfig, Route } from '../../pkg/cni/types';
import { type Prefix, formatPrefix, parsePrefix, prefixContainsIP, prefixIP, randomMac, ZERO_MAC } from '../../pkg/ip';
import {
  AF_INET, AF_INET6, ERRNO, errorFromErrno, ExistsError, LinkNotFoundError, NetlinkError, NotSupportedError,
  type Link, type NetlinkHandle,
} from '../../pkg/netlink';
import { readSysctl, trySysctl, withNetns, writeSysctl, type NetNS } from '../../pkg/ns';
import type { FirewallDeps, MasqBackend } from '../../pkg/nft';
import { log } from '../../pkg/log';
import type { Rollback } from '../../pkg/rollback';
import { native } from '../../pkg/native';
import type { ResolvedConf } from './config';
import { applyVlanOps, portVlanOps } from './vlan';

export const internal = (msg: string, e?: unknown) =>
  new CniError(ErrCode.Internal, e === undefined ? msg : `${msg}: ${e instanceof Error ? e.message : String(e)}`);

/** Runs fn; a non-CNI error becomes a 999 error with `what` as context. */
export async function ctx<T>(what: string, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof CniError) throw e;
    throw internal(what, e);
  }
}

export const ignoreNotFound = (e: unknown) => {
  if (e instanceof LinkNotFoundError || (e instanceof NetlinkError && e.code === 'ENODEV')) return;
  throw e;
};

// ---- bridge ------------------------------------------------------------------

/**
 * ensureBridge: create (EEXIST ok, must be a bridge), pin its MAC (so it
 * does not follow the lowest port MAC), promisc, up, accept_ra=0.
 * Returns the bridge and whether this call created it.
 */
export async function ensureBridge(h: NetlinkHandle, n: ResolvedConf): Promise<{ br: Link; created: boolean }> {
  const vlanFiltering = n.vlan !== 0 || n.vlans.length > 0;
  let br: Link;
  let created = false;
  try {
    br = await h.linkAdd({ kind: 'bridge', name: n.brName, mtu: n.mtu, ...(vlanFiltering ? { vlanFiltering: true } : {}) });
    created = true;
  } catch (e) {
    if (e instanceof ExistsError) {
      br = await h.linkByName(n.brName);
      if (br.kind !== 'bridge') throw new CniError(ErrCode.Internal, `could not add "${n.brName}": an interface of that name exists and is a ${br.kind || 'device'}, not a bridge`);
    } else if (vlanFiltering && (e instanceof NotSupportedError || (e instanceof NetlinkError && e.code === 'EINVAL'))) {
      throw new CniError(ErrCode.Internal, `could not add "${n.brName}" with VLAN filtering: ${e.code} (this kernel lacks bridge VLAN filtering)`);
    } else {
      throw internal(`could not add "${n.brName}"`, e);
    }
  }
  return { br, created };
}

/**
 * Up, promisc, and its MAC pinned so that it does not follow the lowest
 * port MAC. A bridge that lost all its ports has the zero MAC: pinning that
 * would leave the gateway unreachable (ARP answers from 00:00:00:00:00:00),
 * so such a bridge gets a random local MAC instead. Returns the bridge as
 * configured.
 */
export async function configureBridge(h: NetlinkHandle, br: Link, n: ResolvedConf, sysctlRoot?: string): Promise<Link> {
  const mac = !br.mac || br.mac === ZERO_MAC ? randomMac() : br.mac;
  await h.linkSet(br.index, { up: true, mac, ...(n.promiscMode ? { promisc: true } : {}) });
  // we want to own the routes for this interface
  trySysctl(null, `net/ipv6/conf/${n.brName}/accept_ra`, '0', sysctlRoot);
  return { ...br, mac };
}

/** Ports of the bridge other than `except`. */
export async function otherPorts(h: NetlinkHandle, brIndex: number, except: string): Promise<Link[]> {
  return (await h.linkList()).filter((l) => l.masterIndex === brIndex && l.name !== except);
}

// ---- veth --------------------------------------------------------------------

/**
 * IFLA_TXQLEN of both ends of a veth, as the reference sends it (its netlink
 * LinkAttrs' zero TxQLen, on the link and on VETH_INFO_PEER): 0, where the
 * kernel's default is 1000. A veth has no queue (noqueue), so it changes no
 * packet; `ip link` shows no qlen, as for the reference's.
 */
export const VETH_TXQLEN = 0;

/** 'veth' + 8 random hex digits (IFNAMSIZ-safe, like the reference plugins). */
export const randomVethName = (): string => `veth${randomBytes(4).toString('hex')}`;

export async function createVeth(host: NetlinkHandle, pod: NetlinkHandle, podNs: NetNS, n: ResolvedConf, ifname: string): Promise<Link> {
  for (let i = 0; i < 10; i++) {
    const name = randomVethName();
    try {
      return await host.linkAdd({ kind: 'veth', name, peerName: ifname, peerNetns: podNs, mtu: n.mtu, txQueueLen: VETH_TXQLEN, ...(n.mac ? { peerMac: n.mac } : {}) });
    } catch (e) {
      if (!(e instanceof ExistsError)) throw internal('failed to create veth pair', e);
      if (await pod.linkByNameOrNull(ifname)) throw new CniError(ErrCode.Internal, `container veth name provided (${ifname}) already exists`);
      // host name clash: try another random name
    }
  }
  throw new CniError(ErrCode.Internal, 'failed to find a free host veth name after 10 attempts');
}

export async function configurePort(host: NetlinkHandle, hostVeth: Link, br: Link, n: ResolvedConf): Promise<void> {
  await ctx(`failed to connect "${hostVeth.name}" to bridge ${n.brName}`, () => host.linkSet(hostVeth.index, { master: br.index, up: true }));
  if (n.hairpinMode || n.portIsolation) {
    await ctx(`failed to set brport options on "${hostVeth.name}"`, () =>
      host.linkSetBrport(hostVeth.index, { ...(n.hairpinMode ? { hairpin: true } : {}), ...(n.portIsolation ? { isolated: true } : {}) }));
  }
  const ops = portVlanOps(n);
  if (ops.length) await ctx(`failed to set VLANs on "${hostVeth.name}"`, () => applyVlanOps(host, hostVeth.index, ops));
}

// ---- container side ------------------------------------------------------------

export async function configureContainer(
  pod: NetlinkHandle, podNs: NetNS, cont: Link, ifname: string, ips: IPConfig[], routes: Route[], n: ResolvedConf, sysctlRoot?: string,
): Promise<void> {
  const hasV6 = ips.some((i) => i.address.includes(':'));
  withNetns(podNs, () => {
    if (n.enableDad) {
      trySysctl(null, `net/ipv6/conf/${ifname}/enhanced_dad`, '1', sysctlRoot);
      trySysctl(null, `net/ipv6/conf/${ifname}/accept_dad`, '1', sysctlRoot);
    } else {
      trySysctl(null, `net/ipv6/conf/${ifname}/accept_dad`, '0', sysctlRoot);
    }
    trySysctl(null, `net/ipv4/conf/${ifname}/arp_notify`, '1', sysctlRoot);
    if (hasV6) {
      if (!trySysctl(null, `net/ipv6/conf/${ifname}/disable_ipv6`, '0', sysctlRoot)) throw new CniError(ErrCode.Internal, `failed to enable IPv6 on ${ifname} in the container (is IPv6 disabled?)`);
      trySysctl(null, `net/ipv6/conf/${ifname}/keep_addr_on_down`, '1', sysctlRoot);
    }
  });
  let v4gw: string | undefined;
  let v6gw: string | undefined;
  for (const ipc of ips) {
    const v6 = ipc.address.includes(':');
    await ctx(`failed to add IP addr ${ipc.address} to "${ifname}"`, async () => {
      try {
        await pod.addrAdd(cont.index, ipc.address, v6 && !n.enableDad ? { noDad: true } : {});
      } catch (e) {
        if (!(e instanceof ExistsError)) throw e;
      }
    });
    if (ipc.gateway) {
      if (v6) v6gw ??= ipc.gateway;
      else v4gw ??= ipc.gateway;
    }
  }
  if (!cont.up) await ctx(`failed to set "${ifname}" up`, () => pod.linkSetUp(cont.index));
  if (hasV6) await settleAddresses(pod, cont.index, ifname, 10_000);
  for (const r of routes) {
    const v6 = r.dst.includes(':');
    const gw = r.gw ?? (v6 ? v6gw : v4gw);
    await ctx(`failed to add route '${r.dst} via ${gw ?? '-'} dev ${ifname}'`, async () => {
      try {
        await pod.routeAdd({
          dst: r.dst, gw, oif: cont.index, mtu: r.mtu, advmss: r.advmss, metric: r.priority, table: r.table, scope: r.scope,
        });
      } catch (e) {
        if (!(e instanceof ExistsError)) throw e;
      }
    });
  }
}

/** Waits until no IPv6 address of the link is tentative (DAD done); fails on dadfailed. */
export async function settleAddresses(h: NetlinkHandle, index: number, ifname: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const addrs = await h.addrList(index, AF_INET6);
    const failed = addrs.find((x) => x.dadfailed);
    if (failed) throw new CniError(ErrCode.Internal, `IPv6 duplicate address detection failed for ${failed.cidr} on ${ifname}`);
    if (!addrs.some((x) => x.tentative && !x.address.startsWith('fe80'))) return;
    if (Date.now() > deadline) throw new CniError(ErrCode.Internal, `IPv6 addresses on ${ifname} still tentative after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---- gateway -----------------------------------------------------------------

/** An address the bridge holds that conflicts with the gateway ADD wants to put there. */
export interface BridgeAddr { cidr: string; address: string; prefixLen: number }

/**
 * What ensureAddr does with the bridge's addresses (pure). `conflicting`:
 * the addresses the reference refuses ("already has an IP address different
 * from"): any other IPv4 address, an overlapping IPv6 one. Of those, a
 * STALE one is a gateway left by an earlier subnet: inside the overlay
 * Network (`networks`: the conf's ipam route destinations that contain
 * the new gateway — flannel's delegate routes every FLANNEL_NETWORK); with
 * no such route the Network is unknown and nothing is stale (the
 * reference's error; forceAddress replaces).
 * forceAddress replaces every conflicting address (the reference); a
 * bridge with no ports (other than this ADD's own veth) gets its stale
 * addresses replaced; a bridge with pods is refused, naming
 * the stale address, the ports and the fix.
 */
export type AddrPlan =
  | { kind: 'add'; replace: BridgeAddr[]; healed: boolean }
  | { kind: 'present' }
  | { kind: 'refuse'; message: string };

export function planGatewayAddr(
  brName: string, addrs: BridgeAddr[], gw: Prefix, force: boolean, networks: Prefix[], ports: string[],
): AddrPlan {
  const want = formatPrefix(gw);
  if (addrs.some((a) => `${a.address}/${a.prefixLen}` === want)) return { kind: 'present' };
  const conflicting = addrs.filter((a) => {
    return !gw.v6 || prefixContainsIP(parsePrefix(`${a.address}/${a.prefixLen}`), prefixIP(gw)) || prefixContainsIP(gw, a.address);
  });
  if (!conflicting.length) return { kind: 'add', replace: [], healed: false };
  if (force) return { kind: 'add', replace: conflicting, healed: false };
  const nets = networks.filter((net) => net.v6 === gw.v6 && net.prefixLen > 0 && prefixContainsIP(net, prefixIP(gw)));
  const base = `"${brName}" already has an IP address different from ${want}`;
  // no Network known (a plain bridge conf without a route containing the subnet): the reference's answer, forceAddress replaces
  if (!nets.length) return { kind: 'refuse', message: base };
  const stale = conflicting.filter((a) => nets.some((net) => prefixContainsIP(net, a.address)));
  const foreign = conflicting.filter((a) => !stale.includes(a));
  if (foreign.length) {
    return { kind: 'refuse', message: `${base}: ${foreign.map((a) => `${a.address}/${a.prefixLen}`).join(', ')} (outside the network ${nets.map(formatPrefix).join(', ')}; not replaced: set "forceAddress": true to replace it)` };
  }
  const list = stale.map((a) => `${a.address}/${a.prefixLen}`).join(', ');
  if (ports.length) {
    return {
      kind: 'refuse',
      message: `${base}: ${list} is a stale gateway (the node's subnet changed) and pods are still attached to ${brName} (ports ${ports.join(', ')}); `
        + `fix: remove those pods (drain the node) so the next ADD replaces the address, or delete the address by hand (ip addr del ${list.split(', ')[0]} dev ${brName}) once they are gone`,
    };
  }
  return { kind: 'add', replace: stale, healed: true };
}

/**
 * ensureAddr: the gateway address on the bridge, as planGatewayAddr
 * decides (a stale gateway on a bridge without pods is replaced and
 * logged). `ports`: the bridge's ports other than this ADD's veth.
 * Returns true if added.
 */
export async function ensureAddr(h: NetlinkHandle, br: Link, gw: Prefix, force: boolean, networks: Prefix[] = [], ports: () => Promise<string[]> = async () => []): Promise<boolean> {
  const want = formatPrefix(gw);
  const addrs = await h.addrList(br.index, gw.v6 ? AF_INET6 : AF_INET);
  let plan = planGatewayAddr(br.name, addrs, gw, force, networks, []);
  if (plan.kind === 'add' && plan.healed) plan = planGatewayAddr(br.name, addrs, gw, force, networks, await ports());
  if (plan.kind === 'present') return false;
  if (plan.kind === 'refuse') throw new CniError(ErrCode.Internal, plan.message);
  for (const a of plan.replace) {
    if (plan.healed) log('bridge', `"${br.name}" holds ${a.cidr}, a stale gateway (not ${want}) and has no pods: replacing it with ${want}`);
    await h.addrDel(br.index, a.cidr);
  }
  try {
    await h.addrAdd(br.index, want, gw.v6 ? { noDad: true } : {});
  } catch (e) {
    if (e instanceof ExistsError) return false;
    throw internal(`could not add IP address to "${br.name}"`, e);
  }
  // keep the bridge MAC fixed as ports come and go
  await h.linkSetMac(br.index, br.mac);
  return true;
}

/** With `vlan`, the gateway lives on a veth `<br>.<vlan>` whose peer is an access port of that VLAN. */
export async function ensureVlanInterface(h: NetlinkHandle, br: Link, n: ResolvedConf, rb: Rollback): Promise<Link> {
  const name = `${n.brName}.${n.vlan}`.slice(0, 15);
  const existing = await h.linkByNameOrNull(name);
  if (existing) return existing;
  const peer = `${name.slice(0, 11)}-gw`;
  const l = await h.linkAdd({ kind: 'veth', name, peerName: peer, mtu: br.mtu, txQueueLen: VETH_TXQLEN });
  rb.push('vlan-gateway', () => h.linkDel(l.index).catch(ignoreNotFound));
  const p = await h.linkByName(peer);
  await h.linkSet(p.index, { master: br.index, up: true });
  await applyVlanOps(h, p.index, portVlanOps({ vlan: n.vlan, vlans: [], preserveDefaultVlan: n.preserveDefaultVlan }));
  await h.linkSetUp(l.index);
  return h.linkByIndex(l.index);
}

export function enableForwarding(v6: boolean, sysctlRoot?: string): void {
  const key = v6 ? 'net/ipv6/conf/all/forwarding' : 'net/ipv4/ip_forward';
  if (readSysctl(null, key, sysctlRoot) !== '1') writeSysctl(null, key, '1', sysctlRoot);
}

// ---- masquerade backend --------------------------------------------------------

export function masqBackend(n: ResolvedConf, fw: FirewallDeps): MasqBackend {
  if (n.ipMasqBackend) return n.ipMasqBackend;
  return fw.has('nft') || !fw.has('iptables') ? 'nftables' : 'iptables';
}


/**
 * DEL's device removal: deletes `name` in `ns` and returns once the link is
 * gone from the netns (it and its veth peer are unlisted, their addresses
 * and routes gone), or the kernel refused the deletion (thrown). The kernel
 * unlists a link early in an RTM_DELLINK, then waits for RCU grace periods
 * and references (~10 ms) before it answers; that wait runs on a thread of
 * libuv's pool (the addon's linkDelAsync) while this call goes on (issue
 * 24). Returns false when there was no such link. An addon without
 * linkDelAsync: the plain, waited-for delete.
 */
export async function deleteLinkUnlisted(h: NetlinkHandle, ns: NetNS, name: string): Promise<boolean> {
  const n = native();
  if (!n.linkDelAsync) return h.linkDelByName(name);
  const l = await h.linkByNameOrNull(name);
  if (!l) return false;
  let errno: number | undefined;
  const answered = n.linkDelAsync(ns.fd, l.index).then((e) => { errno = e; });
  for (;;) {
    await Promise.race([answered, new Promise((r) => setTimeout(r, 1))]);
    if (errno === ERRNO.ENODEV) return false; // deleted meanwhile by someone else
    if (errno !== undefined) {
      if (errno !== 0) throw errorFromErrno(errno, `linkDel ${name}`);
      return true;
    }
    if (!(await h.linkByIndexOrNull(l.index))) return true;
  }
}
