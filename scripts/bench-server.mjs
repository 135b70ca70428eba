#!/usr/bin/env node
// Per-call latency with the resident CNI server (issue 15): each plugin is
// exec'd as a runtime execs it (env + stdin, one process per plugin call),
// the chain loopback > bridge(+host-local, ipMasq) > portmap, in three sets
// interleaved in one run:
//   reference   /usr/lib/cni (Go, v1.1.1)
//   server      dist/bin/<plugin> = the static client, `flaxd --no-overlay` running
//   standalone  dist/bin/<plugin> with FLAX_CNI_SOCKET='' (the client execs
//               <plugin>.standalone, as when no server runs)
// --server auto (issue 24) adds a set: the package (dist/pkg) installed with
// `flax install --server auto` into the bench's own dirs, its own socket, no
// server running and no warm-up: its first chain ADD starts flaxd
// --no-overlay and is in the samples (the means "first call included").
// Measures: chain ADD and DEL per pod, a 20-pod burst (20 chains at once),
// VERSION, host-local alone (ADD+DEL); checks 0 duplicate addresses and 0
// leftovers; the server's RSS idle and with --attachments N pods attached.
// Root only; everything happens in throwaway namespaces (this process's main
// thread joins a "node" netns through flax's addon; the server runs there).
//
//   node scripts/bench-server.mjs [--runs 15] [--burst 20] [--attachments 500] [--server auto]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { autoServerEnv, benchScratch, installAutoServer, killAutoServer, startCniOnlyFlaxd } from './bench-scratch.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : def; };
const runs = Number(arg('runs', '15'));
const burst = Number(arg('burst', '20'));
const attachments = Number(arg('attachments', '0'));
const serverMode = arg('server', 'off');
if (!['off', 'auto'].includes(serverMode)) { console.error('bench-server: --server auto|off'); process.exit(2); }
const bin = path.join(root, 'dist/bin');
const REF = '/usr/lib/cni';
if (process.getuid() !== 0) { console.error('bench-server: run as root'); process.exit(1); }
for (const p of ['bridge', 'bridge.standalone', 'flax.node']) if (!existsSync(path.join(bin, p))) { console.error(`bench-server: ${bin}/${p} missing (npm run build)`); process.exit(1); }

const { tmp, sh, addNs, children, enter } = benchScratch('flaxsrvb', 'flax-bench-srv-');
const node = addNs('node');
enter(node, path.join(bin, 'flax.node')); // this thread only: spawns inherit it
const socket = path.join(tmp, 'cni.sock');
// flaxd with the CNI server only (no overlay, no sweeper), as on a bridge-only host
const server = await startCniOnlyFlaxd(path.join(bin, 'flaxd'), socket, children);
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))[1]) / 1024;
const memStart = rss();

const SETS = [
  { key: 'ref', name: 'reference (Go)', dir: REF, env: {} },
  { key: 'srv', name: 'flax via server', dir: bin, env: { FLAX_CNI_SOCKET: socket } },
  { key: 'sa', name: 'flax standalone', dir: bin, env: { FLAX_CNI_SOCKET: '' } },
];
// the newest reference plugins, when scripts/peers.sh built them (issue 22): a REF2 set
const REF2 = path.join(process.env.FLAX_PEERS ?? '/var/cache/flax-peers', 'plugins-v1.10.0');
if (existsSync(path.join(REF2, 'bridge'))) SETS.push({ key: 'ref2', name: 'reference v1.10.0 (Go)', dir: REF2, env: {} });
// as on a host set up with `flax install --server auto` (the package, into the bench's dirs): the clients start flaxd;
// `auto`: its first call is a chain ADD; `autoBurst` (bursts only): its first call is a burst's
const autoSockets = [];
function installAuto(key, name, extra) {
  const pkg = path.join(root, 'dist/pkg');
  if (!existsSync(path.join(pkg, 'PACKAGE.json'))) { console.error('bench-server: --server auto needs dist/pkg (node scripts/package.mjs)'); process.exit(1); }
  const env = autoServerEnv(path.join(tmp, key));
  autoSockets.push(env.FLAX_CNI_SOCKET);
  SETS.push({ key, name, dir: installAutoServer('bench-server', pkg, path.join(tmp, key), env), env, auto: true, ...extra });
}
if (serverMode === 'auto') {
  installAuto('auto', 'flax install --server auto');
  installAuto('autoBurst', 'flax install --server auto, first call a burst', { burstOnly: true });
}
// the flaxd each auto set's first call started, killed at exit (before the scratch directory holding its lock file goes)
process.prependListener('exit', () => autoSockets.forEach(killAutoServer));
const confs = Object.fromEntries(SETS.map((s, i) => [s.key, {
  net: { cniVersion: '1.0.0', name: `bench${i}` },
  bridge: { type: 'bridge', bridge: `bsrv${i}`, isGateway: true, ipMasq: true, ipam: { type: 'host-local', ranges: [[{ subnet: `10.24${i}.0.0/16` }]], dataDir: path.join(tmp, `ipam-${s.key}`) } },
}]));

function call(set, plugin, env, stdin, async = false) {
  const opts = { env: { PATH: process.env.PATH, CNI_PATH: set.dir, ...set.env, ...env }, input: JSON.stringify(stdin) };
  const file = path.join(set.dir, plugin);
  if (!async) {
    const r = spawnSync(file, [], { ...opts, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${set.key} ${plugin} ${env.CNI_COMMAND}: ${r.stdout} ${r.stderr}`);
    return r.stdout ? JSON.parse(r.stdout) : null;
  }
  return new Promise((resolve, reject) => {
    const p = spawn(file, [], { env: opts.env });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('close', (c) => (c === 0 ? resolve(out ? JSON.parse(out) : null) : reject(new Error(`${set.key} ${plugin} ${env.CNI_COMMAND}: ${out}`))));
    p.stdin.end(opts.input);
  });
}
// a runtime's chain: ADD in order with prevResult, DEL in reverse with the final result
async function chain(set, verb, pod, id, port, prev, async = false, ifname = 'eth0') {
  const c = confs[set.key];
  const env = { CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: pod, CNI_IFNAME: ifname };
  const plugins = [
    ['loopback', { ...c.net, type: 'loopback' }],
    ['bridge', { ...c.net, ...c.bridge }],
    ['portmap', { ...c.net, type: 'portmap', snat: true, capabilities: { portMappings: true }, runtimeConfig: { portMappings: [{ hostPort: port, containerPort: 80, protocol: 'tcp' }] } }],
  ];
  let result = prev;
  for (const [p, conf] of verb === 'ADD' ? plugins : [...plugins].reverse()) {
    const stdin = result ? { ...conf, prevResult: result } : conf;
    const out = await call(set, p, env, stdin, async);
    if (verb === 'ADD') result = out;
  }
  return result;
}
const now = () => Number(process.hrtime.bigint()) / 1e6;
const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const res = Object.fromEntries(SETS.map((s) => [s.key, { add: [], del: [], burstAdd: [], burstDel: [], version: [], ipam: [] }]));
const pods = Array.from({ length: burst }, (_, i) => addNs(`pod${i}`));
const problems = [];

async function once(set, i) {
  const r = res[set.key];
  let t = now();
  const result = await chain(set, 'ADD', pods[0], `c-${set.key}-${i}`, 20000, null);
  r.add.push(now() - t);
  t = now();
  await chain(set, 'DEL', pods[0], `c-${set.key}-${i}`, 20000, result);
  r.del.push(now() - t);
  t = now();
  call(set, 'bridge', { CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' });
  r.version.push(now() - t);
  const ipamConf = { ...confs[set.key].net, ipam: { ...confs[set.key].bridge.ipam, dataDir: path.join(tmp, `hl-${set.key}`) } };
  const env = { CNI_CONTAINERID: `h-${i}`, CNI_NETNS: pods[0], CNI_IFNAME: 'eth0' };
  t = now();
  call(set, 'host-local', { ...env, CNI_COMMAND: 'ADD' }, ipamConf);
  call(set, 'host-local', { ...env, CNI_COMMAND: 'DEL' }, ipamConf);
  r.ipam.push(now() - t);
}
async function burstOnce(set, i) {
  const r = res[set.key];
  let t = now();
  const results = await Promise.all(pods.map((p, j) => chain(set, 'ADD', p, `b-${set.key}-${i}-${j}`, 21000 + j, null, true)));
  r.burstAdd.push(now() - t);
  const ips = results.map((x) => x.ips[0].address);
  if (new Set(ips).size !== ips.length) problems.push(`${set.key}: duplicate addresses in burst ${i}`);
  t = now();
  await Promise.all(pods.map((p, j) => chain(set, 'DEL', p, `b-${set.key}-${i}-${j}`, 21000 + j, results[j], true)));
  r.burstDel.push(now() - t);
}

for (const s of SETS.filter((x) => !x.auto)) await once(s, 'warm'); // first bridge, page cache (not the auto set: its first call is measured)
const SEQ = SETS.filter((x) => !x.burstOnly);
for (let i = 0; i < runs; i++) for (const s of i % 2 ? [...SEQ].reverse() : SEQ) await once(s, i);
for (let i = 0; i < Math.max(3, runs / 5); i++) for (const s of i % 2 ? [...SETS].reverse() : SETS) await burstOnce(s, i);

// leftovers: veths in the node netns, reservations, pod interfaces
const links = JSON.parse(sh('ip', ['-j', 'link', 'show'])).map((l) => l.ifname).filter((n) => n.startsWith('veth'));
if (links.length) problems.push(`leftover veths: ${links.join(' ')}`);
for (const s of SETS) {
  for (const d of [path.join(tmp, `ipam-${s.key}`, `bench${SETS.indexOf(s)}`), path.join(tmp, `hl-${s.key}`, `bench${SETS.indexOf(s)}`)]) {
    const held = existsSync(d) ? readdirSync(d).filter((f) => /^[0-9a-f.:]+$/.test(f) && f.includes('.')) : [];
    if (held.length) problems.push(`${s.key}: leftover reservations in ${d}: ${held.join(' ')}`);
  }
}

const memAfter = rss();
// the workers a burst added stop after 30 s idle (startCniServer idleMs)
await new Promise((r) => setTimeout(r, 35_000));
const memIdle = rss();
let memLoaded = null;
if (attachments > 0) {
  const set = SETS[1];
  const results = [];
  for (let j = 0; j < attachments; j++) results.push(await chain(set, 'ADD', pods[j % pods.length], `m-${j}`, 30000 + j, null, false, `eth${j}`));
  memLoaded = rss();
  for (let j = 0; j < attachments; j++) await chain(set, 'DEL', pods[j % pods.length], `m-${j}`, 30000 + j, results[j], false, `eth${j}`);
}

const f = (x) => x.toFixed(1);
const hasRef2 = SETS.some((s) => s.key === 'ref2');
const auto = SETS.find((s) => s.auto);
const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
const rows = [['measure', ...SEQ.map((s) => `${s.name} ms`), 'server / ref', 'standalone / ref', ...(hasRef2 ? ['server / v1.10.0', 'standalone / v1.10.0'] : []), ...(auto ? ['auto / ref', 'auto / ref, means (first call included)'] : [])]];
for (const [k, label] of [['add', 'chain ADD per pod'], ['del', 'chain DEL per pod'], ['burstAdd', `${burst}-pod burst ADD`], ['burstDel', `${burst}-pod burst DEL`], ['version', 'VERSION (bridge)'], ['ipam', 'host-local ADD+DEL']]) {
  const m = SEQ.map((s) => median(res[s.key][k]));
  const r2 = hasRef2 ? [`${(m[1] / m[3]).toFixed(2)}×`, `${(m[2] / m[3]).toFixed(2)}×`] : [];
  const a = auto ? [`${(median(res.auto[k]) / m[0]).toFixed(2)}×`, `${(mean(res.auto[k]) / mean(res.ref[k])).toFixed(2)}×`] : [];
  rows.push([label, ...m.map(f), `${(m[1] / m[0]).toFixed(2)}×`, `${(m[2] / m[0]).toFixed(2)}×`, ...r2, ...a]);
}
console.log(`bench-server: ${runs} interleaved runs (${Math.max(3, runs / 5)} bursts), chain loopback > bridge+host-local (ipMasq) > portmap, cniVersion 1.0.0, node ${process.version}, ${os.cpus().length} CPUs; medians\n`);
const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
for (const [j, r] of rows.entries()) { console.log(r.map((c, i) => c.padEnd(w[i])).join('  ')); if (j === 0) console.log(w.map((n) => '-'.repeat(n)).join('  ')); }
console.log(`\nflaxd --no-overlay RSS: ${f(memStart)} MiB at start (0 attachments), ${f(memAfter)} MiB right after the runs, ${f(memIdle)} MiB 35 s later (idle workers stopped)${memLoaded !== null ? `, ${f(memLoaded)} MiB with ${attachments} attachments` : ''}`);
if (auto) {
  console.log(`--server auto: the first chain ADD (it started flaxd --no-overlay) took ${f(res.auto.add[0])} ms; the reference's first ${f(res.ref.add[0])} ms`);
  const b = res.autoBurst;
  console.log(`--server auto, the first call a ${burst}-pod burst: that burst's ADD took ${f(b.burstAdd[0])} ms (the reference's first ${f(res.ref.burstAdd[0])} ms); burst ADD means (first included) ${(mean(b.burstAdd) / mean(res.ref.burstAdd)).toFixed(2)}×, DEL ${(mean(b.burstDel) / mean(res.ref.burstDel)).toFixed(2)}× the reference`);
}
console.log(problems.length ? `PROBLEMS:\n  ${problems.join('\n  ')}` : 'duplicate addresses: 0, leftovers: 0');
server.kill('SIGTERM');
process.exitCode = problems.length ? 1 : 0;
