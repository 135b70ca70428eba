import { describe, expect, it } from 'vitest';
import { legacyMasqComment } from './masq';
import type { NftRule, Ruleset } from './ruleset';
import {
  PORTMAP_TABLE, type PortmapSpec, dnatExpr, genPortmapAdd, genPortmapBase, genPortmapGc, genPortmapRules, genPortmapTeardown,
  mappingsForFamily, missingPortmapRules, portmapComment,
} from './portmap';
import {
  dnatChainRules, dnatEntryRules, genIptablesChainTeardown, genIptablesPortmap, markValue, portmapChainName, splitPortList, stalePortmapIptChains,
} from './portmap-ipt';

const spec = (o: Partial<PortmapSpec> = {}): PortmapSpec => ({
  network: 'net', containerId: 'ctr', containerIP: '10.1.0.5', v6: false, snat: true, masqAll: false, conditions: [],
  mappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' }, { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '' }],
  ...o,
});
const rs = (rules: NftRule[]): Ruleset => ({ tables: [], chains: [], rules });

describe('nftables rules as data', () => {
  it('one DNAT rule per mapping plus hairpin and localhost masquerade (IPv4), commented with the bare container id as v1.10.0 does', () => {
    const rules = genPortmapRules(spec());
    expect(rules.map((r) => r.chain)).toEqual(['hostports', 'hostports', 'masquerading', 'masquerading']);
    expect(rules.every((r) => r.family === 'ip' && r.table === PORTMAP_TABLE && r.comment === 'ctr')).toBe(true);
    expect(portmapComment('ctr')).toBe('ctr');
    expect(rules[0].expr).toEqual([
      { match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 8080 } },
      { dnat: { addr: '10.1.0.5', port: 80 } },
    ]);
    expect(JSON.stringify(rules[3].expr)).toContain('127.0.0.1');
  });

  it('IPv6: no localhost rule; masqAll masquerades any source; snat=false writes no masquerading', () => {
    expect(genPortmapRules(spec({ v6: true, containerIP: 'fd00::5' })).filter((r) => r.chain === 'masquerading')).toHaveLength(1);
    const all = genPortmapRules(spec({ masqAll: true })).filter((r) => r.chain === 'masquerading');
    expect(all).toHaveLength(1);
    expect(all[0].expr[0]).toEqual({ match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: { prefix: { addr: '0.0.0.0', len: 0 } } } });
    expect(genPortmapRules(spec({ snat: false })).map((r) => r.chain)).toEqual(['hostports', 'hostports']);
    expect(genPortmapBase(false, false, []).some((c) => 'add' in c && 'chain' in c.add && c.add.chain.name === 'masquerading')).toBe(false);
  });

  it('hostIP: matched as daddr in its family, skipped in the other, unspecified means any', () => {
    const m = [{ hostPort: 1, containerPort: 2, protocol: 'sctp' as const, hostIP: '192.0.2.1' }, { hostPort: 3, containerPort: 4, protocol: 'tcp' as const, hostIP: '::' }];
    expect(mappingsForFamily(m, true)).toEqual([{ ...m[1], hostIP: '' }]);
    expect(mappingsForFamily(m, false)).toEqual([m[0]]);
    expect(dnatExpr(m[0], '10.1.0.5', false)[0]).toEqual({ match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: '192.0.2.1' } });
  });

  it('the skeleton: entry chains flushed and re-written with the conditions before fib daddr type local', () => {
    const cond = { match: { op: '!=', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '192.0.2.9' } };
    const base = genPortmapBase(false, true, [cond]);
    const pre = base.filter((c) => 'add' in c && 'rule' in c.add && c.add.rule.chain === 'prerouting').map((c) => (c as any).add.rule.expr);
    expect(pre).toEqual([[cond, { match: { op: '==', left: { fib: { result: 'type', flags: ['daddr'] } }, right: 'local' } }, { jump: { target: 'hostports_all' } }]]);
    expect(base).toContainEqual({ flush: { chain: { family: 'ip', table: PORTMAP_TABLE, name: 'prerouting' } } });
    expect(base).toContainEqual({ add: { chain: { family: 'ip', table: PORTMAP_TABLE, name: 'masquerading', type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept' } } });
  });

  const mine = (h: number, chain = 'hostports', comment = portmapComment('ctr'), family: 'ip' | 'ip6' = 'ip'): NftRule => ({ family, table: PORTMAP_TABLE, chain, handle: h, comment, expr: [] });
  it('ADD replaces the container\'s previous rules; DEL removes its bare-id rules and flax\'s legacy ones, nobody else\'s', () => {
    const existing = rs([
      mine(1), mine(2, 'masquerading'), mine(3, 'hostports', 'ctr', 'ip6'), mine(4, 'hostports', legacyMasqComment('net', 'ctr')), mine(5, 'hostip_hostports'),
      mine(6, 'hostports', 'other'), mine(7, 'hostports', legacyMasqComment('net', 'other')), mine(8, 'hostports', legacyMasqComment('net2', 'ctr')),
      mine(9, 'prerouting'), { ...mine(10), table: 'other' },
    ]);
    const deleted = (cmds: any[]) => cmds.filter((c) => c.delete).map((c) => c.delete.rule.handle);
    expect(deleted(genPortmapTeardown(existing, 'net', 'ctr'))).toEqual([1, 2, 3, 4, 5]);
    const add = genPortmapAdd([spec()], existing);
    expect(deleted(add)).toEqual([1, 2, 3, 4, 5]);
    expect(add.filter((c: any) => c.add?.rule?.comment).length).toBe(4);
  });

  it('GC: legacy comments of this network whose container is not valid; never a bare id (it names no network: the node sweeper judges those)', () => {
    const existing = rs([
      mine(1), mine(2, 'hostports', legacyMasqComment('net', 'dead')), mine(3, 'hostports', legacyMasqComment('other', 'dead')), mine(4, 'hostports', 'dead'),
      mine(5, 'masquerading', 'dead'), mine(6, 'hostports', legacyMasqComment('net', 'ctr')), mine(7, 'prerouting', 'dead'),
    ]);
    expect(genPortmapGc(existing, 'net', new Set(['ctr'])).map((c: any) => c.delete.rule.handle)).toEqual([2]);
  });

  it('CHECK accepts flax\'s legacy comments too (a node upgraded from an older flax)', () => {
    const s = spec();
    const entry = [...['prerouting', 'output'].map((chain) => ({ family: 'ip' as const, table: PORTMAP_TABLE, chain, expr: [{ jump: { target: 'hostports_all' } }] })),
      { family: 'ip' as const, table: PORTMAP_TABLE, chain: 'hostports_all', expr: [{ jump: { target: 'hostports' } }] }];
    expect(missingPortmapRules(rs([...genPortmapRules(s).map((r) => ({ ...r, comment: legacyMasqComment('net', 'ctr') })), ...entry]), [s])).toEqual([]);
    expect(missingPortmapRules(rs([...genPortmapRules(s).map((r) => ({ ...r, comment: 'other' })), ...entry]), [s])).toHaveLength(4);
  });

  it('CHECK names what is missing and accepts what nft lists back', () => {
    const s = spec();
    const listed = rs([...genPortmapRules(s), ...['prerouting', 'output'].map((chain) => ({ family: 'ip' as const, table: PORTMAP_TABLE, chain, expr: [{ jump: { target: 'hostports_all' } }] })),
      { family: 'ip', table: PORTMAP_TABLE, chain: 'hostports_all', expr: [{ jump: { target: 'hostports' } }] }]);
    expect(missingPortmapRules(listed, [s])).toEqual([]);
    listed.rules.splice(1, 1);
    expect(missingPortmapRules(listed, [s])).toEqual(['ip cni_hostport hostports: udp dport 5353 dnat to 10.1.0.5:53']);
  });
});

describe('iptables rules as data (the reference layout)', () => {
  const ispec = { network: 'net', containerId: 'ctr', containerCidr: '10.1.0.5/24', v6: false, snat: true, masqAll: false, markMasqBit: 13, conditions: [],
    mappings: spec().mappings };
  it('chain names are the reference\'s (CNI-DN- + sha512 hex, 28 chars) and marks are printed like Go %#x', () => {
    expect(portmapChainName('net', 'ctr', 'DN-')).toMatch(/^CNI-DN-[0-9a-f]{21}$/);
    expect(portmapChainName('net', 'ctr', 'DN-')).not.toBe(portmapChainName('net', 'ctr2', 'DN-'));
    expect(markValue(13)).toBe('0x2000/0x2000');
    expect(markValue(0)).toBe('0x1/0x1');
    expect(splitPortList(Array.from({ length: 16 }, (_, i) => i + 1))).toEqual(['1,2,3,4,5,6,7,8,9,10,11,12,13,14,15', '16']);
  });
  it('per mapping: hairpin mark, localhost mark (v4), DNAT; entry rules by sorted protocol with the comment and conditions', () => {
    const chain = portmapChainName('net', 'ctr', 'DN-');
    expect(dnatChainRules(ispec)[0]).toEqual(['-p', 'tcp', '--dport', '8080', '-s', '10.1.0.5/24', '-j', 'CNI-HOSTPORT-SETMARK']);
    expect(dnatChainRules(ispec)[2]).toEqual(['-p', 'tcp', '--dport', '8080', '-j', 'DNAT', '--to-destination', '10.1.0.5:80']);
    expect(dnatChainRules({ ...ispec, v6: true, containerCidr: 'fd00::5/64' }).map((r) => r.at(-1))).toEqual(['CNI-HOSTPORT-SETMARK', '[fd00::5]:80', 'CNI-HOSTPORT-SETMARK', '[fd00::5]:53']);
    expect(dnatEntryRules({ ...ispec, conditions: ['!', '-s', '10.0.0.0/8'] }).map((r) => r.slice(6))).toEqual([
      ['-p', 'tcp', '--destination-ports', '8080', '!', '-s', '10.0.0.0/8', '-j', chain],
      ['-p', 'udp', '--destination-ports', '5353', '!', '-s', '10.0.0.0/8', '-j', chain],
    ]);
    expect(dnatChainRules({ ...ispec, externalSetMarkChain: 'KUBE-MARK-MASQ' })[0].at(-1)).toBe('KUBE-MARK-MASQ');
  });
  it('restore input: shared chains only when missing, the container chain re-declared, old entry rules replaced', () => {
    const chain = portmapChainName('net', 'ctr', 'DN-');
    const fresh = genIptablesPortmap(ispec, []);
    expect(fresh).toContain(':CNI-HOSTPORT-DNAT - [0:0]');
    expect(fresh).toContain('-I POSTROUTING 1 -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ');
    const save = ['-N CNI-HOSTPORT-DNAT', '-N CNI-HOSTPORT-SETMARK', '-N CNI-HOSTPORT-MASQ', `-N ${chain}`,
      '-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT', '-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
      '-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ',
      '-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE',
      '-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000',
      `-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"net\\" id: \\"ctr\\"" -m multiport --dports 1 -j ${chain}`];
    const again = genIptablesPortmap(ispec, save).split('\n');
    expect(again.filter((l) => l.startsWith(':'))).toEqual([`:${chain} - [0:0]`]);
    expect(again.filter((l) => /^-[AI] (PREROUTING|OUTPUT|POSTROUTING|CNI-HOSTPORT-(MASQ|SETMARK))/.test(l))).toEqual([]);
    expect(again).toContain(`-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"net\\" id: \\"ctr\\"" -m multiport --dports 1 -j ${chain}`);
    const td = genIptablesChainTeardown([chain], save);
    expect(td.split('\n').slice(1, -2)).toEqual([save.at(-1)!.replace(/^-A/, '-D'), `-F ${chain}`, `-X ${chain}`]);
    expect(genIptablesChainTeardown([portmapChainName('net', 'x', 'DN-')], save)).toBe('');
    expect(stalePortmapIptChains(save, 'net', new Set())).toEqual([chain]);
    expect(stalePortmapIptChains(save, 'net', new Set(['ctr']))).toEqual([]);
    expect(stalePortmapIptChains(save, 'other', new Set())).toEqual([]);
  });
});
