import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type PoolJob, WorkerPool } from './pool';
import type { WorkerReply } from './worker';

const tmp = mkdtempSync(path.join(tmpdir(), 'flax-pool-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A worker that is ready after `ms` and answers each call with exit code 0. */
function slowWorker(ms: number): string {
  const file = path.join(tmp, `slow-${ms}.cjs`);
  writeFileSync(file, `const { parentPort } = require('node:worker_threads');
setTimeout(() => {
  parentPort.on('message', (m) => { if (m.id !== undefined) parentPort.postMessage({ id: m.id, exitCode: 0 }); });
  parentPort.postMessage({ ready: true });
}, ${ms});
`);
  return file;
}

const job = (id: number): PoolJob => ({ msg: { id, name: 'loopback', env: [], stdin: new Uint8Array(), hostFd: -1, pid: 0, conn: -1 } });
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('WorkerPool.serveInline (the server\'s main thread serves while its first worker starts)', () => {
  it('runs calls inline one at a time until a worker has started, then only on workers; ready() waits for the inline call; the runner is retired once', async () => {
    const replies: { id: number; by: string }[] = [];
    const pool = new WorkerPool<PoolJob>({
      workerFile: slowWorker(600), minWorkers: 1, maxWorkers: 1, idleMs: 60_000, log: () => {},
      onReply: (j, m) => replies.push({ id: j.msg.id, by: m.exitCode === 7 ? 'inline' : 'worker' }),
      onLost: (j, why) => replies.push({ id: j.msg.id, by: `lost: ${why}` }),
      releaseMain: () => {},
    });
    const workerStarted = new Promise((r) => pool.workers()[0].once('message', r));
    let running = 0;
    let most = 0;
    let retired = 0;
    let release: (() => void) | undefined;
    pool.serveInline({
      async serve(m): Promise<WorkerReply> {
        most = Math.max(most, ++running);
        // the 3rd call is still running when the worker becomes ready
        await (m.id === 3 ? new Promise<void>((r) => (release = r)) : tick(20));
        running--;
        return { id: m.id, exitCode: 7 };
      },
      retire: () => retired++,
    });
    try {
      for (const id of [1, 2, 3]) pool.submit(job(id));
      await tick(200);
      expect(replies).toEqual([{ id: 1, by: 'inline' }, { id: 2, by: 'inline' }]);
      expect(pool.inFlight()).toBe(1);
      let ready = false;
      const r = pool.ready().then(() => { ready = true; });
      await workerStarted;
      await tick(50);
      expect(ready, 'ready() waits for the call running inline').toBe(false);
      pool.submit(job(4));
      await tick(100);
      expect(replies.at(-1), 'a call after the worker started goes to it').toEqual({ id: 4, by: 'worker' });
      expect(retired, 'not retired while its call runs').toBe(0);
      release!();
      await r;
      expect(retired).toBe(1);
      pool.submit(job(5));
      await tick(100);
      expect(replies).toEqual([
        { id: 1, by: 'inline' }, { id: 2, by: 'inline' }, { id: 4, by: 'worker' }, { id: 3, by: 'inline' }, { id: 5, by: 'worker' },
      ]);
      expect(most, 'one inline call at a time').toBe(1);
      expect(retired).toBe(1);
    } finally {
      pool.close();
      await Promise.all(pool.terminate());
    }
  });

  it('a runner offered after a worker has started is retired at once and serves nothing', async () => {
    const replies: string[] = [];
    const pool = new WorkerPool<PoolJob>({
      workerFile: slowWorker(0), minWorkers: 1, maxWorkers: 1, idleMs: 60_000, log: () => {},
      onReply: (_j, m) => replies.push(m.exitCode === 7 ? 'inline' : 'worker'),
      onLost: () => replies.push('lost'), releaseMain: () => {},
    });
    try {
      await pool.ready();
      let retired = 0;
      pool.serveInline({ serve: async (m) => ({ id: m.id, exitCode: 7 }), retire: () => retired++ });
      expect(retired).toBe(1);
      pool.submit(job(1));
      await tick(100);
      expect(replies).toEqual(['worker']);
    } finally {
      pool.close();
      await Promise.all(pool.terminate());
    }
  });
});

/** Workers that take a number each as they start (a file claimed with O_EXCL) and are ready after `delays[n]` ms (the last one for later ones). */
function staggeredWorker(delays: number[]): string {
  const dir = mkdtempSync(path.join(tmp, 'stagger-'));
  const file = path.join(dir, 'worker.cjs');
  writeFileSync(file, `const fs = require('node:fs');
const { parentPort } = require('node:worker_threads');
let n = 0;
for (;; n++) { try { fs.closeSync(fs.openSync(${JSON.stringify(dir)} + '/n' + n, 'wx')); break; } catch {} }
const delays = ${JSON.stringify(delays)};
setTimeout(() => {
  parentPort.on('message', (m) => {
    if (m.reduceMemory) parentPort.postMessage({ memoryReduced: true });
    else if (m.id !== undefined) parentPort.postMessage({ id: m.id, exitCode: 0 });
  });
  parentPort.postMessage({ ready: true });
}, delays[Math.min(n, delays.length - 1)]);
`);
  return file;
}

describe('WorkerPool after a burst', () => {
  it('a worker of the burst still starting when the others go idle is not recycled with them: it is stopped on its own once idle, then the one left is replaced', async () => {
    const logs: string[] = [];
    const replies: number[] = [];
    // worker 0 (minWorkers) and 1 start at once; 2 starts late, after the idle time of the others
    const pool = new WorkerPool<PoolJob>({
      workerFile: staggeredWorker([20, 20, 900, 20]), minWorkers: 1, maxWorkers: 3, idleMs: 200,
      log: (m) => logs.push(m), onReply: (j) => replies.push(j.msg.id), onLost: () => {}, releaseMain: () => {},
    });
    try {
      for (const id of [1, 2, 3]) pool.submit(job(id));
      expect(pool.size, 'a worker starts for each call that waits').toBe(3);
      for (let i = 0; i < 100 && !logs.some((l) => /after a burst/.test(l)); i++) await tick(50);
      expect(replies.sort()).toEqual([1, 2, 3]);
      expect(logs.filter((l) => /after a burst/.test(l))).toEqual(['cni server: after a burst, 1 of 1 worker(s) replaced by fresh ones']);
      for (let i = 0; i < 40 && pool.size !== 1; i++) await tick(50);
      expect(pool.size).toBe(1);
    } finally {
      pool.close();
      await Promise.all(pool.terminate());
    }
  });
});
