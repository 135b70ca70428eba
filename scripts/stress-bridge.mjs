#!/usr/bin/env node
// Stress: bridge(isGateway, ipMasq) + host-local of flax vs the reference
// plugins (/usr/lib/cni) under concurrency and kill -9, the figures of issue 8.
//   node scripts/stress-bridge.mjs [--concurrent 200] [--kills 100] [--parallel 32]
//                                  [--only ours|ref] [--seed 1] [--json]
// 1. concurrency run: N pod ADDs at once (at most --parallel processes), a
//    second wave where the DELs of half of them overlap N/2 new ADDs, 10 pairs
//    of concurrent ADDs of one container id into two netns, then a DEL of
//    every pod (also those whose ADD failed, as a runtime does).
// 2. kill run: bridge ADDs and host-local-only ADDs kill -9ed (whole process
//    group) after a random delay in [0, median ADD time], one at a time (so an
//    ADD takes its measured time), then a DEL of each.
// Counts failures (by code and message), duplicate addresses, reservations
// lost and what is left behind. Runs as root; every "host" and pod is a
// throwaway netns (the machine's root netns is never touched); netns, temp
// dirs and child processes are removed on exit, also on failure or SIGINT.
// Exits 0 once it ran to completion: the figures are the output.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = 'usage: node scripts/stress-bridge.mjs [--concurrent N] [--kills N] [--parallel N] [--only ours|ref] [--seed N] [--json]';
function parseArgs(argv) {
  const o = { concurrent: 200, kills: 100, parallel: 32, only: null, seed: 1, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') { o.json = true; continue; }
    if (a === '--help' || a === '-h') { console.log(USAGE); process.exit(0); }
    const key = { '--concurrent': 'concurrent', '--kills': 'kills', '--parallel': 'parallel', '--only': 'only', '--seed': 'seed' }[a];
    const v = argv[++i];
    if (!key || v === undefined) { console.error(`${USAGE}\n(bad argument: ${a})`); process.exit(2); }
    if (key === 'only') {
      if (v !== 'ours' && v !== 'ref') { console.error(`${USAGE}\n(--only takes ours or ref)`); process.exit(2); }
      o.only = v;
    } else {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || (key === 'parallel' && n < 1)) { console.error(`${USAGE}\n(${a} takes an integer${key === 'parallel' ? ' >= 1' : ' >= 0'})`); process.exit(2); }
      o[key] = n;
    }
  }
  return o;
}
const opt = parseArgs(process.argv.slice(2));
const COMMAND = ['node', 'scripts/stress-bridge.mjs', ...process.argv.slice(2)].join(' ');
const IMPLS = opt.only ? [opt.only] : ['ours', 'ref'];
const DIRS = { ours: path.join(root, 'dist/bin'), ref: '/usr/lib/cni' };
const LABEL = { ours: 'flax', ref: 'reference v1.1.1' };
const PAIRS = opt.concurrent > 0 ? 10 : 0;
const KILL_PARALLEL = 1; // one at a time: each ADD takes its unloaded (measured) time, so the delays span the whole ADD
const EXEC_TIMEOUT_MS = 60_000;
for (const k of IMPLS) for (const p of ['bridge', 'host-local']) {
  if (!existsSync(path.join(DIRS[k], p))) { console.error(`missing ${DIRS[k]}/${p}: ${k === 'ours' ? 'npm run build' : 'apt-get install containernetworking-plugins'}`); process.exit(1); }
}
if (process.getuid?.() !== 0) { console.error('stress-bridge needs root (ip netns, nsenter)'); process.exit(1); }

// ---------------------------------------------------------------- lifecycle
const tmp = mkdtempSync(path.join(tmpdir(), 'flax-stress-br-'));
const tag = `fs${process.pid % 10000}`;
const netnsAlive = new Set();
const children = new Set();
function cleanup() {
  for (const p of children) { try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ } }
  for (const n of netnsAlive) spawnSync('ip', ['netns', 'del', n]);
  netnsAlive.clear();
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) process.on(sig, () => process.exit(128 + n));
process.on('unhandledRejection', (e) => { console.error('stress-bridge: internal error:', e); process.exit(1); });
const log = (m) => console.error(`[${((performance.now()) / 1000).toFixed(1)}s] ${m}`);

// ------------------------------------------------------------------ helpers
function mulberry32(a) {
  return () => { a |= 0; a = (a + 0x6d2b79f5) | 0; let t = Math.imul(a ^ (a >>> 15), 1 | a); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}
const rng = mulberry32(opt.seed);
const median = (xs) => { if (!xs.length) return NaN; const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const range = (n, from = 0) => Array.from({ length: n }, (_, i) => from + i);

/** Runs fn over items with at most n in flight; results in item order. */
async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => { while (next < items.length) { const i = next++; out[i] = await fn(items[i], i); } };
  await Promise.all(range(Math.min(n, items.length)).map(worker));
  return out;
}

/** spawn in its own process group; never rejects. killAfterMs: SIGKILL the group then. */
function run(cmd, args, { env = process.env, input, killAfterMs, timeoutMs = EXEC_TIMEOUT_MS } = {}) {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let out = '', err = '', killed = false, timedOut = false;
    let p;
    try { p = spawn(cmd, args, { env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] }); } catch (e) { resolve({ code: -1, signal: null, out, err: String(e), ms: 0, killed, timedOut }); return; }
    children.add(p);
    const killGroup = () => { try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ } };
    const tk = killAfterMs === undefined ? null : setTimeout(() => { killed = true; killGroup(); }, killAfterMs);
    const tt = setTimeout(() => { timedOut = true; killGroup(); }, timeoutMs);
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.stdin.on('error', () => {});
    p.on('error', (e) => { err += String(e); });
    p.on('close', (code, signal) => {
      clearTimeout(tk); clearTimeout(tt); children.delete(p);
      resolve({ code, signal, out, err, ms: performance.now() - t0, killed: killed && signal === 'SIGKILL', timedOut });
    });
    p.stdin.end(input ?? '');
  });
}
async function sh(cmd, args) {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.err.trim()}`);
  return r.out;
}
async function mkns(names) {
  await pool(names, 8, async (n) => { await sh('ip', ['netns', 'add', n]); netnsAlive.add(n); });
  return names.map((n) => `/run/netns/${n}`);
}
async function rmns(paths) {
  await pool(paths, 8, async (p) => { const n = path.basename(p); await run('ip', ['netns', 'del', n]); netnsAlive.delete(n); });
}
const inNs = (ns, cmd, args) => run('nsenter', [`--net=${ns}`, '--', cmd, ...args]);

/** One error message, with ids, addresses, names and paths replaced, for grouping. */
function normMsg(s) {
  return String(s).replace(/Try `iptables -h'.*/s, '').replace(/\s+/g, ' ').trim()
    .replace(/running \[(?:\/usr\/s?bin\/)?(\S+ \S+ \S+ \S+)[^\]]*\]/g, 'running [$1 …]')
    .replace(/\/run\/netns\/\S+/g, '<netns>').replace(new RegExp(`${tmp}\\S*`, 'g'), '<dir>')
    .replace(/st-[a-z]+-?\d+/g, '<id>').replace(/\b\d{1,3}(\.\d{1,3}){3}(\/\d+)?\b/g, '<ip>')
    .replace(/\bveth[0-9a-f]+\b/g, 'veth<x>').replace(/\b[0-9a-f]{8,}\b/g, '<hex>').replace(/\bpid \d+/g, 'pid <n>')
    .replace(/^(.{62}).{4,}(.{44})$/, '$1 … $2'); // the head and the reason, usually at the end
}
/** ok, or a one-line reason: "code 999: msg", "exit 1: stderr", "killed", "timeout". */
function outcome(r) {
  if (r.killed) return { ok: false, killed: true, why: 'killed' };
  if (r.timedOut) return { ok: false, why: `timeout after ${EXEC_TIMEOUT_MS / 1000}s` };
  let j = null;
  try { j = JSON.parse(r.out); } catch { /* not JSON */ }
  if (r.code === 0) return { ok: true, json: j };
  if (j && j.code !== undefined) return { ok: false, why: `code ${j.code}: ${normMsg(j.msg ?? '')}` };
  const line = (r.err.trim() || r.out.trim()).split('\n')[0] ?? '';
  return { ok: false, why: `exit ${r.code ?? r.signal}: ${normMsg(line)}` };
}
const countBy = (xs) => xs.reduce((m, x) => (m[x] = (m[x] ?? 0) + 1, m), {});

// --------------------------------------------------------------- the plugins
function netConf(k, name, subnet, dataDir) {
  return {
    cniVersion: '1.0.0', name, type: 'bridge', bridge: 'fsbr0', isGateway: true, ipMasq: true,
    ipam: { type: 'host-local', dataDir, ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
  };
}
/** Execs a plugin as a runtime does, under nsenter into the implementation's host netns. */
function plugin(env, which, command, id, podNs, conf, extra = {}) {
  const e = { PATH: process.env.PATH, TMPDIR: env.tmpDir, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: podNs, CNI_IFNAME: 'eth0', CNI_PATH: env.dir };
  return run('nsenter', [`--net=${env.host}`, '--', path.join(env.dir, which)], { env: e, input: JSON.stringify(conf), ...extra });
}
/** The smallest subnet of 10.<b>.0.0 holding `need` pods (and a gateway), /24 at least. */
function subnetFor(b, need) {
  let prefix = 24;
  while (prefix > 16 && 2 ** (32 - prefix) - 3 < need) prefix--;
  return `10.${b}.0.0/${prefix}`;
}

async function podAddr(ns) {
  const r = await inNs(ns, 'ip', ['-j', '-4', 'addr', 'show', 'dev', 'eth0']);
  if (r.code !== 0) return { eth0: false, ip: null };
  try { const a = JSON.parse(r.out)[0]?.addr_info?.[0]; return { eth0: true, ip: a ? a.local : null }; } catch { return { eth0: true, ip: null }; }
}
function reservationOwner(netDir, ip) {
  try { return readFileSync(path.join(netDir, ip), 'utf8').split(/\r?\n/)[0].trim(); } catch { return null; }
}

/** What is left in a host netns and the data dirs of its networks. */
async function leftovers(env, netDirs) {
  const L = { files: [], zeroLen: [], ownerless: [], tmpFiles: [], veths: [], masq: [], iptRules: [], iptChains: [], bridgeAddrs: [], pluginTmp: [] };
  for (const d of netDirs) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) {
      if (f === 'lock' || f.startsWith('last_reserved_ip.')) continue;
      const p = path.join(d, f);
      let st; try { st = statSync(p); } catch { continue; }
      const content = st.isFile() ? readFileSync(p, 'utf8') : '';
      const owner = content.split(/\r?\n/)[0].trim();
      const desc = `${path.basename(d)}/${f} (${st.size} B${owner ? `, ${owner}` : ''})`;
      L.files.push(desc);
      if (st.size === 0) L.zeroLen.push(desc); else if (!owner) L.ownerless.push(desc);
    }
  }
  // flax's temporary reservation files (the index directory beside the networks)
  const walk = (dir) => { for (const e of readdirSync(dir, { withFileTypes: true })) { const p = path.join(dir, e.name); if (e.isDirectory()) walk(p); else if (e.name.startsWith('.tmp-')) L.tmpFiles.push(path.relative(env.dataRoot, p)); } };
  if (existsSync(env.dataRoot)) walk(env.dataRoot);
  if (existsSync(env.tmpDir)) L.pluginTmp.push(...readdirSync(env.tmpDir));
  const veth = await inNs(env.host, 'ip', ['-j', 'link', 'show', 'type', 'veth']);
  try { L.veths = JSON.parse(veth.out || '[]').map((l) => l.ifname); } catch { L.veths = ['? ' + normMsg(veth.err)]; }
  const nft = await inNs(env.host, 'nft', ['list', 'ruleset']);
  L.masq = nft.out.split('\n').filter((l) => /\bmasquerade\b/.test(l)).map((l) => l.trim());
  const ipt = await inNs(env.host, 'iptables-save', ['-t', 'nat']);
  const iptLines = ipt.out.split('\n');
  L.iptRules = iptLines.filter((l) => l.startsWith('-A ') && /CNI-|name: /.test(l)).map((l) => l.trim());
  L.iptChains = iptLines.filter((l) => l.startsWith(':CNI-')).map((l) => l.split(' ')[0].slice(1));
  const br = await inNs(env.host, 'ip', ['-j', '-4', 'addr', 'show', 'dev', 'fsbr0']);
  try { L.bridgeAddrs = (JSON.parse(br.out || '[]')[0]?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`); } catch { /* no bridge */ }
  return L;
}
const leftoverRows = (L) => ({
  'left: reservation files': L.files.length,
  'left:   of which zero-length': L.zeroLen.length,
  'left:   of which non-empty, no owner': L.ownerless.length,
  'left: flax temp reservation files (.tmp-*; flax gc removes them)': L.tmpFiles.length,
  'left: host veths': L.veths.length,
  'left: nft masquerade rules': L.masq.length,
  'left: iptables nat CNI rules': L.iptRules.length,
  'left: iptables CNI- chains': L.iptChains.length,
  'left: plugin temp dirs (TMPDIR)': L.pluginTmp.length,
});
const leftoverDetails = (L) => Object.fromEntries(Object.entries({
  'reservation files': L.files, 'flax temp files': L.tmpFiles, 'host veths': L.veths, 'nft masquerade rules': L.masq,
  'iptables nat rules': L.iptRules, 'iptables chains': L.iptChains, 'plugin temp dirs': L.pluginTmp,
}).filter(([, v]) => v.length));

async function makeEnv(k, phase, subnetByte, need, podCount) {
  const dataRoot = path.join(tmp, `${phase}-${k}`, 'data');
  const tmpDir = path.join(tmp, `${phase}-${k}`, 'tmp');
  mkdirSync(tmpDir, { recursive: true });
  const c = phase[0];
  const [host] = await mkns([`${tag}-${c}${k[0]}h`]);
  const pods = await mkns(range(podCount).map((i) => `${tag}-${c}${k[0]}${i}`));
  const name = `st-${phase}-${k}`;
  const conf = netConf(k, name, subnetFor(subnetByte, need), dataRoot);
  return { k, dir: DIRS[k], host, pods, dataRoot, tmpDir, conf, netDir: path.join(dataRoot, name) };
}

// ---------------------------------------------------------- 1. concurrency
async function concurrencyRun(k, i) {
  const N = opt.concurrent, W = Math.floor(N / 2), P = opt.parallel;
  const env = await makeEnv(k, 'conc', 160 + i, N + W + 2 * PAIRS + 8, N + W + 2 * PAIRS);
  const id = (j) => `st-c${j}`;
  const addFail = [], delFail = [], pairFail = [];
  const attempted = new Map(); // id -> [netns, ...] (every ADD tried: the runtime DELs each)
  const live = new Map(); // key id|netns -> { id, ns, ip }
  const add = async (cid, ns, fails = addFail) => {
    (attempted.get(cid) ?? attempted.set(cid, []).get(cid)).push(ns);
    const o = outcome(await plugin(env, 'bridge', 'ADD', cid, ns, env.conf));
    if (o.ok) live.set(`${cid}|${ns}`, { id: cid, ns, ip: o.json?.ips?.[0]?.address?.split('/')[0] });
    else fails.push(o.why);
    return o;
  };
  const del = async (cid, ns) => {
    const o = outcome(await plugin(env, 'bridge', 'DEL', cid, ns, env.conf));
    live.delete(`${cid}|${ns}`);
    if (!o.ok) delFail.push(o.why);
    return o;
  };
  const M = {};
  log(`${k}: wave 1, ${N} ADDs (${P} at a time)`);
  let t0 = performance.now();
  await pool(range(N), P, (j) => add(id(j), env.pods[j]));
  M['wave 1: ADD wall (s)'] = Number(((performance.now() - t0) / 1000).toFixed(1));
  log(`${k}: wave 2, ${W} DELs overlapping ${W} new ADDs`);
  t0 = performance.now();
  const wave2 = range(W).flatMap((j) => [() => del(id(j), env.pods[j]), () => add(id(N + j), env.pods[N + j])]);
  await pool(wave2, P, (f) => f());
  M['wave 2: DEL+ADD wall (s)'] = Number(((performance.now() - t0) / 1000).toFixed(1));
  for (let j = 0; j < W; j++) attempted.delete(id(j)); // DELed in wave 2 already
  log(`${k}: ${PAIRS} pairs of concurrent ADDs of one container id`);
  const pairBase = N + W;
  const pairs = await pool(range(PAIRS), P, async (j) => {
    const cid = `st-dup${j}`, a = env.pods[pairBase + 2 * j], b = env.pods[pairBase + 2 * j + 1];
    const [oa, ob] = await Promise.all([add(cid, a, pairFail), add(cid, b, pairFail)]);
    return { cid, winners: [[oa, a], [ob, b]].filter(([o]) => o.ok).map(([, ns]) => ns) };
  });
  // the state of every pod: the address it really has, and the file of that address
  log(`${k}: checking ${env.pods.length} pod netns`);
  const seen = await pool(env.pods, P, podAddr);
  const byNs = new Map(env.pods.map((ns, j) => [ns, seen[j]]));
  const liveList = [...live.values()];
  const ips = liveList.map((p) => byNs.get(p.ns)?.ip).filter(Boolean);
  let lostAll = 0;
  for (const p of liveList) { const ip = byNs.get(p.ns)?.ip; if (ip && reservationOwner(env.netDir, ip) !== p.id) lostAll++; }
  let pairLost = 0, pairBoth = 0, pairNone = 0;
  for (const pr of pairs) {
    if (pr.winners.length === 2) pairBoth++;
    if (pr.winners.length === 0) pairNone++;
    for (const ns of pr.winners) { const ip = byNs.get(ns)?.ip; if (ip && reservationOwner(env.netDir, ip) !== pr.cid) { pairLost++; break; } }
  }
  const failedNs = new Set([...attempted.entries()].flatMap(([cid, nss]) => nss.filter((ns) => !live.has(`${cid}|${ns}`))));
  M['live pods before the final DEL'] = liveList.length;
  M['live pods without their address'] = liveList.filter((p) => !byNs.get(p.ns)?.ip).length;
  M['duplicate addresses among live pods'] = ips.length - new Set(ips).size;
  M['lost reservations (live pod, file missing or names another)'] = lostAll;
  M[`same-id pairs: winner's reservation lost (of ${PAIRS})`] = pairLost;
  M[`same-id pairs: both ADDs succeeded (of ${PAIRS})`] = pairBoth;
  M[`same-id pairs: both ADDs failed (of ${PAIRS})`] = pairNone;
  M['failed ADDs that left eth0 in the pod'] = [...failedNs].filter((ns) => byNs.get(ns)?.eth0).length;
  log(`${k}: DEL of every pod (${[...attempted.values()].flat().length})`);
  t0 = performance.now();
  const dels = [...attempted.entries()];
  await pool(dels, P, async ([cid, nss]) => { for (const ns of nss) await del(cid, ns); }); // one id's sandboxes one after the other
  M['final DEL wall (s)'] = Number(((performance.now() - t0) / 1000).toFixed(1));
  const L = await leftovers(env, [env.netDir]);
  await rmns([...env.pods, env.host]);
  return {
    rows: {
      'ADD failures (waves 1, 2)': addFail.length, ...prefixed('ADD failure', countBy(addFail)),
      'same-id pairs: failed ADDs': pairFail.length, ...prefixed('same-id pair failure', countBy(pairFail)),
      'DEL failures': delFail.length, ...prefixed('DEL failure', countBy(delFail)), ...M, ...leftoverRows(L) },
    leftovers: leftoverDetails(L),
  };
}
const prefixed = (p, m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [`${p}: ${k}`, v]));

// ----------------------------------------------------------------- 2. kills
async function killRun(k, i) {
  const K = opt.kills, nHost = Math.floor(K * 0.4), nBridge = K - nHost, CAL = 9;
  const env = await makeEnv(k, 'kill', 170 + i, K + 2 * CAL + 8, K + 1);
  const ipamConf = { ...env.conf, name: `${env.conf.name}-ipam` }; // same config, own network: its files are counted apart
  const ipamDir = path.join(env.dataRoot, ipamConf.name);
  const M = {};
  // typical ADD time, unloaded (the first ADD, which makes the bridge, is not counted)
  const cal = { bridge: [], 'host-local': [] };
  const pod0 = env.pods[K];
  for (const [which, conf] of [['bridge', env.conf], ['host-local', ipamConf]]) {
    for (let j = 0; j <= CAL; j++) {
      const a = await plugin(env, which, 'ADD', `st-cal${j}`, pod0, conf);
      if (j) cal[which].push(a.ms);
      await plugin(env, which, 'DEL', `st-cal${j}`, pod0, conf);
    }
  }
  const typical = { bridge: median(cal.bridge), 'host-local': median(cal['host-local']) };
  M['typical bridge ADD (ms, median of 9)'] = Math.round(typical.bridge);
  M['typical host-local ADD (ms, median of 9)'] = Math.round(typical['host-local']);
  log(`${k}: ${nBridge} bridge + ${nHost} host-local ADDs killed after [0, ${typical.bridge.toFixed(0)}|${typical['host-local'].toFixed(0)}] ms (${KILL_PARALLEL} at a time)`);
  const jobs = range(K).map((j) => ({ j, which: j < nBridge ? 'bridge' : 'host-local', delay: 0 }));
  for (const job of jobs) job.delay = rng() * typical[job.which]; // drawn in order: the same seed gives the same delays
  const res = await pool(jobs, KILL_PARALLEL, async (job) => {
    const o = outcome(await plugin(env, job.which, 'ADD', `st-k${job.j}`, env.pods[job.j], job.which === 'bridge' ? env.conf : ipamConf, { killAfterMs: job.delay }));
    return { ...job, o };
  });
  for (const which of ['bridge', 'host-local']) {
    const r = res.filter((x) => x.which === which);
    M[`${which} ADDs: killed`] = r.filter((x) => x.o.killed).length;
    M[`${which} ADDs: finished before the kill, ok`] = r.filter((x) => x.o.ok).length;
    M[`${which} ADDs: finished before the kill, failed`] = r.filter((x) => !x.o.ok && !x.o.killed).length;
  }
  const addFail = res.filter((x) => !x.o.ok && !x.o.killed).map((x) => `${x.which}: ${x.o.why}`);
  const before = await leftovers(env, [env.netDir, ipamDir]);
  M['after kills, before DEL: reservation files'] = before.files.length;
  M['after kills, before DEL: zero-length reservation files'] = before.zeroLen.length;
  log(`${k}: DEL of every pod`);
  const delFail = [];
  await pool(jobs, opt.parallel, async (job) => {
    const o = outcome(await plugin(env, job.which, 'DEL', `st-k${job.j}`, env.pods[job.j], job.which === 'bridge' ? env.conf : ipamConf));
    if (!o.ok) delFail.push(`${job.which}: ${o.why}`);
  });
  const L = await leftovers(env, [env.netDir]);
  const LI = await leftovers(env, [ipamDir]);
  const rows = { ...M, 'ADD failures (finished, not killed)': addFail.length, ...prefixed('ADD failure', countBy(addFail)), 'DEL failures': delFail.length, ...prefixed('DEL failure', countBy(delFail)) };
  for (const [key, v] of Object.entries(leftoverRows(L))) {
    if (/^left: reservation files|zero-length|no owner/.test(key)) rows[`${key} (bridge net)`] = v; else rows[key] = v;
  }
  const ipamRows = leftoverRows(LI);
  for (const key of ['left: reservation files', 'left:   of which zero-length', 'left:   of which non-empty, no owner']) rows[`${key} (host-local-only net)`] = ipamRows[key];
  rows['left: bridge addresses beyond the gateway'] = Math.max(0, L.bridgeAddrs.length - 1);
  const details = leftoverDetails(L);
  if (LI.files.length) details['reservation files (host-local-only net)'] = LI.files;
  delete details['reservation files'];
  if (L.files.length) details['reservation files (bridge net)'] = L.files;
  if (L.bridgeAddrs.length > 1) details['bridge addresses'] = L.bridgeAddrs;
  await rmns([...env.pods, env.host]);
  return { rows, leftovers: details };
}

// ------------------------------------------------------------------- output
function table(title, runs) {
  const keys = []; // the union, a row missing from the first column placed after its predecessor in its own column
  for (const k of IMPLS) {
    let prev = -1;
    for (const key of Object.keys(runs[k].rows)) {
      const at = keys.indexOf(key);
      if (at >= 0) { prev = at; continue; }
      keys.splice(++prev, 0, key);
    }
  }
  const cell = (k, key) => (runs[k] ? String(runs[k].rows[key] ?? (/: /.test(key) && /failure/.test(key) ? 0 : '-')) : 'skipped');
  const out = [`### ${title}`, '', `| metric | ${LABEL.ours} | ${LABEL.ref} |`, '|---|---|---|'];
  for (const key of keys) out.push(`| ${key.replace(/\|/g, '\\|')} | ${cell('ours', key)} | ${cell('ref', key)} |`);
  for (const k of IMPLS) {
    const d = Object.entries(runs[k].leftovers);
    out.push('', `${LABEL[k]}: ${d.length ? 'left behind:' : 'nothing left behind.'}`);
    for (const [what, list] of d) out.push(`  - ${what}: ${list.slice(0, 8).join('; ')}${list.length > 8 ? `; … and ${list.length - 8} more` : ''}`);
  }
  return out.join('\n');
}

const result = { command: COMMAND, seed: opt.seed, node: process.version, date: new Date().toISOString(), parallel: opt.parallel, runs: {} };
if (opt.concurrent > 0) {
  result.runs.concurrency = {};
  for (const [i, k] of IMPLS.entries()) result.runs.concurrency[k] = await concurrencyRun(k, i);
}
if (opt.kills > 0) {
  result.runs.kills = {};
  for (const [i, k] of IMPLS.entries()) result.runs.kills[k] = await killRun(k, i);
}
if (opt.json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  const out = [`## stress-bridge (${result.date}, node ${process.version}, seed ${opt.seed})`, '', `command: \`${COMMAND}\``, ''];
  out.push('bridge (isGateway, ipMasq) + host-local, each plugin exec\'d under nsenter into a throwaway host netns per implementation; pods are throwaway netns.', '');
  if (result.runs.concurrency) out.push(table(`concurrency: ${opt.concurrent} ADDs, then ${Math.floor(opt.concurrent / 2)} DELs overlapping ${Math.floor(opt.concurrent / 2)} ADDs, ${PAIRS} same-id ADD pairs, then DEL all (${opt.parallel} at a time)`, result.runs.concurrency), '');
  if (result.runs.kills) out.push(table(`kill -9: ${opt.kills - Math.floor(opt.kills * 0.4)} bridge ADDs + ${Math.floor(opt.kills * 0.4)} host-local-only ADDs, process group killed after a random delay in [0, typical ADD], then DEL of each`, result.runs.kills), '');
  console.log(out.join('\n'));
}
process.exit(0);
