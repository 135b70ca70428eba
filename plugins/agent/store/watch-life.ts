/**
 * What the stores' watches share: restarting with backoff (0.5 s, doubling
 * to 30 s, back to 0.5 s once events flow) and closing — each watch closes
 * once, and closing the store closes the watches still open. The etcd and
 * kube stores' watches are one loop (restartingWatch): open the stream
 * (listing first when the store has no revision to watch from), and when it
 * ends or cannot be opened, open it again after the backoff.
 */
export class Backoff {
  #pause = 500;
  #timer: NodeJS.Timeout | undefined;

  /** The delay the next later() waits, in ms. */
  get pause(): number {
    return this.#pause;
  }

  reset(): void {
    this.#pause = 500;
  }

  /** Runs `fn` after the current pause, and doubles the pause. */
  later(fn: () => void): void {
    this.#timer = setTimeout(fn, this.#pause);
    this.#pause = Math.min(this.#pause * 2, 30_000);
  }

  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

export class Closers {
  readonly #open = new Set<() => void>();

  /** Registers `stop`; the handle's close() runs it once and forgets it. */
  add(stop: () => void): { close(): void } {
    const close = (): void => {
      if (this.#open.delete(close)) stop();
    };
    this.#open.add(close);
    return { close };
  }

  closeAll(): void {
    for (const c of [...this.#open]) c();
  }
}

/** One opening of a restarting watch's stream, as open() sees it. */
export interface WatchRun {
  readonly backoff: Backoff;
  /** the watch was closed */
  readonly closed: boolean;
  /** The stream ended (the store has done what it does then): open it again after the backoff. Once per run. */
  restart(): void;
}

/**
 * A watch that keeps itself open: open() opens the stream (listing first
 * when it must) and returns its stop; a stream that ends calls
 * run.restart(); an open that throws is reported to failed() and retried,
 * both after the backoff. close() stops the stream and every retry.
 */
export function restartingWatch(closers: Closers, open: (run: WatchRun) => Promise<{ stop(): void }>, failed: (e: unknown, retryInMs: number) => void): { close(): void } {
  const backoff = new Backoff();
  let closed = false;
  let current: { stop(): void } | undefined;
  const start = async (): Promise<void> => {
    if (closed) return;
    let ended = false;
    const run: WatchRun = {
      backoff,
      get closed() { return closed; },
      restart() {
        if (closed || ended) return;
        ended = true;
        current = undefined;
        backoff.later(() => void start());
      },
    };
    try {
      const s = await open(run);
      if (closed) s.stop();
      else if (!ended) current = s;
    } catch (e) {
      failed(e, backoff.pause);
      backoff.later(() => void start());
    }
  };
  void start();
  return closers.add(() => {
    closed = true;
    backoff.cancel();
    current?.stop();
  });
}
