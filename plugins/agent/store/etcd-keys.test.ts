import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanPath, configKey, createIfAbsentTxn, leaseEtcdKey, leasesRange, parseLeaseKv, prefixRangeEnd, subnetsDir, toLease, ttlSeconds } from './etcd-keys';
import { type LeaseAttrs, vxlanBackendData } from './lease';
import { formatPrefix, parseNetwork } from '../../pkg/ip';

const attrs: LeaseAttrs = { publicIP: '192.168.64.3', publicIPv6: null, backendType: 'vxlan', backendData: vxlanBackendData({ vni: 1, vtepMAC: 'c6:d2:32:6f:8f:44' }) };
const VALUE = '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';

/** etcd3's own proto-loader and protos: how grpc puts a TxnRequest on the wire, and reads it back. */
function txnWire() {
  const req = createRequire(createRequire(import.meta.url).resolve('etcd3'));
  const loader = req('@grpc/proto-loader') as typeof import('@grpc/proto-loader');
  const def = loader.loadSync(path.join(path.dirname(req.resolve('etcd3')), '../proto/rpc.proto'), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const txn = (def['etcdserverpb.KV'] as Record<string, { requestSerialize(o: unknown): Buffer; requestDeserialize(b: Buffer): any }>).Txn;
  return (o: unknown) => txn.requestDeserialize(txn.requestSerialize(o));
}

describe('etcd keys', () => {
  it("joins the prefix as flanneld's path.Join does", () => {
    expect(configKey('/coreos.com/network')).toBe('/coreos.com/network/config');
    expect(configKey('/coreos.com/network/')).toBe('/coreos.com/network/config');
    expect(subnetsDir('//flax//net/')).toBe('/flax/net/subnets/');
    expect(leaseEtcdKey('/coreos.com/network', parseNetwork('10.244.1.0/24'))).toBe('/coreos.com/network/subnets/10.244.1.0-24');
    expect(leaseEtcdKey('/coreos.com/network', parseNetwork('10.244.1.0/24'), parseNetwork('fc00::/64'))).toBe('/coreos.com/network/subnets/10.244.1.0-24&fc00::-64');
    expect(cleanPath('a/./b/../c')).toBe('a/c');
    expect(cleanPath('/../x')).toBe('/x');
  });

  it("ranges over exactly the keys under <prefix>/subnets/ (etcd's GetPrefixRangeEnd)", () => {
    const r = leasesRange('/coreos.com/network');
    expect(r.key.toString()).toBe('/coreos.com/network/subnets/');
    expect(r.range_end.toString()).toBe('/coreos.com/network/subnets0');
    expect([...prefixRangeEnd(Buffer.from([0x61, 0xff, 0xff]))]).toEqual([0x62]);
    expect([...prefixRangeEnd(Buffer.from([0xff]))]).toEqual([0]);
  });

  it('TTL: whole seconds, at least one; 0 = a reservation', () => {
    expect(ttlSeconds(24 * 3600_000)).toBe(86400);
    expect(ttlSeconds(1)).toBe(1);
    expect(ttlSeconds(0)).toBe(0);
  });
});

describe('create-if-absent transaction', () => {
  const wire = txnWire();

  it('compares Version(key) == 0 and puts the value bytes on the granted lease, as it reaches etcd', () => {
    const key = '/coreos.com/network/subnets/10.244.1.0-24';
    const t = wire(createIfAbsentTxn(key, attrs, '7587858434437385009'));
    expect(t.compare).toHaveLength(1);
    expect(t.compare[0]).toMatchObject({ target: 'Version', result: 'Equal', version: '0', target_union: 'version' });
    expect(t.compare[0].key.toString()).toBe(key);
    expect(t.success).toHaveLength(1);
    expect(t.success[0].request_put.key.toString()).toBe(key);
    expect(t.success[0].request_put.value.toString()).toBe(VALUE);
    expect(t.success[0].request_put.lease).toBe('7587858434437385009');
    expect(t.failure).toEqual([]);
  });

  it('a reservation is put on no lease', () => {
    const t = wire(createIfAbsentTxn('/p/subnets/10.244.9.0-24', attrs, '0'));
    expect(t.success[0].request_put.lease).toBe('0');
    expect(t.success[0].request_put.value.toString()).toBe(VALUE);
  });
});

describe('key/value → lease', () => {
  const kv = (key: string, value: string, lease = '42') => ({ key: Buffer.from(key), value: Buffer.from(value), lease });

  it("reads flanneld's value and key; the lease decides reservation", () => {
    const p = parseLeaseKv('/coreos.com/network', kv('/coreos.com/network/subnets/10.244.1.0-24', VALUE));
    expect(p.kind).toBe('lease');
    if (p.kind !== 'lease') return;
    expect(formatPrefix(p.subnet)).toBe('10.244.1.0/24');
    expect(p.attrs).toEqual(attrs);
    expect(p.reservation).toBe(false);
    expect(toLease(p, 1234)).toEqual({ subnet: p.subnet, attrs, expiration: 1234 });
    const r = parseLeaseKv('/coreos.com/network', kv('/coreos.com/network/subnets/10.244.2.0-24', VALUE, '0'));
    expect(r.kind === 'lease' && r.reservation && toLease(r, 99).expiration).toBeNull();
  });

  it('dual-stack keys keep their IPv6 subnet', () => {
    const p = parseLeaseKv('/n', kv('/n/subnets/10.244.1.0-24&fc00::-64', VALUE));
    expect(p.kind === 'lease' && p.ipv6Subnet && formatPrefix(p.ipv6Subnet)).toBe('fc00::/64');
  });

  it('skips, naming why, what is not a lease', () => {
    const why = (key: string, value = VALUE) => {
      const p = parseLeaseKv('/n', kv(key, value));
      return p.kind === 'skip' ? p.why : 'parsed';
    };
    expect(why('/n/subnets/not-a-subnet')).toContain('not a subnet key');
    expect(why('/other/subnets/10.244.1.0-24')).toContain('not under /n/subnets/');
  });

  it('a subnet key whose value cannot be parsed is bad (no removal), with its subnets and why', () => {
    const bad = (value: string) => {
      const p = parseLeaseKv('/n', kv('/n/subnets/10.244.1.0-24&fc00::-64', value));
      return p.kind === 'bad' ? [formatPrefix(p.subnet), p.ipv6Subnet && formatPrefix(p.ipv6Subnet), p.why] : p.kind;
    };
    expect(bad('{"PublicIP":"fc00::1"}')).toEqual(['10.244.1.0/24', 'fc00::/64', expect.stringContaining('PublicIP')]);
    expect(bad('{{{')).toEqual(['10.244.1.0/24', 'fc00::/64', expect.stringContaining('JSON')]);
    expect(bad('')).toEqual(['10.244.1.0/24', 'fc00::/64', 'empty value']);
  });
});
