import { formatPrefix } from '../../pkg/ip';
import { describe, expect, it } from 'vitest';
import { convertResult } from '../../pkg/cni/convert';
import { assembleResult, calcGateways } from './result';

describe('calcGateways', () => {
  const ips = [{ address: '10.1.1.5/24' }, { address: 'fd00:1::5/64', gateway: 'fd00:1::fe' }];
  it('fills gateways, points IPs at the container and collects bridge addresses', () => {
    const r = calcGateways(ips, [], { isGW: true, isDefaultGW: false });
    expect(r.ips).toEqual([
      { address: '10.1.1.5/24', gateway: '10.1.1.1', interface: 2 },
      { address: 'fd00:1::5/64', gateway: 'fd00:1::fe', interface: 2 },
    ]);
    expect(r.v4.gws.map(formatPrefix)).toEqual(['10.1.1.1/24']);
    expect(r.v6.gws.map(formatPrefix)).toEqual(['fd00:1::fe/64']);
    expect(r.routes).toEqual([]);
    expect(ips[0]).toEqual({ address: '10.1.1.5/24' }); // input untouched
  });
  it('adds one default route per family unless IPAM gave one with a gateway', () => {
    const r = calcGateways(ips, [{ dst: '0.0.0.0/0', gw: '10.1.1.254' }], { isGW: true, isDefaultGW: true });
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.1.1.254' }, { dst: '::/0', gw: 'fd00:1::fe' }]);
    const r2 = calcGateways([{ address: '10.1.1.5/24' }, { address: '10.1.1.6/24' }], [{ dst: '0.0.0.0/0' }], { isGW: true, isDefaultGW: true });
    expect(r2.routes).toEqual([{ dst: '0.0.0.0/0' }, { dst: '0.0.0.0/0', gw: '10.1.1.1' }]);
    expect(r2.v4.gws).toHaveLength(2);
  });
  it('without isGW leaves gateways alone and collects none', () => {
    const r = calcGateways([{ address: '10.1.1.5/24' }], [], { isGW: false, isDefaultGW: false });
    expect(r.ips).toEqual([{ address: '10.1.1.5/24', interface: 2 }]);
    expect(r.v4.gws).toEqual([]);
  });
});

describe('assembleResult', () => {
  const parts = {
    cniVersion: '1.1.0',
    bridge: { name: 'cni0', mac: '02:00:00:00:00:01', mtu: 1500 },
    hostVeth: { name: 'veth01234567', mac: '02:00:00:00:00:02', mtu: 1500 },
    container: { name: 'eth0', mac: '02:00:00:00:00:03', mtu: 1500, sandbox: '/run/netns/p' },
    ips: [{ address: '10.1.1.5/24', gateway: '10.1.1.1', interface: 2 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.1.1.1' }],
    ipamDns: { nameservers: ['10.0.0.10'] },
  };
  it('orders interfaces bridge, host veth, container; conf dns wins', () => {
    const r = assembleResult({ ...parts, confDns: { nameservers: ['1.1.1.1'] } });
    expect(r.interfaces!.map((i) => i.name)).toEqual(['cni0', 'veth01234567', 'eth0']);
    expect(r.dns).toEqual({ nameservers: ['1.1.1.1'] });
    expect(assembleResult(parts).dns).toEqual({ nameservers: ['10.0.0.10'] });
  });
  it('renders in every version', () => {
    const r = assembleResult(parts);
    expect(convertResult(r, '0.4.0')).toMatchObject({ ips: [{ version: '4', interface: 2, address: '10.1.1.5/24', gateway: '10.1.1.1' }] });
    expect((convertResult(r, '1.0.0').interfaces as object[])[0]).toEqual({ name: 'cni0', mac: '02:00:00:00:00:01' });
    expect((convertResult(r, '1.1.0').interfaces as object[])[2]).toEqual(parts.container);
    expect(convertResult(r, '0.2.0')).toEqual({ cniVersion: '0.2.0', ip4: { ip: '10.1.1.5/24', gateway: '10.1.1.1', routes: [{ dst: '0.0.0.0/0', gw: '10.1.1.1' }] }, dns: { nameservers: ['10.0.0.10'] } });
    // L2 only cannot be expressed before 0.3.0
    expect(() => convertResult(assembleResult({ ...parts, ips: [], routes: [] }), '0.1.0')).toThrow(/no valid IP/);
  });
});
