/**
 * The applier: the only code that turns rule data (masq.ts) into kernel
 * state, through `nft -j` (list) and `nft -j -f -` (atomic batch), and
 * `iptables-restore --noflush` for the reference's iptables layout.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type ExecResult, type Tools, findTool, iptablesIsNft, spawnRunner } from './tools';
import {
  MASQ_CHAIN, MASQ_POSTROUTING, MASQ_TABLE, commentIsStale, findMasqRules, genIptChainTeardown, genIptablesMasq, genIptablesTeardown,
  genIptablesTombstone, genMasqChain, genMasqTeardown, iptChains, iptablesChainName, masqRuleExpr,
} from './masq';
import { type NftCommand, type Ruleset, emptyRuleset, mergeRulesets, parseRuleset } from './ruleset';
import { type IptChains, type IptFamily, type KnownNames, type Tombstone, type TombstonePlan, iptFamilyFromNft, iptFamilyFromSave, planTombstones } from './tombstone';
import { type Prefix, prefixIP } from '../ip';

export class FirewallError extends Error {
  constructor(message: string, readonly stderr = '') {
    super(message);
    this.name = 'FirewallError';
  }
}

/** The tools the applier runs (a plugin's: its Host's `tools`). */
export type FirewallDeps = Tools;
/** This process's tools (flaxd, the CLI): its environment at each call. */
export const defaultDeps: FirewallDeps = { run: spawnRunner, iptablesNft: () => iptablesIsNft(), has: (t) => findTool(t) !== null, tmpDir: tmpdir };

const notFound = (r: ExecResult) => r.code !== 0 && /No such file or directory/.test(r.stderr);
const firstLine = (s: string) => s.trim().split('\n').slice(0, 3).join(' | ');

/** `nft -j list <what…>`; a missing table/chain lists as empty. */
export async function nftList(what: string[], deps: FirewallDeps = defaultDeps): Promise<Ruleset> {
  const r = await deps.run('nft', ['-j', 'list', ...what]);
  if (notFound(r)) return emptyRuleset();
  if (r.code !== 0) throw new FirewallError(`nft list ${what.join(' ')} failed: ${firstLine(r.stderr)}`, r.stderr);
  return parseRuleset(r.stdout);
}

/** Largest batch passed on the command line (nft -f - needs /dev/stdin, which a socket stdin cannot open). */
const ARGV_MAX = 100_000;

/**
 * Applies a batch atomically (`nft -j <batch>`, or `nft -j -f <file>` for a
 * very large one). An empty batch is a no-op.
 */
export async function nftApply(cmds: NftCommand[], deps: FirewallDeps = defaultDeps): Promise<void> {
  if (!cmds.length) return;
  const json = JSON.stringify({ nftables: cmds });
  let r: ExecResult;
  if (json.length <= ARGV_MAX) {
    r = await deps.run('nft', ['-j', json]);
  } else {
    const dir = mkdtempSync(path.join(deps.tmpDir?.() ?? tmpdir(), 'flax-nft-'));
    try {
      const f = path.join(dir, 'batch.json');
      writeFileSync(f, json, { mode: 0o600 });
      r = await deps.run('nft', ['-j', '-f', f]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  if (r.code !== 0) throw new FirewallError(`nft apply failed: ${firstLine(r.stderr)}`, r.stderr);
}

const listMasqTable = (deps: FirewallDeps) => nftList(['table', 'inet', MASQ_TABLE], deps);

/** Retries a list-then-apply step a few times (another plugin may change the ruleset in between). */
export async function retrying(fn: () => Promise<void>): Promise<void> {
  let last: unknown;
  for (let i = 0; i < 3; i++) {
    try {
      return await fn();
    } catch (e) {
      last = e;
      if (!(e instanceof FirewallError)) throw e;
    }
  }
  throw last;
}

export type MasqBackend = 'nftables' | 'iptables';

export interface MasqOptions {
  /**
   * nftables backend: also write the reference's (empty) iptables chain and
   * its POSTROUTING jumps (genIptablesTombstone) — one iptables-restore per
   * family and ADD; bridge's `iptablesTombstone`. Default off: `flax
   * tombstones` writes them for every rule when a node switches back.
   */
  tombstone?: boolean;
}

/** Writes the tombstone of network + container for `ips` (a family whose restore tool is missing is skipped). */
export async function writeTombstones(network: string, containerId: string, ips: Prefix[], deps: FirewallDeps): Promise<void> {
  await Promise.all([false, true].map(async (v6) => {
    const tool = v6 ? 'ip6tables-restore' : 'iptables-restore';
    const fam = ips.filter((i) => i.v6 === v6);
    if (!fam.length || !deps.has(tool)) return;
    const r = await deps.run(tool, ['-w', '--noflush'], genIptablesTombstone(network, containerId, fam));
    if (r.code !== 0) throw new FirewallError(`${tool} failed: ${firstLine(r.stderr)}`, r.stderr);
  }));
}

/**
 * The reference's chains (`CNI-<24 hex>`) in table nat and their
 * POSTROUTING jumps, per family: an nft listing of table ip/ip6 nat with
 * iptables-nft (in-process), else `ip(6)tables -t nat -S`.
 * A family whose tools are missing is null.
 */
export async function iptCniChains(deps: FirewallDeps = defaultDeps): Promise<IptChains> {
  const usable = (v6: boolean) => deps.has(v6 ? 'ip6tables' : 'iptables') && deps.has(v6 ? 'ip6tables-restore' : 'iptables-restore');
  const viaNft = deps.has('nft') && deps.iptablesNft();
  const one = async (v6: boolean): Promise<IptFamily | null> => {
    if (!usable(v6)) return null;
    if (viaNft) return iptFamilyFromNft(await nftList(['table', v6 ? 'ip6' : 'ip', 'nat'], deps), v6 ? 'ip6' : 'ip');
    return iptFamilyFromSave(await iptSave(v6, deps));
  };
  const [v4, v6] = await Promise.all([one(false), one(true)]);
  return { v4, v6 };
}

export interface TombstoneReport extends TombstonePlan {
  /** of `write`, those that failed (the rest were written, or would be with dryRun) */
  failed: { tombstone: Tombstone; error: string }[];
}

/**
 * `flax tombstones`: in this netns, writes the tombstone of every
 * (network, container) of table inet cni_plugins_masquerade whose reference
 * chain or POSTROUTING jump does not exist yet (planTombstones), one
 * restore per family each;
 * a failure is recorded and the rest still run. Idempotent.
 */
export async function writeMissingTombstones(
  known: KnownNames, o: { network?: string; dryRun?: boolean } = {}, deps: FirewallDeps = defaultDeps,
): Promise<TombstoneReport> {
  if (!deps.has('nft')) return { write: [], present: [], skipped: [], failed: [] };
  const [rs, chains] = await Promise.all([listMasqTable(deps), iptCniChains(deps)]);
  const report: TombstoneReport = { ...planTombstones(rs.rules, known, chains, o.network), failed: [] };
  if (o.dryRun) return report;
  for (const t of report.write) {
    try {
      await writeTombstones(t.network, t.containerId, t.ips, deps);
    } catch (e) {
      report.failed.push({ tombstone: t, error: (e as Error).message });
    }
  }
  return report;
}

/**
 * Sets up masquerading for a container's addresses (with prefix) with the
 * chosen backend. Idempotent: the container's previous rules are replaced.
 */
export async function setupIpMasq(
  backend: MasqBackend, ips: Prefix[], network: string, ifname: string, containerId: string, deps: FirewallDeps = defaultDeps, o: MasqOptions = {},
): Promise<void> {
  if (!ips.length) return;
  if (backend === 'nftables') {
    // Only the entry chain is listed (its few rules, whatever the number of
    // pods; in-process through libnftables): an intact skeleton is left out
    // of the batch (skeleton.ts), sparing the kernel a base-chain update per
    // ADD. A stale rule of the same key (an ADD that crashed before its
    // rollback) is harmless and goes with DEL, which removes every rule of
    // the key.
    await Promise.all([
      retrying(async () => {
        const entry = await nftList(['chain', 'inet', MASQ_TABLE, MASQ_POSTROUTING], deps);
        await nftApply(genMasqChain(network, ifname, containerId, ips, entry), deps);
      }),
      o.tombstone ? writeTombstones(network, containerId, ips, deps) : Promise.resolve(),
    ]);
    return;
  }
  for (const v6 of [false, true]) {
    const fam = ips.filter((i) => i.v6 === v6);
    if (!fam.length) continue;
    const save = await iptSave(v6, deps);
    const text = genIptablesMasq(network, containerId, fam, save);
    const r = await deps.run(v6 ? 'ip6tables-restore' : 'iptables-restore', ['-w', '--noflush'], text);
    if (r.code !== 0) throw new FirewallError(`${v6 ? 'ip6tables' : 'iptables'}-restore failed: ${firstLine(r.stderr)}`, r.stderr);
  }
}

/** `ip(6)tables -t nat -S` lines. */
export async function iptSave(v6: boolean, deps: FirewallDeps): Promise<string[]> {
  const r = await deps.run(v6 ? 'ip6tables' : 'iptables', ['-w', '-t', 'nat', '-S']);
  if (r.code !== 0) throw new FirewallError(`${v6 ? 'ip6tables' : 'iptables'} -t nat -S failed: ${firstLine(r.stderr)}`, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

/**
 * Removes every masquerade trace of network + container, whichever backend
 * (ours or the reference's) made it; needs no addresses, so it works when
 * the pod netns is gone. Missing tools mean nothing of theirs can exist.
 */
export async function teardownIpMasq(network: string, ifname: string, containerId: string, deps: FirewallDeps = defaultDeps): Promise<void> {
  const chain = iptablesChainName(network, containerId);
  const viaNft = deps.has('nft');
  const iptNft = viaNft && deps.iptablesNft();
  if (viaNft) {
    // One listing of everything (our table and, with iptables-nft, the
    // reference's chains and POSTROUTING jumps), then one atomic batch:
    // two nft execs per DEL.
    await retrying(async () => {
      const rs = await nftList(iptNft ? ['ruleset'] : ['table', 'inet', MASQ_TABLE], deps);
      await nftApply(genMasqTeardown(rs, network, containerId, ifname), deps);
    });
  }
  if (!iptNft) await iptLegacyTeardown([chain], deps);
}

async function iptLegacyTeardown(chains: string[], deps: FirewallDeps): Promise<void> {
  for (const v6 of [false, true]) {
    const tool = v6 ? 'ip6tables' : 'iptables';
    if (!deps.has(tool)) continue;
    const save = await iptSave(v6, deps);
    const text = chains.map((c) => genIptablesTeardown(c, save)).filter(Boolean).join('');
    if (!text) continue;
    const r = await deps.run(`${tool}-restore`, ['-w', '--noflush'], text);
    if (r.code !== 0) throw new FirewallError(`${tool}-restore failed: ${firstLine(r.stderr)}`, r.stderr);
  }
}

/**
 * CHECK: every address has its masquerade rule (nftables backend) or the
 * reference chain + POSTROUTING jump exist (iptables backend). Throws a
 * FirewallError naming what is missing.
 */
export async function checkIpMasq(
  backend: MasqBackend, ips: Prefix[], network: string, ifname: string, containerId: string, deps: FirewallDeps = defaultDeps,
): Promise<void> {
  if (backend === 'nftables') {
    const rs = await listMasqTable(deps);
    const mine = findMasqRules(rs, network, containerId, ifname);
    for (const ip of ips) {
      const want = JSON.stringify(masqRuleExpr(ip));
      if (!mine.some((r) => JSON.stringify(r.expr) === want)) {
        throw new FirewallError(`masquerade rule for ${prefixIP(ip)} missing from table inet ${MASQ_TABLE} chain ${MASQ_CHAIN}`);
      }
    }
    return;
  }
  const chain = iptablesChainName(network, containerId);
  for (const v6 of [false, true]) {
    const fam = ips.filter((i) => i.v6 === v6);
    if (!fam.length) continue;
    const save = await iptSave(v6, deps);
    if (!save.includes(`-N ${chain}`)) throw new FirewallError(`${v6 ? 'ip6tables' : 'iptables'} chain ${chain} missing`);
    for (const ip of fam) {
      if (!save.some((l) => l.startsWith('-A POSTROUTING ') && l.includes(` -s ${prefixIP(ip)}/${v6 ? 128 : 32} `) && l.includes(` -j ${chain}`))) {
        throw new FirewallError(`POSTROUTING jump for ${prefixIP(ip)} to ${chain} missing`);
      }
    }
  }
}

/**
 * GC: removes the masquerade state of every attachment of `network` not in
 * `valid`: nft rules (found by comment: v1.10.0's form by instance hash, as
 * its GC does, flax's legacy form by id) and the reference's iptables chains
 * (found by the comment on their POSTROUTING jump).
 */
export async function gcIpMasq(network: string, valid: readonly { containerId: string; ifname: string }[], deps: FirewallDeps = defaultDeps): Promise<void> {
  const validIds = new Set(valid.map((a) => a.containerId));
  if (deps.has('nft')) {
    await retrying(async () => {
      const rs = await listMasqTable(deps);
      const stale = rs.rules.filter((r) => r.table === MASQ_TABLE && r.chain === MASQ_CHAIN && r.handle !== undefined && commentIsStale(r.comment, network, valid));
      await nftApply(stale.map((r) => ({ delete: { rule: { family: r.family, table: r.table, chain: r.chain, handle: r.handle!, expr: [] } } })), deps);
    });
  }
  // The reference's chains carry the id only in rule comments, which nft
  // cannot show for xtables matches: read them with iptables-save.
  const stale = new Set<string>();
  for (const v6 of [false, true]) {
    if (!deps.has(v6 ? 'ip6tables' : 'iptables')) continue;
    for (const l of await iptSave(v6, deps)) {
      const m = /^-A POSTROUTING .*--comment "name: \\"([^"\\]+)\\" id: \\"([^"\\]+)\\"".* -j (CNI-[0-9a-f]{24})/.exec(l);
      if (m && m[1] === network && !validIds.has(m[2]) && m[3] === iptablesChainName(network, m[2])) stale.add(m[3]);
    }
  }
  if (!stale.size) return;
  if (deps.has('nft') && deps.iptablesNft()) {
    await retrying(async () => {
      const chains = await nftList(['chains'], deps);
      const fams = [...new Set(iptChains(chains).filter((c) => stale.has(c.name)).map((c) => c.family))];
      const posts = await Promise.all(fams.map((f) => nftList(['chain', f, 'nat', 'POSTROUTING'], deps)));
      const rs = mergeRulesets(chains, ...posts);
      await nftApply([...stale].flatMap((c) => genIptChainTeardown(rs, c)), deps);
    });
  } else {
    await iptLegacyTeardown([...stale], deps);
  }
}
