/**
 * MAC spoof check (bridge `macspoofchk`) as data + apply: frames entering
 * the bridge from the pod's host veth must carry the pod's MAC. Layout (as
 * the reference's link/spoofcheck): table `bridge nat`, base chain
 * PREROUTING (filter, prerouting, priority -300), per attachment
 *   PREROUTING:           iifname <hostveth> jump cni-br-iface-<id>
 *   cni-br-iface-<id>:     jump cni-br-iface-<id>-mac
 *   cni-br-iface-<id>-mac: ether saddr <mac> return; drop
 * every rule commented `macspoofchk-<id>`, id = <containerID>-<ifname>.
 */
import { type FirewallDeps, defaultDeps, nftApply, nftList } from './apply';
import type { NftChain, NftCommand, Ruleset } from './ruleset';

export const SPOOF_TABLE = 'nat';
export const SPOOF_BASE = 'PREROUTING';

export const spoofId = (containerId: string, ifname: string) => `${containerId}-${ifname}`;
export const spoofComment = (id: string) => `macspoofchk-${id}`;
const ifaceChain = (id: string) => `cni-br-iface-${id}`;
const macChain = (id: string) => `cni-br-iface-${id}-mac`;
const chain = (name: string): NftChain => ({ family: 'bridge', table: SPOOF_TABLE, name });

export function genSpoofCheck(id: string, hostIface: string, mac: string): NftCommand[] {
  const comment = spoofComment(id);
  const rule = (c: string, expr: Record<string, unknown>[]): NftCommand => ({ add: { rule: { family: 'bridge', table: SPOOF_TABLE, chain: c, comment, expr } } });
  return [
    { add: { table: { family: 'bridge', name: SPOOF_TABLE } } },
    { add: { chain: { ...chain(SPOOF_BASE), type: 'filter', hook: 'prerouting', prio: -300, policy: 'accept' } } },
    { add: { chain: chain(ifaceChain(id)) } },
    { add: { chain: chain(macChain(id)) } },
    { flush: { chain: chain(ifaceChain(id)) } },
    { flush: { chain: chain(macChain(id)) } },
    rule(SPOOF_BASE, [{ match: { op: '==', left: { meta: { key: 'iifname' } }, right: hostIface } }, { jump: { target: ifaceChain(id) } }]),
    rule(ifaceChain(id), [{ jump: { target: macChain(id) } }]),
    rule(macChain(id), [{ match: { op: '==', left: { payload: { protocol: 'ether', field: 'saddr' } }, right: mac } }, { return: null }]),
    rule(macChain(id), [{ drop: null }]),
  ];
}

export function genSpoofTeardown(rs: Ruleset, id: string): NftCommand[] {
  const comment = spoofComment(id);
  const cmds: NftCommand[] = rs.rules
    .filter((r) => r.family === 'bridge' && r.table === SPOOF_TABLE && r.chain === SPOOF_BASE && r.comment === comment && r.handle !== undefined)
    .map((r) => ({ delete: { rule: { family: 'bridge', table: SPOOF_TABLE, chain: SPOOF_BASE, handle: r.handle!, expr: [] } } }));
  for (const name of [ifaceChain(id), macChain(id)]) {
    if (rs.chains.some((c) => c.family === 'bridge' && c.table === SPOOF_TABLE && c.name === name)) {
      cmds.push({ flush: { chain: chain(name) } });
    }
  }
  for (const name of [ifaceChain(id), macChain(id)]) {
    if (rs.chains.some((c) => c.family === 'bridge' && c.table === SPOOF_TABLE && c.name === name)) {
      cmds.push({ delete: { chain: chain(name) } });
    }
  }
  return cmds;
}

export async function setupSpoofCheck(id: string, hostIface: string, mac: string, deps: FirewallDeps = defaultDeps): Promise<void> {
  await nftApply(genSpoofCheck(id, hostIface, mac), deps);
}

export async function teardownSpoofCheck(id: string, deps: FirewallDeps = defaultDeps): Promise<void> {
  if (!deps.has('nft')) return;
  const rs = await nftList(['table', 'bridge', SPOOF_TABLE], deps);
  await nftApply(genSpoofTeardown(rs, id), deps);
}

export async function checkSpoofCheck(id: string, deps: FirewallDeps = defaultDeps): Promise<boolean> {
  const rs = await nftList(['table', 'bridge', SPOOF_TABLE], deps);
  return rs.rules.some((r) => r.chain === SPOOF_BASE && r.comment === spoofComment(id));
}
