/**
 * Loads flax's native addon (native/addon/flax.cc). In a bundle (dist/bin)
 * the banner defines `__flaxLoadAddon`, which dlopens flax.node shipped
 * beside the executable; from source it is native/build/Release/flax.node.
 * Loading is lazy so importing this module has no side effects.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

declare const __flaxDir: string | undefined;
declare const __flaxLoadAddon: ((name: string) => unknown) | undefined;

/** An errno-style failure thrown by the addon. */
export interface NativeError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
}

export interface NativeConstants {
  CLONE_NEWNET: number;
  CLONE_NEWNS: number;
  CLONE_NEWUTS: number;
  CLONE_NEWIPC: number;
  CLONE_NEWPID: number;
  CLONE_NEWUSER: number;
  LOCK_SH: number;
  LOCK_EX: number;
  LOCK_UN: number;
  LOCK_NB: number;
  NSFS_MAGIC: number;
  PROC_SUPER_MAGIC: number;
}

export interface FlaxNative {
  /** setns(2) for the calling (JS main) thread only. */
  setns(fd: number, nstype: number): void;
  /**
   * RTM_DELLINK of link `index` in the netns behind `netnsFd`, sent from a thread of libuv's pool; resolves
   * with the kernel's errno (0: deleted). The link is unlisted long before the kernel answers (issue 24).
   * Absent from an addon built before it.
   */
  linkDelAsync?(netnsFd: number, index: number): Promise<number>;
  /** CLONE_NEW* type of the namespace behind fd (ioctl NS_GET_NSTYPE). */
  nsType(fd: number): number;
  /** statfs(2) f_type of the filesystem holding fd. */
  fsMagic(fd: number): number;
  /** Like `ip netns add`: pins a new empty netns at pinPath (EEXIST if present). */
  createNetns(pinPath: string): void;
  /** umount2(MNT_DETACH) + unlink; a missing pin is not an error. */
  removeNetns(pinPath: string): void;
  /** mkdir -p dir and make it a shared mount point (so pins under it propagate and unmount everywhere). */
  makeSharedDir(dir: string): void;
  /** Bind-mounts a namespace file (e.g. /proc/<pid>/ns/ipc) onto a new file dst (EEXIST if it exists). */
  pinNamespace(src: string, dst: string): void;
  /** flock(2); blocks unless LOCK_NB is or-ed in. */
  flock(fd: number, op: number): void;
  /** gettid(2) of the calling thread. */
  gettid(): number;
  /** malloc_trim(0): free malloc memory back to the kernel, all arenas; true when some was released. */
  mallocTrim(): boolean;
  /** mallopt(M_ARENA_MAX, n): at most n malloc arenas for the threads started from now on; true when set. */
  mallocArenaMax(n: number): boolean;
  /** V8's LowMemoryNotification on the calling thread's isolate: full GCs that give free heap back (a server gone idle). */
  lowMemoryNotification(): void;
  /** madvise(MADV_DONTNEED) on the private read-only file mappings holding no copy-on-write page (executable text, read-only data, a SEA's blob): the bytes unmapped; used pages are mapped again at their next use. */
  releaseFilePages(): number;
  /** A listening unix socket at path with that mode (stale socket replaced; a live one is EADDRINUSE). */
  cniListen(path: string, mode: number): number;
  /** A listening unix stream socket handed over (systemd's LISTEN_FDS), checked to be bound to path; made close-on-exec. */
  cniAdoptListener(fd: number, path: string): number;
  /** `nft <args>` through libnftables on this thread (-j, -e, -f FILE, command words); throws when it cannot (no library, an unhandled option). */
  nftRun(args: string[]): { code: number; stdout: string; stderr: string };
  /** Accepts on native threads; every request (or refused/malformed connection, with .error) goes to onRequest. */
  cniServe(listenFd: number, onRequest: (r: NativeCniRequest) => void, adopted?: boolean): NativeCniServer;
  /** Stops accepting and closes the listening socket. */
  cniStop(server: NativeCniServer): void;
  /** Writes the reply (at once if the socket takes it whole, else on a native thread) and closes conn; any thread. */
  cniReply(conn: number, stdout: Buffer, stderr: Buffer, exitCode: number): void;
  /** _exit(2) at once, joining no thread (a worker stuck in a cut call would hold up Node's exit forever). */
  cniExit(code: number): never;
  constants: NativeConstants;
}

/** A request read by the addon's CNI server (native/addon/cniserver.cc). */
export interface NativeCniRequest {
  conn: number;
  uid: number;
  pid: number;
  /** received fds: [the caller's netns, CNI_NETNS if netnsFd] */
  fds: number[];
  /** set when the request was refused (not root) or cut: only close it */
  error?: string;
  /** with error: the connection closed before sending anything (a client's readiness probe) */
  empty?: boolean;
  name?: string;
  env?: string[];
  stdin?: Buffer;
  netnsFd?: boolean;
  netnsErrno?: number;
}
declare const nativeCniServer: unique symbol;
export type NativeCniServer = { readonly [nativeCniServer]: true };

let cached: FlaxNative | undefined;

/** The addon, loaded on first use. Throws if it was not built. */
export function native(): FlaxNative {
  if (cached) return cached;
  if (typeof __flaxDir === 'string' && typeof __flaxLoadAddon === 'function') {
    cached = __flaxLoadAddon('flax.node') as FlaxNative;
  } else {
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
    const file = path.join(root, 'native/build/Release/flax.node');
    cached = createRequire(import.meta.url)(file) as FlaxNative;
  }
  return cached;
}

/** True if `e` is an errno-style error (from the addon or node:fs) with that code. */
export function isErrno(e: unknown, code?: string): e is NativeError {
  return e instanceof Error && typeof (e as NativeError).code === 'string' &&
    (code === undefined || (e as NativeError).code === code);
}

/**
 * Path of one of native/'s static helpers (`pause`, `nsexec`, `cniclient`): beside the
 * executable in a bundle (dist/bin), native/build/<name> from source.
 */
export function nativeHelperPath(name: 'pause' | 'nsexec' | 'cniclient'): string {
  if (typeof __flaxDir === 'string') return path.join(__flaxDir, name);
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../native/build', name);
}
