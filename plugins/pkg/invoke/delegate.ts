/**
 * The one delegation path (cni pkg/invoke/delegate.go): a plugin runs
 * another one — IPAM (bridge → host-local), a meta-plugin's delegate
 * (flannel → bridge) — as the spec describes: find the type in CNI_PATH,
 * run it with the WHOLE config on stdin and the caller's CNI environment
 * with CNI_COMMAND set to the verb, parse its result or error. It runs
 * through the `Exec` the caller's context holds: `RawExec` spawns it,
 * `InProcessExec` (chosen by plugins/suite.ts) runs our own plugins through
 * handle() in this process — same input, same output bytes, same errors,
 * without ~40 ms of interpreter start-up.
 */
import { CniError, ErrCode } from '../cni/errors';
import type { CmdArgs, Command } from '../skel/skel';
import type { Exec } from './exec';
import { InProcessExec } from './inprocess';

/** How a delegation ran (for tests and benchmarks). */
export type DelegationMode = 'in-process' | 'exec';

/** The CNI environment of a delegated call: the caller's, with the request's CNI_* (unset ones removed). */
export function delegateEnv(command: Command, a: CmdArgs, base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const full = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  const set = (k: string, v: string | undefined) => {
    if (v === undefined) delete env[k];
    else env[k] = v;
  };
  set('CNI_COMMAND', command);
  set('CNI_CONTAINERID', full || a.containerId ? a.containerId : undefined);
  set('CNI_NETNS', full || a.netns ? a.netns : undefined);
  set('CNI_IFNAME', full || a.ifname ? a.ifname : undefined);
  set('CNI_ARGS', a.args || undefined);
  set('CNI_PATH', a.path.join(':'));
  return env;
}

/**
 * Runs one verb of a delegated plugin (`label` names it in messages).
 * Returns the parsed stdout object (null when empty); a failure is the
 * CniError carrying the plugin's code/msg/details (pkg/invoke's
 * pluginFailure, as libcni reports it).
 */
export async function delegate(
  exec: Exec, command: Command, type: string, a: CmdArgs, stdin: string | Buffer, label = 'IPAM plugin',
): Promise<{ out: Record<string, unknown> | null; mode: DelegationMode; file: string }> {
  const file = exec.findInPath(type, a.path, label);
  const env = delegateEnv(command, a);
  const input = Buffer.isBuffer(stdin) ? stdin : Buffer.from(stdin);
  const opts = { stderr: process.stderr };
  let mode: DelegationMode = 'exec';
  let stdout: Buffer;
  if (exec instanceof InProcessExec) {
    const local = exec.localPlugin(file); // looked at once: ours and handed over → handle(), else the fallback
    if (local) mode = 'in-process';
    stdout = local ? await exec.runLocal(file, local, env, input) : await exec.runFallback(file, env, input, opts);
  } else {
    stdout = await exec.execPlugin(file, env, input, opts);
  }
  const text = stdout.toString('utf8').trim();
  if (!text) return { out: null, mode, file };
  try {
    return { out: JSON.parse(text) as Record<string, unknown>, mode, file };
  } catch {
    throw new CniError(ErrCode.DecodingFailure, `${label} ${type} printed invalid JSON: ${text.slice(0, 200)}`);
  }
}

/**
 * Runs the delegate's ADD input checks (bad requested IPs, a missing
 * resolvConf, …) without reserving anything, so that the caller can refuse
 * a request before its own first side effect. Only possible in-process;
 * for an exec'd plugin only its presence in CNI_PATH is checked, and its
 * ADD reports the rest.
 */
export async function delegateValidate(exec: Exec, type: string, a: CmdArgs, stdin: string | Buffer, label = 'IPAM plugin'): Promise<void> {
  const file = exec.findInPath(type, a.path, label);
  const local = exec instanceof InProcessExec ? exec.localPlugin(file) : undefined;
  if (local?.validateAdd) await local.validateAdd({ ...a, command: 'ADD', stdin });
}
