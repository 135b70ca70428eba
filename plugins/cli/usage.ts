/**
 * Usage errors of the `flax` CLI and the value parsers shared by its
 * commands. A UsageError is raised before anything runs; the CLI prints it
 * as one line and exits 2 (as yargs, kubectl and getopt users expect).
 */

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Exit code of a usage error (bad flag, verb, positional or value). */
export const EXIT_USAGE = 2;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * `--timeout` everywhere: a duration such as `30s`, `500ms`, `2m` or `1h`; a
 * bare number is seconds (as timeout(1), podman --time). Returns milliseconds.
 */
export function parseDuration(value: string, flag = '--timeout'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new UsageError(`${flag} wants a duration such as 30s, 500ms or 2m (a bare number is seconds), got ${JSON.stringify(value)}`);
  return Math.round(Number(m[1]) * UNITS[m[2] ?? 's']);
}

/** A whole number in [min, max] given as a flag value. */
export function parseCount(value: string | number, flag: string, min: number, max: number): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} wants a whole number from ${min} to ${max}, got ${JSON.stringify(String(value))}`);
  return n;
}

/**
 * Rewrites a yargs validation message as one line in flax's words.
 * `argv` is the command line, used to tell flags from stray words;
 * `positionals` names the positional arguments (shown as <name>).
 */
export function usageLine(msg: string, argv: readonly string[], positionals: readonly string[] = []): string {
  const unknown = /^Unknown arguments?: (.*)$/s.exec(msg);
  if (unknown) {
    const words = unknown[1].split(', ').map((w) => {
      // yargs reports `--no-x` (a negated boolean) as "x"
      const flag = argv.find((a) => a === `--${w}` || a === `-${w}` || a === `--no-${w}` || a.startsWith(`--${w}=`));
      if (flag) return `unknown option ${flag.split('=')[0]}`;
      return argv[0] === w ? `unknown command "${w}"` : `unexpected argument "${w}"`;
    });
    return words.join('; ');
  }
  const invalid = [...msg.matchAll(/Argument: (\S+), Given: (.*?), Choices: (.*)/g)];
  if (invalid.length) {
    return invalid.map(([, key, given, choices]) => {
      const name = positionals.includes(key) ? `<${key}>` : `--${key}`;
      return `invalid ${name} ${given === '""' ? '(empty)' : given}: choose one of ${choices.replace(/"/g, '')}`;
    }).join('; ');
  }
  const following = /^Not enough arguments following: (\S+)/.exec(msg);
  if (following) return `--${following[1]} needs a value`;
  return msg.replace(/\s*\n\s*/g, ' ').trim();
}

/** The output flag of every report: `-o json|table`, with `--json` kept as an alias of `-o json`. */
export const OUTPUT_OPTIONS = {
  output: { type: 'string', alias: 'o', choices: ['table', 'json'], describe: 'output format: table (text, the default) or json' },
  json: { type: 'boolean', describe: 'the same as -o json' },
} as const;

/** The format a report prints: `-o`, `--json`, else `dflt`. `--json -o table` is a usage error. */
export function outputFormat(a: { output?: unknown; json?: unknown }, dflt: 'table' | 'json' = 'table'): 'table' | 'json' {
  if (a.output !== undefined && a.output !== 'json' && a.output !== 'table') throw new UsageError(`invalid --output ${JSON.stringify(String(a.output))}: choose one of table, json`);
  if (a.json && a.output === 'table') throw new UsageError('--json and -o table contradict each other');
  return a.json ? 'json' : (a.output as 'table' | 'json' | undefined) ?? dflt;
}

/**
 * The config-dir flag of every command that reads (or writes) network
 * configurations: `--cni-conf-dir`, with cnitool's `--netconf-path` as an alias.
 */
export const confDirOption = (describe: string) => ({ type: 'string', alias: 'netconf-path', describe } as const);

/** The config dir: the flag, else $NETCONFPATH, else /etc/cni/net.d (as `flax cni` and cnitool). */
export function confDirOf(flag: unknown, env: NodeJS.ProcessEnv): string {
  return (flag as string | undefined) ?? (env.NETCONFPATH || '/etc/cni/net.d');
}

/** Plugin dirs: the flag, else $CNI_PATH, else `dflt`; ":"-separated. */
export function cniPathOf(flag: unknown, env: NodeJS.ProcessEnv, dflt = '/opt/cni/bin'): string[] {
  return ((flag as string | undefined) ?? (env.CNI_PATH || dflt)).split(':').filter(Boolean);
}

/**
 * The value given on the command line for `--flag` (`--flag v` or
 * `--flag=v`, the last one wins), as typed: yargs turns a bad number into
 * NaN, and a message should show what the user wrote.
 */
export function rawValue(argv: readonly string[], flag: string): string | undefined {
  let v: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--') break;
    if (argv[i] === flag) v = argv[i + 1];
    else if (argv[i].startsWith(flag + '=')) v = argv[i].slice(flag.length + 1);
  }
  return v;
}
