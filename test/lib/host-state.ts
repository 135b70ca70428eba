/**
 * The root netns state real runtimes change (links, firewall, forwarding
 * sysctls, CNI's files under /var/lib/cni): reading it, snapshotting it
 * before a run, and putting back after it what the run added (only what
 * names the run's containers, addresses or network). Used by the e2e
 * suites with test/lib/e2e.ts.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CNI_STATE, run, which } from './e2e';

// ---- host state: links, firewall, sysctls -------------------------------------------

export function linkNames(): string[] {
  const out = run('ip', ['-j', 'link', 'show']).stdout;
  return (JSON.parse(out || '[]') as Array<{ ifname: string }>).map((l) => l.ifname);
}

export function linkExists(name: string): boolean {
  return run('ip', ['link', 'show', 'dev', name], { allowFail: true }).code === 0;
}

export function deleteLink(name: string): void {
  if (linkExists(name)) run('ip', ['link', 'del', 'dev', name], { allowFail: true });
}

export function readSysctl(key: string): string | null {
  const p = '/proc/sys/' + key.replace(/\./g, '/');
  try { return readFileSync(p, 'utf8').trim(); } catch { return null; }
}

export function writeSysctl(key: string, v: string): void {
  try { writeFileSync('/proc/sys/' + key.replace(/\./g, '/'), v); } catch { /* best effort */ }
}

/** The firewall as text: `nft list ruleset` and `iptables-save`/`ip6tables-save` (their comments are not shown by nft). */
export function firewallText(): string {
  const parts = [run('nft', ['list', 'ruleset'], { allowFail: true }).stdout];
  for (const t of ['iptables-save', 'ip6tables-save']) if (which(t)) parts.push(run(t, [], { allowFail: true }).stdout);
  return parts.join('\n');
}

/** Lines of the firewall that mention any of the markers (container ids, IPs). */
export function firewallMentions(markers: string[]): string[] {
  const lines = firewallText().split('\n');
  return lines.filter((l) => markers.some((m) => m && lineMentions(l, m)));
}

/** An IP marker must match as a whole address (10.1.1.2 is not 10.1.1.20). */
function lineMentions(line: string, marker: string): boolean {
  if (/^[0-9.]+$/.test(marker)) return new RegExp(`(^|[^0-9.])${marker.replace(/\./g, '\\.')}(/32)?([^0-9.]|$)`).test(line);
  return line.includes(marker);
}

interface NftObj { family: string; table: string; name?: string; chain?: string; handle: number; expr?: unknown[]; comment?: string; hook?: string }

function nftJson(): { tables: NftObj[]; chains: NftObj[]; rules: NftObj[] } {
  const r = run('nft', ['-j', 'list', 'ruleset'], { allowFail: true });
  const tables: NftObj[] = [], chains: NftObj[] = [], rules: NftObj[] = [];
  if (r.code !== 0 || !r.stdout.trim()) return { tables, chains, rules };
  for (const o of (JSON.parse(r.stdout).nftables ?? []) as Array<Record<string, NftObj>>) {
    if (o.table) tables.push({ ...o.table, table: o.table.name! });
    else if (o.chain) chains.push(o.chain);
    else if (o.rule) rules.push(o.rule);
  }
  return { tables, chains, rules };
}

/** Chain names a rule jumps/goes to. */
function ruleTargets(r: NftObj): string[] {
  const out: string[] = [];
  const s = JSON.stringify(r.expr ?? []);
  for (const m of s.matchAll(/"(?:jump|goto)":\{"target":"([^"]+)"\}/g)) out.push(m[1]);
  return out;
}

const isCniName = (n: string) => /^CNI-|cni/i.test(n);

/** Does a rule name a specific address (a container's, a subnet)? Multicast guards do not count. */
function ruleIsSpecific(r: NftObj): boolean {
  const text = JSON.stringify(r.expr ?? []) + (r.comment ?? '');
  for (const m of text.matchAll(/\b\d{1,3}(?:\.\d{1,3}){3}\b/g)) if (m[0] !== '224.0.0.0') return true;
  for (const m of text.matchAll(/"([0-9a-f]*:[0-9a-f:]*:[0-9a-f:]*)"/gi)) if (m[1].toLowerCase() !== 'ff00::') return true;
  return false;
}

/**
 * What the firewall looked like before the suite. `restore(markers)`:
 * 1. deletes every rule that names one of our markers (container ids, IPs):
 *    iptables rules by their comment (iptables-save; nft does not show xt
 *    comments), nft rules by their text;
 * 2. per table, removes the CNI chains that appeared since the snapshot and
 *    are now idle (no rule naming an address, i.e. nobody's containers),
 *    with the jumps to them - but only when NO new CNI chain of that table is
 *    still live: other people on this machine may run runtimes too, and the
 *    shared scaffolding (CNI-HOSTPORT-MASQ, …) is theirs as well then;
 * 3. deletes tables that appeared since the snapshot and are left holding
 *    nothing but empty base chains (or are CNI tables with only idle rules).
 * Chains/tables that existed before are never removed.
 */
export class FirewallSnapshot {
  private tables = new Set<string>();
  private chains = new Set<string>();

  static take(): FirewallSnapshot {
    const s = new FirewallSnapshot();
    const j = nftJson();
    for (const t of j.tables) s.tables.add(`${t.family} ${t.name ?? t.table}`);
    for (const c of j.chains) s.chains.add(`${c.family} ${c.table} ${c.name}`);
    return s;
  }

  restore(markers: string[]): { removed: string[]; left: string[] } {
    const removed: string[] = [], left: string[] = [];
    markers = markers.filter(Boolean);
    // 1a. iptables rules carrying our markers (comments, addresses)
    for (const [save, restoreCmd] of [['iptables-save', 'iptables-restore'], ['ip6tables-save', 'ip6tables-restore']] as const) {
      if (!which(save)) continue;
      const text = run(save, [], { allowFail: true }).stdout;
      let table = '';
      const perTable = new Map<string, string[]>();
      for (const l of text.split('\n')) {
        if (l.startsWith('*')) { table = l.slice(1); continue; }
        if (l.startsWith('-A ') && markers.some((m) => lineMentions(l, m))) {
          perTable.set(table, [...(perTable.get(table) ?? []), '-D ' + l.slice(3)]);
        }
      }
      const script: string[] = [];
      for (const [t, dels] of perTable) script.push(`*${t}`, ...dels, 'COMMIT');
      if (script.length) {
        const r = run(restoreCmd, ['-w', '--noflush'], { input: script.join('\n') + '\n', allowFail: true });
        (r.code === 0 ? removed : left).push(...script.filter((x) => x.startsWith('-D')).map((x) => `${save}: ${x}${r.code ? ` (${r.stderr.trim()})` : ''}`));
      }
    }
    // 1b. nft rules naming our markers
    for (const r of nftJson().rules) {
      const text = JSON.stringify(r);
      if (markers.some((m) => lineMentions(text, m))) {
        const d = run('nft', ['delete', 'rule', r.family, r.table, r.chain!, 'handle', String(r.handle)], { allowFail: true });
        (d.code === 0 ? removed : left).push(`nft rule ${r.family} ${r.table} ${r.chain}: ${text.slice(0, 160)}`);
      }
    }
    // 2. idle new CNI chains, table by table
    const j = nftJson();
    for (const t of j.tables) {
      const tname = t.name ?? t.table;
      const cniTable = isCniName(tname);
      const inT = <X extends NftObj>(xs: X[]) => xs.filter((x) => x.family === t.family && x.table === tname);
      const chains = inT(j.chains), rules = inT(j.rules);
      const newCni = chains.filter((c) => !this.chains.has(`${c.family} ${c.table} ${c.name}`) && (cniTable || isCniName(c.name!)) && !c.hook);
      if (!newCni.length) continue;
      const live = newCni.filter((c) => rules.some((r) => r.chain === c.name && ruleIsSpecific(r)));
      if (live.length) { left.push(...live.map((c) => `nft chain ${c.family} ${tname} ${c.name} (live: names addresses; not ours)`)); continue; }
      const names = new Set(newCni.map((c) => c.name!));
      for (const r of rules) {
        if (!names.has(r.chain!) && ruleTargets(r).some((x) => names.has(x))) {
          const d = run('nft', ['delete', 'rule', t.family, tname, r.chain!, 'handle', String(r.handle)], { allowFail: true });
          if (d.code === 0) removed.push(`nft rule ${t.family} ${tname} ${r.chain}: jump to a CNI chain`);
        }
      }
      for (const c of newCni) run('nft', ['flush', 'chain', t.family, tname, c.name!], { allowFail: true });
      for (const c of newCni) {
        const d = run('nft', ['delete', 'chain', t.family, tname, c.name!], { allowFail: true });
        (d.code === 0 ? removed : left).push(`nft chain ${t.family} ${tname} ${c.name}`);
      }
    }
    // 3. new tables left empty (or CNI tables with only idle rules)
    const j3 = nftJson();
    for (const t of j3.tables) {
      const tname = t.name ?? t.table;
      if (this.tables.has(`${t.family} ${tname}`)) continue;
      const chains = j3.chains.filter((c) => c.family === t.family && c.table === tname);
      const rules = j3.rules.filter((r) => r.family === t.family && r.table === tname);
      const empty = rules.length === 0 && chains.every((c) => c.hook);
      const idleCni = isCniName(tname) && !rules.some(ruleIsSpecific);
      if (!empty && !idleCni) { left.push(`nft table ${t.family} ${tname} (not empty)`); continue; }
      const d = run('nft', ['delete', 'table', t.family, tname], { allowFail: true });
      (d.code === 0 ? removed : left).push(`nft table ${t.family} ${tname}`);
    }
    return { removed, left };
  }
}

// ---- CNI state on disk ----------------------------------------------------------------

/** host-local reservations of a network (files named by IP) → their content. */
export function reservations(network: string, dataDir = path.join(CNI_STATE, 'networks')): Record<string, string> {
  const d = path.join(dataDir, network);
  const out: Record<string, string> = {};
  if (!existsSync(d)) return out;
  for (const f of readdirSync(d)) {
    if (f === 'lock' || f.startsWith('last_reserved_ip')) continue;
    try { out[f] = readFileSync(path.join(d, f), 'utf8'); } catch { /* raced */ }
  }
  return out;
}

/** libcni's cache files for a container (any network/ifname). */
export function cacheFiles(containerId: string): string[] {
  const d = path.join(CNI_STATE, 'results');
  if (!existsSync(d)) return [];
  return readdirSync(d).filter((f) => f.includes(`-${containerId}-`)).map((f) => path.join(d, f));
}

/**
 * Remembers whether /var/lib/cni (and its subdirs) existed; `restore()`
 * removes the given networks' host-local dirs and cache files for the given
 * container ids, then any of /var/lib/cni{/networks,/results,} that it
 * created and that are now empty.
 */
export class CniStateSnapshot {
  private existed: Record<string, boolean> = {};
  static take(): CniStateSnapshot {
    const s = new CniStateSnapshot();
    for (const d of ['', 'networks', 'results']) s.existed[d] = existsSync(path.join(CNI_STATE, d));
    return s;
  }
  restore(networks: string[], containerIds: string[]): void {
    for (const n of networks) if (n) rmSync(path.join(CNI_STATE, 'networks', n), { recursive: true, force: true });
    for (const id of containerIds) for (const f of cacheFiles(id)) rmSync(f, { force: true });
    for (const d of ['networks', 'results', '']) {
      const p = path.join(CNI_STATE, d);
      if (!this.existed[d] && existsSync(p) && readdirSync(p).length === 0) rmSync(p, { recursive: true, force: true });
    }
  }
}

/** Replaces every occurrence of the given strings (ids, names) with placeholders, recursively. */
export function redact<T>(v: T, map: Record<string, string>): T {
  let s = JSON.stringify(v);
  for (const [from, to] of Object.entries(map).sort((a, b) => b[0].length - a[0].length)) if (from) s = s.split(from).join(to);
  return JSON.parse(s) as T;
}

/** The key order of an object tree, as `a.b.c` paths (arrays: first element). */
export function keyShape(v: unknown, prefix = ''): string[] {
  if (Array.isArray(v)) return v.length ? keyShape(v[0], prefix + '[]') : [prefix + '[]'];
  if (v && typeof v === 'object') {
    const out: string[] = [];
    for (const [k, x] of Object.entries(v)) { out.push(prefix + '.' + k); out.push(...keyShape(x, prefix + '.' + k)); }
    return out;
  }
  return [];
}

/**
 * The common part of an e2e suite's teardown: removes the firewall state and
 * CNI state (reservations, cache files) of this run's network and containers
 * that appeared since the snapshots, and puts ip_forward back.
 */
export function restoreRunState(o: {
  label: string; fw?: FirewallSnapshot; cniState?: CniStateSnapshot; net: string; cids: string[]; ips: string[]; ipForward: string | null;
}): void {
  if (o.fw) {
    const r = o.fw.restore([...o.cids, ...o.ips, `\\"${o.net}\\"`]); // iptables-save escapes the comment quotes
    if (r.removed.length) console.log(`${o.label}: firewall cleanup removed:\n  ${r.removed.join('\n  ')}`);
    if (r.left.length) console.warn(`e2e: firewall state that appeared during the run but is not ours (left alone): ${r.left.join('; ')}`);
  }
  o.cniState?.restore([o.net], o.cids);
  if (o.ipForward !== null && readSysctl('net.ipv4.ip_forward') !== o.ipForward) writeSysctl('net.ipv4.ip_forward', o.ipForward);
}


// ---- rules and ports of one container (bridge-podman) --------------------------------

const IPT = [['iptables', 'nat'], ['iptables', 'filter'], ['ip6tables', 'nat'], ['ip6tables', 'filter']] as const;

/** The iptables rules (any table) mentioning `needle`. */
export function iptRulesMentioning(needle: string): string[] {
  const out: string[] = [];
  for (const [tool, table] of IPT) out.push(...run(tool, ['-w', '-t', table, '-S'], { allowFail: true }).stdout.split('\n').filter(Boolean).filter((l) => l.includes(needle)).map((l) => `${tool} ${table} ${l}`));
  return out;
}

/**
 * Our nft masquerade rules whose comment mentions `needle` — in its text, or
 * (v1.10.0's form, whose text is cut at 128 bytes) as the container id of
 * interface `ifname` in its instance hash.
 */
export function masqRulesMentioning(needle: string, ifname = 'eth0'): string[] {
  const out = run('nft', ['-j', 'list', 'table', 'inet', 'cni_plugins_masquerade'], { allowFail: true }).stdout;
  if (!out) return [];
  const idHash = createHash('sha512').update(`${ifname}:${needle}`).digest('hex').slice(0, 16);
  return (JSON.parse(out).nftables as any[])
    .filter((x) => x.rule && (String(x.rule.comment ?? '').includes(needle) || String(x.rule.comment ?? '').slice(17, 33) === idHash))
    .map((x) => x.rule.comment);
}

/** The ports of `bridge`. */
export function vethsOf(bridge: string): string[] {
  return (JSON.parse(run('ip', ['-j', 'link', 'show']).stdout || '[]') as { ifname: string; master?: string }[])
    .filter((l) => l.master === bridge).map((l) => l.ifname);
}
