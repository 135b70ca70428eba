/**
 * On-disk state of `flax sandbox`, and listSandboxes(), which the node
 * sweeper (`flax gc`) uses with remove.ts's removeSandbox().
 *
 * Layout under the sandbox root (default /run/flax/sandboxes; env
 * FLAX_SANDBOX_DIR or --sandbox-dir override it). The root is a shared
 * mount point, as /run/netns is for `ip netns`, so pins propagate to mount
 * namespaces created later and unmounting them frees the namespaces there too.
 *
 *   <root>/.locks/<name>       flock(2)ed while a run / rm of <name> works
 *   <root>/<name>/state.json   the state below (0600, replaced atomically)
 *   <root>/<name>/{net,ipc,uts,pid}  bind mounts of pause's namespaces
 *                              (pid only with --share-pid)
 *   <root>/<name>/pause.log    pause's stderr; exec.log: output of `exec -d`
 *
 * state.json (version 1):
 *   { "version": 1,
 *     "name": "web",
 *     "containerId": "flax-sandbox-web",    CNI_CONTAINERID of every attachment
 *     "created": "2024-05-01T10:00:00.000Z",
 *     "phase": "creating" | "ready",        "creating": a run is (or died) midway
 *     "hostname": "web",
 *     "sharePid": false,
 *     "pause": { "pid": 4242, "startTime": "123456" },
 *                                            startTime: field 22 of /proc/<pid>/stat;
 *                                            pause is alive only if both still match
 *     "namespaces": { "net": "<root>/web/net", "ipc": …, "uts": …, "pid"?: … },
 *     "cni": { "path": ["/opt/cni/bin"], "cacheDir": "/var/lib/cni" },
 *     "networks": [                          in attach order; DEL goes in reverse
 *       { "name": "mynet", "ifName": "eth0",
 *         "config": "<base64 of the conflist bytes used for ADD>",
 *         "args"?: [["K","V"]], "capabilityArgs"?: {…},
 *         "result"?: {…} } ] }               no result: ADD started, not finished
 * A network is recorded before its ADD runs, so a run killed midway leaves
 * nothing that rm (or gc) cannot find; DEL of a never-added one is harmless.
 */
import { existsSync, fstatSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isErrno, native } from '../pkg/native';
import { lockFile, type FileLock } from '../pkg/lock';
import { isSameProcess } from './proc';
import { sandboxNameProblem } from './name';

export const DEFAULT_SANDBOX_DIR = '/run/flax/sandboxes';
export const NS_KINDS = ['net', 'ipc', 'uts', 'pid'] as const;
export type NsKind = (typeof NS_KINDS)[number];

export interface NetworkState {
  name: string;
  ifName: string;
  /** base64 of the conflist bytes */
  config: string;
  args?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result?: Record<string, unknown>;
}

export interface SandboxState {
  version: 1;
  name: string;
  containerId: string;
  created: string;
  phase: 'creating' | 'ready';
  hostname: string;
  sharePid: boolean;
  pause: { pid: number; startTime: string };
  namespaces: Partial<Record<NsKind, string>>;
  cni: { path: string[]; cacheDir: string };
  networks: NetworkState[];
}

/** The sandbox root: explicit, else $FLAX_SANDBOX_DIR, else /run/flax/sandboxes. */
export function sandboxRoot(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(explicit || env.FLAX_SANDBOX_DIR || DEFAULT_SANDBOX_DIR);
}

/** Throws a SandboxError unless `name` is a safe sandbox name. */
export function validateSandboxName(name: string): void {
  const problem = sandboxNameProblem(name);
  if (problem) throw new SandboxError(problem);
}

/** A sandbox failure the user can act on (printed as one line). */
export class SandboxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SandboxError';
  }
}

export const sandboxDir = (root: string, name: string) => path.join(root, name);
export const stateFile = (root: string, name: string) => path.join(root, name, 'state.json');
export const containerIdOf = (name: string) => `flax-sandbox-${name}`;

/** Reads a sandbox's state; null when the sandbox does not exist. Throws SandboxError when unreadable. */
export function readState(root: string, name: string): SandboxState | null {
  let text: string;
  try {
    text = readFileSync(stateFile(root, name), 'utf8');
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return null;
    throw e;
  }
  let s: SandboxState;
  try {
    s = JSON.parse(text) as SandboxState;
  } catch (e) {
    throw new SandboxError(`sandbox ${name}: ${stateFile(root, name)} is not valid JSON (${(e as Error).message})`);
  }
  if (s?.version !== 1 || s.name !== name || typeof s.pause?.pid !== 'number' || !Array.isArray(s.networks)) {
    throw new SandboxError(`sandbox ${name}: ${stateFile(root, name)} is not a version 1 sandbox state`);
  }
  return s;
}

/** Replaces state.json atomically (temp file + rename), mode 0600. */
export function writeState(root: string, s: SandboxState): void {
  const file = stateFile(root, s.name);
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(s, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
}

/** Creates the root (a shared mount point) once; safe to call concurrently. */
export function ensureRoot(root: string): void {
  mkdirSync(path.join(root, '.locks'), { recursive: true, mode: 0o700 });
  using _l = lockFile(path.join(root, '.locks', '.root'));
  native().makeSharedDir(root);
}

/**
 * Takes the per-name lock, waiting up to `timeoutMs`. The lock file is
 * unlinked by whoever removes the sandbox while holding it, so after getting
 * the lock we check that it is still the file at that path.
 */
export async function lockSandbox(root: string, name: string, timeoutMs = 30_000): Promise<FileLock> {
  const file = path.join(root, '.locks', name);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const end = Date.now() + timeoutMs;
  for (;;) {
    let l: FileLock | undefined;
    try {
      l = lockFile(file, { nonBlocking: true });
    } catch (e) {
      if (!isErrno(e, 'EWOULDBLOCK') && !isErrno(e, 'EAGAIN')) throw e;
      if (Date.now() > end) throw new SandboxError(`sandbox ${name} is busy: another flax sandbox run/rm holds ${file}`);
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    const held = fstatSync(l.fd);
    const now = existsSync(file) ? statSync(file) : null;
    if (now && now.ino === held.ino && now.dev === held.dev) return l;
    l.release();
  }
}

/** Drops the lock and its file (call only once the sandbox is gone). */
export function releaseAndUnlink(l: FileLock): void {
  try { unlinkSync(l.path); } catch { /* already gone */ }
  l.release();
}

export interface SandboxInfo {
  name: string;
  dir: string;
  /** 0 when the state is unreadable */
  pausePid: number;
  /** pause runs and is the same process (pid and start time match) */
  alive: boolean;
  created?: string;
  phase?: SandboxState['phase'];
  containerId: string;
  networks: { name: string; ifName: string; addresses: string[] }[];
  /** namespace pins present on disk */
  pins: string[];
  state: SandboxState | null;
  /** why the state could not be read */
  error?: string;
}

/** Addresses of a cached CNI result (`ips[].address`, 0.3.0+; `ip4/ip6.ip`, 0.1/0.2). */
export function resultAddresses(r: Record<string, unknown> | undefined): string[] {
  if (!r) return [];
  if (Array.isArray(r.ips)) return (r.ips as { address?: string }[]).map((i) => i.address ?? '').filter(Boolean);
  return ['ip4', 'ip6'].map((k) => (r[k] as { ip?: string } | undefined)?.ip ?? '').filter(Boolean);
}

/** One sandbox as ls / inspect / gc see it; null when it does not exist. */
export function inspectSandbox(root: string, name: string): SandboxInfo | null {
  const dir = sandboxDir(root, name);
  if (!existsSync(dir)) return null;
  const pins = NS_KINDS.map((k) => path.join(dir, k)).filter((p) => existsSync(p));
  let state: SandboxState | null = null;
  let error: string | undefined;
  try {
    state = readState(root, name);
    if (!state) error = `no ${path.basename(stateFile(root, name))}`;
  } catch (e) {
    error = (e as Error).message;
  }
  return {
    name, dir, pins, state, error,
    pausePid: state?.pause.pid ?? 0,
    alive: !!state && isSameProcess(state.pause.pid, state.pause.startTime),
    created: state?.created,
    phase: state?.phase,
    containerId: state?.containerId ?? containerIdOf(name),
    networks: (state?.networks ?? []).map((n) => ({ name: n.name, ifName: n.ifName, addresses: resultAddresses(n.result) })),
  };
}

/** Every sandbox under the root (default: sandboxRoot()), sorted by name. */
export function listSandboxes(root: string = sandboxRoot()): SandboxInfo[] {
  let names: string[];
  try {
    names = readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return [];
    throw e;
  }
  return names.map((n) => inspectSandbox(root, n)).filter((s): s is SandboxInfo => s !== null);
}
