/**
 * `flax sandbox exec`: runs a command in a sandbox's namespaces through
 * native/nsexec (net, ipc, uts, and pid when the sandbox shares one — then
 * the command is in pause's PID namespace and its orphans become pause's
 * children). Attached: stdio passed through, exit status returned (nsexec:
 * 125 own error, 126 not executable, 127 not found, 128+N killed by signal
 * N). Detached (-d): stdio to <dir>/exec.log, resolves with the pid.
 */
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import { nativeHelperPath } from '../pkg/native';
import { NS_KINDS, SandboxError, inspectSandbox, sandboxDir, type SandboxState } from './state';

/** The live state of `name`, or a SandboxError saying why commands cannot join it. */
export function liveSandbox(root: string, name: string): SandboxState {
  const info = inspectSandbox(root, name);
  if (!info) throw new SandboxError(`no sandbox ${name} (in ${root})`);
  if (!info.state) throw new SandboxError(`sandbox ${name}: ${info.error}`);
  if (!info.alive) throw new SandboxError(`sandbox ${name} is dead (pause pid ${info.pausePid} is gone): flax sandbox rm ${name}`);
  if (info.state.phase !== 'ready') throw new SandboxError(`sandbox ${name} is still being created (or its run died midway): wait, or flax sandbox rm ${name}`);
  return info.state;
}

function nsexecArgs(s: SandboxState): string[] {
  return NS_KINDS.filter((k) => s.namespaces[k]).map((k) => `--${k}=${s.namespaces[k]}`);
}

/** Runs cmd attached; resolves with its exit status. SIGINT/SIGTERM/SIGHUP to flax are passed on. */
export async function execAttached(root: string, name: string, cmd: string[]): Promise<number> {
  const s = liveSandbox(root, name);
  const child = spawn(nativeHelperPath('nsexec'), [...nsexecArgs(s), '--', ...cmd], { stdio: 'inherit' });
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const pass = (sig: NodeJS.Signals) => { child.kill(sig); };
  for (const sig of sigs) process.on(sig, pass);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', (code, sig) => resolve(code ?? 128 + (sig ? constants.signals[sig] ?? 0 : 0)));
    });
  } finally {
    for (const sig of sigs) process.off(sig, pass);
  }
}

/**
 * Runs nsexec with --detach: the command starts in a new session with its
 * stdout/stderr appended to `logFile`; resolves with its pid once it has
 * exec'd. nsexec's own failure message is read back from the log.
 */
export async function spawnDetached(nsexecArgs: string[], cmd: string[], logFile: string): Promise<number> {
  const log = openSync(logFile, 'a', 0o600);
  const from = fstatSync(log).size;
  let out = '';
  let code: number;
  try {
    const child = spawn(nativeHelperPath('nsexec'), [...nsexecArgs, '--detach', '--report-fd=3', '--', ...cmd], { stdio: ['ignore', log, log, 'pipe'] });
    child.stdio[3]!.on('data', (d: Buffer) => { out += d.toString('utf8'); });
    code = await new Promise<number>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c) => resolve(c ?? 1));
    });
  } finally {
    closeSync(log);
  }
  const pid = Number(out.trim());
  if (code === 0 && Number.isInteger(pid) && pid > 0) return pid;
  const why = readFileSync(logFile).subarray(from).toString('utf8').trim().split('\n').filter((l) => l.startsWith('nsexec:')).slice(-2).join('; ');
  throw new SandboxError(`${cmd[0]}: ${why || `nsexec exited ${code}`}`);
}

/** Starts cmd detached in the sandbox (output appended to <dir>/exec.log); resolves with its pid. */
export async function execDetached(root: string, name: string, cmd: string[]): Promise<number> {
  const s = liveSandbox(root, name);
  return spawnDetached(nsexecArgs(s), cmd, path.join(sandboxDir(root, name), 'exec.log'));
}
