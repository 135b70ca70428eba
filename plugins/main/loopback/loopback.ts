/**
 * loopback: brings `lo` up in the pod netns (CNI_IFNAME is ignored: this
 * only ever configures lo) and reports its addresses. With a prevResult
 * (chained after another plugin) that result is passed through unchanged.
 * DEL brings lo down; a missing or empty netns is success. CHECK fails when
 * lo is down.
 */
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { NetConfSchema, loadNetConf } from '../../pkg/cni/conf';
import type { IPConfig, Result } from '../../pkg/cni/types';
import { AF_INET, AF_INET6, openHandleAt, type NetlinkHandle } from '../../pkg/netlink';
import { openPodNetns, openPodNetnsForDel, type NetNS, type NetnsOpener } from '../../pkg/ns';
import type { CmdArgs, PluginFuncs } from '../../pkg/skel/skel';

const LO = 'lo';


async function inPod<T>(netns: string | NetNS, open: NetnsOpener, fn: (h: NetlinkHandle) => Promise<T>): Promise<T> {
  using owned = typeof netns === 'string' ? openPodNetns(netns, open) : null;
  using h = openHandleAt(owned ?? (netns as NetNS));
  return await fn(h);
}

const isLoopbackAddr = (ip: string) => ip === '::1' || ip.startsWith('127.');

export async function cmdAdd(a: CmdArgs): Promise<Result> {
  const conf = loadNetConf(a.stdin, NetConfSchema);
  const { mac, v4, v6 } = await inPod(a.netns, a.host.openNetnsFile, async (h) => {
    const lo = await h.linkByName(LO);
    await h.linkSetUp(lo.index);
    const first = async (family: number) => {
      const addrs = await h.addrList(lo.index, family);
      const bad = addrs.find((x) => !isLoopbackAddr(x.address));
      if (bad) throw new CniError(ErrCode.Internal, `loopback interface found with non-loopback address "${bad.address}"`);
      return addrs[0]?.cidr;
    };
    return { mac: lo.mac || '00:00:00:00:00:00', v4: await first(AF_INET), v6: await first(AF_INET6) };
  });
  if (conf.prevResultParsed) return { ...conf.prevResultParsed, cniVersion: conf.cniVersion };
  const ips: IPConfig[] = [];
  if (v4) ips.push({ interface: 0, address: v4 });
  if (v6) ips.push({ interface: 0, address: v6 });
  return { cniVersion: conf.cniVersion, interfaces: [{ name: LO, mac, sandbox: a.netns }], ips };
}

export async function cmdDel(a: CmdArgs): Promise<void> {
  loadNetConf(a.stdin, NetConfSchema);
  if (a.netns === '') return;
  // the netns is already gone (runtimes call DEL more than once; a stale pin)
  using ns = openPodNetnsForDel(a.netns, a.host.openNetnsFile);
  if (!ns) return;
  await inPod(ns, a.host.openNetnsFile, async (h) => {
    const lo = await h.linkByName(LO);
    await h.linkSetDown(lo.index);
  });
}

export async function cmdCheck(a: CmdArgs): Promise<void> {
  loadNetConf(a.stdin, NetConfSchema);
  await inPod(a.netns, a.host.openNetnsFile, async (h) => {
    const lo = await h.linkByName(LO);
    if (!lo.up) throw new CniError(ErrCode.Internal, 'loopback interface is down');
  });
}

export const loopbackPlugin: PluginFuncs = {
  add: cmdAdd,
  del: cmdDel,
  check: cmdCheck,
  status: async (a) => { loadNetConf(a.stdin, NetConfSchema); },
  gc: async (a) => { loadNetConf(a.stdin, NetConfSchema); },
};
