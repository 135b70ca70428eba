/**
 * A worker thread of the resident CNI server: runs one request at a time
 * through the same skel `handle()` the standalone executable runs, as the
 * caller would have run it:
 *  - the thread first enters the CALLER's network namespace (setns moves
 *    only this thread): netlink sockets opened here, /proc/sys/net opened
 *    synchronously here and processes spawned from here (nft, iptables, a
 *    foreign delegate) all act in the caller's "host" namespace;
 *  - the call runs on the caller's Host (caller-host.ts): its environment,
 *    CNI_NETNS resolving to the fd the client opened (results and messages
 *    keep the runtime's path), sysctls through the caller's /proc when this
 *    one is read-only; its stderr is captured and sent back.
 * The worker switches back to the server's namespace after each request; if
 * it cannot, it exits and the pool starts another.
 */
import { accessSync, closeSync, constants as fsConstants, openSync } from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import { CniError, ErrCode } from '../cni/errors';
import { native } from '../native';
import type { Host } from '../host/host';
import { currentNetnsPath, isStranded } from '../ns/ns';
import type { LocalPlugin } from '../invoke/inprocess';
import { aboutLine, errorResponse, handle, inCniWorker, type Response } from '../skel/skel';
import { callerHost } from './caller-host';
import { netnsForExec, pathsOfCall, sameView, viewDifference } from './view';
import { RUN_STANDALONE } from './wire';

/** What the server posts to a worker. */
export interface WorkerRequest {
  id: number;
  name: string;
  env: string[];
  stdin: Uint8Array;
  /** fd (in this process) of the caller's netns */
  hostFd: number;
  /** fd of CNI_NETNS as the client opened it */
  netnsFd?: number;
  /** errno of the client's failed open(CNI_NETNS) */
  netnsErrno?: number;
  /** fd of the caller's root directory (view.ts) */
  rootFd?: number;
  /** the caller's pid as the server sees it (0: not visible) */
  pid: number;
  /** the connection: the worker answers on it (cniReply closes it) */
  conn: number;
}
/** Why a call was handed back to the standalone plugin: the caller sees a path otherwise (mount_namespace), its CNI_NETNS path is not its netns here and the call may exec (netns_path), or its netns could not be entered (setns). */
export type HandBackReason = 'mount_namespace' | 'netns_path' | 'setns';

/** What a worker posts back once it has answered the caller (for the server's stats). */
export interface WorkerReply {
  id: number;
  exitCode: number;
  /** the thread could not return to the server's netns: it exits after this */
  stranded?: boolean;
  /** handed back (exitCode RUN_STANDALONE), having done nothing: why */
  deferred?: string;
  /** and the kind of why, for the metric */
  reason?: HandBackReason;
}
/**
 * workerData of a CNI worker: `answered` (one Int32 shared with the server)
 * holds the id of the last request the worker answered, set just before the
 * answer goes out — a worker that dies after it must not be answered for
 * again (its conn number may already belong to another call).
 */
export interface CniWorkerData {
  flaxCniWorker: true;
  answered: SharedArrayBuffer;
  /** fd of the server's netns: the worker enters it first (threadSite) */
  serverNetns?: number;
}

export function envObject(list: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i > 0 && !Object.hasOwn(env, kv.slice(0, i))) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

/** The plugins a worker serves, by executable name (the composition root's servedPlugins). */
export type ServedPlugins = Readonly<Record<string, LocalPlugin>>;

async function run(plugins: ServedPlugins, m: WorkerRequest, host: Host): Promise<Response & { stderr?: string }> {
  const served = Object.hasOwn(plugins, m.name) ? plugins[m.name] : undefined;
  const stdin = Buffer.from(m.stdin.buffer, m.stdin.byteOffset, m.stdin.byteLength);
  if (!served) return errorResponse(new CniError(ErrCode.Internal, `flax CNI server: no plugin named "${m.name.slice(0, 64)}"`), stdin, host);
  const env = host.env;
  if (env.CNI_COMMAND === undefined || env.CNI_COMMAND === '') return { stdout: '', exitCode: 0, stderr: aboutLine(served.about) };
  return handle(served.plugin, served.about, {
    command: env.CNI_COMMAND, containerId: env.CNI_CONTAINERID, netns: env.CNI_NETNS, ifname: env.CNI_IFNAME,
    args: env.CNI_ARGS, path: env.CNI_PATH, stdin,
  }, host);
}

/**
 * A thread that serves calls (a worker, or the server's main thread while
 * its first worker starts): its own netns (returned to after each call),
 * whether its /proc/sys is read-only, and how it answers a caller.
 */
export interface CallSite {
  /** fd of this thread's own netns */
  own: number;
  /** /proc/sys read-only here (a container that is not privileged, conf/flax.yml): sysctls go through the caller's /proc */
  sysctlsReadOnly: boolean;
  answer(m: WorkerRequest, stdout: string, stderr: string, exitCode: number): void;
}

/**
 * The calling thread as a CallSite. `serverNetns`: an fd of the server's
 * netns, entered first — a thread inherits the netns of the thread that
 * started it, which may be inside a caller's (the main thread serving
 * while the first worker starts).
 */
export function threadSite(answer: CallSite['answer'], serverNetns?: number): CallSite {
  const n = native();
  if (serverNetns !== undefined) n.setns(serverNetns, n.constants.CLONE_NEWNET);
  const own = openSync(currentNetnsPath(), 'r');
  const sysctlsReadOnly = (() => {
    try {
      accessSync('/proc/sys/net/ipv4/ip_forward', fsConstants.W_OK);
      return false;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EROFS';
    }
  })();
  return { own, sysctlsReadOnly, answer };
}

/**
 * Runs one request on the calling thread, inside the caller's netns, and
 * answers its caller; resolves with what the server counts. `stranded`:
 * the thread could not come back to its own netns and must not serve again.
 */
export async function serveCall(plugins: ServedPlugins, m: WorkerRequest, site: CallSite): Promise<WorkerReply> {
  const n = native();
  const defer = (why: string, reason: HandBackReason): WorkerReply => {
    site.answer(m, '', '', RUN_STANDALONE);
    return { id: m.id, exitCode: RUN_STANDALONE, deferred: why, reason };
  };
  const env = envObject(m.env);
  if (m.rootFd !== undefined && env.CNI_COMMAND && env.CNI_COMMAND !== 'VERSION' && !sameView(m.pid, m.rootFd)) {
    const p = viewDifference(m.rootFd, pathsOfCall(env, m.stdin));
    if (p) return defer(`a caller sees ${p} otherwise than this server (another mount namespace)`, 'mount_namespace');
    const why = netnsForExec(env.CNI_NETNS, m.netnsFd, m.stdin, Object.keys(plugins));
    if (why) return defer(why, 'netns_path');
  }
  try {
    n.setns(m.hostFd, n.constants.CLONE_NEWNET);
  } catch (e) {
    // nothing happened yet: the standalone plugin can do it (e.g. a server without CAP_SYS_ADMIN)
    return defer(`cannot enter a caller's network namespace (${(e as Error).message})`, 'setns');
  }
  let captured = '';
  const capture = (chunk: string | Uint8Array) => {
    captured += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  };
  const host = callerHost({
    env, stderr: { write: capture },
    netns: m.netnsFd !== undefined ? { fd: m.netnsFd } : m.netnsErrno ? { errno: m.netnsErrno } : undefined,
    sysctlRoot: site.sysctlsReadOnly && m.rootFd !== undefined ? `/proc/self/fd/${m.rootFd}/proc/sys` : undefined,
  });
  let res: Response & { stderr?: string };
  try {
    res = await run(plugins, m, host);
  } catch (e) {
    res = errorResponse(new CniError(ErrCode.Internal, (e as Error).message), Buffer.from(m.stdin), host);
  }
  let stranded = isStranded();
  try {
    n.setns(site.own, n.constants.CLONE_NEWNET);
  } catch {
    stranded = true;
  }
  site.answer(m, res.stdout, captured + (res.stderr ?? ''), res.exitCode);
  return { id: m.id, exitCode: res.exitCode, stranded };
}

function startWorker(plugins: ServedPlugins, port: MessagePort, data: CniWorkerData): void {
  const n = native();
  const answered = new Int32Array(data.answered);
  // The caller gets its answer straight from here (no hop through the
  // server's thread). The fds that came with the request stay the server's
  // to close: a worker closing an fd it did not open draws a Node warning.
  const site = threadSite((m, stdout, stderr, exitCode) => {
    Atomics.store(answered, 0, m.id);
    n.cniReply(m.conn, Buffer.from(stdout), Buffer.from(stderr), exitCode);
  }, data.serverNetns);
  port.on('message', async (m: WorkerRequest | { reduceMemory: true } | { heapUsed: true }) => {
    if ('heapUsed' in m) {
      port.postMessage({ heapUsed: process.getBuiltinModule('node:v8').getHeapStatistics().used_heap_size });
      return;
    }
    if ('reduceMemory' in m) {
      // the server went idle: this heap shrinks back (startCniServer's releaseMemory)
      n.lowMemoryNotification();
      port.postMessage({ memoryReduced: true });
      return;
    }
    const reply = await serveCall(plugins, m, site);
    port.postMessage(reply satisfies WorkerReply);
    if (reply.stranded) {
      closeSync(site.own);
      process.exit(1);
    }
  });
  port.postMessage({ ready: true });
}

/** The worker's entry (plugins/bin/cni-worker.ts) hands it the plugins it serves; outside a CNI worker thread, nothing. */
export function runCniWorker(plugins: ServedPlugins): void {
  if (!inCniWorker()) return;
  // loaded when used: node:worker_threads cannot be part of a V8 startup snapshot (the package's, which holds this module)
  const { parentPort, workerData } = process.getBuiltinModule('node:worker_threads');
  startWorker(plugins, parentPort!, workerData as CniWorkerData);
}
