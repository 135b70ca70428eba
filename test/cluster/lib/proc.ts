/**
 * Long-running daemons of the cluster test (etcd, the control plane,
 * containerd, kubelet, flaxd, flanneld): spawned with their output in a log
 * file, stopped by pid (never by name), and their log tail quoted when a
 * wait fails.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { sleep } from '../../lib/e2e';

export interface Daemon { name: string; child: ChildProcess; log: string; cmd: string[] }

/** Starts cmd (argv) with stdout+stderr into <logDir>/<name>.log (appended: restarts keep the history). */
export function startDaemon(name: string, cmd: string[], logDir: string, env: NodeJS.ProcessEnv = process.env): Daemon {
  const log = path.join(logDir, `${name}.log`);
  const fd = openSync(log, 'a');
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', fd, fd], env, detached: true });
  closeSync(fd);
  child.on('error', () => { /* reported through exitCode / the log */ });
  return { name, child, log, cmd };
}

export const alive = (d: Daemon | undefined) => !!d && d.child.exitCode === null && d.child.signalCode === null;

export function logTail(d: Daemon | string | undefined, chars = 4000): string {
  const f = typeof d === 'string' ? d : d?.log;
  if (!f || !existsSync(f)) return '';
  const t = readFileSync(f, 'utf8');
  return t.slice(-chars);
}

/** SIGTERM, then SIGKILL after graceMs; the whole process group (the daemon was spawned detached). */
export async function stopDaemon(d: Daemon | undefined, graceMs = 10_000): Promise<void> {
  if (!d || !alive(d)) return;
  const pid = d.child.pid!;
  try { process.kill(-pid, 'SIGTERM'); } catch { try { d.child.kill('SIGTERM'); } catch { /* gone */ } }
  const end = Date.now() + graceMs;
  while (alive(d) && Date.now() < end) await sleep(100);
  if (alive(d)) { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }
  const end2 = Date.now() + 5000;
  while (alive(d) && Date.now() < end2) await sleep(50);
}

/** kill -9 of the daemon's own pid only (the test's "crash"). */
export async function crashDaemon(d: Daemon): Promise<void> {
  try { process.kill(d.child.pid!, 'SIGKILL'); } catch { /* gone */ }
  const end = Date.now() + 5000;
  while (alive(d) && Date.now() < end) await sleep(50);
}
