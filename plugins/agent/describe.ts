/**
 * One-line descriptions of the networks, the external interface and a
 * lease for flaxd's log, whichever families are enabled (an IPv6-only
 * lease's empty IPv4 part is not shown).
 */
import { type NetConfig } from './config';
import { type ExternalInterface } from './iface';
import { type Prefix, formatPrefix as formatNet, isEmptyPrefix as isEmptyNet } from '../pkg/ip';

/** "10.244.1.0/24 + fc00:0:0:1::/64" */
export const leaseSubnets = (l: { subnet: Prefix; ipv6Subnet?: Prefix }): string =>
  [isEmptyNet(l.subnet) ? '' : formatNet(l.subnet), l.ipv6Subnet && !isEmptyNet(l.ipv6Subnet) ? formatNet(l.ipv6Subnet) : ''].filter(Boolean).join(' + ');

/** "network 10.244.0.0/16, subnet length /24; IPv6 network fc00::/48, subnet length /64" */
export function describeNetworks(c: NetConfig): string {
  const out: string[] = [];
  if (c.enableIPv4 && c.network) out.push(`network ${formatNet(c.network)}, subnet length /${c.subnetLen}`);
  if (c.enableIPv6 && c.ipv6Network) out.push(`IPv6 network ${formatNet(c.ipv6Network)}, subnet length /${c.ipv6SubnetLen}`);
  return out.join('; ');
}

/** "eth0 (192.168.77.11, public 192.168.77.11; fd77::11, public fd77::11; mtu 1500)" */
export function describeExt(e: ExternalInterface): string {
  const parts: string[] = [];
  if (e.ifaceAddr) parts.push(`${e.ifaceAddr}, public ${e.publicIP}`);
  if (e.ifaceV6Addr) parts.push(`${e.ifaceV6Addr}, public ${e.publicIPv6}`);
  return `${e.link.name} (${[...parts, `mtu ${e.link.mtu}`].join('; ')})`;
}
