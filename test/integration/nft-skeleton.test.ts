/**
 * ADD leaves out the nftables skeleton (shared tables, base chains, entry
 * rules) when it is intact (pkg/nft/skeleton.ts): this checks the
 * comparison against what the kernel really lists back, in a throwaway
 * netns — an intact skeleton is recognised (else every ADD would pay for
 * re-adding base chains), a damaged one is not (else it would never be
 * repaired).
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestNetns, destroyTestNetns } from '../lib/netns';
import { MASQ_POSTROUTING, MASQ_TABLE, type NftCommand, genMasqBase, parseRuleset } from '../../plugins/pkg/nft/masq';
import { PORTMAP_TABLE, genPortmapBase } from '../../plugins/pkg/nft/portmap';
import { skeletonPresent } from '../../plugins/pkg/nft/skeleton';

let ns: string;
beforeAll(() => { [ns] = createTestNetns(1); });
afterAll(() => destroyTestNetns([ns].filter(Boolean)));

const nft = (...args: string[]) => {
  const r = spawnSync('nsenter', [`--net=${ns}`, '--', 'nft', ...args], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
};
const apply = (cmds: NftCommand[]) => nft('-j', JSON.stringify({ nftables: cmds }));

describe('skeleton comparison against the kernel\'s listing', () => {
  it('masquerade: the entry chain listed alone shows the skeleton intact; a flushed or re-hooked one does not', () => {
    const base = genMasqBase();
    const list = () => parseRuleset(nft('-j', 'list', 'chain', 'inet', MASQ_TABLE, MASQ_POSTROUTING));
    apply(base);
    expect(skeletonPresent(list(), base)).toBe(true);
    nft('flush', 'chain', 'inet', MASQ_TABLE, MASQ_POSTROUTING);
    expect(skeletonPresent(list(), base)).toBe(false);
    apply(base);
    expect(skeletonPresent(list(), base)).toBe(true);
    nft('add', 'rule', 'inet', MASQ_TABLE, MASQ_POSTROUTING, 'counter');
    expect(skeletonPresent(list(), base)).toBe(false);
  });

  it('portmap, both families, with conditions: intact after it was written, not after a chain was flushed', () => {
    const cond = [{ match: { op: '!=', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '192.0.2.9' } }];
    const bases = [genPortmapBase(false, true, cond), genPortmapBase(true, true, [])];
    const list = () => parseRuleset(nft('-j', 'list', 'ruleset'));
    for (const b of bases) apply(b);
    for (const b of bases) expect(skeletonPresent(list(), b)).toBe(true);
    expect(skeletonPresent(list(), genPortmapBase(false, true, []))).toBe(false); // other conditions
    nft('flush', 'chain', 'ip', PORTMAP_TABLE, 'prerouting');
    expect(skeletonPresent(list(), bases[0])).toBe(false);
    expect(skeletonPresent(list(), bases[1])).toBe(true);
    nft('delete', 'chain', 'ip6', PORTMAP_TABLE, 'masquerading');
    expect(skeletonPresent(list(), bases[1])).toBe(false);
  });
});
