/** /proc readings for tests of process trees (pause's children, zombies). */
import { readFileSync, readdirSync } from 'node:fs';

/** Children of `ppid` with their state letter (Z = zombie) and command name, from /proc/<pid>/stat. */
export function childrenOf(ppid: number): { pid: number; state: string; comm: string }[] {
  const out: { pid: number; state: string; comm: string }[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let t: string;
    try { t = readFileSync(`/proc/${e}/stat`, 'utf8'); } catch { continue; }
    const close = t.lastIndexOf(')');
    const [state, pp] = t.slice(close + 2).split(' ');
    if (Number(pp) === ppid) out.push({ pid: Number(e), state, comm: t.slice(t.indexOf('(') + 1, close) });
  }
  return out;
}

/** Pids of the `flaxd --no-overlay` processes serving this socket (by their command line). */
export function cniServersOf(socket: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let argv: string[];
    try { argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0'); } catch { continue; }
    if (argv.includes('--no-overlay') && argv[argv.indexOf('--cni-socket') + 1] === socket) out.push(Number(e));
  }
  return out;
}
