/** Opening the pod netns a runtime names in CNI_NETNS, with CNI errors. */
import { CniError, ErrCode } from '../cni/errors';
import { NetnsError } from './errors';
import { openNetns, type NetNS } from './ns';

/** A netns error as a CniError naming CNI_NETNS (code 4); anything else unchanged. */
export function netnsCniError(p: string, e: unknown): unknown {
  if (e instanceof NetnsError) return new CniError(ErrCode.InvalidEnvironmentVariables, `CNI_NETNS: failed to open netns "${p}": ${e.message}`);
  return e;
}

/** openNetns(CNI_NETNS); a missing path or one that is not a netns is code 4. */
export function openPodNetns(p: string): NetNS {
  try {
    return openNetns(p);
  } catch (e) {
    throw netnsCniError(p, e);
  }
}
