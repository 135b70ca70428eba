/**
 * portmap: forwards host ports to a container (reference:
 * plugins/meta/portmap). A chained plugin: it reads the container's
 * addresses from prevResult, installs DNAT rules (nftables by default, the
 * reference's iptables layout with `"backend":"iptables"`) and passes
 * prevResult on unchanged.
 *
 * Process model: runs in the HOST netns; never enters the pod netns, so DEL
 * works with an empty or dead CNI_NETNS. DEL removes the container's rules
 * of both backends and of the reference plugin, with or without
 * portMappings in the request (the reference's DEL is a no-op without them
 * and leaks).
 */
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { validAttachments } from '../../pkg/cni/gc';
import type { Result } from '../../pkg/cni/types';
import { type Prefix, formatPrefix, parsePrefix, prefixContainsIP, prefixIP } from '../../pkg/ip';
import { AF_INET, AF_INET6, openHandle } from '../../pkg/netlink';
import { IPPROTO_UDP, conntrackDeleteByDstPort } from '../../pkg/netlink/conntrack';
import type { FirewallDeps } from '../../pkg/nft';
import type { PortmapSpec } from '../../pkg/nft/portmap';
import type { IptPortmapSpec } from '../../pkg/nft/portmap-ipt';
import {
  checkPortmapIpt, checkPortmapNft, gcPortmap, setupPortmapIpt, setupPortmapNft, teardownPortmap, translateNftConditions,
} from '../../pkg/nft/portmap-apply';
import { log } from '../../pkg/log';
import { writeSysctl } from '../../pkg/ns';
import { Rollback, type FaultHook } from '../../pkg/rollback';
import { type CmdArgs, type PluginFuncs, bindPlugin } from '../../pkg/skel/skel';
import { type Backend, type PortMapConf, containerAddrs, loadPortMapConf } from './config';

export interface PortmapDeps {
  firewall?: FirewallDeps;
  /** conntrack deletion (default: ctnetlink in the current netns) */
  conntrackDelete?: typeof conntrackDeleteByDstPort;
  /** test seam: fails the named ADD step */
  fault?: FaultHook;
}

const internal = (msg: string, e: unknown) =>
  e instanceof CniError ? e : new CniError(ErrCode.Internal, `${msg}: ${e instanceof Error ? e.message : String(e)}`);

/** The backend to use: configured, else nftables unless only iptables is installed. */
export function resolveBackend(c: PortMapConf, fw: FirewallDeps): Backend {
  if (c.backend) return c.backend;
  return !fw.has('nft') && fw.has('iptables') ? 'iptables' : 'nftables';
}

const famList = (a: { v4?: Prefix; v6?: Prefix }): Prefix[] => [a.v4, a.v6].filter((x): x is Prefix => x !== undefined);

async function nftSpecs(c: PortMapConf, containerId: string, addrs: Prefix[], fw: FirewallDeps): Promise<PortmapSpec[]> {
  return Promise.all(addrs.map(async (ip) => ({
    network: c.name, containerId, containerIP: prefixIP(ip), v6: ip.v6, mappings: c.mappings, snat: c.snat, masqAll: c.masqAll,
    conditions: await translateNftConditions(ip.v6 ? c.conditionsV6 : c.conditionsV4, ip.v6, fw),
  })));
}

function iptSpec(c: PortMapConf, containerId: string, ip: Prefix): IptPortmapSpec {
  return {
    network: c.name, containerId, containerCidr: formatPrefix(ip), v6: ip.v6, mappings: c.mappings, snat: c.snat, masqAll: c.masqAll,
    markMasqBit: c.markMasqBit, externalSetMarkChain: c.externalSetMarkChain, conditions: ip.v6 ? c.conditionsV6 : c.conditionsV4,
  };
}

/**
 * route_localnet=1 on the host interface that routes to the container, so
 * 127.0.0.1 → host port can be DNATed across it (then masqueraded).
 */
async function enableLocalnetRouting(containerIP: Prefix, sysctlRoot: string): Promise<void> {
  let ifname: string | undefined;
  {
    using h = openHandle();
    const routes = (await h.routeList({ family: AF_INET })).filter((r) => r.oif !== undefined && prefixContainsIP(parsePrefix(r.dst), prefixIP(containerIP)));
    routes.sort((a, b) => parsePrefix(b.dst).prefixLen - parsePrefix(a.dst).prefixLen);
    if (routes.length) ifname = (await h.linkByIndex(routes[0].oif!)).name;
  }
  if (!ifname) return; // the reference skips too when nothing routes there
  writeSysctl(null, `net/ipv4/conf/${ifname}/route_localnet`, '1', sysctlRoot);
}

function requirePrev(c: PortMapConf): Result {
  if (!c.prevResult) throw new CniError(ErrCode.InvalidNetworkConfig, 'must be called as chained plugin', 'portmap needs prevResult (the result of the plugins before it in the chain)');
  return c.prevResult;
}

const passThrough = (r: Result, version: string): Result => ({ ...r, cniVersion: version });

async function cmdAdd(a: CmdArgs, deps: PortmapDeps): Promise<Result> {
  const c = loadPortMapConf(a.stdin);
  const prev = requirePrev(c);
  if (!c.mappings.length) return passThrough(prev, c.cniVersion);
  const fw = deps.firewall ?? a.host.tools;
  const addrs = containerAddrs(prev, a.ifname);
  const ips = famList(addrs);
  if (!ips.length) return passThrough(prev, c.cniVersion);
  const backend = resolveBackend(c, fw);
  const rb = new Rollback('portmap', deps.fault, a.host);
  try {
    rb.step('rules');
    rb.push('rules', () => teardownPortmap(c.name, a.containerId, fw));
    if (backend === 'nftables') {
      await setupPortmapNft(await nftSpecs(c, a.containerId, ips, fw), fw);
    } else {
      for (const ip of ips) await setupPortmapIpt(iptSpec(c, a.containerId, ip), fw);
    }
    rb.step('route_localnet');
    if (c.snat && addrs.v4) await enableLocalnetRouting(addrs.v4, a.host.sysctlRoot);
    rb.commit();
  } catch (e) {
    await rb.run();
    throw internal('unable to set up port mappings', e);
  }
  // Stale UDP conntrack entries would keep sending datagrams to where the
  // port went before; failures are informative only (as in the reference).
  const udp = [...new Set(c.mappings.filter((m) => m.protocol === 'udp').map((m) => m.hostPort))];
  try {
    for (const ip of ips) if (udp.length) await (deps.conntrackDelete ?? conntrackDeleteByDstPort)(ip.v6 ? AF_INET6 : AF_INET, IPPROTO_UDP, udp);
  } catch (e) {
    log('portmap', `failed to delete stale UDP conntrack entries: ${e instanceof Error ? e.message : String(e)}`);
  }
  return passThrough(prev, c.cniVersion);
}

async function cmdDel(a: CmdArgs, deps: PortmapDeps): Promise<void> {
  const c = loadPortMapConf(a.stdin);
  try {
    await teardownPortmap(c.name, a.containerId, deps.firewall ?? a.host.tools);
  } catch (e) {
    throw internal('unable to remove port mappings', e);
  }
}

async function cmdCheck(a: CmdArgs, deps: PortmapDeps): Promise<void> {
  const c = loadPortMapConf(a.stdin);
  if (!c.prevResult) throw new CniError(ErrCode.InvalidNetworkConfig, 'Required prevResult missing');
  if (!c.mappings.length) return;
  const fw = deps.firewall ?? a.host.tools;
  const ips = famList(containerAddrs(c.prevResult, a.ifname));
  try {
    if (resolveBackend(c, fw) === 'nftables') {
      // conditions are not re-translated: CHECK verifies the container's rules and the entry path
      await checkPortmapNft(ips.map((ip) => ({
        network: c.name, containerId: a.containerId, containerIP: prefixIP(ip), v6: ip.v6, mappings: c.mappings, snat: c.snat, masqAll: c.masqAll, conditions: [],
      })), fw);
    } else {
      for (const ip of ips) await checkPortmapIpt(iptSpec(c, a.containerId, ip), fw);
    }
  } catch (e) {
    throw internal('port mapping check failed', e);
  }
}

async function cmdStatus(a: CmdArgs, deps: PortmapDeps): Promise<void> {
  const c = loadPortMapConf(a.stdin);
  const fw = deps.firewall ?? a.host.tools;
  const b = resolveBackend(c, fw);
  const tools = b === 'nftables' ? ['nft'] : ['iptables', 'iptables-restore'];
  const missing = tools.filter((t) => !fw.has(t));
  if (missing.length) throw new CniError(ErrCode.PluginNotAvailable, `portmap backend ${b} needs ${missing.map((t) => `\`${t}\``).join(' and ')}, which is not installed`);
}

async function cmdGc(a: CmdArgs, deps: PortmapDeps): Promise<void> {
  const c = loadPortMapConf(a.stdin);
  const valid = validAttachments(a.stdin);
  if (!valid) return; // no list: nothing is known to be stale
  try {
    await gcPortmap(c.name, new Set(valid.map((v) => v.containerID)), deps.firewall ?? a.host.tools);
  } catch (e) {
    throw internal('failed to garbage-collect port mappings', e);
  }
}

/** The portmap plugin with injectable dependencies (tests: fake firewall, fault seam). */
export const createPortmapPlugin = (deps: PortmapDeps = {}): PluginFuncs =>
  bindPlugin({ add: cmdAdd, del: cmdDel, check: cmdCheck, status: cmdStatus, gc: cmdGc }, deps);

export const portmapPlugin: PluginFuncs = createPortmapPlugin();
