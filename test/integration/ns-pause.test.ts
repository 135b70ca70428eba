/**
 * native/pause and native/nsexec as built (native/build): pause's version,
 * PID 1 warning, SIGINT/SIGTERM → exit 0, and reaping: orphans created in
 * its PID namespace are re-parented to it and none is left a zombie (read
 * from /proc). nsexec: joins namespaces by path, runs the command in a
 * joined PID namespace, passes exit statuses through.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { childrenOf } from '../lib/proc';
import { describe, it, expect } from 'vitest';

const build = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../native/build');
const pause = path.join(build, 'pause');
const nsexec = path.join(build, 'nsexec');
const isRoot = process.getuid?.() === 0;

function runAndSignal(sig: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(pause, [], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => {
      stderr += d;
      if (stderr.includes('warning')) p.kill(sig);
    });
    p.on('error', reject);
    p.on('exit', (code, signal) => resolve({ code, signal, stderr }));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** pause as PID 1 of a new pid namespace, started by nsexec --detach; returns its (host) pid. */
function startPausePid1(): number {
  const r = spawnSync('sh', ['-c', `exec 3>&1 1>/dev/null; exec ${nsexec} --new=pid --detach --report-fd=3 -- ${pause} 2>/dev/null`], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return Number(r.stdout.trim());
}

describe('pause', () => {
  it('prints a version with -v', () => {
    const r = spawnSync(pause, ['-v'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^flax-pause \d+\.\d+\.\d+/);
  });

  it('warns when not PID 1; SIGTERM and SIGINT both exit 0 (not killed by the signal)', async () => {
    const term = await runAndSignal('SIGTERM');
    expect(term.stderr).toMatch(/warning: not running as PID 1/);
    expect(term).toMatchObject({ code: 0, signal: null });
    const int = await runAndSignal('SIGINT');
    expect(int).toMatchObject({ code: 0, signal: null });
  });

  it('is static and small', () => {
    for (const f of [pause, nsexec]) {
      expect(spawnSync('file', ['-L', f], { encoding: 'utf8' }).stdout).toMatch(/statically linked/);
      expect(readFileSync(f).length).toBeLessThan(1 << 20);
    }
  });
});

describe.skipIf(!isRoot)('pause as PID 1 reaps orphans', () => {
  it('orphans of its pid namespace become its children and none is left a zombie; no warning as PID 1', async () => {
    const pid = startPausePid1();
    try {
      expect(readlinkSync(`/proc/${pid}/exe`)).toBe(pause);
      const join = [nsexec, `--pid=/proc/${pid}/ns/pid`, '--'];
      // one long-lived orphan: proves orphans are re-parented to pause (not to the host's init)
      // (stdio ignored: spawnSync would wait for the orphan to close an inherited pipe)
      expect(spawnSync(join[0], [...join.slice(1), 'sh', '-c', '(sleep 1 &); exit 0'], { stdio: 'ignore' }).status).toBe(0);
      await sleep(100);
      const kids = childrenOf(pid);
      expect(kids.map((k) => k.comm)).toContain('sleep');
      // 200 orphans that exit at once
      const r = spawnSync(join[0], [...join.slice(1), 'sh', '-c', 'i=0; while [ $i -lt 200 ]; do (sh -c "exit 3" &); i=$((i+1)); done'], { stdio: 'ignore' });
      expect(r.status).toBe(0);
      // the sleep ends after ~1 s; then pause must have no child at all, zombie or not
      const deadline = Date.now() + 5000;
      let left = childrenOf(pid);
      while (left.length && Date.now() < deadline) { await sleep(50); left = childrenOf(pid); }
      expect(left, 'children (zombies included) left under pause').toEqual([]);
      expect(readFileSync(`/proc/${pid}/stat`, 'utf8')).toMatch(/\) S /);
    } finally {
      process.kill(pid, 'SIGTERM');
    }
  });

  it('a control: without a reaper, orphans in a pid namespace stay zombies (so the test above can fail)', async () => {
    // sh as PID 1 in `sh -c 'sleep 100'` form does not reap: use nsexec --new=pid with a non-reaping init
    const r = spawnSync('sh', ['-c', `exec 3>&1 1>/dev/null; exec ${nsexec} --new=pid --detach --report-fd=3 -- sleep 30 2>/dev/null`], { encoding: 'utf8' });
    const init = Number(r.stdout.trim());
    try {
      spawnSync(nsexec, [`--pid=/proc/${init}/ns/pid`, '--', 'sh', '-c', '(sh -c "exit 0" &); exit 0'], { stdio: 'ignore' });
      await sleep(300);
      expect(childrenOf(init).filter((k) => k.state === 'Z').length).toBe(1);
    } finally {
      process.kill(init, 'SIGKILL');
    }
  });
});

describe.skipIf(!isRoot)('nsexec', () => {
  it('joins the namespaces of another process by path and passes the exit status through', () => {
    const pid = startPausePid1();
    try {
      const own = readlinkSync('/proc/self/ns/pid');
      const r = spawnSync(nsexec, [`--pid=/proc/${pid}/ns/pid`, '--', 'sh', '-c', 'readlink /proc/self/ns/pid; exit 9'], { encoding: 'utf8' });
      expect(r.status).toBe(9);
      // /proc is the host's: the shell's ns link there is pause's namespace, not ours
      expect(r.stdout.trim()).toBe(readlinkSync(`/proc/${pid}/ns/pid`));
      expect(r.stdout.trim()).not.toBe(own);
    } finally {
      process.kill(pid, 'SIGTERM');
    }
  });

  it('errors: 125 for its own, 127 for a missing command, 126 for a non-executable one; one line each', () => {
    const cases: [string[], number, RegExp][] = [
      [['--net=/nonexistent', '--', 'true'], 125, /^nsexec: open \/nonexistent: No such file or directory$/],
      [['--net=/etc/hostname', '--', 'true'], 125, /^nsexec: setns \/etc\/hostname: Invalid argument$/],
      [['--new=bogus', '--', 'true'], 125, /^nsexec: --new wants net,ipc,uts,pid, got bogus$/],
      [['--hostname=x', '--', 'true'], 125, /^nsexec: --hostname needs --new=uts$/],
      [[], 125, /^nsexec: no command given$/],
      [['--', 'no-such-command-flax'], 127, /^nsexec: exec no-such-command-flax: No such file or directory$/],
      [['--', '/proc/self/stat'], 126, /^nsexec: exec \/proc\/self\/stat: Permission denied$/],
    ];
    for (const [args, code, re] of cases) {
      const r = spawnSync(nsexec, args, { encoding: 'utf8' });
      expect(r.status, args.join(' ')).toBe(code);
      expect(r.stderr.trimEnd(), args.join(' ')).toMatch(re);
    }
  });

  it('--new=uts --hostname changes only the new namespace', () => {
    const before = readFileSync('/proc/sys/kernel/hostname', 'utf8');
    const r = spawnSync(nsexec, ['--new=uts', '--hostname=flaxt-nsexec', '--', 'hostname'], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('flaxt-nsexec');
    expect(readFileSync('/proc/sys/kernel/hostname', 'utf8')).toBe(before);
  });
});
