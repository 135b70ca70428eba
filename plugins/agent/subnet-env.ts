/**
 * The subnet file (/run/flannel/subnet.env) as flanneld writes it
 * (flannel pkg/subnet WriteSubnetFile): FLANNEL_NETWORK, FLANNEL_SUBNET
 * (first address of our subnet, with its prefix), the IPv6 pair when IPv6
 * is enabled, FLANNEL_MTU, FLANNEL_IPMASQ — in that order, mode 0644,
 * replaced by an atomic rename. Also reads the previous file's subnet, which
 * a restarted agent tries to keep.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic as writeAtomic } from '../pkg/atomic';
import { type NetConfig } from './config';
import { type Prefix, bigIntToIp, formatPrefix, parseNetwork } from '../pkg/ip';

const firstAddr = (n: Prefix): string => `${bigIntToIp(n.ip + 1n, n.v6)}/${n.prefixLen}`;

export function renderSubnetEnv(config: NetConfig, ipMasq: boolean, sn: Prefix | undefined, sn6: Prefix | undefined, mtu: number): string {
  let s = '';
  if (config.enableIPv4 && config.network && sn) s += `FLANNEL_NETWORK=${formatPrefix(config.network)}\nFLANNEL_SUBNET=${firstAddr(sn)}\n`;
  if (config.enableIPv6 && config.ipv6Network && sn6) s += `FLANNEL_IPV6_NETWORK=${formatPrefix(config.ipv6Network)}\nFLANNEL_IPV6_SUBNET=${firstAddr(sn6)}\n`;
  return s + `FLANNEL_MTU=${mtu}\nFLANNEL_IPMASQ=${ipMasq}\n`;
}

/**
 * Writes `content` to `file` atomically: a temporary file in the same
 * directory (created 0644 whatever the umask, fsynced), renamed over the
 * target, then the directory fsynced. The directory is created (0755) if needed.
 */
export function writeFileAtomic(file: string, content: string, mode = 0o644): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  writeAtomic(file, content, mode);
}

/**
 * A CIDR key of an existing subnet file, as its network (FLANNEL_SUBNET
 * 10.244.1.1/24 → 10.244.1.0/24), like flanneld's ReadCIDRFromSubnetFile;
 * undefined when the file, the key or a valid value is missing.
 */
export function readSubnetFileCidr(file: string, key: string): Prefix | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const line = text.split('\n').find((l) => l.startsWith(`${key}=`));
  if (!line) return undefined;
  try {
    return parseNetwork(line.slice(key.length + 1).split(',')[0].trim());
  } catch {
    return undefined;
  }
}
