#!/usr/bin/env node
// flaxd's memory footprint (issue 24): VmRSS of the flaxd process in a
// namespace node, against kube-flannel's budget, for dist/bin and dist/pkg:
//   file     overlay only, file lease store, --idle s after "running"
//   kube     overlay only, kube store (an in-process fake API server:
//            test/lib/agent/kube-fake-api.ts, bundled here with esbuild)
//   etcd     overlay only, etcd store (Debian's etcd in the node, when
//            installed; no goal in issue 24: conf/flax-etcd.yml's request)
//   server   overlay + CNI server (file store), idle
//   peak     VmHWM over a --pods pod burst through the CNI server (each pod:
//            loopback > flannel (bridge + host-local) > portmap ADD, all pods
//            at once, then DEL, as kube-flannel's conflist under a runtime)
//   after    RSS --after s after that burst (its DELs done)
// Goals: file ≤ 50 MiB, kube ≤ 60 MiB, server ≤ 80 MiB, after ≤ 1.25× server.
// --peers N: N peer leases in the store before the burst (the DaemonSet's
// memory limit: 1000 peers + 200 pods). Root only; the machine's root netns
// and CNI state are never touched (one node netns, pods in throwaway ones).
//
//   node scripts/bench-footprint.mjs [--dist bin,pkg] [--idle 10] [--after 60] [--pods 100] [--peers 0] [--modes file,kube,server] [--detail]
// --detail: where the RSS of each file-store flaxd is (anonymous, file; its largest mappings), on stderr
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { benchScratch } from './bench-scratch.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : def; };
const IDLE = Number(arg('idle', '10'));
const AFTER = Number(arg('after', '60'));
const PODS = Number(arg('pods', '100'));
const PEERS = Number(arg('peers', '0'));
const HAVE_ETCD = spawnSync('sh', ['-c', 'command -v etcd']).status === 0;
const MODES = arg('modes', `file,kube,${HAVE_ETCD ? 'etcd,' : ''}server`).split(',');
const dists = arg('dist', existsSync(path.join(root, 'dist/pkg/flaxd')) ? 'bin,pkg' : 'bin').split(',').map((d) => (d.includes('/') ? path.resolve(d) : path.join(root, 'dist', d)));
const MiB = 1024 * 1024;
const GOALS = { file: 50, kube: 60, server: 80 };
if (process.getuid() !== 0) { console.error('bench-footprint: run as root'); process.exit(1); }
for (const d of dists) if (!existsSync(path.join(d, 'flaxd'))) { console.error(`bench-footprint: ${d}/flaxd missing (npm run build / npm run package)`); process.exit(1); }

const { tag, tmp, sh, addNs, children, enter } = benchScratch('flaxfp', 'flax-bench-fp-');
let api;

// the node: lo, eth0 (a veth to an underlay netns) 192.168.77.11/24, ip_forward; this thread joins it (spawns inherit it)
const nodeNs = `${tag}-node`;
const node = addNs('node');
sh('ip', ['-n', nodeNs, 'link', 'set', 'lo', 'up']);
addNs('ul');
sh('ip', ['-n', nodeNs, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'ul1', 'netns', `${tag}-ul`]);
sh('ip', ['-n', `${tag}-ul`, 'link', 'set', 'ul1', 'up']);
sh('ip', ['-n', nodeNs, 'addr', 'add', '192.168.77.11/24', 'dev', 'eth0']);
sh('ip', ['-n', nodeNs, 'link', 'set', 'eth0', 'up']);
sh('ip', ['netns', 'exec', nodeNs, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
enter(node, path.join(root, 'dist/bin/flax.node'));

const status = (pid) => readFileSync(`/proc/${pid}/status`, 'utf8');
/** --detail: where a process's RSS is (anonymous, file-backed; the largest mappings), on stderr */
function detail(what, pid) {
  if (!process.argv.includes('--detail')) return;
  const f = (k) => `${k} ${(kib(pid, k) / MiB).toFixed(1)}`;
  const maps = [];
  let cur;
  for (const l of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const h = /^([0-9a-f]+-[0-9a-f]+ \S+) \S+ \S+ \S+\s*(.*)$/.exec(l);
    if (h) maps.push((cur = { name: h[2] || '[anon]', range: h[1], rss: 0 }));
    const m = /^Rss:\s+(\d+)/.exec(l);
    if (m && cur) cur.rss += Number(m[1]);
  }
  const by = {};
  for (const m of maps) by[m.name] = (by[m.name] ?? 0) + m.rss;
  const top = Object.entries(by).sort((a, b) => b[1] - a[1]).slice(0, 6).map(([n, k]) => `${path.basename(n)} ${(k / 1024).toFixed(1)}`);
  const exe = maps.filter((m) => /\/(flax|node)$/.test(m.name) && m.rss > 512).map((m) => `${m.range} ${(m.rss / 1024).toFixed(1)}`);
  console.error(`${what}: ${['VmRSS', 'RssAnon', 'RssFile', 'RssShmem'].map(f).join(', ')} MiB; largest: ${top.join(', ')}; the executable's mappings: ${exe.join(', ')}`);
}
const kib = (pid, field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status(pid))[1]) * 1024;
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

const NET = PEERS ? { Network: '10.0.0.0/8', Backend: { Type: 'vxlan' } } : { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } };

/** flaxd in the node; resolves once it logs "running". */
async function startFlaxd(dist, run, extra, netConfFile = true) {
  const dir = path.join(tmp, run);
  mkdirSync(path.join(dir, 'leases'), { recursive: true });
  // etcd mode: no file, so that the config comes from etcd as flanneld's
  if (netConfFile) writeFileSync(path.join(dir, 'net-conf.json'), JSON.stringify(NET));
  const p = spawn(path.join(dist, 'flaxd'), ['--iface', 'eth0', '--lease-dir', path.join(dir, 'leases'), '--subnet-file', path.join(dir, 'subnet.env'),
    '--net-config-path', path.join(dir, 'net-conf.json'), '--gc-interval', '0', '-v', '0', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(p);
  let log = '';
  await new Promise((resolve, reject) => {
    p.stderr.on('data', (d) => { log += d; if (/running$/m.test(log)) resolve(); });
    p.once('exit', (c) => reject(new Error(`flaxd (${run}) exited ${c}: ${log}`)));
  });
  return { p, dir, log: () => log };
}
async function stop(f) {
  f.p.kill('SIGTERM');
  await new Promise((r) => (f.p.exitCode !== null ? r() : f.p.once('exit', r)));
  children.delete(f.p);
}

/** Debian's etcd on 127.0.0.1 of the node (this thread's netns), the network config under its prefix. */
let etcdProc;
async function etcdUrl() {
  const url = 'http://127.0.0.1:23790';
  if (etcdProc) return url;
  const peer = 'http://127.0.0.1:23800';
  etcdProc = spawn('etcd', ['--name', 'fp', '--data-dir', path.join(tmp, 'etcd'), '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `fp=${peer}`, '--log-level', 'warn'], { stdio: 'ignore' });
  children.add(etcdProc);
  const ctl = (...a) => spawnSync('etcdctl', ['--endpoints', url, '--command-timeout', '2s', ...a], { encoding: 'utf8' });
  for (let i = 0; ctl('endpoint', 'health').status !== 0; i++) {
    if (i > 100) throw new Error('etcd did not come up');
    await sleep(0.1);
  }
  if (ctl('put', '/coreos.com/network/config', JSON.stringify(NET)).status !== 0) throw new Error('etcdctl put config failed');
  return url;
}

async function fakeApi() {
  if (api) return api;
  const { build } = await import('esbuild');
  const out = path.join(tmp, 'kube-fake-api.mjs');
  await build({ entryPoints: [path.join(root, 'test/lib/agent/kube-fake-api.ts')], bundle: true, platform: 'node', format: 'esm', outfile: out, logLevel: 'warning' });
  const { FakeKubeApi } = await import(pathToFileURL(out).href);
  api = new FakeKubeApi();
  await api.start();
  api.addNode({ metadata: { name: 'node-1' }, spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] },
    status: { conditions: [{ type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated' }] } });
  return api;
}

// ---- the pods: kube-flannel's chain through the static clients --------------------------
const pods = [];
function call(dist, plugin, env, conf) {
  return new Promise((resolve, reject) => {
    const p = spawn(path.join(dist, plugin), [], { env: { PATH: process.env.PATH, CNI_PATH: dist, ...env } });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('close', (c) => (c === 0 ? resolve(out ? JSON.parse(out) : null) : reject(new Error(`${plugin} ${env.CNI_COMMAND}: ${out}`))));
    p.stdin.end(JSON.stringify(conf));
  });
}
async function chain(dist, dir, socket, verb, pod, id, port, prev) {
  const net = { cniVersion: '1.0.0', name: `cbr-${path.basename(dir)}` };
  const plugins = [
    ['loopback', { ...net, type: 'loopback' }],
    ['flannel', { ...net, type: 'flannel', subnetFile: path.join(dir, 'subnet.env'), dataDir: path.join(dir, 'flannel'),
      delegate: { hairpinMode: true, isDefaultGateway: true, bridge: `cbr-${path.basename(dir)}`.slice(0, 15) }, ipam: { dataDir: path.join(dir, 'ipam') } }],
    ['portmap', { ...net, type: 'portmap', snat: true, capabilities: { portMappings: true }, runtimeConfig: { portMappings: [{ hostPort: port, containerPort: 80, protocol: 'tcp' }] } }],
  ];
  const env = { CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: pod, CNI_IFNAME: 'eth0', FLAX_CNI_SOCKET: socket };
  let result = prev;
  for (const [p, conf] of verb === 'ADD' ? plugins : [...plugins].reverse()) {
    const out = await call(dist, p, env, result && p !== 'loopback' ? { ...conf, prevResult: result } : conf);
    if (verb === 'ADD' && p !== 'loopback') result = out;
  }
  return result;
}
async function burst(dist, f, socket, n) {
  while (pods.length < n) pods.push(addNs(`pod${pods.length}`));
  const ids = pods.slice(0, n).map((_, j) => `fp-${path.basename(path.dirname(dist))}-${j}`);
  const results = await Promise.all(ids.map((id, j) => chain(dist, f.dir, socket, 'ADD', pods[j], id, 20000 + j, null)));
  await Promise.all(ids.map((id, j) => chain(dist, f.dir, socket, 'DEL', pods[j], id, 20000 + j, results[j])));
  const veths = sh('ip', ['-n', nodeNs, '-o', 'link', 'show', 'type', 'veth']).split('\n').filter((l) => / veth/.test(l));
  if (veths.length) leftovers.push(`${path.basename(dist)}: ${veths.length} host veths left after the DELs`);
}
const leftovers = [];

// ---- peers: lease files renamed into the store, as bench-overlay.mjs -----------------------
const leaseValue = (pub, mac) => `{"PublicIP":"${pub}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`;
const hex = (x) => x.toString(16).padStart(2, '0');
async function addPeers(f, n) {
  const own = /FLANNEL_SUBNET=10\.(\d+)\.(\d+)\./.exec(readFileSync(path.join(f.dir, 'subnet.env'), 'utf8'));
  const exp = new Date(Date.now() + 86_400_000).toISOString();
  const stage = path.join(f.dir, 'leases', 'stage');
  mkdirSync(stage, { recursive: true });
  let made = 0;
  for (let k = 0; made < n; k++) {
    const a = 100 + (k >> 8), b = k & 0xff;
    if (own && Number(own[1]) === a && Number(own[2]) === b) continue;
    const key = `10.${a}.${b}.0-24`;
    writeFileSync(path.join(stage, `${key}.json`), `{"Value":${leaseValue(`172.16.${k >> 8}.${(k & 0xff) || 1}`, `02:fa:00:${hex(k >> 8)}:${hex(k & 0xff)}:01`)},"Expiration":"${exp}"}\n`);
    renameSync(path.join(stage, `${key}.json`), path.join(f.dir, 'leases', 'subnets', `${key}.json`));
    made++;
  }
  // every peer's route on flannel.1
  const end = Date.now() + 120_000;
  while (Date.now() < end) {
    const routes = sh('ip', ['-n', nodeNs, 'route', 'show', 'dev', 'flannel.1']).split('\n').filter(Boolean).length;
    if (routes >= n) return;
    await sleep(0.5);
  }
  throw new Error(`flaxd did not program ${n} peers within 120 s`);
}

// ---- the runs --------------------------------------------------------------------------
const res = {};
for (const dist of dists) {
  const d = path.basename(dist);
  const r = (res[d] = {});
  if (MODES.includes('file')) {
    const f = await startFlaxd(dist, `${d}-file`, ['--cni-socket', '']);
    await sleep(IDLE);
    r.file = kib(f.p.pid, 'VmRSS');
    detail(`${d} file`, f.p.pid);
    await stop(f);
  }
  if (MODES.includes('kube')) {
    const a = await fakeApi();
    const f = await startFlaxd(dist, `${d}-kube`, ['--cni-socket', '', '--kube-subnet-mgr', '--kubeconfig-file', a.kubeconfig(), '--node-name', 'node-1']);
    await sleep(IDLE);
    r.kube = kib(f.p.pid, 'VmRSS');
    await stop(f);
  }
  if (MODES.includes('etcd')) {
    const f = await startFlaxd(dist, `${d}-etcd`, ['--cni-socket', '', '--etcd-endpoints', await etcdUrl()], false);
    await sleep(IDLE);
    r.etcd = kib(f.p.pid, 'VmRSS');
    await stop(f);
  }
  if (MODES.includes('server')) {
    const socket = path.join(tmp, `${d}-cni.sock`);
    const f = await startFlaxd(dist, `${d}-server`, ['--cni-socket', socket]);
    await sleep(IDLE);
    r.server = kib(f.p.pid, 'VmRSS');
    if (PEERS) {
      await addPeers(f, PEERS);
      r.peers = kib(f.p.pid, 'VmRSS');
    }
    if (PODS) {
      await burst(dist, f, socket, PODS);
      r.peak = kib(f.p.pid, 'VmHWM');
      await sleep(AFTER);
      r.after = kib(f.p.pid, 'VmRSS');
    }
    await stop(f);
  }
}
await api?.stop();

// ---- the table ---------------------------------------------------------------------------
const m = (b) => (b === undefined ? '-' : (b / MiB).toFixed(1));
const rowsSpec = [
  ['file', 'overlay only, file store, idle', (r) => GOALS.file * MiB, (r) => r.file],
  ['kube', 'overlay only, kube store, idle', () => GOALS.kube * MiB, (r) => r.kube],
  ['etcd', 'overlay only, etcd store, idle', () => undefined, (r) => r.etcd],
  ['server', 'overlay + CNI server, idle', () => GOALS.server * MiB, (r) => r.server],
  ...(PEERS ? [['peers', `  with ${PEERS} peers`, () => undefined, (r) => r.peers]] : []),
  ['peak', `  peak over a ${PODS}-pod burst`, () => undefined, (r) => r.peak],
  ['after', `  ${AFTER} s after the burst`, (r) => (r.server ? 1.25 * r.server : undefined), (r) => r.after],
];
const names = Object.keys(res);
const rows = [['mode', ...names.flatMap((n) => [`dist/${n} MiB`, 'goal', ''])]];
let failed = 0;
for (const [, label, goal, val] of rowsSpec) {
  if (names.every((n) => val(res[n]) === undefined)) continue;
  rows.push([label, ...names.flatMap((n) => {
    const v = val(res[n]), g = goal(res[n]);
    const ok = g === undefined || v === undefined ? '' : v <= g ? 'pass' : 'FAIL';
    if (ok === 'FAIL') failed++;
    return [m(v), g === undefined ? '' : `≤ ${m(g)}`, ok];
  })]);
}
console.log(`bench-footprint: VmRSS of flaxd in a netns node, ${IDLE} s after start; node ${process.version}; ${new Date().toISOString()}${PEERS ? `; ${PEERS} peers` : ''}\n`);
const w = rows[0].map((_, i) => Math.max(...rows.map((x) => String(x[i]).length)));
for (const [j, x] of rows.entries()) {
  console.log(x.map((c, i) => String(c).padEnd(w[i])).join('  ').trimEnd());
  if (j === 0) console.log(w.map((n) => '-'.repeat(n)).join('  '));
}
if (leftovers.length) console.log(`\nLEFTOVERS: ${leftovers.join('; ')}`);
console.log(failed ? `\n${failed} goal(s) not met` : '\nevery goal met');
process.exit(failed ? 1 : 0); // etcd and the pods' namespaces go in the exit handler
