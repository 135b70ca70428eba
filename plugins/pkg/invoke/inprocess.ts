/**
 * An `Exec` that runs our own plugins in this process: when the binary a
 * chain or a delegation resolves in CNI_PATH is a flax executable whose
 * PluginFuncs the composition root handed over, the request goes through skel
 * `handle()` — the same function the executable runs — instead of
 * fork+exec of a new node process (~60 ms each). Anything else (a foreign
 * plugin of the same name, an unknown type) runs through the fallback
 * Exec (the one given, else the caller's Host's). Chosen by the composition
 * root (plugins/suite.ts), never by a plugin. A plugin run here gets its
 * caller's Host with the delegated environment.
 */
import path from 'node:path';
import type { Exec, ExecOptions, Host } from '../host/host';
import { processHost } from '../host/process';
import type { About, CmdArgs, PluginFuncs } from '../skel/skel';
import { handle } from '../skel/skel';
import { isFlaxBundle } from './bundle';
import { RawExec, findInPath, pluginFailure } from './plugin-exec';
import type { ValidatingExec } from './delegation';

export interface LocalPlugin {
  plugin: PluginFuncs;
  about: About;
  /** ADD's input checks without side effects (see delegateValidate) */
  validateAdd?: (a: CmdArgs) => Promise<void>;
}

const rawExec = new RawExec();

export class InProcessExec implements ValidatingExec {
  /** plugin runs served in-process / by the fallback (for reports and tests) */
  readonly counts = { inProcess: 0, exec: 0 };
  /**
   * `plugins` is read at each call: an entry point may add a plugin that itself delegates through this Exec.
   * `fallback`: runs the rest (default: the caller's Host's exec, else a RawExec).
   */
  constructor(private readonly plugins: Readonly<Record<string, LocalPlugin>>, private readonly fallback?: Exec) {}

  findInPath(plugin: string, paths: readonly string[], label?: string): string {
    return findInPath(plugin, paths, label);
  }

  /** The plugin this Exec runs in-process for `pluginPath`, if any (ours, and handed over). */
  localPlugin(pluginPath: string): LocalPlugin | undefined {
    const name = path.basename(pluginPath);
    const local = Object.hasOwn(this.plugins, name) ? this.plugins[name] : undefined;
    return local && isFlaxBundle(pluginPath) ? local : undefined;
  }

  async execPlugin(pluginPath: string, env: Record<string, string>, stdin: Buffer, opts?: ExecOptions): Promise<Buffer> {
    const local = this.localPlugin(pluginPath); // looked at once: ours and handed over → handle(), else the fallback
    return local ? this.runLocal(pluginPath, local, env, stdin, opts?.host) : this.runFallback(pluginPath, env, stdin, opts);
  }

  /** ADD's input checks of the plugin at pluginPath, when it runs here (delegateValidate). */
  async validateAdd(pluginPath: string, a: CmdArgs): Promise<void> {
    const local = this.localPlugin(pluginPath);
    if (local?.validateAdd) await local.validateAdd(a);
  }

  /** Runs the executable at pluginPath through the fallback Exec. */
  private runFallback(pluginPath: string, env: Record<string, string>, stdin: Buffer, opts?: ExecOptions): Promise<Buffer> {
    this.counts.exec++;
    return (this.fallback ?? opts?.host?.exec ?? rawExec).execPlugin(pluginPath, env, stdin, opts);
  }

  /** Runs `local` (localPlugin(pluginPath)) through handle(), as the executable would answer, on the caller's Host with `env`. */
  private async runLocal(pluginPath: string, local: LocalPlugin, env: Record<string, string>, stdin: Buffer, caller: Host | undefined): Promise<Buffer> {
    this.counts.inProcess++;
    const host: Host = caller ? { ...caller, env } : processHost(env);
    const res = await handle(local.plugin, local.about, {
      command: env.CNI_COMMAND, containerId: env.CNI_CONTAINERID, netns: env.CNI_NETNS, ifname: env.CNI_IFNAME,
      args: env.CNI_ARGS, path: env.CNI_PATH, stdin,
    }, host);
    const stdout = Buffer.from(res.stdout);
    if (res.exitCode === 0) return stdout;
    throw pluginFailure(path.basename(pluginPath), `exit status ${res.exitCode}`, stdout, Buffer.alloc(0));
  }
}
