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
import { MASQ_POSTROUTING, MASQ_TABLE, genMasqBase } from '../../plugins/pkg/nft/masq';
import { type NftCommand, parseRuleset } from '../../plugins/pkg/nft/ruleset';
import { PORTMAP_TABLE, genPortmapBase } from '../../plugins/pkg/nft/portmap';
import { skeletonPresent } from '../../plugins/pkg/nft/skeleton';
import { type FirewallDeps, setupIpMasq } from '../../plugins/pkg/nft/apply';
import { setupPortmapNft } from '../../plugins/pkg/nft/portmap-apply';
import { parsePrefix } from '../../plugins/pkg/ip';

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

describe('ADD through the applier (nft run in the test netns)', () => {
  const batches: string[] = [];
  const deps: FirewallDeps = {
    run: async (bin, args, input) => {
      const r = spawnSync('nsenter', [`--net=${ns}`, '--', bin, ...args], { encoding: 'utf8', input });
      if (args[1]?.startsWith('{')) batches.push(args[1]);
      return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
    },
    iptablesNft: () => true,
    has: (t) => t === 'nft',
  };
  const lastBatch = () => JSON.parse(batches.at(-1)!).nftables as Record<string, unknown>[];

  it('masquerade: the skeleton goes in once, later ADDs send their rules alone, a damaged skeleton is re-written', async () => {
    nft('delete', 'table', 'inet', MASQ_TABLE);
    await setupIpMasq('nftables', [parsePrefix('10.7.0.2/24')], 'n', 'eth0', 'c1', deps);
    expect(lastBatch().some((c) => 'flush' in c)).toBe(true);
    await setupIpMasq('nftables', [parsePrefix('10.7.0.3/24')], 'n', 'eth0', 'c2', deps);
    expect(lastBatch().map((c) => Object.keys((c as { add: object }).add ?? {})[0])).toEqual(['rule']);
    nft('flush', 'chain', 'inet', MASQ_TABLE, MASQ_POSTROUTING);
    await setupIpMasq('nftables', [parsePrefix('10.7.0.4/24')], 'n', 'eth0', 'c3', deps);
    expect(lastBatch().some((c) => 'flush' in c)).toBe(true);
    expect(nft('list', 'chain', 'inet', MASQ_TABLE, MASQ_POSTROUTING)).toContain('goto masq_checks');
    expect(nft('list', 'chain', 'inet', MASQ_TABLE, 'masq_checks').match(/ masquerade /g)).toHaveLength(3);
  });

  it('portmap: the same', async () => {
    const spec = (id: string, ip: string, port: number) => ({
      network: 'n', containerId: id, containerIP: ip, v6: false, snat: true, masqAll: false, conditions: [],
      mappings: [{ hostPort: port, containerPort: 80, protocol: 'tcp' as const, hostIP: '' }],
    });
    nft('delete', 'table', 'ip', PORTMAP_TABLE);
    await setupPortmapNft([spec('p1', '10.7.0.2', 8001)], deps);
    expect(lastBatch().some((c) => 'flush' in c)).toBe(true);
    await setupPortmapNft([spec('p2', '10.7.0.3', 8002)], deps);
    expect(lastBatch().every((c) => 'add' in c && 'rule' in (c.add as object))).toBe(true);
    nft('delete', 'chain', 'ip', PORTMAP_TABLE, 'output');
    await setupPortmapNft([spec('p3', '10.7.0.4', 8003)], deps);
    expect(nft('list', 'chain', 'ip', PORTMAP_TABLE, 'output')).toContain('jump hostports_all');
    expect(nft('list', 'chain', 'ip', PORTMAP_TABLE, 'hostports').match(/dnat/g)).toHaveLength(3);
  });
});
