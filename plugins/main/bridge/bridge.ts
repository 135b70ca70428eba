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
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { convertResult } from '../../pkg/cni/convert';
import { validAttachments } from '../../pkg/cni/gc';
import type { IPConfig, Result, Route } from '../../pkg/cni/types';
import { execAdd, execDel, execGc, execStatus, execValidate } from '../../pkg/ipam/run-ipam';
import { type Prefix, formatPrefix, parsePrefix } from '../../pkg/ip';
import { openHandle, openHandleAt, type Link, type NetlinkHandle } from '../../pkg/netlink';
import { openPodNetns, openPodNetnsForDel, type NetNS } from '../../pkg/ns';
import { gcIpMasq, setupIpMasq, teardownIpMasq } from '../../pkg/nft';
import { setupSpoofCheck, spoofId, teardownSpoofCheck } from '../../pkg/nft/spoofchk';
import { Rollback } from '../../pkg/rollback';
import { log } from '../../pkg/log';
import { type CmdArgs, type PluginFuncs, bindPlugin } from '../../pkg/skel/skel';
import { loadBridgeConf } from './config';
import { assembleResult, calcGateways } from './result';
import { cmdCheck } from './check';
import { type BridgeDeps, ipamExec } from './deps';
import {
  configureBridge, configureContainer, configurePort, createVeth, ctx, enableForwarding, ensureAddr, ensureBridge,
  ensureVlanInterface, ignoreNotFound, internal, masqBackend, otherPorts, deleteLinkUnlisted,
} from './links';

/** ADD steps, in order (the names the fault seam and FLAX_FAULT_INJECT use). */
export const ADD_STEPS = ['bridge', 'veth', 'port', 'macspoofchk', 'ipam', 'container', 'gateway', 'forwarding', 'ipmasq', 'port-wait', 'result'] as const;


// ---- ADD -------------------------------------------------------------------------

async function cmdAdd(a: CmdArgs, deps: BridgeDeps): Promise<Result> {
  const n = loadBridgeConf(a.stdin, a.args);
  const fw = deps.firewall ?? a.host.tools;
  // Everything that can be refused is refused before the first side effect.
  if (n.ipMasq && n.isLayer3) {
    const b = masqBackend(n, fw);
    const tool = b === 'nftables' ? 'nft' : 'iptables';
    if (!fw.has(tool)) throw new CniError(ErrCode.Internal, `ipMasq with backend ${b} needs \`${tool}\`, which is not installed`);
  }
  if (n.isLayer3) await execValidate(ipamExec(deps, a), n.ipamType, a, a.stdin);
  using podNs = openPodNetns(a.netns, a.host.openNetnsFile);
  using host = openHandle();
  const rb = new Rollback('bridge', deps.fault, a.host);
  using p = openHandleAt(podNs);
  if (await p.linkByNameOrNull(a.ifname)) throw new CniError(ErrCode.Internal, `container veth name provided (${a.ifname}) already exists`);
  return await rb.guard(async () => {
    // 1. bridge
    const made = await ensureBridge(host, n);
    if (made.created) {
      rb.push('bridge', async () => {
        if (!(await otherPorts(host, made.br.index, '')).length) await host.linkDel(made.br.index).catch(ignoreNotFound);
      });
    }
    const br = await ctx(`failed to set up bridge "${n.brName}"`, () => configureBridge(host, made.br, n, a.host.sysctlRoot));
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
    let gws = { v4: { gws: [] as Prefix[] }, v6: { gws: [] as Prefix[] } };
    if (n.isLayer3) {
      const r = await execAdd(ipamExec(deps, a), n.ipamType, a, a.stdin, n.cniVersion);
      rb.push('ipam', () => execDel(ipamExec(deps, a), n.ipamType, { ...a, command: 'DEL' }, a.stdin));
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
      await configureContainer(p, podNs, cont, a.ifname, ips, routes, n, a.host.sysctlRoot);
      cont = await p.linkByIndex(cont.index);
    }
    rb.step('container');

    // 7. gateway address(es) on the bridge (or on the VLAN gateway interface)
    if (n.isGW) {
      for (const gw of [...gws.v4.gws, ...gws.v6.gws]) {
        const target = n.vlan !== 0 ? await ctx('failed to create the VLAN gateway interface', () => ensureVlanInterface(host, br, n, rb)) : br;
        const added = await ensureAddr(host, target, gw, n.forceAddress, n.routeNets,
          async () => (await otherPorts(host, br.index, hostVeth.name)).filter((l) => l.name !== `${n.brName}.${n.vlan}`.slice(0, 11) + '-gw').map((l) => l.name));
        if (added) {
          rb.push('gateway', async () => {
            if (target.index === br.index && (await otherPorts(host, br.index, hostVeth.name)).length) return;
            await host.addrDel(target.index, formatPrefix(gw)).catch(() => undefined);
          });
        }
      }
    }
    rb.step('gateway');

    // 8. forwarding in the host netns (host-wide: never undone)
    if (n.isGW) {
      await ctx('failed to enable forwarding', () => {
        if (gws.v4.gws.length) enableForwarding(false, a.host.sysctlRoot);
        if (gws.v6.gws.length) enableForwarding(true, a.host.sysctlRoot);
      });
    }
    rb.step('forwarding');

    // 9. masquerade
    if (n.ipMasq && n.isLayer3) {
      rb.push('ipmasq', () => teardownIpMasq(n.name, a.ifname, a.containerId, fw));
      await ctx('failed to set up IP masquerading', () => setupIpMasq(
        masqBackend(n, fw), ips.map((i) => parsePrefix(i.address)), n.name, a.ifname, a.containerId, fw, { tombstone: n.iptablesTombstone },
      ));
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
  const fw = deps.firewall ?? a.host.tools;
  const errors: unknown[] = [];
  // 1. the device (its host peer goes with it); a gone netns or link is fine
  if (a.netns !== '') {
    let ns: NetNS | null = null;
    try {
      ns = openPodNetnsForDel(a.netns, a.host.openNetnsFile);
    } catch (e) {
      errors.push(e);
    }
    using _ns = ns;
    if (ns) {
      try {
        await ctx(`failed to delete "${a.ifname}"`, async () => {
          using h = openHandleAt(ns!);
          await deleteLinkUnlisted(h, ns!, a.ifname);
        });
      } catch (e) {
        errors.push(e);
      }
    }
  }
  // 2. IPAM: always released, even without a netns
  if (n.isLayer3) {
    try {
      await execDel(ipamExec(deps, a), n.ipamType, a, a.stdin);
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
      await teardownIpMasq(n.name, a.ifname, a.containerId, fw);
    } catch (e) {
      errors.push(internal('failed to remove IP masquerading', e));
    }
  }
  if (errors.length) {
    for (const e of errors.slice(1)) log('bridge', `DEL: also failed: ${e instanceof Error ? e.message : String(e)}`);
    throw errors[0];
  }
}

// ---- STATUS / GC ---------------------------------------------------------------------

async function cmdStatus(a: CmdArgs, deps: BridgeDeps): Promise<void> {
  const n = loadBridgeConf(a.stdin, a.args);
  if (n.ipMasq && n.isLayer3) {
    const fw = deps.firewall ?? a.host.tools;
    const b = masqBackend(n, fw);
    const tool = b === 'nftables' ? 'nft' : 'iptables';
    if (!fw.has(tool)) throw new CniError(ErrCode.PluginNotAvailable, `ipMasq with backend ${b} needs \`${tool}\`, which is not installed`);
  }
  if (n.isLayer3) await execStatus(ipamExec(deps, a), n.ipamType, a, a.stdin);
}

async function cmdGc(a: CmdArgs, deps: BridgeDeps): Promise<void> {
  const n = loadBridgeConf(a.stdin, a.args);
  const fw = deps.firewall ?? a.host.tools;
  const errors: unknown[] = [];
  if (n.isLayer3) {
    try {
      await execGc(ipamExec(deps, a), n.ipamType, a, a.stdin);
    } catch (e) {
      errors.push(e);
    }
  }
  const valid = validAttachments(a.stdin);
  if (valid && n.ipMasq) {
    try {
      await gcIpMasq(n.name, valid.map((v) => ({ containerId: v.containerID, ifname: v.ifname })), fw);
    } catch (e) {
      errors.push(internal('failed to garbage-collect IP masquerading', e));
    }
  }
  if (errors.length) throw errors[0];
}

// ---- plugin --------------------------------------------------------------------------

/** The bridge plugin with injectable dependencies (tests: fault seam, fake firewall). */
export const createBridgePlugin = (deps: BridgeDeps = {}): PluginFuncs =>
  bindPlugin({ add: cmdAdd, del: cmdDel, check: cmdCheck, status: cmdStatus, gc: cmdGc }, deps);
