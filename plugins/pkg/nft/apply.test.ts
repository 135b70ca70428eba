import { describe, expect, it } from 'vitest';
import { parseCidr } from '../ip';
import { type FirewallDeps, setupIpMasq, teardownIpMasq, checkIpMasq, nftList } from './apply';
import type { ExecResult } from './exec';
import { MASQ_CHAIN, MASQ_TABLE, iptablesChainName, masqComment, masqRuleExpr } from './masq';
import { genSpoofCheck, genSpoofTeardown } from './spoofchk';

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
const listing = (items: object[]) => JSON.stringify({ nftables: [{ metainfo: {} }, ...items] });
const missing = { code: 1, stderr: 'Error: No such file or directory' };

describe('setupIpMasq', () => {
  it('nftables: one batch (no listing), plus the iptables tombstone', async () => {
    const { deps, calls } = fake();
    await setupIpMasq('nftables', [parseCidr('10.1.1.5/24')], 'net', 'ctr', deps);
    expect(calls.map((c) => `${c.bin} ${c.args[0]} ${c.args[1]?.slice(0, 4)}`)).toEqual(['nft -j {"nf', 'iptables-restore -w --no']);
    const batch = JSON.parse(calls[0].args[1]);
    expect(batch.nftables.at(-1).add.rule).toMatchObject({ chain: MASQ_CHAIN, comment: masqComment('net', 'ctr'), expr: masqRuleExpr(parseCidr('10.1.1.5/24')) });
    expect(calls[1].input).toContain(`:${iptablesChainName('net', 'ctr')} - [0:0]`);
    expect(calls[1].input).not.toContain('MASQUERADE');
  });
  it('iptables: restore input with the reference layout per family', async () => {
    const { deps, calls } = fake();
    await setupIpMasq('iptables', [parseCidr('10.1.1.5/24'), parseCidr('fd00::5/64')], 'net', 'ctr', deps);
    const restores = calls.filter((c) => c.bin.endsWith('-restore'));
    expect(restores.map((c) => c.bin)).toEqual(['iptables-restore', 'ip6tables-restore']);
    expect(restores[0].input).toContain('! -d 224.0.0.0/4 -j MASQUERADE');
    expect(restores[1].input).toContain('! -d ff00::/8 -j MASQUERADE');
  });
  it('a failing apply is retried, then reported', async () => {
    const { deps, calls } = fake({ 'nft -j {': { code: 1, stderr: 'Error: busy' } });
    await expect(setupIpMasq('nftables', [parseCidr('10.1.1.5/24')], 'net', 'ctr', deps)).rejects.toThrow(/nft apply failed: Error: busy/);
    expect(calls.filter((c) => c.args[1]?.startsWith('{')).length).toBe(3);
  });
});

describe('teardownIpMasq', () => {
  it('removes our rules and the reference chain found through nft', async () => {
    const chain = iptablesChainName('net', 'ctr');
    const { deps, calls } = fake({
      'nft -j list ruleset': {
        stdout: listing([
          { rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 9, comment: masqComment('net', 'ctr'), expr: [] } },
          { chain: { family: 'ip', table: 'nat', name: chain } },
          { rule: { family: 'ip', table: 'nat', chain: 'POSTROUTING', handle: 4, expr: [{ jump: { target: chain } }] } },
        ]),
      },
    });
    await teardownIpMasq('net', 'ctr', deps);
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
    await teardownIpMasq('net', 'ctr', a.deps);
    expect(a.calls.some((c) => c.args[1]?.startsWith('{'))).toBe(false);
    const b = fake({}, []);
    await teardownIpMasq('net', 'ctr', b.deps);
    expect(b.calls).toEqual([]);
  });
  it('legacy iptables: found with -S and removed with restore', async () => {
    const chain = iptablesChainName('net', 'ctr');
    const { deps, calls } = fake({
      'nft -j list': missing,
      'iptables -w -t nat -S': { stdout: `-P POSTROUTING ACCEPT\n-N ${chain}\n-A POSTROUTING -s 10.1.1.5/32 -j ${chain}\n` },
    });
    deps.iptablesNft = () => false;
    await teardownIpMasq('net', 'ctr', deps);
    const r = calls.find((c) => c.bin === 'iptables-restore')!;
    expect(r.input).toContain(`-D POSTROUTING -s 10.1.1.5/32 -j ${chain}`);
    expect(r.input).toContain(`-X ${chain}`);
  });
});

describe('checkIpMasq / nftList', () => {
  it('finds the rule or names the missing address', async () => {
    const ip = parseCidr('10.1.1.5/24');
    const ok = fake({ 'nft -j list': { stdout: listing([{ rule: { family: 'inet', table: MASQ_TABLE, chain: MASQ_CHAIN, handle: 1, comment: masqComment('n', 'c'), expr: masqRuleExpr(ip) } }]) } });
    await expect(checkIpMasq('nftables', [ip], 'n', 'c', ok.deps)).resolves.toBeUndefined();
    await expect(checkIpMasq('nftables', [parseCidr('10.1.1.6/24')], 'n', 'c', ok.deps)).rejects.toThrow(/10.1.1.6 missing/);
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
