#!/usr/bin/env node
// Benchmark: flaxd's overlay (issue 11) on namespace "nodes".
//   node scripts/bench-overlay.mjs [--reps 7] [--secs 2] [--peers 1000] [--samples 100] [--no-iperf] [--no-scale] [--no-etcd]
// (a) pod-to-pod TCP throughput (iperf3) over flaxd's vxlan and host-gw
//     against the same topology configured by hand with `ip`/`bridge`
//     (vxlan device + neighbour/FDB/route; host-gw routes), the same
//     netfilter rules on both sides (flaxd runs with --ip-masq; its ruleset
//     is copied into the hand-made node), runs interleaved, medians;
// (b) time to program --peers peers: their leases created in the store
//     (file store: lease files renamed in; etcd, when installed: puts, each
//     on an etcd lease of its own as flanneld's, through a client in the
//     underlay netns), until the node's
//     kernel has every route (seen by `ip -ts monitor route`), then
//     neighbour/FDB/route counts checked;
// (c) event-to-route latency for a new peer, --samples times: from the
//     lease's creation (the file's rename into the store; the etcd put) to the route's netlink
//     notification (ip -ts monitor route: no polling), with the peers of
//     (b) present, spread over more than one reconcile interval (10 s) so
//     that some land while a full reconcile of those peers runs.
// Runs as root; every node, pod and underlay is a throwaway netns (the
// machine's root netns is never touched), removed on exit, also after a
// failure or ^C. Needs dist/bin/flaxd (node scripts/build.mjs), iperf3.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? Number(process.argv[i + 1]) : d; };
const REPS = arg('--reps', 7);
const SECS = arg('--secs', 2);
const PEERS = arg('--peers', 1000);
const SAMPLES = arg('--samples', 100);
const IPERF = !process.argv.includes('--no-iperf');
const SCALE = !process.argv.includes('--no-scale');
// (b) and (c) with the etcd store too, when Debian's etcd-server is installed (--no-etcd: file store only)
const ETCD = !process.argv.includes('--no-etcd') && spawnSync('sh', ['-c', 'command -v etcd && command -v etcdctl']).status === 0;
// FLAX_BENCH_FLAXD: another build to compare (e.g. an older commit's)
const FLAXD = process.env.FLAX_BENCH_FLAXD ?? path.join(root, 'dist/bin/flaxd');
if (process.getuid?.() !== 0) { console.error('bench-overlay: run as root (it creates network namespaces)'); process.exit(1); }
if (!existsSync(FLAXD)) { console.error(`missing ${FLAXD}: run node scripts/build.mjs`); process.exit(1); }
for (const b of ['ip', 'bridge', 'nsenter', 'nft', ...(IPERF ? ['iperf3'] : [])]) {
  if (spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0) { console.error(`missing ${b}${b === 'iperf3' ? ': apt-get install iperf3 (scripts/setup.sh)' : ''}`); process.exit(1); }
}

// flags of later flaxd versions, passed only to a build that knows them (a comparison with an older one)
const HELP = spawnSync(FLAXD, ['--help'], { encoding: 'utf8' }).stdout ?? '';
const OPTIONAL = [['--cni-socket', ''], ['--gc-interval', '0']].filter(([f]) => HELP.includes(f)).flat();

const tmp = mkdtempSync(path.join(tmpdir(), 'flax-bench-ov-'));
const tag = `fo${process.pid % 10000}`;
const namespaces = [];
const children = new Set();

// ---- clean-up: every namespace and process, whatever happens -------------
function cleanup() {
  for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  for (const n of namespaces.reverse()) spawnSync('ip', ['netns', 'del', n]);
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => process.exit(130));

const sh = (cmd, args, input) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
};
const inNs = (ns, cmd, args, input) => sh('nsenter', [`--net=/run/netns/${ns}`, '--', cmd, ...args], input);
const ipn = (ns, ...args) => sh('ip', ['-n', ns, ...args]);
function mkns(name) {
  const n = `${tag}-${name}`;
  sh('ip', ['netns', 'add', n]);
  namespaces.push(n);
  ipn(n, 'link', 'set', 'lo', 'up');
  return n;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** wall clock in µs (comparable with `ip -ts` timestamps, printed in UTC) */
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]; };

// ---- topology ----------------------------------------------------------------
const UL_IP = (i) => `192.168.77.${10 + i}`;

/** An underlay bridge and `count` nodes (eth0 on it, forwarding on). */
function nodes(name, count) {
  const ul = mkns(`${name}-ul`);
  ipn(ul, 'link', 'add', 'ul0', 'type', 'bridge');
  ipn(ul, 'link', 'set', 'ul0', 'up');
  const out = [];
  for (let i = 1; i <= count; i++) {
    const ns = mkns(`${name}-n${i}`);
    ipn(ul, 'link', 'add', `ul${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ipn(ul, 'link', 'set', `ul${i}`, 'master', 'ul0', 'up');
    ipn(ns, 'addr', 'add', `${UL_IP(i)}/24`, 'dev', 'eth0');
    ipn(ns, 'link', 'set', 'eth0', 'up');
    inNs(ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    out.push({ i, ns, ip: UL_IP(i), ul });
  }
  return out;
}

/** flaxd in each node (file store in a lease dir of the cluster); resolves once every subnet.env is written. */
async function startFlax(name, ns, netConf, extra = []) {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  const conf = path.join(dir, 'net-conf.json');
  writeFileSync(conf, JSON.stringify(netConf));
  const leaseDir = path.join(dir, 'leases');
  for (const n of ns) {
    n.subnetFile = path.join(dir, `n${n.i}`, 'subnet.env');
    n.log = path.join(dir, `n${n.i}.log`);
    const err = openSync(n.log, 'a');
    const p = spawn('nsenter', [`--net=/run/netns/${n.ns}`, '--', FLAXD, '--iface', 'eth0', '--lease-dir', leaseDir, '--subnet-file', n.subnetFile,
      '--net-config-path', conf, '--healthz-port', '0', ...OPTIONAL, ...extra], { stdio: ['ignore', 'ignore', err] });
    children.add(p);
    p.on('exit', () => children.delete(p));
    n.proc = p;
  }
  const end = Date.now() + 30_000;
  for (const n of ns) {
    while (!existsSync(n.subnetFile)) {
      if (n.proc.exitCode !== null || Date.now() > end) throw new Error(`flaxd in ${n.ns} not ready:\n${readFileSync(n.log, 'utf8').slice(-2000)}`);
      await sleep(50);
    }
    const env = readFileSync(n.subnetFile, 'utf8');
    n.prefix = /FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1\/24/.exec(env)[1];
    n.mtu = Number(/FLANNEL_MTU=(\d+)/.exec(env)[1]);
  }
  return leaseDir;
}

/** The same overlay by hand: what flanneld/flaxd program, with `ip` and `bridge`. */
function handVxlan(ns, mtu) {
  for (const n of ns) {
    ipn(n.ns, 'link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'local', n.ip, 'dev', 'eth0', 'dstport', '8472', 'nolearning');
    ipn(n.ns, 'link', 'set', 'flannel.1', 'mtu', String(mtu));
    ipn(n.ns, 'addr', 'add', `${n.prefix}.0/32`, 'dev', 'flannel.1');
    ipn(n.ns, 'link', 'set', 'flannel.1', 'up');
    n.mac = JSON.parse(ipn(n.ns, '-j', 'link', 'show', 'flannel.1'))[0].address;
  }
  for (const n of ns) {
    for (const p of ns.filter((x) => x !== n)) {
      ipn(n.ns, 'neigh', 'replace', `${p.prefix}.0`, 'lladdr', p.mac, 'dev', 'flannel.1', 'nud', 'permanent');
      sh('bridge', ['-n', n.ns, 'fdb', 'replace', p.mac, 'dev', 'flannel.1', 'dst', p.ip, 'self', 'permanent']);
      ipn(n.ns, 'route', 'replace', `${p.prefix}.0/24`, 'via', `${p.prefix}.0`, 'dev', 'flannel.1', 'onlink');
    }
  }
}
function handHostGw(ns) {
  for (const n of ns) for (const p of ns.filter((x) => x !== n)) ipn(n.ns, 'route', 'replace', `${p.prefix}.0/24`, 'via', p.ip, 'dev', 'eth0');
}

/** A pod: netns with eth0 <prefix>.2 on the node's bridge cni0 (<prefix>.1), MTU as the overlay's. */
function addPod(n, mtu) {
  const pod = mkns(`${n.ns.slice(tag.length + 1)}-pod`);
  ipn(n.ns, 'link', 'add', 'cni0', 'type', 'bridge');
  ipn(n.ns, 'addr', 'add', `${n.prefix}.1/24`, 'dev', 'cni0');
  ipn(n.ns, 'link', 'add', 'veth0', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod, 'mtu', String(mtu));
  ipn(n.ns, 'link', 'set', 'veth0', 'master', 'cni0', 'up');
  ipn(n.ns, 'link', 'set', 'cni0', 'mtu', String(mtu), 'up');
  ipn(pod, 'addr', 'add', `${n.prefix}.2/24`, 'dev', 'eth0');
  ipn(pod, 'link', 'set', 'eth0', 'up');
  ipn(pod, 'route', 'add', 'default', 'via', `${n.prefix}.1`);
  n.pod = pod;
}

/** Waits until the node's ruleset has flanneld's chains, and returns it (nft syntax). */
async function flannelRules(n) {
  for (let i = 0; i < 100; i++) {
    const rs = inNs(n.ns, 'nft', ['list', 'ruleset']);
    if (/FLANNEL-POSTRTG/.test(rs) && /FLANNEL-FWD/.test(rs)) return rs;
    await sleep(100);
  }
  throw new Error(`no flannel rules in ${n.ns}`);
}

/** The vxlan attributes of flannel.1 that bear on throughput (a check that the hand-made device is the same). */
function vxlanAttrs(ns) {
  const [l] = JSON.parse(ipn(ns, '-d', '-j', 'link', 'show', 'flannel.1'));
  const d = l.linkinfo?.info_data ?? {};
  const { local: _l, ...rest } = d;
  return JSON.stringify({ mtu: l.mtu, ...rest });
}

// ---- (a) throughput ----------------------------------------------------------------
async function throughputSetups() {
  const setups = [];
  for (const backend of ['vxlan', 'host-gw']) {
    const short = backend === 'vxlan' ? 'vx' : 'hg';
    const netConf = { Network: '10.244.0.0/16', Backend: { Type: backend } };
    const flax = nodes(`f${short}`, 2);
    await startFlax(`f${short}`, flax, netConf, ['--ip-masq', '-v', '0']);
    const mtu = flax[0].mtu;
    for (const n of flax) addPod(n, mtu);
    const hand = nodes(`h${short}`, 2);
    hand.forEach((n, k) => { n.prefix = flax[k].prefix; });
    if (backend === 'vxlan') handVxlan(hand, mtu);
    else handHostGw(hand);
    for (const [k, n] of hand.entries()) {
      inNs(n.ns, 'nft', ['-f', '-'], await flannelRules(flax[k]));
      addPod(n, mtu);
    }
    // flaxd must have programmed its peer before we measure
    for (const n of flax) {
      const other = flax.find((x) => x !== n);
      for (let i = 0; !ipn(n.ns, 'route', 'show', `${other.prefix}.0/24`).trim(); i++) {
        if (i > 200) throw new Error(`flaxd in ${n.ns} never routed ${other.prefix}.0/24`);
        await sleep(50);
      }
    }
    if (backend === 'vxlan') {
      const [a, b] = [vxlanAttrs(flax[0].ns), vxlanAttrs(hand[0].ns)];
      if (a !== b) console.error(`note: flannel.1 differs between flaxd's and the hand-made node:\n  flax ${a}\n  hand ${b}`);
    }
    for (const c of [flax, hand]) {
      const srv = spawn('nsenter', [`--net=/run/netns/${c[1].pod}`, '--', 'iperf3', '-s', '-1'], { stdio: 'ignore' });
      children.add(srv);
      srv.on('exit', () => children.delete(srv));
      c.server = srv;
    }
    setups.push({ backend, mtu, flax, hand });
  }
  return setups;
}

function iperf(c) {
  // a one-off server per run (-1): started before, restarted after
  const target = `${c[1].prefix}.2`;
  let out;
  for (let i = 0; ; i++) {
    const r = spawnSync('nsenter', [`--net=/run/netns/${c[0].pod}`, '--', 'iperf3', '-c', target, '-t', String(SECS), '-O', '1', '-J'], { encoding: 'utf8' });
    if (r.status === 0) { out = r.stdout; break; }
    if (i > 20) throw new Error(`iperf3 to ${target}: ${r.stdout.slice(-500)}${r.stderr}`);
    spawnSync('sleep', ['0.1']); // the server is not listening yet
  }
  const srv = spawn('nsenter', [`--net=/run/netns/${c[1].pod}`, '--', 'iperf3', '-s', '-1'], { stdio: 'ignore' });
  children.add(srv);
  srv.on('exit', () => children.delete(srv));
  return JSON.parse(out).end.sum_received.bits_per_second / 1e9;
}

async function throughput() {
  const setups = await throughputSetups();
  const res = setups.map((s) => ({ ...s, f: [], h: [] }));
  for (let rep = 0; rep < REPS; rep++) {
    for (const r of res) {
      // interleaved, flax first on even rounds and hand first on odd ones
      const order = rep % 2 ? ['h', 'f'] : ['f', 'h'];
      for (const k of order) {
        await sleep(200);
        r[k].push(iperf(k === 'f' ? r.flax : r.hand));
      }
    }
    process.stderr.write(`  throughput round ${rep + 1}/${REPS}\n`);
  }
  return res;
}

// ---- (b) 1000 peers and (c) event-to-route latency ----------------------------------
/** `ip -ts monitor route` in the node: every added route's dst and the µs it was seen. */
function routeMonitor(ns) {
  const seen = new Map();
  const waiters = new Map();
  const p = spawn('ip', ['-n', ns, '-ts', 'monitor', 'route'], { env: { ...process.env, TZ: 'UTC' }, stdio: ['ignore', 'pipe', 'ignore'] });
  children.add(p);
  let buf = '';
  p.stdout.setEncoding('utf8');
  p.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const m = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})\] (\d+\.\d+\.\d+\.\d+\/\d+) via .* dev flannel\.1/.exec(line);
      if (!m) continue;
      const us = Date.parse(`${m[1]}Z`) * 1000 + Number(m[2]);
      if (!seen.has(m[3])) seen.set(m[3], us);
      waiters.get(m[3])?.(us);
    }
  });
  const started = new Promise((r) => setTimeout(r, 300));
  return {
    seen, started, stop: () => p.kill(),
    wait: (dst, ms) => (seen.has(dst) ? Promise.resolve(seen.get(dst)) : new Promise((resolve, reject) => {
      const t = setTimeout(() => { waiters.delete(dst); reject(new Error(`no route ${dst} within ${ms} ms`)); }, ms);
      waiters.set(dst, (us) => { clearTimeout(t); waiters.delete(dst); resolve(us); });
    })),
  };
}

const peerMac = (k) => `02:fa:${((k >> 16) & 0xff).toString(16).padStart(2, '0')}:${((k >> 8) & 0xff).toString(16).padStart(2, '0')}:${(k & 0xff).toString(16).padStart(2, '0')}:01`;
/**
 * A peer's lease file as the file store writes it (flanneld's etcd value +
 * expiry), staged beside the store; commit() renames it in (the moment the
 * lease exists, as the store's own atomic writes) and returns that µs.
 */
function stageLease(leaseDir, sn, pub, mac) {
  const key = `${sn}-24`;
  const value = leaseValue(pub, mac);
  mkdirSync(path.join(leaseDir, 'stage'), { recursive: true });
  const staged = path.join(leaseDir, 'stage', `${key}.json`);
  writeFileSync(staged, `{"Value":${value},"Expiration":"${new Date(Date.now() + 86_400_000).toISOString()}"}\n`);
  return () => {
    const t = nowUs();
    renameSync(staged, path.join(leaseDir, 'subnets', `${key}.json`));
    return t;
  };
}

const SCALE_NET = { Network: '10.0.0.0/8', Backend: { Type: 'vxlan' } };
const leaseValue = (pub, mac) => `{"PublicIP":"${pub}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`;

/** The file store: lease files staged beside it, renamed in. */
async function fileStore(n) {
  const leaseDir = await startFlax('file', [n], SCALE_NET, ['-v', '0']);
  return {
    what: 'lease file renamed into the store',
    async createMany(peers) {
      const commits = peers.map((p) => stageLease(leaseDir, p.sn, p.pub, p.mac));
      await sleep(200);
      const t0 = nowUs();
      for (const c of commits) c();
      return { t0, t1: nowUs() };
    },
    createOne: async (p) => { const t = stageLease(leaseDir, p.sn, p.pub, p.mac)(); return { t0: t, t1: t }; },
  };
}

/** An etcd client in the underlay netns (the bench itself stays in the root netns): JSON lines in, JSON lines out. */
const ETCD_URL = 'http://192.168.77.1:2379';
const ETCD_HELPER = `
const { Etcd3 } = require(${JSON.stringify(path.join(root, 'node_modules/etcd3'))});
const c = new Etcd3({ hosts: '${ETCD_URL}' });
const now = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
require('readline').createInterface({ input: process.stdin }).on('line', async (line) => {
  const m = JSON.parse(line);
  try {
    // each key on an etcd lease of its own, as flanneld's (granted before the clock starts)
    const ids = await Promise.all(m.kvs.map(() => c.lease(86400, { autoKeepAlive: false }).grant()));
    const t0 = now();
    await Promise.all(m.kvs.map(([k, v], i) => c.put(k).value(v).lease(ids[i])));
    out({ t0, t1: now() });
  } catch (e) { out({ error: String(e) }); }
});`;

/** etcd (Debian's etcd-server) in the underlay netns, flaxd with --etcd-endpoints; each peer's key on a 24 h etcd lease of its own, as flanneld's. */
async function etcdStore(n) {
  ipn(n.ul, 'addr', 'add', '192.168.77.1/24', 'dev', 'ul0');
  const data = path.join(tmp, 'etcd');
  const peerUrl = 'http://192.168.77.1:2380';
  const etcd = spawn('nsenter', [`--net=/run/netns/${n.ul}`, '--', 'etcd', '--name', 'bench', '--data-dir', data, '--listen-client-urls', ETCD_URL, '--advertise-client-urls', ETCD_URL,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `bench=${peerUrl}`, '--log-level', 'warn'], { stdio: 'ignore' });
  children.add(etcd);
  const ctl = (...a) => spawnSync('nsenter', [`--net=/run/netns/${n.ul}`, '--', 'etcdctl', '--endpoints', ETCD_URL, '--command-timeout', '2s', ...a], { encoding: 'utf8' });
  for (let i = 0; ctl('endpoint', 'health').status !== 0; i++) {
    if (i > 100) throw new Error('etcd did not come up');
    await sleep(100);
  }
  if (ctl('put', '/coreos.com/network/config', JSON.stringify(SCALE_NET)).status !== 0) throw new Error('etcdctl put config failed');
  await startFlax('etcd', [n], SCALE_NET, ['-v', '0', '--etcd-endpoints', ETCD_URL]);
  const helper = spawn('nsenter', [`--net=/run/netns/${n.ul}`, '--', process.execPath, '-e', ETCD_HELPER], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(helper);
  const replies = [];
  let buf = '';
  helper.stdout.setEncoding('utf8');
  helper.stdout.on('data', (d) => {
    buf += d;
    for (let nl; (nl = buf.indexOf('\n')) >= 0; buf = buf.slice(nl + 1)) replies.shift()?.(JSON.parse(buf.slice(0, nl)));
  });
  const ask = (m) => new Promise((resolve, reject) => {
    replies.push((r) => (r.error ? reject(new Error(`etcd: ${r.error}`)) : resolve(r)));
    helper.stdin.write(JSON.stringify(m) + '\n');
  });
  const kv = (p) => [`/coreos.com/network/subnets/${p.sn}-24`, leaseValue(p.pub, p.mac)];
  return {
    what: 'etcd put (on its own etcd lease)',
    createMany: (peers) => ask({ op: 'put', kvs: peers.map(kv) }),
    createOne: (p) => ask({ op: 'put', kvs: [kv(p)] }),
  };
}

/** (b) and (c) on one node whose agent uses `makeStore`'s store. */
async function scale(name, makeStore) {
  const [n] = nodes(name, 1);
  const store = await makeStore(n);
  const mon = routeMonitor(n.ns);
  await mon.started;
  // (b) PEERS leases at once
  const peers = Array.from({ length: PEERS }, (_, k) => ({ sn: `10.${100 + (k >> 8)}.${k & 0xff}.0`, pub: `172.${16 + (k >> 16)}.${(k >> 8) & 0xff}.${(k & 0xff) || 1}`, mac: peerMac(k) }));
  const { t0, t1 } = await store.createMany(peers);
  const times = await Promise.all(peers.map((p) => mon.wait(`${p.sn}/24`, 60_000)));
  const tDone = Math.max(...times);
  const count = (out, re) => out.split('\n').filter((l) => re.test(l)).length;
  const routes = count(ipn(n.ns, '-4', 'route', 'show', 'dev', 'flannel.1'), /^10\.1\d\d\.\d+\.0\/24 via 10\.1\d\d\.\d+\.0 onlink/);
  const neighs = count(ipn(n.ns, '-4', 'neigh', 'show', 'dev', 'flannel.1'), /lladdr 02:fa:.* PERMANENT/);
  const fdb = count(sh('bridge', ['-n', n.ns, 'fdb', 'show', 'dev', 'flannel.1']), /^02:fa:.* dst 172\./);
  const program = { ms: (tDone - t0) / 1000, writeMs: (t1 - t0) / 1000, routes, neighs, fdb };

  // (c) one new peer at a time, the PEERS of (b) present
  await sleep(500);
  const lat = [];
  const acked = [];
  for (let k = 0; k < SAMPLES; k++) {
    const p = { sn: `10.${200 + (k >> 8)}.${k & 0xff}.0`, pub: `172.31.${(k >> 8) & 0xff}.${(k & 0xff) || 1}`, mac: peerMac(0x800000 + k) };
    const { t0: tw, t1 } = await store.createOne(p);
    const tr = await mon.wait(`${p.sn}/24`, 10_000);
    lat.push((tr - tw) / 1000);
    acked.push((t1 - tw) / 1000);
    await sleep(80 + Math.random() * 80); // ~12 s in all: past at least one periodic full reconcile
  }
  mon.stop();
  return { what: store.what, program, lat, acked };
}

// ---- run and report ----------------------------------------------------------------------
const fmt = (x, d = 2) => x.toFixed(d);
let failed = false;
try {
  console.log(`bench-overlay: flaxd ${FLAXD}; ${new Date().toISOString()}; ${IPERF ? `iperf3 ${REPS}×${SECS}s per case, interleaved` : 'no iperf'}${SCALE ? `; ${PEERS} peers, ${SAMPLES} latency samples` : ''}`);
  if (IPERF) {
    const res = await throughput();
    console.log('\n(a) pod-to-pod TCP throughput (iperf3, Gbit/s, medians; same netfilter rules both sides: flanneld --ip-masq)');
    console.log('flax/hand: the median of the ratios of each round\'s back-to-back pair (robust to load that changes between rounds); ratio of medians beside it');
    console.log('backend   MTU   flaxd   by hand   flax/hand   (of medians)   goal          runs flaxd | by hand');
    for (const r of res) {
      const [f, h] = [median(r.f), median(r.h)];
      const ratio = median(r.f.map((x, k) => x / r.h[k]));
      console.log(`${r.backend.padEnd(8)}  ${String(r.mtu).padEnd(4)}  ${fmt(f).padStart(5)}   ${fmt(h).padStart(7)}   ${fmt(ratio).padStart(9)}   ${fmt(f / h).padStart(12)}   ≥0.95 ${(ratio >= 0.95 ? 'ok' : 'MISSED').padEnd(6)}   ${r.f.map((x) => fmt(x)).join(' ')} | ${r.h.map((x) => fmt(x)).join(' ')}`);
    }
  }
  if (SCALE) {
    const stores = [['file', fileStore], ...(ETCD ? [['etcd', etcdStore]] : [])];
    const results = [];
    for (const [name, make] of stores) results.push({ name, ...(await scale(name, make)) });
    console.log(`\n(b) programming ${PEERS} peers: leases created in the store → every route in the kernel (then route/neighbour/FDB counts on flannel.1)`);
    console.log('store   time      goal ≤ 2000 ms   creating them took   routes  neighbours  FDB');
    for (const { name, program: p } of results) {
      const all = p.routes === PEERS && p.neighs === PEERS && p.fdb === PEERS;
      if (!all) failed = true;
      console.log(`${name.padEnd(6)}  ${`${fmt(p.ms, 0)} ms`.padEnd(8)}  ${(p.ms <= 2000 ? 'ok' : 'MISSED').padEnd(15)}  ${`${fmt(p.writeMs, 0)} ms`.padEnd(19)}  ${String(p.routes).padEnd(6)}  ${String(p.neighs).padEnd(10)}  ${p.fdb}${all ? '' : '  INCOMPLETE'}`);
    }
    console.log(`\n(c) event-to-route latency of a new peer (${SAMPLES} samples, ${PEERS} peers present): lease created → route notification (ip monitor, no polling)`);
    console.log('store   created by                          p50        p90        p99        max        goal p99 ≤ 50 ms');
    for (const { name, what, lat } of results) {
      const c = (x) => `${fmt(x)} ms`.padEnd(10);
      console.log(`${name.padEnd(6)}  ${what.padEnd(34)}  ${c(pct(lat, 50))} ${c(pct(lat, 90))} ${c(pct(lat, 99))} ${c(Math.max(...lat))} ${pct(lat, 99) <= 50 ? 'ok' : 'MISSED'}`);
    }
    for (const { name, acked } of results.filter((r) => r.name === 'etcd')) {
      console.log(`${name}: of which the put itself (client → etcd commit → ack): p50 ${fmt(pct(acked, 50))} ms, p99 ${fmt(pct(acked, 99))} ms`);
    }
  }
} catch (e) {
  console.error(`bench-overlay: ${e.stack ?? e}`);
  failed = true;
}
process.exit(failed ? 1 : 0);
