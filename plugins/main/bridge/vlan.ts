/**
 * VLAN settings of a bridge port as data: which `bridge vlan add|del`
 * operations the reference performs for `vlan` (access port: pvid +
 * untagged), `vlanTrunk` (tagged ids) and `preserveDefaultVlan: false`
 * (drop VLAN 1 first). The handle sends them as RTM_SETLINK / RTM_DELLINK.
 */
import type { BridgeVlanOptions, NetlinkHandle } from '../../pkg/netlink';

export interface VlanOp {
  op: 'add' | 'del';
  vid: number;
  opts: BridgeVlanOptions;
}

export function portVlanOps(n: { vlan: number; vlans: number[]; preserveDefaultVlan: boolean }): VlanOp[] {
  if (n.vlan === 0 && n.vlans.length === 0) return [];
  const ops: VlanOp[] = [];
  if (!n.preserveDefaultVlan) ops.push({ op: 'del', vid: 1, opts: { master: true } });
  if (n.vlan !== 0) ops.push({ op: 'add', vid: n.vlan, opts: { pvid: true, untagged: true, master: true } });
  for (const v of n.vlans) ops.push({ op: 'add', vid: v, opts: { master: true } });
  return ops;
}

export async function applyVlanOps(h: NetlinkHandle, index: number, ops: VlanOp[]): Promise<void> {
  for (const o of ops) {
    if (o.op === 'add') await h.bridgeVlanAdd(index, o.vid, o.opts);
    else await h.bridgeVlanDel(index, o.vid, o.opts);
  }
}
