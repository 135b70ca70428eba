import { describe, expect, it } from 'vitest';
import { encodeBridgeVlan } from '../../pkg/netlink';
import { portVlanOps } from './vlan';

describe('portVlanOps', () => {
  it('access port: pvid + untagged, default VLAN kept', () => {
    expect(portVlanOps({ vlan: 100, vlans: [], preserveDefaultVlan: true })).toEqual([
      { op: 'add', vid: 100, opts: { pvid: true, untagged: true, master: true } },
    ]);
  });
  it('preserveDefaultVlan false removes VLAN 1 first', () => {
    expect(portVlanOps({ vlan: 100, vlans: [], preserveDefaultVlan: false })[0]).toEqual({ op: 'del', vid: 1, opts: { master: true } });
  });
  it('trunk: one tagged add per id', () => {
    expect(portVlanOps({ vlan: 0, vlans: [5, 10, 11], preserveDefaultVlan: true }).map((o) => `${o.op} ${o.vid} ${JSON.stringify(o.opts)}`)).toEqual([
      'add 5 {"master":true}', 'add 10 {"master":true}', 'add 11 {"master":true}',
    ]);
  });
  it('no VLAN options → no operation (preserveDefaultVlan alone changes nothing)', () => {
    expect(portVlanOps({ vlan: 0, vlans: [], preserveDefaultVlan: false })).toEqual([]);
  });
});

describe('bridge vlan netlink messages', () => {
  // ifinfomsg(16) | nlattr IFLA_AF_SPEC(26) { IFLA_BRIDGE_FLAGS(0)=u16 MASTER, IFLA_BRIDGE_VLAN_INFO(2)={flags u16, vid u16} }
  const bytes = (parts: Buffer[]) => Buffer.concat(parts);
  it('access port add: AF_BRIDGE, flags MASTER, vlan_info PVID|UNTAGGED vid 100', () => {
    const b = bytes(encodeBridgeVlan(7, 100, { pvid: true, untagged: true, master: true }));
    expect(b[0]).toBe(7); // ifi_family AF_BRIDGE
    expect(b.readInt32LE(4)).toBe(7); // ifi_index
    expect(b.readUInt16LE(18)).toBe(26); // IFLA_AF_SPEC
    const spec = b.subarray(20);
    expect(spec.readUInt16LE(0)).toBe(6); // IFLA_BRIDGE_FLAGS len
    expect(spec.readUInt16LE(2)).toBe(0);
    expect(spec.readUInt16LE(4)).toBe(1); // BRIDGE_FLAGS_MASTER
    expect(spec.readUInt16LE(8)).toBe(8); // VLAN_INFO len
    expect(spec.readUInt16LE(10)).toBe(2);
    expect(spec.readUInt16LE(12)).toBe(2 | 4); // PVID | UNTAGGED
    expect(spec.readUInt16LE(14)).toBe(100);
  });
  it('trunk add carries no PVID/UNTAGGED flags; ids outside 1..4094 are refused', () => {
    const spec = bytes(encodeBridgeVlan(7, 20, { master: true })).subarray(20);
    expect(spec.readUInt16LE(12)).toBe(0);
    expect(spec.readUInt16LE(14)).toBe(20);
    expect(() => encodeBridgeVlan(7, 4095)).toThrow(RangeError);
  });
});
