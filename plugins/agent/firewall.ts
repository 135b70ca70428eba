/**
 * Applies flanneld's masquerade/forward rules (rules.ts) and keeps them:
 * each ensure() lists what the kernel holds (`iptables -t <table> -S`, or
 * `nft -j list table ip flannel-ipv4`) and rebuilds only the chains that
 * differ, so a restart or a steady state changes nothing and a removed
 * chain, jump or rule comes back. Through pkg/nft's FirewallDeps (the one
 * process-spawning seam), so unit tests run it on a fake runner.
 */
import { type FirewallDeps, FirewallError, defaultDeps, nftApply, nftList } from '../pkg/nft';
import { type Logger } from './log';
import { type RulesInput, NFT_TABLE, iptChains, iptRepair, nftChains, nftRepair } from './rules';

export type FirewallMode = 'iptables' | 'nftables';

const firstLine = (s: string) => s.trim().split('\n')[0] ?? '';

export class FlannelFirewall {
  constructor(
    private readonly mode: FirewallMode,
    private readonly input: RulesInput,
    private readonly log: Logger,
    private readonly deps: FirewallDeps = defaultDeps,
  ) {}

  /** Nothing to install (neither --ip-masq nor forward rules)? */
  get empty(): boolean {
    return !this.input.masq && !this.input.forward;
  }

  /** Makes the kernel hold our rules; returns the number of chains rebuilt (0 = all in place). */
  async ensure(): Promise<number> {
    if (this.empty) return 0;
    return this.mode === 'nftables' ? this.#ensureNft() : this.#ensureIpt();
  }

  async #ensureNft(): Promise<number> {
    const rs = await nftList(['table', 'ip', NFT_TABLE], this.deps);
    const { cmds, chains } = nftRepair(nftChains(this.input), rs);
    if (!cmds.length) return 0;
    await nftApply(cmds, this.deps);
    this.log.info(`nftables: (re)built table ip ${NFT_TABLE} chain${chains.length > 1 ? 's' : ''} ${chains.join(', ')}`);
    return chains.length;
  }

  async #ensureIpt(): Promise<number> {
    let n = 0;
    for (const w of iptChains(this.input)) {
      const s = await this.deps.run('iptables', ['-w', '-t', w.table, '-S']);
      if (s.code !== 0) throw new FirewallError(`iptables -t ${w.table} -S failed: ${firstLine(s.stderr)}`, s.stderr);
      const text = iptRepair(w, s.stdout.split('\n').filter(Boolean));
      if (!text) continue;
      const r = await this.deps.run('iptables-restore', ['-w', '--noflush'], text);
      if (r.code !== 0) throw new FirewallError(`iptables-restore (${w.chain}) failed: ${firstLine(r.stderr)}`, r.stderr);
      this.log.info(`iptables: (re)built ${w.table} ${w.chain} and its ${w.parent} jump`);
      n++;
    }
    return n;
  }
}
