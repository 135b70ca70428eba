import { describe, expect, it } from 'vitest';
import { parsePrefix } from '../pkg/ip';
import { legacyMasqComment, masqComment, masqRuleExpr } from '../pkg/nft/masq';
import type { NftRule } from '../pkg/nft/ruleset';
import { evidenceKey, judgeMasqRules } from './judge';

const rule = (network: string, id: string, ip: string, handle: number): NftRule => ({
  family: 'inet', table: 'cni_plugins_masquerade', chain: 'masq_checks', handle, comment: masqComment(network, 'eth0', id),
  expr: masqRuleExpr(parsePrefix(`${ip}/24`)),
});

describe('judgeMasqRules', () => {
  const rules = [rule('net1', 'dead', '10.0.0.2', 1), rule('net1', 'cached', '10.0.0.3', 2), rule('net1', 'reserving', '10.0.0.4', 3)];
  const ev = { cached: new Set([evidenceKey('net1', 'cached')]), reserved: new Map([['net1', new Set(['reserving'])]]) };

  it('a rule with neither a cached attachment nor a reservation is dead; either one keeps it', () => {
    const dead = judgeMasqRules(rules, ['net1'], ev);
    expect(dead.map((d) => [d.containerId, d.address, d.rule.handle])).toEqual([['dead', '10.0.0.2', 1]]);
  });
  it('evidence counts only for the same network', () => {
    const other = rule('net2', 'cached', '10.0.1.3', 4);
    expect(judgeMasqRules([other], ['net1', 'net2'], ev).map((d) => d.network)).toEqual(['net2']);
  });
  it('hashed comments resolve through known network names; unknown ones and foreign rules are kept', () => {
    const long = 'n'.repeat(120);
    const r = { ...rule(long, 'x', '10.0.2.2', 5), comment: legacyMasqComment(long, 'x') };
    expect(r.comment).toMatch(/^name-sha256: /);
    expect(judgeMasqRules([r], [], ev)).toEqual([]);
    expect(judgeMasqRules([r], [long], ev).map((d) => d.network)).toEqual([long]);
    const foreign = { ...rule('net1', 'dead', '10.0.0.9', 6), comment: 'someone else' };
    expect(judgeMasqRules([foreign], ['net1'], ev)).toEqual([]);
  });
  it('--network limits the sweep', () => {
    expect(judgeMasqRules(rules, ['net1'], ev, new Set(['net2']))).toEqual([]);
  });
  it('v1.10.0\'s comment cut at 128 bytes shows no whole id: kept; flax\'s legacy comment is judged as before', () => {
    const cut = rule('k8s-pod-network', 'f'.repeat(64), '10.0.3.2', 7);
    expect(cut.comment).toHaveLength(128);
    expect(judgeMasqRules([cut], ['k8s-pod-network'], ev)).toEqual([]);
    const legacy = { ...rule('net1', 'dead', '10.0.0.2', 8), comment: legacyMasqComment('net1', 'dead') };
    expect(judgeMasqRules([legacy], ['net1'], ev).map((d) => d.containerId)).toEqual(['dead']);
  });
  it('a portmap rule with a bare container id (v1.10.0\'s form): dead only without evidence in any network; kept with --network', () => {
    const pm = (id: string, handle: number, chain = 'hostports'): NftRule => ({ family: 'ip', table: 'cni_hostport', chain, handle, comment: id, expr: [] });
    const dead = judgeMasqRules([pm('gone', 1), pm('cached', 2), pm('reserving', 3, 'masquerading'), pm('gone', 4, 'prerouting')], [], ev);
    expect(dead.map((d) => [d.containerId, d.rule.handle, d.network])).toEqual([['gone', 1, '']]);
    expect(judgeMasqRules([pm('gone', 1)], [], ev, new Set(['net1']))).toEqual([]);
    // a foreign comment in the masquerade table is not a bare id
    expect(judgeMasqRules([{ ...pm('gone', 5), family: 'inet', table: 'cni_plugins_masquerade', chain: 'masq_checks' }], [], ev)).toEqual([]);
  });
});
