/**
 * Running plugin executables (libcni pkg/invoke). The `Exec` interface is
 * the seam: the real `RawExec` spawns the binary; tests pass stub plugins
 * or in-process functions (`FuncExec`); the demo wraps plugins with
 * `nsenter` so they run inside a simulated node's netns.
 */
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';

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

/** A failure reported by (or about) a plugin; mirrors the CNI error object. */
export class PluginError extends Error {
  constructor(
    public readonly code: number,
    public readonly msg: string,
    public readonly details = '',
    /** what the plugin wrote to stderr (for diagnostics) */
    public readonly stderr = '',
    /** the plugin that failed */
    public readonly plugin = '',
  ) {
    super(details ? `${msg}; ${details}` : msg);
    this.name = 'PluginError';
  }
  /** The CNI error object, as cnitool/runtimes print it. */
  toJSON(cniVersion: string): Record<string, unknown> {
    const o: Record<string, unknown> = { cniVersion, code: this.code, msg: this.msg };
    if (this.details) o.details = this.details;
    return o;
  }
}

export interface ExecOptions {
  /** kill the plugin after this many ms (0 = no limit) */
  timeoutMs?: number;
  /** where the plugin's stderr goes besides being captured (default: nowhere) */
  stderr?: NodeJS.WritableStream | null;
}

/** Runs plugins; the seam between the chain logic and processes. */
export interface Exec {
  /** Runs `pluginPath` with `env` and `stdin`; resolves with stdout, or rejects with a PluginError. */
  execPlugin(pluginPath: string, env: Record<string, string>, stdin: Buffer, opts?: ExecOptions): Promise<Buffer>;
  /** The first `dir/plugin` that is a regular file, in `paths` order. */
  findInPath(plugin: string, paths: readonly string[]): string;
}

export function findInPath(plugin: string, paths: readonly string[]): string {
  if (plugin === '') throw new PluginError(7, 'no plugin name provided');
  if (plugin.includes('/')) throw new PluginError(7, `invalid plugin name: ${plugin}`);
  if (paths.length === 0) throw new PluginError(5, `no paths provided to find plugin "${plugin}" (set CNI_PATH)`);
  for (const dir of paths) {
    const full = path.join(dir, plugin);
    try {
      if (statSync(full).isFile()) return full;
    } catch { /* next dir */ }
  }
  throw new PluginError(5, `failed to find plugin "${plugin}" in path [${paths.join(' ')}]`);
}

/**
 * Turns a failed run into the error libcni reports: the plugin's JSON error
 * object from stdout, else its stderr, else the exit status.
 */
export function pluginFailure(plugin: string, status: string, stdout: Buffer, stderr: Buffer): PluginError {
  const errText = stderr.toString('utf8').trim();
  if (stdout.length === 0) {
    if (errText === '') return new PluginError(999, `netplugin failed with no error message: ${status}`, '', '', plugin);
    return new PluginError(999, `netplugin failed: ${JSON.stringify(errText)}`, '', errText, plugin);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(stdout.toString('utf8'));
  } catch (e) {
    return new PluginError(999, `netplugin failed but error parsing its diagnostic message ${JSON.stringify(clip(stdout.toString('utf8')))}: ${(e as Error).message}`, '', errText, plugin);
  }
  const o = (typeof obj === 'object' && obj !== null ? obj : {}) as Record<string, unknown>;
  const code = typeof o.code === 'number' ? o.code : 999;
  const msg = typeof o.msg === 'string' ? o.msg : `netplugin failed (${status})`;
  const details = typeof o.details === 'string' ? o.details : '';
  return new PluginError(code, msg, details, errText, plugin);
}

const clip = (s: string, n = 512) => (s.length > n ? s.slice(0, n) + '…' : s);

/** Spawns the plugin binary (libcni RawExec), with a timeout and "text file busy" retries. */
export class RawExec implements Exec {
  constructor(private readonly defaults: ExecOptions = {}, private readonly wrapper: string[] = []) {}

  findInPath(plugin: string, paths: readonly string[]): string {
    return findInPath(plugin, paths);
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

  private once(pluginPath: string, env: Record<string, string>, stdin: Buffer, o: ExecOptions): Promise<Buffer> {
    const name = path.basename(pluginPath);
    const argv = [...this.wrapper, pluginPath];
    return new Promise((resolve, reject) => {
      // Own process group, so a timeout kills the plugin and anything it
      // started (a child holding stdout open would otherwise keep us waiting).
      const child = spawn(argv[0], argv.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let settled = false;
      const timer = o.timeoutMs ? setTimeout(() => {
        try { process.kill(-child.pid!, 'SIGKILL'); } catch { child.kill('SIGKILL'); }
        if (settled) return;
        settled = true;
        reject(new PluginError(999, `plugin ${name} timed out after ${o.timeoutMs} ms and was killed`, '', Buffer.concat(err).toString('utf8').trim(), name));
      }, o.timeoutMs) : undefined;
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => { err.push(d); o.stderr?.write(d); });
      child.stdin.on('error', () => { /* plugin exited without reading stdin */ });
      child.on('error', (e: NodeJS.ErrnoException) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        if (e.code === 'ETXTBSY') return reject(e);
        const what = e.code === 'ENOENT' ? 'not found' : e.code === 'EACCES' ? 'not executable' : e.message;
        reject(new PluginError(5, `failed to execute plugin ${name} (${pluginPath}): ${what}`, '', '', name));
      });
      child.on('close', (code, signal) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        const stdout = Buffer.concat(out);
        const stderr = Buffer.concat(err);
        if (code === 0) return resolve(stdout);
        reject(pluginFailure(name, signal ? `killed by ${signal}` : `exit status ${code}`, stdout, stderr));
      });
      child.stdin.end(stdin);
    });
  }
}

/** An in-process plugin: gets the env and stdin, returns stdout + exit code. */
export type PluginFunc = (env: Record<string, string>, stdin: Buffer) => Promise<{ stdout: string | Buffer; exitCode: number; stderr?: string }>;

/** Exec backed by functions keyed by plugin name (tests, in-process delegates). */
export class FuncExec implements Exec {
  /** every call, in order */
  readonly calls: { plugin: string; env: Record<string, string>; stdin: string }[] = [];
  constructor(private readonly plugins: Record<string, PluginFunc>) {}
  findInPath(plugin: string, paths: readonly string[]): string {
    if (!(plugin in this.plugins)) throw new PluginError(5, `failed to find plugin "${plugin}" in path [${paths.join(' ')}]`);
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
