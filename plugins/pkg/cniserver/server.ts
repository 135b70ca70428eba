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
 *    only, and is replaced.
 * The workers load the bundle that runs the server (`workerFile`, default
 * process.argv[1]): the executables of dist/bin ignore their main there.
 */
import { closeSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { CniError, ErrCode } from '../cni/errors';
import { native, type NativeCniRequest, type NativeCniServer } from '../native';
import { errorResponse } from '../skel/skel';
import type { WorkerReply, WorkerRequest } from './worker';
// the workers run this same bundle: their module must be in it
import './worker';

export const DEFAULT_CNI_SOCKET = '/run/flax/cni.sock';

export interface CniServerOptions {
  /** socket path (default /run/flax/cni.sock); its directory is created */
  socket?: string;
  /** socket file mode (default 0600) */
  mode?: number;
  /** workers started up front (default 2) */
  workers?: number;
  /** most workers at once (default 8); beyond, requests wait */
  maxWorkers?: number;
  /** the script the workers load (default process.argv[1], the running bundle) */
  workerFile?: string;
  log?: (msg: string) => void;
}

export interface CniServerStats {
  served: number;
  failed: number;
  refused: number;
  workers: number;
  /** per `plugin verb`: calls and total milliseconds */
  latency: Record<string, { calls: number; totalMs: number }>;
}

export interface CniServer {
  readonly socket: string;
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
}

export async function startCniServer(opts: CniServerOptions = {}): Promise<CniServer> {
  const n = native();
  const socket = path.resolve(opts.socket ?? DEFAULT_CNI_SOCKET);
  const maxWorkers = Math.max(1, opts.maxWorkers ?? 8);
  const workerFile = opts.workerFile ?? process.argv[1];
  const log = opts.log ?? (() => {});
  const slots: Slot[] = [];
  const queue: Job[] = [];
  const stats: CniServerStats = { served: 0, failed: 0, refused: 0, workers: 0, latency: {} };
  let nextId = 1;
  let closing = false;
  let idle: (() => void) | undefined;

  const finish = (job: Job, stdout: string, stderr: string, code: number) => {
    n.cniReply(job.req.conn, Buffer.from(stdout), Buffer.from(stderr), code);
    for (const fd of job.req.fds) closeQuietly(fd);
    const key = `${job.req.name} ${job.verb}`;
    const l = (stats.latency[key] ??= { calls: 0, totalMs: 0 });
    l.calls++;
    l.totalMs += performance.now() - job.t0;
    if (code === 0) stats.served++;
    else stats.failed++;
  };

  const spawn = (): Slot => {
    const worker = new Worker(workerFile, { workerData: { flaxCniWorker: true }, stdout: false, stderr: false });
    const slot: Slot = { worker, ready: Promise.resolve() };
    slot.ready = new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (m: { ready?: boolean }) => (m.ready ? resolve() : reject(new Error('worker did not start'))));
    });
    worker.on('message', (m: WorkerReply & { ready?: boolean }) => {
      if (m.ready || !slot.job || slot.job.msg.id !== m.id) return;
      const job = slot.job;
      slot.job = undefined;
      finish(job, m.stdout, m.stderr, m.exitCode);
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
        const res = errorResponse(new CniError(ErrCode.Internal, `flax CNI server: the worker running this call failed: ${why}`), job.msg.stdin as Buffer);
        finish(job, res.stdout, '', res.exitCode);
      }
      pump();
    };
    worker.on('error', (e) => gone(e.message));
    worker.on('exit', (code) => gone(`exited with code ${code}`));
    slots.push(slot);
    stats.workers = slots.length;
    return slot;
  };

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
    const env = req.env ?? [];
    const verb = env.find((kv) => kv.startsWith('CNI_COMMAND='))?.slice(12) ?? '';
    const msg: WorkerRequest = {
      id: nextId++, name: req.name ?? '', env, stdin: req.stdin ?? Buffer.alloc(0), hostFd: req.fds[0],
      netnsFd: req.netnsFd ? req.fds[1] : undefined, netnsErrno: req.netnsErrno || undefined,
    };
    queue.push({ req, msg, verb, t0: performance.now() });
    pump();
  };

  mkdirSync(path.dirname(socket), { recursive: true, mode: 0o755 });
  for (let i = 0; i < Math.min(maxWorkers, Math.max(1, opts.workers ?? 2)); i++) spawn();
  try {
    await Promise.all(slots.map((s) => s.ready));
  } catch (e) {
    await Promise.all(slots.map((s) => s.worker.terminate()));
    throw e;
  }
  const lfd = n.cniListen(socket, opts.mode ?? 0o600);
  const ino = lstatSync(socket).ino;
  const handle: NativeCniServer = n.cniServe(lfd, onRequest);
  log(`cni server: listening on ${socket} with ${slots.length} workers`);

  return {
    socket,
    stats: () => structuredClone(stats),
    async close() {
      if (closing) return;
      closing = true;
      n.cniStop(handle);
      try {
        if (lstatSync(socket).ino === ino) unlinkSync(socket);
      } catch { /* already gone */ }
      if (queue.length || slots.some((s) => s.job)) await new Promise<void>((resolve) => { idle = resolve; });
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch { /* already closed */ }
}
