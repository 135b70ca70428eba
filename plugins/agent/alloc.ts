/**
 * Subnet choice (flannel LocalManager.allocateSubnet, IPv4): walk
 * [SubnetMin, SubnetMax] in SubnetLen steps and keep the first `max`
 * subnets that overlap no lease; the caller picks one at random.
 */
import { type NetConfig } from './config';
import { type IPNet, netOverlaps, nextNet } from './subnet';

export function freeSubnets(config: NetConfig, leases: ReadonlyArray<{ subnet: IPNet }>, max = 100): IPNet[] {
  const out: IPNet[] = [];
  for (let sn: IPNet = { v6: false, ip: config.subnetMin, prefixLen: config.subnetLen }; sn.ip <= config.subnetMax && out.length < max; sn = nextNet(sn)) {
    if (!leases.some((l) => netOverlaps(sn, l.subnet))) out.push(sn);
  }
  return out;
}

