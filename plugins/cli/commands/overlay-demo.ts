/**
 * `flax demo` (the README's main job): a flannel-style overlay on one
 * machine, without touching its root netns or /etc/cni, /var/lib/cni, /run:
 *
 *   <prefix>-ul          the underlay: a bridge `ul0` joining the nodes
 *   <prefix>-n1..N       the nodes: eth0 on the underlay (192.168.77.1x/24),
 *                        a flaxd each (file lease store shared in the scratch
 *                        dir), the bridge, veths and rules of their pods
 *   <prefix>-n1-p1 …     the pods, added through flannel's conflist
 *                        (conf/10-flannel.conflist: flannel + portmap) with
 *                        the library's cache, as a runtime would
 *
 * The agents run without the sweeper and without a CNI server; the plugins
 * never call a server (demoPluginEnv).
 *
 * Then a table of nodes (subnet, VTEP MAC, peers) and pods, pings between
 * pods on every pair of nodes, one port mapping reached from the underlay,
 * and a teardown that leaves nothing (unless --keep). Any failure → exit 1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseResult } from '../../pkg/cni/convert';
import { confListFromBytes, type NetworkConfigList } from '../../pkg/invoke/conf';
import { listAttachments } from '../../pkg/invoke/cache';
import { RawExec } from '../../pkg/invoke/plugin-exec';
import { CniConfig } from '../../pkg/invoke/api';
import { openHandleAt } from '../../pkg/netlink';
import { openNetns } from '../../pkg/ns';
import { addNetns, delNetns, listNetns } from '../netns-util';
import { table } from '../table';
import { parseCount } from '../usage';
import type { CliIo } from '../command';
import { defaultPluginDir, demoPluginEnv, flaxCommand, run } from './demo';
import { FLANNEL_CONFLIST } from '../install/conflists';

export interface OverlayDemoOptions {
  keep?: boolean;
  cleanup?: boolean;
  nodes?: number | string;
  /** pods per node (1-5, default 1); with 2+, pods on one node talk over its bridge too */
  podsPerNode?: number | string;
  prefix?: string;
  scratch?: string;
  cniPath?: string;
  store?: string;
}

export { FLANNEL_CONFLIST };
const NET_CONF = { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } };
const UNDERLAY = (i: number) => `192.168.77.${10 + i}`;
const HOST_PORT = 8080;
const ETCD = '/usr/bin/etcd';
const ETCDCTL = '/usr/bin/etcdctl';
const ETCD_URL = 'http://192.168.77.1:2379';

/** Debian's etcd in the underlay netns, the network config put under flannel's prefix. */
async function startEtcd(ul: string, scratch: string): Promise<ChildProcess> {
  const log = openSync(path.join(scratch, 'etcd.log'), 'a');
  const peer = 'http://192.168.77.1:2380';
  const p = spawn('nsenter', [`--net=${ul}`, '--', ETCD, '--name', 'demo', '--data-dir', path.join(scratch, 'etcd'), '--listen-client-urls', ETCD_URL,
    '--advertise-client-urls', ETCD_URL, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `demo=${peer}`, '--log-level', 'warn'],
  { stdio: ['ignore', log, log] });
  closeSync(log);
  writeFileSync(path.join(scratch, 'etcd.pid'), String(p.pid));
  for (let t = 0; ; t++) {
    const r = await run('nsenter', [`--net=${ul}`, '--', ETCDCTL, '--endpoints', ETCD_URL, '--command-timeout', '2s', 'put', '/coreos.com/network/config', JSON.stringify(NET_CONF)]);
    if (r.code === 0) return p;
    if (t > 50 || p.exitCode !== null) throw new Error(`etcd did not start (see ${path.join(scratch, 'etcd.log')})`);
    await sleep(100);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Node { i: number; name: string; ns: string; dir: string; subnetFile: string; list?: NetworkConfigList; cni?: CniConfig; agent?: ChildProcess; subnet?: string; mac?: string; peers?: number }
interface Pod { node: Node; name: string; ns: string; id: string; address?: string }

/** Removes what a previous run with this prefix left: agents, namespaces, scratch. Never throws. */
export async function overlayCleanup(prefix: string, scratch: string, log: (s: string) => void): Promise<number> {
  let removed = 0;
  if (existsSync(scratch)) {
    for (const f of readdirSync(scratch).filter((x) => x.endsWith('.pid'))) {
      const pid = Number(readFileSync(path.join(scratch, f), 'utf8'));
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (pid > 1 && /flaxd|etcd/.test(cmd)) { process.kill(pid, 'SIGTERM'); removed++; log(`  stopped ${cmd.includes('flaxd') ? 'flaxd' : 'etcd'} ${pid}`); }
      } catch { /* gone */ }
    }
  }
  for (const n of listNetns()) {
    if (n === `${prefix}-ul` || new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-n\\d+(-p\\d+)?$`).test(n)) {
      try { delNetns(n); removed++; } catch (e) { log(`  could not remove netns ${n}: ${(e as Error).message}`); }
    }
  }
  if (existsSync(scratch)) { rmSync(scratch, { recursive: true, force: true }); removed++; }
  return removed;
}

/** The underlay bridge and each node's eth0 on it, over netlink. */
async function buildUnderlay(ul: string, nodes: Node[]): Promise<void> {
  using h = openHandleAt(ul);
  const lo = await h.linkByName('lo');
  await h.linkSetUp(lo.index);
  const br = await h.linkAdd({ kind: 'bridge', name: 'ul0' });
  await h.addrAdd(br.index, '192.168.77.1/24');
  await h.linkSetUp(br.index);
  for (const n of nodes) {
    const v = await (async () => {
      using nodeNs = openNetns(n.ns);
      return await h.linkAdd({ kind: 'veth', name: `n${n.i}`, peerName: 'eth0', peerNetns: nodeNs });
    })();
    await h.linkSet(v.index, { master: br.index, up: true });
    using nh = openHandleAt(n.ns);
    const eth = await nh.linkByName('eth0');
    await nh.addrAdd(eth.index, `${UNDERLAY(n.i)}/24`);
    await nh.linkSetUp(eth.index);
    await nh.linkSetUp((await nh.linkByName('lo')).index);
  }
}

/** VTEP MAC and programmed peers (permanent neighbours on flannel.1) of a node. */
async function vxlanState(n: Node): Promise<{ mac?: string; peers: number }> {
  using h = openHandleAt(n.ns);
  const dev = await h.linkByNameOrNull('flannel.1');
  if (!dev) return { peers: 0 };
  const neigh = (await h.neighList(dev.index)).filter((x) => x.permanent && x.ip && !x.ip.includes(':'));
  return { mac: dev.mac, peers: neigh.length };
}

export async function runOverlayDemo(opt: OverlayDemoOptions, io: CliIo): Promise<number> {
  const t0 = Date.now();
  const say = (s: string) => io.stdout(s + '\n');
  const prefix = opt.prefix ?? 'flax-demo';
  const scratch = path.resolve(opt.scratch ?? path.join(os.tmpdir(), prefix));
  const bin = (opt.cniPath ?? defaultPluginDir()).split(':').filter(Boolean);
  const nNodes = parseCount(opt.nodes ?? 3, '--nodes', 2, 9);
  const perNode = parseCount(opt.podsPerNode ?? 1, '--pods-per-node', 1, 5);
  const store = opt.store ?? 'file';
  if (store !== 'file' && store !== 'etcd') throw new Error(`--store ${store}: choose file or etcd`);
  if (store === 'etcd' && !(existsSync(ETCD) && existsSync(ETCDCTL))) throw new Error(`--store etcd needs ${ETCD} and ${ETCDCTL} (apt-get install etcd-server etcd-client)`);
  if (process.getuid && process.getuid() !== 0) throw new Error('the demo creates network namespaces: run it as root');
  const flaxd = bin.map((d) => path.join(d, 'flaxd')).find((f) => existsSync(f));
  if (!flaxd) throw new Error(`flaxd not found in ${bin.join(':')} (build with \`npm run build\`)`);
  for (const p of ['flannel', 'portmap', 'bridge', 'host-local']) {
    if (!bin.some((d) => existsSync(path.join(d, p)))) throw new Error(`plugin "${p}" not found in ${bin.join(':')}`);
  }
  const left = await overlayCleanup(prefix, scratch, say);
  if (opt.cleanup) {
    say(left ? 'cleanup: done' : 'cleanup: nothing to remove');
    return 0;
  }

  say(`flax demo — a ${nNodes}-node VXLAN overlay in network namespaces (root netns untouched)`);
  say(`  Network ${NET_CONF.Network}, ${nNodes} × flaxd (${store === 'etcd' ? `etcd store: Debian's etcd at ${ETCD_URL} on the underlay` : 'file lease store'}), pods through flannel + portmap; scratch ${scratch}`);
  mkdirSync(path.join(scratch, 'leases'), { recursive: true });
  writeFileSync(path.join(scratch, 'net-conf.json'), JSON.stringify(NET_CONF, null, 2) + '\n');
  let failures = 0;
  const ul = addNetns(`${prefix}-ul`);
  const nodes: Node[] = [];
  const pods: Pod[] = [];
  let server: ChildProcess | undefined;
  let etcd: ChildProcess | undefined;
  try {
    for (let i = 1; i <= nNodes; i++) {
      const name = `n${i}`;
      const dir = path.join(scratch, name);
      mkdirSync(dir, { recursive: true });
      nodes.push({ i, name, ns: addNetns(`${prefix}-${name}`), dir, subnetFile: path.join(dir, 'subnet.env') });
    }
    await buildUnderlay(ul, nodes);
    const storeArgs = store === 'etcd'
      ? ['--etcd-endpoints', ETCD_URL, '--net-config-path', path.join(scratch, 'absent-net-conf.json')] // the config comes from etcd
      : ['--lease-dir', path.join(scratch, 'leases'), '--net-config-path', path.join(scratch, 'net-conf.json')];
    if (store === 'etcd') etcd = await startEtcd(ul, scratch);

    say(`\n1. nodes: a flaxd in each (nsenter --net=<node> flaxd --iface eth0 --ip-masq …)`);
    for (const n of nodes) {
      const log = openSync(path.join(n.dir, 'flaxd.log'), 'a');
      n.agent = spawn('nsenter', [`--net=${n.ns}`, '--', flaxd, '--iface', 'eth0', '--ip-masq', ...storeArgs,
        '--subnet-file', n.subnetFile, '--reconcile-interval', '2',
        '--cni-socket', '', // nodes share /run: no CNI server
        '--gc-interval', '0'], // no sweeper: its defaults are the machine's /etc/cni/net.d, /var/lib/cni and /run/flax/sandboxes
      { stdio: ['ignore', log, log] });
      closeSync(log);
      writeFileSync(path.join(scratch, `${n.name}.pid`), String(n.agent.pid));
    }
    for (const n of nodes) {
      for (let t = 0; !existsSync(n.subnetFile); t++) {
        if (t > 150 || n.agent!.exitCode !== null) throw new Error(`flaxd on ${n.name} wrote no subnet file (see ${path.join(n.dir, 'flaxd.log')})`);
        await sleep(100);
      }
      n.subnet = /FLANNEL_SUBNET=(\S+)/.exec(readFileSync(n.subnetFile, 'utf8'))?.[1];
    }
    // every node programs every other one (route, neighbour, FDB)
    for (let t = 0; ; t++) {
      for (const n of nodes) Object.assign(n, await vxlanState(n));
      if (nodes.every((n) => n.peers === nNodes - 1)) break;
      if (t > 100) throw new Error('the nodes did not program each other within 10 s');
      await sleep(100);
    }
    io.stdout(table(['NODE', 'UNDERLAY', 'SUBNET', 'VTEP MAC', 'PEERS'], nodes.map((n) => [n.name, UNDERLAY(n.i), n.subnet, n.mac, n.peers])));

    say(`\n2. pods: ADD through the library (flannel → bridge + host-local, then portmap)`);
    for (const n of nodes) {
      const conf = structuredClone(FLANNEL_CONFLIST) as typeof FLANNEL_CONFLIST & { plugins: Record<string, unknown>[] };
      Object.assign(conf.plugins[0], { subnetFile: n.subnetFile, dataDir: path.join(n.dir, 'flannel'), ipam: { dataDir: path.join(n.dir, 'ipam') } });
      n.list = confListFromBytes(JSON.stringify(conf));
      writeFileSync(path.join(n.dir, '10-flannel.conflist'), JSON.stringify(conf)); // for the --keep hint's `flax status --cni-conf-dir`
      n.cni = new CniConfig({ path: bin, cacheDir: path.join(n.dir, 'cache'), stderr: null, timeoutMs: 30_000, env: demoPluginEnv(), exec: new RawExec({}, ['nsenter', `--net=${n.ns}`, '--']) });
      for (let j = 1; j <= perNode; j++) {
        const pod: Pod = { node: n, name: `${n.name}-p${j}`, ns: addNetns(`${prefix}-${n.name}-p${j}`), id: `${prefix}-${n.name}-p${j}` };
        pods.push(pod);
        const caps = n.i === 1 && j === 1 ? { portMappings: [{ hostPort: HOST_PORT, containerPort: 80, protocol: 'tcp' }] } : undefined;
        const r = await n.cni.addNetworkList(n.list, { containerId: pod.id, netns: pod.ns, ifName: 'eth0', capabilityArgs: caps });
        pod.address = parseResult(r, String(r.cniVersion)).ips?.[0]?.address;
      }
    }
    io.stdout(table(['POD', 'NODE', 'ADDRESS', 'NETNS'], pods.map((p) => [p.name, p.node.name, p.address, p.ns])));

    say(`\n3. pod ↔ pod across every pair of nodes${perNode > 1 ? ', and on one node over its bridge' : ''} (ping -c1)`);
    const checks = pods.flatMap((a) => pods.filter((b) => b !== a).map((b) => ({ a, b })));
    const rows = await Promise.all(checks.map(async ({ a, b }) => {
      const ip = b.address!.split('/')[0];
      const r = await run('nsenter', [`--net=${a.ns}`, '--', 'ping', '-c', '1', '-W', '2', '-n', ip]);
      if (r.code !== 0) failures++;
      return [a.name, b.name, ip, r.code === 0 ? 'ok' : 'FAIL', /time=([\d.]+ ms)/.exec(r.stdout)?.[1] ?? ''];
    }));
    io.stdout(table(['FROM', 'TO', 'ADDRESS', 'PING', 'RTT'], rows));

    say(`\n4. port mapping: ${UNDERLAY(1)}:${HOST_PORT} (node n1) → ${pods[0].name}:80, from the underlay`);
    server = spawn('nsenter', [`--net=${pods[0].ns}`, '--', process.execPath, '-e',
      `require('net').createServer((s)=>s.end('hello from ${pods[0].name}\\n')).listen(80,()=>console.log('up'))`], { stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise((r) => { server!.stdout!.once('data', r); setTimeout(r, 3000); });
    const got = await run('nsenter', [`--net=${ul}`, '--', process.execPath, '-e',
      `const s=require('net').connect(${HOST_PORT},'${UNDERLAY(1)}');let d='';s.on('data',(x)=>d+=x);s.on('end',()=>{process.stdout.write(d)});s.on('error',(e)=>{console.error(e.message);process.exit(1)});setTimeout(()=>process.exit(2),3000)`]);
    const ok = got.stdout.includes(`hello from ${pods[0].name}`);
    if (!ok) failures++;
    say(`  ${ok ? 'ok' : 'FAIL'}: ${(got.stdout || got.stderr).trim()}`);
  } catch (e) {
    failures++;
    say(`\nFAILED: ${(e as Error).message}`);
  } finally {
    server?.kill('SIGKILL');
    if (opt.keep) {
      const flax = flaxCommand();
      say(`\n--keep: left up. Try:\n  nsenter --net=${nodes[0]?.ns} ip route; nsenter --net=${nodes[0]?.ns} bridge fdb show dev flannel.1`
        + `\n  ${flax} status --cni-conf-dir ${nodes[0]?.dir} --cache-dir ${path.join(nodes[0]?.dir ?? scratch, 'cache')}`
        + (pods[1]?.address ? `\n  nsenter --net=${pods[0].ns} ping -c 3 ${pods[1].address.split('/')[0]}` : '')
        + `\nRemove with: ${flax} demo --cleanup${opt.prefix ? ` --prefix ${prefix}` : ''}${opt.scratch ? ` --scratch ${scratch}` : ''}`);
    } else {
      say(`\n5. teardown: DEL every pod, stop the agents, remove namespaces and files`);
      for (const p of pods) {
        try {
          await p.node.cni!.delNetworkList(p.node.list!, { containerId: p.id, netns: p.ns, ifName: 'eth0' });
        } catch (e) {
          failures++;
          say(`  ${p.name}: DEL FAILED ${(e as Error).message}`);
        }
      }
      const leaks = nodes.flatMap((n) => [
        ...listAttachments(path.join(n.dir, 'cache')).map((a) => `cache ${a.containerId}`),
        ...(existsSync(path.join(n.dir, 'flannel')) ? readdirSync(path.join(n.dir, 'flannel')).map((f) => `flannel file ${f}`) : []),
      ]);
      if (leaks.length) { failures++; say(`  LEAK: ${leaks.join(', ')}`); }
      for (const n of nodes) n.agent?.kill('SIGTERM');
      await Promise.all(nodes.map((n) => (n.agent && n.agent.exitCode === null ? new Promise((r) => { n.agent!.once('exit', r); setTimeout(r, 3000); }) : null)));
      if (etcd) {
        etcd.kill('SIGTERM');
        await new Promise((r) => { etcd!.once('exit', r); setTimeout(r, 3000); });
      }
      for (const ns of [...pods.map((p) => p.ns), ...nodes.map((n) => n.ns), ul]) { try { delNetns(ns); } catch { failures++; } }
      rmSync(scratch, { recursive: true, force: true });
      say(`  nothing left (pods DELeted, ${nodes.length} agents stopped, ${pods.length + nodes.length + 1} namespaces and the scratch dir removed)`);
    }
  }
  say(`\n${failures ? `demo FAILED (${failures} problem(s))` : 'demo OK'} — wall time ${((Date.now() - t0) / 1000).toFixed(2)} s`);
  return failures ? 1 : 0;
}
