/**
 * Creating and removing pinned network namespaces for the CLI and demo,
 * through plugins/pkg/ns (native addon).
 */
import { readdirSync } from 'node:fs';
import { NETNS_RUN_DIR, createNetns, removeNetns, netnsPath } from '../pkg/ns/ns';

/** Creates a netns pinned at /run/netns/<name> (or the absolute path). Returns the path. */
export function addNetns(nameOrPath: string, dir = NETNS_RUN_DIR): string {
  return createNetns(netnsPath(nameOrPath, dir));
}

/** Removes a pinned netns; a missing one is fine. */
export function delNetns(nameOrPath: string): void {
  removeNetns(netnsPath(nameOrPath));
}

/** Names pinned under /run/netns. */
export function listNetns(dir = NETNS_RUN_DIR): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}
