#!/usr/bin/env node
// Soak of the resident CNI server (issue 26): `flaxd --no-overlay` in a
// throwaway "node" netns, N pod ADD+DEL cycles through dist/bin/bridge (the
// static client), bridge + host-local with ipMasq, `--concurrency` pods
// churned at once, as a busy node starts and stops pods. Prints RSS, the
// server's used heap (main thread + workers, from its STATUS answer),
// workers, threads and fds of the flaxd process at the start, at the peak
// (RSS), right after the cycles and `--idle` seconds later; the ratio
// after-idle / start; failed calls; leftovers. Exit 1 past 1.25×.
// Root only; everything happens in throwaway namespaces.
//
//   node scripts/bench-soak.mjs [--cycles 4000] [--concurrency 4] [--idle 60] [--sample 200]
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchScratch, startCniOnlyFlaxd } from './bench-scratch.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : def; };
const cycles = Number(arg('cycles', '4000'));
const conc = Number(arg('concurrency', '4'));
const idleS = Number(arg('idle', '60'));
const sampleEvery = Number(arg('sample', '200'));
const bin = path.join(root, 'dist/bin');
if (process.getuid() !== 0) { console.error('bench-soak: run as root'); process.exit(1); }
for (const p of ['bridge', 'flaxd', 'flax.node']) if (!existsSync(path.join(bin, p))) { console.error(`bench-soak: ${bin}/${p} missing (npm run build)`); process.exit(1); }

const { tmp, sh, addNs, children, enter } = benchScratch('flaxsoak', 'flax-soak-');
const node = addNs('node');
enter(node, path.join(bin, 'flax.node')); // this thread only: spawns inherit it
const socket = path.join(tmp, 'cni.sock');
const server = await startCniOnlyFlaxd(path.join(bin, 'flaxd'), socket, children);

const status = (f) => Number(new RegExp(`${f}:\\s+(\\d+)`).exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))[1]);
/** The server's STATUS answer (plugins/pkg/cniserver/probe.ts's request): its heaps, main thread and each worker. */
function serverInfo() {
  return new Promise((resolve, reject) => {
    const name = Buffer.from('.status');
    const h = Buffer.alloc(40);
    h.write('FLAXCNI1', 0, 'latin1');
    h.writeUInt32LE(name.length, 8);
    const c = net.createConnection(socket);
    const parts = [];
    c.on('data', (d) => parts.push(d));
    c.on('error', reject);
    c.on('end', () => {
      const buf = Buffer.concat(parts);
      const out = Number(buf.readBigUInt64LE(16));
      resolve(JSON.parse(buf.toString('utf8', 32, 32 + out)));
    });
    c.end(Buffer.concat([h, name]));
  });
}
async function sample(label) {
  const info = await serverInfo();
  const heap = (info.memory.heapUsed + info.memory.workers.filter((b) => b > 0).reduce((a, b) => a + b, 0)) / 1048576;
  return { label, rssMiB: status('VmRSS') / 1024, heapMiB: heap, workers: info.memory.workers.length, threads: status('Threads'), fds: readdirSync(`/proc/${server.pid}/fd`).length };
}

const conf = {
  cniVersion: '1.0.0', name: 'soak', type: 'bridge', bridge: 'bsoak0', isGateway: true, ipMasq: true,
  ipam: { type: 'host-local', ranges: [[{ subnet: '10.250.0.0/16' }]], dataDir: path.join(tmp, 'ipam') },
};
let failed = 0;
const failures = [];
function call(env, stdin) {
  return new Promise((resolve) => {
    const p = spawn(path.join(bin, 'bridge'), [], { env: { PATH: process.env.PATH, CNI_PATH: bin, FLAX_CNI_SOCKET: socket, ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('close', (c) => {
      if (c !== 0) { failed++; if (failures.length < 5) failures.push(`${env.CNI_COMMAND} ${env.CNI_CONTAINERID}: exit ${c} ${out} ${err}`); resolve(null); return; }
      resolve(out ? JSON.parse(out) : null);
    });
    p.stdin.end(JSON.stringify(stdin));
  });
}
const pods = Array.from({ length: conc }, (_, i) => addNs(`pod${i}`));
async function cycle(i, j) {
  const env = { CNI_CONTAINERID: `soak-${i}-${j}`, CNI_NETNS: pods[j], CNI_IFNAME: 'eth0' };
  const r = await call({ ...env, CNI_COMMAND: 'ADD' }, conf);
  await call({ ...env, CNI_COMMAND: 'DEL' }, r ? { ...conf, prevResult: r } : conf);
}

const samples = [await sample('start')];
let peak = samples[0];
const t0 = Date.now();
let done = 0;
for (let i = 0; done < cycles; i++) {
  const n = Math.min(conc, cycles - done);
  await Promise.all(Array.from({ length: n }, (_, j) => cycle(i, j)));
  done += n;
  if (done % sampleEvery < n) {
    const s = await sample(`${done} cycles`);
    if (s.rssMiB > peak.rssMiB) peak = { ...s, label: `peak (${done} cycles)` };
    process.stderr.write(`bench-soak: ${done}/${cycles} RSS ${s.rssMiB.toFixed(1)} MiB heap ${s.heapMiB.toFixed(1)} MiB threads ${s.threads} fds ${s.fds}\n`);
  }
}
const secs = (Date.now() - t0) / 1000;
const after = await sample(`after ${cycles} cycles`);
if (after.rssMiB > peak.rssMiB) peak = { ...after, label: 'peak' };
await new Promise((r) => setTimeout(r, idleS * 1000));
const idle = await sample(`${idleS} s idle after`);
const leftovers = JSON.parse(sh('ip', ['-j', 'link', 'show'])).map((l) => l.ifname).filter((n) => n.startsWith('veth'));
const held = existsSync(path.join(tmp, 'ipam/soak')) ? readdirSync(path.join(tmp, 'ipam/soak')).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : [];

console.log(`bench-soak: ${cycles} ADD+DEL cycles (${conc} at once) through dist/bin/bridge -> flaxd --no-overlay (bridge + host-local, ipMasq), ${secs.toFixed(0)} s, node ${process.version}\n`);
const rows = [['when', 'RSS MiB', 'heap MiB (main + workers)', 'workers', 'threads', 'fds'], ...[samples[0], peak, after, idle].map((s) => [s.label, s.rssMiB.toFixed(1), s.heapMiB.toFixed(1), String(s.workers), String(s.threads), String(s.fds)])];
const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
for (const [j, r] of rows.entries()) { console.log(r.map((c, i) => c.padEnd(w[i])).join('  ')); if (j === 0) console.log(w.map((n) => '-'.repeat(n)).join('  ')); }
const ratio = idle.rssMiB / samples[0].rssMiB;
console.log(`\nRSS ${idleS} s after / start: ${ratio.toFixed(2)}× (budget 1.25×); fds ${idle.fds} vs ${samples[0].fds} at start; failed calls: ${failed}; leftover veths: ${leftovers.length}, reservations: ${held.length}`);
for (const f of failures) console.log(`  failed: ${f}`);
server.kill('SIGTERM');
process.exitCode = ratio <= 1.25 && failed === 0 && idle.fds <= samples[0].fds && !leftovers.length && !held.length ? 0 : 1;
