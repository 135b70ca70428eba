import { describe, expect, it } from 'vitest';
import { type FirewallDeps, type ExecResult, emptyRuleset, parseRuleset } from '../../pkg/nft';
import { FlannelFirewall } from './firewall';
import { type Logger } from '../log';
import { iptChains, iptRepair, nftChains, nftRepair } from './rules';

const input = { network: '10.244.0.0/16', podCidr: '10.244.3.0/24', masq: true, forward: true };
const C = '-m comment --comment "flanneld masq"';

describe('iptables rules', () => {
  it("are flanneld's, in `iptables -S` form and order", () => {
    const [nat, filter] = iptChains(input);
    expect(nat.jump).toBe(`-A POSTROUTING ${C} -j FLANNEL-POSTRTG`);
    expect(nat.rules).toEqual([
      `-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 ${C} -j RETURN`,
      `-A FLANNEL-POSTRTG -s 10.244.3.0/24 -d 10.244.0.0/16 ${C} -j RETURN`,
      `-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.3.0/24 ${C} -j RETURN`,
      `-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.3.0/24 ${C} -j RETURN`,
      `-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 ${C} -j MASQUERADE --random-fully`,
      `-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 ${C} -j MASQUERADE --random-fully`,
    ]);
    expect(filter).toMatchObject({ table: 'filter', parent: 'FORWARD', chain: 'FLANNEL-FWD', jump: '-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD' });
    expect(filter.rules).toEqual([
      '-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
      '-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
    ]);
    expect(iptChains({ ...input, masq: false }).map((c) => c.chain)).toEqual(['FLANNEL-FWD']);
    // --ip-masq-fully-random-disable: flanneld's MASQUERADE rules without --random-fully
    expect(iptChains({ ...input, randomFully: false })[0].rules.slice(4)).toEqual([
      `-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 ${C} -j MASQUERADE`, `-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 ${C} -j MASQUERADE`]);
    expect(iptChains({ ...input, forward: false }).map((c) => c.chain)).toEqual(['FLANNEL-POSTRTG']);
  });

  it('repair: nothing when in place; a whole rebuild (old jumps deleted) when anything differs', () => {
    const [nat] = iptChains(input);
    const good = ['-P POSTROUTING ACCEPT', '-N FLANNEL-POSTRTG', '-A POSTROUTING -j KUBE-POSTROUTING', nat.jump, ...nat.rules];
    expect(iptRepair(nat, good)).toBe('');
    // a missing rule, a duplicated jump, a missing chain, another subnet
    const dupJump = [...good, nat.jump];
    const text = iptRepair(nat, dupJump);
    expect(text.split('\n')).toEqual(['*nat', ':FLANNEL-POSTRTG - [0:0]', `-D POSTROUTING ${C} -j FLANNEL-POSTRTG`, `-D POSTROUTING ${C} -j FLANNEL-POSTRTG`,
      '-F FLANNEL-POSTRTG', ...nat.rules, nat.jump, 'COMMIT', '']);
    expect(iptRepair(nat, good.filter((l) => l !== nat.rules[3]))).toContain('-F FLANNEL-POSTRTG');
    expect(iptRepair(nat, ['-P POSTROUTING ACCEPT'])).not.toContain('-D ');
    expect(iptRepair(iptChains({ ...input, podCidr: '10.244.9.0/24' })[0], good)).toContain('-s 10.244.9.0/24 -d 10.244.0.0/16');
    // someone else's rule jumping to our chain from POSTROUTING counts as a wrong jump
    expect(iptRepair(nat, [...good, '-A POSTROUTING -s 1.2.3.4/32 -j FLANNEL-POSTRTG'])).toContain('-D POSTROUTING -s 1.2.3.4/32 -j FLANNEL-POSTRTG');
  });
});

describe('nftables rules', () => {
  // what `nft -j list table ip flannel-ipv4` printed after applying nftRepair's batch (nft 1.0.6)
  const listed = (drop = -1) => {
    const want = nftChains(input);
    const items: object[] = [{ table: { family: 'ip', name: 'flannel-ipv4', handle: 3 } }];
    let h = 1;
    for (const w of want) items.push({ chain: { family: 'ip', table: 'flannel-ipv4', name: w.chain.name, handle: h++, type: w.chain.type, hook: w.chain.hook, prio: w.chain.prio, policy: 'accept' } });
    let k = 0;
    for (const w of want) for (const expr of w.rules) if (k++ !== drop) items.push({ rule: { family: 'ip', table: 'flannel-ipv4', chain: w.chain.name, handle: h++, expr } });
    return parseRuleset(JSON.stringify({ nftables: [{ metainfo: {} }, ...items] }));
  };

  it("are flanneld's knftables rules", () => {
    const [post, fwd] = nftChains(input);
    expect(post.chain).toMatchObject({ family: 'ip', table: 'flannel-ipv4', name: 'postrtg', type: 'nat', hook: 'postrouting', prio: 100 });
    expect(fwd.chain).toMatchObject({ name: 'forward', type: 'filter', hook: 'forward', prio: 0 });
    expect(post.rules).toHaveLength(6);
    expect(post.rules[0]).toEqual([{ match: { op: '==', left: { meta: { key: 'mark' } }, right: 0x4000 } }, { return: null }]);
    expect(post.rules[3][0]).toEqual({ match: { op: '!=', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: { prefix: { addr: '10.244.3.0', len: 24 } } } });
    expect(post.rules[4].at(-1)).toEqual({ masquerade: { flags: 'fully-random' } });
    expect(fwd.rules.map((r) => r.at(-1))).toEqual([{ accept: null }, { accept: null }]);
  });

  it('--ip-masq-fully-random-disable: masquerade without fully-random (as nft -j lists it)', () => {
    const [post] = nftChains({ ...input, randomFully: false });
    expect(post.rules.slice(4).map((r) => r.at(-1))).toEqual([{ masquerade: null }, { masquerade: null }]);
  });

  it('repair: nothing when listed as wanted; only the chain that differs is rebuilt, table first, flushed', () => {
    expect(nftRepair(nftChains(input), listed())).toEqual({ cmds: [], chains: [] });
    const r = nftRepair(nftChains(input), listed(7)); // a forward rule gone
    expect(r.chains).toEqual(['forward']);
    expect(r.cmds.map((c) => Object.keys(c)[0] + ' ' + Object.keys(Object.values(c)[0])[0])).toEqual(['add table', 'add chain', 'flush chain', 'add rule', 'add rule']);
    expect(nftRepair(nftChains(input), emptyRuleset()).chains).toEqual(['postrtg', 'forward']);
  });
});

describe('FlannelFirewall on a fake runner', () => {
  const log: Logger = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };
  function fake(state: Record<string, string>) {
    const calls: string[] = [];
    const deps: FirewallDeps = {
      run: async (bin, args, inp): Promise<ExecResult> => {
        calls.push(`${bin} ${args.join(' ')}${inp ? `\n${inp}` : ''}`);
        if (bin === 'iptables') return { code: 0, stdout: state[args[2]] ?? '', stderr: '' };
        if (bin === 'nft' && args[1] === 'list') return { code: 1, stdout: '', stderr: 'Error: No such file or directory' };
        return { code: 0, stdout: '', stderr: '' };
      },
      iptablesNft: () => true,
      has: () => true,
    };
    return { deps, calls };
  }

  it('iptables: lists each table, restores only the chain that differs', async () => {
    const [nat, filter] = iptChains(input);
    const f = fake({ nat: ['-N FLANNEL-POSTRTG', nat.jump, ...nat.rules].join('\n'), filter: '-P FORWARD ACCEPT\n' });
    expect(await new FlannelFirewall('iptables', input, log, f.deps).ensure()).toBe(1);
    expect(f.calls.map((c) => c.split('\n')[0])).toEqual(['iptables -w -t nat -S', 'iptables -w -t filter -S', 'iptables-restore -w --noflush']);
    expect(f.calls[2]).toContain(filter.jump);
  });

  it('nftables: a missing table → one batch with both chains; nothing when masq and forward are off', async () => {
    const f = fake({});
    expect(await new FlannelFirewall('nftables', input, log, f.deps).ensure()).toBe(2);
    expect(f.calls.map((c) => c.slice(0, 12))).toEqual(['nft -j list ', 'nft -j {"nft']);
    const off = fake({});
    expect(await new FlannelFirewall('nftables', { ...input, masq: false, forward: false }, log, off.deps).ensure()).toBe(0);
    expect(off.calls).toEqual([]);
  });
});
