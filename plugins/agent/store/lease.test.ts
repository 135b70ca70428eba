import { describe, expect, it } from 'vitest';
import { parseNetConfig } from '../config';
import { FakeLeaseStore } from '../../../test/lib/agent/fake-store';
import { type Lease, type LeaseAttrs, leaseKey, marshalLeaseAttrs, parseVxlanBackendData, renewDelay, SUBNET_TTL_MS, unmarshalLeaseAttrs, vxlanBackendData } from './lease';
import { acquireLease } from './acquire';
import { formatPrefix, parseNetwork } from '../../pkg/ip';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const clock = { t: T0, now() { return this.t; } };
const config = parseNetConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
const attrs = (ip: string, mac = 'c6:d2:32:6f:8f:44'): LeaseAttrs => ({ publicIP: ip, publicIPv6: null, backendType: 'vxlan', backendData: vxlanBackendData({ vni: 1, vtepMAC: mac }) });
const lease = (sn: string, ip: string, expiration: number | null = T0 + SUBNET_TTL_MS): Lease => ({ subnet: parseNetwork(sn), attrs: attrs(ip), expiration });

describe('lease values', () => {
  it("serialises LeaseAttrs byte for byte as flanneld's json.Marshal", () => {
    expect(marshalLeaseAttrs(attrs('192.168.64.3'))).toBe(
      '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}');
    expect(marshalLeaseAttrs({ publicIP: '10.0.0.1', publicIPv6: 'fc00::1', backendType: '' })).toBe('{"PublicIP":"10.0.0.1","PublicIPv6":"fc00::1"}');
  });

  it('reads what flanneld writes (any key case) and round-trips it', () => {
    const fromFlanneld = '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';
    expect(marshalLeaseAttrs(unmarshalLeaseAttrs(fromFlanneld))).toBe(fromFlanneld);
    const a = unmarshalLeaseAttrs('{"publicip":"10.1.1.1","backendtype":"host-gw"}');
    expect(a).toEqual({ publicIP: '10.1.1.1', publicIPv6: null, backendType: 'host-gw' });
    expect(() => unmarshalLeaseAttrs('{"PublicIP":"fc00::1"}')).toThrow(/PublicIP/);
    expect(() => unmarshalLeaseAttrs('[]')).toThrow(/object/);
    expect(parseVxlanBackendData({ VNI: 1, VtepMAC: 'C6-D2-32-6F-8F-44' })).toEqual({ vni: 1, vtepMAC: 'c6:d2:32:6f:8f:44' });
    expect(parseVxlanBackendData({ VNI: 1, VtepMAC: 'nope' })).toBeNull();
    expect(parseVxlanBackendData({ VtepMAC: 'c6:d2:32:6f:8f:44' })).toBeNull();
  });

  it('renews renewMargin before expiry, never for a reservation', () => {
    expect(renewDelay(lease('10.244.1.0/24', '1.1.1.1'), T0, 60)).toBe(23 * 3600 * 1000);
    expect(renewDelay(lease('10.244.1.0/24', '1.1.1.1'), T0 + SUBNET_TTL_MS, 60)).toBe(0);
    expect(renewDelay(lease('10.244.1.0/24', '1.1.1.1', null), T0, 60)).toBeNull();
  });
});

describe('acquireLease', () => {
  const pickFirst = () => 0;

  it('reuses the lease carrying our public IP, renewing its TTL', async () => {
    const s = new FakeLeaseStore(clock);
    s.put(lease('10.244.7.0/24', '192.168.1.2', T0 + 1000));
    s.put(lease('10.244.8.0/24', '192.168.1.3'));
    const l = await acquireLease({ store: s, config, randInt: pickFirst }, attrs('192.168.1.2', 'aa:aa:aa:aa:aa:aa'));
    expect(formatPrefix(l.subnet)).toBe('10.244.7.0/24');
    expect(l.expiration).toBe(T0 + SUBNET_TTL_MS);
    expect(s.calls).toContain(`update 10.244.7.0-24 ttl=${SUBNET_TTL_MS}`);
    expect(s.leases.get('10.244.7.0-24')!.attrs.backendData).toEqual({ VNI: 1, VtepMAC: 'aa:aa:aa:aa:aa:aa' });
  });

  it('keeps a reservation (no TTL) a reservation', async () => {
    const s = new FakeLeaseStore(clock);
    s.put(lease('10.244.9.0/24', '192.168.1.2', null));
    const l = await acquireLease({ store: s, config, randInt: pickFirst }, attrs('192.168.1.2'));
    expect([formatPrefix(l.subnet), l.expiration]).toEqual(['10.244.9.0/24', null]);
    expect(s.calls).toContain('update 10.244.9.0-24 ttl=0');
  });

  it('deletes our lease when it no longer fits the config and allocates anew', async () => {
    const s = new FakeLeaseStore(clock);
    s.put(lease('10.244.0.0/24', '192.168.1.2')); // below SubnetMin
    const l = await acquireLease({ store: s, config, randInt: pickFirst }, attrs('192.168.1.2'));
    expect(s.calls).toContain('delete 10.244.0.0-24');
    expect(formatPrefix(l.subnet)).toBe('10.244.1.0/24');
  });

  it("takes the old subnet.env's subnet when it is free and fits, else a random free one", async () => {
    const s = new FakeLeaseStore(clock);
    const l = await acquireLease({ store: s, config, prevSubnet: parseNetwork('10.244.42.0/24'), randInt: pickFirst }, attrs('192.168.1.2'));
    expect(formatPrefix(l.subnet)).toBe('10.244.42.0/24');

    const s2 = new FakeLeaseStore(clock);
    s2.put(lease('10.244.42.0/24', '192.168.1.9'));
    s2.put(lease('10.244.1.0/24', '192.168.1.8'));
    let offered = 0;
    const l2 = await acquireLease({ store: s2, config, prevSubnet: parseNetwork('10.244.42.0/24'), randInt: (n) => { offered = n; return 2; } }, attrs('192.168.1.2'));
    expect(offered).toBe(100); // the first 100 free subnets
    expect(formatPrefix(l2.subnet)).toBe('10.244.4.0/24'); // free: .2, .3, .4, … (index 2)
    expect(l2.expiration).toBe(T0 + SUBNET_TTL_MS);
  });

  it('ignores an expired lease of another node: its subnet is free again', async () => {
    const s = new FakeLeaseStore(clock);
    s.put(lease('10.244.1.0/24', '192.168.1.9', T0 - 1));
    const l = await acquireLease({ store: s, config, randInt: pickFirst }, attrs('192.168.1.2'));
    expect(formatPrefix(l.subnet)).toBe('10.244.1.0/24');
  });

  it('retries when another node creates the same subnet first', async () => {
    const s = new FakeLeaseStore(clock);
    let raced = false;
    s.beforeCreate = (sn) => {
      if (!raced) { raced = true; s.put({ subnet: sn, attrs: attrs('192.168.1.77'), expiration: T0 + SUBNET_TTL_MS }); }
    };
    const l = await acquireLease({ store: s, config, randInt: pickFirst }, attrs('192.168.1.2'));
    expect(formatPrefix(l.subnet)).toBe('10.244.2.0/24');
    expect(s.calls.filter((c) => c.startsWith('create'))).toEqual(['create 10.244.1.0-24', 'create 10.244.2.0-24']);
  });

  it('fails when the network is full', async () => {
    const small = parseNetConfig('{"Network":"10.9.0.0/28"}'); // /30 subnets: .4 .8 (.0 skipped, .12 max)
    const s = new FakeLeaseStore(clock);
    for (const sn of ['10.9.0.4/30', '10.9.0.8/30', '10.9.0.12/30']) s.put(lease(sn, `192.168.2.${sn.split('.')[3]}`));
    await expect(acquireLease({ store: s, config: small, randInt: pickFirst }, attrs('192.168.1.2'))).rejects.toThrow('out of subnets');
    expect(leaseKey(lease('10.9.0.4/30', 'x'))).toBe('10.9.0.4-30');
  });
});
