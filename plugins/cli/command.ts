/**
 * One `flax` command as cli.ts runs it: its definition (a row of COMMANDS)
 * and the I/O it runs with. The commands and cli.ts both stand on this.
 */
import type { Options, PositionalOptions } from 'yargs';

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
  /** the caller's uid (commands marked `root` refuse to run for another): process.getuid() */
  uid?: number;
}

/** Parsed arguments of one command, keys camel-cased (`cache-dir` → `cacheDir`). */
export type Args = Record<string, unknown>;

/** One `flax` command. To add one, add a row to COMMANDS. */
export interface CommandDef {
  name: string;
  /** positionals in yargs syntax, all optional here: `check` names what is missing */
  positionals?: string;
  /** the synopsis shown by --help, e.g. `flax cni <verb> <network> [netns]` */
  synopsis?: string;
  describe: string;
  positional?: Record<string, PositionalOptions>;
  options?: Record<string, Options>;
  examples?: [string, string][];
  epilog?: string;
  /** usage errors yargs cannot see (missing positionals, combinations); throw UsageError. `argv`: the command line as typed */
  check?: (a: Args, argv: readonly string[]) => void;
  /** it reads or changes root-only state: run as non-root, it fails (exit 1) instead of printing a report of what it could not see */
  root?: boolean;
  /**
   * Commands whose first positional is a verb (`sandbox run`): which verbs
   * each option (camel-cased) applies to, and each verb's synopsis, so that
   * `flax <command> <verb> --help` lists that verb's options only.
   */
  verbHelp?: { optionVerbs: Record<string, readonly string[]>; synopsis: Record<string, string> };
  run: (a: Args, io: CliIo) => Promise<number> | number;
}
