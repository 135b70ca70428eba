/**
 * The `flax` command line. yargs (≈ +33 ms start-up) is loaded lazily and
 * only here; the hot path `flax cni <verb> <network> <netns>` without
 * --help is parsed with node:util's parseArgs from the same option table,
 * so a runtime script calling it many times does not pay for yargs.
 *
 * Commands are rows of COMMANDS: the yargs definition (options,
 * positionals, help) plus `check` (usage errors yargs cannot see) and
 * `run`. A usage error — unknown flag, unknown or missing verb, missing
 * positional, bad value — is one line on stderr, exit 2, and nothing runs:
 * yargs' `.fail()` throws, so no handler is reached.
 */
import { parseArgs } from 'node:util';
import type { Argv, Options } from 'yargs';
import pkg from '../../package.json';
import { SUPPORTED_VERSIONS } from '../pkg/cni/version';
import { CNI_OPTIONS, CNI_VERBS, formatError, runCni, type CniCmdOptions } from './commands/cnitool';
import type { Args, CliIo, CommandDef } from './command';
import { EXIT_USAGE, OUTPUT_OPTIONS, UsageError, confDirOption, outputFormat, rawValue, usageLine } from './usage';
import { GC_OPTIONS } from './commands/gc-options';
import { SANDBOX_COMMAND } from './commands/sandbox';
import { INSTALL_COMMAND } from './commands/install';
import { TOMBSTONES_COMMAND } from './commands/tombstones';
import { DOCTOR_COMMAND } from './commands/doctor';
import { netnsNameProblem } from './commands/netns-name';
import { type CompletionShell, completionScript } from './completion';

const defaultIo = (): CliIo => ({
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
  env: process.env,
  uid: process.getuid?.(),
});

const camel = (s: string) => s.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

const VERSION_LINE = `flax ${pkg.version} (CNI spec ${SUPPORTED_VERSIONS[0]} - ${SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1]})`;

/** Names a missing positional (with its choices, when it has some). */
function need(a: Args, name: string, choices?: readonly string[]): void {
  const v = a[name];
  if (v === undefined || v === '' || (Array.isArray(v) && !v.length)) {
    throw new UsageError(`missing <${name}>${choices ? ` (${choices.join(', ')})` : ''}`);
  }
}

const NETNS_VERBS = ['add', 'del', 'list'] as const;
const COMPLETION_SHELLS = ['bash', 'zsh'] as const;

export const COMMANDS: CommandDef[] = [
  {
    name: 'cni',
    positionals: '[verb] [network] [netns]',
    synopsis: 'flax cni <verb> <network> [netns]',
    describe: 'run a network list for one attachment (cnitool-compatible)',
    positional: {
      verb: { choices: CNI_VERBS, describe: 'add | del | check | gc | status' },
      network: { type: 'string', describe: 'network name (the conflist "name")' },
      netns: { type: 'string', describe: 'netns: a name in /run/netns or a path (not needed for gc/status)' },
    },
    options: CNI_OPTIONS as Record<string, Options>,
    examples: [
      ['CNI_PATH=/opt/cni/bin flax cni add mynet pod1', 'attach /run/netns/pod1 to "mynet", print the result JSON'],
      ['flax cni add mynet /run/netns/pod1 -o table', 'the same, as a table'],
      ['flax cni gc mynet --valid cnitool-1234/eth0', 'DEL every cached attachment of mynet but that one, then GC'],
    ],
    epilog: 'Environment (as cnitool): NETCONFPATH (default /etc/cni/net.d), CNI_PATH, CNI_ARGS, CAP_ARGS (JSON), CNI_IFNAME (default eth0).\n'
      + 'A netns without "/" is /run/netns/<name> when that exists (else ./<name>, as cnitool).\n'
      + 'Container id: cnitool-<first 10 bytes of sha512(absolute netns path), hex>, so cnitool scripts work unchanged.\n'
      + 'The libcni cache (cniCacheV1) is read and written under --cache-dir/results (default /var/lib/cni/results).',
    check: (a) => {
      need(a, 'verb', CNI_VERBS);
      need(a, 'network');
      if (a.verb !== 'gc' && a.verb !== 'status') need(a, 'netns');
    },
    run: (a, io) => runCni(a as unknown as CniCmdOptions, io),
  },
  {
    name: 'netns',
    positionals: '[verb] [names..]',
    synopsis: 'flax netns <add|del|list> [name...]',
    describe: 'create, delete or list pinned network namespaces (/run/netns)',
    positional: {
      verb: { choices: NETNS_VERBS, describe: 'add | del | list' },
      names: { type: 'string', array: true, describe: 'netns names (or absolute pin paths)' },
    },
    examples: [['flax netns add pod1', 'creates /run/netns/pod1']],
    check: (a) => {
      need(a, 'verb', NETNS_VERBS);
      const names = (a.names as string[] | undefined) ?? [];
      if (a.verb !== 'list' && !names.length) throw new UsageError(`${String(a.verb)} needs a <name>`);
      if (a.verb === 'list' && names.length) throw new UsageError(`list takes no names, got "${names[0]}"`);
      for (const n of names) {
        const problem = netnsNameProblem(String(n));
        if (problem) throw new UsageError(problem);
      }
    },
    run: async (a, io) => {
      const { runNetns } = await import('./commands/netns');
      return runNetns(String(a.verb), (a.names as string[] | undefined) ?? [], io);
    },
  },
  {
    name: 'status',
    describe: 'networks configured on this node, cached attachments (stale ones marked), host-local address usage',
    root: true,
    options: {
      'cni-conf-dir': confDirOption('config dir (default: $NETCONFPATH or /etc/cni/net.d)'),
      'cache-dir': { type: 'string', describe: 'libcni cache root (default /var/lib/cni)' },
      'data-dir': { type: 'string', describe: 'host-local dataDir when a config does not set one (default /var/lib/cni/networks)' },
      ...OUTPUT_OPTIONS,
    },
    check: (a) => void outputFormat(a),
    run: async (a, io) => {
      const { runStatus } = await import('./commands/status');
      return runStatus(a, io);
    },
  },
  {
    name: 'demo',
    describe: 'a 3-node VXLAN overlay in throwaway netns (flaxd per node, pods via flannel + portmap), pings, a port mapping, teardown; --single-node: one bridge node',
    options: {
      'single-node': { type: 'boolean', describe: 'the one-node bridge demo (loopback + bridge + host-local, no overlay)' },
      nodes: { type: 'number', describe: 'overlay: number of nodes, 2-9 (default 3)' },
      'pods-per-node': { type: 'number', describe: 'overlay: pods on each node, 1-5 (default 1)' },
      store: { type: 'string', choices: ['file', 'etcd'], describe: 'overlay: lease store — file (default) or etcd (Debian\'s etcd started on the underlay)' },
      keep: { type: 'boolean', describe: 'leave everything up at the end' },
      cleanup: { type: 'boolean', describe: 'only remove what a previous run left, then exit' },
      'cni-path': { type: 'string', describe: 'plugin dirs (default: beside the flax executable; /usr/lib/cni for the reference plugins)' },
      'cni-version': {
        type: 'string',
        describe: 'cniVersion of the demo conflist (default: negotiated — the highest of 0.4.0, 1.0.0, 1.1.0 that every plugin supports: 1.1.0 with flax, 1.0.0 with the reference v1.1.1)',
      },
      pods: { type: 'number', describe: 'number of pods, 1-50 (default 3)' },
      scratch: { type: 'string', describe: 'scratch dir for conflist, cache and IPAM state (default $TMPDIR/<prefix>)' },
      prefix: { type: 'string', describe: 'name prefix of the namespaces (default flax-demo)' },
      subnet: { type: 'string', describe: 'pod subnet (default 10.250.0.0/24; it lives in the node netns only)' },
      timeout: { type: 'string', describe: 'per-plugin timeout: a duration such as 30s, 500ms, 2m; a bare number is seconds (default 30s)' },
    },
    examples: [['flax demo --keep', 'the overlay, left up to poke at'], ['flax demo --single-node --cni-path /usr/lib/cni', 'the one-node demo with the reference Go plugins']],
    check: (a) => {
      const overlayOnly = ['nodes', 'podsPerNode', 'store'].filter((k) => a[k] !== undefined);
      const nodeOnly = ['cniVersion', 'pods', 'subnet', 'timeout'].filter((k) => a[k] !== undefined);
      if (a.singleNode && overlayOnly.length) throw new UsageError(`--${overlayOnly[0]} is for the overlay demo, not --single-node`);
      if (!a.singleNode && nodeOnly.length) throw new UsageError(`--${nodeOnly[0].replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} needs --single-node`);
    },
    run: async (a, io) => {
      if (a.singleNode) {
        const { runDemo } = await import('./commands/demo');
        return runDemo(a, io);
      }
      const { runOverlayDemo } = await import('./commands/overlay-demo');
      return runOverlayDemo(a, io);
    },
  },
  {
    name: 'gc',
    describe: 'sweep the node: remove what dead attachments left (orphaned masquerade rules, ownerless host-local files)',
    options: GC_OPTIONS as unknown as Record<string, Options>,
    examples: [['flax gc --dry-run', 'list what would be removed, change nothing']],
    root: true,
    check: (a) => {
      const age = a.minAge as number;
      if (typeof age !== 'number' || !Number.isFinite(age) || age < 0) throw new UsageError(`--min-age: expected seconds (a number >= 0), got "${String(a.minAge)}"`);
      outputFormat(a);
    },
    epilog: 'Liveness is decided from the node alone and conservatively: a masquerade rule stays while the libcni cache holds its attachment '
      + 'or a host-local reservation of its network names its container; anything that cannot be proven dead is kept.',
    run: async (a, io) => {
      const { runGc } = await import('./commands/gc');
      return runGc(a, io);
    },
  },
  SANDBOX_COMMAND,
  INSTALL_COMMAND,
  TOMBSTONES_COMMAND,
  DOCTOR_COMMAND,
  {
    name: 'version',
    describe: 'print the version (also: flax --version)',
    options: OUTPUT_OPTIONS as unknown as Record<string, Options>,
    check: (a) => void outputFormat(a),
    run: (a, io) => {
      if (outputFormat(a) === 'json') io.stdout(JSON.stringify({ version: pkg.version, cniVersions: SUPPORTED_VERSIONS }, null, 2) + '\n');
      else io.stdout(VERSION_LINE + '\n');
      return 0;
    },
  },
  {
    name: 'completion',
    positionals: '[shell]',
    synopsis: 'flax completion <bash|zsh>',
    describe: 'print a shell completion script (bash or zsh)',
    positional: { shell: { choices: COMPLETION_SHELLS, describe: 'bash | zsh' } },
    examples: [
      ['flax completion bash > /etc/bash_completion.d/flax', 'completion for every bash user'],
      ['flax completion zsh > "${fpath[1]}/_flax"', 'completion for zsh (compinit loads it)'],
    ],
    epilog: 'The script asks the flax being completed (the command word as typed) for the candidates: commands, verbs, options and their choices.',
    check: (a) => need(a, 'shell', COMPLETION_SHELLS),
    run: (a, io) => {
      io.stdout(completionScript(a.shell as CompletionShell));
      return 0;
    },
  },
];

const POSITIONAL_NAMES = COMMANDS.flatMap((c) => Object.keys(c.positional ?? {}));

/** Prints an error; returns the exit code (2 usage, 1 failure). */
function report(e: unknown, io: CliIo, command?: string): number {
  if (e instanceof UsageError) {
    io.stderr(`flax: ${command ? `${command}: ` : ''}${e.message} (see 'flax${command ? ` ${command}` : ''} --help')\n`);
    return EXIT_USAGE;
  }
  io.stderr(formatError(e) + '\n');
  return 1;
}

/**
 * The parsed arguments `def` knows, camel-cased (no aliases, no yargs
 * internals). A number option given a non-number (yargs makes it NaN) keeps
 * the text as typed, for the check's message.
 */
function argsOf(def: CommandDef, a: Args, argv: readonly string[]): Args {
  const o: Args = {};
  for (const k of [...Object.keys(def.positional ?? {}), ...Object.keys(def.options ?? {})]) {
    if (a[k] === undefined) continue;
    o[camel(k)] = typeof a[k] === 'number' && Number.isNaN(a[k]) ? rawValue(argv, `--${k}`) ?? a[k] : a[k];
  }
  return o;
}

/** The options (and synopsis) `flax <command> <verb> --help` shows: the verb's own, their "verb: " prefix dropped. */
function helpView(def: CommandDef, argv: readonly string[]): { options: Record<string, Options>; synopsis?: string; examples?: [string, string][] } {
  const all = def.options ?? {};
  const verb = argv[1];
  const help = argv.some((x) => x === '--help' || x === '-h');
  if (!def.verbHelp || !help || !verb || !(verb in def.verbHelp.synopsis)) return { options: all, synopsis: def.synopsis, examples: def.examples };
  const options: Record<string, Options> = {};
  for (const [k, o] of Object.entries(all)) {
    const verbs = def.verbHelp.optionVerbs[camel(k)];
    if (verbs && !verbs.includes(verb)) continue;
    options[k] = { ...o, describe: o.describe?.replace(/^[a-z]+(?:\/[a-z]+)*: /, '') };
  }
  const examples = def.examples?.filter(([cmd]) => cmd.includes(`flax ${def.name} ${verb} `));
  return { options, synopsis: def.verbHelp.synopsis[verb], examples };
}

/** Fast path for `cni` commands; null when yargs must handle it (help, errors). */
function fastCni(argv: string[]): CniCmdOptions | null {
  if (argv[0] !== 'cni' || argv.some((a) => a === '--help' || a === '-h' || a === '--version')) return null;
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  const main: Record<string, string> = {};
  for (const [k, v] of Object.entries(CNI_OPTIONS)) {
    const alias = 'alias' in v ? v.alias : undefined;
    const o = { type: v.type, ...('array' in v ? { multiple: true } : {}) };
    options[k] = { ...o, ...(alias?.length === 1 ? { short: alias } : {}) };
    main[k] = k;
    // a long alias (--netconf-path) is one more option of the same key
    if (alias && alias.length > 1) {
      options[alias] = o;
      main[alias] = k;
    }
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv.slice(1), options, allowPositionals: true, strict: true });
  } catch {
    return null;
  }
  const [verb, network, netns, ...rest] = parsed.positionals;
  if (!(CNI_VERBS as readonly string[]).includes(verb) || !network || rest.length) return null;
  if (!netns && verb !== 'gc' && verb !== 'status') return null;
  const v = parsed.values as Record<string, unknown>;
  if (v.output !== undefined && v.output !== 'json' && v.output !== 'table') return null;
  if (Object.values(v).some((x) => x === '')) return null;
  const o: Record<string, unknown> = { verb, network, netns };
  for (const [k, x] of Object.entries(v)) o[camel(main[k])] = x;
  return o as unknown as CniCmdOptions;
}

export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  const fast = fastCni(argv);
  if (fast) {
    try {
      return await runCni(fast, io);
    } catch (e) {
      return report(e, io, 'cni');
    }
  }
  return withYargs(argv, io);
}

async function withYargs(argv: string[], io: CliIo): Promise<number> {
  const { default: yargs } = await import('yargs');
  let code = 0;
  const command = COMMANDS.some((c) => c.name === argv[0]) ? argv[0] : undefined;
  let y: Argv = yargs(argv)
    .scriptName('flax')
    .usage('$0 <command>\n\nflax: CNI plugins in TypeScript — client, node status and demo.');
  for (const def of COMMANDS) {
    y = y.command(`${def.name}${def.positionals ? ` ${def.positionals}` : ''}`, def.describe, (c) => {
      const view = helpView(def, argv);
      if (view.synopsis) c.usage(view.synopsis);
      for (const [k, p] of Object.entries(def.positional ?? {})) c.positional(k, p);
      const opts: Record<string, Options> = {};
      for (const [k, o] of Object.entries(view.options)) opts[k] = o.type === 'boolean' ? o : { ...o, requiresArg: true };
      c.options(opts);
      for (const [cmd, what] of view.examples ?? []) c.example(cmd, what);
      if (def.epilog) c.epilog(def.epilog);
      return c;
    }, async (a: Args) => {
      try {
        const args = argsOf(def, a, argv);
        def.check?.(args, argv);
        const uid = 'uid' in io ? io.uid : process.getuid?.();
        if (def.root && uid !== undefined && uid !== 0) {
          io.stderr(`flax: ${def.name}: must run as root (running as uid ${uid})\n`);
          code = 1;
          return;
        }
        code = await def.run(args, io);
      } catch (e) {
        code = report(e, io, def.name);
      }
    });
  }
  y = y
    .demandCommand(1, `missing command (${COMMANDS.map((c) => c.name).join(', ')})`)
    .strict()
    .help()
    .alias('h', 'help')
    .version(VERSION_LINE)
    .exitProcess(false)
    // one spelling per option: no camel-case twins in parsed args or messages
    .parserConfiguration({ 'camel-case-expansion': false })
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      // Throwing stops yargs: no command handler runs after a usage error.
      throw new UsageError(msg ? usageLine(msg, argv, POSITIONAL_NAMES) : err?.message ?? 'invalid usage');
    });
  try {
    await y.parseAsync();
  } catch (e) {
    return report(e, io, command);
  }
  return code;
}

