/**
 * The plugin dispatcher. `handle(plugin, info, request, host)` is pure: it
 * validates the CNI environment, gates verbs by config version, calls the
 * plugin with the Host (pkg/host: environment, stderr, netns opener, …) in
 * its CmdArgs and renders the result or error. `pluginMain` is the
 * executable's entry: it builds this process's Host, reads stdin, writes
 * stdout and exits; the other ways a plugin runs (an in-process delegate, a
 * CNI server worker) call handle() with the Host they build.
 */
import { readFileSync, fstatSync } from 'node:fs';
import v8 from 'node:v8';
import { CniError, ErrCode, asCniError } from '../cni/errors';
import { parseJsonObject, confVersion, parseWithoutJit } from '../cni/conf';
import { convertResult, parseResult } from '../cni/convert';
import type { Result } from '../cni/types';
import { CURRENT_VERSION, SUPPORTED_VERSIONS, compareVersions, versionInfo } from '../cni/version';
import { validateContainerId, validateIfName } from '../cni/validate';
import type { Host } from '../host/host';
import { processHost } from '../host/process';

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';
export const COMMANDS: readonly Command[] = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'];

/** A CNI invocation as a runtime makes it; `undefined` = variable not set. */
export interface Request {
  command?: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  stdin: string | Buffer;
}
export interface Response {
  stdout: string;
  exitCode: number;
}
/** What a plugin's cmdX functions receive (skel.CmdArgs). */
export interface CmdArgs {
  command: Command;
  containerId: string;
  netns: string;
  ifname: string;
  args: string;
  path: string[];
  stdin: string | Buffer;
  /** what the call reaches outside the plugin (handle() sets it) */
  host: Host;
}
export interface PluginFuncs {
  add(a: CmdArgs): Promise<Result>;
  del(a: CmdArgs): Promise<void>;
  check(a: CmdArgs): Promise<void>;
  status?(a: CmdArgs): Promise<void>;
  gc?(a: CmdArgs): Promise<void>;
}
/** A plugin's verbs written against its context (`deps`: fault seam, firewall, exec …). */
export interface PluginVerbs<D> {
  add(a: CmdArgs, deps: D): Promise<Result>;
  del(a: CmdArgs, deps: D): Promise<void>;
  check(a: CmdArgs, deps: D): Promise<void>;
  status?(a: CmdArgs, deps: D): Promise<void>;
  gc?(a: CmdArgs, deps: D): Promise<void>;
}

/** The PluginFuncs of `verbs` bound to one context. */
export function bindPlugin<D>(verbs: PluginVerbs<D>, deps: D): PluginFuncs {
  const { add, del, check, status, gc } = verbs;
  return {
    add: (a) => add(a, deps),
    del: (a) => del(a, deps),
    check: (a) => check(a, deps),
    ...(status ? { status: (a: CmdArgs) => status(a, deps) } : {}),
    ...(gc ? { gc: (a: CmdArgs) => gc(a, deps) } : {}),
  };
}

export interface About {
  name: string;
  supportedVersions?: readonly string[];
}
export const about = (name: string, supportedVersions: readonly string[] = SUPPORTED_VERSIONS): About => ({ name, supportedVersions });
export const FLAX_VERSION = '0.1.0';

const REQUIRED: Record<Command, readonly string[]> = {
  ADD: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_COMMAND', 'CNI_PATH'],
  STATUS: ['CNI_COMMAND', 'CNI_PATH'],
  VERSION: ['CNI_COMMAND'],
};
/** Which Request field holds each variable. */
const FIELD: Record<string, keyof Request> = {
  CNI_COMMAND: 'command', CNI_CONTAINERID: 'containerId', CNI_NETNS: 'netns', CNI_IFNAME: 'ifname', CNI_ARGS: 'args', CNI_PATH: 'path',
};

function errorVersion(stdin: string | Buffer): string {
  try {
    const v = parseJsonObject(stdin).cniVersion;
    if (typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v)) return v;
  } catch { /* undecodable: fall through */ }
  return CURRENT_VERSION;
}

function render(obj: unknown): string {
  return JSON.stringify(obj, null, 4) + '\n';
}

/** Validates a request's environment for its verb; returns the typed args (on `host`). */
export function validateRequest(req: Request, host: Host): CmdArgs {
  const cmd = req.command;
  if (cmd === undefined || cmd === '') throw new CniError(ErrCode.InvalidEnvironmentVariables, 'required env variables [CNI_COMMAND] missing');
  if (!(COMMANDS as readonly string[]).includes(cmd)) {
    throw new CniError(ErrCode.InvalidEnvironmentVariables, `unknown CNI_COMMAND: ${cmd.slice(0, 32)}`, `expected one of ${COMMANDS.join(', ')}`);
  }
  const command = cmd as Command;
  // A required variable that is unset or empty is missing (code 4), as the
  // reference's skel answers — CNI_CONTAINERID included. containerd's ctr
  // sends an empty CNI_NETNS on DEL; DEL does not require it.
  const missing = REQUIRED[command].filter((v) => {
    const val = req[FIELD[v]];
    return val === undefined || val === '';
  });
  if (missing.length) throw new CniError(ErrCode.InvalidEnvironmentVariables, `required env variables [${missing.join(',')}] missing`);
  const containerId = req.containerId ?? '';
  const ifname = req.ifname ?? '';
  const netns = req.netns ?? '';
  const base = { command, containerId, netns, ifname, args: req.args ?? '', path: (req.path ?? '').split(':').filter((p) => p !== ''), stdin: req.stdin, host };
  // VERSION is probed with dummy values (podman sends CNI_NETNS=dummy).
  if (command === 'VERSION') return base;
  if (REQUIRED[command].includes('CNI_CONTAINERID')) validateContainerId(containerId);
  else if (containerId !== '') validateContainerId(containerId);
  if (REQUIRED[command].includes('CNI_IFNAME') || ifname !== '') validateIfName(ifname);
  if (netns !== '' && !netns.startsWith('/') && (command === 'ADD' || command === 'CHECK' || command === 'DEL')) {
    throw new CniError(ErrCode.InvalidEnvironmentVariables, 'CNI_NETNS must be an absolute path', netns.slice(0, 128));
  }
  return base;
}

/** `e` as a CNI error response, in the config's cniVersion when it has a supported one (FLAX_DEBUG in `host`'s env: an internal error's stack on its stderr). */
export function errorResponse(e: unknown, stdin: string | Buffer, host: Pick<Host, 'env' | 'stderr'> = process): Response {
  const err = asCniError(e);
  if (err.code === ErrCode.Internal && e instanceof Error && host.env.FLAX_DEBUG) host.stderr.write(`${e.stack}\n`);
  return { stdout: render(err.toJSON(errorVersion(stdin))), exitCode: 1 };
}

/** The line an executable prints on stderr when run without CNI_COMMAND. */
export function aboutLine(info: About): string {
  return `CNI ${info.name} plugin (flax) v${FLAX_VERSION}\nCNI protocol versions supported: ${(info.supportedVersions ?? SUPPORTED_VERSIONS).join(', ')}\n`;
}

/** Runs one CNI request through a plugin, on `host`. Never throws. */
export async function handle(plugin: PluginFuncs, info: About, req: Request, host: Host): Promise<Response> {
  const supported = info.supportedVersions ?? SUPPORTED_VERSIONS;
  try {
    const a = validateRequest(req, host);
    if (a.command === 'VERSION') return { stdout: render(versionInfo(supported)), exitCode: 0 };
    const version = confVersion(parseJsonObject(a.stdin), supported);
    const gate = (min: string, verb: string) => {
      if (compareVersions(version, min) < 0) {
        throw new CniError(ErrCode.IncompatibleVersion, `config version "${version}" does not allow ${verb}`, `${verb} needs cniVersion ${min} or later`);
      }
    };
    switch (a.command) {
      case 'ADD': {
        const result = await plugin.add(a);
        return { stdout: render(convertResult(result, result.cniVersion || version)), exitCode: 0 };
      }
      case 'DEL':
        await plugin.del(a);
        return { stdout: '', exitCode: 0 };
      case 'CHECK':
        gate('0.4.0', 'CHECK');
        await plugin.check(a);
        return { stdout: '', exitCode: 0 };
      case 'STATUS':
        gate('1.1.0', 'STATUS');
        if (plugin.status) await plugin.status(a);
        return { stdout: '', exitCode: 0 };
      case 'GC':
        gate('1.1.0', 'GC');
        if (plugin.gc) await plugin.gc(a);
        return { stdout: '', exitCode: 0 };
    }
  } catch (e) {
    return errorResponse(e, req.stdin, host);
  }
  return { stdout: '', exitCode: 0 };
}

/** Reads all of stdin, or nothing when stdin is a terminal or closed. */
function readStdin(): Buffer {
  try {
    if (fstatSync(0).isCharacterDevice()) return Buffer.alloc(0);
    return readFileSync(0);
  } catch {
    return Buffer.alloc(0);
  }
}

/** True on a worker thread of the resident CNI server (node:worker_threads is looked up lazily: not in V8 snapshots). */
export function inCniWorker(): boolean {
  if (v8.startupSnapshot?.isBuildingSnapshot()) return false;
  const wt = process.getBuiltinModule?.('node:worker_threads') as typeof import('node:worker_threads') | undefined;
  return !!wt && !wt.isMainThread && !!(wt.workerData as { flaxCniWorker?: boolean } | null)?.flaxCniWorker;
}

/** Set only while collectMain loads an executable's modules. */
let collector: ((main: () => void) => void) | undefined;

/**
 * For the multi-call binary (scripts/package.mjs), which loads every
 * executable's modules and runs the one its name asks for: loads one
 * executable's modules (`load`) and returns the main it registered through
 * runMain, instead of running it.
 */
export function collectMain(load: () => void): (() => void) | undefined {
  let main: (() => void) | undefined;
  collector = (m) => { main = m; };
  try {
    load();
  } finally {
    collector = undefined;
  }
  return main;
}

/**
 * Runs `main` now, or — while scripts/build.mjs builds the executable's V8
 * startup snapshot — registers it to run when the snapshot is deserialized.
 * Nothing may read env, cwd or argv before `main` runs.
 * Under the multi-call binary, `main` is handed to collectMain instead.
 */
export function runMain(main: () => void, warm?: () => void): void {
  // A worker of the resident CNI server (pkg/cniserver) loads the bundle
  // that started it for its plugins only: no main runs there.
  if (inCniWorker()) return;
  const building = v8.startupSnapshot?.isBuildingSnapshot() ?? false;
  // the package's snapshot (the multi-call binary) is warmed as each executable's own: its plugins run warm,
  // standalone and in an auto-started server's first calls (served on its main thread, issue 24)
  if (building) warmUp(warm);
  if (collector) {
    collector(main);
    return;
  }
  if (building) {
    v8.startupSnapshot.setDeserializeMainFunction(main);
    return;
  }
  main();
}

function warmUp(warm?: () => void): void {
  try {
    warm?.();
  } catch (e) {
    process.stderr.write(`build: warm-up failed (the snapshot is still good, only colder): ${(e as Error).message}\n`);
  }
}

/**
 * The executable's entry point: env + stdin in, result or error out, exit.
 * `warm`: pure work the plugin does on every call (config parsing, rule
 * generation…) to run once while the V8 startup snapshot is built. V8
 * compiles a function on its first call and a snapshot keeps the bytecode
 * compiled before it was taken, so a warmed path is not compiled again in
 * every process (bridge's ADD: ~6 ms here, scripts/bench-server.mjs). A
 * warm-up touches no file, kernel state or environment (the build machine
 * is not the node) and never fails the build.
 */
export function pluginMain(plugin: PluginFuncs, info: About, warm?: () => void): void {
  runMain(() => pluginRun(plugin, info), () => {
    warmSkel(plugin, info);
    warm?.();
  });
}

/** What every plugin runs: request checks, version negotiation, the error path, results in every version (also a CNI server worker's warm-up). */
export function warmSkel(plugin: PluginFuncs, info: About): void {
  parseWithoutJit(); // as pluginRun parses
  const stdin = '{"cniVersion":"1.0.0","name":"warm","type":"warm"}';
  const host = processHost({}, { write: () => true }); // reads no environment, writes nothing
  void handle(plugin, info, { command: 'VERSION', stdin }, host).catch(() => {});
  void handle(plugin, info, { command: 'ADD', containerId: '', netns: '/x', ifname: 'eth0', stdin }, host).catch(() => {});
  const r = parseResult(WARM_RESULT, '1.0.0');
  for (const v of SUPPORTED_VERSIONS) render(convertResult(r, v));
}
const WARM_RESULT = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'cni0', mac: '0a:58:0a:16:00:01' }, { name: 'veth0', mac: '0a:58:0a:16:00:02' }, { name: 'eth0', mac: '0a:58:0a:16:00:03', sandbox: '/run/netns/warm' }],
  ips: [{ address: '10.22.0.2/16', gateway: '10.22.0.1', interface: 2 }, { address: 'fd00::2/64', gateway: 'fd00::1', interface: 2 }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.22.0.1' }],
  dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
};

function pluginRun(plugin: PluginFuncs, info: About): void {
  parseWithoutJit();
  const env = process.env;
  if (env.CNI_COMMAND === undefined || env.CNI_COMMAND === '') {
    process.stderr.write(aboutLine(info));
    process.exit(0);
  }
  const req: Request = {
    command: env.CNI_COMMAND, containerId: env.CNI_CONTAINERID, netns: env.CNI_NETNS, ifname: env.CNI_IFNAME,
    args: env.CNI_ARGS, path: env.CNI_PATH, stdin: env.CNI_COMMAND === 'VERSION' && process.stdin.isTTY ? '' : readStdin(),
  };
  handle(plugin, info, req, processHost(env, process.stderr)).then(
    (res) => {
      if (res.stdout) process.stdout.write(res.stdout);
      process.exit(res.exitCode);
    },
    (e) => {
      process.stderr.write(`flax ${info.name}: ${String(e)}\n`);
      process.exit(1);
    },
  );
}
