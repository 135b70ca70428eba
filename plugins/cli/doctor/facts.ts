/**
 * `flax doctor`'s observations of the node (the current netns): the subnet
 * file's lock (from /proc/locks: doctor never takes it, so it cannot make a
 * starting flaxd fail), subnet.env (the flannel plugin's parser), the leases
 * (flaxd's stores), the VXLAN device and its tables and the bridge (netlink),
 * the libcni cache's pod interfaces, sysctls, iptables' FORWARD, conntrack.
 * Peer VTEPs are probed with `ping` over the overlay device.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Lease } from '../../agent/lease';
import { formatPrefix as formatNet, parseNetwork as parseCidr, prefixContains as netContains, toAddr as parseIp } from '../../pkg/ip';
import { listAttachments, loadConfigs } from '../../pkg/invoke/index';
import { AF_INET, openHandle, openHandleAt, type NetlinkHandle } from '../../pkg/netlink';
import { findTool, spawnRunner } from '../../pkg/nft';
import { parseSubnetEnv } from '../../meta/flannel/subnet-env';
import { type Facts, expectedPeers } from './checks';

export interface DoctorOptions {
  subnetFile: string;
  cniConfDir: string;
  cacheDir: string;
  netConfigPath: string;
  /** store: file (leaseDir), etcd or kube */
  leaseDir?: string;
  etcd?: { endpoints: string[]; prefix: string; cafile: string; certfile: string; keyfile: string; username: string; password: string };
  /** store: the Kubernetes API (flaxd --kube-subnet-mgr): every flannel-managed Node's lease */
  kube?: { kubeconfigFile?: string; kubeApiUrl?: string; annotationPrefix?: string; nodeName: string };
  bridge?: string;
  probe: boolean;
  probeTimeoutS: number;
}

const readTrim = (p: string): string | undefined => {
  try { return fs.readFileSync(p, 'utf8').trim(); } catch { return undefined; }
};

/** Who holds a flock on `file`, from /proc/locks (by inode); undefined: nobody (or no such file). */
export function lockHolder(file: string, locks = readTrim('/proc/locks') ?? ''): { pid: number } | undefined {
  let ino: number;
  try { ino = fs.statSync(file).ino; } catch { return undefined; }
  for (const line of locks.split('\n')) {
    const f = line.trim().split(/\s+/);
    // "1: FLOCK  ADVISORY  WRITE 1234 00:19:5678 0 EOF" (a waiter has "->" after the number)
    const at = f[1] === '->' ? 2 : 1;
    if (f[at] !== 'FLOCK') continue;
    const dev = f[at + 4]?.split(':');
    if (dev && Number(dev[2]) === ino) return { pid: Number(f[at + 3]) };
  }
  return undefined;
}

async function readLeases(o: DoctorOptions): Promise<Facts['leases']> {
  if (o.kube) {
    const source = `kube API ${o.kube.kubeconfigFile ?? o.kube.kubeApiUrl ?? '(in-cluster)'} (Nodes)`;
    try {
      const { openKubeLeaseStore } = await import('../../agent/kube-store');
      const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };
      const store = await openKubeLeaseStore({ ...o.kube, log: quiet as never });
      try { return { leases: [...await store.list()], source }; } finally { store.close(); }
    } catch (e) {
      return { error: (e as Error).message, source };
    }
  }
  if (o.etcd) {
    const source = `etcd ${o.etcd.endpoints.join(',')}${o.etcd.prefix}`;
    try {
      const { openEtcdLeaseStore } = await import('../../agent/etcd-store');
      const { systemClock } = await import('../../agent/lease');
      const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };
      const { store } = await openEtcdLeaseStore({ ...o.etcd, clock: systemClock, log: quiet as never });
      try { return { leases: [...await store.list()], source }; } finally { store.close(); }
    } catch (e) {
      return { error: (e as Error).message, source };
    }
  }
  if (!o.leaseDir) return undefined;
  const source = `lease dir ${o.leaseDir}`;
  if (!fs.existsSync(o.leaseDir)) return { error: 'no such directory', source };
  try {
    const { FileLeaseStore } = await import('../../agent/file-store');
    const { systemClock } = await import('../../agent/lease');
    const store = new FileLeaseStore({ dir: o.leaseDir, clock: systemClock, relistMs: 0 });
    try { return { leases: [...await store.list()] as Lease[], source }; } finally { store.close(); }
  } catch (e) {
    return { error: (e as Error).message, source };
  }
}

/** ping -c1 over `dev`; true when answered. */
function ping(dev: string, addr: string, timeoutS: number, size?: number): Promise<boolean> {
  const args = ['-n', '-q', '-c', '1', '-W', String(timeoutS), '-I', dev, ...(size ? ['-M', 'do', '-s', String(size)] : []), addr];
  return new Promise((resolve) => {
    const p = spawn('ping', args, { stdio: 'ignore' });
    p.on('error', () => resolve(false));
    p.on('exit', (code) => resolve(code === 0));
  });
}

function netConfPort(file: string): number | undefined {
  try {
    const c = JSON.parse(fs.readFileSync(file, 'utf8')) as { Backend?: { Port?: unknown } };
    return typeof c.Backend?.Port === 'number' ? c.Backend.Port : undefined;
  } catch { return undefined; }
}

/** The flannel network's bridge from the conflists (delegate.bridge), else cni0. */
function bridgeFromConfs(dir: string): string {
  try {
    for (const l of loadConfigs(dir).lists) {
      for (const p of l.plugins) {
        if (p.network.type !== 'flannel') continue;
        const d = (p.raw as { delegate?: { bridge?: unknown } }).delegate;
        return typeof d?.bridge === 'string' ? d.bridge : 'cni0';
      }
    }
  } catch { /* no confs */ }
  return 'cni0';
}

export async function gatherFacts(o: DoctorOptions, h: NetlinkHandle = openHandle()): Promise<Facts> {
  let subnetEnv: Facts['subnetEnv'];
  let text: string | undefined;
  try { text = fs.readFileSync(o.subnetFile, 'utf8'); } catch (e) {
    subnetEnv = (e as NodeJS.ErrnoException).code === 'ENOENT' ? { missing: true } : { error: (e as Error).message };
  }
  if (text !== undefined) {
    try { subnetEnv = { env: parseSubnetEnv(text, o.subnetFile) }; } catch (e) { subnetEnv = { error: (e as Error).message }; }
  }
  const holder = lockHolder(`${o.subnetFile}.lock`);
  const leases = await readLeases(o);
  const f: Facts = {
    subnetFile: o.subnetFile,
    agent: { running: !!holder, pid: holder?.pid },
    subnetEnv: subnetEnv!,
    leases,
    port: netConfPort(o.netConfigPath),
    vxlan: null,
    vxlanName: 'flannel.1',
    probes: {},
    bridge: null,
    bridgeName: o.bridge ?? bridgeFromConfs(o.cniConfDir),
    pods: [],
    sysctl: {
      ipForward: readTrim('/proc/sys/net/ipv4/ip_forward'),
      brNetfilter: fs.existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables'),
      rpFilterAll: readTrim('/proc/sys/net/ipv4/conf/all/rp_filter'),
    },
  };
  // the device: flannel.<VNI of our lease>, else flannel.1
  const sn = 'env' in f.subnetEnv ? f.subnetEnv.env.subnet : undefined;
  const own = sn && leases && 'leases' in leases ? leases.leases.find((l) => formatNet(l.subnet) === formatNet(parseNet(sn))) : undefined;
  const vni = (own?.attrs.backendData as { VNI?: number } | undefined)?.VNI;
  if (typeof vni === 'number') f.vxlanName = `flannel.${vni}`;
  const links = await h.linkList();
  const dev = links.find((l) => l.name === f.vxlanName);
  if (dev) {
    const [neighs, fdb, routes] = await Promise.all([h.neighList(dev.index, AF_INET), h.fdbList(dev.index), h.routeList({ index: dev.index, family: AF_INET })]);
    f.vxlan = {
      name: dev.name, up: dev.up, kind: dev.kind, vni: dev.vxlan?.vni, port: dev.vxlan?.port, local: dev.vxlan?.local, mtu: dev.mtu, mac: dev.mac,
      state: {
        neighs: neighs.filter((n) => n.ip).map((n) => ({ ip: n.ip!, mac: n.mac, permanent: n.permanent })),
        fdb: fdb.filter((x) => x.mac && x.self).map((x) => ({ mac: x.mac!, dst: x.ip })),
        routes: routes.map((r) => ({ dst: r.dst, gw: r.gw, onlink: r.onlink })),
      },
    };
    f.sysctl.rpFilterDev = readTrim(`/proc/sys/net/ipv4/conf/${dev.name}/rp_filter`);
    if (o.probe) {
      const mtu = 'env' in f.subnetEnv ? f.subnetEnv.env.mtu : dev.mtu;
      await Promise.all(expectedPeers(f).map(async (p) => {
        const small = await ping(dev.name, p.gateway, o.probeTimeoutS);
        const full = small ? await ping(dev.name, p.gateway, o.probeTimeoutS, mtu - 28) : undefined;
        f.probes[p.gateway] = { small, full };
      }));
    }
  }
  const br = links.find((l) => l.name === f.bridgeName);
  if (br) {
    const addrs = await h.addrList(br.index, AF_INET);
    f.bridge = { name: br.name, addrs: addrs.map((a) => a.cidr), ports: links.filter((l) => l.masterIndex === br.index).map((l) => l.name) };
  }
  // pods of the libcni cache inside the Network
  const network = 'env' in f.subnetEnv ? f.subnetEnv.env.networks[0] : undefined;
  if (network) {
    const net = parseNet(network);
    let atts: ReturnType<typeof listAttachments> = [];
    try { atts = listAttachments(o.cacheDir); } catch { /* no cache */ }
    for (const a of atts) {
      const ips = Array.isArray(a.result?.ips) ? (a.result.ips as Array<{ address?: string }>).map((x) => x.address ?? '') : [];
      if (!ips.some((ip) => inNet(net, ip))) continue;
      if (!a.netns || !fs.existsSync(a.netns)) continue;
      try {
        using ph = openHandleAt(a.netns);
        const l = await ph.linkByNameOrNull(a.ifName);
        f.pods.push({ network: a.network, containerId: a.containerId, ifName: a.ifName, netns: a.netns, mtu: l?.mtu });
      } catch (e) {
        f.pods.push({ network: a.network, containerId: a.containerId, ifName: a.ifName, netns: a.netns, error: (e as Error).message });
      }
    }
  }
  // iptables filter FORWARD
  if (findTool('iptables')) {
    const fwd = await spawnRunner('iptables', ['-w', '-t', 'filter', '-S', 'FORWARD']);
    if (fwd.code !== 0) f.forward = { error: fwd.stderr.trim() };
    else {
      const lines = fwd.stdout.split('\n').filter(Boolean);
      const policy = lines.find((l) => l.startsWith('-P FORWARD '))?.split(' ')[2] ?? 'ACCEPT';
      const ff = await spawnRunner('iptables', ['-w', '-t', 'filter', '-S', 'FLANNEL-FWD']);
      f.forward = { policy, forwardRules: lines.filter((l) => l.startsWith('-A ')), flannelFwd: ff.code === 0 ? ff.stdout.split('\n').filter((l) => l.startsWith('-A ')) : [] };
    }
  }
  const count = Number(readTrim('/proc/sys/net/netfilter/nf_conntrack_count'));
  const max = Number(readTrim('/proc/sys/net/netfilter/nf_conntrack_max'));
  if (Number.isFinite(count) && max > 0) f.conntrack = { count, max };
  return f;
}

const parseNet = (s: string) => parseCidr(s);
const inNet = (net: ReturnType<typeof parseCidr>, cidr: string): boolean => {
  try { const a = parseIp(cidr.split('/')[0]!); return netContains(net, a.n, a.v6); } catch { return false; }
};
