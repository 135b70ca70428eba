/**
 * The attachment cache, byte-compatible with libcni's `cniCacheV1`:
 *
 *   <cacheDir>/results/<network>-<containerID>-<ifname>   (dir 0700, file 0600)
 *
 * One compact JSON object, fields in the order Go's cachedInfo struct
 * declares them: kind, containerId, config (base64 of the list's bytes),
 * ifName, networkName, netns (omitempty), cniArgs ([[k,v],…], omitempty),
 * capabilityArgs (omitempty), result (omitempty). capabilityArgs and
 * result are Go maps, so their keys are sorted at every level. Strings use
 * Go's HTML-safe escaping. libcni reads ours and we read libcni's; the
 * pre-cniCacheV1 format (the bare result JSON) is read too.
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { goMarshal, goMarshalOrdered } from './gojson';

export const CNI_CACHE_V1 = 'cniCacheV1';
export const DEFAULT_CACHE_DIR = '/var/lib/cni';

/** What one cache file holds. */
export interface CachedInfo {
  kind: string;
  containerId: string;
  /** the network list's bytes */
  config: Buffer;
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  /** the chain's final result, as a JSON object */
  result?: Record<string, unknown>;
}

/** A cached attachment (libcni NetworkAttachment). */
export interface Attachment {
  containerId: string;
  network: string;
  ifName: string;
  config: Buffer;
  netns: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result?: Record<string, unknown>;
  /** the cache file */
  file: string;
}

export function cacheFilePath(cacheDir: string, netName: string, containerId: string, ifName: string): string {
  if (!netName || !containerId || !ifName) {
    throw new Error(`cache file path requires network name (${JSON.stringify(netName)}), container ID (${JSON.stringify(containerId)}), and interface name (${JSON.stringify(ifName)})`);
  }
  // The three parts form ONE file name: a '/' (an unvalidated --ifname or
  // container id on DEL/CHECK, a conflist name) would let the path escape
  // results/, and DEL unlinks an unreadable entry.
  for (const [what, v] of [['network name', netName], ['container ID', containerId], ['interface name', ifName]] as const) {
    if (v.includes('/') || v.includes('\0')) throw new Error(`cache file path: invalid ${what} ${JSON.stringify(v.slice(0, 64))}`);
  }
  return path.join(cacheDir, 'results', `${netName}-${containerId}-${ifName}`);
}

/** Serialises a cache entry exactly as libcni's json.Marshal(&cachedInfo). */
export function marshalCache(c: CachedInfo): string {
  // Field order is the struct's; only the map-typed fields are key-sorted.
  const parts: string[] = [
    `"kind":${goMarshalOrdered(c.kind)}`,
    `"containerId":${goMarshalOrdered(c.containerId)}`,
    `"config":${JSON.stringify(c.config.toString('base64'))}`,
    `"ifName":${goMarshalOrdered(c.ifName)}`,
    `"networkName":${goMarshalOrdered(c.networkName)}`,
  ];
  if (c.netns) parts.push(`"netns":${goMarshalOrdered(c.netns)}`);
  if (c.cniArgs && c.cniArgs.length) parts.push(`"cniArgs":${goMarshalOrdered(c.cniArgs)}`);
  if (c.capabilityArgs && Object.keys(c.capabilityArgs).length) parts.push(`"capabilityArgs":${goMarshal(c.capabilityArgs)}`);
  if (c.result && Object.keys(c.result).length) parts.push(`"result":${goMarshal(c.result)}`);
  return `{${parts.join(',')}}`;
}

/** Parses a cache file's text. Returns null when it is not a cniCacheV1 object. */
export function unmarshalCache(text: string): CachedInfo | null {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (typeof o !== 'object' || o === null || o.kind !== CNI_CACHE_V1) return null;
  const s = (v: unknown) => (typeof v === 'string' ? v : '');
  const c: CachedInfo = {
    kind: CNI_CACHE_V1,
    containerId: s(o.containerId),
    config: Buffer.from(s(o.config), 'base64'),
    ifName: s(o.ifName),
    networkName: s(o.networkName),
  };
  if (o.netns) c.netns = s(o.netns);
  if (Array.isArray(o.cniArgs)) c.cniArgs = o.cniArgs.filter((p): p is [string, string] => Array.isArray(p) && p.length === 2).map((p) => [String(p[0]), String(p[1])]);
  if (o.capabilityArgs && typeof o.capabilityArgs === 'object') c.capabilityArgs = o.capabilityArgs as Record<string, unknown>;
  if (o.result && typeof o.result === 'object') c.result = o.result as Record<string, unknown>;
  return c;
}

/** Writes an entry (atomically: temp file + rename), creating results/ with 0700. */
export function writeCache(cacheDir: string, c: CachedInfo): string {
  const file = cacheFilePath(cacheDir, c.networkName, c.containerId, c.ifName);
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, marshalCache(c), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return file;
}

export type CacheRead =
  | { kind: 'none' }
  | { kind: 'v1'; info: CachedInfo }
  /** the pre-v1 format: the file is the bare result */
  | { kind: 'legacy'; result: Record<string, unknown> }
  | { kind: 'corrupt'; error: string };

/** Reads the entry for an attachment; a missing file is `none`. */
export function readCache(cacheDir: string, netName: string, containerId: string, ifName: string): CacheRead {
  let text: string;
  try {
    text = readFileSync(cacheFilePath(cacheDir, netName, containerId, ifName), 'utf8');
  } catch {
    return { kind: 'none' };
  }
  const info = unmarshalCache(text);
  if (info) return { kind: 'v1', info };
  try {
    const o = JSON.parse(text) as unknown;
    if (typeof o === 'object' && o !== null && !Array.isArray(o) && ('cniVersion' in o || 'ips' in o || 'ip4' in o)) return { kind: 'legacy', result: o as Record<string, unknown> };
  } catch (e) {
    return { kind: 'corrupt', error: `cannot parse cache file: ${(e as Error).message}` };
  }
  return { kind: 'corrupt', error: 'cache file is neither cniCacheV1 nor a result' };
}

export function deleteCache(cacheDir: string, netName: string, containerId: string, ifName: string): void {
  try {
    unlinkSync(cacheFilePath(cacheDir, netName, containerId, ifName));
  } catch { /* already gone */ }
}

/**
 * Every cniCacheV1 attachment in the cache (libcni GetCachedAttachments),
 * in file-name order, optionally for one container id. Unreadable or
 * foreign files are skipped.
 */
export function listAttachments(cacheDir: string, containerId = ''): Attachment[] {
  const dir = path.join(cacheDir, 'results');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const out: Attachment[] = [];
  for (const n of names) {
    if (containerId) {
      const part = `-${containerId}-`;
      const pos = n.indexOf(part);
      if (pos <= 0 || pos + part.length >= n.length) continue;
    }
    let text: string;
    try {
      text = readFileSync(path.join(dir, n), 'utf8');
    } catch {
      continue;
    }
    const c = unmarshalCache(text);
    if (!c) continue;
    if (containerId && c.containerId !== containerId) continue;
    if (!c.ifName || !c.networkName) continue;
    out.push({
      containerId: c.containerId, network: c.networkName, ifName: c.ifName, config: c.config, netns: c.netns ?? '',
      cniArgs: c.cniArgs, capabilityArgs: c.capabilityArgs, result: c.result, file: path.join(dir, n),
    });
  }
  return out;
}
