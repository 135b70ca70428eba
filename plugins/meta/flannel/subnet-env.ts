/**
 * The agent's subnet file (`/run/flannel/subnet.env`, written by flaxd or
 * flanneld) as the flannel CNI plugin reads it: KEY=VALUE lines; networks
 * may be comma-separated lists (flannel with several networks); subnets are
 * read as their network (10.244.1.1/24 → 10.244.1.0/24), as Go's
 * net.ParseCIDR does. Every missing or malformed key is an error naming it.
 */
import { readFileSync } from 'node:fs';
import { CniError, ErrCode, type ErrCodeValue } from '../../pkg/cni/errors';
import { type Prefix, formatPrefix, maskedPrefix, parsePrefix } from '../../pkg/ip';

export interface SubnetEnv {
  networks: string[];
  subnet?: string;
  ip6Networks: string[];
  ip6Subnet?: string;
  mtu: number;
  ipmasq: boolean;
}

/** A subnet.env problem; `code` differs for ADD (11: try again) and STATUS (50). */
export class SubnetEnvError extends CniError {}

function cidrNet(key: string, value: string, v6: boolean, file: string, code: ErrCodeValue): string {
  let n: Prefix;
  try {
    n = parsePrefix(value.trim());
  } catch {
    throw new SubnetEnvError(code, `${file}: ${key} is not a CIDR: "${value.slice(0, 64)}"`);
  }
  if (n.v6 !== v6) throw new SubnetEnvError(code, `${file}: ${key} must be an IPv${v6 ? 6 : 4} CIDR, got "${value.slice(0, 64)}"`);
  return formatPrefix(maskedPrefix(n));
}

/** Parses subnet.env text. `code` is the error code for every problem. */
export function parseSubnetEnv(text: string, file: string, code: ErrCodeValue = ErrCode.InvalidNetworkConfig): SubnetEnv {
  const seen: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const l = line.replace(/\r$/, '');
    const eq = l.indexOf('=');
    if (eq <= 0) continue;
    seen[l.slice(0, eq)] = l.slice(eq + 1);
  }
  const list = (key: string, v6: boolean) =>
    seen[key] === undefined ? [] : seen[key].split(',').filter((x) => x.trim() !== '').map((x) => cidrNet(key, x, v6, file, code));
  const env: SubnetEnv = {
    networks: list('FLANNEL_NETWORK', false),
    ip6Networks: list('FLANNEL_IPV6_NETWORK', true),
    mtu: 0,
    ipmasq: false,
  };
  if (seen.FLANNEL_SUBNET !== undefined) env.subnet = cidrNet('FLANNEL_SUBNET', seen.FLANNEL_SUBNET, false, file, code);
  if (seen.FLANNEL_IPV6_SUBNET !== undefined) env.ip6Subnet = cidrNet('FLANNEL_IPV6_SUBNET', seen.FLANNEL_IPV6_SUBNET, true, file, code);
  const missing: string[] = [];
  if (!env.networks.length && !env.ip6Networks.length) missing.push('FLANNEL_NETWORK', 'FLANNEL_IPV6_NETWORK');
  if (!env.subnet && !env.ip6Subnet) missing.push('FLANNEL_SUBNET', 'FLANNEL_IPV6_SUBNET');
  if (seen.FLANNEL_MTU === undefined) missing.push('FLANNEL_MTU');
  if (seen.FLANNEL_IPMASQ === undefined) missing.push('FLANNEL_IPMASQ');
  if (missing.length) throw new SubnetEnvError(code, `${file} is missing ${missing.join(', ')}`);
  if (!/^\d{1,10}$/.test(seen.FLANNEL_MTU) || Number(seen.FLANNEL_MTU) > 0xffffffff) {
    throw new SubnetEnvError(code, `${file}: FLANNEL_MTU is not a number: "${seen.FLANNEL_MTU.slice(0, 32)}"`);
  }
  env.mtu = Number(seen.FLANNEL_MTU);
  if (seen.FLANNEL_IPMASQ !== 'true' && seen.FLANNEL_IPMASQ !== 'false') {
    throw new SubnetEnvError(code, `${file}: FLANNEL_IPMASQ must be true or false, got "${seen.FLANNEL_IPMASQ.slice(0, 32)}"`);
  }
  env.ipmasq = seen.FLANNEL_IPMASQ === 'true';
  return env;
}

/**
 * Reads and parses the subnet file. A missing file means the agent has not
 * written it yet: `missingCode` (11 "try again later" for ADD, 50 for STATUS).
 */
export function loadSubnetEnv(file: string, missingCode: ErrCodeValue, code: ErrCodeValue = ErrCode.InvalidNetworkConfig): SubnetEnv {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    if (c === 'ENOENT') {
      throw new SubnetEnvError(missingCode, `subnet file ${file} does not exist: the flannel agent (flaxd or flanneld) has not written it yet`);
    }
    throw new SubnetEnvError(ErrCode.IOFailure, `cannot read subnet file ${file}: ${(e as Error).message}`);
  }
  return parseSubnetEnv(text, file, code);
}
