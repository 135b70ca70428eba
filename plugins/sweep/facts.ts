/**
 * Facts the sweeper judges by, read from the node (nothing is changed
 * here): each cached attachment's netns and host interfaces, the host's
 * links (one netlink dump), reservation owners per network.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Attachment } from '../pkg/invoke/cache';
import { confListFromBytes } from '../pkg/invoke/conf';
import { type Link, openHandle, openHandleAt } from '../pkg/netlink';
import { NetnsNotFoundError, NotNetnsError, openNetns, openPodNetnsForDel } from '../pkg/ns';
import { isReservationName } from '../ipam/host-local/store/disk-store';
import { type AttachmentFacts, type NetnsFact, containerMac, hostPeerCandidates, recordedNetns } from './liveness';

/** The host's links by name (the sweeper runs in the host netns). */
export async function hostLinks(): Promise<Map<string, Link>> {
  using h = openHandle();
  return new Map((await h.linkList()).map((l) => [l.name, l]));
}

/** Bridge names an attachment's chain uses (bridge's `bridge`, default cni0). */
function bridgeNames(a: Attachment): Set<string> {
  const out = new Set<string>();
  try {
    for (const p of confListFromBytes(a.config).plugins) {
      if (p.network.type === 'bridge') out.add(typeof p.raw.bridge === 'string' ? p.raw.bridge : 'cni0');
      const d = p.raw.delegate as Record<string, unknown> | undefined; // flannel's delegate
      if (p.network.type === 'flannel' && (d?.type ?? 'bridge') === 'bridge') out.add(typeof d?.bridge === 'string' ? d.bridge : 'cni0');
    }
  } catch { /* unreadable config: no names */ }
  return out;
}

function netnsFact(p: string): NetnsFact {
  if (!p) return 'none';
  try {
    openNetns(p).close();
    return 'netns';
  } catch (e) {
    if (e instanceof NetnsNotFoundError) return 'gone';
    if (e instanceof NotNetnsError) {
      try {
        return openPodNetnsForDel(p) === null ? 'gone' : 'not-netns'; // null: a stale pin
      } catch {
        return 'not-netns';
      }
    }
    return 'not-netns';
  }
}

/** Is `ifName` in the namespace at `p`, with `mac`? undefined when it cannot be told. */
async function containerIfIn(p: string, ifName: string, mac: string | undefined): Promise<boolean | undefined> {
  if (!mac) return undefined;
  let h;
  try {
    using ns = openNetns(p);
    h = openHandleAt(ns);
  } catch {
    return undefined;
  }
  using _h = h;
  try {
    const l = await h.linkByNameOrNull(ifName);
    return !!l && l.mac.toLowerCase() === mac;
  } catch {
    return undefined;
  }
}

export async function attachmentFacts(a: Attachment, links: ReadonlyMap<string, Link>, now: number): Promise<AttachmentFacts> {
  const netns = recordedNetns(a.netns, a.result, a.ifName);
  const fact = netnsFact(netns);
  let ageMs = Infinity;
  try { ageMs = now - statSync(a.file).mtimeMs; } catch { /* gone meanwhile: as old */ }
  const hostPeers = hostPeerCandidates(a.result, bridgeNames(a)).map((c) => {
    const l = links.get(c.name);
    // a pod's host side is a veth: a bridge (or anything else) outlives its pods
    return { name: c.name, present: !!l && l.kind === 'veth' && l.mac.toLowerCase() === c.mac };
  });
  const containerIfPresent = fact === 'netns' && netns.startsWith('/proc/') ? await containerIfIn(netns, a.ifName, containerMac(a.result, a.ifName)) : undefined;
  return { netns, netnsFact: fact, containerIfPresent, hostPeers, ageMs };
}

/** Owners (`id`, `ifname`) named by the reservation files of `<dataDir>/<network>/`. */
export function reservationOwners(dataDir: string, network: string): { id: string; ifname: string }[] {
  const out: { id: string; ifname: string }[] = [];
  const dir = path.join(dataDir, network);
  let names: string[] = [];
  try { names = readdirSync(dir); } catch { return out; }
  for (const n of names) {
    if (!isReservationName(n)) continue;
    try {
      const [id, ifname = ''] = readFileSync(path.join(dir, n), 'utf8').split('\r\n').map((s) => s.trim());
      if (id) out.push({ id, ifname });
    } catch { /* released meanwhile */ }
  }
  return out;
}
