/**
 * Rollback: a list of compensating actions for a multi-step operation.
 *
 * Push the undo for a side effect right after the side effect succeeds; on
 * failure `run()` calls every undo in reverse order, logs undo failures to
 * stderr and never lets them replace the original error. `commit()` makes
 * the list inert once the operation succeeded.
 *
 * `step(name)` marks where the operation is; a test seam (`FaultHook`) can
 * make any named step throw so every rollback path can be exercised.
 */
import { log, type LogSink } from './log';

export type UndoFn = () => unknown | Promise<unknown>;

/** Called at each named step; throwing makes that step fail. Test seam only. */
export type FaultHook = (step: string) => void;

export class InjectedFault extends Error {
  constructor(readonly step: string) {
    super(`injected fault at step "${step}"`);
    this.name = 'InjectedFault';
  }
}

/** A FaultHook that fails at exactly the step named (undefined/'' = never). */
export function faultAt(step: string | undefined): FaultHook | undefined {
  if (!step) return undefined;
  return (s) => {
    if (s === step) throw new InjectedFault(s);
  };
}

export class Rollback {
  readonly #undo: { name: string; fn: UndoFn }[] = [];
  #done = false;
  /** steps passed so far, in order (for diagnostics and tests) */
  readonly steps: string[] = [];

  constructor(private readonly component = 'rollback', private readonly fault?: FaultHook, private readonly logTo?: LogSink) {}

  /** Registers the compensating action for a side effect that just succeeded. */
  push(name: string, fn: UndoFn): void {
    if (this.#done) throw new Error(`rollback: push("${name}") after commit/run`);
    this.#undo.push({ name, fn });
  }

  /** Marks a step boundary; the fault hook may throw here. */
  step(name: string): void {
    this.steps.push(name);
    this.fault?.(name);
  }

  /** Names of the pending undo actions, oldest first. */
  get pending(): string[] {
    return this.#undo.map((u) => u.name);
  }

  /** The operation succeeded: forget every undo. */
  commit(): void {
    this.#undo.length = 0;
    this.#done = true;
  }

  /**
   * Runs every undo in reverse. Failures are logged and collected, never
   * thrown. Returns the names of the undos that failed.
   */
  async run(): Promise<string[]> {
    this.#done = true;
    const failed: string[] = [];
    while (this.#undo.length) {
      const u = this.#undo.pop()!;
      try {
        await u.fn();
      } catch (e) {
        failed.push(u.name);
        log(this.component, `rollback: undo "${u.name}" failed: ${e instanceof Error ? e.message : String(e)}`, this.logTo);
      }
    }
    return failed;
  }

  /**
   * Runs `fn`; if it throws, rolls back and rethrows the ORIGINAL error.
   * If it returns, commits.
   */
  async guard<T>(fn: (rb: Rollback) => Promise<T>): Promise<T> {
    try {
      const r = await fn(this);
      this.commit();
      return r;
    } catch (e) {
      await this.run();
      throw e;
    }
  }
}
