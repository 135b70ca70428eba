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
import type { Lease } from '../../agent/store/lease';
import { parseNetwork, prefixContains, toAddr } from '../../pkg/ip';
import { nftTableOf } from '../../agent/firewall/rules';
import { loadConfigs } from '../../pkg/invoke/conf';
import { listAttachments } from '../../pkg/invoke/cache';
import { AF_INET, AF_INET6, openHandle, openHandleAt, type NetlinkHandle } from '../../pkg/netlink';
import { type Ruleset, findTool, nftList, spawnRunner } from '../../pkg/nft';
import { parseSubnetEnv } from '../../meta/flannel/subnet-env';
import { type Facts, type IptForward, type VxlanFacts, expectedPeers, families, ownLease } from './checks';

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
      const { openKubeLeaseStore } = await import('../../agent/store/kube');
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
      const { openEtcdLeaseStore } = await import('../../agent/store/etcd');
      const { systemClock } = await import('../../agent/store/lease');
      const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };
      const store = await openEtcdLeaseStore({ ...o.etcd, clock: systemClock, log: quiet as never });
      try { return { leases: [...await store.list()], source }; } finally { store.close(); }
    } catch (e) {
      return { error: (e as Error).message, source };
    }
  }
  if (!o.leaseDir) return undefined;
  const source = `lease dir ${o.leaseDir}`;
  if (!fs.existsSync(o.leaseDir)) return { error: 'no such directory', source };
  try {
    const { FileLeaseStore } = await import('../../agent/store/file');
    const { systemClock } = await import('../../agent/store/lease');
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

/** net-conf.json's Backend.Port and EnableNFTables (what doctor needs of it). */
function netConf(file: string): { port?: number; nftables?: boolean } {
  try {
    const c = JSON.parse(fs.readFileSync(file, 'utf8')) as { Backend?: { Port?: unknown }; EnableNFTables?: unknown };
    return { port: typeof c.Backend?.Port === 'number' ? c.Backend.Port : undefined, nftables: c.EnableNFTables === true };
  } catch { return {}; }
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
    ...netConf(o.netConfigPath),
    vxlan: null,
    vxlanName: 'flannel.1',
    probes: {},
    bridge: null,
    bridgeName: o.bridge ?? bridgeFromConfs(o.cniConfDir),
    pods: [],
    sysctl: {
      ipForward: readTrim('/proc/sys/net/ipv4/ip_forward'),
      ip6Forward: readTrim('/proc/sys/net/ipv6/conf/all/forwarding'),
      brNetfilter: fs.existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables'),
      rpFilterAll: readTrim('/proc/sys/net/ipv4/conf/all/rp_filter'),
    },
  };
  // the devices: flannel.<VNI> / flannel-v6.<VNI> of our lease (BackendData / BackendV6Data), else VNI 1
  const env = 'env' in f.subnetEnv ? f.subnetEnv.env : undefined;
  const fams = families(f);
  const own = ownLease(f);
  const vniOf = (v6: boolean) => ((v6 ? own?.attrs.backendV6Data : own?.attrs.backendData) as { VNI?: number } | undefined)?.VNI;
  const links = await h.linkList();
  for (const fam of fams) {
    const vni = vniOf(fam.v6);
    const name = `${fam.v6 ? 'flannel-v6' : 'flannel'}.${typeof vni === 'number' ? vni : 1}`;
    if (fam.v6) f.vxlan6Name = name; else f.vxlanName = name;
    const dev = links.find((l) => l.name === name);
    if (!dev) { if (fam.v6) f.vxlan6 = null; continue; }
    const family = fam.v6 ? AF_INET6 : AF_INET;
    const [neighs, fdb, routes] = await Promise.all([h.neighList(dev.index, family), h.fdbList(dev.index), h.routeList({ index: dev.index, family })]);
    const vx: VxlanFacts = {
      name: dev.name, up: dev.up, kind: dev.kind, vni: dev.vxlan?.vni, port: dev.vxlan?.port, local: dev.vxlan?.local, mtu: dev.mtu, mac: dev.mac,
      state: {
        neighs: neighs.filter((n) => n.ip).map((n) => ({ ip: n.ip!, mac: n.mac, permanent: n.permanent })),
        fdb: fdb.filter((x) => x.mac && x.self).map((x) => ({ mac: x.mac!, dst: x.ip })),
        routes: routes.map((r) => ({ dst: r.dst, gw: r.gw, onlink: r.onlink })),
      },
    };
    if (fam.v6) f.vxlan6 = vx; else f.vxlan = vx;
    if (!fam.v6) f.sysctl.rpFilterDev = readTrim(`/proc/sys/net/ipv4/conf/${dev.name}/rp_filter`);
  }
  if (o.probe) {
    // probes after every device is read (families() sees them now): small, then at the device's MTU (ICMP + IP headers: 28, IPv6 48)
    await Promise.all(families(f).flatMap((fam) => {
      const dev = fam.dev;
      if (!dev) return [];
      const mtu = fam.mtu ?? dev.mtu;
      return expectedPeers(f, fam).map(async (p) => {
        const small = await ping(dev.name, p.gateway, o.probeTimeoutS);
        const full = small ? await ping(dev.name, p.gateway, o.probeTimeoutS, mtu - (fam.v6 ? 48 : 28)) : undefined;
        f.probes[p.gateway] = { small, full };
      });
    }));
  }
  const br = links.find((l) => l.name === f.bridgeName);
  if (br) {
    const addrs = await h.addrList(br.index, AF_INET);
    f.bridge = { name: br.name, addrs: addrs.map((a) => a.cidr), ports: links.filter((l) => l.masterIndex === br.index).map((l) => l.name) };
  }
  // pods of the libcni cache inside the Network
  const nets = env ? [env.networks[0], env.ip6Networks[0]].filter((x): x is string => !!x).map(parseNet) : [];
  if (nets.length) {
    let atts: ReturnType<typeof listAttachments> = [];
    try { atts = listAttachments(o.cacheDir); } catch { /* no cache */ }
    for (const a of atts) {
      const ips = Array.isArray(a.result?.ips) ? (a.result.ips as Array<{ address?: string }>).map((x) => x.address ?? '') : [];
      if (!ips.some((ip) => nets.some((net) => inNet(net, ip)))) continue;
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
  // the firewall's FORWARD (iptables, ip6tables) and, in nftables mode, our tables
  for (const fam of fams) {
    const fw = await iptForward(fam.v6 ? 'ip6tables' : 'iptables');
    if (fam.v6) f.forward6 = fw; else f.forward = fw;
    if (f.nftables && findTool('nft')) {
      const { family, table } = nftTableOf(fam.v6);
      let rs: Ruleset | { error: string };
      try { rs = await nftList(['table', family, table]); } catch (e) { rs = { error: (e as Error).message }; }
      f.nft = { ...f.nft, [fam.v6 ? 'v6' : 'v4']: rs };
    }
  }
  const count = Number(readTrim('/proc/sys/net/netfilter/nf_conntrack_count'));
  const max = Number(readTrim('/proc/sys/net/netfilter/nf_conntrack_max'));
  if (Number.isFinite(count) && max > 0) f.conntrack = { count, max };
  return f;
}

const parseNet = (s: string) => parseNetwork(s);

/** `<bin> -S FORWARD` and `-S FLANNEL-FWD`; undefined when the tool is not installed. */
async function iptForward(bin: 'iptables' | 'ip6tables'): Promise<IptForward | undefined> {
  if (!findTool(bin)) return undefined;
  const fwd = await spawnRunner(bin, ['-w', '-t', 'filter', '-S', 'FORWARD']);
  if (fwd.code !== 0) return { error: fwd.stderr.trim() };
  const lines = fwd.stdout.split('\n').filter(Boolean);
  const policy = lines.find((l) => l.startsWith('-P FORWARD '))?.split(' ')[2] ?? 'ACCEPT';
  const ff = await spawnRunner(bin, ['-w', '-t', 'filter', '-S', 'FLANNEL-FWD']);
  return { policy, forwardRules: lines.filter((l) => l.startsWith('-A ')), flannelFwd: ff.code === 0 ? ff.stdout.split('\n').filter((l) => l.startsWith('-A ')) : [] };
}
const inNet = (net: ReturnType<typeof parseNetwork>, cidr: string): boolean => {
  try { const a = toAddr(cidr.split('/')[0]!); return prefixContains(net, a.n, a.v6); } catch { return false; }
};
