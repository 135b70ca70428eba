/**
 * A sweep's fallback where the DEL of a dead attachment fails: what DEL
 * would have removed, done directly — its host-local reservations, its
 * masquerade and port-mapping rules, flannel's file, its cache file.
 */
import { unlinkSync } from 'node:fs';
import path from 'node:path';
import { type Attachment, deleteCache } from '../pkg/invoke/cache';
import { type NetworkConfigList, confListFromBytes } from '../pkg/invoke/conf';
import { type FirewallDeps, teardownIpMasq } from '../pkg/nft';
import { teardownPortmap } from '../pkg/nft/portmap-apply';
import { DiskStore } from '../ipam/host-local/store/disk-store';
import { DEFAULT_DATA_DIR as FLANNEL_DATA_DIR } from '../meta/flannel/config';

/** The flannel dataDirs an attachment's chain uses. */
function flannelDirsOf(a: Attachment): string[] {
  try {
    return flannelDirs(confListFromBytes(a.config));
  } catch {
    return [];
  }
}

/** The dataDirs of a conflist's flannel plugins. */
export const flannelDirs = (list: NetworkConfigList): string[] => list.plugins.filter((p) => p.network.type === 'flannel')
  .map((p) => (typeof p.raw.dataDir === 'string' ? p.raw.dataDir : FLANNEL_DATA_DIR));

/** What DEL would have removed, done directly: reservations, rules, flannel's file, the cache file. */
export async function fallbackCleanup(a: Attachment, dataDirs: string[], cacheDir: string, fw: FirewallDeps): Promise<{ done: string[]; errors: string[] }> {
  const done: string[] = [];
  const errors: string[] = [];
  for (const d of dataDirs) {
    if (!DiskStore.exists(d, a.network)) continue;
    try {
      using store = DiskStore.open(d, a.network);
      const ips = store.releaseByOwner({ id: a.containerId, ifname: a.ifName });
      if (ips.length) done.push(`released ${ips.join(' ')}`);
    } catch (e) {
      errors.push(`release in ${path.join(d, a.network)}: ${(e as Error).message}`);
    }
  }
  try {
    await teardownIpMasq(a.network, a.ifName, a.containerId, fw);
    done.push('masquerade removed');
  } catch (e) {
    errors.push(`masquerade: ${(e as Error).message}`);
  }
  try {
    await teardownPortmap(a.network, a.containerId, fw);
    done.push('port mappings removed');
  } catch (e) {
    errors.push(`portmap: ${(e as Error).message}`);
  }
  for (const dir of flannelDirsOf(a)) {
    try {
      unlinkSync(path.join(dir, a.containerId));
      done.push(`flannel file ${path.join(dir, a.containerId)} removed`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(`flannel file: ${(e as Error).message}`);
    }
  }
  deleteCache(cacheDir, a.network, a.containerId, a.ifName);
  done.push('cache file removed');
  return { done, errors };
}
