import { describe, expect, it } from 'vitest';
import { type Prefix, formatPrefix } from '../ip';
import { parsePrefix } from '../ip';
import { MASQ_CHAIN, MASQ_TABLE, iptablesChainName, legacyMasqComment, masqComment, masqRuleExpr } from './masq';
import type { NftRule } from './ruleset';
import { type IptChains, type IptFamily, iptFamilyFromNft, iptFamilyFromSave, planTombstones } from './tombstone';

let handle = 0;
const rule = (comment: string, src: string, over: Partial<NftRule> = {}): NftRule => ({
  family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: ++handle, comment,
  expr: masqRuleExpr(parsePrefix(`${src}/${src.includes(':') ? 64 : 24}`)), ...over,
});
/** a family's chains with their jumps, from (chain, source) pairs */
const st = (pairs: [string, string][] = [], chainsOnly: string[] = []): IptFamily => ({
  chains: new Set([...pairs.map((p) => p[0]), ...chainsOnly]), jumps: new Set(pairs.map(([c, ip]) => `${c} ${ip}`)),
});
const none: IptChains = { v4: st(), v6: st() };
const LONG = `a-network-name-long-enough-that-its-comment-is-hashed-${'x'.repeat(80)}`;
const LONG_ID = 'c'.repeat(100);
const brief = (ts: { network: string; containerId: string; chain: string; ips: Prefix[] }[]) =>
  ts.map((t) => `${t.network} ${t.containerId} ${t.chain === iptablesChainName(t.network, t.containerId)} ${t.ips.map(formatPrefix).join(',')}`);

describe('planTombstones', () => {
  it('plain comments: grouped by network + container, addresses as host routes, ordered', () => {
    const p = planTombstones([
      rule(legacyMasqComment('net2', 'b'), '10.2.0.5'),
      rule(legacyMasqComment('net1', 'z'), '10.1.0.9'),
      rule(legacyMasqComment('net1', 'a'), '10.1.0.5'),
      rule(legacyMasqComment('net1', 'a'), '10.1.0.5'), // a stale twin of an ADD that crashed
    ], { networks: [] }, none);
    expect(brief(p.write)).toEqual(['net1 a true 10.1.0.5/32', 'net1 z true 10.1.0.9/32', 'net2 b true 10.2.0.5/32']);
    expect(p.present).toEqual([]);
    expect(p.skipped).toEqual([]);
  });

  it('a dual-stack container gets both families', () => {
    const p = planTombstones([rule(legacyMasqComment('net', 'ds'), '10.1.0.5'), rule(legacyMasqComment('net', 'ds'), 'fd00::5')], { networks: ['net'] }, none);
    expect(brief(p.write)).toEqual(['net ds true 10.1.0.5/32,fd00::5/128']);
    expect(p.write[0].ips.map((i) => i.v6)).toEqual([false, true]);
  });

  it('a chain already present is not written again (per family)', () => {
    const chain = iptablesChainName('net', 'ds');
    const rules = [rule(legacyMasqComment('net', 'ds'), '10.1.0.5'), rule(legacyMasqComment('net', 'ds'), 'fd00::5'), rule(legacyMasqComment('net', 'v4'), '10.1.0.6')];
    const p = planTombstones(rules, { networks: [] }, { v4: st([[chain, '10.1.0.5'], [iptablesChainName('net', 'v4'), '10.1.0.6']]), v6: st() });
    expect(brief(p.write)).toEqual(['net ds true fd00::5/128']);
    expect(brief(p.present)).toEqual(['net v4 true 10.1.0.6/32']);
    const both = planTombstones(rules, { networks: [] }, { v4: st([[chain, '10.1.0.5'], [iptablesChainName('net', 'v4'), '10.1.0.6']]), v6: st([[chain, 'fd00::5']]) });
    expect(both.write).toEqual([]);
    expect(brief(both.present)).toEqual(['net ds true 10.1.0.5/32,fd00::5/128', 'net v4 true 10.1.0.6/32']);
  });

  it('a chain without the POSTROUTING jump of an address (the reference\'s DEL deletes it first) gets the jump written', () => {
    const chain = iptablesChainName('net', 'two');
    const rules = [rule(legacyMasqComment('net', 'two'), '10.1.0.5'), rule(legacyMasqComment('net', 'two'), '10.1.0.7')];
    expect(brief(planTombstones(rules, { networks: [] }, { v4: st([], [chain]), v6: st() }).write)).toEqual(['net two true 10.1.0.5/32,10.1.0.7/32']);
    expect(brief(planTombstones(rules, { networks: [] }, { v4: st([[chain, '10.1.0.7']]), v6: st() }).write)).toEqual(['net two true 10.1.0.5/32']);
    expect(brief(planTombstones(rules, { networks: [] }, { v4: st([[chain, '10.1.0.5'], [chain, '10.1.0.7']]), v6: st() }).present)).toEqual(['net two true 10.1.0.5/32,10.1.0.7/32']);
  });

  it('reads chains and jumps from iptables -S and from an iptables-nft listing', () => {
    const a = iptablesChainName('net', 'a');
    const b = iptablesChainName('net', 'b');
    const save = iptFamilyFromSave([
      '-P POSTROUTING ACCEPT', `-N ${a}`, `-N ${b}`, '-N KUBE-POSTROUTING',
      `-A POSTROUTING -s 10.1.0.5/32 -m comment --comment "name: \\"net\\" id: \\"a\\"" -j ${a}`,
      `-A ${a} -d 10.1.0.0/24 -j ACCEPT`, '-A POSTROUTING -s 10.1.0.9/32 -j KUBE-POSTROUTING', `-A POSTROUTING -s fd00::5/128 -j ${b}`,
    ]);
    expect([...save.chains]).toEqual([a, b]);
    expect([...save.jumps]).toEqual([`${a} 10.1.0.5`, `${b} fd00::5`]);
    const saddr = (ip: string) => ({ match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: ip } });
    const nft = iptFamilyFromNft({
      tables: [], chains: [{ family: 'ip', table: 'nat', name: a }, { family: 'ip', table: 'nat', name: 'POSTROUTING' }, { family: 'ip6', table: 'nat', name: b }],
      rules: [
        { family: 'ip', table: 'nat', chain: 'POSTROUTING', expr: [saddr('10.1.0.5'), { counter: null }, { jump: { target: a } }] },
        { family: 'ip', table: 'nat', chain: 'POSTROUTING', expr: [saddr('10.1.0.9'), { jump: { target: 'KUBE-POSTROUTING' } }] },
        { family: 'ip', table: 'nat', chain: a, expr: [saddr('10.1.0.6'), { jump: { target: a } }] },
      ],
    }, 'ip');
    expect([...nft.chains]).toEqual([a]);
    expect([...nft.jumps]).toEqual([`${a} 10.1.0.5`]);
  });

  it('a hashed network name is resolved from the names the node knows; otherwise skipped, with the comment and address', () => {
    const c = legacyMasqComment(LONG, 'ctr1');
    expect(c).toMatch(/^name-sha256: [0-9a-f]{16} id: ctr1$/);
    const r = rule(c, '10.9.0.5');
    expect(brief(planTombstones([r], { networks: ['other', LONG] }, none).write)).toEqual([`${LONG} ctr1 true 10.9.0.5/32`]);
    const p = planTombstones([r], { networks: ['other'] }, none);
    expect(p.write).toEqual([]);
    expect(p.skipped).toEqual([{ key: c, address: '10.9.0.5', reason: expect.stringMatching(/network name is hashed and matches no network known/) }]);
  });

  it('a key-sha256 comment resolves only through a cached attachment', () => {
    const c = legacyMasqComment(LONG, LONG_ID);
    expect(c).toMatch(/^key-sha256: [0-9a-f]{64}$/);
    const r = rule(c, '10.9.0.7');
    expect(planTombstones([r], { networks: [LONG] }, none).skipped).toEqual([{ key: c, address: '10.9.0.7', reason: expect.stringMatching(/hashed together/) }]);
    const p = planTombstones([r], { networks: [], attachments: [{ network: LONG, containerId: LONG_ID }] }, none);
    expect(brief(p.write)).toEqual([`${LONG} ${LONG_ID} true 10.9.0.7/32`]);
  });

  it('--network: only that network; its name resolves its hashed comments; other networks\' are out of scope, not skipped', () => {
    const rules = [rule(legacyMasqComment('net1', 'a'), '10.1.0.5'), rule(legacyMasqComment(LONG, 'b'), '10.9.0.5'), rule(legacyMasqComment('other-' + LONG, 'c'), '10.8.0.5')];
    expect(brief(planTombstones(rules, { networks: [] }, none, LONG).write)).toEqual([`${LONG} b true 10.9.0.5/32`]);
    const p = planTombstones(rules, { networks: [] }, none, 'net1');
    expect(brief(p.write)).toEqual(['net1 a true 10.1.0.5/32']);
    expect(p.skipped).toEqual([]);
  });

  it('v1.10.0\'s comment: whole, it names network and container; cut at 128 bytes, it resolves through a cached attachment\'s instance hash', () => {
    const whole = masqComment('net1', 'eth0', 'a');
    expect(brief(planTombstones([rule(whole, '10.1.0.5')], { networks: [] }, none).write)).toEqual(['net1 a true 10.1.0.5/32']);
    const id = 'f'.repeat(64);
    const cut = masqComment('k8s-pod-network', 'eth0', id);
    expect(cut).toHaveLength(128);
    const r = rule(cut, '10.9.0.8');
    expect(planTombstones([r], { networks: ['k8s-pod-network'] }, none).skipped).toEqual([{ key: cut, address: '10.9.0.8', reason: expect.stringMatching(/hashed together/) }]);
    const p = planTombstones([r], { networks: [], attachments: [{ network: 'k8s-pod-network', containerId: id, ifName: 'eth0' }] }, none);
    expect(brief(p.write)).toEqual([`k8s-pod-network ${id} true 10.9.0.8/32`]);
    // another interface of the same container is another key
    expect(planTombstones([r], { networks: [], attachments: [{ network: 'k8s-pod-network', containerId: id, ifName: 'net1' }] }, none).write).toEqual([]);
  });

  it('foreign rules and comments are ignored; a family without iptables is skipped', () => {
    const p = planTombstones([
      rule('someone else', '10.1.0.5'),
      rule(legacyMasqComment('net', 'x'), '10.1.0.5', { chain: 'postrouting' }),
      rule(legacyMasqComment('net', 'x'), '10.1.0.5', { table: 'nat', family: 'ip' }),
      rule(legacyMasqComment('net', 'y'), '10.1.0.6'),
      rule(legacyMasqComment('net', 'y'), 'fd00::6'),
    ], { networks: [] }, { v4: st(), v6: null });
    expect(brief(p.write)).toEqual(['net y true 10.1.0.6/32']);
    expect(p.skipped).toEqual([{ key: 'net y', address: 'fd00::6', reason: 'ip6tables is not installed' }]);
  });
});
