/**
 * Real runtimes create things in the ROOT netns (bridge, veths, nft and
 * iptables rules, ip_forward). These helpers snapshot that state before an
 * e2e test and remove whatever the test added afterwards, so the machine
 * ends as it began. Only names/rules created during the test are touched.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { linkNames } from './e2e';

const run = (cmd: string, args: string[], input?: string) => spawnSync(cmd, args, { encoding: 'utf8', input });
const has = (tool: string) => ['/usr/sbin', '/sbin', '/usr/bin', '/bin'].some((d) => existsSync(`${d}/${tool}`));

export interface HostSnapshot {
  ipt: Map<string, string[]>;
  nftTables: string[];
  links: string[];
  sysctls: Map<string, string>;
}

const IPT = [['iptables', 'nat'], ['iptables', 'filter'], ['ip6tables', 'nat'], ['ip6tables', 'filter']] as const;
const SYSCTLS = ['/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'];

function iptLines(tool: string, table: string): string[] {
  if (!has(tool)) return [];
  return run(tool, ['-w', '-t', table, '-S']).stdout.split('\n').filter(Boolean);
}
export function nftTables(): string[] {
  if (!has('nft')) return [];
  return run('nft', ['list', 'tables']).stdout.split('\n').filter(Boolean).map((l) => l.replace(/^table /, ''));
}

export function snapshotHost(): HostSnapshot {
  const ipt = new Map<string, string[]>();
  for (const [tool, table] of IPT) ipt.set(`${tool} ${table}`, iptLines(tool, table));
  const sysctls = new Map<string, string>();
  for (const s of SYSCTLS) sysctls.set(s, run('cat', [s]).stdout.trim());
  return { ipt, nftTables: nftTables(), links: linkNames(), sysctls };
}

/**
 * Removes what appeared since `snap`: links named `linkPrefix*` and veths
 * enslaved to them, iptables rules and chains, nft tables (and, in a table
 * that existed before, our masquerade rules of `network`), and restores the
 * forwarding sysctls. Returns a list of what it removed (for logs).
 */
export function restoreHost(snap: HostSnapshot, opts: { linkPrefix: string; networks: string[] }): string[] {
  const done: string[] = [];
  const links = JSON.parse(run('ip', ['-j', 'link', 'show']).stdout || '[]') as { ifname: string; master?: string }[];
  for (const l of links) {
    if (snap.links.includes(l.ifname)) continue;
    if (l.ifname.startsWith(opts.linkPrefix) || (l.master ?? '').startsWith(opts.linkPrefix)) {
      if (run('ip', ['link', 'del', l.ifname]).status === 0) done.push(`link ${l.ifname}`);
    }
  }
  for (const [tool, table] of IPT) {
    const before = new Set(snap.ipt.get(`${tool} ${table}`) ?? []);
    const now = iptLines(tool, table);
    const added = now.filter((l) => l.startsWith('-A ') && !before.has(l)).reverse();
    const chains = now.filter((l) => l.startsWith('-N ') && !before.has(l)).map((l) => l.slice(3));
    if (!added.length && !chains.length) continue;
    const text = [`*${table}`, ...added.map((l) => `-D${l.slice(2)}`), ...chains.map((c) => `-F ${c}`), ...chains.map((c) => `-X ${c}`), 'COMMIT', ''].join('\n');
    // every new chain is flushed before any is deleted: one may jump to another (CNI-FORWARD -> CNI-ADMIN)
    const r = run(`${tool}-restore`, ['-w', '--noflush'], text);
    done.push(`${tool} -t ${table}: ${added.length} rules, ${chains.length} chains${r.status === 0 ? '' : ` (FAILED: ${r.stderr.trim()})`}`);
  }
  for (const t of nftTables()) {
    if (snap.nftTables.includes(t)) continue;
    if (run('nft', ['delete', 'table', ...t.split(' ')]).status === 0) done.push(`nft table ${t}`);
  }
  if (snap.nftTables.includes('inet cni_plugins_masquerade')) {
    const out = run('nft', ['-j', '-a', 'list', 'chain', 'inet', 'cni_plugins_masquerade', 'masq_checks']).stdout;
    const rules = out ? (JSON.parse(out).nftables as any[]).filter((x) => x.rule) : [];
    for (const r of rules) {
      if (opts.networks.some((n) => String(r.rule.comment ?? '').startsWith(`name: ${n} `))) {
        run('nft', ['delete', 'rule', 'inet', 'cni_plugins_masquerade', 'masq_checks', 'handle', String(r.rule.handle)]);
        done.push(`nft rule ${r.rule.comment}`);
      }
    }
  }
  for (const [file, value] of snap.sysctls) {
    if (value && run('cat', [file]).stdout.trim() !== value) {
      run('sh', ['-c', `echo ${value} > ${file}`]);
      done.push(`${file}=${value}`);
    }
  }
  return done;
}

/** The iptables rules (any table) mentioning `needle`. */
export function iptRulesMentioning(needle: string): string[] {
  const out: string[] = [];
  for (const [tool, table] of IPT) out.push(...iptLines(tool, table).filter((l) => l.includes(needle)).map((l) => `${tool} ${table} ${l}`));
  return out;
}

/** Our nft masquerade rules whose comment mentions `needle`. */
export function masqRulesMentioning(needle: string): string[] {
  const out = run('nft', ['-j', 'list', 'table', 'inet', 'cni_plugins_masquerade']).stdout;
  if (!out) return [];
  return (JSON.parse(out).nftables as any[]).filter((x) => x.rule && String(x.rule.comment ?? '').includes(needle)).map((x) => x.rule.comment);
}

export function vethsOf(bridge: string): string[] {
  return (JSON.parse(run('ip', ['-j', 'link', 'show']).stdout || '[]') as { ifname: string; master?: string }[])
    .filter((l) => l.master === bridge).map((l) => l.ifname);
}

/** Builds a busybox rootfs tarball (no registry needed). */
export function buildRootfsTar(dir: string): string {
  const script = `set -e
cd ${dir}
mkdir -p rootfs/bin rootfs/www rootfs/etc rootfs/proc rootfs/sys rootfs/dev rootfs/tmp rootfs/run
cp /bin/busybox rootfs/bin/busybox
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox rootfs/bin/$a; done
echo flax-e2e-ok > rootfs/www/index.html
echo 'root:x:0:0:root:/:/bin/sh' > rootfs/etc/passwd
tar -C rootfs -cf rootfs.tar .`;
  const r = run('sh', ['-c', script]);
  if (r.status !== 0) throw new Error(`rootfs build failed: ${r.stderr}`);
  return `${dir}/rootfs.tar`;
}

export const missingTools = (...tools: string[]): string[] => tools.filter((t) => !has(t));
