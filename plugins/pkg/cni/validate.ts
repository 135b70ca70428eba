/** Validation of container id, interface name and network name (libcni's rules). */
import { CniError, ErrCode } from './errors';

const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;
/** Longest id we accept; ids become file names (host-local, the cache). */
export const MAX_ID_LEN = 255;

export function validateContainerId(id: string): void {
  if (id === '') throw new CniError(ErrCode.UnknownContainer, 'missing containerID');
  if (id.length > MAX_ID_LEN || !ID_RE.test(id)) {
    throw new CniError(ErrCode.InvalidEnvironmentVariables, `invalid characters in containerID`, id.length > 64 ? id.slice(0, 64) + '…' : id);
  }
}

export function validateIfName(name: string): void {
  let why = '';
  if (name === '') why = 'interface name is empty';
  else if (name.length > 15) why = 'interface name is too long';
  else if (name === '.' || name === '..') why = 'interface name is . or ..';
  else if (/[\/:\s]/.test(name)) why = 'interface name contains / or : or whitespace characters';
  if (why) throw new CniError(ErrCode.InvalidEnvironmentVariables, why, name.slice(0, 64));
}

export function validateNetworkName(name: unknown): string {
  if (typeof name !== 'string' || name === '') throw new CniError(ErrCode.InvalidNetworkConfig, 'missing network name');
  if (name.length > MAX_ID_LEN || !ID_RE.test(name)) {
    throw new CniError(ErrCode.InvalidNetworkConfig, 'invalid characters found in network name', name.slice(0, 64));
  }
  return name;
}
