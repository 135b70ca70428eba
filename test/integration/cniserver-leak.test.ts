/**
 * What the resident CNI server keeps per call (issue 26): flaxd --no-overlay
 * in a throwaway netns serves pod ADD+DEL cycles (bridge + host-local with
 * ipMasq, through dist/bin/bridge, the static client); between two rounds of
 * heap snapshots (SIGUSR2: the main thread and every worker, each after a
 * full GC) the objects each thread's heap gained are counted per cycle.
 *
 * No timing is asserted: the count is of objects still reachable after GC.
 * Calls made one at a time all go to the pool's first worker, so the same
 * worker is compared. The leak this guards against (every netlink socket
 * dlopened netlink.node again, and V8 kept each new class's templates) kept
 * ~150 objects (~25 KB) per cycle in the worker. Compiled code is not
 * counted: V8 compiles functions lazily, on their first calls (the snapshot
 * path itself, code paths a rarer call takes), which is no per-call growth.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../helpers/cniserver';
import { cni, ours, requireBuilt } from '../lib/cni';
import { countHeap, heapGrowth, type HeapCount } from '../lib/heap';
import { createTestNetns, destroyTestNetns } from '../lib/netns';

const WARM = 100;
const MEASURED = 200;
/** objects a thread may keep per ADD+DEL cycle (the leak: ~150 in the worker) */
const BUDGET = 5;

let srvNs: string, pod: string, tmp: string;
let srv: RunningServer;

beforeAll(async () => {
  requireBuilt('bridge', 'flaxd');
  [srvNs, pod] = createTestNetns(2);
  tmp = mkdtempSync(path.join(tmpdir(), 'flax-leak-t-'));
  srv = await startServer(srvNs, [], { FLAX_DIAGNOSTIC_DIR: tmp });
}, 120_000);
afterAll(async () => {
  await srv?.stop();
  destroyTestNetns([srvNs, pod].filter(Boolean));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const conf = () => ({
  cniVersion: '1.0.0', name: 'leaknet', type: 'bridge', bridge: 'bleak0', isGateway: true, ipMasq: true,
  ipam: { type: 'host-local', dataDir: path.join(tmp, 'ipam'), ranges: [[{ subnet: '10.78.0.0/16' }]] },
});

function cycles(from: number, n: number): void {
  for (let i = from; i < from + n; i++) {
    const c = { containerId: `leak-${i}`, netns: pod, ifname: 'eth0', hostNs: srvNs, env: { FLAX_CNI_SOCKET: srv.socket } };
    const add = cni(ours('bridge'), { ...c, command: 'ADD', stdin: conf() });
    expect(add.code, add.stdout + add.stderr).toBe(0);
    const del = cni(ours('bridge'), { ...c, command: 'DEL', stdin: { ...conf(), prevResult: add.json } });
    expect(del.code, del.stdout + del.stderr).toBe(0);
  }
}

/** SIGUSR2, then the snapshot files the server names in its log, by thread ("main", "worker<id>"). */
async function snapshots(round: number): Promise<Map<string, HeapCount>> {
  srv.proc.kill('SIGUSR2');
  let files: string[] = [];
  for (let i = 0; i < 600 && files.length === 0; i++) {
    const lines = [...srv.log().matchAll(/heap snapshots written: (.*)$/gm)];
    if (lines.length >= round) files = lines[round - 1][1].split(' ');
    else await new Promise((r) => setTimeout(r, 100));
  }
  expect(files.length, srv.log()).toBeGreaterThanOrEqual(2); // main + at least one worker
  return new Map(files.filter(existsSync).map((f) => [/-(main|worker\d+)\.heapsnapshot$/.exec(f)![1], countHeap(f)]));
}

describe('flaxd CNI server: nothing kept per call', () => {
  it(`after ${WARM} warm-up cycles, ${MEASURED} more ADD+DEL cycles leave at most ${BUDGET} objects per cycle in the main thread and in the worker that served them`, async () => {
    cycles(0, WARM);
    await snapshots(1); // the first round runs (and compiles, allocates for) the snapshot path itself
    const before = await snapshots(2);
    cycles(WARM, MEASURED);
    const after = await snapshots(3);
    const report: Record<string, { perCycle: number; grew: string[] }> = {};
    for (const [thread, a] of before) {
      const b = after.get(thread);
      if (!b) continue; // a worker stopped in between (only extra workers are)
      report[thread] = { perCycle: (b.objects - a.objects) / MEASURED, grew: heapGrowth(a, b) };
    }
    console.log(`objects kept per ADD+DEL cycle: ${Object.entries(report).map(([t, r]) => `${t} ${r.perCycle.toFixed(2)}`).join(', ')}`);
    expect(Object.keys(report)).toContain('main');
    expect(Object.keys(report).some((t) => t.startsWith('worker'))).toBe(true);
    for (const [thread, r] of Object.entries(report)) {
      expect(r.perCycle, `${thread} kept ${r.perCycle.toFixed(1)} objects per cycle:\n  ${r.grew.join('\n  ')}`).toBeLessThanOrEqual(BUDGET);
    }
  }, 240_000);
});
