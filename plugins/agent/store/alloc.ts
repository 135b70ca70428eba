/**
 * Subnet choice (flannel LocalManager.allocateSubnet): walk [SubnetMin,
 * SubnetMax] (IPv4) or [IPv6SubnetMin, IPv6SubnetMax] (IPv6) in subnet-length
 * steps and keep the first `max` subnets that overlap no lease of that
 * family; the caller picks one at random. An IPv6-only lease's empty IPv4
 * part (0.0.0.0/0) overlaps nothing, and a lease without an IPv6 part is
 * ignored by the IPv6 walk.
 */
import { type NetConfig } from '../config';
import { type Prefix, isEmptyPrefix, nextPrefix, prefixesOverlap } from '../../pkg/ip';

export function freeSubnets(config: NetConfig, leases: ReadonlyArray<{ subnet: Prefix; ipv6Subnet?: Prefix }>, max = 100, v6 = false): Prefix[] {
  const taken = leases.map((l) => (v6 ? l.ipv6Subnet : l.subnet)).filter((n): n is Prefix => !!n && !isEmptyPrefix(n) && n.v6 === v6);
  const [min, last, len] = v6 ? [config.ipv6SubnetMin, config.ipv6SubnetMax, config.ipv6SubnetLen] : [config.subnetMin, config.subnetMax, config.subnetLen];
  const out: Prefix[] = [];
  for (let sn: Prefix = { v6, ip: min, prefixLen: len }; sn.ip <= last && out.length < max; sn = nextPrefix(sn)) {
    if (!taken.some((t) => prefixesOverlap(sn, t))) out.push(sn);
  }
  return out;
}
