/**
 * flanneld's AcquireLease (tryAcquireLease) over a store's keys: what the
 * file and etcd stores' acquire() run. The kube store's leases are Nodes:
 * it has its own (kube.ts).
 */
import { type Prefix, EMPTY_V4, formatPrefix, isEmptyPrefix, prefixEqual, prefixesOverlap } from '../../pkg/ip';
import { type NetConfig } from '../config';
import { freeSubnets } from './alloc';
import { type AcquireHints, type Lease, type LeaseAttrs, LeaseExistsError, type LeaseStore, leaseKey, leaseSubnets, SUBNET_TTL_MS } from './lease';

export const RACE_RETRIES = 10;

export interface AcquireContext extends AcquireHints {
  store: LeaseStore;
}

/** flannel isSubnetConfigCompat: inside [SubnetMin, SubnetMax] with SubnetLen (IPv6-only: the empty IPv4 part). */
export const isSubnetCompat = (c: NetConfig, sn: Prefix): boolean => (!c.enableIPv4
  ? isEmptyPrefix(sn)
  : !sn.v6 && sn.ip >= c.subnetMin && sn.ip <= c.subnetMax && sn.prefixLen === c.subnetLen);

/** flannel isIPv6SubnetConfigCompat: without IPv6 there must be no IPv6 part; with it, inside [IPv6SubnetMin, IPv6SubnetMax] with IPv6SubnetLen. */
export const isIPv6SubnetCompat = (c: NetConfig, sn6: Prefix | undefined): boolean => (!c.enableIPv6
  ? isEmptyPrefix(sn6)
  : !!sn6 && sn6.v6 && !isEmptyPrefix(sn6) && sn6.ip >= c.ipv6SubnetMin && sn6.ip <= c.ipv6SubnetMax && sn6.prefixLen === c.ipv6SubnetLen);

/**
 * Our lease in a listing: the one carrying our PublicIP (flanneld's
 * findLeaseByIP), or in an IPv6-only network our PublicIPv6.
 */
export function findOwnLease(leases: readonly Lease[], config: Pick<NetConfig, 'enableIPv4'>, attrs: Pick<LeaseAttrs, 'publicIP' | 'publicIPv6'>): Lease | undefined {
  return config.enableIPv4 ? leases.find((l) => l.attrs.publicIP === attrs.publicIP)
    : leases.find((l) => attrs.publicIPv6 !== null && l.attrs.publicIPv6 === attrs.publicIPv6);
}

const describeLease = (sn: Prefix, sn6: Prefix | undefined): string => leaseSubnets({ subnet: sn, ipv6Subnet: sn6 });

/**
 * The subnet of each enabled family: the previous one (subnet.env's, or the
 * one our deleted lease held) when it is free and fits, else a random one of
 * the first 100 free (flannel allocateSubnet). Per family, so that enabling
 * IPv6 on a running node keeps its IPv4 subnet (flanneld reuses a previous
 * subnet only when both families fit, and so moves the node's pods' IPv4
 * subnet: "already has an IP address different from").
 */
function choose(ctx: AcquireContext, leases: readonly Lease[], prev: { sn?: Prefix; sn6?: Prefix }): { sn: Prefix; sn6?: Prefix; reused: string[] } {
  const { config } = ctx;
  const reused: string[] = [];
  let sn: Prefix = EMPTY_V4;
  let sn6: Prefix | undefined;
  if (config.enableIPv4) {
    const p = prev.sn;
    if (p && isSubnetCompat(config, p) && !leases.some((l) => prefixEqual(l.subnet, p))) {
      sn = p;
      reused.push(formatPrefix(p));
    } else {
      const free = freeSubnets(config, leases, 100);
      if (!free.length) throw new Error('out of subnets');
      sn = free[ctx.randInt(free.length)];
    }
  }
  if (config.enableIPv6) {
    const p = prev.sn6;
    if (p && isIPv6SubnetCompat(config, p) && !leases.some((l) => l.ipv6Subnet && prefixEqual(l.ipv6Subnet, p))) {
      sn6 = p;
      reused.push(formatPrefix(p));
    } else {
      const free6 = freeSubnets(config, leases, 100, true);
      if (!free6.length) throw new Error('out of IPv6 subnets');
      sn6 = free6[ctx.randInt(free6.length)];
    }
  }
  return { sn, sn6, reused };
}

/**
 * Dual-stack only: a lease made meanwhile by another node that shares one of
 * our two subnets under another key (`A&B` vs `A&C`: the key's
 * create-if-absent cannot see it, flanneld has this race). Whoever lists
 * after both creates sees it and gives way, so one of two racers always does.
 */
async function clashing(store: LeaseStore, sn: Prefix, sn6: Prefix): Promise<Lease | undefined> {
  const key = leaseKey({ subnet: sn, ipv6Subnet: sn6 });
  return (await store.list()).find((l) => leaseKey(l) !== key &&
    ((!isEmptyPrefix(l.subnet) && prefixesOverlap(l.subnet, sn)) || (!!l.ipv6Subnet && !isEmptyPrefix(l.ipv6Subnet) && prefixesOverlap(l.ipv6Subnet, sn6))));
}

/**
 * flanneld's AcquireLease, both families: reuse the lease carrying our
 * PublicIP (PublicIPv6 when IPv6-only; a reservation stays a reservation,
 * an incompatible one is deleted), else for each enabled family the previous
 * subnet (subnet.env's, else our deleted lease's) if free and compatible,
 * else a random one of the first 100 free; created only if absent, retried on a lost race
 * (dual-stack: also when another node took one of the two subnets meanwhile).
 */
export async function acquireLease(ctx: AcquireContext, attrs: LeaseAttrs): Promise<Lease> {
  const { store, config } = ctx;
  const log = ctx.log ?? (() => {});
  const who = config.enableIPv4 ? `public IP ${attrs.publicIP}` : `public IPv6 ${attrs.publicIPv6}`;
  const done = (sn: Prefix, sn6: Prefix | undefined, expiration: number | null): Lease => (sn6 ? { subnet: sn, ipv6Subnet: sn6, attrs, expiration } : { subnet: sn, attrs, expiration });
  for (let i = 0; i < RACE_RETRIES; i++) {
    const leases = await store.list();
    const mine = findOwnLease(leases, config, attrs);
    if (mine) {
      if (isSubnetCompat(config, mine.subnet) && isIPv6SubnetCompat(config, mine.ipv6Subnet)) {
        const ttl = mine.expiration === null ? 0 : SUBNET_TTL_MS;
        const exp = await store.update(mine.subnet, mine.ipv6Subnet, attrs, ttl);
        log(`found lease ${describeLease(mine.subnet, mine.ipv6Subnet)} for our ${who}, reusing${ttl ? '' : ' (reservation)'}`);
        return done(mine.subnet, mine.ipv6Subnet, exp);
      }
      log(`lease ${describeLease(mine.subnet, mine.ipv6Subnet)} for our ${who} does not fit the network config, deleting it`);
      await store.delete(mine.subnet, mine.ipv6Subnet);
    }
    const others = leases.filter((l) => l !== mine);
    const { sn, sn6, reused } = choose(ctx, others, {
      sn: ctx.prevSubnet ?? (mine && !isEmptyPrefix(mine.subnet) ? mine.subnet : undefined),
      sn6: ctx.prevIPv6Subnet ?? mine?.ipv6Subnet,
    });
    if (reused.length) log(`reusing previously leased subnet ${reused.join(' + ')} (from the subnet file or our old lease)`);
    try {
      const exp = await store.create(sn, sn6, attrs, SUBNET_TTL_MS);
      const clash = sn6 && config.enableIPv4 ? await clashing(store, sn, sn6) : undefined;
      if (clash) {
        log(`subnet ${describeLease(sn, sn6)} overlaps the lease ${describeLease(clash.subnet, clash.ipv6Subnet)} of ${clash.attrs.publicIP} made meanwhile; giving it up, retrying`);
        await store.delete(sn, sn6);
        continue;
      }
      log(`allocated lease ${describeLease(sn, sn6)} for ${who}`);
      return done(sn, sn6, exp);
    } catch (e) {
      if (!(e instanceof LeaseExistsError)) throw e;
      log(`subnet ${describeLease(sn, sn6)} was taken concurrently, retrying`);
    }
  }
  throw new Error('max retries reached trying to acquire a subnet');
}

