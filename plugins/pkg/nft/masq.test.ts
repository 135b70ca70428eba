import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parsePrefix } from '../ip';
import {
  MASQ_CHAIN, MASQ_TABLE, genIptablesMasq, genIptablesTeardown, genMasqChain, genMasqTeardown, commentIsAttachment, commentIsStale, iptablesChainName,
  iptablesComment, legacyMasqComment, masqComment, masqInstanceHash, masqNetworkHash, parseMasqComment,
} from './masq';
import { type NftCommand, type Ruleset, parseRuleset } from './ruleset';

const h16 = (s: string) => createHash('sha512').update(s).digest('hex').slice(0, 16);

const rule = (c: NftCommand) => ('add' in c && 'rule' in c.add ? c.add.rule : null);

describe('keys', () => {
  it('iptables chain name is CNI- + 24 hex of sha512(name+id)', () => {
    const want = 'CNI-' + createHash('sha512').update('mynet' + 'abc123').digest('hex').slice(0, 24);
    expect(iptablesChainName('mynet', 'abc123')).toBe(want);
    expect(want).toHaveLength(28);
    expect(iptablesComment('mynet', 'abc123')).toBe('name: "mynet" id: "abc123"');
  });
  it('masq comment is v1.10.0\'s commentForInstance: sha512 hashes of the network and of ifname:id, then the readable part', () => {
    const c = masqComment('net', 'eth0', 'cid');
    expect(c).toBe(`${h16('net')}-${h16('eth0:cid')}, net: net, if: eth0, id: cid`);
    expect(masqNetworkHash('net')).toBe(h16('net'));
    expect(masqInstanceHash('net', 'eth0', 'cid')).toBe(`${h16('net')}-${h16('eth0:cid')}`);
    expect(parseMasqComment(c)).toEqual({ kind: 'ref', refNetworkHash: h16('net'), instanceHash: masqInstanceHash('net', 'eth0', 'cid'), network: 'net', ifname: 'eth0', containerId: 'cid' });
    // double quotes are dropped from the readable part (not from the hashes)
    expect(masqComment('a"b', 'eth0', 'c"d')).toBe(`${h16('a"b')}-${h16('eth0:c"d')}, net: ab, if: eth0, id: cd`);
  });
  it('masq comment is cut at 128 bytes; the hashes still key it, the readable part is trusted only where they confirm it', () => {
    const cid = 'c'.repeat(64);
    const c = masqComment('k8s-pod-network', 'eth0', cid);
    expect(c).toHaveLength(128);
    expect(c).toBe(`${h16('k8s-pod-network')}-${h16(`eth0:${cid}`)}, net: k8s-pod-network, if: eth0, id: ${cid}`.slice(0, 128));
    const p = parseMasqComment(c)!;
    expect(p).toMatchObject({ kind: 'ref', network: 'k8s-pod-network', instanceHash: masqInstanceHash('k8s-pod-network', 'eth0', cid) });
    expect(p.containerId).toBeUndefined();
    // a long network name is cut too: it is not guessed
    expect(parseMasqComment(masqComment('n'.repeat(120), 'eth0', 'x'))).toMatchObject({ kind: 'ref', refNetworkHash: h16('n'.repeat(120)) });
    expect(parseMasqComment(masqComment('n'.repeat(120), 'eth0', 'x'))?.network).toBeUndefined();
    // a forged readable part does not pass for another network
    expect(parseMasqComment(`${h16('net')}-${h16('eth0:cid')}, net: other, if: eth0, id: cid`)?.network).toBeUndefined();
  });
  it('legacy comments (flax before v1.10.0\'s form) are still parsed', () => {
    expect(legacyMasqComment('net', 'cid')).toBe('name: net id: cid');
    expect(parseMasqComment('name: net id: cid')).toEqual({ kind: 'legacy', network: 'net', containerId: 'cid' });
    const longNet = 'n'.repeat(100);
    const cid = 'c'.repeat(64);
    const c = legacyMasqComment(longNet, cid);
    expect(c.length).toBeLessThanOrEqual(128);
    expect(parseMasqComment(c)?.containerId).toBe(cid);
    const c3 = legacyMasqComment(longNet, 'x'.repeat(200));
    expect(c3.length).toBeLessThanOrEqual(128);
    expect(parseMasqComment(c3)).toEqual({ kind: 'legacy' });
    expect(parseMasqComment('something else')).toBeNull();
  });
  it('commentIsAttachment: v1.10.0\'s form by instance hash (cut or not), the legacy form, nothing else', () => {
    const cid = 'c'.repeat(64);
    expect(commentIsAttachment(masqComment('k8s-pod-network', 'eth0', cid), 'k8s-pod-network', cid, 'eth0')).toBe(true);
    expect(commentIsAttachment(masqComment('k8s-pod-network', 'eth1', cid), 'k8s-pod-network', cid, 'eth0')).toBe(false);
    expect(commentIsAttachment(masqComment('other', 'eth0', cid), 'k8s-pod-network', cid, 'eth0')).toBe(false);
    expect(commentIsAttachment(legacyMasqComment('net', 'a'), 'net', 'a', 'eth0')).toBe(true);
    expect(commentIsAttachment(legacyMasqComment('net', 'a'), 'net', 'b', 'eth0')).toBe(false);
    // no ifname: a whole comment of any interface
    expect(commentIsAttachment(masqComment('net', 'eth1', 'a'), 'net', 'a')).toBe(true);
    expect(commentIsAttachment(masqComment('net', 'eth1', 'a'), 'net', 'b')).toBe(false);
    expect(commentIsAttachment(undefined, 'net', 'a', 'eth0')).toBe(false);
  });
  it('commentIsStale (GC): by instance hash for v1.10.0\'s form, by id for the legacy one, only of the network', () => {
    const valid = [{ containerId: 'live', ifname: 'eth0' }];
    expect(commentIsStale(masqComment('net', 'eth0', 'live'), 'net', valid)).toBe(false);
    expect(commentIsStale(masqComment('net', 'eth1', 'live'), 'net', valid)).toBe(true);
    expect(commentIsStale(masqComment('net', 'eth0', 'gone'), 'net', valid)).toBe(true);
    expect(commentIsStale(masqComment('net', 'eth0', 'x'.repeat(80)), 'net', valid)).toBe(true); // cut, still judged by hash
    expect(commentIsStale(masqComment('net', 'eth0', 'x'.repeat(80)), 'net', [{ containerId: 'x'.repeat(80), ifname: 'eth0' }])).toBe(false);
    expect(commentIsStale(masqComment('other', 'eth0', 'gone'), 'net', valid)).toBe(false);
    expect(commentIsStale(legacyMasqComment('net', 'gone'), 'net', valid)).toBe(true);
    expect(commentIsStale(legacyMasqComment('net', 'live'), 'net', valid)).toBe(false);
    expect(commentIsStale('foreign', 'net', valid)).toBe(false);
  });
});

describe('genMasqChain', () => {
  it('creates the table, the postrouting skeleton and one rule per address', () => {
    const cmds = genMasqChain('net1', 'eth0', 'ctr1', [parsePrefix('10.1.1.5/24'), parsePrefix('fd00:1::5/64')]);
    expect(cmds[0]).toEqual({ add: { table: { family: 'inet', name: 'cni_plugins_masquerade', comment: 'Masquerading for plugins from github.com/containernetworking/plugins' } } });
    expect(cmds[1]).toEqual({ add: { chain: { family: 'inet', table: MASQ_TABLE, name: 'masq_checks', comment: 'Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet' } } });
    const post = cmds.find((c) => 'add' in c && 'chain' in c.add && c.add.chain.name === 'postrouting');
    expect(post).toEqual({ add: { chain: expect.objectContaining({ type: 'nat', hook: 'postrouting', prio: 100 }) } });
    expect(cmds).toContainEqual({ flush: { chain: { family: 'inet', table: MASQ_TABLE, name: 'postrouting' } } });
    const rules = cmds.map(rule).filter((r) => r && r.chain === MASQ_CHAIN);
    expect(rules).toHaveLength(2);
    expect(rules[0]).toEqual({
      family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, comment: masqComment('net1', 'eth0', 'ctr1'),
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
  it('replaces stale rules of the same container (either form), not of another interface or container', () => {
    const existing: Ruleset = {
      tables: [], chains: [],
      rules: [
        { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 7, comment: 'name: net1 id: ctr1', expr: [] },
        { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 8, comment: 'name: net1 id: other', expr: [] },
        { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 9, comment: masqComment('net1', 'eth0', 'ctr1'), expr: [] },
        { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 10, comment: masqComment('net1', 'eth1', 'ctr1'), expr: [] },
      ],
    };
    const cmds = genMasqChain('net1', 'eth0', 'ctr1', [parsePrefix('10.1.1.5/24')], existing);
    const dels = cmds.filter((c) => 'delete' in c);
    expect(dels).toEqual([7, 9].map((handle) => ({ delete: { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle, expr: [] } } })));
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
      { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 7, comment: masqComment('net1', 'eth0', 'ctr1'), expr: [] } },
      { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 8, comment: masqComment('net1', 'eth0', 'ctr2'), expr: [] } },
      { chain: { family: 'ip', table: 'nat', name: chain, handle: 1 } },
      { chain: { family: 'ip', table: 'nat', name: 'POSTROUTING', handle: 2 } },
      { rule: { family: 'ip', table: 'nat', chain: 'POSTROUTING', handle: 3, expr: [{ xt: { type: 'match', name: 'comment' } }, { jump: { target: chain } }] } },
      { rule: { family: 'ip', table: 'nat', chain: 'POSTROUTING', handle: 4, expr: [{ jump: { target: 'CNI-000000000000000000000000' } }] } },
    ],
  });
  it('removes the rules of either comment form and the reference chain with its jumps, nothing else', () => {
    const cmds = genMasqTeardown(parseRuleset(listing), 'net1', 'ctr1', 'eth0');
    expect(genMasqTeardown(parseRuleset(listing), 'net1', 'ctr1')).toEqual(cmds); // no ifname: whole comments name it
    expect(cmds).toEqual([
      { delete: { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 5, expr: [] } } },
      { delete: { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 7, expr: [] } } },
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
    const text = genIptablesMasq('n', 'c', [parsePrefix('10.1.1.5/24')]);
    expect(text.split('\n')).toEqual([
      '*nat',
      `:${chain} - [0:0]`,
      `-A ${chain} -d 10.1.1.0/24 -j ACCEPT -m comment --comment "name: \\"n\\" id: \\"c\\""`,
      `-A ${chain} ! -d 224.0.0.0/4 -j MASQUERADE -m comment --comment "name: \\"n\\" id: \\"c\\""`,
      `-A POSTROUTING -s 10.1.1.5 -j ${chain} -m comment --comment "name: \\"n\\" id: \\"c\\""`,
      'COMMIT', '',
    ]);
    expect(genIptablesMasq('n', 'c', [parsePrefix('fd00::5/64')])).toContain('! -d ff00::/8 -j MASQUERADE');
    // the POSTROUTING jump is not doubled
    const again = genIptablesMasq('n', 'c', [parsePrefix('10.1.1.5/24')], [`-A POSTROUTING -s 10.1.1.5/32 -m comment --comment "x" -j ${chain}`]);
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
