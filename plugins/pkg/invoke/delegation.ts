/**
 * The one delegation path (cni pkg/invoke/delegate.go): a plugin runs
 * another one — IPAM (bridge → host-local), a meta-plugin's delegate
 * (flannel → bridge) — as the spec describes: find the type in CNI_PATH,
 * run it with the WHOLE config on stdin and the caller's CNI environment
 * with CNI_COMMAND set to the verb, parse its result or error. It runs
 * through the `Exec` the caller's context holds, with the caller's Host
 * (its environment, its stderr): `RawExec` spawns it, `InProcessExec`
 * (chosen by plugins/suite.ts) runs our own plugins through handle() in this
 * process — same input, same output bytes, same errors, without ~40 ms of
 * interpreter start-up. No type checks: libcni's Exec is the model.
 */
import { CniError, ErrCode } from '../cni/errors';
import type { Exec } from '../host/host';
import type { CmdArgs, Command } from '../skel/skel';

/** An Exec that may run a delegate's ADD input checks (one that runs it in this process: InProcessExec). */
export interface ValidatingExec extends Exec {
  /** the checks of `pluginPath`'s ADD, without side effects; nothing when the plugin is not run here */
  validateAdd?(pluginPath: string, a: CmdArgs): Promise<void>;
}

/** The CNI environment of a delegated call: the caller's (its Host's), with the request's CNI_* (unset ones removed). */
export function delegateEnv(command: Command, a: CmdArgs, base: Readonly<Record<string, string | undefined>> = a.host.env): Record<string, string> {
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
): Promise<{ out: Record<string, unknown> | null; file: string }> {
  const file = exec.findInPath(type, a.path, label);
  const env = delegateEnv(command, a);
  const input = Buffer.isBuffer(stdin) ? stdin : Buffer.from(stdin);
  const stdout = await exec.execPlugin(file, env, input, { stderr: a.host.stderr, host: a.host });
  const text = stdout.toString('utf8').trim();
  if (!text) return { out: null, file };
  try {
    return { out: JSON.parse(text) as Record<string, unknown>, file };
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
export async function delegateValidate(exec: ValidatingExec, type: string, a: CmdArgs, stdin: string | Buffer, label = 'IPAM plugin'): Promise<void> {
  const file = exec.findInPath(type, a.path, label);
  if (exec.validateAdd) await exec.validateAdd(file, { ...a, command: 'ADD', stdin });
}
