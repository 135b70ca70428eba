import { describe, expect, it } from 'vitest';
import { genMasqBase } from './masq';
import { type NftChain, type NftCommand, type NftRule, type Ruleset, emptyRuleset } from './ruleset';
import { genPortmapAdd, genPortmapBase, type PortmapSpec } from './portmap';
import { afterBatch, skeletonPresent } from './skeleton';

const listed = (cmds: NftCommand[]) => afterBatch(cmds);
const spec: PortmapSpec = {
  network: 'net', containerId: 'ctr', containerIP: '10.1.0.5', v6: false, snat: true, masqAll: false, conditions: [],
  mappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' }],
};

describe('skeletonPresent', () => {
  it('an empty ruleset has none; the ruleset the commands made has all of it (masquerade and portmap skeletons)', () => {
    for (const base of [genMasqBase(), genPortmapBase(false, true, []), genPortmapBase(true, false, [])]) {
      expect(skeletonPresent(emptyRuleset(), base)).toBe(false);
      expect(skeletonPresent(listed(base), base)).toBe(true);
    }
  });

  it('a re-written chain must hold exactly its rules, in order', () => {
    const base = genMasqBase();
    const rs = listed(base);
    const post = (r: NftRule) => r.chain === 'postrouting';
    const extra = { ...rs, rules: [...rs.rules, { ...rs.rules.find(post)!, handle: 99 }] };
    expect(skeletonPresent(extra, base)).toBe(false);
    const missing = { ...rs, rules: rs.rules.filter((r, i) => !(post(r) && i === rs.rules.findIndex(post))) };
    expect(skeletonPresent(missing, base)).toBe(false);
    const swapped = { ...rs, rules: [...rs.rules].reverse() };
    expect(skeletonPresent(swapped, base)).toBe(false);
  });

  it('a base chain must have the same type, hook, priority and policy', () => {
    const base = genMasqBase();
    const rs = listed(base);
    const change = (o: Partial<NftChain>) => ({ ...rs, chains: rs.chains.map((c) => (c.hook ? { ...c, ...o } : c)) });
    expect(skeletonPresent(change({ prio: 50 }), base)).toBe(false);
    expect(skeletonPresent(change({ hook: 'prerouting' }), base)).toBe(false);
    expect(skeletonPresent(change({ policy: 'drop' }), base)).toBe(false);
    expect(skeletonPresent(change({ policy: undefined }), base)).toBe(true);
  });

  it('a listing of the entry chain alone (`list chain`: no table object) is enough when its rules jump to the others', () => {
    const base = genMasqBase();
    const all = listed(base);
    const entryOnly: Ruleset = { tables: [], chains: all.chains.filter((c) => c.hook), rules: all.rules.filter((r) => r.chain === 'postrouting') };
    expect(skeletonPresent(entryOnly, base)).toBe(true);
    const noGoto: Ruleset = { ...entryOnly, rules: entryOnly.rules.filter((r) => !JSON.stringify(r.expr).includes('goto')) };
    expect(skeletonPresent(noGoto, base)).toBe(false);
  });

  it('rules listed with their match keys in another order still match; other families or tables do not count', () => {
    const base = genMasqBase();
    const rs = listed(base);
    const reordered = { ...rs, rules: rs.rules.map((r) => ({ ...r, expr: r.expr.map((e) => (e.match ? { match: Object.fromEntries(Object.entries(e.match as object).reverse()) } : e)) })) };
    expect(skeletonPresent(reordered, base)).toBe(true);
    const elsewhere = { tables: rs.tables.map((t) => ({ ...t, family: 'ip' as const })), chains: rs.chains.map((c) => ({ ...c, table: 'other' })), rules: rs.rules };
    expect(skeletonPresent(elsewhere, base)).toBe(false);
  });

  it('portmap ADD leaves the skeleton out only when it is intact, and changed conditions re-write it', () => {
    const first = genPortmapAdd([spec], emptyRuleset());
    expect(first.filter((c) => 'flush' in c)).not.toHaveLength(0);
    const after = listed(first);
    const again = genPortmapAdd([{ ...spec, containerId: 'ctr2', containerIP: '10.1.0.6' }], after);
    expect(again.every((c) => 'add' in c && 'rule' in c.add)).toBe(true);
    const cond = { match: { op: '!=', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '192.0.2.9' } };
    const changed = genPortmapAdd([{ ...spec, containerId: 'ctr3', conditions: [cond] }], after);
    expect(changed.some((c) => 'flush' in c)).toBe(true);
    const v6too = genPortmapAdd([spec, { ...spec, v6: true, containerIP: 'fd00::5' }], after);
    expect(v6too.filter((c) => 'add' in c && 'table' in c.add).map((c) => JSON.stringify(c))).toEqual([expect.stringContaining('"ip6"')]);
  });
});
