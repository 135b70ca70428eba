/**
 * Is a cached attachment alive? Decided from facts gathered on the node
 * (facts.ts), purely, and conservatively: an attachment is dead only when
 * the node proves it; everything else is kept, with the reason.
 *
 *  1. younger than --min-age                       → kept (an ADD may be finishing)
 *  2. its netns path names a network namespace:
 *     - a /proc/<pid>/… path whose namespace lacks the container interface
 *       (name + MAC from the cached result): the pid was reused by another
 *       process                                     → dead
 *     - otherwise                                    → alive
 *  3. the path exists but is not a namespace (nor a stale pin) → kept
 *  4. the path is gone (or a stale pin, or none was recorded):
 *     - a host-side interface of the result (the bridge's veth) still
 *       exists with its MAC: the namespace is held by something else → alive
 *     - no path recorded and no host-side interface to look at → kept
 *     - otherwise                                    → dead
 *
 * A blind view (blindView): the sweeper may run where the node's netns pins
 * are not visible (a container without the host's /run/netns, /var/run/netns,
 * or /proc of the host's pids), where every path looks gone. One attachment
 * whose host-side interface (the bridge's veth) is alive while its netns
 * path is missing proves the view is blind; then no missing netns path is
 * taken as proof of death (keptWhenBlind): an attachment judged dead on its
 * netns path alone (a path gone, or a /proc path naming another namespace;
 * no host interface gone with it) is kept, and said so.
 */
export type NetnsFact = 'netns' | 'gone' | 'not-netns' | 'none';

export interface AttachmentFacts {
  /** the netns path judged (cache `netns`, else the result's sandbox) */
  netns: string;
  netnsFact: NetnsFact;
  /** for a live netns: is the container interface there with its MAC? undefined = not known */
  containerIfPresent?: boolean;
  /** host-side interfaces the result names (not the bridge): name → still present with that MAC */
  hostPeers: { name: string; present: boolean }[];
  ageMs: number;
}

export interface Verdict {
  dead: boolean;
  reason: string;
}

const isProcPath = (p: string) => p.startsWith('/proc/');

export function judgeAttachment(f: AttachmentFacts, minAgeMs: number): Verdict {
  if (f.ageMs < minAgeMs) return { dead: false, reason: `younger than ${Math.round(minAgeMs / 1000)} s` };
  if (f.netnsFact === 'netns') {
    if (isProcPath(f.netns) && f.containerIfPresent === false) {
      return { dead: true, reason: `${f.netns} is another namespace now (its process is gone and the pid reused)` };
    }
    return { dead: false, reason: `netns ${f.netns} exists` };
  }
  if (f.netnsFact === 'not-netns') return { dead: false, reason: `${f.netns} exists but is not a namespace: cannot tell` };
  const held = f.hostPeers.find((p) => p.present);
  if (held) return { dead: false, reason: `host interface ${held.name} still exists: its namespace is held elsewhere` };
  if (f.netnsFact === 'none' && !f.hostPeers.length) return { dead: false, reason: 'no netns recorded and no host interface to check: cannot tell' };
  const what = f.netnsFact === 'none' ? 'no netns recorded' : `netns ${f.netns} is gone`;
  return { dead: true, reason: f.hostPeers.length ? `${what} and host interface ${f.hostPeers.map((p) => p.name).join(', ')} with it` : what };
}

/**
 * Is this view of the node blind to its netns pins? The reason when it is:
 * an attachment whose host interface is alive while its recorded netns path
 * is missing (its pod runs, in a namespace pinned where we cannot see it).
 * `label` names an attachment in the reason.
 */
export function blindView(all: readonly { label: string; facts: AttachmentFacts }[]): string | undefined {
  for (const { label, facts: f } of all) {
    if (f.netnsFact !== 'gone' || !f.netns) continue;
    const alive = f.hostPeers.find((p) => p.present);
    if (alive) return `host interface ${alive.name} of ${label} is alive while its netns ${f.netns} is missing here`;
  }
  return undefined;
}

/**
 * A verdict seen through a blind view: a death that rests on a missing
 * netns path alone (no host interface that vanished with it) is not proven.
 */
export function keptWhenBlind(f: AttachmentFacts, v: Verdict, blind: string | undefined): Verdict {
  const hostProof = f.hostPeers.length > 0 && f.hostPeers.every((p) => !p.present); // its veth went with it
  if (!blind || !v.dead || hostProof) return v;
  return { dead: false, reason: `${v.reason}, but this sweeper cannot see the node's netns pins (${blind}): kept` };
}

/** The netns path an attachment records: the cache's, else the result's container sandbox. */
export function recordedNetns(netns: string, result: Record<string, unknown> | undefined, ifName: string): string {
  if (netns) return netns;
  const ifs = Array.isArray(result?.interfaces) ? (result!.interfaces as { name?: unknown; sandbox?: unknown }[]) : [];
  const own = ifs.find((i) => i.name === ifName && typeof i.sandbox === 'string' && i.sandbox);
  const any = own ?? ifs.find((i) => typeof i.sandbox === 'string' && i.sandbox);
  return (any?.sandbox as string | undefined) ?? '';
}

/**
 * Host-side interfaces of a result worth checking: no sandbox, with a MAC,
 * and not the bridge (the bridge is listed first by bridge's result and
 * outlives every pod; we recognise it as the interface that other host
 * interfaces are not — a name given as the config's `bridge`).
 */
export function hostPeerCandidates(result: Record<string, unknown> | undefined, bridgeNames: ReadonlySet<string>): { name: string; mac: string }[] {
  const ifs = Array.isArray(result?.interfaces) ? (result!.interfaces as { name?: unknown; mac?: unknown; sandbox?: unknown }[]) : [];
  return ifs
    .filter((i) => typeof i.name === 'string' && typeof i.mac === 'string' && !i.sandbox && !bridgeNames.has(i.name as string))
    .map((i) => ({ name: i.name as string, mac: (i.mac as string).toLowerCase() }));
}

/** The container interface's MAC in a result, if any. */
export function containerMac(result: Record<string, unknown> | undefined, ifName: string): string | undefined {
  const ifs = Array.isArray(result?.interfaces) ? (result!.interfaces as { name?: unknown; mac?: unknown; sandbox?: unknown }[]) : [];
  const c = ifs.find((i) => i.name === ifName && i.sandbox && typeof i.mac === 'string');
  return c ? (c.mac as string).toLowerCase() : undefined;
}
