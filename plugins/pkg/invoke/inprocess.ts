/**
 * An `Exec` that runs our own plugins in this process: when the binary a
 * chain or a delegation resolves in CNI_PATH is a flax executable whose
 * PluginFuncs the composition root handed over, the request goes through skel
 * `handle()` — the same function the executable runs — instead of
 * fork+exec of a new node process (~60 ms each). Anything else (a foreign
 * plugin of the same name, an unknown type) runs through the fallback
 * Exec. Chosen by the composition root (plugins/suite.ts), never by a
 * plugin.
 */
import path from 'node:path';
import type { About, CmdArgs, PluginFuncs } from '../skel/skel';
import { handle } from '../skel/skel';
import { isFlaxBundle } from './bundle';
import { type Exec, type ExecOptions, RawExec, findInPath, pluginFailure } from './exec';

export interface LocalPlugin {
  plugin: PluginFuncs;
  about: About;
  /** ADD's input checks without side effects (see delegateValidate) */
  validateAdd?: (a: CmdArgs) => Promise<void>;
}

export class InProcessExec implements Exec {
  /** plugin runs served in-process / by the fallback (for reports and tests) */
  readonly counts = { inProcess: 0, exec: 0 };
  /** `plugins` is read at each call: the suite may add a plugin that itself delegates through this Exec. */
  constructor(private readonly plugins: Readonly<Record<string, LocalPlugin>>, private readonly fallback: Exec = new RawExec()) {}

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
    const local = this.localPlugin(pluginPath);
    return local ? this.runLocal(pluginPath, local, env, stdin) : this.runFallback(pluginPath, env, stdin, opts);
  }

  /** Runs the executable at pluginPath through the fallback Exec. */
  runFallback(pluginPath: string, env: Record<string, string>, stdin: Buffer, opts?: ExecOptions): Promise<Buffer> {
    this.counts.exec++;
    return this.fallback.execPlugin(pluginPath, env, stdin, opts);
  }

  /** Runs `local` (localPlugin(pluginPath)) through handle(), as the executable would answer. */
  async runLocal(pluginPath: string, local: LocalPlugin, env: Record<string, string>, stdin: Buffer): Promise<Buffer> {
    this.counts.inProcess++;
    const res = await handle(local.plugin, local.about, {
      command: env.CNI_COMMAND, containerId: env.CNI_CONTAINERID, netns: env.CNI_NETNS, ifname: env.CNI_IFNAME,
      args: env.CNI_ARGS, path: env.CNI_PATH, stdin,
    });
    const stdout = Buffer.from(res.stdout);
    if (res.exitCode === 0) return stdout;
    throw pluginFailure(path.basename(pluginPath), `exit status ${res.exitCode}`, stdout, Buffer.alloc(0));
  }
}
