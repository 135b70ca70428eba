/**
 * The resident CNI server: answers the static client
 * (native/cniclient) that stands in for every plugin executable, so a CNI
 * call costs a connect instead of a Node start-up.
 *  - the socket (default /run/flax/cni.sock, mode 0600) is the addon's:
 *    Node's net cannot receive the caller's namespace fds (SCM_RIGHTS) nor
 *    check its uid (SO_PEERCRED); only root is served;
 *  - each request runs on a pool of worker threads (pool.ts, worker.ts), one
 *    request per worker at a time, so a slow call (an IPAM lock, an exec)
 *    does not hold up others; one worker when idle, the pool grows up to
 *    `maxWorkers`, then requests queue;
 *  - a worker that dies turns its request into a CNI error for that call
 *    only, and is replaced;
 *  - close() (flaxd's SIGTERM) removes the socket first (new calls run the
 *    standalone plugin), then stops accepting and lets the calls in flight
 *    finish, for at most `drainMs`: a rolling update drops no call (a call
 *    still running then is cut; its client re-runs it standalone, or answers
 *    an ADD with code 11, native/cniclient);
 *  - the socket path must be a socket or nothing (a file there is refused,
 *    never replaced) and `<socket>.lock` is never followed through a
 *    symbolic link; a start that fails removes the lock file it made.
 * The workers load `cni-worker.js` (scripts/cni-worker-bundle.mjs: worker.ts
 * and the suite's plugins, plugins/bin/cni-worker.ts) from beside the executable that runs the server.
 */
import { closeSync, ftruncateSync, lstatSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { CniError, ErrCode } from '../cni/errors';
import { type FileLock, lockFile } from '../lock';
import { isErrno, native, type NativeCniRequest, type NativeCniServer } from '../native';
import { currentNetnsPath } from '../ns/ns';
import { errorResponse } from '../skel/skel';
import type { HandBackReason, WorkerRequest } from './worker';
import { WorkerPool } from './pool';
import { closeQuietly, serveInline } from './inline';
import { DEFAULT_CNI_SOCKET, RUN_STANDALONE, STATUS_NAME } from './wire';

declare const __flaxDir: string | undefined;

export { DEFAULT_CNI_SOCKET, STATUS_NAME };
export type { HandBackReason };
/** Why a call was handed back to the standalone plugin (the metric's reason label). */
export const HAND_BACK_REASONS: readonly HandBackReason[] = ['mount_namespace', 'netns_path', 'setns'];

export interface CniServerOptions {
  /** socket path (default /run/flax/cni.sock); its directory is created */
  socket?: string;
  /** socket file mode (default 0600) */
  mode?: number;
  /** workers started up front and kept when idle (default 1) */
  workers?: number;
  /** each worker's young generation, MiB (default 3; V8's own: 16 and more) */
  workerYoungMb?: number;
  /** most workers at once (default 8); beyond, requests wait */
  maxWorkers?: number;
  /** a worker beyond `workers` idle this long (ms, default 30000) is stopped: its memory goes back */
  idleMs?: number;
  /** the script the workers load (default cni-worker.js beside the running executable) */
  workerFile?: string;
  log?: (msg: string) => void;
  /** close(): how long calls in flight may still run (ms, default 10000) */
  drainMs?: number;
  /** a call handed back to the client's standalone plugin, and why (HAND_BACK_REASONS) */
  onHandBack?: (reason: HandBackReason) => void;
  /**
   * a listening socket bound to `socket` that someone else made (systemd's
   * socket activation, LISTEN_FDS): served instead of binding one, and left
   * in place by close() (systemd keeps it and starts the server again)
   */
  listenFd?: number;
  /** once the socket accepts calls (before the first worker is ready): flaxd tells the client that started it */
  onListening?: () => void;
  /** after each call: plugin name, CNI_COMMAND, seconds, exit code */
  onCall?: (plugin: string, verb: string, seconds: number, exitCode: number) => void;
  /**
   * until the first worker is ready, serve on this thread (inline.ts): a client that started this server
   * waits for a Node start only. For a main thread that does nothing else meanwhile (flaxd --no-overlay):
   * a call moves it into the caller's netns.
   */
  serveWhileStarting?: boolean;
}

/** Another live server holds the socket (its lock, or it answers a connect). */
export class CniSocketBusyError extends Error {
  readonly code = 'EADDRINUSE';
}

/** Something that is not a socket exists at the socket path: never replaced. */
export class CniSocketPathError extends Error {
  readonly code = 'EEXIST';
}

/**
 * Refuses a socket path where something other than a socket (a file, a
 * directory, a symbolic link, …) exists: binding would replace it.
 */
export function checkSocketPath(socket: string): void {
  let st;
  try {
    st = lstatSync(socket);
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return;
    throw e;
  }
  if (st.isSocket()) return;
  const what = st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a directory' : st.isFile() ? 'a regular file' : 'not a socket';
  throw new CniSocketPathError(`${socket} exists and is ${what}, not a socket: refusing to replace it (remove it, or choose another --cni-socket)`);
}

export interface CniServerStats {
  served: number;
  failed: number;
  refused: number;
  /** handed back to the client's standalone plugin: the caller's mount namespace shows the call's files otherwise (view.ts) */
  deferred: number;
  workers: number;
  /** per `plugin verb`: calls and total milliseconds */
  latency: Record<string, { calls: number; totalMs: number }>;
}

/** What the server answers to a STATUS_NAME request (JSON on stdout). */
export interface CniServerInfo extends CniServerStats {
  pid: number;
  socket: string;
  /** ms since the epoch */
  since: number;
  /** bytes: the process's RSS, the main thread's used heap, each worker's used heap */
  memory?: { rss: number; heapUsed: number; workers: number[] };
}

export interface CniServer {
  readonly socket: string;
  /**
   * Heap snapshots of the server's main thread and of each worker (each
   * after a full GC, as V8 takes them) written into `dir` as
   * `flaxd-<pid>-<n>-main.heapsnapshot` and `…-worker<thread id>.heapsnapshot`;
   * returns their paths. For finding what calls keep (flaxd: SIGUSR2).
   */
  writeHeapSnapshots(dir: string): Promise<string[]>;
  stats(): CniServerStats;
  /** Stops accepting, removes the socket, waits for calls in flight, stops the workers. */
  close(): Promise<void>;
}

interface Job {
  req: NativeCniRequest;
  msg: WorkerRequest;
  verb: string;
  t0: number;
}

export async function startCniServer(opts: CniServerOptions = {}): Promise<CniServer> {
  const n = native();
  const socket = path.resolve(opts.socket ?? DEFAULT_CNI_SOCKET);
  const maxWorkers = Math.max(1, opts.maxWorkers ?? 8);
  const workerFile = opts.workerFile ?? (typeof __flaxDir === 'string' ? path.join(__flaxDir, 'cni-worker.js') : '');
  if (!workerFile) throw new Error('cni server: no worker script (run from a bundle, or pass workerFile)');
  const log = opts.log ?? (() => {});
  const stats: CniServerStats = { served: 0, failed: 0, refused: 0, deferred: 0, workers: 0, latency: {} };
  let nextId = 1;
  const startedAt = Date.now();
  let closing = false;

  /** Counts a call the worker answered; `reply` answers it from here first (a worker that died before answering). */
  const finish = (job: Job, code: number, reply?: { stdout: string; stderr: string }) => {
    if (reply) n.cniReply(job.req.conn, Buffer.from(reply.stdout), Buffer.from(reply.stderr), code);
    for (const fd of job.req.fds) closeQuietly(fd);
    const key = `${job.req.name} ${job.verb}`;
    const l = (stats.latency[key] ??= { calls: 0, totalMs: 0 });
    const ms = performance.now() - job.t0;
    l.calls++;
    l.totalMs += ms;
    if (code === 0) stats.served++;
    else stats.failed++;
    pool.called();
    try {
      opts.onCall?.(job.req.name ?? '', job.verb, ms / 1000, code);
    } catch { /* an observer never fails a call */ }
  };

  const deferredWhy = new Set<string>();
  const deferred = (job: Job, why: string, reason: HandBackReason) => {
    for (const fd of job.req.fds) closeQuietly(fd);
    stats.deferred++;
    pool.called();
    try {
      opts.onHandBack?.(reason);
    } catch { /* an observer never fails a call */ }
    if (deferredWhy.size < 100 && !deferredWhy.has(why)) {
      deferredWhy.add(why);
      log(`cni server: ${why}: such calls run the standalone plugin (pid ${job.req.pid} was the first)`);
    }
  };

  const onRequest = (req: NativeCniRequest) => {
    if (req.error !== undefined) {
      if (req.uid !== 0) {
        stats.refused++;
        const res = errorResponse(new CniError(ErrCode.Internal, `flax CNI server: refused: caller uid ${req.uid} is not root`), '');
        n.cniReply(req.conn, Buffer.from(res.stdout), Buffer.alloc(0), res.exitCode);
      } else {
        if (!req.empty) log(`cni server: dropped a request from pid ${req.pid}: ${req.error}`); // empty: a starting client's probe
        closeQuietly(req.conn);
      }
      for (const fd of req.fds) closeQuietly(fd);
      return;
    }
    if (req.name === STATUS_NAME) {
      // `flax status`: who serves, and what it holds (each worker tells its own heap, after its call in flight)
      for (const fd of req.fds) closeQuietly(fd);
      void pool.heaps().then((workers) => {
        const memory = { rss: process.memoryUsage.rss(), heapUsed: process.getBuiltinModule('node:v8').getHeapStatistics().used_heap_size, workers };
        const info: CniServerInfo = { pid: process.pid, socket, since: startedAt, ...snapshot(), memory };
        n.cniReply(req.conn, Buffer.from(JSON.stringify(info) + '\n'), Buffer.alloc(0), 0);
      });
      return;
    }
    const env = req.env ?? [];
    const verb = env.find((kv) => kv.startsWith('CNI_COMMAND='))?.slice(12) ?? '';
    const msg: WorkerRequest = {
      id: nextId++, name: req.name ?? '', env, stdin: req.stdin ?? Buffer.alloc(0), hostFd: req.fds[0],
      netnsFd: req.netnsFd ? req.fds[1] : undefined, netnsErrno: req.netnsErrno || undefined,
      // the client's root dir comes last, after CNI_NETNS (native/cniclient)
      rootFd: req.fds.length === (req.netnsFd ? 3 : 2) ? req.fds[req.fds.length - 1] : undefined,
      pid: req.pid, conn: req.conn,
    };
    pool.submit({ req, msg, verb, t0: performance.now() });
  };
  const snapshot = (): CniServerStats => ({ ...structuredClone(stats), workers: pool.size });

  /** until the first worker is ready: a call that cannot be served then goes back to its client's standalone plugin */
  let starting = true;
  const handBack = (job: Job) => {
    n.cniReply(job.req.conn, Buffer.alloc(0), Buffer.alloc(0), RUN_STANDALONE);
    for (const fd of job.req.fds) closeQuietly(fd);
  };

  canEnterNetns(n);
  checkSocketPath(socket);
  mkdirSync(path.dirname(socket), { recursive: true, mode: 0o755 });
  const lock = lockSocket(socket);
  // every thread started from now on shares malloc's arenas
  n.mallocArenaMax?.(2);
  // the workers enter this netns first (a thread starts in its maker's, and this one serves inline meanwhile)
  const serverNetns = opts.serveWhileStarting ? openSync(currentNetnsPath(), 'r') : undefined;
  const pool: WorkerPool<Job> = new WorkerPool<Job>({
    workerFile, maxWorkers, log, serverNetns,
    minWorkers: Math.min(maxWorkers, Math.max(1, opts.workers ?? 1)),
    idleMs: opts.idleMs ?? 30_000,
    youngMb: opts.workerYoungMb ?? 3,
    onReply: (job, m) => (m.deferred !== undefined ? deferred(job, m.deferred, m.reason ?? 'mount_namespace') : finish(job, m.exitCode)),
    onLost(job, why, answered) {
      if (starting) return handBack(job); // the first worker did not start (the start fails, below)
      log(`cni server: worker failed during ${job.req.name} ${job.verb}: ${why}`);
      if (answered) return finish(job, 0); // it answered (and cniReply closed the conn), then died
      const res = errorResponse(new CniError(ErrCode.Internal, `flax CNI server: the worker running this call failed: ${why}`), job.msg.stdin as Buffer);
      finish(job, res.exitCode, { stdout: res.stdout, stderr: '' });
    },
    releaseMain() {
      n.lowMemoryNotification();
      n.mallocTrim();
      n.releaseFilePages();
    },
  });
  let lfd: number;
  let handle: NativeCniServer | undefined;
  try {
    // a socket of our own listens as soon as it is bound (issue 24: a client that started this server waits on
    // it): calls that come before the first worker is ready wait for it in the pool's queue, or run on this
    // thread (serveWhileStarting); systemd's socket is taken once a call can be served
    if (opts.listenFd !== undefined && !opts.serveWhileStarting) await pool.ready();
    checkSocketPath(socket); // again: the bind renames over the path
    lfd = opts.listenFd !== undefined ? n.cniAdoptListener(opts.listenFd, socket) : n.cniListen(socket, opts.mode ?? 0o600);
    if (opts.listenFd === undefined || opts.serveWhileStarting) {
      handle = n.cniServe(lfd, onRequest, opts.listenFd !== undefined);
      opts.onListening?.();
      if (opts.serveWhileStarting) serveInline(pool, workerFile, n, log);
      await pool.ready();
    }
  } catch (e) {
    if (handle) {
      // the first worker did not start: the socket goes first (new calls run the standalone plugin), and the
      // calls accepted meanwhile are handed back to their clients' standalone plugins (nothing was done)
      try {
        unlinkSync(socket);
      } catch { /* gone */ }
      n.cniStop(handle);
      for (const job of pool.takeQueued()) handBack(job);
    }
    pool.close();
    lock.remove(); // a failed start leaves no lock file behind
    await Promise.all(pool.terminate());
    if (serverNetns !== undefined) closeQuietly(serverNetns);
    if (isErrno(e, 'EADDRINUSE')) throw new CniSocketBusyError(`${socket}: another CNI server answers on it`);
    throw e;
  }
  starting = false;
  const ino = lstatSync(socket).ino;
  if (!handle) {
    handle = n.cniServe(lfd, onRequest, true);
    opts.onListening?.();
  }
  log(`cni server: listening on ${socket} with ${pool.size} workers`);

  let snapshots = 0;
  return {
    socket,
    stats: snapshot,
    async writeHeapSnapshots(dir) {
      const { pipeline } = process.getBuiltinModule('node:stream/promises');
      const { createWriteStream } = process.getBuiltinModule('node:fs');
      const base = path.join(dir, `flaxd-${process.pid}-${++snapshots}`);
      const files = [process.getBuiltinModule('node:v8').writeHeapSnapshot(`${base}-main.heapsnapshot`)];
      for (const w of pool.workers()) {
        const file = `${base}-worker${w.threadId}.heapsnapshot`;
        try {
          await pipeline(await w.getHeapSnapshot(), createWriteStream(file, { mode: 0o600 }));
          files.push(file);
        } catch (e) {
          log(`cni server: no heap snapshot of worker ${w.threadId}: ${(e as Error).message}`);
        }
      }
      return files;
    },
    async close() {
      if (closing) return;
      closing = true;
      // the path first: a client that connects from now on finds no socket and runs the standalone plugin
      try {
        if (opts.listenFd === undefined && lstatSync(socket).ino === ino) unlinkSync(socket);
      } catch { /* already gone */ }
      n.cniStop(handle);
      let cut = 0;
      if (pool.inFlight()) {
        const drainMs = opts.drainMs ?? 10_000;
        log(`cni server: stopping: ${pool.inFlight()} calls in flight, waiting up to ${drainMs / 1000} s for them`);
        let timer: NodeJS.Timeout | undefined;
        const drained = await new Promise<boolean>((resolve) => {
          pool.onDrained = () => resolve(true);
          timer = setTimeout(() => resolve(false), drainMs);
          pool.close();
        });
        clearTimeout(timer);
        if (!drained) {
          cut = pool.inFlight();
          log(`cni server: ${cut} calls still running after ${drainMs / 1000} s: cut (their clients re-run them standalone, or answer an ADD with "try again later")`);
          for (const job of pool.takeQueued()) {
            closeQuietly(job.req.conn);
            for (const fd of job.req.fds) closeQuietly(fd);
          }
        }
      } else pool.close();
      // a worker stuck in a call (a lock, an exec) may never return: not waited for, and
      // the process's exit must not join it either (Node's exit would wait for it forever)
      const stopping = pool.terminate();
      if (cut) process.once('exit', (code) => n.cniExit(code));
      else await Promise.all(stopping);
      if (serverNetns !== undefined && !cut) closeQuietly(serverNetns);
      lock.release();
    },
  };
}

/**
 * A server that cannot setns (no CAP_SYS_ADMIN, e.g. a container with only
 * NET_ADMIN) could serve no call: it does not start. Re-entering the
 * thread's own netns needs the same capability and changes nothing.
 */
function canEnterNetns(n: ReturnType<typeof native>): void {
  const fd = openSync(currentNetnsPath(), 'r');
  try {
    n.setns(fd, n.constants.CLONE_NEWNET);
  } catch (e) {
    throw new Error(`cannot enter network namespaces (${(e as Error).message}): serving CNI calls needs CAP_SYS_ADMIN`);
  } finally {
    closeSync(fd);
  }
}

/**
 * `<socket>.lock` (flock), held while the server runs and naming its pid:
 * two servers never fight over one socket (the addon's bind also refuses a
 * socket on which a server answers, and replaces only a stale one).
 */
function lockSocket(socket: string): FileLock {
  const p = `${socket}.lock`;
  let lock: FileLock;
  try {
    lock = lockFile(p, { nonBlocking: true, noFollow: true });
  } catch (e) {
    if (!isErrno(e, 'EWOULDBLOCK') && !isErrno(e, 'EAGAIN')) throw e;
    let holder = '';
    try {
      holder = readFileSync(p, 'utf8').trim();
    } catch { /* unreadable */ }
    throw new CniSocketBusyError(`${socket}: another CNI server holds ${p}${/^\d+$/.test(holder) ? ` (pid ${holder})` : ''}`);
  }
  ftruncateSync(lock.fd);
  writeSync(lock.fd, `${process.pid}\n`, 0);
  return lock;
}
