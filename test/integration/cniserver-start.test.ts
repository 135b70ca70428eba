/**
 * The resident CNI server's start (issue 24: an auto-started server's first
 * call waits for it): its socket listens before the first worker is ready,
 * and a call that comes meanwhile waits for that worker; when the worker
 * never starts, the calls that came are handed back to their clients'
 * standalone plugins (the server did nothing) and no socket or lock stays.
 * The server runs in this process (its library, from source) with a worker
 * script that loads dist/bin's worker slowly, or fails; the client is
 * dist/bin's plugin client.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCniServer } from '../../plugins/pkg/cniserver/server';
import { cni, cniAsync, ours, requireBuilt } from '../lib/cni';

let tmp: string;
beforeAll(() => {
  requireBuilt('loopback', 'loopback.standalone', 'cni-worker.js');
  tmp = mkdtempSync(path.join(tmpdir(), 'flax-cnistart-'));
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A worker script that sleeps `ms` (the thread, as a slow start would), then loads dist/bin's worker or throws. */
function workerScript(name: string, ms: number, fail: boolean): string {
  const file = path.join(tmp, name);
  writeFileSync(file, `Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${ms});\n${fail ? 'throw new Error("this worker never starts");' : `require(${JSON.stringify(ours('cni-worker.js'))});`}\n`);
  return file;
}

/** Resolves once `file` exists (polled), or rejects after `ms`. */
async function appears(file: string, ms: number, done: () => boolean): Promise<boolean> {
  const t = performance.now();
  while (!existsSync(file)) {
    if (done() || performance.now() - t > ms) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

const VERSION = { command: 'VERSION', stdin: '{"cniVersion":"1.0.0"}' };

describe('the CNI server\'s start', () => {
  it('listens before its first worker is ready: a call made then is served once the worker is', async () => {
    const socket = path.join(tmp, 'slow.sock');
    let started = false;
    const starting = startCniServer({ socket, workerFile: workerScript('slow.js', 1500, false) }).finally(() => { started = true; });
    try {
      expect(await appears(socket, 20_000, () => started), 'the socket exists while the worker still starts').toBe(true);
      expect(started).toBe(false);
      const call = cniAsync(ours('loopback'), { ...VERSION, env: { FLAX_CNI_SOCKET: socket } });
      const srv = await starting;
      const out = await call;
      expect({ code: out.code, stdout: out.stdout }).toEqual({ code: 0, stdout: cni(ours('loopback.standalone'), VERSION).stdout });
      expect(srv.stats().served, 'served by the server, not the standalone plugin').toBe(1);
      await srv.close();
    } finally {
      await starting.then((s) => s.close(), () => {});
    }
    expect(existsSync(socket)).toBe(false);
  }, 60_000);

  it('a first worker that never starts: the start fails, the calls that came are run by the standalone plugin, no socket or lock stays', async () => {
    const socket = path.join(tmp, 'fail.sock');
    let started = false;
    const starting = startCniServer({ socket, workerFile: workerScript('fail.js', 1500, true) });
    const outcome = starting.then(() => 'started', (e: Error) => e.message).finally(() => { started = true; });
    expect(await appears(socket, 20_000, () => started), 'the socket exists while the worker still starts').toBe(true);
    const out = await cniAsync(ours('loopback'), { ...VERSION, env: { FLAX_CNI_SOCKET: socket } });
    expect(await outcome).toMatch(/this worker never starts/);
    expect({ code: out.code, stdout: out.stdout }).toEqual({ code: 0, stdout: cni(ours('loopback.standalone'), VERSION).stdout });
    expect(existsSync(socket), 'no socket left').toBe(false);
    expect(existsSync(`${socket}.lock`), 'no lock file left').toBe(false);
  }, 60_000);

  it('after a burst, the worker left is replaced by a fresh one, and calls go on being served by one worker', async () => {
    const socket = path.join(tmp, 'burst.sock');
    const logs: string[] = [];
    // the first worker starts slowly: the calls that come meanwhile queue and start a worker each (a burst)
    const starting = startCniServer({ socket, idleMs: 300, maxWorkers: 4, workerFile: workerScript('burst.js', 800, false), log: (m) => logs.push(m) });
    let srv: Awaited<typeof starting> | undefined;
    try {
      expect(await appears(socket, 20_000, () => false)).toBe(true);
      const calls = Array.from({ length: 4 }, () => cniAsync(ours('loopback'), { ...VERSION, env: { FLAX_CNI_SOCKET: socket } }));
      srv = await starting;
      for (const c of await Promise.all(calls)) expect(c.code, c.stderr).toBe(0);
      const s = srv;
      for (let i = 0; i < 100 && s.stats().served + s.stats().deferred < 4; i++) await new Promise((r) => setTimeout(r, 20)); // counted once the answer is out
      const served = s.stats().served;
      expect(served, JSON.stringify(s.stats())).toBeGreaterThanOrEqual(2); // a burst: more than one call reached the server
      for (let i = 0; i < 200 && !logs.some((l) => /after a burst, 1 of 1 worker\(s\) replaced/.test(l)); i++) await new Promise((r) => setTimeout(r, 50));
      expect(logs.join('\n')).toMatch(/after a burst, 1 of 1 worker\(s\) replaced by fresh ones/);
      for (let i = 0; i < 100 && s.stats().workers !== 1; i++) await new Promise((r) => setTimeout(r, 50));
      expect(s.stats().workers).toBe(1);
      const after = await cniAsync(ours('loopback'), { ...VERSION, env: { FLAX_CNI_SOCKET: socket } });
      expect({ code: after.code, stdout: after.stdout }).toEqual({ code: 0, stdout: cni(ours('loopback.standalone'), VERSION).stdout });
      for (let i = 0; i < 100 && s.stats().served === served; i++) await new Promise((r) => setTimeout(r, 20));
      expect(s.stats().served, 'served by the fresh worker').toBe(served + 1);
    } finally {
      await (srv ?? await starting.catch(() => undefined))?.close();
    }
  }, 60_000);
});
