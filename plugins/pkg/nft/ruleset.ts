/**
 * nftables rulesets as data (no I/O here): the objects of `nft -j` — tables,
 * chains, rules, the commands of a batch — and the parsing of a listing.
 * masq.ts, portmap.ts, spoofchk.ts and skeleton.ts build on these.
 */
export type NftFamily = 'ip' | 'ip6' | 'inet' | 'bridge' | 'arp' | 'netdev';
export type Expr = Record<string, unknown>;
export interface NftRule {
  family: NftFamily;
  table: string;
  chain: string;
  handle?: number;
  comment?: string;
  expr: Expr[];
}
export interface NftChain {
  family: NftFamily;
  table: string;
  name: string;
  handle?: number;
  type?: string;
  hook?: string;
  prio?: number;
  policy?: string;
  comment?: string;
}
export interface NftTable {
  family: NftFamily;
  name: string;
  handle?: number;
  comment?: string;
}
/** One command of an `nft -j -f` batch. */
export type NftCommand =
  | { add: { table: NftTable } | { chain: NftChain } | { rule: NftRule } }
  | { flush: { chain: NftChain } | { table: NftTable } }
  | { delete: { rule: NftRule & { handle: number } } | { chain: NftChain } | { table: NftTable } };

/** What `nft -j list …` returned, by kind. */
export interface Ruleset {
  tables: NftTable[];
  chains: NftChain[];
  rules: NftRule[];
}
export const emptyRuleset = (): Ruleset => ({ tables: [], chains: [], rules: [] });

/** Parses the output of `nft -j list ruleset|table|chain|chains`. */
export function parseRuleset(json: string): Ruleset {
  const rs = emptyRuleset();
  if (!json.trim()) return rs;
  const doc = JSON.parse(json) as { nftables?: Record<string, unknown>[] };
  for (const item of doc.nftables ?? []) {
    if ('table' in item) rs.tables.push(item.table as NftTable);
    else if ('chain' in item) rs.chains.push(item.chain as NftChain);
    else if ('rule' in item) rs.rules.push(item.rule as NftRule);
  }
  return rs;
}

/** Adds `b` into `a` (for combining several listings). */
export function mergeRulesets(...parts: Ruleset[]): Ruleset {
  return { tables: parts.flatMap((p) => p.tables), chains: parts.flatMap((p) => p.chains), rules: parts.flatMap((p) => p.rules) };
}
