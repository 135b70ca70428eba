import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from 'vitest';

const pause = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../native/build/pause');

function runAndSignal(sig: NodeJS.Signals): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(pause, [], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => {
      stderr += d;
      if (stderr.includes('warning')) p.kill(sig);
    });
    p.on('error', reject);
    p.on('exit', (code) => resolve({ code, stderr }));
  });
}

describe('pause', () => {
  it('prints a version with -v', () => {
    const r = spawnSync(pause, ['-v'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^flax-pause \d+\.\d+\.\d+/);
  });

  it('warns when not PID 1 and exits with distinct codes on SIGTERM / SIGINT', async () => {
    const term = await runAndSignal('SIGTERM');
    expect(term.stderr).toMatch(/warning: not running as PID 1/);
    expect(term.code).toBe(0);
    const int = await runAndSignal('SIGINT');
    expect(int.code).toBe(2);
  });

  it('reaps orphans as PID 1 of a new pid namespace', () => {
    // unshare --fork --pid makes pause PID 1: no warning; a timeout sends SIGTERM
    const r = spawnSync('timeout', ['-s', 'TERM', '0.5', 'unshare', '--fork', '--pid', pause], { encoding: 'utf8' });
    expect(r.stderr).not.toMatch(/warning/);
  });
});
