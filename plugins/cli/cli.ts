/**
 * The `flax` command line. yargs (≈ +33 ms start-up) is loaded lazily and
 * only here; the hot path `flax cni <verb> <network> <netns>` without
 * --help is parsed with node:util's parseArgs from the same option table,
 * so a runtime script calling it many times does not pay for yargs.
 */
import { parseArgs } from 'node:util';
import { CNI_OPTIONS, CNI_VERBS, formatError, runCni, type CliIo, type CniCmdOptions, type CniVerb } from './commands/cni';

const defaultIo = (): CliIo => ({
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
  env: process.env,
});

const camel = (s: string) => s.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/** Fast path for `cni` commands; null when yargs must handle it (help, errors). */
function fastCni(argv: string[]): CniCmdOptions | null {
  if (argv[0] !== 'cni' || argv.some((a) => a === '--help' || a === '-h' || a === '--version')) return null;
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [k, v] of Object.entries(CNI_OPTIONS)) {
    options[k] = { type: v.type, ...('alias' in v ? { short: v.alias } : {}), ...('array' in v ? { multiple: true } : {}) };
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
  const o: Record<string, unknown> = { verb, network, netns };
  for (const [k, x] of Object.entries(v)) o[camel(k)] = x;
  return o as unknown as CniCmdOptions;
}

export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  const fast = fastCni(argv);
  if (fast) {
    try {
      return await runCni(fast, io);
    } catch (e) {
      io.stderr(formatError(e) + '\n');
      return 1;
    }
  }
  return withYargs(argv, io);
}

async function withYargs(argv: string[], io: CliIo): Promise<number> {
  const { default: yargs } = await import('yargs');
  let code = 0;
  type Argv = Record<string, unknown>;
  const guard = (fn: (a: Argv) => Promise<number> | number) => async (a: Argv) => {
    try {
      code = await fn(a);
    } catch (e) {
      io.stderr(formatError(e) + '\n');
      code = 1;
    }
  };
  const y = yargs(argv)
    .scriptName('flax')
    .usage('$0 <command>\n\nflax: CNI plugins in TypeScript — client, node status and demo.')
    .command('cni <verb> <network> [netns]', 'run a network list for one attachment (cnitool-compatible)', (c) => {
      c.positional('verb', { choices: CNI_VERBS, describe: 'add | del | check | gc | status' })
        .positional('network', { type: 'string', describe: 'network name (the conflist "name")' })
        .positional('netns', { type: 'string', describe: 'netns path, e.g. /run/netns/x (not needed for gc/status)' })
        .options(CNI_OPTIONS as never)
        .epilog('Environment (as cnitool): NETCONFPATH (default /etc/cni/net.d), CNI_PATH, CNI_ARGS, CAP_ARGS (JSON), CNI_IFNAME (default eth0).\n'
          + 'Container id: cnitool-<first 10 bytes of sha512(absolute netns path), hex>, so cnitool scripts work unchanged.\n'
          + 'The libcni cache (cniCacheV1) is read and written under --cache-dir/results (default /var/lib/cni/results).')
        .example('CNI_PATH=/opt/cni/bin flax cni add mynet /run/netns/pod1', 'attach pod1 to "mynet", print the result JSON')
        .example('flax cni add mynet /run/netns/pod1 -o table', 'the same, as a table')
        .example('flax cni gc mynet --valid cnitool-1234/eth0', 'DEL every cached attachment of mynet but that one, then GC');
    }, guard(async (a) => {
      const o: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(a)) if (!k.includes('-')) o[k] = v;
      if (!o.netns && o.verb !== 'gc' && o.verb !== 'status') throw new Error(`${String(o.verb)} needs a netns path`);
      return runCni(o as unknown as CniCmdOptions, io);
    }))
    .command('netns <verb> [names..]', 'create, delete or list pinned network namespaces (/run/netns)', (c) => {
      c.positional('verb', { choices: ['add', 'del', 'list'], describe: 'add | del | list' })
        .positional('names', { type: 'string', array: true, describe: 'netns names (or absolute pin paths)' })
        .example('flax netns add pod1', 'creates /run/netns/pod1');
    }, guard(async (a) => {
      const { runNetns } = await import('./commands/netns');
      return runNetns(String(a.verb), (a.names as string[] | undefined) ?? [], io);
    }))
    .command('status', 'networks configured on this node, cached attachments, host-local address usage', (c) => {
      c.options({
        'netconf-path': { type: 'string', describe: 'config dir (default: $NETCONFPATH or /etc/cni/net.d)' },
        'cache-dir': { type: 'string', describe: 'libcni cache root (default /var/lib/cni)' },
        'data-dir': { type: 'string', describe: 'host-local dataDir when a config does not set one (default /var/lib/cni/networks)' },
        output: { type: 'string', alias: 'o', choices: ['table', 'json'], describe: 'output format (default table)' },
      });
    }, guard(async (a) => {
      const { runStatus } = await import('./commands/status');
      const s = (k: string) => a[k] as string | undefined;
      return runStatus({ netconfPath: s('netconf-path'), cacheDir: s('cache-dir'), dataDir: s('data-dir'), output: s('output') }, io);
    }))
    .command('demo', 'a node with 3 pods in throwaway netns: attach, ping, check, tear down', (c) => {
      c.options({
        keep: { type: 'boolean', describe: 'leave everything up at the end' },
        cleanup: { type: 'boolean', describe: 'only remove what a previous run left, then exit' },
        'cni-path': { type: 'string', describe: 'plugin dirs (default: beside the flax executable; /usr/lib/cni for the reference plugins)' },
        'cni-version': { type: 'string', describe: 'cniVersion of the demo conflist (default 1.0.0)' },
        pods: { type: 'number', describe: 'number of pods (default 3)' },
        scratch: { type: 'string', describe: 'scratch dir for conflist, cache and IPAM state (default $TMPDIR/<prefix>)' },
        prefix: { type: 'string', describe: 'name prefix of the namespaces (default flax-demo)' },
        subnet: { type: 'string', describe: 'pod subnet (default 10.250.0.0/24; it lives in the node netns only)' },
        timeout: { type: 'number', describe: 'per-plugin timeout in seconds (default 30)' },
      }).example('flax demo --cni-path /usr/lib/cni', 'the same demo with the reference Go plugins');
    }, guard(async (a) => {
      const { runDemo } = await import('./commands/demo');
      return runDemo({
        keep: a.keep as boolean, cleanup: a.cleanup as boolean, cniPath: a['cni-path'] as string, cniVersion: a['cni-version'] as string,
        pods: a.pods as number, scratch: a.scratch as string, prefix: a.prefix as string, subnet: a.subnet as string, timeout: a.timeout as number,
      }, io);
    }))
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .help()
    .alias('h', 'help')
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      io.stderr(`flax: ${msg ?? err?.message}\n(see flax --help)\n`);
      code = 1;
    });
  await y.parseAsync();
  return code;
}

export type { CniVerb };
