/** The GC verb's valid-attachments list (spec 1.1.0), parsed once for every plugin. */
import { CniError, ErrCode } from './errors';
import { parseJsonObject } from './conf';

export interface ValidAttachment {
  containerID: string;
  ifname: string;
}

/**
 * The still-valid attachments of a GC request (`cni.dev/valid-attachments`,
 * or the spec-v1.1.0 tag's `cni.dev/attachments`), or null when the runtime
 * sent no list (then nothing is known to be invalid).
 */
export function validAttachments(stdin: string | Buffer): ValidAttachment[] | null {
  const raw = parseJsonObject(stdin);
  const list = raw['cni.dev/valid-attachments'] ?? raw['cni.dev/attachments'];
  if (list === undefined || list === null) return null;
  if (!Array.isArray(list)) throw new CniError(ErrCode.InvalidNetworkConfig, 'cni.dev/valid-attachments must be a list');
  return list.map((x, i) => {
    const o = x as Record<string, unknown>;
    if (typeof o?.containerID !== 'string') throw new CniError(ErrCode.InvalidNetworkConfig, `cni.dev/valid-attachments[${i}].containerID must be a string`);
    return { containerID: o.containerID, ifname: typeof o.ifname === 'string' ? o.ifname : '' };
  });
}
