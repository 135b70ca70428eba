/**
 * The etcd v3 layout of flanneld's subnet registry (flannel
 * pkg/subnet/etcd/registry.go), as pure functions the etcd store uses and
 * the unit tests check without an etcd:
 *  - `<prefix>/config`: the network config JSON (etcd mode);
 *  - `<prefix>/subnets/10.244.1.0-24` (`…&fc00::-64` dual-stack): the value
 *    is marshalLeaseAttrs' bytes; attached to an etcd lease of TTL 24 h, or
 *    to none (lease 0) for a reservation;
 *  - create-if-absent = Txn(If Version(key) == 0, Then Put(key, value, lease)).
 * The prefix is joined as Go's path.Join does (`/coreos.com/network/` and
 * `/coreos.com/network` name the same keys).
 */
import type { ICompare, IKeyValue, IRequestOp, ITxnRequest } from 'etcd3';
import { type Lease, type LeaseAttrs, marshalLeaseAttrs, unmarshalLeaseAttrs } from './lease';
import { type Prefix, parseSubnetKey, subnetKey } from '../../pkg/ip';

/** Go's path.Clean for the absolute or relative key paths flanneld joins. */
export function cleanPath(p: string): string {
  const abs = p.startsWith('/');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length && out[out.length - 1] !== '..') out.pop();
      else if (!abs) out.push('..');
      continue;
    }
    out.push(part);
  }
  const s = (abs ? '/' : '') + out.join('/');
  return s === '' ? '.' : s;
}

export const configKey = (prefix: string): string => cleanPath(`${prefix}/config`);
/** The directory of the leases, with its trailing slash (what list and watch range over). */
export const subnetsDir = (prefix: string): string => `${cleanPath(`${prefix}/subnets`)}/`;
export const leaseEtcdKey = (prefix: string, sn: Prefix, sn6?: Prefix): string => cleanPath(`${prefix}/subnets/${subnetKey(sn, sn6)}`);

/** etcd's GetPrefixRangeEnd: the key just after every key starting with `prefix`. */
export function prefixRangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // every key
}

/** The range request over every lease under the prefix. */
export const leasesRange = (prefix: string): { key: Buffer; range_end: Buffer } => {
  const k = Buffer.from(subnetsDir(prefix));
  return { key: k, range_end: prefixRangeEnd(k) };
};

/** Put of a lease's value, attached to `leaseId` ('0' = none: a reservation). */
export function leasePut(key: string, attrs: LeaseAttrs, leaseId: string): IRequestOp {
  const put: NonNullable<IRequestOp['request_put']> = { key: Buffer.from(key), value: Buffer.from(marshalLeaseAttrs(attrs)) };
  if (leaseId !== '0') put.lease = leaseId;
  return { request_put: put };
}

/** flanneld's createSubnet transaction: put only while the key has never been written since its last delete. */
export function createIfAbsentTxn(key: string, attrs: LeaseAttrs, leaseId: string): ITxnRequest {
  const cond: ICompare = { key: Buffer.from(key), target: 'Version', result: 'Equal', version: 0 };
  return { compare: [cond], success: [leasePut(key, attrs, leaseId)], failure: [] };
}

/** etcd lease TTLs are whole seconds; a positive TTL below one second still gets one. */
export const ttlSeconds = (ttlMs: number): number => (ttlMs > 0 ? Math.max(1, Math.ceil(ttlMs / 1000)) : 0);

export type KvParse =
  | { kind: 'lease'; subnet: Prefix; ipv6Subnet?: Prefix; attrs: LeaseAttrs; reservation: boolean; leaseId: string }
  | { kind: 'skip'; why: string }
  /** a subnet key whose value cannot be parsed: no removal (the agent keeps the last good lease) */
  | { kind: 'bad'; subnet: Prefix; ipv6Subnet?: Prefix; why: string };

/**
 * Reads one key/value of the subnets directory. The expiration comes from the
 * etcd lease's remaining TTL (a separate request), so it is not part of this.
 */
export function parseLeaseKv(prefix: string, kv: Pick<IKeyValue, 'key' | 'value' | 'lease'>): KvParse {
  const key = kv.key.toString('utf8');
  const dir = subnetsDir(prefix);
  if (!key.startsWith(dir)) return { kind: 'skip', why: `${key} is not under ${dir}` };
  const name = key.slice(dir.length);
  const k = parseSubnetKey(name);
  if (!k || subnetKey(k.sn, k.sn6) !== name) return { kind: 'skip', why: `${key} is not a subnet key` };
  let attrs: LeaseAttrs;
  try {
    attrs = unmarshalLeaseAttrs(kv.value.toString('utf8'));
  } catch (e) {
    const bad: KvParse = { kind: 'bad', subnet: k.sn, why: kv.value.length ? (e as Error).message : 'empty value' };
    if (k.sn6) bad.ipv6Subnet = k.sn6;
    return bad;
  }
  const leaseId = String(kv.lease ?? '0');
  return { kind: 'lease', subnet: k.sn, ipv6Subnet: k.sn6, attrs, reservation: leaseId === '0', leaseId };
}

/** The Lease of a parsed key: expiration = now + the etcd lease's TTL; null for a reservation. */
export function toLease(p: Extract<KvParse, { kind: 'lease' }>, expiration: number | null): Lease {
  const l: Lease = { subnet: p.subnet, attrs: p.attrs, expiration: p.reservation ? null : expiration };
  if (p.ipv6Subnet) l.ipv6Subnet = p.ipv6Subnet;
  return l;
}
