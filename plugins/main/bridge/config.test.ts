import { describe, expect, it } from 'vitest';
import { CniError } from '../../pkg/cni/errors';
import { loadBridgeConf, parseVlanTrunk, validateMac } from './config';

const base = { cniVersion: '1.0.0', name: 'net1', type: 'bridge' };
const load = (o: object, args = '') => loadBridgeConf(JSON.stringify({ ...base, ...o }), args);
const err = (f: () => unknown): CniError => {
  try {
    f();
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error('did not throw');
};

describe('loadBridgeConf', () => {
  it('defaults like the reference', () => {
    const c = load({});
    expect(c).toMatchObject({
      brName: 'cni0', isGW: false, isDefaultGW: false, ipMasq: false, isLayer3: false, vlan: 0, vlans: [],
      preserveDefaultVlan: true, hairpinMode: false, promiscMode: false, enableDad: false, mac: undefined, dns: undefined,
    });
    expect(load({ ipam: {} }).isLayer3).toBe(false);
    expect(load({ ipam: { type: 'host-local' } }).isLayer3).toBe(true);
  });
  it('iptablesTombstone: off unless set to true', () => {
    expect(load({}).iptablesTombstone).toBe(false);
    expect(load({ iptablesTombstone: true }).iptablesTombstone).toBe(true);
    expect(load({ iptablesTombstone: false }).iptablesTombstone).toBe(false);
  });
  it('isDefaultGateway implies isGateway', () => {
    expect(load({ isDefaultGateway: true })).toMatchObject({ isGW: true, isDefaultGW: true });
  });
  it('MAC precedence: CNI_ARGS < args.cni.mac < runtimeConfig.mac', () => {
    const env = 'IgnoreUnknown=1;MAC=02:00:00:00:00:01';
    expect(load({}, env).mac).toBe('02:00:00:00:00:01');
    expect(load({ args: { cni: { mac: '02:00:00:00:00:02' } } }, env).mac).toBe('02:00:00:00:00:02');
    expect(load({ args: { cni: { mac: '02:00:00:00:00:02' } }, runtimeConfig: { mac: '02:00:00:00:00:03' } }, env).mac).toBe('02:00:00:00:00:03');
    expect(load({ runtimeConfig: { mac: '02:AA:00:00:00:03' } }).mac).toBe('02:aa:00:00:00:03');
  });
  it('rejects the reference conflicts with code 7', () => {
    const cases: [object, RegExp][] = [
      [{ vlan: -1 }, /invalid VLAN ID -1/],
      [{ vlan: 4095 }, /invalid VLAN ID 4095/],
      [{ vlan: 10, vlanTrunk: [{ id: 20 }] }, /cannot set vlan and vlanTrunk/],
      [{ ipam: { type: 'host-local' }, disableContainerInterface: true }, /cannot use IPAM when DisableContainerInterface/],
      [{ hairpinMode: true, promiscMode: true }, /cannot set hairpin mode and promiscuous mode/],
      [{ runtimeConfig: { mac: 'zz' } }, /invalid MAC address "zz" in runtimeConfig.mac/],
      [{ args: { cni: { mac: '01:00:00:00:00:01' } } }, /multicast/],
      [{ bridge: 'a-very-long-bridge-name' }, /invalid bridge name/],
      [{ bridge: '../x' }, /invalid bridge name/],
      [{ mtu: -5 }, /mtu/],
      [{ ipMasqBackend: 'pf' }, /ipMasqBackend/],
      [{ hairpinMode: 'yes' }, /hairpinMode/],
      [{ iptablesTombstone: 'yes' }, /iptablesTombstone/],
      [{ iptablesTombstone: 1 }, /iptablesTombstone/],
    ];
    for (const [o, re] of cases) {
      const e = err(() => load(o));
      expect(e.code, JSON.stringify(o)).toBe(7);
      expect(e.message).toMatch(re);
    }
    expect(err(() => load({}, 'MAC=zz')).code).toBe(7);
    expect(err(() => load({}, 'FOO=1')).code).toBe(4);
    expect(err(() => loadBridgeConf('{', '')).code).toBe(6);
    expect(err(() => load({ cniVersion: '7.0.0' })).code).toBe(1);
  });
  it('dns is taken only when something is set', () => {
    expect(load({ dns: {} }).dns).toBeUndefined();
    expect(load({ dns: { nameservers: ['1.1.1.1'] } }).dns).toEqual({ nameservers: ['1.1.1.1'] });
  });
});

describe('parseVlanTrunk', () => {
  it('expands ranges and ids, dedups and sorts', () => {
    expect(parseVlanTrunk([{ minID: 10, maxID: 12 }, { id: 5 }, { id: 11 }])).toEqual([5, 10, 11, 12]);
  });
  it('rejects what the reference rejects', () => {
    expect(() => parseVlanTrunk([{ minID: 0, maxID: 3 }])).toThrow(/incorrect trunk minID/);
    expect(() => parseVlanTrunk([{ minID: 1, maxID: 5000 }])).toThrow(/incorrect trunk maxID/);
    expect(() => parseVlanTrunk([{ minID: 9, maxID: 3 }])).toThrow(/minID is greater than maxID/);
    expect(() => parseVlanTrunk([{ maxID: 3 }])).toThrow(/minID is missing/);
    expect(() => parseVlanTrunk([{ minID: 3 }])).toThrow(/maxID is missing/);
    expect(() => parseVlanTrunk([{ id: 4095 }])).toThrow(/incorrect trunk id/);
  });
  it('validateMac', () => {
    expect(validateMac('0A:58:0A:01:01:05', 'x')).toBe('0a:58:0a:01:01:05');
    expect(() => validateMac('0a:58:0a:01:01', 'x')).toThrow(/invalid MAC/);
  });
});
