import { describe, expect, it } from 'vitest';
import { parsePrefix, prefixIP } from '../ip';
import { type FirewallDeps, setupIpMasq, teardownIpMasq, checkIpMasq, nftList, iptCniChains, writeMissingTombstones } from './apply';
import type { ExecResult } from './tools';
import { MASQ_CHAIN, MASQ_POSTROUTING, MASQ_TABLE, genMasqBase, iptablesChainName, legacyMasqComment, masqComment, masqRuleExpr } from './masq';
import { genSpoofCheck, genSpoofTeardown } from './spoofchk';
import { afterBatch, listingText } from './skeleton';

/** A fake runner: records calls, answers from a table keyed by "bin args…". */
function fake(answers: Record<string, Partial<ExecResult>> = {}, tools = ['nft', 'iptables', 'iptables-restore', 'ip6tables', 'ip6tables-restore']) {
  const calls: { bin: string; args: string[]; input?: string }[] = [];
  const deps: FirewallDeps = {
    run: async (bin, args, input) => {
      calls.push({ bin, args, input });
      const key = Object.keys(answers).find((k) => `${bin} ${args.join(' ')}`.startsWith(k));
      return { code: 0, stdout: '', stderr: '', ...(key ? answers[key] : {}) };
    },
    iptablesNft: () => true,
    has: (t) => tools.includes(t),
  };
  return { deps, calls };
}
const listed = (items: object[]) => JSON.stringify({ nftables: [{ metainfo: {} }, ...items] });
const missing = { code: 1, stderr: 'Error: No such file or directory' };

describe('setupIpMasq', () => {
  it('nftables: a listing of the entry chain, then one batch (the skeleton only when missing); no iptables tool run by default', async () => {
    const { deps, calls } = fake({ 'nft -j list chain': missing });
    await setupIpMasq('nftables', [parsePrefix('10.1.1.5/24'), parsePrefix('fd00::5/64')], 'net', 'eth0', 'ctr', deps);
    expect(calls.map((c) => `${c.bin} ${c.args.slice(0, 3).join(' ').slice(0, 13)}`)).toEqual(['nft -j list chain', 'nft -j {"nftables']);
    expect(calls[0].args).toEqual(['-j', 'list', 'chain', 'inet', MASQ_TABLE, MASQ_POSTROUTING]);
    const batch = JSON.parse(calls[1].args[1]);
    expect(batch.nftables.filter((c: { add?: { chain?: unknown } }) => c.add?.chain)).toHaveLength(2);
    expect(batch.nftables.at(-2).add.rule).toMatchObject({ chain: MASQ_CHAIN, comment: masqComment('net', 'eth0', 'ctr'), expr: masqRuleExpr(parsePrefix('10.1.1.5/24')) });
    // the skeleton in place (as listed back): the batch is the container's rules alone
    const all = afterBatch(genMasqBase());
    const entry = listingText({ tables: [], chains: all.chains.filter((c) => c.hook), rules: all.rules.filter((r) => r.chain === MASQ_POSTROUTING) });
    const again = fake({ 'nft -j list chain': { stdout: entry } });
    await setupIpMasq('nftables', [parsePrefix('10.1.1.6/24')], 'net', 'eth0', 'ctr2', again.deps);
    expect(JSON.parse(again.calls[1].args[1]).nftables).toEqual([{ add: { rule: expect.objectContaining({ chain: MASQ_CHAIN, comment: masqComment('net', 'eth0', 'ctr2') }) } }]);
  });
  it('nftables with tombstone: the reference chain, empty, per family beside the batch', async () => {
    const { deps, calls } = fake();
    await setupIpMasq('nftables', [parsePrefix('10.1.1.5/24'), parsePrefix('fd00::5/64')], 'net', 'eth0', 'ctr', deps, { tombstone: true });
    expect(calls.map((c) => c.bin).sort()).toEqual(['ip6tables-restore', 'iptables-restore', 'nft', 'nft']);
    const v4 = calls.find((c) => c.bin === 'iptables-restore')!;
    const v6 = calls.find((c) => c.bin === 'ip6tables-restore')!;
    expect(v4.args).toEqual(['-w', '--noflush']);
    expect(v4.input).toContain(`:${iptablesChainName('net', 'ctr')} - [0:0]`);
    expect(v4.input).toContain(`-A POSTROUTING -s 10.1.1.5 -j ${iptablesChainName('net', 'ctr')}`);
    expect(v4.input).not.toContain('MASQUERADE');
    expect(v6.input).toContain('-A POSTROUTING -s fd00::5 ');
    expect(v6.input).not.toContain('10.1.1.5');
  });
  it('iptables: restore input with the reference layout per family', async () => {
    const { deps, calls } = fake();
    await setupIpMasq('iptables', [parsePrefix('10.1.1.5/24'), parsePrefix('fd00::5/64')], 'net', 'eth0', 'ctr', deps);
    const restores = calls.filter((c) => c.bin.endsWith('-restore'));
    expect(restores.map((c) => c.bin)).toEqual(['iptables-restore', 'ip6tables-restore']);
    expect(restores[0].input).toContain('! -d 224.0.0.0/4 -j MASQUERADE');
    expect(restores[1].input).toContain('! -d ff00::/8 -j MASQUERADE');
  });
  it('a failing apply is retried, then reported', async () => {
    const { deps, calls } = fake({ 'nft -j {': { code: 1, stderr: 'Error: busy' } });
    await expect(setupIpMasq('nftables', [parsePrefix('10.1.1.5/24')], 'net', 'eth0', 'ctr', deps)).rejects.toThrow(/nft apply failed: Error: busy/);
    expect(calls.filter((c) => c.args[1]?.startsWith('{')).length).toBe(3);
  });
});

describe('teardownIpMasq', () => {
  it('removes our rules and the reference chain found through nft', async () => {
    const chain = iptablesChainName('net', 'ctr');
    const { deps, calls } = fake({
      'nft -j list ruleset': {
        stdout: listed([
          { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 9, comment: masqComment('net', 'eth0', 'ctr'), expr: [] } },
          { chain: { family: 'ip', table: 'nat', name: chain } },
          { rule: { family: 'ip', table: 'nat', chain: 'POSTROUTING', handle: 4, expr: [{ jump: { target: chain } }] } },
        ]),
      },
    });
    await teardownIpMasq('net', 'eth0', 'ctr', deps);
    const apply = calls.find((c) => c.args[1]?.startsWith('{'))!;
    expect(calls.filter((c) => c.args[1] === 'list').length).toBe(1);
    expect(JSON.parse(apply.args[1]).nftables).toEqual([
      { delete: { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 9, expr: [] } } },
      { delete: { rule: { family: 'ip', table: 'nat', chain: 'POSTROUTING', handle: 4, expr: [] } } },
      { flush: { chain: { family: 'ip', table: 'nat', name: chain } } },
      { delete: { chain: { family: 'ip', table: 'nat', name: chain } } },
    ]);
  });
  it('nothing to remove → no apply; no tools → nothing at all', async () => {
    const a = fake({ 'nft -j list': missing });
    await teardownIpMasq('net', 'eth0', 'ctr', a.deps);
    expect(a.calls.some((c) => c.args[1]?.startsWith('{'))).toBe(false);
    const b = fake({}, []);
    await teardownIpMasq('net', 'eth0', 'ctr', b.deps);
    expect(b.calls).toEqual([]);
  });
  it('legacy iptables: found with -S and removed with restore', async () => {
    const chain = iptablesChainName('net', 'ctr');
    const { deps, calls } = fake({
      'nft -j list': missing,
      'iptables -w -t nat -S': { stdout: `-P POSTROUTING ACCEPT\n-N ${chain}\n-A POSTROUTING -s 10.1.1.5/32 -j ${chain}\n` },
    });
    deps.iptablesNft = () => false;
    await teardownIpMasq('net', 'eth0', 'ctr', deps);
    const r = calls.find((c) => c.bin === 'iptables-restore')!;
    expect(r.input).toContain(`-D POSTROUTING -s 10.1.1.5/32 -j ${chain}`);
    expect(r.input).toContain(`-X ${chain}`);
  });
});

describe('writeMissingTombstones (flax tombstones)', () => {
  const rule = (handle: number, cid: string, src: string) => ({
    rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle, comment: masqComment('net', 'eth0', cid), expr: masqRuleExpr(parsePrefix(`${src}/${src.includes(':') ? 64 : 24}`)) },
  });
  const table = { stdout: listed([rule(1, 'a', '10.1.1.5'), rule(2, 'a', 'fd00::5'), rule(3, 'b', '10.1.1.6')]) };
  const known = { networks: ['net'] };

  it('iptables-nft: chains and jumps from nft listings of table ip/ip6 nat; writes only the missing, one restore per family', async () => {
    const b = iptablesChainName('net', 'b');
    const saddr = { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '10.1.1.6' } };
    const { deps, calls } = fake({
      'nft -j list table inet': table,
      'nft -j list table ip nat': { stdout: listed([{ chain: { family: 'ip', table: 'nat', name: b } }, { rule: { family: 'ip', table: 'nat', chain: 'POSTROUTING', handle: 7, expr: [saddr, { jump: { target: b } }] } }]) },
      'nft -j list table ip6 nat': missing,
    });
    const r = await writeMissingTombstones(known, {}, deps);
    expect(r.write.map((t) => [t.containerId, t.ips.map(prefixIP)])).toEqual([['a', ['10.1.1.5', 'fd00::5']]]);
    expect(r.present.map((t) => t.containerId)).toEqual(['b']);
    expect(r.failed).toEqual([]);
    expect(calls.filter((c) => c.bin !== 'nft').map((c) => c.bin).sort()).toEqual(['ip6tables-restore', 'iptables-restore']);
    expect(calls.some((c) => c.bin === 'iptables' || c.bin === 'ip6tables')).toBe(false);
  });
  it('legacy iptables: chains from -S; dry run writes nothing', async () => {
    const a = iptablesChainName('net', 'a');
    const { deps, calls } = fake({ 'nft -j list table inet': table, 'iptables -w -t nat -S': { stdout: `-P POSTROUTING ACCEPT\n-N ${a}\n-A POSTROUTING -s 10.1.1.5/32 -j ${a}\n` } });
    deps.iptablesNft = () => false;
    expect(await iptCniChains(deps)).toEqual({ v4: { chains: new Set([a]), jumps: new Set([`${a} 10.1.1.5`]) }, v6: { chains: new Set(), jumps: new Set() } });
    const r = await writeMissingTombstones(known, { dryRun: true }, deps);
    expect(r.write.map((t) => [t.containerId, t.ips.map(prefixIP)])).toEqual([['a', ['fd00::5']], ['b', ['10.1.1.6']]]);
    expect(calls.some((c) => c.bin.endsWith('-restore'))).toBe(false);
  });
  it('a failed write is recorded, the others still run; no ip6tables → the IPv6 part is skipped', async () => {
    const { deps, calls } = fake({ 'nft -j list table inet': table, 'iptables-restore': { code: 2, stderr: 'iptables-restore: line 2 failed' } }, ['nft', 'iptables', 'iptables-restore']);
    const r = await writeMissingTombstones(known, {}, deps);
    expect(r.failed.map((f) => [f.tombstone.containerId, f.error])).toEqual([['a', 'iptables-restore failed: iptables-restore: line 2 failed'], ['b', 'iptables-restore failed: iptables-restore: line 2 failed']]);
    expect(r.skipped).toEqual([{ key: 'net a', address: 'fd00::5', reason: 'ip6tables is not installed' }]);
    expect(calls.filter((c) => c.bin === 'iptables-restore')).toHaveLength(2);
  });
  it('no nft: no rules of ours can exist, nothing runs', async () => {
    const { deps, calls } = fake({}, ['iptables', 'iptables-restore']);
    expect(await writeMissingTombstones(known, {}, deps)).toEqual({ write: [], present: [], skipped: [], failed: [] });
    expect(calls).toEqual([]);
  });
});

describe('checkIpMasq / nftList', () => {
  it('finds the rule or names the missing address', async () => {
    const ip = parsePrefix('10.1.1.5/24');
    const ok = fake({ 'nft -j list': { stdout: listed([{ rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 1, comment: masqComment('n', 'eth0', 'c'), expr: masqRuleExpr(ip) } }]) } });
    await expect(checkIpMasq('nftables', [ip], 'n', 'eth0', 'c', ok.deps)).resolves.toBeUndefined();
    await expect(checkIpMasq('nftables', [parsePrefix('10.1.1.6/24')], 'n', 'eth0', 'c', ok.deps)).rejects.toThrow(/10.1.1.6 missing/);
  });
  it('a rule of flax\'s legacy comment passes too; another interface\'s does not', async () => {
    const ip = parsePrefix('10.1.1.5/24');
    const one = (comment: string) => fake({ 'nft -j list': { stdout: listed([{ rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 1, comment, expr: masqRuleExpr(ip) } }]) } }).deps;
    await expect(checkIpMasq('nftables', [ip], 'n', 'eth0', 'c', one(legacyMasqComment('n', 'c')))).resolves.toBeUndefined();
    await expect(checkIpMasq('nftables', [ip], 'n', 'eth0', 'c', one(masqComment('n', 'eth1', 'c')))).rejects.toThrow(/10.1.1.5 missing/);
  });
  it('other nft failures are errors', async () => {
    const { deps } = fake({ 'nft -j list': { code: 1, stderr: 'Error: Operation not permitted' } });
    await expect(nftList(['ruleset'], deps)).rejects.toThrow(/Operation not permitted/);
  });
});

describe('macspoofchk data', () => {
  it('per attachment chains with the MAC and drop, torn down by comment and name', () => {
    const cmds = genSpoofCheck('ctr-eth0', 'veth1234abcd', '02:00:00:00:00:01');
    const s = JSON.stringify(cmds);
    expect(s).toContain('"hook":"prerouting","prio":-300');
    expect(s).toContain('"right":"veth1234abcd"');
    expect(s).toContain('"right":"02:00:00:00:00:01"');
    expect(s).toContain('{"drop":null}');
    const rs = {
      tables: [],
      chains: [{ family: 'bridge' as const, table: 'nat', name: 'cni-br-iface-ctr-eth0' }, { family: 'bridge' as const, table: 'nat', name: 'cni-br-iface-ctr-eth0-mac' }],
      rules: [{ family: 'bridge' as const, table: 'nat', chain: 'PREROUTING', handle: 3, comment: 'macspoofchk-ctr-eth0', expr: [] }],
    };
    const td = genSpoofTeardown(rs, 'ctr-eth0');
    expect(td.map((c) => Object.keys(c)[0])).toEqual(['delete', 'flush', 'flush', 'delete', 'delete']);
  });
});
