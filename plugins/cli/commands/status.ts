/**
 * `flax status`: what this node's CNI setup looks like — the configured
 * networks (and files that failed to load), the attachments in the libcni
 * cache, and for every host-local range the addresses held / free (from
 * host-local's files `<dataDir>/<net>/<ip>`), and who answers the plugin
 * clients' calls: flaxd's resident CNI server or the standalone plugins.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { loadConfigs, type NetworkConfigList } from '../../pkg/invoke/conf';
import { listAttachments } from '../../pkg/invoke/cache';
import { parseIP } from '../../pkg/ip';
import { type Range, canonicalizeRange, rangeContains, rangeSize } from '../../ipam/host-local/allocator/range';
import { type CniServingState, clientSocket, probeCniServer, serverMode } from '../../pkg/cniserver/probe';
import { table } from '../table';
import { confDirOf, outputFormat } from '../usage';
import type { CliIo } from '../command';

export const DEFAULT_HOST_LOCAL_DIR = '/var/lib/cni/networks';

export interface RangeUsage {
  network: string;
  range: string;
  size: bigint;
  used: number;
  dataDir: string;
  /** ip → "containerID ifname" */
  holders: Map<string, string>;
}

interface RangeConf { subnet?: string; rangeStart?: string; rangeEnd?: string; gateway?: string }

/** The host-local ranges a plugin config declares (ranges + the legacy subnet form). */
function hostLocalRanges(ipam: Record<string, unknown>): RangeConf[] {
  const out: RangeConf[] = [];
  if (typeof ipam.subnet === 'string') out.push({ subnet: ipam.subnet, rangeStart: ipam.rangeStart as string, rangeEnd: ipam.rangeEnd as string, gateway: ipam.gateway as string });
  if (Array.isArray(ipam.ranges)) for (const set of ipam.ranges) if (Array.isArray(set)) for (const r of set) if (r && typeof r === 'object') out.push(r as RangeConf);
  return out;
}

/** The range as host-local reads it (allocator/range.ts), or null where host-local would refuse it. */
function hostLocalRange(r: RangeConf): Range | null {
  try {
    return canonicalizeRange(r, 'range');
  } catch {
    return null;
  }
}

/** Usage of every host-local range of a list. */
export function hostLocalUsage(list: NetworkConfigList, defaultDataDir = DEFAULT_HOST_LOCAL_DIR): RangeUsage[] {
  const out: RangeUsage[] = [];
  for (const p of list.plugins) {
    const ipam = p.raw.ipam as Record<string, unknown> | undefined;
    if (!ipam || ipam.type !== 'host-local') continue;
    const dataDir = path.join(typeof ipam.dataDir === 'string' ? ipam.dataDir : defaultDataDir, list.name);
    let files: string[] = [];
    try { files = readdirSync(dataDir); } catch { /* nothing allocated yet */ }
    const held = files.map((f) => ({ f, ip: parseIP(f) })).filter((x) => x.ip);
    for (const r of hostLocalRanges(ipam)) {
      const range = hostLocalRange(r);
      if (!range) continue;
      const holders = new Map<string, string>();
      for (const h of held) {
        if (!rangeContains(range, h.ip!)) continue;
        let owner = '';
        try { owner = readFileSync(path.join(dataDir, h.f), 'utf8').split(/\r?\n/).join(' ').trim(); } catch { /* raced */ }
        holders.set(h.f, owner);
      }
      out.push({ network: list.name, range: r.rangeStart || r.rangeEnd ? `${r.subnet} (${r.rangeStart ?? ''}-${r.rangeEnd ?? ''})` : r.subnet!, size: rangeSize(range), used: holders.size, dataDir, holders });
    }
  }
  return out;
}

export interface StatusOptions { cniConfDir?: string; cacheDir?: string; dataDir?: string; output?: string; json?: boolean; cniSocket?: string }

/** Why a directory given by a flag cannot be read as one, or null: a status of a dir that is not there would be a clean, empty, wrong report. */
export function dirProblem(flag: string, dir: string): string | null {
  try {
    if (statSync(dir).isDirectory()) return null;
    return `${flag} ${dir}: not a directory`;
  } catch (e) {
    return `${flag} ${dir}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (e as Error).message}`;
  }
}

/**
 * An attachment is `stale` when its netns is gone (the pod died without a
 * DEL: its address and rules are still held); `ok` otherwise. An empty
 * netns (no path cached) cannot be judged: `-`.
 */
export function attachmentState(netns: string | undefined, exists: (p: string) => boolean = existsSync): 'ok' | 'stale' | '-' {
  if (!netns) return '-';
  return exists(netns) ? 'ok' : 'stale';
}

/** JSON with bigints written as plain numbers (exact: an IPv6 range's size does not fit a double). */
export function jsonWithBigInts(v: unknown): string {
  const mark = '\u0000bigint:';
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? mark + x.toString() : x), 2)
    .replace(/"\\u0000bigint:(\d+)"/g, '$1');
}

/** One line: who serves the plugin clients' calls. */
export function servingLine(s: CniServingState, now = Date.now()): string {
  if (!s.served) return `standalone plugins: ${s.why}`;
  const i = s.info;
  const up = Math.max(0, Math.round((now - i.since) / 1000));
  const upText = up >= 3600 ? `${Math.floor(up / 3600)}h${Math.floor((up % 3600) / 60)}m` : up >= 60 ? `${Math.floor(up / 60)}m${up % 60}s` : `${up}s`;
  return `served by flaxd (pid ${i.pid}, up ${upText}, ${i.workers} worker${i.workers === 1 ? '' : 's'}): ${i.served} calls answered, ${i.failed} with an error, ${i.refused} refused${i.deferred ? `, ${i.deferred} handed to the standalone plugin (callers in another mount namespace)` : ''}${i.memory ? `; RSS ${mib(i.memory.rss)} MiB, heap ${mib(i.memory.heapUsed)} MiB + workers ${i.memory.workers.map(mib).join(' + ')} MiB` : ''}`;
}

export async function runStatus(o: StatusOptions, io: CliIo): Promise<number> {
  const confDir = confDirOf(o.cniConfDir, io.env);
  const cacheDir = o.cacheDir ?? '/var/lib/cni';
  const json = outputFormat(o) === 'json';
  const problems = [o.cniConfDir !== undefined && dirProblem('--cni-conf-dir', o.cniConfDir), o.cacheDir !== undefined && dirProblem('--cache-dir', o.cacheDir)].filter((p): p is string => !!p);
  if (problems.length) {
    for (const p of problems) io.stderr(`flax: status: ${p}\n`);
    return 1;
  }
  const { lists, errors } = loadConfigs(confDir);
  const atts = listAttachments(cacheDir).map((a) => ({ ...a, state: attachmentState(a.netns) }));
  const usage = lists.flatMap((l) => hostLocalUsage(l, o.dataDir));
  const serving = await probeCniServer(o.cniSocket ?? clientSocket(io.env));
  if (!serving.served && serverMode(io.env) === 'auto') serving.why += '; --server auto: the next plugin call (by root) starts flaxd --no-overlay';
  if (json) {
    io.stdout(jsonWithBigInts({
      confDir, cacheDir,
      cniCalls: serving.served ? { servedBy: 'flaxd', ...serving.info } : { servedBy: 'standalone', socket: serving.socket, why: serving.why },
      networks: lists.map((l) => ({ name: l.name, cniVersion: l.cniVersion, file: l.file, plugins: l.plugins.map((p) => p.network.type) })),
      errors: errors.map((e) => e.message),
      attachments: atts.map((a) => ({ network: a.network, containerId: a.containerId, ifName: a.ifName, netns: a.netns, state: a.state, ips: ips(a.result) })),
      ranges: usage.map((u) => ({ network: u.network, range: u.range, size: u.size, used: u.used, free: u.size - BigInt(u.used), held: Object.fromEntries(u.holders) })),
    }) + '\n');
    return errors.length ? 1 : 0;
  }
  const section = (title: string, rows: unknown[], render: () => string, none: string) => {
    io.stdout(`${title}\n`);
    io.stdout(rows.length ? render() : `  (${none})\n`);
  };
  section(`Networks (${confDir})`, lists, () => table(['NAME', 'CNIVERSION', 'CHAIN', 'FILE'], lists.map((l) => [l.name, l.cniVersion, l.plugins.map((p) => p.network.type).join(' > '), l.file ? path.basename(l.file) : ''])), 'no network configurations');
  if (errors.length) {
    io.stdout(`\nFiles that failed to load (${errors.length})\n`);
    for (const e of errors) io.stdout(`  ${e.message}\n`);
  }
  io.stdout('\n');
  section(`Attachments (${path.join(cacheDir, 'results')})`, atts, () => table(['NETWORK', 'CONTAINER', 'IFNAME', 'NETNS', 'STATE', 'IPS'], atts.map((a) => [a.network, a.containerId, a.ifName, a.netns, a.state, ips(a.result).join(' ')])), 'no cached attachments');
  const stale = atts.filter((a) => a.state === 'stale').length;
  if (stale) io.stdout(`  ${stale} stale: the netns is gone but the attachment still holds its address; \`flax cni del <network> <netns>\` releases it\n`);
  io.stdout('\n');
  section('host-local ranges', usage, () => table(['NETWORK', 'RANGE', 'USED', 'FREE', 'DATADIR'], usage.map((u) => [u.network, u.range, u.used, (u.size - BigInt(u.used)).toString(), u.dataDir])), 'no host-local ranges configured');
  io.stdout(`\nCNI calls (plugin clients -> ${serving.socket || "FLAX_CNI_SOCKET=''"})\n  ${servingLine(serving)}\n`);
  return 0;
}

function ips(result: Record<string, unknown> | undefined): string[] {
  if (!result) return [];
  if (Array.isArray(result.ips)) return result.ips.map((x) => String((x as { address?: unknown }).address ?? ''));
  return ['ip4', 'ip6'].map((k) => (result[k] as { ip?: string } | undefined)?.ip).filter((x): x is string => !!x);
}

const mib = (b: number): string => (b < 0 ? '?' : (b / 1048576).toFixed(1));
