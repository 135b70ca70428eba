/**
 * `flax sandbox rm`, and the node sweeper's (`flax gc`) removal of a dead
 * sandbox: its networks DELeted, its processes ended, its namespaces
 * unpinned and its state (state.ts) removed.
 */
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { native } from '../pkg/native';
import { detachNetwork } from './networks';
import { isSameProcess, nsIdOf, pidsInNetns, readStartTime, terminate } from './proc';
import {
  NS_KINDS, SandboxError, lockSandbox, readState, releaseAndUnlink, sandboxDir, sandboxRoot, validateSandboxName, writeState, type SandboxState,
} from './state';

export interface RemoveOptions {
  root?: string;
  /** go on past CNI DEL failures and an unreadable state (the attachments may leak; each failure is reported) */
  force?: boolean;
  /** SIGTERM → SIGKILL grace, ms (default 5000) */
  timeoutMs?: number;
  /** overrides the CNI_PATH recorded at run */
  cniPath?: string[];
  /** where plugins' stderr goes (default process.stderr) */
  stderr?: NodeJS.WritableStream | null;
  env?: NodeJS.ProcessEnv;
  /**
   * for sweepers: remove only if pause is dead, judged under the sandbox's
   * lock (a sandbox seen dead while its run was still starting pause is kept)
   */
  ifDead?: boolean;
}

export interface RemoveReport {
  /** false: there was no such sandbox (rm is idempotent) */
  existed: boolean;
  /** with ifDead: the sandbox was alive, nothing was done */
  keptAlive?: boolean;
  /** pids that ignored SIGTERM and were SIGKILLed */
  killed: number[];
  /** problems passed over with force */
  warnings: string[];
}

/**
 * Removes a sandbox: CNI DEL of each network in reverse order (through the
 * libcni cache, as `flax cni del` does), SIGTERM to pause and every other
 * process still in its network namespace, SIGKILL after the timeout, unpin
 * the namespaces, remove the state. Idempotent; works when pause is already
 * dead. Without `force`, a failed DEL stops it with the state kept (retry
 * later); with `force` the failure is reported and removal goes on.
 */
export async function removeSandbox(name: string, opts: RemoveOptions = {}): Promise<RemoveReport> {
  validateSandboxName(name);
  const root = sandboxRoot(opts.root, opts.env);
  const report: RemoveReport = { existed: false, killed: [], warnings: [] };
  if (!existsSync(sandboxDir(root, name))) return report;
  using lock = await lockSandbox(root, name);
  const dir = sandboxDir(root, name);
  if (!existsSync(dir)) return report;
  report.existed = true;
  let state: SandboxState | null = null;
  try {
    state = readState(root, name);
    if (opts.ifDead && state && isSameProcess(state.pause.pid, state.pause.startTime)) {
      report.keptAlive = true;
      return report;
    }
  } catch (e) {
    if (!opts.force) throw new SandboxError(`${(e as Error).message}; rm --force removes the sandbox anyway (its CNI attachments, if any, are not DELeted)`);
    report.warnings.push((e as Error).message);
  }
  if (state) {
    for (const net of [...state.networks].reverse()) {
      try {
        await detachNetwork(state, net, { cniPath: opts.cniPath, stderr: opts.stderr, env: opts.env });
      } catch (e) {
        const msg = `CNI DEL of network ${net.name} (${net.ifName}): ${(e as Error).message}`;
        if (!opts.force) throw new SandboxError(`${msg}; the sandbox is kept (rm --force removes it anyway)`);
        report.warnings.push(msg);
      }
      state.networks = state.networks.filter((n) => n !== net);
      writeState(root, state);
    }
  }
  // pause and whatever still runs in the sandbox's network namespace
  const procs: { pid: number; startTime: string }[] = [];
  if (state) procs.push(state.pause);
  const netId = nsIdOf(path.join(dir, 'net'));
  if (netId) {
    for (const pid of pidsInNetns(netId)) {
      const startTime = readStartTime(pid);
      if (startTime && pid !== process.pid && !procs.some((p) => p.pid === pid)) procs.push({ pid, startTime });
    }
  }
  report.killed = await terminate(procs, opts.timeoutMs ?? 5000);
  for (const k of NS_KINDS) native().removeNetns(path.join(dir, k));
  rmSync(dir, { recursive: true, force: true });
  releaseAndUnlink(lock);
  return report;
}
