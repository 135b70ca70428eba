#!/usr/bin/env node
// Whole-process latency of one loopback ADD (and DEL): flax's dist/bin/loopback
// against the reference /usr/lib/cni/loopback, interleaved in one run, in a
// throwaway netns. Usage: node scripts/bench-loopback.mjs [runs=40]
import { spawnSync, execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[2] ?? 40);
const impls = { flax: path.join(root, 'dist/bin/loopback'), reference: '/usr/lib/cni/loopback' };
const ns = `flaxbench-${process.pid}`;
const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'lo-bench', type: 'loopback' });

function call(bin, cmd) {
  const env = { PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: 'bench', CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'lo', CNI_PATH: path.dirname(bin) };
  const t0 = process.hrtime.bigint();
  const r = spawnSync(bin, [], { env, input: conf });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${bin} ${cmd} failed: ${r.stdout}${r.stderr}`);
  return ms;
}
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const p90 = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length * 0.9)];

execFileSync('ip', ['netns', 'add', ns]);
try {
  const t = { flax: { ADD: [], DEL: [] }, reference: { ADD: [], DEL: [] } };
  for (const name of Object.keys(impls)) { call(impls[name], 'ADD'); call(impls[name], 'DEL'); } // warm the page cache
  for (let i = 0; i < runs; i++) {
    for (const name of i % 2 ? ['reference', 'flax'] : ['flax', 'reference']) {
      t[name].ADD.push(call(impls[name], 'ADD'));
      t[name].DEL.push(call(impls[name], 'DEL'));
    }
  }
  console.log(`loopback, ${runs} interleaved runs each, whole process (spawn to exit), ms`);
  console.log('verb  impl        median    p90');
  for (const verb of ['ADD', 'DEL']) {
    for (const name of Object.keys(impls)) console.log(`${verb.padEnd(5)} ${name.padEnd(10)} ${median(t[name][verb]).toFixed(1).padStart(7)} ${p90(t[name][verb]).toFixed(1).padStart(6)}`);
    console.log(`${verb.padEnd(5)} ratio flax/reference: ${(median(t.flax[verb]) / median(t.reference[verb])).toFixed(1)}x`);
  }
  const base = [];
  for (let i = 0; i < runs; i++) { const t0 = process.hrtime.bigint(); spawnSync(process.execPath, ['-e', '0']); base.push(Number(process.hrtime.bigint() - t0) / 1e6); }
  console.log(`node -e 0 (start-up floor): median ${median(base).toFixed(1)} ms`);
} finally {
  execFileSync('ip', ['netns', 'del', ns]);
}
