/**
 * Leaving out a skeleton that is already in place. The reference re-writes
 * its shared tables and chains on every ADD; re-adding an existing base
 * chain (one with a hook) is a chain update that costs the kernel 7–15 ms a
 * chain on this machine, against well under 1 ms for adding a rule. So ADD
 * compares the skeleton commands with a listing it has anyway (or a cheap
 * one of the entry chain) and sends only the container's rules when every
 * table, chain and re-written chain is already what the commands would make.
 * A damaged skeleton (a chain flushed or deleted by hand) is still re-written
 * whole, as the reference does.
 */
import { type Expr, type NftChain, type NftCommand, type Ruleset, emptyRuleset } from './ruleset';

/** A rule's meaning, independent of how nft lists it. */
export function ruleSignature(expr: Expr[]): string {
  return JSON.stringify(expr.map((e) => {
    const m = (e as { match?: { op: string; left: unknown; right: unknown } }).match;
    if (m) return [m.op, m.left, m.right];
    return e;
  }));
}

const chainKey = (c: { family: string; table: string; name?: string; chain?: string }) => `${c.family} ${c.table} ${c.name ?? c.chain}`;
const targetOf = (e: Expr): string | undefined => ((e.jump ?? e.goto) as { target?: string } | undefined)?.target;

/**
 * True when applying `base` would change nothing in `rs`: each table exists
 * (listed, or one of its chains is), each chain exists with the same type,
 * hook and priority (a regular chain also counts as existing when a listed
 * rule of its table jumps or goes to it: the kernel keeps jump targets), and
 * each chain the commands flush and re-fill holds exactly those rules, in
 * order. `rs` must list every rule of the chains `base` flushes.
 */
export function skeletonPresent(rs: Ruleset, base: NftCommand[]): boolean {
  const chains = new Map(rs.chains.map((c) => [chainKey(c), c]));
  const tables = new Set([...rs.tables.map((t) => `${t.family} ${t.name}`), ...rs.chains.map((c) => `${c.family} ${c.table}`)]);
  const targets = new Set(rs.rules.flatMap((r) => r.expr.map(targetOf).filter((t): t is string => !!t).map((t) => `${r.family} ${r.table} ${t}`)));
  const refilled = new Map<string, string[]>();
  const listedRules = (key: string) => rs.rules.filter((r) => chainKey(r) === key).map((r) => ruleSignature(r.expr));
  for (const cmd of base) {
    if ('add' in cmd) {
      const a = cmd.add;
      if ('table' in a) {
        if (!tables.has(`${a.table.family} ${a.table.name}`)) return false;
      } else if ('chain' in a) {
        if (!chainPresent(a.chain, chains, targets)) return false;
      } else {
        const key = chainKey(a.rule);
        const want = refilled.get(key);
        if (want) want.push(ruleSignature(a.rule.expr));
        else if (!listedRules(key).includes(ruleSignature(a.rule.expr))) return false;
      }
    } else if ('flush' in cmd && 'chain' in cmd.flush) {
      refilled.set(chainKey(cmd.flush.chain), []);
    } else {
      return false;
    }
  }
  for (const [key, want] of refilled) {
    const have = listedRules(key);
    if (have.length !== want.length || have.some((s, i) => s !== want[i])) return false;
  }
  return true;
}

function chainPresent(c: NftChain, chains: Map<string, NftChain>, targets: Set<string>): boolean {
  const have = chains.get(chainKey(c));
  if (!c.hook) return !!have || targets.has(chainKey(c));
  return !!have && have.type === c.type && have.hook === c.hook && have.prio === c.prio && (have.policy ?? 'accept') === (c.policy ?? 'accept');
}

/**
 * What `nft -j list` would show after `cmds` ran on `rs` (adds, chain
 * flushes; handles numbered): for warm-ups and tests that need a listing
 * of a skeleton in place.
 */
export function afterBatch(cmds: NftCommand[], rs: Ruleset = emptyRuleset()): Ruleset {
  const out: Ruleset = { tables: [...rs.tables], chains: [...rs.chains], rules: [...rs.rules] };
  let handle = 1000;
  for (const c of cmds) {
    if ('add' in c) {
      const a = c.add;
      if ('table' in a) {
        if (!out.tables.some((t) => t.family === a.table.family && t.name === a.table.name)) out.tables.push({ ...a.table, handle: handle++ });
      } else if ('chain' in a) {
        if (!out.chains.some((x) => chainKey(x) === chainKey(a.chain))) out.chains.push({ ...a.chain, handle: handle++ });
      } else out.rules.push({ ...a.rule, handle: handle++ });
    } else if ('flush' in c && 'chain' in c.flush) {
      const key = chainKey(c.flush.chain);
      out.rules = out.rules.filter((r) => chainKey(r) !== key);
    }
  }
  return out;
}

/** What `nft -j list` prints for a ruleset (parseRuleset's input). */
export function listingText(rs: Ruleset): string {
  const items = [...rs.tables.map((table) => ({ table })), ...rs.chains.map((chain) => ({ chain })), ...rs.rules.map((rule) => ({ rule }))];
  return JSON.stringify({ nftables: [{ metainfo: {} }, ...items] });
}
