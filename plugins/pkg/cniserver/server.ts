/**
 * The resident CNI server (issue 15): answers the static client
 * (native/cniclient) that stands in for every plugin executable, so a CNI
 * call costs a connect instead of a Node start-up.
 *  - the socket (default /run/flax/cni.sock, mode 0600) is the addon's:
 *    Node's net cannot receive the caller's namespace fds (SCM_RIGHTS) nor
 *    check its uid (SO_PEERCRED); only root is served;
 *  - each request runs on a pool of worker threads (worker.ts), one request
 *    per worker at a time, so a slow call (an IPAM lock, an exec) does not
 *    hold up others; the pool grows up to `maxWorkers`, then requests queue;
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
import type { Worker } from 'node:worker_threads';
import { CniError, ErrCode } from '../cni/errors';
import { type FileLock, lockFile } from '../lock';
import { isErrno, native, type NativeCniRequest, type NativeCniServer } from '../native';
import { errorResponse } from '../skel/skel';
import type { CniWorkerData, HandBackReason, WorkerReply, WorkerRequest } from './worker';
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
  /** workers started up front (default 2) */
  workers?: number;
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
  /** after each call: plugin name, CNI_COMMAND, seconds, exit code */
  onCall?: (plugin: string, verb: string, seconds: number, exitCode: number) => void;
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
interface Slot {
  worker: Worker;
  ready: Promise<void>;
  job?: Job;
  /** performance.now() when it last finished a job */
  idleSince: number;
}

export async function startCniServer(opts: CniServerOptions = {}): Promise<CniServer> {
  const n = native();
  const socket = path.resolve(opts.socket ?? DEFAULT_CNI_SOCKET);
  const maxWorkers = Math.max(1, opts.maxWorkers ?? 8);
  const workerFile = opts.workerFile ?? (typeof __flaxDir === 'string' ? path.join(__flaxDir, 'cni-worker.js') : '');
  if (!workerFile) throw new Error('cni server: no worker script (run from a bundle, or pass workerFile)');
  const log = opts.log ?? (() => {});
  const slots: Slot[] = [];
  const queue: Job[] = [];
  const stats: CniServerStats = { served: 0, failed: 0, refused: 0, deferred: 0, workers: 0, latency: {} };
  let nextId = 1;
  const startedAt = Date.now();
  let closing = false;
  let idle: (() => void) | undefined;

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
    callsSinceTrim++;
    try {
      opts.onCall?.(job.req.name ?? '', job.verb, ms / 1000, code);
    } catch { /* an observer never fails a call */ }
  };

  const deferredWhy = new Set<string>();
  const deferred = (job: Job, why: string, reason: HandBackReason) => {
    for (const fd of job.req.fds) closeQuietly(fd);
    stats.deferred++;
    callsSinceTrim++;
    try {
      opts.onHandBack?.(reason);
    } catch { /* an observer never fails a call */ }
    if (deferredWhy.size < 100 && !deferredWhy.has(why)) {
      deferredWhy.add(why);
      log(`cni server: ${why}: such calls run the standalone plugin (pid ${job.req.pid} was the first)`);
    }
  };

  const spawn = (): Slot => {
    // loaded when used: node:worker_threads cannot be part of a V8 startup snapshot (flaxd's)
    const data: CniWorkerData = { flaxCniWorker: true, answered: new SharedArrayBuffer(4) };
    const answered = new Int32Array(data.answered);
    const worker = new (process.getBuiltinModule('node:worker_threads').Worker)(workerFile, { workerData: data, stdout: false, stderr: false });
    const slot: Slot = { worker, ready: Promise.resolve(), idleSince: performance.now() };
    slot.ready = new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (m: { ready?: boolean }) => (m.ready ? resolve() : reject(new Error('worker did not start'))));
    });
    worker.on('message', (m: WorkerReply & { ready?: boolean }) => {
      if (m.ready || !slot.job || slot.job.msg.id !== m.id) return;
      const job = slot.job;
      slot.job = undefined;
      slot.idleSince = performance.now();
      if (m.deferred !== undefined) deferred(job, m.deferred, m.reason ?? 'mount_namespace');
      else finish(job, m.exitCode);
      if (!m.stranded) pump();
    });
    const gone = (why: string) => {
      const i = slots.indexOf(slot);
      if (i < 0) return;
      slots.splice(i, 1);
      stats.workers = slots.length;
      if (slot.job) {
        const job = slot.job;
        slot.job = undefined;
        log(`cni server: worker failed during ${job.req.name} ${job.verb}: ${why}`);
        if (Atomics.load(answered, 0) === job.msg.id) {
          finish(job, 0); // it answered (and cniReply closed the conn), then died
        } else {
          const res = errorResponse(new CniError(ErrCode.Internal, `flax CNI server: the worker running this call failed: ${why}`), job.msg.stdin as Buffer);
          finish(job, res.exitCode, { stdout: res.stdout, stderr: '' });
        }
      }
      pump();
    };
    worker.on('error', (e) => gone(e.message));
    worker.on('exit', (code) => gone(`exited with code ${code}`));
    slots.push(slot);
    stats.workers = slots.length;
    return slot;
  };

  /** A worker's used heap (bytes; -1 when it exits before answering). */
  /**
   * Posts a service message (not a call) to a worker and resolves with what
   * `pick` finds in its answer; `ifGone` when the worker exits first. A busy
   * worker answers between the awaits of its call.
   */
  const askWorker = <T>(s: Slot, msg: object, pick: (m: Record<string, unknown>) => T | undefined, ifGone: T) => new Promise<T>((resolve) => {
    const on = (m: Record<string, unknown>) => {
      const v = pick(m);
      if (v === undefined) return;
      s.worker.off('message', on);
      s.worker.off('exit', gone);
      resolve(v);
    };
    const gone = () => { s.worker.off('message', on); resolve(ifGone); };
    s.worker.on('message', on);
    s.worker.once('exit', gone);
    s.worker.postMessage(msg);
  });
  /** A worker's used heap (bytes; -1 when it exits before answering). */
  const workerHeap = (s: Slot) => askWorker(s, { heapUsed: true }, (m) => m.heapUsed as number | undefined, -1);

  const pump = () => {
    while (queue.length) {
      let slot = slots.find((s) => !s.job);
      if (!slot) {
        if (closing || slots.length >= maxWorkers) break;
        slot = spawn();
      }
      const job = queue.shift()!;
      slot.job = job;
      const s = slot;
      s.ready.then(() => {
        if (s.job === job) s.worker.postMessage(job.msg);
      }, (e: Error) => {
        if (s.job === job) s.worker.terminate().catch(() => {});
        log(`cni server: worker start failed: ${e.message}`);
      });
    }
    if (closing && !queue.length && slots.every((s) => !s.job)) idle?.();
  };

  const onRequest = (req: NativeCniRequest) => {
    if (req.error !== undefined) {
      if (req.uid !== 0) {
        stats.refused++;
        const res = errorResponse(new CniError(ErrCode.Internal, `flax CNI server: refused: caller uid ${req.uid} is not root`), '');
        n.cniReply(req.conn, Buffer.from(res.stdout), Buffer.alloc(0), res.exitCode);
      } else {
        log(`cni server: dropped a request from pid ${req.pid}: ${req.error}`);
        closeQuietly(req.conn);
      }
      for (const fd of req.fds) closeQuietly(fd);
      return;
    }
    if (req.name === STATUS_NAME) {
      // `flax status`: who serves, and what it holds (each worker tells its own heap, after its call in flight)
      for (const fd of req.fds) closeQuietly(fd);
      void Promise.all(slots.map(workerHeap)).then((workers) => {
        const memory = { rss: process.memoryUsage.rss(), heapUsed: process.getBuiltinModule('node:v8').getHeapStatistics().used_heap_size, workers };
        const info: CniServerInfo = { pid: process.pid, socket, since: startedAt, ...structuredClone(stats), memory };
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
    queue.push({ req, msg, verb, t0: performance.now() });
    pump();
  };

  canEnterNetns(n);
  checkSocketPath(socket);
  mkdirSync(path.dirname(socket), { recursive: true, mode: 0o755 });
  const lock = lockSocket(socket);
  const minWorkers = Math.min(maxWorkers, Math.max(1, opts.workers ?? 2));
  for (let i = 0; i < minWorkers; i++) spawn();
  const idleMs = opts.idleMs ?? 30_000;
  // workers a burst added go once idle (each holds its own V8 heap)
  // Once the server is idle, the memory its calls freed goes back to the
  // kernel: glibc keeps free pages inside each thread's malloc arena (also
  // after the thread has gone), so a busy hour would otherwise stay in RSS
  // (issue 26). Once per quiet spell, after the burst's workers are stopped.
  let callsSinceTrim = 0;
  let releasing = false;
  const releaseMemory = async () => {
    if (releasing || closing || queue.length || slots.some((s) => s.job)) return;
    releasing = true;
    callsSinceTrim = 0;
    try {
      // each worker's heap first (V8 full GCs that shrink it), then the main thread's, then malloc's arenas
      await Promise.all(slots.map((s) => askWorker(s, { reduceMemory: true }, (m) => (m.memoryReduced ? true : undefined), false)));
      n.lowMemoryNotification();
      n.mallocTrim();
    } finally {
      releasing = false;
    }
  };
  const trim = setInterval(() => {
    const now = performance.now();
    const stopping: Promise<unknown>[] = [];
    for (const s of [...slots]) {
      if (slots.length <= minWorkers) break;
      if (s.job || now - s.idleSince < idleMs) continue;
      slots.splice(slots.indexOf(s), 1);
      stats.workers = slots.length;
      stopping.push(s.worker.terminate().catch(() => {}));
    }
    const quiet = slots.every((s) => !s.job && now - s.idleSince >= Math.min(idleMs, 5_000));
    if (stopping.length) void Promise.all(stopping).then(releaseMemory);
    else if (callsSinceTrim && quiet && !queue.length) void releaseMemory();
  }, Math.max(50, idleMs / 4));
  trim.unref();
  let lfd: number;
  try {
    await Promise.all(slots.map((s) => s.ready));
    checkSocketPath(socket); // again: the bind renames over the path
    lfd = opts.listenFd !== undefined ? n.cniAdoptListener(opts.listenFd, socket) : n.cniListen(socket, opts.mode ?? 0o600);
  } catch (e) {
    clearInterval(trim);
    lock.remove(); // a failed start leaves no lock file behind
    await Promise.all(slots.map((s) => s.worker.terminate()));
    if (isErrno(e, 'EADDRINUSE')) throw new CniSocketBusyError(`${socket}: another CNI server answers on it`);
    throw e;
  }
  const ino = lstatSync(socket).ino;
  const handle: NativeCniServer = n.cniServe(lfd, onRequest, opts.listenFd !== undefined);
  log(`cni server: listening on ${socket} with ${slots.length} workers`);

  let snapshots = 0;
  return {
    socket,
    stats: () => structuredClone(stats),
    async writeHeapSnapshots(dir) {
      const { pipeline } = process.getBuiltinModule('node:stream/promises');
      const { createWriteStream } = process.getBuiltinModule('node:fs');
      const base = path.join(dir, `flaxd-${process.pid}-${++snapshots}`);
      const files = [process.getBuiltinModule('node:v8').writeHeapSnapshot(`${base}-main.heapsnapshot`)];
      for (const s of [...slots]) {
        const file = `${base}-worker${s.worker.threadId}.heapsnapshot`;
        try {
          await pipeline(await s.worker.getHeapSnapshot(), createWriteStream(file, { mode: 0o600 }));
          files.push(file);
        } catch (e) {
          log(`cni server: no heap snapshot of worker ${s.worker.threadId}: ${(e as Error).message}`);
        }
      }
      return files;
    },
    async close() {
      if (closing) return;
      closing = true;
      clearInterval(trim);
      // the path first: a client that connects from now on finds no socket and runs the standalone plugin
      try {
        if (opts.listenFd === undefined && lstatSync(socket).ino === ino) unlinkSync(socket);
      } catch { /* already gone */ }
      n.cniStop(handle);
      const inFlight = () => queue.length + slots.filter((s) => s.job).length;
      let cut = 0;
      if (inFlight()) {
        const drainMs = opts.drainMs ?? 10_000;
        log(`cni server: stopping: ${inFlight()} calls in flight, waiting up to ${drainMs / 1000} s for them`);
        let timer: NodeJS.Timeout | undefined;
        const drained = await new Promise<boolean>((resolve) => {
          idle = () => resolve(true);
          timer = setTimeout(() => resolve(false), drainMs);
        });
        clearTimeout(timer);
        if (!drained) {
          cut = inFlight();
          log(`cni server: ${cut} calls still running after ${drainMs / 1000} s: cut (their clients re-run them standalone, or answer an ADD with "try again later")`);
          for (const job of queue.splice(0)) {
            closeQuietly(job.req.conn);
            for (const fd of job.req.fds) closeQuietly(fd);
          }
        }
      }
      // a worker stuck in a call (a lock, an exec) may never return: not waited for, and
      // the process's exit must not join it either (Node's exit would wait for it forever)
      const stopping = slots.map((s) => s.worker.terminate());
      if (cut) process.once('exit', (code) => n.cniExit(code));
      else await Promise.all(stopping);
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
  const fd = openSync(`/proc/${process.pid}/task/${n.gettid()}/ns/net`, 'r');
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

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch { /* already closed */ }
}
