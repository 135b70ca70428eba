/**
 * The real peers built by scripts/peers.sh (issue 22) into the cache outside
 * the repo: ${FLAX_PEERS:-/var/cache/flax-peers}. Tests that need one skip
 * with `missing(...)` as the reason when it was not built.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const PEERS = process.env.FLAX_PEERS ?? '/var/cache/flax-peers';
/** the newest reference plugins (github.com/containernetworking/plugins) */
export const REF2_VERSION = 'v1.10.0';
export const REF2_BIN = path.join(PEERS, `plugins-${REF2_VERSION}`);
export const CNITOOL = path.join(PEERS, 'bin/cnitool');
export const FLANNELD = path.join(PEERS, 'bin/flanneld');

/** name → version from $FLAX_PEERS/versions */
export function peerVersions(): Map<string, string> {
  const m = new Map<string, string>();
  try {
    for (const l of readFileSync(path.join(PEERS, 'versions'), 'utf8').split('\n')) {
      const [n, v] = l.trim().split(/\s+/);
      if (n && v) m.set(n, v);
    }
  } catch { /* none built */ }
  return m;
}

/** the files among `files` that do not exist, as a skip message ('' when all do) */
export function missing(...files: string[]): string {
  const gone = files.filter((f) => !existsSync(f));
  return gone.length ? `not built: ${gone.join(', ')} (run scripts/peers.sh)` : '';
}
