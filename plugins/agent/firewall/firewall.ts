/**
 * Applies flanneld's masquerade/forward rules (rules.ts) and keeps them:
 * each ensure() lists what the kernel holds (`iptables -t <table> -S`, or
 * `nft -j list table ip flannel-ipv4`; for IPv6 `ip6tables`, `ip6
 * flannel-ipv6`) and rebuilds only the chains that differ, so a restart or a
 * steady state changes nothing and a removed chain, jump or rule comes back.
 * One FlannelFirewall holds the rules of every enabled family. Through
 * pkg/nft's FirewallDeps (the tools it runs: nft, iptables), so unit tests run
 * it on a fake runner.
 */
import { type FirewallDeps, FirewallError, defaultDeps, nftApply, nftList } from '../../pkg/nft';
import { type Logger } from '../log';
import { type RulesInput, iptChains, iptRepair, nftChains, nftRepair, nftTableOf } from './rules';

export type FirewallMode = 'iptables' | 'nftables';

const firstLine = (s: string) => s.trim().split('\n')[0] ?? '';

export class FlannelFirewall {
  readonly #inputs: readonly RulesInput[];

  constructor(
    private readonly mode: FirewallMode,
    /** one family's rules, or both (IPv4 first) */
    input: RulesInput | readonly RulesInput[],
    private readonly log: Logger,
    private readonly deps: FirewallDeps = defaultDeps,
  ) {
    this.#inputs = Array.isArray(input) ? input : [input as RulesInput];
  }

  /** Nothing to install (neither --ip-masq nor forward rules)? */
  get empty(): boolean {
    return this.#inputs.every((i) => !i.masq && !i.forward);
  }

  /** Makes the kernel hold our rules; returns the number of chains rebuilt (0 = all in place). */
  async ensure(): Promise<number> {
    let n = 0;
    for (const i of this.#inputs) {
      if (!i.masq && !i.forward) continue;
      n += this.mode === 'nftables' ? await this.#ensureNft(i) : await this.#ensureIpt(i);
    }
    return n;
  }

  async #ensureNft(input: RulesInput): Promise<number> {
    const { family, table } = nftTableOf(input.v6);
    const rs = await nftList(['table', family, table], this.deps);
    const { cmds, chains } = nftRepair(nftChains(input), rs);
    if (!cmds.length) return 0;
    await nftApply(cmds, this.deps);
    this.log.info(`nftables: (re)built table ${family} ${table} chain${chains.length > 1 ? 's' : ''} ${chains.join(', ')}`);
    return chains.length;
  }

  async #ensureIpt(input: RulesInput): Promise<number> {
    const bin = input.v6 ? 'ip6tables' : 'iptables';
    let n = 0;
    for (const w of iptChains(input)) {
      const s = await this.deps.run(bin, ['-w', '-t', w.table, '-S']);
      if (s.code !== 0) throw new FirewallError(`${bin} -t ${w.table} -S failed: ${firstLine(s.stderr)}`, s.stderr);
      const text = iptRepair(w, s.stdout.split('\n').filter(Boolean));
      if (!text) continue;
      const r = await this.deps.run(`${bin}-restore`, ['-w', '--noflush'], text);
      if (r.code !== 0) throw new FirewallError(`${bin}-restore (${w.chain}) failed: ${firstLine(r.stderr)}`, r.stderr);
      this.log.info(`${bin}: (re)built ${w.table} ${w.chain} and its ${w.parent} jump`);
      n++;
    }
    return n;
  }
}
