/**
 * The resident CNI server's worker threads (server.ts): one call per worker
 * at a time, so a slow call (an IPAM lock, an exec) holds up no other.
 *  - `minWorkers` (default 1) run from the start: one when idle; a burst
 *    starts more on demand, up to `maxWorkers`, then calls queue;
 *  - a worker beyond `minWorkers` idle for `idleMs` is stopped, and once the
 *    pool is quiet the memory its calls freed goes back to the kernel (each
 *    worker's V8 heap, the main thread's, then malloc's arenas); after a
 *    burst (extra workers were stopped) the workers left are first replaced
 *    by fresh ones: a worker that served a burst keeps what its heap and
 *    malloc's arenas grew, a fresh one starts from the worker script;
 *  - each worker's young generation is kept small (`youngMb`): a worker's
 *    heap holds one call's garbage at a time;
 *  - a worker that dies hands its call to `onLost` and is not replaced
 *    until a call needs it;
 *  - until a worker has started, calls may run on this thread, one at a
 *    time (`serveInline`: a server a client started and waits for); each
 *    worker first enters `serverNetns`, since a thread starts in the netns
 *    of the thread that made it.
 */
import type { Worker } from 'node:worker_threads';
import type { CniWorkerData, WorkerReply, WorkerRequest } from './worker';

export interface PoolJob {
  msg: WorkerRequest;
}

export interface PoolOptions<J extends PoolJob> {
  workerFile: string;
  minWorkers: number;
  maxWorkers: number;
  idleMs: number;
  /** young generation of each worker (MiB; resourceLimits.maxYoungGenerationSizeMb) */
  youngMb?: number;
  log: (msg: string) => void;
  /** a worker answered the job (its reply) */
  onReply: (job: J, m: WorkerReply) => void;
  /** the worker running the job failed; `answered`: it had replied to the caller */
  onLost: (job: J, why: string, answered: boolean) => void;
  /** the main thread's part of giving memory back (native: LowMemoryNotification, malloc_trim) */
  releaseMain: () => void;
  /** fd of the server's netns, entered by each worker first */
  serverNetns?: number;
}

/** Runs a call on the pool's own thread (serveInline). */
export interface InlineRunner {
  serve(m: WorkerRequest): Promise<WorkerReply>;
  /** the runner is no longer used (a worker started, or the pool closed) */
  retire(): void;
}

interface Slot<J> {
  worker: Worker;
  ready: Promise<void>;
  /** ready resolved: it takes calls */
  started?: boolean;
  job?: J;
  /** performance.now() when it last finished a job */
  idleSince: number;
  /** replaced: leaves the pool once its call is answered */
  retire?: boolean;
}

export class WorkerPool<J extends PoolJob> {
  readonly #slots: Slot<J>[] = [];
  readonly #queue: J[] = [];
  #closing = false;
  #callsSinceTrim = 0;
  #releasing = false;
  /** extra workers were stopped since the last release: the next release recycles */
  #burstOver = false;
  #inline?: InlineRunner;
  #inlineJob?: J;
  #inlineSettled?: () => void;
  readonly #trim: NodeJS.Timeout;
  /** called when closing and nothing runs or waits any more */
  onDrained?: () => void;

  constructor(readonly o: PoolOptions<J>) {
    for (let i = 0; i < o.minWorkers; i++) this.#spawn();
    this.#trim = setInterval(() => this.#stopIdle(), Math.max(50, o.idleMs / 4));
    this.#trim.unref();
  }

  /** Resolves once the first workers have started (and a call running on this thread meanwhile has finished). */
  async ready(): Promise<void> {
    await Promise.all(this.#slots.map((s) => s.ready));
    if (this.#inlineJob) await new Promise<void>((resolve) => (this.#inlineSettled = resolve));
  }

  /**
   * Until a worker has started, calls run through `r` on this thread, one at
   * a time; then `r` is retired. The thread must do nothing else meanwhile
   * that depends on its netns (a call moves it into the caller's).
   */
  serveInline(r: InlineRunner): void {
    if (this.#slots.some((s) => s.started) || this.#closing) return r.retire();
    this.#inline = r;
    this.#pump();
  }

  get size(): number {
    return this.#slots.length;
  }

  /** Calls running or waiting. */
  inFlight(): number {
    return this.#queue.length + this.#slots.filter((s) => s.job).length + (this.#inlineJob ? 1 : 0);
  }

  submit(job: J): void {
    this.#queue.push(job);
    this.#pump();
  }

  /** A call answered (or handed back): counts toward the next memory release. */
  called(): void {
    this.#callsSinceTrim++;
  }

  /** Each worker's used heap (bytes; -1 for one that exits before answering). */
  heaps(): Promise<number[]> {
    return Promise.all(this.#slots.map((s) => this.#ask(s, { heapUsed: true }, (m) => m.heapUsed as number | undefined, -1)));
  }

  workers(): Worker[] {
    return this.#slots.map((s) => s.worker);
  }

  /** Stops starting work: no worker is started any more; returns the calls still queued (taken out). */
  close(): void {
    this.#closing = true;
    clearInterval(this.#trim);
    this.#retireInline();
    this.#pump();
  }

  takeQueued(): J[] {
    return this.#queue.splice(0);
  }

  /** Terminates every worker (a call still running is cut). */
  terminate(): Promise<unknown>[] {
    clearInterval(this.#trim);
    return this.#slots.map((s) => s.worker.terminate());
  }

  #spawn(): Slot<J> {
    // loaded when used: node:worker_threads cannot be part of a V8 startup snapshot (flaxd's)
    const data: CniWorkerData = { flaxCniWorker: true, answered: new SharedArrayBuffer(4), serverNetns: this.o.serverNetns };
    const answered = new Int32Array(data.answered);
    // the script itself, not an eval'd loader with its code cache: a worker of the package's single executable
    // (its startup snapshot) cannot eval (Node 20: its process.cwd() fails); the first calls do not wait for it
    const worker = new (process.getBuiltinModule('node:worker_threads').Worker)(this.o.workerFile, {
      workerData: data, stdout: false, stderr: false,
      ...(this.o.youngMb ? { resourceLimits: { maxYoungGenerationSizeMb: this.o.youngMb } } : {}),
    });
    const slot: Slot<J> = { worker, ready: Promise.resolve(), idleSince: performance.now() };
    slot.ready = new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`worker exited with code ${code} before it was ready`)));
      worker.once('message', (m: { ready?: boolean }) => (m.ready ? resolve() : reject(new Error('worker did not start'))));
    });
    slot.ready.then(() => {
      slot.started = true;
      slot.idleSince = performance.now(); // idle from its start, not from its spawn
      this.#retireInline();
      this.#pump();
    }, (e: Error) => {
      // one queued call fails per start that fails (a worker that can never start does not spin)
      const job = this.#queue.shift();
      if (job) this.o.onLost(job, `worker start failed: ${e.message}`, false);
      worker.terminate().catch(() => {});
      if (!this.#closing) this.o.log(`cni server: worker start failed: ${e.message}`); // else: stopped while it started
    });
    worker.on('message', (m: WorkerReply & { ready?: boolean }) => {
      if (m.ready || !slot.job || slot.job.msg.id !== m.id) return;
      const job = slot.job;
      slot.job = undefined;
      slot.idleSince = performance.now();
      this.o.onReply(job, m);
      if (slot.retire) this.#drop(slot);
      if (!m.stranded) this.#pump();
    });
    const gone = (why: string) => {
      const i = this.#slots.indexOf(slot);
      if (i < 0) return;
      this.#slots.splice(i, 1);
      if (slot.job) {
        const job = slot.job;
        slot.job = undefined;
        this.o.onLost(job, why, Atomics.load(answered, 0) === job.msg.id);
      }
      this.#pump();
    };
    worker.on('error', (e) => gone(e.message));
    worker.on('exit', (code) => gone(`exited with code ${code}`));
    this.#slots.push(slot);
    return slot;
  }

  #pump(): void {
    while (this.#queue.length) {
      // a call goes to a started worker only: the first one free takes it, not one still starting
      // (a worker's start takes tens of ms, more than most calls; issue 24); a worker starts for each call that waits
      const slot = this.#slots.find((s) => s.started && !s.job);
      if (!slot && this.#inline && !this.#inlineJob && !this.#closing) {
        this.#runInline(this.#inline, this.#queue.shift()!);
        continue;
      }
      if (!slot) {
        let starting = this.#slots.filter((s) => !s.started).length;
        for (; !this.#closing && this.#slots.length < this.o.maxWorkers && starting < this.#queue.length; starting++) this.#spawn();
        break;
      }
      const job = this.#queue.shift()!;
      slot.job = job;
      slot.worker.postMessage(job.msg);
    }
    if (this.#closing && !this.inFlight()) this.onDrained?.();
  }

  #runInline(r: InlineRunner, job: J): void {
    this.#inlineJob = job;
    const done = () => {
      this.#inlineJob = undefined;
      if (this.#slots.some((s) => s.started) || this.#closing) this.#retireInline();
      this.#inlineSettled?.();
      this.#inlineSettled = undefined;
    };
    r.serve(job.msg).then((m) => {
      done();
      this.o.onReply(job, m);
      if (!m.stranded) this.#pump();
    }, (e: Error) => {
      done();
      this.o.onLost(job, e.message, false);
      this.#pump();
    });
  }

  /** No more calls on this thread once a worker runs (after the one it may be running). */
  #retireInline(): void {
    if (!this.#inline || this.#inlineJob) return;
    const r = this.#inline;
    this.#inline = undefined;
    r.retire();
  }

  /**
   * Posts a service message (not a call) to a worker and resolves with what
   * `pick` finds in its answer; `ifGone` when the worker exits first. A busy
   * worker answers between the awaits of its call.
   */
  #ask<T>(s: Slot<J>, msg: object, pick: (m: Record<string, unknown>) => T | undefined, ifGone: T): Promise<T> {
    return new Promise<T>((resolve) => {
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
  }

  /** Takes a worker out of the pool and stops it. */
  #drop(s: Slot<J>): void {
    const i = this.#slots.indexOf(s);
    if (i >= 0) this.#slots.splice(i, 1);
    s.worker.terminate().catch(() => {});
  }

  /** Fresh workers in place of the ones there: an old one goes once a fresh one runs (after its call, if it has one). */
  async #recycle(): Promise<void> {
    const old = [...this.#slots];
    const fresh = old.map(() => this.#spawn());
    await Promise.all(fresh.map((f) => f.ready.catch(() => {})));
    const started = fresh.filter((f) => f.started).length;
    let n = started;
    for (const s of old) {
      if (n-- <= 0 || this.#closing) break;
      if (s.job) s.retire = true;
      else this.#drop(s);
    }
    this.o.log(`cni server: after a burst, ${Math.min(started, old.length)} of ${old.length} worker(s) replaced by fresh ones`);
  }

  /**
   * Once per quiet spell: after a burst (`#burstOver`: its extra workers
   * were stopped) fresh workers for the ones left; then each worker's heap,
   * the main thread's and malloc's. A release that cannot run now (a call
   * came) leaves the burst's recycle to the next one.
   */
  async #release(): Promise<void> {
    if (this.#releasing || this.#closing || this.inFlight()) return;
    this.#releasing = true;
    this.#callsSinceTrim = 0;
    const recycle = this.#burstOver;
    this.#burstOver = false;
    try {
      if (recycle) await this.#recycle();
      await Promise.all(this.#slots.map((s) => this.#ask(s, { reduceMemory: true }, (m) => (m.memoryReduced ? true : undefined), false)));
      this.o.releaseMain();
    } finally {
      this.#releasing = false;
    }
  }

  #stopIdle(): void {
    const now = performance.now();
    const stopping: Promise<unknown>[] = [];
    for (const s of [...this.#slots]) {
      if (this.#slots.length <= this.o.minWorkers) break;
      if (s.job || !s.started || now - s.idleSince < this.o.idleMs) continue; // a worker still starting is not idle
      this.#slots.splice(this.#slots.indexOf(s), 1);
      stopping.push(s.worker.terminate().catch(() => {}));
    }
    if (stopping.length) this.#burstOver = true;
    // quiet: no call runs or waits, and every worker has started (a burst's late starter is stopped on its own first)
    const quiet = !this.#queue.length && this.#slots.every((s) => s.started && !s.job && now - s.idleSince >= Math.min(this.o.idleMs, 5_000));
    if (!quiet) return;
    if (this.#burstOver) void Promise.all(stopping).then(() => this.#release());
    else if (this.#callsSinceTrim) void this.#release();
  }
}
