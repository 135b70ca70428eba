/**
 * Does the server see the call's files as the caller does? The server runs
 * a call in the caller's NETWORK namespace (setns on one thread) but cannot
 * enter its MOUNT namespace (setns(CLONE_NEWNS) refuses a multi-threaded
 * process), so every path a plugin resolves — CNI_PATH and the delegates it
 * finds there, host-local's dataDir, flannel's subnet file, resolvConf —
 * resolves in the server's mount namespace. The client sends its root
 * directory (an O_PATH fd); before running a call, the server compares,
 * for every path the call may use, what it finds at `<path>` with what the
 * caller finds (`/proc/self/fd/<root>/<path>`): the deepest existing
 * component, by device and inode. Any difference (e.g. ctr's private mount
 * namespace with a plugin dir bind-mounted over /usr/lib/cni, or a pod-side
 * runtime whose /var/lib/cni is not the host's) and the server hands the
 * call back untouched: the client runs the standalone plugin. The same
 * hostPath mounts (a DaemonSet's /opt/cni/bin, /var/lib/cni, /run/flannel)
 * are the same inodes: served. CNI_NETNS is not among the paths: the
 * plugins open it through the fd the client sent (caller-host.ts) — but
 * a delegate the server execs (a type it does not run in process) gets the
 * path, so such a call is handed back too when the path is not the caller's
 * netns in the server's view (netnsForExec).
 */
import { closeSync, fstatSync, openSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** Paths the served plugins use when their config does not name them. */
export const DEFAULT_PATHS = ['/var/lib/cni/networks', '/var/lib/cni/flannel', '/run/flannel/subnet.env'];

const MAX_PATHS = 64;

/** Every path a call may resolve: CNI_PATH entries, absolute strings anywhere in its config, the defaults. */
export function pathsOfCall(env: Record<string, string>, stdin: Uint8Array): string[] {
  const out = new Set<string>();
  const add = (p: string) => {
    if (out.size < MAX_PATHS && p.startsWith('/') && p.length < 4096 && !p.includes('\0')) out.add(path.normalize(p));
  };
  for (const d of (env.CNI_PATH ?? '').split(':')) add(d);
  let conf: unknown;
  try {
    conf = JSON.parse(Buffer.from(stdin.buffer, stdin.byteOffset, stdin.byteLength).toString('utf8'));
  } catch { /* the plugin refuses it the same way anywhere */ }
  const walk = (v: unknown, depth: number) => {
    if (depth > 32 || out.size >= MAX_PATHS) return;
    if (typeof v === 'string') add(v);
    else if (Array.isArray(v)) for (const x of v) walk(x, depth + 1);
    else if (v && typeof v === 'object') for (const x of Object.values(v)) walk(x, depth + 1);
  };
  walk(conf, 0);
  for (const p of DEFAULT_PATHS) add(p);
  return [...out];
}

export interface Found { depth: number; dev: number; ino: number }

/** The deepest existing component of `p` under `root` ('' = this process's /): its depth, device and inode. */
export function deepestExisting(root: string, p: string): Found | null {
  const parts = p.split('/').filter(Boolean);
  for (let n = parts.length; n >= 0; n--) {
    try {
      // no exception for a missing component (most defaults are): an Error with its stack costs more than the stat
      const st = statSync(root + '/' + parts.slice(0, n).join('/'), { throwIfNoEntry: false });
      if (st) return { depth: n, dev: st.dev, ino: st.ino };
    } catch { /* ENOTDIR, EACCES…: up one */ }
  }
  return null;
}

/**
 * The first path the caller (root = its root dir fd) sees otherwise than
 * this process, with both findings; null when they agree on all of them.
 */
export function viewDifference(rootFd: number, paths: readonly string[], find = deepestExisting): string | null {
  const callerRoot = `/proc/self/fd/${rootFd}`;
  for (const p of paths) {
    const mine = find('', p);
    const theirs = find(callerRoot, p);
    if (!mine || !theirs || mine.depth !== theirs.depth || mine.dev !== theirs.dev || mine.ino !== theirs.ino) return p;
  }
  return null;
}

/** A root directory's identity: its mount (fdinfo's mnt_id), device and inode. */
function rootId(fd: number): string | null {
  try {
    const mnt = /^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    const st = fstatSync(fd);
    return mnt ? `${mnt[1]} ${st.dev} ${st.ino}` : null;
  } catch {
    return null;
  }
}

let own: { mntns: number; root: string | null } | undefined;

/**
 * True when the caller (pid as this process sees it, 0 when it cannot;
 * rootFd = its root directory) is in this process's mount namespace with
 * the same root — the same mount, not only the same directory — so every
 * path resolves alike and viewDifference has nothing to find. The common
 * case (a runtime on the host, flaxd with the host's mounts) then costs
 * two stats and a read instead of a walk over every path of the call.
 */
export function sameView(pid: number, rootFd: number): boolean {
  if (!pid) return false;
  try {
    if (!own) {
      const fd = openSync('/', 'r');
      try {
        own = { mntns: statSync('/proc/self/ns/mnt').ino, root: rootId(fd) };
      } finally {
        closeSync(fd);
      }
    }
    return own.root !== null && statSync(`/proc/${pid}/ns/mnt`).ino === own.mntns && rootId(rootFd) === own.root;
  } catch {
    return false;
  }
}

/** Delegate types a config may exec (ipam, delegate, the delegate's ipam) that are not among `inProcess`. */
export function execdTypes(stdin: Uint8Array, inProcess: readonly string[]): string[] {
  let conf: { ipam?: { type?: unknown }; delegate?: { type?: unknown; ipam?: { type?: unknown } } };
  try {
    conf = JSON.parse(Buffer.from(stdin.buffer, stdin.byteOffset, stdin.byteLength).toString('utf8'));
  } catch {
    return [];
  }
  if (!conf || typeof conf !== 'object') return [];
  const types = [conf.ipam?.type, conf.delegate?.type, conf.delegate?.ipam?.type].filter((t): t is string => typeof t === 'string');
  return [...new Set(types.filter((t) => !inProcess.includes(t)))];
}

/** True when `p` names, in this process's view, the file behind `fd`. */
export function sameFileAsFd(p: string, fd: number): boolean {
  try {
    const a = statSync(p);
    const b = fstatSync(fd);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

/**
 * Why a call whose delegate would be exec'd cannot be served (its
 * CNI_NETNS path shows this server another netns, or none), or null.
 */
export function netnsForExec(netns: string | undefined, netnsFd: number | undefined, stdin: Uint8Array, inProcess: readonly string[]): string | null {
  if (!netns?.startsWith('/') || netnsFd === undefined) return null;
  const foreign = execdTypes(stdin, inProcess);
  if (!foreign.length || sameFileAsFd(netns, netnsFd)) return null;
  return `CNI_NETNS ${netns} is not the caller's netns in this server's view and the call may exec ${foreign.join(', ')}`;
}
