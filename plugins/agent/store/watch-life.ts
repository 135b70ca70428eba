/**
 * What the stores' watches share: restarting with backoff (0.5 s, doubling
 * to 30 s, back to 0.5 s once events flow) and closing — each watch closes
 * once, and closing the store closes the watches still open.
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
