/** Opening the pod netns a runtime names in CNI_NETNS, with CNI errors. */
import { closeSync, fstatSync } from 'node:fs';
import { CniError, ErrCode } from '../cni/errors';
import { native } from '../native';
import { NetnsError, NetnsNotFoundError, NotNetnsError } from './errors';
import { openNetns, openNsFile, type NetNS, type NetnsOpener } from './ns';

/** A netns error as a CniError naming CNI_NETNS (code 4); anything else unchanged. */
export function netnsCniError(p: string, e: unknown): unknown {
  if (e instanceof NetnsError) return new CniError(ErrCode.InvalidEnvironmentVariables, `CNI_NETNS: failed to open netns "${p}": ${e.message}`);
  return e;
}

/** openNetns(CNI_NETNS) (opened by `open`: the plugin's Host's openNetnsFile); a missing path or one that is not a netns is code 4. */
export function openPodNetns(p: string, open: NetnsOpener = openNsFile): NetNS {
  try {
    return openNetns(p, open);
  } catch (e) {
    throw netnsCniError(p, e);
  }
}

/**
 * A pin whose mount is gone: an empty regular file on a filesystem that is
 * neither nsfs nor procfs (runtimes unmount /run/netns/<x> before removing
 * it, and a failed or pending removal leaves the file). Its netns is gone.
 */
function isStalePin(p: string, open: NetnsOpener): boolean {
  let fd: number;
  try {
    fd = open(p);
  } catch {
    return false;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size !== 0) return false;
    const m = native().fsMagic(fd);
    return m !== native().constants.NSFS_MAGIC && m !== native().constants.PROC_SUPER_MAGIC;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

/**
 * DEL: opens CNI_NETNS, or null when that netns is gone — the path does not
 * exist, or it is a stale pin (the reference fails DEL for ever then).
 * Anything else that is not a netns is code 4.
 */
export function openPodNetnsForDel(p: string, open: NetnsOpener = openNsFile): NetNS | null {
  try {
    return openNetns(p, open);
  } catch (e) {
    if (e instanceof NetnsNotFoundError) return null;
    if (e instanceof NotNetnsError && isStalePin(p, open)) return null;
    throw netnsCniError(p, e);
  }
}
