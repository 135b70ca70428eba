/**
 * host-local IPAM: ADD allocates one address per range set from files under
 * `<dataDir>/<net>/` (byte-compatible with the reference plugin), DEL
 * releases by container id + ifname, CHECK verifies the reservation, GC
 * (1.1.0) sweeps reservations of attachments that are no longer valid,
 * STATUS (1.1.0) reports an unwritable data directory (code 50).
 *
 * `hostLocal` is the PluginFuncs object: the executable (plugins/bin) and the
 * bridge plugin's in-process IPAM delegation both go through skel `handle()`.
 */
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { validAttachments } from '../../pkg/cni/gc';
import type { DNS, IPConfig, Result } from '../../pkg/cni/types';
import type { CmdArgs, PluginFuncs } from '../../pkg/skel/skel';
import { allocate, checkRequested } from './allocator/allocator';
import { formatIP, parseCIDR, prefixAddr } from '../../pkg/ip';
import { rangeSetContains } from './allocator/range-set';
import { loadHostLocalConf, readResolvConf } from './config';
import { DiskStore, withDiskStore } from './store/disk-store';
import { type Owner, ownerText } from './store/store';

/** Reservations younger than this survive GC: the runtime may not have recorded an ADD in flight yet. */
export const GC_GRACE_MS = 5_000;

const ownerOf = (a: CmdArgs): Owner => ({ id: a.containerId, ifname: a.ifname });

/**
 * Everything an ADD can refuse without touching state: the config, the
 * requested addresses (parse, range set, gateway, network/broadcast, one
 * per set) and the resolvConf file. Returns what ADD needs. A delegating
 * plugin calls it (through `validate`) before its own first side effect.
 */
function prepareAdd(a: CmdArgs) {
  const conf = loadHostLocalConf(a.stdin, { cniArgs: a.args, requested: true });
  checkRequested(conf.rangeSets, conf.requested);
  const dns: DNS | undefined = conf.resolvConf ? readResolvConf(conf.resolvConf) : undefined;
  return { conf, dns };
}

/** ADD's input checks alone (no state read or written). */
export async function validateAdd(a: CmdArgs): Promise<void> {
  prepareAdd(a);
}

export async function cmdAdd(a: CmdArgs): Promise<Result> {
  // read everything that can fail before touching state
  const { conf, dns } = prepareAdd(a);
  const allocs = withDiskStore(conf.dataDir, conf.name, (store) => allocate(store, conf.rangeSets, ownerOf(a), conf.requested), { stderr: a.host.stderr });
  const ips: IPConfig[] = allocs.map((x) => ({ address: `${formatIP(x.ip)}/${x.prefix}`, gateway: formatIP(x.gateway) }));
  const result: Result = { cniVersion: conf.cniVersion, ips };
  if (conf.routes.length) result.routes = conf.routes;
  if (dns) result.dns = dns;
  return result;
}

export async function cmdDel(a: CmdArgs): Promise<void> {
  const conf = loadHostLocalConf(a.stdin);
  // nothing was ever reserved there: create nothing (no directory, lock or index)
  if (!DiskStore.exists(conf.dataDir, conf.name)) return;
  withDiskStore(conf.dataDir, conf.name, (store) => store.releaseByOwner(ownerOf(a)), { stderr: a.host.stderr });
}

export async function cmdCheck(a: CmdArgs): Promise<void> {
  const conf = loadHostLocalConf(a.stdin);
  const owner = ownerOf(a);
  const held = new Set(!DiskStore.exists(conf.dataDir, conf.name) ? [] : withDiskStore(conf.dataDir, conf.name, (store) => store.getByOwner(owner), { stderr: a.host.stderr }));
  if (held.size === 0) {
    throw new CniError(ErrCode.UnknownContainer, `host-local: Failed to find address added by container ${a.containerId}`, `no reservation for ${a.containerId}/${a.ifname} in ${conf.dataDir}/${conf.name}`);
  }
  // Better than the reference: every prevResult address inside our ranges must be held by this owner.
  for (const ipc of conf.prevResult?.ips ?? []) {
    const c = parseCIDR(ipc.address);
    const ip = c && prefixAddr(c);
    if (!ip || !conf.rangeSets.some((s) => rangeSetContains(s, ip))) continue;
    const text = formatIP(ip);
    if (!held.has(text)) {
      throw new CniError(ErrCode.Internal, `host-local: address ${text} in prevResult is not reserved for ${a.containerId}/${a.ifname}`);
    }
  }
}

export async function cmdStatus(a: CmdArgs): Promise<void> {
  const conf = loadHostLocalConf(a.stdin);
  DiskStore.probeWritable(conf.dataDir, conf.name);
}

export async function cmdGc(a: CmdArgs): Promise<void> {
  const conf = loadHostLocalConf(a.stdin);
  const valid = validAttachments(a.stdin);
  if (!DiskStore.exists(conf.dataDir, conf.name)) return;
  // No list: no owner is known to be invalid; only ownerless files (of
  // writers killed midway) go. A legacy file holds the container id only.
  const owners = new Set(valid?.map((v) => ownerText({ id: v.containerID, ifname: v.ifname })));
  const ids = new Set(valid?.map((v) => v.containerID.trim()));
  const keep = valid
    ? (owner: string) => owners.has(owner) || (!owner.includes('\r\n') && ids.has(owner))
    : () => true;
  const res = withDiskStore(conf.dataDir, conf.name, (store) => store.gc(keep, GC_GRACE_MS), { stderr: a.host.stderr });
  if (res.errors.length) {
    throw new CniError(ErrCode.IOFailure, `host-local GC: ${res.errors.length} reservation(s) could not be removed`, res.errors.slice(0, 10).join('; '));
  }
}

export const hostLocal: PluginFuncs = { add: cmdAdd, del: cmdDel, check: cmdCheck, status: cmdStatus, gc: cmdGc };
