/** bridge CHECK (reference: cmdCheck): IPAM CHECK, then the kernel against prevResult. */
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { execCheck } from '../../pkg/ipam/run-ipam';
import { formatPrefix, parsePrefix } from '../../pkg/ip';
import { openHandle, openHandleAt, type NetlinkHandle } from '../../pkg/netlink';
import { openPodNetns, type NetNS } from '../../pkg/ns';
import { checkIpMasq } from '../../pkg/nft';
import { checkSpoofCheck, spoofId } from '../../pkg/nft/spoofchk';
import type { CmdArgs } from '../../pkg/skel/skel';
import { loadBridgeConf } from './config';
import { type BridgeDeps, ipamExec } from './deps';
import { ctx, masqBackend } from './links';

// ---- CHECK -------------------------------------------------------------------------

export async function cmdCheck(a: CmdArgs, deps: BridgeDeps): Promise<void> {
  const n = loadBridgeConf(a.stdin, a.args);
  const fw = deps.firewall ?? a.host.tools;
  using podNs = openPodNetns(a.netns, a.host.openNetnsFile);
  if (n.isLayer3) await execCheck(ipamExec(deps, a), n.ipamType, a, a.stdin);
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
      const want = formatPrefix(parsePrefix(ip.address));
      if (!addrs.some((x) => `${x.address}/${x.prefixLen}` === want)) throw new CniError(ErrCode.Internal, `Failed to match addr ${ip.address} on interface ${a.ifname}`);
    }
    const kroutes = await pod.routeList({ table: 0 });
    for (const r of prev.routes ?? []) {
      const dst = formatPrefix(parsePrefix(r.dst));
      const ok = kroutes.some((k) => k.dst === dst && (r.gw === undefined || k.gw === r.gw));
      if (!ok) throw new CniError(ErrCode.Internal, `Failed to match route ${r.dst}${r.gw ? ` via ${r.gw}` : ''} in the container`);
    }
  });
  if (n.ipMasq && n.isLayer3 && prev.ips?.length) {
    await ctx('IP masquerading check failed', () =>
      checkIpMasq(masqBackend(n, fw), prev.ips!.map((i) => parsePrefix(i.address)), n.name, a.ifname, a.containerId, fw));
  }
  if (n.macspoofchk && !(await checkSpoofCheck(spoofId(a.containerId, a.ifname), fw))) {
    throw new CniError(ErrCode.Internal, `MAC spoof check rules for ${a.ifname} missing`);
  }
}

async function withHandles(podNs: NetNS, fn: (host: NetlinkHandle, pod: NetlinkHandle) => Promise<void>): Promise<void> {
  using host = openHandle();
  using pod = openHandleAt(podNs);
  await fn(host, pod);
}

