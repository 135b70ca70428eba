#!/usr/bin/env node
// Chain latency: `flax cni add` + `flax cni del` of loopback > bridge >
// host-local with flax's plugins (dist/bin) vs the reference Go plugins
// (/usr/lib/cni), both driven by the same flax CLI/library so only the
// plugins differ; interleaved in one run. Also measures the CLI's own
// start-up (`flax cni status` on a 1.0.0 list runs no plugin) and `node -e 0`.
//
// Runs as root in throwaway namespaces (a "node" netns where the CLI runs,
// one pod netns); the root netns and /etc/cni, /var/lib/cni are untouched.
//
// --server auto (issue 24) adds a set "flax, --server auto": dist/bin's
// plugin clients with FLAX_CNI_SERVER=auto and a socket of the bench's own,
// as on a host set up with `flax install --server auto` (the package,
// dist/pkg, installed into the bench's dirs; dist/bin when there is no
// package): its first call
// starts flaxd --no-overlay (no warm-up for that set: the first call is in
// the samples; its time is printed), killed at the end. --burst N adds N
// pods ADDed at once (N `flax cni add` processes), then DELed at once.
//
// --cli cnitool: each sample is the reference's cnitool (scripts/peers.sh
// builds it into $FLAX_PEERS/bin) instead of `flax cni`: a Go CLI whose own
// start-up is ~5 ms, not Node's ~40, so the plugins are most of each sample
// (and the first call's start of the server weighs the most). cnitool has no
// cache-dir option: the bench re-runs itself in a private mount namespace with
// a tmpfs over /var/lib/cni, so the machine's stays untouched.
//
//   node scripts/bench-chain.mjs [--runs 20] [--burst 0] [--server auto] [--cli flax|cnitool] [--flax dist/bin/flax]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { autoServerEnv, installAutoServer, killAutoServer } from './bench-scratch.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : def; };
const runs = Number(arg('runs', '20'));
const flax = path.resolve(arg('flax', path.join(root, 'dist/bin/flax')));
const burst = Number(arg('burst', '0'));
const serverMode = arg('server', 'off');
if (!['off', 'auto'].includes(serverMode)) { console.error('bench-chain: --server auto|off'); process.exit(2); }
const cliName = arg('cli', 'flax');
if (!['flax', 'cnitool'].includes(cliName)) { console.error('bench-chain: --cli flax|cnitool'); process.exit(2); }
const bin = path.dirname(flax);
if (process.getuid() !== 0) { console.error('bench-chain: run as root (it creates network namespaces)'); process.exit(1); }
if (!existsSync(flax)) { console.error(`bench-chain: ${flax} not found (npm run build)`); process.exit(1); }
const PEERS = process.env.FLAX_PEERS ?? '/var/cache/flax-peers';
const cnitool = path.join(PEERS, 'bin/cnitool');
if (cliName === 'cnitool') {
  if (!existsSync(cnitool)) { console.error(`bench-chain: ${cnitool} not found (scripts/peers.sh builds it)`); process.exit(1); }
  if (process.env.FLAX_BENCH_MOUNT_NS !== '1') {
    // cnitool caches results in /var/lib/cni: a mount namespace of its own with a tmpfs there
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', process.execPath, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, FLAX_BENCH_MOUNT_NS: '1' } });
    process.exit(r.status ?? 1);
  }
  const cniLib = existsSync('/var/lib/cni') ? '/var/lib/cni' : '/var/lib';
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'mode=0755', 'flax-bench', cniLib], { encoding: 'utf8' });
  if (m.status !== 0) { console.error(`bench-chain: mount tmpfs on ${cniLib} (in its own mount namespace): ${m.stderr}`); process.exit(1); }
}

const have = (dir, p) => existsSync(path.join(dir, p));
const sets = [{ name: 'reference (/usr/lib/cni)', path: '/usr/lib/cni' }];
const missing = ['loopback', 'bridge', 'host-local'].filter((p) => !have(bin, p));
if (missing.length === 0) sets.push({ name: `flax (${path.relative(root, bin) || bin})`, path: bin });
else if (missing.length < 3) sets.push({ name: `flax partial (missing ${missing.join(', ')} → reference)`, path: `${bin}:/usr/lib/cni` });
// the newest reference plugins, when scripts/peers.sh built them (issue 22): a REF2 set, ratios beside the v1.1.1 ones
const REF2 = path.join(PEERS, 'plugins-v1.10.0');
const ref2 = ['loopback', 'bridge', 'host-local'].every((p) => have(REF2, p)) ? { name: `reference v1.10.0 (${REF2})`, path: REF2 } : null;
if (ref2) sets.push(ref2);

const tag = `flaxbench-${process.pid}`;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'flax-bench-'));
const autoEnv = autoServerEnv(tmp);
if (serverMode === 'auto') {
  const pkg = path.join(root, 'dist/pkg');
  if (existsSync(path.join(pkg, 'PACKAGE.json'))) {
    // as on a host: `flax install --server auto` of the package (into the bench's dirs; the mode file where the clients read it)
    sets.push({ name: 'flax install --server auto (dist/pkg)', path: installAutoServer('bench-chain', pkg, path.join(tmp, 'pkg'), autoEnv), auto: true, env: autoEnv });
  } else if (missing.length === 0) {
    sets.push({ name: 'flax --server auto (dist/bin; no dist/pkg)', path: bin, auto: true, env: { ...autoEnv, FLAX_CNI_SERVER: 'auto' } });
  }
}
const ns = (n) => `/run/netns/${tag}-${n}`;
const sh = (cmd, args) => { const r = spawnSync(cmd, args, { encoding: 'utf8' }); if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`); return r.stdout; };
function cleanup() {
  killAutoServer(autoEnv.FLAX_CNI_SOCKET); // the flaxd the auto set's first call started
  for (const n of ['node', 'pod', ...Array.from({ length: burst }, (_, i) => `b${i}`)]) spawnSync('ip', ['netns', 'del', `${tag}-${n}`]);
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

sh('ip', ['netns', 'add', `${tag}-node`]);
sh('ip', ['netns', 'add', `${tag}-pod`]);
for (let i = 0; i < burst; i++) sh('ip', ['netns', 'add', `${tag}-b${i}`]);
const confDir = path.join(tmp, 'net.d');
sh('mkdir', ['-p', confDir]);
writeFileSync(path.join(confDir, '10-bench.conflist'), JSON.stringify({
  cniVersion: '1.0.0', name: 'bench',
  plugins: [{ type: 'loopback' }, { type: 'bridge', bridge: 'bench0', isGateway: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.253.0.0/24' }]], dataDir: path.join(tmp, 'ipam') } }],
}));

function timed(argv, env) {
  const t = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr || r.stdout}`);
  return ms;
}
/** `flax cni <verb> …` in the node netns; with --cli cnitool, `cnitool <verb> <net> <netns>` (no cache flag: see above) */
const inNode = (args) => ['nsenter', `--net=${ns('node')}`, '--', ...(cliName === 'cnitool' ? [cnitool, args[1], args[2], args[3]] : [flax, ...args])];
const cniEnv = (p, extra = {}) => ({ NETCONFPATH: confDir, CNI_PATH: p, ...extra });
/** N processes at once; resolves with the ms until the last one exited */
function timedAll(argvs, env) {
  const t = process.hrtime.bigint();
  return Promise.all(argvs.map((argv) => new Promise((resolve, reject) => {
    const p = spawn(argv[0], argv.slice(1), { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    p.on('close', (c) => (c === 0 ? resolve() : reject(new Error(`${argv.join(' ')} failed: ${err}`))));
  }))).then(() => Number(process.hrtime.bigint() - t) / 1e6);
}
const cache = ['--cache-dir', path.join(tmp, 'cache')];

const res = new Map(sets.map((s) => [s.name, { add: [], del: [], burstAdd: [], burstDel: [] }]));
const startup = [];
const nodeBoot = [];
const nsenterOnly = [];
// warm-up (page cache, first bridge creation)
// (not for the --server auto set: its first call, which starts the server, is measured)
for (const s of sets.filter((x) => !x.auto)) { timed(inNode(['cni', 'add', 'bench', ns('pod'), ...cache]), cniEnv(s.path)); timed(inNode(['cni', 'del', 'bench', ns('pod'), ...cache]), cniEnv(s.path)); }
for (let i = 0; i < runs; i++) {
  const order = i % 2 ? [...sets].reverse() : sets;
  for (const s of order) {
    const r = res.get(s.name);
    r.add.push(timed(inNode(['cni', 'add', 'bench', ns('pod'), ...cache]), cniEnv(s.path, s.env)));
    r.del.push(timed(inNode(['cni', 'del', 'bench', ns('pod'), ...cache]), cniEnv(s.path, s.env)));
  }
  startup.push(cliName === 'cnitool' ? timed(['nsenter', `--net=${ns('node')}`, '--', cnitool, '--help'], {}) : timed(inNode(['cni', 'status', 'bench', ...cache]), cniEnv('/usr/lib/cni')));
  nodeBoot.push(timed(['nsenter', `--net=${ns('node')}`, '--', process.execPath, '-e', '0'], {}));
  nsenterOnly.push(timed(['nsenter', `--net=${ns('node')}`, '--', 'true'], {}));
}

for (let i = 0; burst > 0 && i < Math.max(3, runs / 5); i++) {
  for (const s of i % 2 ? [...sets].reverse() : sets) {
    const r = res.get(s.name);
    const pods = Array.from({ length: burst }, (_, j) => ns(`b${j}`));
    r.burstAdd.push(await timedAll(pods.map((p) => inNode(['cni', 'add', 'bench', p, ...cache])), cniEnv(s.path, s.env)));
    r.burstDel.push(await timedAll(pods.map((p) => inNode(['cni', 'del', 'bench', p, ...cache])), cniEnv(s.path, s.env)));
  }
}

const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const f = (x) => x.toFixed(1);
const ref = res.get(sets[0].name);
const su = median(startup);
console.log(`bench-chain: ${runs} interleaved runs, chain loopback > bridge > host-local (cniVersion 1.0.0), node ${process.version}, ${os.cpus().length} CPUs`);
console.log(cliName === 'cnitool'
  ? `each sample = one \`nsenter --net=<node> cnitool add|del\` process (${cnitool}: Go CLI start-up + config load + 3 plugin execs + cache)\n`
  : `each sample = one \`nsenter --net=<node> flax cni add|del\` process (CLI start-up + config load + 3 plugin execs + cache)\n`);
const ref2r = ref2 ? res.get(ref2.name) : null;
const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
const ratio = (a, b) => `${(a / b).toFixed(2)}×`;
const burstCols = burst > 0 ? [`${burst}-pod burst ADD ms`, 'burst DEL ms', 'burst ADD vs ref', 'burst DEL vs ref'] : [];
const rows = [['plugins', 'ADD median ms', 'DEL median ms', 'ADD vs ref', 'DEL vs ref', 'ADD mean vs ref', ...(ref2r ? ['ADD vs v1.10.0', 'DEL vs v1.10.0'] : []), 'ADD − CLI ms', 'DEL − CLI ms', ...burstCols]];
for (const s of sets) {
  const r = res.get(s.name);
  const a = median(r.add), d = median(r.del);
  const v2 = ref2r ? [ratio(a, median(ref2r.add)), ratio(d, median(ref2r.del))] : [];
  const b = burst > 0 ? [f(median(r.burstAdd)), f(median(r.burstDel)), ratio(median(r.burstAdd), median(ref.burstAdd)), ratio(median(r.burstDel), median(ref.burstDel))] : [];
  rows.push([s.name, f(a), f(d), ratio(a, median(ref.add)), ratio(d, median(ref.del)), ratio(mean(r.add), mean(ref.add)), ...v2, f(a - su), f(d - su), ...b]);
}
const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
for (const [j, r] of rows.entries()) { console.log(r.map((c, i) => c.padEnd(w[i])).join('  ')); if (j === 0) console.log(w.map((n) => '-'.repeat(n)).join('  ')); }
console.log(cliName === 'cnitool' ? `\ncnitool start-up (\`cnitool --help\`): ${f(su)} ms median` : `\nflax CLI start-up (\`flax cni status\`, loads config, runs no plugin): ${f(su)} ms median`);
console.log(`  of which nsenter ${f(median(nsenterOnly))} ms; \`node -e 0\` under nsenter ${f(median(nodeBoot))} ms`);
for (const s of sets.filter((x) => x.auto)) console.log(`--server auto: the first ADD (it started flaxd --no-overlay) took ${f(res.get(s.name).add[0])} ms; the reference's first ${f(ref.add[0])} ms`);
if (missing.length) console.log(`\nnote: dist/bin lacks ${missing.join(', ')}; those come from /usr/lib/cni in the flax row`);
