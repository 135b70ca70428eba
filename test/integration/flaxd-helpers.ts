/**
 * A cluster of namespace "nodes" for flaxd's integration tests:
 *   underlay  one netns holding the bridge ul0
 *   node i    a netns with eth0 (192.168.77.1i/24) on ul0, ip_forward on,
 *             its own subnet file, one flaxd (dist/bin/flaxd, run through
 *             nsenter) sharing a file lease store with the other nodes
 *   pod i     a netns with eth0 = <subnet>.2, default route via <subnet>.1
 *             on the node's veth `vpod` (a "pod" without CNI)
 * The machine's root netns is never touched; destroy() kills every agent it
 * started and removes every namespace and file, also after a failure.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openHandleAt } from '../../plugins/pkg/netlink';
import { openNetns, writeSysctl } from '../../plugins/pkg/ns';
import { createTestNetns, destroyTestNetns, execIn } from '../lib/netns';
import { ours } from '../lib/cni';

export const FLAXD = ours('flaxd');
export const NETWORK = '10.244.0.0/16';

export interface Agent {
  proc: ChildProcess;
  /** stderr so far */
  log: () => string;
  /** resolves with the exit code (null after a signal) */
  exited: Promise<number | null>;
}

export interface Node {
  i: number;
  ns: string;
  ip: string;
  dir: string;
  subnetFile: string;
  agent?: Agent;
  pod?: string;
}

/**
 * Waits until `k` more lines matching `re` than now are in the agent's log:
 * something that happens again and again (a reconcile, a firewall check)
 * has happened k more times. To show that nothing else happens meanwhile.
 */
export function moreLogLines(agent: Agent, re: RegExp, k: number, timeoutMs = 15_000): Promise<number> {
  const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
  const count = () => agent.log().match(g)?.length ?? 0;
  const before = count();
  return waitFor(`${k} more log lines matching ${re}`, () => count() >= before + k && count(), timeoutMs, 50);
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false | null, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A node's IPv6 underlay address (eth0), added by addV6Underlay. */
export const ip6Of = (n: Node) => `fd77::1${n.i}`;

/** IPv6 on the node namespaces (never the root one): sysctls, fd77::1<i>/64 on eth0 (no DAD). */
export async function addV6Underlay(cl: Cluster): Promise<void> {
  for (const n of cl.nodes) {
    writeSysctl(n.ns, 'net.ipv6.conf.all.disable_ipv6', 0);
    writeSysctl(n.ns, 'net.ipv6.conf.default.disable_ipv6', 0);
    writeSysctl(n.ns, 'net.ipv6.conf.all.forwarding', 1);
    const h = openHandleAt(n.ns);
    try {
      await h.addrAdd((await h.linkByName('eth0')).index, `${ip6Of(n)}/64`, { noDad: true });
    } finally {
      h.close();
    }
  }
}

export class Cluster {
  readonly tmp = mkdtempSync(path.join(tmpdir(), 'flaxd-it-'));
  readonly leaseDir = path.join(this.tmp, 'leases');
  readonly netConf = path.join(this.tmp, 'net-conf.json');
  readonly nodes: Node[] = [];
  #namespaces: string[] = [];
  #agents = new Set<Agent>();
  underlay = '';

  async create(count: number, netConf: object = { Network: NETWORK, Backend: { Type: 'vxlan' } }): Promise<void> {
    writeFileSync(this.netConf, JSON.stringify(netConf));
    const [ul, ...nodeNs] = createTestNetns(1 + count);
    this.#namespaces.push(ul, ...nodeNs);
    this.underlay = ul;
    const hu = openHandleAt(ul);
    try {
      const br = await hu.linkAdd({ kind: 'bridge', name: 'ul0' });
      await hu.linkSetUp(br.index);
      for (let i = 1; i <= count; i++) {
        const ns = nodeNs[i - 1];
        const nsf = openNetns(ns);
        try {
          const port = await hu.linkAdd({ kind: 'veth', name: `ul${i}`, peerName: 'eth0', peerNetns: nsf });
          await hu.linkSetMaster(port.index, br.index);
          await hu.linkSetUp(port.index);
        } finally {
          nsf.close();
        }
        const h = openHandleAt(ns);
        try {
          const lo = await h.linkByName('lo');
          await h.linkSetUp(lo.index);
          const eth0 = await h.linkByName('eth0');
          await h.addrAdd(eth0.index, `192.168.77.1${i}/24`);
          await h.linkSetUp(eth0.index);
        } finally {
          h.close();
        }
        writeSysctl(ns, 'net.ipv4.ip_forward', 1);
        const dir = path.join(this.tmp, `node${i}`);
        mkdirSync(dir);
        this.nodes.push({ i, ns, ip: `192.168.77.1${i}`, dir, subnetFile: path.join(dir, 'run/flannel/subnet.env') });
      }
    } finally {
      hu.close();
    }
  }

  /** Starts flaxd in the node's netns (through nsenter, which execs it: the child pid is flaxd's). */
  startAgent(n: Node, extra: string[] = [], env: NodeJS.ProcessEnv = process.env): Agent {
    const args = ['--iface', 'eth0', '--lease-dir', this.leaseDir, '--subnet-file', n.subnetFile, '--net-config-path', this.netConf,
      '--reconcile-interval', '1', '-v', '1', '--cni-socket', '', ...extra]; // no CNI server unless a test asks: the default socket is the machine's
    const proc = spawn('nsenter', [`--net=${n.ns}`, '--', FLAXD, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    const a: Agent = { proc, log: () => err, exited };
    this.#agents.add(a);
    exited.then(() => this.#agents.delete(a));
    n.agent = a;
    return a;
  }

  /** SIGTERM and wait; returns the exit code. */
  async stopAgent(n: Node): Promise<number | null> {
    const a = n.agent!;
    a.proc.kill('SIGTERM');
    const code = await Promise.race([a.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000))]);
    if (code === 'timeout') {
      a.proc.kill('SIGKILL');
      throw new Error(`flaxd of node ${n.i} did not exit on SIGTERM; log:\n${a.log()}`);
    }
    n.agent = undefined;
    return code;
  }

  /** Waits until the node's agent has written its subnet file (and is running). */
  async waitReady(n: Node): Promise<string> {
    const a = n.agent!;
    return waitFor(`node ${n.i} subnet file`, () => {
      if (a.proc.exitCode !== null) throw new Error(`flaxd of node ${n.i} exited ${a.proc.exitCode}:\n${a.log()}`);
      return /running$/m.test(a.log()) && existsSync(n.subnetFile) && readFileSync(n.subnetFile, 'utf8');
    });
  }

  /** The lease files, by name, parsed. */
  leases(): Map<string, { text: string; Value: { PublicIP: string; BackendData: { VNI: number; VtepMAC: string } } }> {
    const m = new Map();
    const dir = path.join(this.leaseDir, 'subnets');
    for (const f of readdirSync(dir).filter((x) => !x.startsWith('.'))) {
      const text = readFileSync(path.join(dir, f), 'utf8');
      m.set(f, { text, ...JSON.parse(text) });
    }
    return m;
  }

  /** The node's lease file name and subnet ("10.244.7.0-24.json", "10.244.7"). */
  leaseOf(n: Node): { file: string; prefix: string } {
    for (const [file, l] of this.leases()) {
      if (l.Value.PublicIP === n.ip) return { file, prefix: file.replace(/\.0-24\.json$/, '') };
    }
    throw new Error(`no lease for node ${n.i} (${n.ip})`);
  }

  /** A pod: a netns with eth0 <prefix>.2/24 behind the node's vpod (<prefix>.1/24); prefix '' = no IPv4 (IPv6-only tests add theirs). */
  async addPod(n: Node, prefix: string): Promise<string> {
    const [pod] = createTestNetns(1);
    this.#namespaces.push(pod);
    n.pod = pod;
    const h = openHandleAt(n.ns);
    const podNs = openNetns(pod);
    try {
      const host = await h.linkAdd({ kind: 'veth', name: 'vpod', peerName: 'eth0', peerNetns: podNs });
      if (prefix) await h.addrAdd(host.index, `${prefix}.1/24`);
      await h.linkSetUp(host.index);
    } finally {
      podNs.close();
      h.close();
    }
    const hp = openHandleAt(pod);
    try {
      const eth0 = await hp.linkByName('eth0');
      if (prefix) await hp.addrAdd(eth0.index, `${prefix}.2/24`);
      await hp.linkSetUp(eth0.index);
      await hp.linkSetUp((await hp.linkByName('lo')).index);
      if (prefix) await hp.routeAdd({ dst: '0.0.0.0/0', gw: `${prefix}.1` });
    } finally {
      hp.close();
    }
    return pod;
  }

  async destroy(): Promise<void> {
    for (const a of [...this.#agents]) {
      a.proc.kill('SIGTERM');
      const done = await Promise.race([a.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]);
      if (!done) a.proc.kill('SIGKILL');
    }
    destroyTestNetns(this.#namespaces);
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** The kernel's view of flannel.1 in a node, through iproute2 (independent of our netlink parser). */
export function vxlanView(ns: string) {
  const j = (args: string[]) => {
    const out = execIn(ns, args[0], ['-j', ...args.slice(1)]);
    return (out.trim() ? JSON.parse(out) : []) as any[];
  };
  return {
    link: j(['ip', '-d', 'link', 'show', 'dev', 'flannel.1'])[0],
    addrs: j(['ip', '-4', 'addr', 'show', 'dev', 'flannel.1'])[0]?.addr_info?.map((a: any) => `${a.local}/${a.prefixlen}`) ?? [],
    neighs: j(['ip', 'neigh', 'show', 'dev', 'flannel.1']).map((x) => `${x.dst} ${x.lladdr} ${(x.state ?? []).join(',')}`).sort(),
    fdb: j(['bridge', 'fdb', 'show', 'dev', 'flannel.1']).map((x) => `${x.mac} ${x.dst} ${(x.flags ?? []).join(',')} ${x.state ?? ''}`.trim()).sort(),
    routes: j(['ip', 'route', 'show', 'dev', 'flannel.1']).map((x) => `${x.dst} via ${x.gateway} ${(x.flags ?? []).join(',')}`).sort(),
  };
}

export function pingFrom(ns: string, addr: string): boolean {
  const out = execIn(ns, 'ping', ['-c', '1', '-W', '2', addr], { allowFail: true });
  return / 0% packet loss/.test(out);
}

/** What flannel.1 must hold for these peers (subnet prefix "10.244.7", VTEP MAC, public IP), in the form of peerState. */
export function peerEntries(ps: Array<{ prefix: string; mac: string; ip: string }>) {
  return {
    neighs: ps.map((p) => `${p.prefix}.0 ${p.mac} PERMANENT`).sort(),
    fdb: ps.map((p) => `${p.mac} ${p.ip} self permanent`).sort(),
    routes: ps.map((p) => `${p.prefix}.0/24 via ${p.prefix}.0 onlink`).sort(),
  };
}

/** The neighbours, FDB entries and routes on flannel.1 in a node. */
export function peerState(ns: string) {
  const v = vxlanView(ns);
  return { neighs: v.neighs, fdb: v.fdb, routes: v.routes };
}

const SERVER = `const s=require('net').createServer(c=>{process.stdout.write(c.remoteAddress+'\\n');c.end();s.close();});s.listen(9000,process.argv[1],()=>process.stdout.write('listening\\n'));`;
const CLIENT = `const c=require('net').connect(9000,process.argv[1],()=>c.end());c.on('error',e=>{console.error(e.message);process.exit(1)});c.on('close',()=>process.exit(0));setTimeout(()=>process.exit(2),5000);`;

/** The source address a TCP server at `ip` in `serverNs` sees for a connection from `clientNs`. */
export async function sourceSeen(serverNs: string, ip: string, clientNs: string): Promise<string> {
  const srv: ChildProcess = spawn('nsenter', [`--net=${serverNs}`, '--', process.execPath, '-e', SERVER, ip], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let out = '';
    srv.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    await waitFor('server listening', () => out.includes('listening'), 5000, 20);
    const c = spawnSync('nsenter', [`--net=${clientNs}`, '--', process.execPath, '-e', CLIENT, ip], { encoding: 'utf8', timeout: 10_000 });
    if (c.status !== 0) throw new Error(`client to ${ip} failed (${c.status}): ${c.stderr}`);
    return await waitFor('source address', () => out.split('\n')[1], 5000, 20);
  } finally {
    srv.kill('SIGKILL');
  }
}
