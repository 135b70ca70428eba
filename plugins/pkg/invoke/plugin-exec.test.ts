import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { spawnProcess } from './plugin-exec';

describe('spawnProcess (RawExec\'s plugins and pkg/nft\'s firewall tools)', () => {
  it('writes stdin, collects stdout and stderr (also copied as they come), reports the exit code', async () => {
    const copied: Buffer[] = [];
    const stderr = new Writable({ write: (c: Buffer, _e, done) => { copied.push(c); done(); } });
    const r = await spawnProcess(['sh', '-c', 'tr a-z A-Z; echo oops >&2; exit 3'], { stdin: 'hello', stderr });
    expect(r).toMatchObject({ code: 3, signal: null, timedOut: false });
    expect(r.stdout.toString()).toBe('HELLO');
    expect(r.stderr.toString()).toBe('oops\n');
    expect(Buffer.concat(copied).toString()).toBe('oops\n');
  });
  it('passes exactly the env it is given', async () => {
    const r = await spawnProcess(['/bin/sh', '-c', 'echo "$FLAX_X:${HOME:-none}"'], { env: { FLAX_X: 'y', PATH: '/usr/bin:/bin' } });
    expect(r.stdout.toString()).toBe('y:none\n');
  });
  it('rejects with the spawn error when the file cannot be run', async () => {
    await expect(spawnProcess(['/nonexistent/flax-plugin'])).rejects.toMatchObject({ code: 'ENOENT' });
  });
  it('on timeout kills the whole process group (a child holding stdout open too) and resolves at once', async () => {
    const t0 = Date.now();
    const r = await spawnProcess(['sh', '-c', 'sleep 30 & echo started; wait'], { timeoutMs: 300 });
    expect(r).toMatchObject({ timedOut: true, signal: 'SIGKILL' });
    expect(r.stdout.toString()).toBe('started\n');
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
