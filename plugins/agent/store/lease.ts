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
 * implements (flannel's subnet.Manager): leases, their events, acquiring
 * ours, and what the store holds besides (network config, stored public
 * IPs); acquire.ts is flanneld's tryAcquireLease over it. An
 * IPv6-only lease has flannel's empty IPv4 subnet (0.0.0.0/0, PublicIP
 * "0.0.0.0"): key `0.0.0.0-0&fc00:0:0:1::-64`.
 */
import { type Prefix, bigIntToIp, formatPrefix, isEmptyPrefix, subnetKey, toAddr } from '../../pkg/ip';
import { type NetConfig } from '../config';

export const SUBNET_TTL_MS = 24 * 3600 * 1000;

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
  if (typeof pub !== 'string' || toAddr(pub).v6) throw new Error(`lease PublicIP is not an IPv4 address: ${JSON.stringify(pub)}`);
  const pub6 = pick(r, 'PublicIPv6') ?? null;
  if (pub6 !== null && (typeof pub6 !== 'string' || !toAddr(pub6).v6)) throw new Error(`lease PublicIPv6 is not an IPv6 address: ${JSON.stringify(pub6)}`);
  const bt = pick(r, 'BackendType') ?? '';
  if (typeof bt !== 'string') throw new Error('lease BackendType is not a string');
  const a: LeaseAttrs = { publicIP: bigIntToIp(toAddr(pub).n, false), publicIPv6: pub6 === null ? null : bigIntToIp(toAddr(pub6).n, true), backendType: bt };
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

/** "10.244.1.0/24 + fc00:0:0:1::/64" (an IPv6-only lease's empty IPv4 part not shown) */
export const leaseSubnets = (l: { subnet: Prefix; ipv6Subnet?: Prefix }): string =>
  [isEmptyPrefix(l.subnet) ? '' : formatPrefix(l.subnet), l.ipv6Subnet && !isEmptyPrefix(l.ipv6Subnet) ? formatPrefix(l.ipv6Subnet) : ''].filter(Boolean).join(' + ');

export interface LeaseEvent {
  type: 'added' | 'removed';
  lease: Lease;
  /** on an 'added' that replaces a known peer's lease (its attributes changed): the lease it replaces */
  old?: Lease;
}

/** A lease key whose value could not be parsed: `where` names it (file path, etcd key, Node), `why` says what is wrong. */
export interface UnreadableLease {
  subnet: Prefix;
  ipv6Subnet?: Prefix;
  where: string;
  why: string;
}

/** What a store's watch reports: lease events, and keys whose new value cannot be read (no removal). */
export type StoreEvent = LeaseEvent | ({ type: 'unreadable' } & UnreadableLease);

/** A store's listing: the leases it could read, and the keys it could not (left out of the array). */
export type LeaseListing = Lease[] & { unreadable?: UnreadableLease[] };

/** A listing with its unreadable keys attached. */
export function listing(leases: Lease[], unreadable: readonly UnreadableLease[]): LeaseListing {
  const l: LeaseListing = leases;
  if (unreadable.length) l.unreadable = [...unreadable];
  return l;
}

/** What acquire() takes besides the attributes: the network config, the previous subnets, randomness, a log. */
export interface AcquireHints {
  config: NetConfig;
  /** the subnets of a previous subnet.env (FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET), if any */
  prevSubnet?: Prefix;
  prevIPv6Subnet?: Prefix;
  /** random integer in [0, n) */
  randInt: (n: number) => number;
  log?: (msg: string) => void;
}

/**
 * What a subnet registry offers the agent (flannel's subnet.Manager).
 * Implementations: the file, etcd and kube stores (file.ts, etcd.ts,
 * kube.ts); the tests' FakeLeaseStore.
 */
export interface LeaseStore {
  /** Every lease that has not expired; the keys whose value cannot be parsed in `unreadable` (not in the array). */
  list(): Promise<LeaseListing>;
  /** Creates the key only if absent (or expired); LeaseExistsError otherwise. ttlMs 0 = reservation. Returns the expiration. */
  create(sn: Prefix, sn6: Prefix | undefined, attrs: LeaseAttrs, ttlMs: number): Promise<number | null>;
  /** Writes the key whether or not it exists (renewal, attribute change). Returns the expiration. */
  update(sn: Prefix, sn6: Prefix | undefined, attrs: LeaseAttrs, ttlMs: number): Promise<number | null>;
  delete(sn: Prefix, sn6: Prefix | undefined): Promise<void>;
  /**
   * Our lease (AcquireLease): the file and etcd stores choose a subnet and
   * create its key (acquireLease); the kube store takes our Node's pod CIDRs.
   */
  acquire(attrs: LeaseAttrs, hints: AcquireHints): Promise<Lease>;
  /**
   * Calls onChange whenever leases may have changed: with the events when the
   * store knows them (added = created, renewed or changed; removed = deleted
   * or expired; unreadable = a value that cannot be parsed, no removal; the
   * agent applies them to the peers it knows), without (re-list) when not.
   */
  watch(onChange: (events?: StoreEvent[]) => void): { close(): void };
  close(): void;
  /**
   * The network config the store holds (GetNetworkConfig), read when it was
   * opened: etcd's `<prefix>/config` (text null when the key is absent),
   * taken when the config file is absent. Undefined: the store holds none.
   */
  readonly netConfig?: { where: string; text: string | null };
  /** The network config, once read: the families whose subnets make a lease (kube). */
  useConfig?(config: NetConfig): void;
  /** The public IPs stored for this node (GetStoredPublicIP; kube: node-public-ip(v6) annotations, '' when unset): they win over the flags. */
  storedPublicIPs?(): Promise<{ publicIp: string; publicIpv6: string }>;
}

export interface Clock {
  now(): number;
  /** Calls fn every `ms` milliseconds until the returned stop(), keeping no process alive (default: an unref'd setInterval). */
  every?(ms: number, fn: () => void): () => void;
}

/** An unref'd setInterval: a clock's every() when it has none. */
export function every(ms: number, fn: () => void): () => void {
  const timer = setInterval(fn, ms);
  timer.unref();
  return () => clearInterval(timer);
}
export const systemClock: Clock = { now: () => Date.now(), every };

/** Milliseconds until the lease must be renewed (renewMargin before expiry, never negative); null for a reservation. */
export function renewDelay(l: Lease, now: number, renewMarginMinutes: number): number | null {
  if (l.expiration === null) return null;
  return Math.max(0, l.expiration - renewMarginMinutes * 60_000 - now);
}
