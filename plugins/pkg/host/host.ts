/**
 * The Host: everything a plugin call reaches outside its own code — the
 * caller's environment, where diagnostics go, how CNI_NETNS opens, where
 * net sysctls are written, the firewall tools, how other plugins run, the
 * clock and the native addon. handle() passes one to every verb (CmdArgs
 * `host`); the four ways a plugin runs differ only in the Host they build:
 *  - the executable (snapshot launcher or bundle) and the multi-call
 *    binary: processHost() (process.env, process.stderr, plain opens);
 *  - an in-process delegate (invoke/inprocess.ts): its caller's Host with
 *    the delegate's environment;
 *  - a worker of the resident CNI server (cniserver/worker.ts): the
 *    caller's environment, its stderr captured, CNI_NETNS through the fd
 *    the client opened, sysctls through the caller's /proc when the
 *    server's own is read-only.
 * Types only (the Exec seam is libcni's Exec, as pkg/invoke implements it).
 */
import type { FlaxNative } from '../native';

/** A tool's exit and output. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}
/** Runs a tool (`nft`, `iptables-restore`, …) with `input` on stdin. */
export type Runner = (bin: string, args: string[], input?: string) => Promise<ExecResult>;

/** The firewall tools as a plugin reaches them (pkg/nft's FirewallDeps). */
export interface Tools {
  run: Runner;
  /** true when `iptables` is the nf_tables variant */
  iptablesNft: () => boolean;
  /** true when the tool is installed */
  has: (tool: string) => boolean;
  /** the caller's temporary directory (os.tmpdir() when absent) */
  tmpDir?: () => string;
}

export interface ExecOptions {
  /** kill the plugin after this many ms (0 = no limit) */
  timeoutMs?: number;
  /** where the plugin's stderr goes besides being captured (default: nowhere) */
  stderr?: HostStderr | null;
  /** the calling plugin's Host (an in-process run hands it on, with the delegate's environment) */
  host?: Host;
}

/** Runs plugins (libcni's Exec): the seam between callers and plugin processes. */
export interface Exec {
  /** Runs `pluginPath` with `env` and `stdin`; resolves with stdout, or rejects with a CniError. */
  execPlugin(pluginPath: string, env: Record<string, string>, stdin: Buffer, opts?: ExecOptions): Promise<Buffer>;
  /** The first `dir/plugin` that is a regular file, in `paths` order (see findInPath). */
  findInPath(plugin: string, paths: readonly string[], label?: string): string;
}

export interface HostStderr {
  write(chunk: string | Uint8Array): unknown;
}

export interface Host {
  /** the caller's environment (CNI_* and the rest: PATH, TMPDIR, FLAX_*) */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** where the plugin's diagnostics go (stdout carries the result, handle() returns it) */
  readonly stderr: HostStderr;
  /** open(2) of a netns path as the caller sees it: an fd, or the caller's error */
  openNetnsFile(nsPath: string): number;
  /** the directory net sysctls are read and written under ('/proc/sys', or the caller's) */
  readonly sysctlRoot: string;
  /** the firewall tools */
  readonly tools: Tools;
  /** how a plugin runs a delegate it is not given an Exec for */
  readonly exec: Exec;
  /** ms since the epoch */
  now(): number;
  /** the native addon (loaded once per process) */
  native(): FlaxNative;
}
