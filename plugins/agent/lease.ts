/**
 * Subnet leases as flanneld makes them (flannel pkg/lease, pkg/subnet/etcd):
 *  - key `<prefix>/subnets/10.244.1.0-24` (dual-stack `…&fc00::-64`);
 *  - value = Go's json.Marshal(LeaseAttrs), byte for byte:
 *    {"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:…"}}
 *    (PublicIPv6 always present, null when unset; BackendType, BackendData,
 *    BackendV6Data omitted when empty);
 *  - TTL 24 h, renewed `renewMargin` before expiry; a key without TTL is a
 *    reservation (never expires, never renewed).
 * The LeaseStore interface is what every store (file, etcd, kube)
 * implements; acquireLease is flanneld's tryAcquireLease over it. An
 * IPv6-only lease has flannel's empty IPv4 subnet (0.0.0.0/0, PublicIP
 * "0.0.0.0"): key `0.0.0.0-0&fc00:0:0:1::-64`.
 */
import { type Prefix, bigIntToIp as formatIp, EMPTY_V4, formatPrefix as formatNet, isEmptyPrefix as isEmptyNet, prefixEqual as netEqual, prefixesOverlap as netOverlaps, subnetKey, toAddr as parseIp } from '../pkg/ip';
import { type NetConfig } from './config';
import { freeSubnets } from './alloc';
import { leaseSubnets } from './describe';

export const SUBNET_TTL_MS = 24 * 3600 * 1000;
export const RACE_RETRIES = 10;

export interface LeaseAttrs {
  publicIP: string;
  publicIPv6: string | null;
  backendType: string;
  /** parsed JSON of BackendData (re-serialised compactly, as Go's RawMessage marshals) */
  backendData?: unknown;
  backendV6Data?: unknown;
}

export interface Lease {
  subnet: Prefix;
  ipv6Subnet?: Prefix;
  attrs: LeaseAttrs;
  /** ms since the epoch; null = a reservation (no TTL) */
  expiration: number | null;
}

export const leaseKey = (l: { subnet: Prefix; ipv6Subnet?: Prefix }): string => subnetKey(l.subnet, l.ipv6Subnet);

/** Go's json.Marshal(LeaseAttrs). */
export function marshalLeaseAttrs(a: LeaseAttrs): string {
  let s = `{"PublicIP":${JSON.stringify(a.publicIP)},"PublicIPv6":${a.publicIPv6 === null ? 'null' : JSON.stringify(a.publicIPv6)}`;
  if (a.backendType !== '') s += `,"BackendType":${JSON.stringify(a.backendType)}`;
  if (a.backendData !== undefined && a.backendData !== null) s += `,"BackendData":${JSON.stringify(a.backendData)}`;
  if (a.backendV6Data !== undefined && a.backendV6Data !== null) s += `,"BackendV6Data":${JSON.stringify(a.backendV6Data)}`;
  return s + '}';
}

function pick(o: Record<string, unknown>, name: string): unknown {
  if (name in o) return o[name];
  const k = Object.keys(o).find((x) => x.toLowerCase() === name.toLowerCase());
  return k === undefined ? undefined : o[k];
}

/** json.Unmarshal into LeaseAttrs (case-insensitive keys). Throws on a malformed value. */
export function unmarshalLeaseAttrs(text: string): LeaseAttrs {
  const o = JSON.parse(text) as unknown;
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new Error('lease value is not a JSON object');
  const r = o as Record<string, unknown>;
  const pub = pick(r, 'PublicIP') ?? '0.0.0.0';
  if (typeof pub !== 'string' || parseIp(pub).v6) throw new Error(`lease PublicIP is not an IPv4 address: ${JSON.stringify(pub)}`);
  const pub6 = pick(r, 'PublicIPv6') ?? null;
  if (pub6 !== null && (typeof pub6 !== 'string' || !parseIp(pub6).v6)) throw new Error(`lease PublicIPv6 is not an IPv6 address: ${JSON.stringify(pub6)}`);
  const bt = pick(r, 'BackendType') ?? '';
  if (typeof bt !== 'string') throw new Error('lease BackendType is not a string');
  const a: LeaseAttrs = { publicIP: formatIp(parseIp(pub).n, false), publicIPv6: pub6 === null ? null : formatIp(parseIp(pub6).n, true), backendType: bt };
  const bd = pick(r, 'BackendData');
  if (bd !== undefined && bd !== null) a.backendData = bd;
  const bd6 = pick(r, 'BackendV6Data');
  if (bd6 !== undefined && bd6 !== null) a.backendV6Data = bd6;
  return a;
}

/** The vxlan backend's BackendData: {"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}. */
export interface VxlanLeaseAttrs {
  vni: number;
  vtepMAC: string;
}
export const vxlanBackendData = (a: VxlanLeaseAttrs): unknown => ({ VNI: a.vni, VtepMAC: a.vtepMAC });

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
/** Reads a vxlan lease's BackendData; null when it is not one. */
export function parseVxlanBackendData(d: unknown): VxlanLeaseAttrs | null {
  if (d === null || typeof d !== 'object' || Array.isArray(d)) return null;
  const vni = pick(d as Record<string, unknown>, 'VNI');
  const mac = pick(d as Record<string, unknown>, 'VtepMAC');
  if (typeof vni !== 'number' || !Number.isInteger(vni) || typeof mac !== 'string') return null;
  const m = mac.toLowerCase().replace(/-/g, ':');
  return MAC.test(m) ? { vni, vtepMAC: m } : null;
}

export class LeaseExistsError extends Error {}

/** What a subnet registry offers the agent. Implementations: FileLeaseStore; FakeLeaseStore for tests. */
export interface LeaseStore {
  /** Every lease that has not expired; the keys whose value cannot be parsed in `unreadable` (not in the array). */
  list(): Promise<import('./watcher').LeaseListing>;
  /** Creates the key only if absent (or expired); LeaseExistsError otherwise. ttlMs 0 = reservation. Returns the expiration. */
  create(sn: Prefix, sn6: Prefix | undefined, attrs: LeaseAttrs, ttlMs: number): Promise<number | null>;
  /** Writes the key whether or not it exists (renewal, attribute change). Returns the expiration. */
  update(sn: Prefix, sn6: Prefix | undefined, attrs: LeaseAttrs, ttlMs: number): Promise<number | null>;
  delete(sn: Prefix, sn6: Prefix | undefined): Promise<void>;
  /**
   * Calls onChange whenever leases may have changed: with the events when the
   * store knows them (added = created, renewed or changed; removed = deleted
   * or expired; unreadable = a value that cannot be parsed, no removal; the
   * agent applies them to the peers it knows), without (re-list) when not.
   */
  watch(onChange: (events?: import('./watcher').StoreEvent[]) => void): { close(): void };
  close(): void;
}

export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

export interface AcquireContext {
  store: LeaseStore;
  config: NetConfig;
  /** the subnets of a previous subnet.env (FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET), if any */
  prevSubnet?: Prefix;
  prevIPv6Subnet?: Prefix;
  /** random integer in [0, n) */
  randInt: (n: number) => number;
  log?: (msg: string) => void;
}

/** flannel isSubnetConfigCompat: inside [SubnetMin, SubnetMax] with SubnetLen (IPv6-only: the empty IPv4 part). */
export const isSubnetCompat = (c: NetConfig, sn: Prefix): boolean => (!c.enableIPv4
  ? isEmptyNet(sn)
  : !sn.v6 && sn.ip >= c.subnetMin && sn.ip <= c.subnetMax && sn.prefixLen === c.subnetLen);

/** flannel isIPv6SubnetConfigCompat: without IPv6 there must be no IPv6 part; with it, inside [IPv6SubnetMin, IPv6SubnetMax] with IPv6SubnetLen. */
export const isIPv6SubnetCompat = (c: NetConfig, sn6: Prefix | undefined): boolean => (!c.enableIPv6
  ? isEmptyNet(sn6)
  : !!sn6 && sn6.v6 && !isEmptyNet(sn6) && sn6.ip >= c.ipv6SubnetMin && sn6.ip <= c.ipv6SubnetMax && sn6.prefixLen === c.ipv6SubnetLen);

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
    if (p && isSubnetCompat(config, p) && !leases.some((l) => netEqual(l.subnet, p))) {
      sn = p;
      reused.push(formatNet(p));
    } else {
      const free = freeSubnets(config, leases, 100);
      if (!free.length) throw new Error('out of subnets');
      sn = free[ctx.randInt(free.length)];
    }
  }
  if (config.enableIPv6) {
    const p = prev.sn6;
    if (p && isIPv6SubnetCompat(config, p) && !leases.some((l) => l.ipv6Subnet && netEqual(l.ipv6Subnet, p))) {
      sn6 = p;
      reused.push(formatNet(p));
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
    ((!isEmptyNet(l.subnet) && netOverlaps(l.subnet, sn)) || (!!l.ipv6Subnet && !isEmptyNet(l.ipv6Subnet) && netOverlaps(l.ipv6Subnet, sn6))));
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
      sn: ctx.prevSubnet ?? (mine && !isEmptyNet(mine.subnet) ? mine.subnet : undefined),
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

/** Milliseconds until the lease must be renewed (renewMargin before expiry, never negative); null for a reservation. */
export function renewDelay(l: Lease, now: number, renewMarginMinutes: number): number | null {
  if (l.expiration === null) return null;
  return Math.max(0, l.expiration - renewMarginMinutes * 60_000 - now);
}
