#!/usr/bin/env node
// Benchmark: whole-chain ADD and DEL (loopback + bridge with host-local,
// isGateway + ipMasq) of flax vs the reference plugins (/usr/lib/cni),
// exec'd as a runtime would, interleaved in one run.
//   node scripts/bench-bridge.mjs [--pods 30] [--burst 20]
// Runs as root; every "host" and pod is a throwaway netns (the machine's
// root netns is never touched). Prints medians, ratios, a burst check (no
// duplicate address, nothing left) and a start-up vs work breakdown.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync, mkdirSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAddonBanner } from './entries.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? Number(process.argv[i + 1]) : d; };
const PODS = arg('--pods', 30);
const BURST = arg('--burst', 20);
const OURS = path.join(root, 'dist/bin');
const REF = '/usr/lib/cni';
for (const p of ['bridge', 'host-local', 'loopback']) {
  if (!existsSync(path.join(OURS, p))) { console.error(`missing ${OURS}/${p}: run node scripts/build.mjs`); process.exit(1); }
  if (!existsSync(path.join(REF, p))) { console.error(`missing ${REF}/${p}: apt-get install containernetworking-plugins`); process.exit(1); }
}

const tmp = mkdtempSync(path.join(tmpdir(), 'flax-bench-br-'));
const tag = `fb${process.pid % 10000}`;
const netnsList = [];
const sh = (cmd, args) => { const r = spawnSync(cmd, args, { encoding: 'utf8' }); if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`); return r.stdout; };
function mkns(name) { sh('ip', ['netns', 'add', name]); netnsList.push(name); return `/run/netns/${name}`; }
function cleanup() {
  for (const n of netnsList) spawnSync('ip', ['netns', 'del', n]);
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

// plugin dirs: ours, the reference, and ours with host-local forced to exec
// (a wrapper that is not a flax bundle) to show what in-process IPAM saves
const dirs = { ours: OURS, ref: REF, oursExec: path.join(tmp, 'ours-exec') };
mkdirSync(dirs.oursExec);
for (const p of ['bridge', 'loopback']) symlinkSync(path.join(OURS, p), path.join(dirs.oursExec, p));
writeFileSync(path.join(dirs.oursExec, 'host-local'), `#!/bin/sh\nexec ${path.join(OURS, 'host-local')}\n`);
chmodSync(path.join(dirs.oursExec, 'host-local'), 0o755);

const impls = ['ours', 'ref', 'oursExec'];
const hosts = Object.fromEntries(impls.map((k, i) => [k, mkns(`${tag}-h${i}`)]));
const conf = (k, i) => ({
  cniVersion: '1.0.0', name: `bench-${k}`, type: 'bridge', bridge: `fbr${i}`, isGateway: true, ipMasq: true,
  ipam: { type: 'host-local', dataDir: path.join(tmp, `ipam-${k}`), ranges: [[{ subnet: `10.${150 + i}.0.0/16` }]], routes: [{ dst: '0.0.0.0/0' }] },
});
const confs = Object.fromEntries(impls.map((k, i) => [k, conf(k, i)]));
const lo = { cniVersion: '1.0.0', name: 'lo', type: 'loopback' };

function exec(k, plugin, command, id, netns, stdin) {
  const env = { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: plugin === 'loopback' ? 'lo' : 'eth0', CNI_PATH: dirs[k] };
  const t0 = performance.now();
  return new Promise((resolve) => {
    const p = spawn('nsenter', [`--net=${hosts[k]}`, '--', path.join(dirs[k], plugin)], { env });
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('close', (code) => resolve({ code, out, err, ms: performance.now() - t0 }));
    p.stdin.end(JSON.stringify(stdin));
  });
}
async function chainAdd(k, id, netns) {
  const t0 = performance.now();
  const a = await exec(k, 'loopback', 'ADD', id, netns, lo);
  const b = await exec(k, 'bridge', 'ADD', id, netns, confs[k]);
  if (a.code || b.code) throw new Error(`${k} ADD ${id}: ${a.out}${a.err}${b.out}${b.err}`);
  return { ms: performance.now() - t0, bridgeMs: b.ms, ip: JSON.parse(b.out).ips[0].address };
}
async function chainDel(k, id, netns) {
  const t0 = performance.now();
  const b = await exec(k, 'bridge', 'DEL', id, netns, confs[k]);
  const a = await exec(k, 'loopback', 'DEL', id, netns, lo);
  if (a.code || b.code) throw new Error(`${k} DEL ${id}: ${a.out}${a.err}${b.out}${b.err}`);
  return { ms: performance.now() - t0, bridgeMs: b.ms };
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const f1 = (x) => x.toFixed(1);

function leftovers(k) {
  const host = hosts[k];
  const veths = JSON.parse(sh('nsenter', [`--net=${host}`, 'ip', '-j', 'link', 'show', 'type', 'veth']) || '[]').length;
  const dir = path.join(tmp, `ipam-${k}`, `bench-${k}`);
  const ips = existsSync(dir) ? readdirSync(dir).filter((f) => /^\d/.test(f)).length : 0;
  const nat = sh('nsenter', [`--net=${host}`, 'nft', 'list', 'ruleset']);
  const masq = nat.split('\n').filter((l) => /saddr .* masquerade/.test(l)).length;
  const chains = (nat.match(/chain CNI-[0-9a-f]{24}/g) ?? []).length;
  return { veths, ips, masqRules: masq, cniChains: chains };
}

// 1. start-up floor: VERSION (no netns, no netlink) and `node -e 0`
async function floor(k, plugin) {
  const xs = [];
  for (let i = 0; i < 15; i++) {
    const t0 = performance.now();
    spawnSync(path.join(dirs[k], plugin), [], { env: { CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}' });
    xs.push(performance.now() - t0);
  }
  return median(xs);
}

const res = Object.fromEntries(impls.map((k) => [k, { add: [], del: [], bAdd: [], bDel: [] }]));
console.error(`sequential: ${PODS} pods per implementation, interleaved`);
const NPODS = Math.max(PODS, BURST);
const pods = Array.from({ length: NPODS }, (_, i) => mkns(`${tag}-p${i}`));
const podsRef = Array.from({ length: NPODS }, (_, i) => mkns(`${tag}-r${i}`));
const podsExec = Array.from({ length: PODS }, (_, i) => mkns(`${tag}-e${i}`));
const podOf = { ours: pods, ref: podsRef, oursExec: podsExec };
// warm-up (page cache, first bridge creation) — not counted
for (const k of impls) { await chainAdd(k, 'warm', podOf[k][0]); await chainDel(k, 'warm', podOf[k][0]); }
for (let i = 0; i < PODS; i++) {
  for (const k of (i % 2 ? [...impls].reverse() : impls)) {
    const a = await chainAdd(k, `seq${i}`, podOf[k][i]);
    res[k].add.push(a.ms); res[k].bAdd.push(a.bridgeMs);
  }
}
for (let i = 0; i < PODS; i++) {
  for (const k of (i % 2 ? [...impls].reverse() : impls)) {
    const d = await chainDel(k, `seq${i}`, podOf[k][i]);
    res[k].del.push(d.ms); res[k].bDel.push(d.bridgeMs);
  }
}
const seqLeft = Object.fromEntries(impls.map((k) => [k, leftovers(k)]));

// 2. burst: BURST pods at once (ADD all concurrently, then DEL all)
console.error(`burst: ${BURST} pods at once per implementation`);
const burst = {};
for (const k of ['ours', 'ref']) {
  const ps = Array.from({ length: BURST }, (_, i) => podOf[k][i]);
  const t0 = performance.now();
  const adds = await Promise.all(ps.map((p, i) => chainAdd(k, `burst${i}`, p)));
  const addWall = performance.now() - t0;
  const ips = adds.map((a) => a.ip);
  const dup = ips.length - new Set(ips).size;
  const t1 = performance.now();
  const dels = await Promise.all(ps.map((p, i) => chainDel(k, `burst${i}`, p)));
  const delWall = performance.now() - t1;
  burst[k] = { addWall, delWall, addMed: median(adds.map((a) => a.ms)), delMed: median(dels.map((d) => d.ms)), dup, left: leftovers(k) };
}

// 3. per-step breakdown of our bridge ADD (test-only build with a timing seam)
async function buildTimingBridge() {
  const { build } = await import('esbuild');
  const { readFileSync, copyFileSync } = await import('node:fs');
  const dir = path.join(tmp, 'timing');
  mkdirSync(dir);
  await build({
    entryPoints: [path.join(root, 'test/lib/bins/timing-bridge.ts')], outfile: path.join(dir, 'bridge'), bundle: true, platform: 'node',
    target: 'node20', format: 'cjs', minifySyntax: true, logLevel: 'warning',
    banner: { js: ['#!/usr/bin/env node', 'var __imu=require("url").pathToFileURL(__filename).href;', 'var __flaxDir=__dirname;',
      loadAddonBanner('__dirname')].join('\n') },
    define: { 'import.meta.url': '__imu', 'process.env.FLAX_BUNDLED': '"1"' },
    plugins: [{ name: 'netlink-native', setup(b) { b.onLoad({ filter: /netlink[\\/]dist[\\/]raw\.js$/ }, (a) => ({ contents: readFileSync(a.path, 'utf8').replace(/require\('node-gyp-build'\)\([^)]*\)/, "__flaxLoadAddon('netlink.node')"), loader: 'js' })); } }],
  });
  for (const n of ['netlink.node', 'flax.node']) copyFileSync(path.join(OURS, n), path.join(dir, n));
  chmodSync(path.join(dir, 'bridge'), 0o755);
  return path.join(dir, 'bridge');
}
const timingBin = await buildTimingBridge();
const segs = {};
for (let i = 0; i < Math.min(PODS, 10); i++) {
  const env = { PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `timing${i}`, CNI_NETNS: pods[i], CNI_IFNAME: 'eth0', CNI_PATH: OURS };
  const r = spawnSync('nsenter', [`--net=${hosts.ours}`, '--', timingBin], { env, input: JSON.stringify(confs.ours), encoding: 'utf8' });
  const line = r.stderr.split('\n').find((l) => l.startsWith('FLAX_TIMING '));
  if (r.status !== 0 || !line) throw new Error(`timing ADD failed: ${r.stdout}${r.stderr}`);
  const t = JSON.parse(line.slice(12));
  let prev = t.loaded;
  (segs['node start + module load'] ??= []).push(t.loaded);
  for (const [name, ms] of t.marks) { (segs[name] ??= []).push(ms - prev); prev = ms; }
  (segs['print + exit'] ??= []).push(t.end - prev);
  await chainDel('ours', `timing${i}`, pods[i]);
}

const fl = {};
for (const k of ['ours', 'ref']) fl[k] = { bridge: await floor(k, 'bridge'), hostLocal: await floor(k, 'host-local'), loopback: await floor(k, 'loopback') };
const nodeFloor = median(Array.from({ length: 15 }, () => { const t0 = performance.now(); spawnSync(process.execPath, ['-e', '0']); return performance.now() - t0; }));

const row = (name, o, r) => `| ${name} | ${f1(o)} | ${f1(r)} | ${f1(o / r)}x |`;
const out = [];
out.push(`## bench-bridge (${new Date().toISOString()}, node ${process.version}, ${PODS} sequential pods, burst ${BURST})`, '');
out.push('Whole chain = loopback + bridge(host-local, isGateway, ipMasq), each plugin exec\'d under nsenter into a throwaway host netns. Medians in ms.', '');
out.push('| operation | flax | reference v1.1.1 | flax/ref |', '|---|---|---|---|');
out.push(row('chain ADD (sequential)', median(res.ours.add), median(res.ref.add)));
out.push(row('chain DEL (sequential)', median(res.ours.del), median(res.ref.del)));
out.push(row('bridge ADD alone', median(res.ours.bAdd), median(res.ref.bAdd)));
out.push(row('bridge DEL alone', median(res.ours.bDel), median(res.ref.bDel)));
out.push(row(`burst ${BURST}: ADD wall`, burst.ours.addWall, burst.ref.addWall));
out.push(row(`burst ${BURST}: DEL wall`, burst.ours.delWall, burst.ref.delWall));
out.push(row(`burst ${BURST}: ADD median per pod`, burst.ours.addMed, burst.ref.addMed));
out.push(row(`burst ${BURST}: DEL median per pod`, burst.ours.delMed, burst.ref.delMed));
out.push('', `flax with host-local forced to exec (no in-process IPAM): chain ADD ${f1(median(res.oursExec.add))} ms, DEL ${f1(median(res.oursExec.del))} ms`);
out.push('', '### where the time goes (start-up floor = VERSION, no netns / netlink / IPAM)', '');
out.push('| plugin | flax VERSION | ref VERSION |', '|---|---|---|');
for (const p of ['bridge', 'host-local', 'loopback']) out.push(`| ${p} | ${f1(fl.ours[p === 'host-local' ? 'hostLocal' : p])} | ${f1(fl.ref[p === 'host-local' ? 'hostLocal' : p])} |`);
out.push('', `node -e 0: ${f1(nodeFloor)} ms. flax bridge ADD work beyond start-up: ${f1(median(res.ours.bAdd) - fl.ours.bridge)} ms (ref: ${f1(median(res.ref.bAdd) - fl.ref.bridge)} ms); DEL: ${f1(median(res.ours.bDel) - fl.ours.bridge)} ms (ref: ${f1(median(res.ref.bDel) - fl.ref.bridge)} ms).`);
out.push('', '### flax bridge ADD, per step (median ms, in-process timestamps; step = work since the previous mark)', '');
out.push('| segment | ms |', '|---|---|');
for (const [k, v] of Object.entries(segs)) out.push(`| ${k} | ${f1(median(v))} |`);
out.push('', '### correctness', '');
for (const k of ['ours', 'ref']) out.push(`- ${k}: burst duplicate addresses ${burst[k].dup}; left after burst DEL ${JSON.stringify(burst[k].left)}; left after sequential DEL ${JSON.stringify(seqLeft[k])}`);
console.log(out.join('\n'));
