/**
 * Network namespaces: open (validate), pin (create) and unpin (remove), and
 * withNetns() for the little synchronous work that must run inside a netns
 * (/proc/sys/net writes). Design notes:
 *  - setns(2) moves only the calling thread. JS runs on the main thread, but
 *    libuv's pool threads stay where they are, so code inside withNetns must be
 *    synchronous (fs.*Sync). Netlink work does not need withNetns at all: open
 *    a socket with openHandleAt() instead.
 *  - The netns of the current thread is /proc/<pid>/task/<tid>/ns/net, not
 *    /proc/self/ns/net (that one is the thread-group leader's).
 */
import fs from 'node:fs';
import path from 'node:path';
import { native, isErrno } from '../native';
import { NetnsError, NetnsExistsError, NetnsNotFoundError, NetnsRestoreError, NotNetnsError } from './errors';

export const NETNS_RUN_DIR = '/run/netns';

/** An open network namespace. `fd` stays valid until close(). */
export class NetNS {
  #fd: number;
  constructor(fd: number, readonly path: string) {
    this.#fd = fd;
  }
  get fd(): number {
    if (this.#fd < 0) throw new NetnsError(`netns ${this.path} is closed`, this.path);
    return this.#fd;
  }
  get closed(): boolean {
    return this.#fd < 0;
  }
  /** Inode identity (dev:ino) of the namespace; equal for the same netns. */
  id(): string {
    const st = fs.fstatSync(this.fd);
    return `${st.dev}:${st.ino}`;
  }
  close(): void {
    if (this.#fd >= 0) {
      const fd = this.#fd;
      this.#fd = -1;
      fs.closeSync(fd);
    }
  }
  /** `using ns = openNetns(p)` closes it at the end of the scope. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Opens and validates a network namespace path: a pin (/run/netns/x, nsfs),
 * /proc/<pid>/ns/net, /proc/<pid>/task/<tid>/ns/net or /proc/<pid>/fd/<n>.
 * Throws NetnsNotFoundError if the path does not exist, NotNetnsError if it
 * is not a network namespace. `open`: how the path opens (a Host's
 * openNetnsFile: in a CNI server worker, the fd the caller opened).
 */
export function openNetns(nsPath: string, open: NetnsOpener = openNsFile): NetNS {
  let fd: number;
  try {
    fd = open(nsPath);
  } catch (e) {
    if (isErrno(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR' || e.code === 'ESRCH')) {
      throw new NetnsNotFoundError(`netns ${nsPath} does not exist`, nsPath, e.code, e.errno);
    }
    if (isErrno(e)) throw new NetnsError(`open netns ${nsPath}: ${e.message}`, nsPath, e.code, e.errno);
    throw e;
  }
  try {
    const n = native();
    const magic = n.fsMagic(fd);
    if (magic !== n.constants.NSFS_MAGIC && magic !== n.constants.PROC_SUPER_MAGIC) {
      throw new NotNetnsError(`${nsPath} is not a namespace (fs magic 0x${magic.toString(16)})`, nsPath);
    }
    let type: number;
    try {
      type = n.nsType(fd);
    } catch (e) {
      if (isErrno(e)) throw new NotNetnsError(`${nsPath} is not a namespace (${e.code})`, nsPath, e.code, e.errno);
      throw e;
    }
    if (type !== n.constants.CLONE_NEWNET) {
      throw new NotNetnsError(`${nsPath} is not a network namespace (type 0x${type.toString(16)})`, nsPath);
    }
    return new NetNS(fd, nsPath);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** open(2) of a netns path: a fd, or the errno-style error (a Host's openNetnsFile). */
export type NetnsOpener = (nsPath: string) => number;

/** fs.openSync(nsPath, O_RDONLY): a netns path as this process sees it. */
export const openNsFile: NetnsOpener = (nsPath) => fs.openSync(nsPath, fs.constants.O_RDONLY);

/** Like openNetns but returns null when the path does not exist. */
export function openNetnsOrNull(nsPath: string, open: NetnsOpener = openNsFile): NetNS | null {
  try {
    return openNetns(nsPath, open);
  } catch (e) {
    if (e instanceof NetnsNotFoundError) return null;
    throw e;
  }
}

function validName(name: string): boolean {
  return name.length > 0 && name.length < 256 && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}

/**
 * Resolves a netns name ("cni-1234") to its pin path under `dir`; an absolute
 * path is returned unchanged.
 */
export function netnsPath(nameOrPath: string, dir: string = NETNS_RUN_DIR): string {
  if (nameOrPath.startsWith('/')) return nameOrPath;
  if (!validName(nameOrPath)) throw new NetnsError(`invalid netns name ${JSON.stringify(nameOrPath)}`, nameOrPath, 'EINVAL');
  return path.join(dir, nameOrPath);
}

/**
 * Creates a new, empty network namespace pinned at `dir/name` (or at the
 * given absolute path), like `ip netns add`. Nothing is brought up (not even
 * lo). The caller's thread never enters it. Returns the pin path.
 * Throws NetnsExistsError if the pin already exists.
 */
export function createNetns(nameOrPath: string, dir: string = NETNS_RUN_DIR): string {
  const p = netnsPath(nameOrPath, dir);
  try {
    native().createNetns(p);
  } catch (e) {
    if (isErrno(e, 'EEXIST')) throw new NetnsExistsError(`netns ${p} already exists`, p, e.code, e.errno);
    if (isErrno(e)) throw new NetnsError(`create netns ${p}: ${e.message}`, p, e.code, e.errno);
    throw e;
  }
  return p;
}

/** Unpins a namespace created by createNetns (umount + unlink). Missing is OK. */
export function removeNetns(nameOrPath: string, dir: string = NETNS_RUN_DIR): void {
  const p = netnsPath(nameOrPath, dir);
  try {
    native().removeNetns(p);
  } catch (e) {
    if (isErrno(e)) throw new NetnsError(`remove netns ${p}: ${e.message}`, p, e.code, e.errno);
    throw e;
  }
}

/** Path of the calling thread's current network namespace. */
export function currentNetnsPath(): string {
  return `/proc/${process.pid}/task/${native().gettid()}/ns/net`;
}

/** Opens the calling thread's current network namespace. */
export function getCurrentNetns(): NetNS {
  return openNetns(currentNetnsPath());
}

/** True if both refer to the same network namespace (same nsfs inode). */
export function sameNetns(a: NetNS | string, b: NetNS | string): boolean {
  const id = (x: NetNS | string): string => {
    const st = typeof x === 'string' ? fs.statSync(x) : fs.fstatSync(x.fd);
    return `${st.dev}:${st.ino}`;
  };
  return id(a) === id(b);
}

let stranded: NetnsRestoreError | undefined;

/** True once withNetns failed to switch a thread back (the thread must not be reused). */
export function isStranded(): boolean {
  return stranded !== undefined;
}

/**
 * Runs a SYNCHRONOUS `fn` with the calling thread inside `target`, and
 * always switches back (also when fn throws). Nesting is fine. Never put
 * async work (promises, async fs, timers) inside: only this thread moves.
 * If switching back fails the thread is stranded in `target`; that throws
 * NetnsRestoreError and every later withNetns call fails the same way.
 */
export function withNetns<T>(target: NetNS | string, fn: (ns: NetNS) => T): T {
  if (stranded) throw stranded;
  const n = native();
  using owned = typeof target === 'string' ? openNetns(target) : null;
  const ns = owned ?? (target as NetNS);
  using orig = getCurrentNetns();
  n.setns(ns.fd, n.constants.CLONE_NEWNET);
  let result: T;
  try {
    result = fn(ns);
  } finally {
    try {
      n.setns(orig.fd, n.constants.CLONE_NEWNET);
    } catch (e) {
      stranded = new NetnsRestoreError(
        `failed to switch back to the original netns: ${(e as Error).message}`, orig.path,
        isErrno(e) ? e.code : undefined, isErrno(e) ? e.errno : undefined);
      // eslint-disable-next-line no-unsafe-finally
      throw stranded;
    }
  }
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    throw new TypeError('withNetns: fn must be synchronous (it returned a promise)');
  }
  return result;
}

/**
 * Where net sysctls are read and written by default. A plugin passes its
 * Host's sysctlRoot: a CNI server worker whose own /proc/sys is read-only
 * (a container that is not privileged) uses the caller's, through the
 * caller's root directory fd — a sysctl file under /proc/sys/net acts on
 * the netns of the thread that opens it, whichever procfs mount it is
 * reached through.
 */
export const SYSCTL_ROOT = '/proc/sys';

/**
 * Validates and normalises a sysctl key under net/: "net/ipv4/ip_forward"
 * or "net.ipv4.ip_forward" (dots only when the key has no slash, as an
 * interface name may contain dots). Returns its path under `root`.
 */
export function sysctlPath(key: string, root: string = SYSCTL_ROOT): string {
  const k = key.includes('/') ? key : key.replace(/\./g, '/');
  const parts = k.replace(/^\/+/, '').split('/');
  if (parts.length < 2 || parts[0] !== 'net' || parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\0'))) {
    throw new NetnsError(`invalid sysctl key ${JSON.stringify(key)} (must be under net/)`, key, 'EINVAL');
  }
  return path.join(root, ...parts);
}

/** Reads a net sysctl (trimmed) in `netns` (null = the current netns), under `root`. */
export function readSysctl(netns: NetNS | string | null, key: string, root: string = SYSCTL_ROOT): string {
  const p = sysctlPath(key, root);
  const read = (): string => fs.readFileSync(p, 'utf8').trim();
  return netns === null ? read() : withNetns(netns, read);
}

/** Writes a net sysctl in `netns` (null = the current netns), under `root`. */
export function writeSysctl(netns: NetNS | string | null, key: string, value: string | number, root: string = SYSCTL_ROOT): void {
  const p = sysctlPath(key, root);
  const write = (): void => fs.writeFileSync(p, String(value));
  if (netns === null) write();
  else withNetns(netns, write);
}

/**
 * Best-effort writeSysctl: false when the key is absent or not writable (an
 * interface without IPv6, a kernel without the knob). A key outside net/
 * still throws.
 */
export function trySysctl(netns: NetNS | string | null, key: string, value: string | number, root: string = SYSCTL_ROOT): boolean {
  sysctlPath(key, root);
  try {
    writeSysctl(netns, key, value, root);
    return true;
  } catch {
    return false;
  }
}
