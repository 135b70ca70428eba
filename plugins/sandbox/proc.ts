/**
 * /proc facts about a sandbox's processes. A pid alone does not name a
 * process (pids are reused), so a process is (pid, start time): field 22 of
 * /proc/<pid>/stat, in clock ticks since boot, fixed at fork.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';

/** The fields of /proc/<pid>/stat after the command name, split; null when the process is gone. */
function statFields(pid: number): string[] | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm may hold spaces and parentheses: the fields start after the LAST ')'
  return text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
}

/** Start time of `pid` (clock ticks since boot, as a decimal string); null when it is gone. */
export function readStartTime(pid: number): string | null {
  return statFields(pid)?.[19] ?? null;
}

/** True when `pid` runs and is the process that had `startTime` (not a reused pid, not a zombie). */
export function isSameProcess(pid: number, startTime: string): boolean {
  const f = statFields(pid);
  return !!f && f[19] === startTime && f[0] !== 'Z' && f[0] !== 'X';
}

/** Every pid whose network namespace is the nsfs inode `dev:ino` (e.g. the sandbox's pinned net). */
export function pidsInNetns(nsId: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = statSync(`/proc/${e}/ns/net`);
      if (`${st.dev}:${st.ino}` === nsId) out.push(Number(e));
    } catch { /* gone, or a kernel thread */ }
  }
  return out;
}

/** dev:ino of a namespace file (a pin or /proc/<pid>/ns/<x>); null when it does not exist. */
export function nsIdOf(file: string): string | null {
  try {
    const st = statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Sends SIGTERM to each process (pid + start time, so a reused pid is never
 * hit), waits up to `timeoutMs` for them to go, then SIGKILLs the rest and
 * waits for them too. Returns the pids that had to be SIGKILLed.
 */
export async function terminate(procs: { pid: number; startTime: string }[], timeoutMs: number): Promise<number[]> {
  const alive = () => procs.filter((p) => isSameProcess(p.pid, p.startTime));
  const signal = (sig: NodeJS.Signals) => {
    for (const p of alive()) {
      try { process.kill(p.pid, sig); } catch { /* gone meanwhile */ }
    }
  };
  signal('SIGTERM');
  const end = Date.now() + timeoutMs;
  while (alive().length && Date.now() < end) await sleep(20);
  const killed = alive().map((p) => p.pid);
  if (killed.length) {
    signal('SIGKILL');
    const hard = Date.now() + 10_000;
    while (alive().length && Date.now() < hard) await sleep(20);
    const left = alive();
    if (left.length) throw new Error(`processes ${left.map((p) => p.pid).join(', ')} survived SIGKILL`);
  }
  return killed;
}
