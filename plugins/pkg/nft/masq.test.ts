import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseCidr } from '../ip';
import {
  MASQ_CHAIN, MASQ_TABLE, type NftCommand, type Ruleset, genIptablesMasq, genIptablesTeardown, genMasqChain, genMasqTeardown,
  iptablesChainName, iptablesComment, masqComment, parseMasqComment, parseRuleset,
} from './masq';

const rule = (c: NftCommand) => ('add' in c && 'rule' in c.add ? c.add.rule : null);

describe('keys', () => {
  it('iptables chain name is CNI- + 24 hex of sha512(name+id)', () => {
    const want = 'CNI-' + createHash('sha512').update('mynet' + 'abc123').digest('hex').slice(0, 24);
    expect(iptablesChainName('mynet', 'abc123')).toBe(want);
    expect(want).toHaveLength(28);
    expect(iptablesComment('mynet', 'abc123')).toBe('name: "mynet" id: "abc123"');
  });
  it('masq comment round-trips and stays within 128 bytes', () => {
    expect(masqComment('net', 'cid')).toBe('name: net id: cid');
    expect(parseMasqComment('name: net id: cid')).toEqual({ network: 'net', containerId: 'cid' });
    const longNet = 'n'.repeat(100);
    const cid = 'c'.repeat(64);
    const c = masqComment(longNet, cid);
    expect(c.length).toBeLessThanOrEqual(128);
    expect(parseMasqComment(c)?.containerId).toBe(cid);
    const c3 = masqComment(longNet, 'x'.repeat(200));
    expect(c3.length).toBeLessThanOrEqual(128);
    expect(parseMasqComment(c3)).toEqual({});
    expect(parseMasqComment('something else')).toBeNull();
  });
});

describe('genMasqChain', () => {
  it('creates the table, the postrouting skeleton and one rule per address', () => {
    const cmds = genMasqChain('net1', 'ctr1', [parseCidr('10.1.1.5/24'), parseCidr('fd00:1::5/64')]);
    expect(cmds[0]).toEqual({ add: { table: expect.objectContaining({ family: 'inet', name: MASQ_TABLE }) } });
    const post = cmds.find((c) => 'add' in c && 'chain' in c.add && c.add.chain.name === 'postrouting');
    expect(post).toEqual({ add: { chain: expect.objectContaining({ type: 'nat', hook: 'postrouting', prio: 100 }) } });
    expect(cmds).toContainEqual({ flush: { chain: { family: 'inet', table: MASQ_TABLE, name: 'postrouting' } } });
    const rules = cmds.map(rule).filter((r) => r && r.chain === MASQ_CHAIN);
    expect(rules).toHaveLength(2);
    expect(rules[0]).toEqual({
      family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, comment: 'name: net1 id: ctr1',
      expr: [
        { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '10.1.1.5' } },
        { match: { op: '!=', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: { prefix: { addr: '10.1.1.0', len: 24 } } } },
        { masquerade: null },
      ],
    });
    expect(rules[1]!.expr[1]).toEqual({ match: { op: '!=', left: { payload: { protocol: 'ip6', field: 'daddr' } }, right: { prefix: { addr: 'fd00:1::', len: 64 } } } });
    // multicast is never masqueraded
    const postRules = cmds.map(rule).filter((r) => r && r.chain === 'postrouting');
    expect(postRules.map((r) => JSON.stringify(r!.expr))).toEqual([
      expect.stringContaining('"224.0.0.0","len":4'), expect.stringContaining('"ff00::","len":8'), '[{"goto":{"target":"masq_checks"}}]',
    ]);
  });
  it('replaces stale rules of the same container', () => {
    const existing: Ruleset = {
      tables: [], chains: [],
      rules: [
        { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 7, comment: 'name: net1 id: ctr1', expr: [] },
        { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 8, comment: 'name: net1 id: other', expr: [] },
      ],
    };
    const cmds = genMasqChain('net1', 'ctr1', [parseCidr('10.1.1.5/24')], existing);
    const dels = cmds.filter((c) => 'delete' in c);
    expect(dels).toEqual([{ delete: { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 7, expr: [] } } }]);
  });
});

describe('genMasqTeardown', () => {
  const chain = iptablesChainName('net1', 'ctr1');
  const listing = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'inet', name: MASQ_TABLE, handle: 1 } },
      { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 5, comment: 'name: net1 id: ctr1', expr: [] } },
      { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 6, comment: 'name: net1 id: ctr2', expr: [] } },
      { chain: { family: 'ip', table: 'nat', name: chain, handle: 1 } },
      { chain: { family: 'ip', table: 'nat', name: 'POSTROUTING', handle: 2 } },
      { rule: { family: 'ip', table: 'nat', chain: 'POSTROUTING', handle: 3, expr: [{ xt: { type: 'match', name: 'comment' } }, { jump: { target: chain } }] } },
      { rule: { family: 'ip', table: 'nat', chain: 'POSTROUTING', handle: 4, expr: [{ jump: { target: 'CNI-000000000000000000000000' } }] } },
    ],
  });
  it('removes our rules and the reference chain with its jumps, nothing else', () => {
    const cmds = genMasqTeardown(parseRuleset(listing), 'net1', 'ctr1');
    expect(cmds).toEqual([
      { delete: { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 5, expr: [] } } },
      { delete: { rule: { family: 'ip', table: 'nat', chain: 'POSTROUTING', handle: 3, expr: [] } } },
      { flush: { chain: { family: 'ip', table: 'nat', name: chain } } },
      { delete: { chain: { family: 'ip', table: 'nat', name: chain } } },
    ]);
  });
  it('is empty when nothing belongs to the container', () => {
    expect(genMasqTeardown(parseRuleset(listing), 'net1', 'nope')).toEqual([]);
    expect(genMasqTeardown(parseRuleset(''), 'net1', 'ctr1')).toEqual([]);
  });
});

describe('iptables backend', () => {
  it('generates the reference layout', () => {
    const chain = iptablesChainName('n', 'c');
    const text = genIptablesMasq('n', 'c', [parseCidr('10.1.1.5/24')]);
    expect(text.split('\n')).toEqual([
      '*nat',
      `:${chain} - [0:0]`,
      `-A ${chain} -d 10.1.1.0/24 -j ACCEPT -m comment --comment "name: \\"n\\" id: \\"c\\""`,
      `-A ${chain} ! -d 224.0.0.0/4 -j MASQUERADE -m comment --comment "name: \\"n\\" id: \\"c\\""`,
      `-A POSTROUTING -s 10.1.1.5 -j ${chain} -m comment --comment "name: \\"n\\" id: \\"c\\""`,
      'COMMIT', '',
    ]);
    expect(genIptablesMasq('n', 'c', [parseCidr('fd00::5/64')])).toContain('! -d ff00::/8 -j MASQUERADE');
    // the POSTROUTING jump is not doubled
    const again = genIptablesMasq('n', 'c', [parseCidr('10.1.1.5/24')], [`-A POSTROUTING -s 10.1.1.5/32 -m comment --comment "x" -j ${chain}`]);
    expect(again).not.toContain('-A POSTROUTING');
  });
  it('teardown deletes the jumps, flushes and deletes the chain', () => {
    const chain = iptablesChainName('n', 'c');
    const save = ['-P POSTROUTING ACCEPT', `-N ${chain}`, `-A POSTROUTING -s 10.1.1.5/32 -m comment --comment "name: \\"n\\" id: \\"c\\"" -j ${chain}`, `-A ${chain} -d 10.1.1.0/24 -j ACCEPT`];
    expect(genIptablesTeardown(chain, save).split('\n')).toEqual([
      '*nat', `-D POSTROUTING -s 10.1.1.5/32 -m comment --comment "name: \\"n\\" id: \\"c\\"" -j ${chain}`, `-F ${chain}`, `-X ${chain}`, 'COMMIT', '',
    ]);
    expect(genIptablesTeardown(chain, ['-P POSTROUTING ACCEPT'])).toBe('');
  });
});
