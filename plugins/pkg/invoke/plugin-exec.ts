/**
 * Running plugins: the `Exec` seam (libcni's Exec, declared with the Host
 * in pkg/host) between callers and plugins — the real `RawExec` spawns the
 * binary (libcni RawExec), `InProcessExec` (inprocess.ts) runs our own
 * plugins through skel's handle(), tests pass `FuncExec`; the demo wraps
 * plugins with `nsenter` so they run inside a simulated node's netns.
 * Delegation (delegation.ts) and the chains (api.ts) both go through it.
 * `spawnProcess` runs argv with env + stdin and collects the output, for
 * RawExec and the firewall tools (pkg/nft); the CLI's sandbox, demos and
 * flaxd spawn their own processes.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { CniError, ErrCode } from '../cni/errors';
import type { Exec, ExecOptions, HostStderr } from '../host/host';

/** CNI_* variables for one invocation (libcni invoke.Args). */
export interface InvokeArgs {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  /** CNI_ARGS as pairs; joined `K=V;K2=V2` */
  pluginArgs?: [string, string][];
  /** CNI_ARGS verbatim (wins over pluginArgs when set) */
  pluginArgsStr?: string;
  /** CNI_PATH dirs */
  path: string[];
}

/**
 * The environment a plugin gets: the caller's environment with the six CNI
 * variables appended (they win over inherited ones), as libcni's AsEnv.
 */
export function argsAsEnv(a: InvokeArgs, base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  env.CNI_COMMAND = a.command;
  env.CNI_CONTAINERID = a.containerId ?? '';
  env.CNI_NETNS = a.netns ?? '';
  env.CNI_ARGS = a.pluginArgsStr || (a.pluginArgs ?? []).map(([k, v]) => `${k}=${v}`).join(';');
  env.CNI_IFNAME = a.ifname ?? '';
  env.CNI_PATH = a.path.join(':');
  return env;
}

export type { Exec, ExecOptions };

/**
 * libcni's FindInPath: the first `dir/plugin` that is a regular file. With
 * a `label` ("IPAM plugin", "delegate plugin") the name comes from a
 * plugin's config, so a bad or missing one is an invalid config (code 7);
 * without, it is libcni's lookup for a runtime (missing: I/O failure, 5).
 */
export function findInPath(plugin: string, paths: readonly string[], label?: string): string {
  if (plugin === '') throw new CniError(ErrCode.InvalidNetworkConfig, label ? `${label} type is empty` : 'no plugin name provided');
  if (plugin.includes('/') || (label && (plugin === '.' || plugin === '..' || plugin.includes('\0')))) {
    if (!label) throw new CniError(ErrCode.InvalidNetworkConfig, `invalid plugin name: ${plugin}`);
    throw new CniError(ErrCode.InvalidNetworkConfig, `invalid ${label} type "${plugin.slice(0, 64)}"`, 'a plugin type is a file name, not a path');
  }
  if (paths.length === 0) {
    if (label) throw new CniError(ErrCode.InvalidEnvironmentVariables, 'no paths provided in CNI_PATH');
    throw new CniError(ErrCode.IOFailure, `no paths provided to find plugin "${plugin}" (set CNI_PATH)`);
  }
  for (const dir of paths) {
    const full = path.join(dir, plugin);
    try {
      if (statSync(full).isFile()) return full;
    } catch { /* next dir */ }
  }
  throw new CniError(label ? ErrCode.InvalidNetworkConfig : ErrCode.IOFailure, `failed to find plugin "${plugin}" in path [${paths.join(' ')}]`);
}

/**
 * Turns a failed run into the error libcni reports: the plugin's JSON error
 * object from stdout, else its stderr, else the exit status.
 */
export function pluginFailure(plugin: string, status: string, stdout: Buffer, stderr: Buffer): CniError {
  const errText = stderr.toString('utf8').trim();
  if (stdout.length === 0) {
    if (errText === '') return new CniError(ErrCode.Internal, `netplugin failed with no error message: ${status}`, '', { plugin });
    return new CniError(ErrCode.Internal, `netplugin failed: ${JSON.stringify(errText)}`, '', { stderr: errText, plugin });
  }
  let obj: unknown;
  try {
    obj = JSON.parse(stdout.toString('utf8'));
  } catch (e) {
    return new CniError(ErrCode.Internal, `netplugin failed but error parsing its diagnostic message ${JSON.stringify(clip(stdout.toString('utf8')))}: ${(e as Error).message}`, '', { stderr: errText, plugin });
  }
  const o = (typeof obj === 'object' && obj !== null ? obj : {}) as Record<string, unknown>;
  const code = typeof o.code === 'number' ? o.code : 999;
  const msg = typeof o.msg === 'string' ? o.msg : `netplugin failed (${status})`;
  const details = typeof o.details === 'string' ? o.details : '';
  return new CniError(code, msg, details, { stderr: errText, plugin });
}

const clip = (s: string, n = 512) => (s.length > n ? s.slice(0, n) + '…' : s);

/** Spawns the plugin binary (libcni RawExec), with a timeout and "text file busy" retries. */
export class RawExec implements Exec {
  constructor(private readonly defaults: ExecOptions = {}, private readonly wrapper: string[] = []) {}

  findInPath(plugin: string, paths: readonly string[], label?: string): string {
    return findInPath(plugin, paths, label);
  }

  async execPlugin(pluginPath: string, env: Record<string, string>, stdin: Buffer, opts: ExecOptions = {}): Promise<Buffer> {
    const o = { ...this.defaults, ...opts };
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(pluginPath, env, stdin, o);
      } catch (e) {
        // The binary is being replaced (install by copy): wait and retry, as libcni does.
        if ((e as NodeJS.ErrnoException).code === 'ETXTBSY' && attempt < 5) {
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        throw e;
      }
    }
  }

  private async once(pluginPath: string, env: Record<string, string>, stdin: Buffer, o: ExecOptions): Promise<Buffer> {
    const name = path.basename(pluginPath);
    let r: SpawnResult;
    try {
      r = await spawnProcess([...this.wrapper, pluginPath], { env, stdin, stderr: o.stderr, timeoutMs: o.timeoutMs });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ETXTBSY') throw e;
      const what = code === 'ENOENT' ? 'not found' : code === 'EACCES' ? 'not executable' : (e as Error).message;
      throw new CniError(ErrCode.IOFailure, `failed to execute plugin ${name} (${pluginPath}): ${what}`, '', { plugin: name });
    }
    if (r.timedOut) {
      throw new CniError(ErrCode.Internal, `plugin ${name} timed out after ${o.timeoutMs} ms and was killed`, '', { stderr: r.stderr.toString('utf8').trim(), plugin: name });
    }
    if (r.code === 0) return r.stdout;
    throw pluginFailure(name, r.signal ? `killed by ${r.signal}` : `exit status ${r.code}`, r.stdout, r.stderr);
  }
}

/**
 * node:child_process, loaded at the first spawn: every plugin's Host can
 * spawn, but one that never does (host-local, loopback) does not load it
 * into its start-up snapshot.
 */
const childProcess = () => process.getBuiltinModule('node:child_process') as typeof import('node:child_process');

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  stdin?: Buffer | string;
  /** where the child's stderr is copied as it comes (it is captured as well) */
  stderr?: HostStderr | null;
  /** kill the child's process group after this many ms (0 = no limit) */
  timeoutMs?: number;
}
export interface SpawnResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
  /** killed by timeoutMs (resolved then, without waiting for the pipes to close) */
  timedOut: boolean;
}

/**
 * Spawns argv in its own process group (a timeout kills the plugin and
 * anything it started: a child holding stdout open would otherwise keep us
 * waiting), writes stdin, collects stdout and stderr. Rejects only when the
 * process could not be started (the spawn error: ENOENT, EACCES, ETXTBSY).
 */
export function spawnProcess(argv: readonly string[], o: SpawnOptions = {}): Promise<SpawnResult> {
  return new Promise((resolve, reject) => {
    const child = childProcess().spawn(argv[0], argv.slice(1), { env: o.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      f();
    };
    const timer = o.timeoutMs ? setTimeout(() => {
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { child.kill('SIGKILL'); }
      settle(() => resolve({ code: null, signal: 'SIGKILL', stdout: Buffer.concat(out), stderr: Buffer.concat(err), timedOut: true }));
    }, o.timeoutMs) : undefined;
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => { err.push(d); o.stderr?.write(d); });
    child.stdin.on('error', () => { /* exited without reading stdin; reported by close */ });
    child.on('error', (e) => settle(() => reject(e)));
    child.on('close', (code, signal) =>
      settle(() => resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err), timedOut: false })));
    child.stdin.end(o.stdin ?? '');
  });
}

/** An in-process plugin: gets the env and stdin, returns stdout + exit code. */
export type PluginFunc = (env: Record<string, string>, stdin: Buffer) => Promise<{ stdout: string | Buffer; exitCode: number; stderr?: string }>;

/** Exec backed by functions keyed by plugin name (tests, in-process delegates). */
export class FuncExec implements Exec {
  /** every call, in order */
  readonly calls: { plugin: string; env: Record<string, string>; stdin: string }[] = [];
  constructor(private readonly plugins: Record<string, PluginFunc>) {}
  findInPath(plugin: string, paths: readonly string[], label?: string): string {
    if (!(plugin in this.plugins)) throw new CniError(label ? ErrCode.InvalidNetworkConfig : ErrCode.IOFailure, `failed to find plugin "${plugin}" in path [${paths.join(' ')}]`);
    return `${paths[0] ?? ''}/${plugin}`;
  }
  async execPlugin(pluginPath: string, env: Record<string, string>, stdin: Buffer): Promise<Buffer> {
    const name = path.basename(pluginPath);
    this.calls.push({ plugin: name, env, stdin: stdin.toString('utf8') });
    const r = await this.plugins[name](env, stdin);
    const stdout = Buffer.isBuffer(r.stdout) ? r.stdout : Buffer.from(r.stdout);
    if (r.exitCode === 0) return stdout;
    throw pluginFailure(name, `exit status ${r.exitCode}`, stdout, Buffer.from(r.stderr ?? ''));
  }
}
