/**
 * `flax sandbox run|exec|ls|inspect|rm` — a pod sandbox by hand: pause
 * holding net/ipc/uts (and pid) namespaces pinned under
 * /run/flax/sandboxes/NAME, networks attached through CNI (cached like a
 * runtime's), commands joining it. The logic lives in ../sandbox/.
 */
import type { Options } from 'yargs';
import { OUTPUT_OPTIONS, cniPathOf, confDirOf, confDirOption, outputFormat, parseDuration, UsageError } from '../usage';
import { table } from '../table';
import { parseArgsPairs } from './cnitool';
import type { Args, CliIo, CommandDef } from '../command';
import { sandboxNameProblem } from '../../sandbox/name';

export const SANDBOX_VERBS = ['run', 'exec', 'ls', 'inspect', 'rm'] as const;

export const SANDBOX_OPTIONS = {
  net: { type: 'string', array: true, describe: 'run: attach this network (conflist name; repeatable: eth0, eth1, …)' },
  hostname: { type: 'string', describe: 'run: hostname in the sandbox\'s uts namespace (default: NAME)' },
  'share-pid': { type: 'boolean', describe: 'run: a pid namespace with pause as PID 1 (it reaps orphans); exec joins it' },
  'cap-args': { type: 'string', describe: 'run: capability args as JSON, e.g. {"portMappings":[…]} (default: $CAP_ARGS)' },
  args: { type: 'string', describe: 'run: CNI_ARGS "K=V;K2=V2" (default: $CNI_ARGS)' },
  'cni-conf-dir': confDirOption('run: conflist dir (default: $NETCONFPATH or /etc/cni/net.d)'),
  'cni-path': { type: 'string', describe: 'run/rm: plugin dirs, ":"-separated (default: $CNI_PATH; rm: the one run used)' },
  'cache-dir': { type: 'string', describe: 'run: libcni cache root (default /var/lib/cni)' },
  'sandbox-dir': { type: 'string', describe: 'sandbox root (default: $FLAX_SANDBOX_DIR or /run/flax/sandboxes)' },
  detach: { type: 'boolean', alias: 'd', describe: 'exec: start CMD in the background (output to NAME/exec.log), print its pid' },
  output: { ...OUTPUT_OPTIONS.output, describe: 'ls/inspect: output format: table or json (default: ls table, inspect json)' },
  json: { ...OUTPUT_OPTIONS.json, describe: 'ls/inspect: the same as -o json' },
  force: { type: 'boolean', describe: 'rm: go on when a CNI DEL fails or the state is unreadable (reported)' },
  timeout: { type: 'string', describe: 'rm: grace between SIGTERM and SIGKILL, e.g. 5s (default 5s)' },
} as const satisfies Record<string, Options>;

/** Which verbs each option belongs to (anything else is a usage error). */
const OPTION_VERBS: Record<string, readonly string[]> = {
  net: ['run'], hostname: ['run'], sharePid: ['run'], capArgs: ['run'], args: ['run'], cniConfDir: ['run'], cacheDir: ['run'],
  cniPath: ['run', 'rm'], detach: ['exec'], output: ['ls', 'inspect'], json: ['ls', 'inspect'], force: ['rm'], timeout: ['rm'],
};

/** What `flax sandbox <verb> --help` shows above that verb's options. */
const VERB_SYNOPSIS: Record<string, string> = {
  run: 'flax sandbox run <name> [--net NETWORK]... [options]',
  exec: 'flax sandbox exec <name> [-d] [--] <cmd> [args...]',
  ls: 'flax sandbox ls [-o table|json]',
  inspect: 'flax sandbox inspect <name> [-o json|table]',
  rm: 'flax sandbox rm <name> [--force] [--timeout 5s]',
};
const FLAG = (k: string) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

/**
 * The words after the first `--` of the command line. yargs keeps them out
 * of the `cmd` positional (they land in its `_`, which the COMMANDS table
 * does not pass on), so `exec NAME -- CMD -x` reads them from argv.
 */
export function afterDashes(argv: readonly string[]): string[] {
  const i = argv.indexOf('--');
  return i < 0 ? [] : argv.slice(i + 1);
}

/** Usage errors yargs cannot see: per-verb positionals and options, names, JSON. */
export function checkSandbox(a: Args): void {
  const verb = a.verb as string | undefined;
  if (!verb) throw new UsageError(`missing <verb> (${SANDBOX_VERBS.join(', ')})`);
  const name = a.name as string | undefined;
  if (verb === 'exec' && !(a.cmd as unknown[] | undefined)?.length) a.cmd = afterDashes(process.argv);
  const cmd = (a.cmd as (string | number)[] | undefined) ?? [];
  if (verb === 'ls') {
    if (name !== undefined) throw new UsageError(`ls takes no name, got "${name}"`);
  } else {
    if (name === undefined || name === '') throw new UsageError(`${verb} needs <name>`);
    const problem = sandboxNameProblem(String(name));
    if (problem) throw new UsageError(problem);
  }
  if (verb === 'exec' && !cmd.length) throw new UsageError('exec needs a command: flax sandbox exec NAME [-d] [--] CMD...');
  if (verb !== 'exec' && cmd.length) throw new UsageError(`unexpected argument "${cmd[0]}"`);
  for (const [k, verbs] of Object.entries(OPTION_VERBS)) {
    if (a[k] !== undefined && a[k] !== false && !verbs.includes(verb)) throw new UsageError(`${FLAG(k)} does not apply to ${verb}`);
  }
  if (a.capArgs !== undefined) capabilityArgs(String(a.capArgs));
  if (a.args !== undefined) parseArgsPairs(String(a.args));
  if (a.timeout !== undefined) parseDuration(String(a.timeout));
  outputFormat(a);
}

function capabilityArgs(s: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    throw new UsageError(`--cap-args is not valid JSON: ${(e as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UsageError('--cap-args must be a JSON object');
  return v as Record<string, unknown>;
}

function age(created: string | undefined, now = Date.now()): string {
  if (!created) return '';
  const s = Math.max(0, Math.round((now - Date.parse(created)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

/** `inspect -o table`: the facts as "KEY  value" lines, then the networks' addresses as a table. */
function inspectText(s: NonNullable<ReturnType<typeof import('../../sandbox/state').inspectSandbox>>): string {
  const facts: [string, unknown][] = [
    ['NAME', s.name], ['DIR', s.dir], ['CONTAINER-ID', s.containerId], ['PAUSE-PID', s.pausePid || undefined],
    ['ALIVE', s.error ? `? (${s.error})` : s.alive ? 'yes' : 'no'], ['PHASE', s.phase], ['CREATED', s.created],
    ['HOSTNAME', s.state?.hostname], ['SHARE-PID', s.state ? (s.state.sharePid ? 'yes' : 'no') : undefined],
    ['PINS', s.pins.join(' ')], ['CNI-PATH', s.state?.cni.path.join(':')], ['CACHE-DIR', s.state?.cni.cacheDir],
  ];
  const w = Math.max(...facts.map(([k]) => k.length));
  let out = facts.map(([k, v]) => `${k.padEnd(w)}  ${v === undefined || v === '' ? '-' : String(v)}`).join('\n') + '\n';
  if (s.networks.length) out += '\n' + table(['NETWORK', 'IFNAME', 'ADDRESSES'], s.networks.map((n) => [n.name, n.ifName, n.addresses.join(' ')]));
  return out;
}

/** Runs one `flax sandbox` command; returns the exit code. */
export async function runSandboxCmd(a: Args, io: CliIo): Promise<number> {
  checkSandbox(a);
  const { sandboxRoot, listSandboxes, inspectSandbox, SandboxError } = await import('../../sandbox/state');
  const { removeSandbox } = await import('../../sandbox/remove');
  const { stderrTo } = await import('../../sandbox/networks');
  const root = sandboxRoot(a.sandboxDir as string | undefined, io.env);
  const name = a.name as string;
  const cniPath = (a.cniPath as string | undefined)?.split(':').filter(Boolean);
  switch (a.verb) {
    case 'run': {
      const { runSandbox } = await import('../../sandbox/run');
      const capArgs = (a.capArgs as string | undefined) ?? io.env.CAP_ARGS;
      const s = await runSandbox({
        name, root,
        nets: (a.net as string[] | undefined) ?? [],
        hostname: a.hostname as string | undefined,
        sharePid: !!a.sharePid,
        args: parseArgsPairs((a.args as string | undefined) ?? io.env.CNI_ARGS ?? ''),
        capabilityArgs: capArgs ? capabilityArgs(capArgs) : undefined,
        confDir: confDirOf(a.cniConfDir, io.env),
        cniPath: cniPath ?? cniPathOf(undefined, io.env, ''),
        cacheDir: (a.cacheDir as string | undefined) || '/var/lib/cni',
        stderr: stderrTo(io.stderr),
        env: io.env,
      });
      io.stdout(`sandbox ${s.name}: pause pid ${s.pause.pid}, namespaces ${Object.values(s.namespaces).join(' ')}\n`);
      if (s.networks.length) {
        const rows = s.networks.flatMap((n) => ((n.result?.ips as { address: string; gateway?: string }[] | undefined) ?? [{ address: '' }])
          .map((ip) => [n.name, n.ifName, ip.address, ip.gateway]));
        io.stdout(table(['NETWORK', 'IFNAME', 'ADDRESS', 'GATEWAY'], rows));
      }
      return 0;
    }
    case 'exec': {
      const cmd = (a.cmd as (string | number)[]).map(String);
      const { execAttached, execDetached } = await import('../../sandbox/nsexec');
      if (a.detach) {
        io.stdout(`${await execDetached(root, name, cmd)}\n`);
        return 0;
      }
      return execAttached(root, name, cmd);
    }
    case 'ls': {
      const all = listSandboxes(root);
      if (outputFormat(a) === 'json') {
        io.stdout(JSON.stringify(all.map(({ state: _s, ...rest }) => rest), null, 2) + '\n');
        return 0;
      }
      io.stdout(table(['NAME', 'PAUSE-PID', 'ALIVE', 'NETWORKS', 'ADDRESSES', 'AGE'], all.map((s) => [
        s.name, s.pausePid || undefined, s.error ? `? (${s.error})` : s.alive ? 'yes' : 'no',
        s.networks.map((n) => n.name).join(','), s.networks.flatMap((n) => n.addresses).join(','), age(s.created),
      ])));
      return 0;
    }
    case 'inspect': {
      const s = inspectSandbox(root, name);
      if (!s) throw new SandboxError(`no sandbox ${name} (in ${root})`);
      const { state, ...facts } = s;
      if (outputFormat(a, 'json') === 'json') {
        io.stdout(JSON.stringify({ ...facts, state }, null, 2) + '\n');
        return 0;
      }
      io.stdout(inspectText(s));
      return 0;
    }
    case 'rm': {
      const rep = await removeSandbox(name, {
        root, force: !!a.force, cniPath, stderr: stderrTo(io.stderr), env: io.env,
        timeoutMs: a.timeout !== undefined ? parseDuration(String(a.timeout)) : undefined,
      });
      for (const w of rep.warnings) io.stderr(`flax: warning: ${w}\n`);
      if (rep.killed.length) io.stderr(`flax: sandbox ${name}: SIGKILLed ${rep.killed.join(', ')} after the SIGTERM grace\n`);
      if (!rep.existed) io.stderr(`flax: no sandbox ${name}: nothing to remove\n`);
      else io.stdout(`${name}\n`);
      return 0;
    }
  }
  return 2;
}

/** The `flax sandbox` row of the CLI's COMMANDS table. */
export const SANDBOX_COMMAND: CommandDef = {
  name: 'sandbox',
  positionals: '[verb] [name] [cmd..]',
  synopsis: 'flax sandbox <run|exec|ls|inspect|rm> [name] [options] [-- cmd...]',
  describe: 'a pod sandbox by hand: pause holding the namespaces, networks attached through CNI, commands joining it',
  positional: {
    verb: { choices: SANDBOX_VERBS, describe: 'run | exec | ls | inspect | rm' },
    name: { type: 'string', describe: 'sandbox name (its pins: /run/flax/sandboxes/<name>/{net,ipc,uts,pid})' },
    cmd: { type: 'string', array: true, describe: 'exec: the command and its arguments (put -- before a command with options)' },
  },
  options: SANDBOX_OPTIONS as unknown as Record<string, Options>,
  examples: [
    ['CNI_PATH=/opt/cni/bin flax sandbox run web --net mynet --share-pid', 'pause + /run/flax/sandboxes/web/{net,ipc,uts,pid}, attached to mynet as eth0'],
    ['flax sandbox exec web -- ip addr', 'run a command in its namespaces'],
    ['podman run --network ns:/run/flax/sandboxes/web/net IMAGE', 'a container sharing the sandbox\'s network'],
    ['flax sandbox rm web', 'CNI DEL, stop pause, unpin, remove the state'],
  ],
  epilog: 'run takes networks from NETCONFPATH / --cni-conf-dir and plugins from CNI_PATH / --cni-path, as `flax cni` does; '
    + 'attachments are cached in the libcni cache (container id flax-sandbox-<name>), so `flax cni`, `flax status` and `flax gc` see them.',
  check: checkSandbox,
  verbHelp: { optionVerbs: OPTION_VERBS, synopsis: VERB_SYNOPSIS },
  run: runSandboxCmd,
};
