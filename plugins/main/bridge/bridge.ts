/**
 * bridge: attaches a pod to a Linux bridge in the host netns through a veth
 * pair, with IPAM delegated to another plugin (reference: plugins/main/bridge).
 *
 * ADD is transactional: every side effect pushes its compensating action on
 * a Rollback right after it succeeds, and any failure undoes them in reverse
 * (IP released, masquerade removed, veth deleted, a bridge this ADD created
 * and nobody else uses removed). Host-wide settings (ip_forward) are left
 * as they are. Steps are named; `BridgeDeps.fault` (a test seam) can fail
 * any of them.
 *
 * Process model: the plugin runs in the HOST netns (whatever netns it was
 * started in); the pod netns is reached through a netlink socket opened there
 * (openHandleAt) and, for /proc/sys writes only, withNetns.
 */
import { writeFileSync } from 'node:fs';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { convertResult } from '../../pkg/cni/convert';
import { validAttachments } from '../../pkg/cni/gc';
import type { IPConfig, Result, Route } from '../../pkg/cni/types';
import { execAdd, execCheck, execDel, execGc, execStatus, execValidate } from '../../pkg/ipam/delegate';
import { type IPNet, cidrContains, formatCidr, parseCidr } from '../../pkg/ipam/cidr';
import {
  AF_INET, AF_INET6, ExistsError, LinkNotFoundError, NetlinkError, NotSupportedError, openHandle, openHandleAt,
  type Link, type NetlinkHandle,
} from '../../pkg/netlink';
import { ZERO_MAC, randomMac, randomVethName } from '../../pkg/ip';
import { openPodNetns, openPodNetnsForDel, readSysctl, withNetns, type NetNS } from '../../pkg/ns';
import {
  type FirewallDeps, type MasqBackend, checkIpMasq, defaultDeps, findTool, gcIpMasq, setupIpMasq, teardownIpMasq,
} from '../../pkg/nft';
import { checkSpoofCheck, setupSpoofCheck, spoofId, teardownSpoofCheck } from '../../pkg/nft/spoofchk';
import { type FaultHook, Rollback } from '../../pkg/rollback';
import { log } from '../../pkg/log';
import type { CmdArgs, PluginFuncs } from '../../pkg/skel/skel';
import { type ResolvedConf, loadBridgeConf } from './config';
import { assembleResult, calcGateways } from './result';
import { applyVlanOps, portVlanOps } from './vlan';

export interface BridgeDeps {
  /** test seam: called after each named ADD step; throwing fails that step */
  fault?: FaultHook;
  firewall?: FirewallDeps;
  /** port-up wait budget (ms) */
  portWaitMs?: number;
}

/** ADD steps, in order (the names the fault seam and FLAX_FAULT_INJECT use). */
export const ADD_STEPS = ['bridge', 'veth', 'port', 'macspoofchk', 'ipam', 'container', 'gateway', 'forwarding', 'ipmasq', 'port-wait', 'result'] as const;

const internal = (msg: string, e?: unknown) =>
  new CniError(ErrCode.Internal, e === undefined ? msg : `${msg}: ${e instanceof Error ? e.message : String(e)}`);

/** Runs fn; a non-CNI error becomes a 999 error with `what` as context. */
async function ctx<T>(what: string, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof CniError) throw e;
    throw internal(what, e);
  }
}


/** Best-effort sysctl write in the current thread's netns; false if the key is absent. */
function trySysctl(key: string, value: string): boolean {
  try {
    writeFileSync(`/proc/sys/${key}`, value);
    return true;
  } catch {
    return false;
  }
}

const ignoreNotFound = (e: unknown) => {
  if (e instanceof LinkNotFoundError || (e instanceof NetlinkError && e.code === 'ENODEV')) return;
  throw e;
};

// ---- bridge ------------------------------------------------------------------

/**
 * ensureBridge: create (EEXIST ok, must be a bridge), pin its MAC (so it
 * does not follow the lowest port MAC), promisc, up, accept_ra=0.
 * Returns the bridge and whether this call created it.
 */
async function ensureBridge(h: NetlinkHandle, n: ResolvedConf): Promise<{ br: Link; created: boolean }> {
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
async function configureBridge(h: NetlinkHandle, br: Link, n: ResolvedConf): Promise<Link> {
  const mac = !br.mac || br.mac === ZERO_MAC ? randomMac() : br.mac;
  await h.linkSet(br.index, { up: true, mac, ...(n.promiscMode ? { promisc: true } : {}) });
  // we want to own the routes for this interface
  trySysctl(`net/ipv6/conf/${n.brName}/accept_ra`, '0');
  return { ...br, mac };
}

/** Ports of the bridge other than `except`. */
async function otherPorts(h: NetlinkHandle, brIndex: number, except: string): Promise<Link[]> {
  return (await h.linkList()).filter((l) => l.masterIndex === brIndex && l.name !== except);
}

// ---- veth --------------------------------------------------------------------

async function createVeth(host: NetlinkHandle, pod: NetlinkHandle, podNs: NetNS, n: ResolvedConf, ifname: string): Promise<Link> {
  for (let i = 0; i < 10; i++) {
    const name = randomVethName();
    try {
      return await host.linkAdd({ kind: 'veth', name, peerName: ifname, peerNetns: podNs, mtu: n.mtu, ...(n.mac ? { peerMac: n.mac } : {}) });
    } catch (e) {
      if (!(e instanceof ExistsError)) throw internal('failed to create veth pair', e);
      if (await pod.linkByNameOrNull(ifname)) throw new CniError(ErrCode.Internal, `container veth name provided (${ifname}) already exists`);
      // host name clash: try another random name
    }
  }
  throw new CniError(ErrCode.Internal, 'failed to find a free host veth name after 10 attempts');
}

async function configurePort(host: NetlinkHandle, hostVeth: Link, br: Link, n: ResolvedConf): Promise<void> {
  await ctx(`failed to connect "${hostVeth.name}" to bridge ${n.brName}`, () => host.linkSet(hostVeth.index, { master: br.index, up: true }));
  if (n.hairpinMode || n.portIsolation) {
    await ctx(`failed to set brport options on "${hostVeth.name}"`, () =>
      host.linkSetBrport(hostVeth.index, { ...(n.hairpinMode ? { hairpin: true } : {}), ...(n.portIsolation ? { isolated: true } : {}) }));
  }
  const ops = portVlanOps(n);
  if (ops.length) await ctx(`failed to set VLANs on "${hostVeth.name}"`, () => applyVlanOps(host, hostVeth.index, ops));
}

// ---- container side ------------------------------------------------------------

async function configureContainer(
  pod: NetlinkHandle, podNs: NetNS, cont: Link, ifname: string, ips: IPConfig[], routes: Route[], n: ResolvedConf,
): Promise<void> {
  const hasV6 = ips.some((i) => i.address.includes(':'));
  withNetns(podNs, () => {
    if (n.enableDad) {
      trySysctl(`net/ipv6/conf/${ifname}/enhanced_dad`, '1');
      trySysctl(`net/ipv6/conf/${ifname}/accept_dad`, '1');
    } else {
      trySysctl(`net/ipv6/conf/${ifname}/accept_dad`, '0');
    }
    trySysctl(`net/ipv4/conf/${ifname}/arp_notify`, '1');
    if (hasV6) {
      if (!trySysctl(`net/ipv6/conf/${ifname}/disable_ipv6`, '0')) throw new CniError(ErrCode.Internal, `failed to enable IPv6 on ${ifname} in the container (is IPv6 disabled?)`);
      trySysctl(`net/ipv6/conf/${ifname}/keep_addr_on_down`, '1');
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
async function settleAddresses(h: NetlinkHandle, index: number, ifname: string, timeoutMs: number): Promise<void> {
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

/**
 * ensureAddr (reference): the gateway address on the bridge. Equal address
 * present → nothing. Another IPv4 address, or an overlapping IPv6 one →
 * error unless forceAddress (then it is replaced). Returns true if added.
 */
async function ensureAddr(h: NetlinkHandle, br: Link, gw: IPNet, force: boolean): Promise<boolean> {
  const want = formatCidr(gw);
  const addrs = await h.addrList(br.index, gw.v6 ? AF_INET6 : AF_INET);
  for (const a of addrs) {
    if (`${a.address}/${a.prefixLen}` === want) return false;
    const other: IPNet = { ip: a.address, prefixLen: a.prefixLen, v6: gw.v6 };
    if (!gw.v6 || cidrContains(other, gw.ip) || cidrContains(gw, a.address)) {
      if (!force) throw new CniError(ErrCode.Internal, `"${br.name}" already has an IP address different from ${want}`);
      await h.addrDel(br.index, a.cidr);
    }
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
async function ensureVlanInterface(h: NetlinkHandle, br: Link, n: ResolvedConf, rb: Rollback): Promise<Link> {
  const name = `${n.brName}.${n.vlan}`.slice(0, 15);
  const existing = await h.linkByNameOrNull(name);
  if (existing) return existing;
  const peer = `${name.slice(0, 11)}-gw`;
  const l = await h.linkAdd({ kind: 'veth', name, peerName: peer, mtu: br.mtu });
  rb.push('vlan-gateway', () => h.linkDel(l.index).catch(ignoreNotFound));
  const p = await h.linkByName(peer);
  await h.linkSet(p.index, { master: br.index, up: true });
  await applyVlanOps(h, p.index, portVlanOps({ vlan: n.vlan, vlans: [], preserveDefaultVlan: n.preserveDefaultVlan }));
  await h.linkSetUp(l.index);
  return h.linkByIndex(l.index);
}

function enableForwarding(v6: boolean): void {
  const key = v6 ? 'net/ipv6/conf/all/forwarding' : 'net/ipv4/ip_forward';
  if (readSysctl(null, key) !== '1') writeFileSync(`/proc/sys/${key}`, '1');
}

// ---- masquerade backend --------------------------------------------------------

function masqBackend(n: ResolvedConf, fw: FirewallDeps): MasqBackend {
  if (n.ipMasqBackend) return n.ipMasqBackend;
  return fw.has('nft') || !fw.has('iptables') ? 'nftables' : 'iptables';
}

// ---- ADD -------------------------------------------------------------------------

async function cmdAdd(a: CmdArgs, deps: BridgeDeps): Promise<Result> {
  const n = loadBridgeConf(a.stdin, a.args);
  const fw = deps.firewall ?? defaultDeps;
  // Everything that can be refused is refused before the first side effect.
  if (n.ipMasq && n.isLayer3) {
    const b = masqBackend(n, fw);
    const tool = b === 'nftables' ? 'nft' : 'iptables';
    if (!fw.has(tool)) throw new CniError(ErrCode.Internal, `ipMasq with backend ${b} needs \`${tool}\`, which is not installed`);
  }
  if (n.isLayer3) await execValidate(n.ipamType, a, a.stdin);
  const podNs = openPodNetns(a.netns);
  const host = openHandle();
  let pod: NetlinkHandle | undefined;
  const rb = new Rollback('bridge', deps.fault);
  try {
    pod = openHandleAt(podNs);
    const p = pod;
    if (await p.linkByNameOrNull(a.ifname)) throw new CniError(ErrCode.Internal, `container veth name provided (${a.ifname}) already exists`);
    return await rb.guard(async () => {
      // 1. bridge
      const made = await ensureBridge(host, n);
      if (made.created) {
        rb.push('bridge', async () => {
          if (!(await otherPorts(host, made.br.index, '')).length) await host.linkDel(made.br.index).catch(ignoreNotFound);
        });
      }
      const br = await ctx(`failed to set up bridge "${n.brName}"`, () => configureBridge(host, made.br, n));
      rb.step('bridge');

      // 2. veth: container end named CNI_IFNAME created straight in the pod netns
      const hostVeth = await createVeth(host, p, podNs, n, a.ifname);
      rb.push('veth', () => host.linkDel(hostVeth.index).catch(ignoreNotFound));
      rb.step('veth');

      // 3. port settings
      await configurePort(host, hostVeth, br, n);
      let cont = await p.linkByName(a.ifname);
      if (!n.disableContainerInterface && !n.isLayer3) await ctx(`failed to set "${a.ifname}" up`, () => p.linkSetUp(cont.index));
      rb.step('port');

      // 4. MAC spoof check
      if (n.macspoofchk) {
        const id = spoofId(a.containerId, a.ifname);
        rb.push('macspoofchk', () => teardownSpoofCheck(id, fw));
        await ctx('failed to set up the MAC spoof check', () => setupSpoofCheck(id, hostVeth.name, cont.mac, fw));
      }
      rb.step('macspoofchk');

      // 5. IPAM. The undo is pushed only once ADD succeeded: a failed IPAM
      // ADD reserved nothing that a DEL may free (IPAM DEL releases by
      // container id, so it would free the reservation of a live pod that
      // holds this id — a duplicate-ADD or a concurrent ADD of the same id).
      let ips: IPConfig[] = [];
      let routes: Route[] = [];
      let ipamDns;
      let gws = { v4: { gws: [] as IPNet[] }, v6: { gws: [] as IPNet[] } };
      if (n.isLayer3) {
        const r = await execAdd(n.ipamType, a, a.stdin, n.cniVersion);
        rb.push('ipam', () => execDel(n.ipamType, { ...a, command: 'DEL' }, a.stdin));
        if (!r.ips?.length) throw new CniError(ErrCode.Internal, 'IPAM plugin returned missing IP config');
        const g = calcGateways(r.ips, r.routes ?? [], n);
        ips = g.ips;
        routes = g.routes;
        ipamDns = r.dns;
        gws = g;
      }
      rb.step('ipam');

      // 6. container: sysctls, addresses, link up, routes (IPv6 DAD settled)
      if (n.isLayer3) {
        await configureContainer(p, podNs, cont, a.ifname, ips, routes, n);
        cont = await p.linkByIndex(cont.index);
      }
      rb.step('container');

      // 7. gateway address(es) on the bridge (or on the VLAN gateway interface)
      if (n.isGW) {
        for (const gw of [...gws.v4.gws, ...gws.v6.gws]) {
          const target = n.vlan !== 0 ? await ctx('failed to create the VLAN gateway interface', () => ensureVlanInterface(host, br, n, rb)) : br;
          const added = await ensureAddr(host, target, gw, n.forceAddress);
          if (added) {
            rb.push('gateway', async () => {
              if (target.index === br.index && (await otherPorts(host, br.index, hostVeth.name)).length) return;
              await host.addrDel(target.index, formatCidr(gw)).catch(() => undefined);
            });
          }
        }
      }
      rb.step('gateway');

      // 8. forwarding in the host netns (host-wide: never undone)
      if (n.isGW) {
        await ctx('failed to enable forwarding', () => {
          if (gws.v4.gws.length) enableForwarding(false);
          if (gws.v6.gws.length) enableForwarding(true);
        });
      }
      rb.step('forwarding');

      // 9. masquerade
      if (n.ipMasq && n.isLayer3) {
        rb.push('ipmasq', () => teardownIpMasq(n.name, a.containerId, fw));
        await ctx('failed to set up IP masquerading', () => setupIpMasq(masqBackend(n, fw), ips.map((i) => parseCidr(i.address)), n.name, a.containerId, fw));
      }
      rb.step('ipmasq');

      // 10. wait for the bridge port to forward
      let hv = await host.linkByIndex(hostVeth.index);
      if (!n.disableContainerInterface) hv = await waitPortUp(host, hv, deps.portWaitMs ?? 2500);
      rb.step('port-wait');

      // 11. result, with MACs re-read (the bridge's may have changed)
      const brNow = await host.linkByIndex(br.index);
      const result = assembleResult({
        cniVersion: n.cniVersion,
        bridge: { name: brNow.name, mac: brNow.mac, mtu: brNow.mtu },
        hostVeth: { name: hv.name, mac: hv.mac, mtu: hv.mtu },
        container: { name: cont.name, mac: cont.mac, mtu: cont.mtu, sandbox: a.netns },
        ips, routes, ipamDns, confDns: n.dns,
      });
      convertResult(result, n.cniVersion); // refuse now (rolled back) what cannot be printed
      rb.step('result');
      return result;
    });
  } finally {
    pod?.close();
    host.close();
    podNs.close();
  }
}

async function waitPortUp(h: NetlinkHandle, l: Link, budgetMs: number): Promise<Link> {
  const deadline = Date.now() + budgetMs;
  let cur = l;
  for (;;) {
    if (cur.operstate === 'up') return cur;
    if (Date.now() > deadline) throw new CniError(ErrCode.Internal, `bridge port in error state: ${cur.operstate}`);
    await new Promise((r) => setTimeout(r, 10));
    cur = await h.linkByIndex(l.index);
  }
}

// ---- DEL ---------------------------------------------------------------------------

async function cmdDel(a: CmdArgs, deps: BridgeDeps): Promise<void> {
  const n = loadBridgeConf(a.stdin, a.args);
  const fw = deps.firewall ?? defaultDeps;
  const errors: unknown[] = [];
  // 1. the device (its host peer goes with it); a gone netns or link is fine
  if (a.netns !== '') {
    let ns: NetNS | null = null;
    try {
      ns = openPodNetnsForDel(a.netns);
    } catch (e) {
      errors.push(e);
    }
    if (ns) {
      try {
        await ctx(`failed to delete "${a.ifname}"`, async () => {
          const h = openHandleAt(ns!);
          try {
            await h.linkDelByName(a.ifname);
          } finally {
            h.close();
          }
        });
      } catch (e) {
        errors.push(e);
      } finally {
        ns.close();
      }
    }
  }
  // 2. IPAM: always released, even without a netns
  if (n.isLayer3) {
    try {
      await execDel(n.ipamType, a, a.stdin);
    } catch (e) {
      errors.push(e);
    }
  }
  // 3. spoof check and masquerade, keyed by container id (no addresses needed)
  if (n.macspoofchk) {
    try {
      await teardownSpoofCheck(spoofId(a.containerId, a.ifname), fw);
    } catch (e) {
      errors.push(internal('failed to remove the MAC spoof check', e));
    }
  }
  if (n.ipMasq && n.isLayer3) {
    try {
      await teardownIpMasq(n.name, a.containerId, fw);
    } catch (e) {
      errors.push(internal('failed to remove IP masquerading', e));
    }
  }
  if (errors.length) {
    for (const e of errors.slice(1)) log('bridge', `DEL: also failed: ${e instanceof Error ? e.message : String(e)}`);
    throw errors[0];
  }
}

// ---- CHECK -------------------------------------------------------------------------

async function cmdCheck(a: CmdArgs, deps: BridgeDeps): Promise<void> {
  const n = loadBridgeConf(a.stdin, a.args);
  const fw = deps.firewall ?? defaultDeps;
  const podNs = openPodNetns(a.netns);
  try {
    if (n.isLayer3) await execCheck(n.ipamType, a, a.stdin);
    const prev = n.prevResult;
    if (!prev) throw new CniError(ErrCode.InvalidNetworkConfig, 'Required prevResult missing');
    const ifs = prev.interfaces ?? [];
    const brMap = ifs.find((i) => i.name === n.brName && !i.sandbox);
    const contMap = ifs.find((i) => i.name === a.ifname && i.sandbox === a.netns);
    if (!contMap) {
      const other = ifs.find((i) => i.name === a.ifname && i.sandbox);
      if (other) throw new CniError(ErrCode.Internal, `Sandbox in prevResult ${other.sandbox} doesn't match configured netns: ${a.netns}`);
    }
    await withHandles(podNs, async (host, pod) => {
      // bridge
      const br = await host.linkByNameOrNull(n.brName);
      if (!br) throw new CniError(ErrCode.Internal, `CNI created bridge ${n.brName} in host namespace was not found`);
      if (br.kind !== 'bridge') throw new CniError(ErrCode.Internal, `Error: ${n.brName} is not a bridge`);
      if (brMap?.mac && brMap.mac !== br.mac) throw new CniError(ErrCode.Internal, `Bridge interface ${n.brName} Mac doesn't match: ${brMap.mac}`);
      // container interface
      const cont = await pod.linkByNameOrNull(a.ifname);
      if (!cont || !contMap) throw new CniError(ErrCode.Internal, `CNI created interface in container ${a.ifname} not found`);
      if (cont.kind !== 'veth') throw new CniError(ErrCode.Internal, `Error: Container interface ${a.ifname} not of type veth`);
      if (contMap.mac && contMap.mac !== cont.mac) throw new CniError(ErrCode.Internal, `Interface ${a.ifname} Mac ${contMap.mac} doesn't match container Mac: ${cont.mac}`);
      // host veth: the peer of the container interface, enslaved to the bridge
      let vethFound = false;
      for (const i of ifs) {
        if (i === brMap || i === contMap || i.sandbox) continue;
        const l = await host.linkByNameOrNull(i.name);
        if (!l || l.kind !== 'veth' || l.index !== cont.peerIndex) continue;
        if (l.masterIndex !== br.index) throw new CniError(ErrCode.Internal, `Interface ${i.name} veth not attached to bridge ${n.brName}`);
        if (i.mac && i.mac !== l.mac) throw new CniError(ErrCode.Internal, `Interface ${i.name} Mac ${i.mac} doesn't match: ${l.mac}`);
        vethFound = true;
        break;
      }
      if (!vethFound) throw new CniError(ErrCode.Internal, `CNI veth created for bridge ${n.brName} was not found`);
      // addresses and routes in the container
      const addrs = await pod.addrList(cont.index);
      for (const ip of prev.ips ?? []) {
        const want = formatCidr(parseCidr(ip.address));
        if (!addrs.some((x) => `${x.address}/${x.prefixLen}` === want)) throw new CniError(ErrCode.Internal, `Failed to match addr ${ip.address} on interface ${a.ifname}`);
      }
      const kroutes = await pod.routeList({ table: 0 });
      for (const r of prev.routes ?? []) {
        const dst = formatCidr(parseCidr(r.dst));
        const ok = kroutes.some((k) => k.dst === dst && (r.gw === undefined || k.gw === r.gw));
        if (!ok) throw new CniError(ErrCode.Internal, `Failed to match route ${r.dst}${r.gw ? ` via ${r.gw}` : ''} in the container`);
      }
    });
    if (n.ipMasq && n.isLayer3 && prev.ips?.length) {
      await ctx('IP masquerading check failed', () =>
        checkIpMasq(masqBackend(n, fw), prev.ips!.map((i) => parseCidr(i.address)), n.name, a.containerId, fw));
    }
    if (n.macspoofchk && !(await checkSpoofCheck(spoofId(a.containerId, a.ifname), fw))) {
      throw new CniError(ErrCode.Internal, `MAC spoof check rules for ${a.ifname} missing`);
    }
  } finally {
    podNs.close();
  }
}

async function withHandles(podNs: NetNS, fn: (host: NetlinkHandle, pod: NetlinkHandle) => Promise<void>): Promise<void> {
  const host = openHandle();
  try {
    const pod = openHandleAt(podNs);
    try {
      await fn(host, pod);
    } finally {
      pod.close();
    }
  } finally {
    host.close();
  }
}

// ---- STATUS / GC ---------------------------------------------------------------------

async function cmdStatus(a: CmdArgs, deps: BridgeDeps): Promise<void> {
  const n = loadBridgeConf(a.stdin, a.args);
  if (n.ipMasq && n.isLayer3) {
    const fw = deps.firewall ?? defaultDeps;
    const b = masqBackend(n, fw);
    const tool = b === 'nftables' ? 'nft' : 'iptables';
    if (!fw.has(tool)) throw new CniError(ErrCode.PluginNotAvailable, `ipMasq with backend ${b} needs \`${tool}\`, which is not installed`);
  }
  if (n.isLayer3) await execStatus(n.ipamType, a, a.stdin);
}

async function cmdGc(a: CmdArgs, deps: BridgeDeps): Promise<void> {
  const n = loadBridgeConf(a.stdin, a.args);
  const fw = deps.firewall ?? defaultDeps;
  const errors: unknown[] = [];
  if (n.isLayer3) {
    try {
      await execGc(n.ipamType, a, a.stdin);
    } catch (e) {
      errors.push(e);
    }
  }
  const valid = validAttachments(a.stdin);
  if (valid && n.ipMasq) {
    try {
      await gcIpMasq(n.name, new Set(valid.map((v) => v.containerID)), fw);
    } catch (e) {
      errors.push(internal('failed to garbage-collect IP masquerading', e));
    }
  }
  if (errors.length) throw errors[0];
}

// ---- plugin --------------------------------------------------------------------------

/** The bridge plugin with injectable dependencies (tests: fault seam, fake firewall). */
export function createBridgePlugin(deps: BridgeDeps = {}): PluginFuncs {
  return {
    add: (a) => cmdAdd(a, deps),
    del: (a) => cmdDel(a, deps),
    check: (a) => cmdCheck(a, deps),
    status: (a) => cmdStatus(a, deps),
    gc: (a) => cmdGc(a, deps),
  };
}

export const bridgePlugin: PluginFuncs = createBridgePlugin();

export { findTool };
