/**
 * Where the peers built by scripts/peers.sh / scripts/peers-kube.sh live
 * ($FLAX_PEERS/bin, default /var/cache/flax-peers) and which versions they are.
 * etcd: $FLAX_PEERS/bin/etcd when built there, else Debian's etcd-server.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { which } from '../../lib/e2e';

export const FLAX_PEERS = process.env.FLAX_PEERS ?? '/var/cache/flax-peers';

export function peerBin(name: string): string {
  const p = path.join(FLAX_PEERS, 'bin', name);
  if (existsSync(p)) return p;
  if (name === 'etcd') return which('etcd') ?? p;
  return p;
}

/** Peers (of names) that are missing, for the skip reason. */
export function missingPeers(names: string[]): string[] {
  return names.filter((n) => !existsSync(peerBin(n)));
}

/** "name version" lines of $FLAX_PEERS/versions. */
export function peerVersions(): Record<string, string> {
  const f = path.join(FLAX_PEERS, 'versions');
  const out: Record<string, string> = {};
  if (!existsSync(f)) return out;
  for (const l of readFileSync(f, 'utf8').split('\n')) {
    const [n, v] = l.trim().split(/\s+/);
    if (n && v) out[n] = v;
  }
  return out;
}
