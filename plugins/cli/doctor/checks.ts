/**
 * `flax doctor`'s checks, pure: each is a function from the node's observed
 * facts (gathered by facts.ts: netlink, sysctls, iptables, the libcni cache,
 * subnet.env, the lease store) to findings. A finding names the exact object
 * (device, address, peer, file) so a person or a script can act on it.
 * No I/O here: every check is unit-tested from hand-written facts.
 */
import type { Lease } from '../../agent/lease';
import { type DeviceState, type VxlanPeer, describeAction, planVxlan } from '../../agent/vxlan/plan';
import { type Prefix, bigIntToIp as formatIp, formatPrefix as formatNet, parseNetwork as parseCidr, prefixContains as netContains, prefixContainsPrefix as netContainsNet, toAddr as parseIp } from '../../pkg/ip';
import type { SubnetEnv } from '../../meta/flannel/subnet-env';

export type Status = 'ok' | 'warn' | 'fail';
export interface Finding {
  status: Status;
  /** which check: agent, subnet.env, vxlan, peer, probe, bridge, pod-mtu, forwarding, conntrack, leases */
  check: string;
  /** the exact object: a file, a device, an address, a peer */
  object: string;
  /** what is wrong (for ok: what was found) */
  problem: string;
  /** what to do ('' when ok) */
  fix: string;
}

export interface VxlanFacts {
  name: string;
  up: boolean;
  kind: string;
  vni?: number;
  port?: number;
  local?: string;
  mtu: number;
  mac: string;
  state: DeviceState;
}

export interface Facts {
  subnetFile: string;
  /** the subnet file's lock: held by a running agent (pid when known) */
  agent: { running: boolean; pid?: number };
  /** subnet.env parsed, or why not (missing: the file does not exist) */
  subnetEnv: { env: SubnetEnv } | { missing: true } | { error: string };
  /** the leases from the store, or why they could not be read (undefined: no store given) */
  leases?: { leases: Lease[]; source: string } | { error: string; source: string };
  /** the backend port from net-conf.json (0 / undefined = the kernel default 8472) */
  port?: number;
  /** the VXLAN device (name flannel.<VNI>), null when absent */
  vxlan: VxlanFacts | null;
  vxlanName: string;
  /** peer VTEP probes: gateway → answered (small packet) and answered at the overlay MTU */
  probes: Record<string, { small: boolean; full?: boolean }>;
  /** the pod bridge, null when absent */
  bridge: { name: string; addrs: string[]; ports: string[] } | null;
  bridgeName: string;
  /** pod interfaces of the libcni cache's attachments inside the Network */
  pods: Array<{ network: string; containerId: string; ifName: string; netns: string; mtu?: number; error?: string }>;
  sysctl: { ipForward?: string; brNetfilter: boolean; rpFilterAll?: string; rpFilterDev?: string };
  /** iptables filter FORWARD: policy and the rules of FORWARD and FLANNEL-FWD (-S lines); undefined: iptables not available */
  forward?: { policy: string; forwardRules: string[]; flannelFwd: string[] } | { error: string };
  conntrack?: { count: number; max: number };
}

const ok = (check: string, object: string, problem: string): Finding => ({ status: 'ok', check, object, problem, fix: '' });
const bad = (status: 'warn' | 'fail', check: string, object: string, problem: string, fix: string): Finding => ({ status, check, object, problem, fix });

const envOf = (f: Facts): SubnetEnv | undefined => ('env' in f.subnetEnv ? f.subnetEnv.env : undefined);
const networkOf = (f: Facts): Prefix | undefined => {
  const n = envOf(f)?.networks[0];
  return n ? parseCidr(n) : undefined;
};
/** our subnet (the network, not the gateway address) from subnet.env */
const subnetOf = (f: Facts): Prefix | undefined => {
  const s = envOf(f)?.subnet;
  if (!s) return undefined;
  const n = parseCidr(s);
  return parseCidr(formatNet(n));
};
const leasesOf = (f: Facts): Lease[] | undefined => (f.leases && 'leases' in f.leases ? f.leases.leases : undefined);
const ownLease = (f: Facts): Lease | undefined => {
  const sn = subnetOf(f);
  return sn && leasesOf(f)?.find((l) => formatNet(l.subnet) === formatNet(sn));
};
const vxlanData = (l: Lease): { VNI?: number; VtepMAC?: string } => (l.attrs.backendData ?? {}) as { VNI?: number; VtepMAC?: string };

export function checkAgent(f: Facts): Finding[] {
  const lock = `${f.subnetFile}.lock`;
  if (f.agent.running) return [ok('agent', lock, `flaxd is running (holds the lock${f.agent.pid ? `, pid ${f.agent.pid}` : ''})`)];
  return [bad('fail', 'agent', lock, 'no agent holds the subnet file\'s lock: flaxd (or flanneld) is not running',
    'start flaxd (systemctl start flaxd, or the flax DaemonSet); its log says why it stopped')];
}

export function checkSubnetEnv(f: Facts): Finding[] {
  const s = f.subnetEnv;
  if ('missing' in s) {
    return [bad('fail', 'subnet.env', f.subnetFile, 'does not exist: every pod ADD fails ("open /run/flannel/subnet.env: no such file or directory")',
      'start flaxd with --subnet-file ' + f.subnetFile + ' (it writes the file once it holds a lease); check that the CNI conf\'s subnetFile names the same file')];
  }
  if ('error' in s) return [bad('fail', 'subnet.env', f.subnetFile, `cannot be parsed: ${s.error}`, 'delete it and restart flaxd, which rewrites it')];
  const env = s.env;
  if (!f.leases) return [ok('subnet.env', f.subnetFile, `subnet ${env.subnet}, MTU ${env.mtu} (no lease store given: not compared with the lease)`)];
  if ('error' in f.leases) return [bad('warn', 'subnet.env', f.subnetFile, `cannot compare with the lease: ${f.leases.source}: ${f.leases.error}`, 'give flaxd\'s store flags (--lease-dir, --etcd-endpoints …) so doctor can read the leases')];
  const own = ownLease(f);
  if (!own) {
    return [bad('fail', 'subnet.env', f.subnetFile, `FLANNEL_SUBNET=${env.subnet} matches no lease in ${f.leases.source}: the file is stale (the lease expired or moved)`,
      'restart flaxd: it acquires a lease and rewrites the file; pods added meanwhile got addresses of a subnet the node no longer owns')];
  }
  return [ok('subnet.env', f.subnetFile, `subnet ${env.subnet} is our lease's (public IP ${own.attrs.publicIP}), MTU ${env.mtu}`)];
}

export function checkVxlan(f: Facts): Finding[] {
  const env = envOf(f);
  const v = f.vxlan;
  if (!v) {
    return [bad('fail', 'vxlan', f.vxlanName, 'the VXLAN device does not exist: no pod traffic leaves this node',
      'restart flaxd (it creates the device); "Operation not supported" in its log means the kernel lacks the vxlan module (modprobe vxlan)')];
  }
  const out: Finding[] = [];
  if (v.kind !== 'vxlan') return [bad('fail', 'vxlan', v.name, `is a ${v.kind || 'device'}, not vxlan`, `delete it (ip link del ${v.name}) and restart flaxd`)];
  if (!v.up) out.push(bad('fail', 'vxlan', v.name, 'is down', `ip link set ${v.name} up (flaxd's next reconcile does it too)`));
  const own = ownLease(f);
  const want = own ? vxlanData(own) : undefined;
  if (want?.VNI !== undefined && v.vni !== want.VNI) out.push(bad('fail', 'vxlan', v.name, `VNI ${v.vni}, the lease says ${want.VNI}`, `delete ${v.name} and restart flaxd`));
  const port = f.port || 8472;
  if (v.port !== undefined && v.port !== port) out.push(bad('fail', 'vxlan', v.name, `UDP port ${v.port}, net-conf.json says ${port}`, `delete ${v.name} and restart flaxd`));
  if (own && v.local !== undefined && v.local !== own.attrs.publicIP) {
    out.push(bad('fail', 'vxlan', v.name, `local address ${v.local}, the lease's public IP is ${own.attrs.publicIP}: peers send to an address this device does not use`, `delete ${v.name} and restart flaxd (check --iface / --public-ip)`));
  }
  if (own && want?.VtepMAC && v.mac !== want.VtepMAC) {
    out.push(bad('fail', 'vxlan', v.name, `MAC ${v.mac}, the lease publishes VtepMAC ${want.VtepMAC}: peers address frames to a MAC this device drops`, 'restart flaxd (it republishes its lease)'));
  }
  if (env && v.mtu !== env.mtu) out.push(bad('fail', 'vxlan', v.name, `MTU ${v.mtu}, subnet.env says FLANNEL_MTU=${env.mtu}`, 'restart flaxd (it sets the MTU from the underlay\'s)'));
  if (!out.length) out.push(ok('vxlan', v.name, `up, VNI ${v.vni}, port ${v.port ?? port}, local ${v.local ?? '-'}, MTU ${v.mtu}`));
  return out;
}

/** The peers the leases describe (ours excluded). */
export function expectedPeers(f: Facts): VxlanPeer[] {
  const net = networkOf(f);
  const leases = leasesOf(f);
  const own = ownLease(f);
  if (!net || !leases) return [];
  const out: VxlanPeer[] = [];
  for (const l of leases) {
    if (l === own || l.attrs.backendType !== 'vxlan') continue;
    const d = vxlanData(l);
    if (!d.VtepMAC || !netContains(net, l.subnet.ip, l.subnet.v6)) continue;
    out.push({ subnet: formatNet(l.subnet), gateway: formatNet(l.subnet).split('/')[0], vtepMAC: d.VtepMAC.toLowerCase(), publicIP: l.attrs.publicIP });
  }
  return out;
}

export function checkPeers(f: Facts): Finding[] {
  const net = networkOf(f);
  if (!net || !f.vxlan || !leasesOf(f)) return [];
  const peers = expectedPeers(f);
  const plan = planVxlan(peers, f.vxlan.state, net);
  const out: Finding[] = [];
  const wrong = new Map(plan.peers.map((p) => [p.peer.subnet, p.actions]));
  for (const p of peers) {
    const obj = `peer ${p.subnet} (${p.publicIP})`;
    const acts = wrong.get(p.subnet);
    if (!acts) out.push(ok('peer', obj, `route, neighbour ${p.gateway} and FDB ${p.vtepMAC} → ${p.publicIP} on ${f.vxlan.name}`));
    else out.push(bad('fail', 'peer', obj, `missing or wrong on ${f.vxlan.name}: ${acts.map(describeAction).join('; ')}`, 'flaxd repairs it at its next reconcile; if it stays, see flaxd\'s log for this peer'));
  }
  for (const r of plan.removals) out.push(bad('warn', 'peer', `${f.vxlan.name}: ${describeAction(r).replace(/^delete /, '')}`, 'stale: no lease wants it', 'flaxd removes it at its next reconcile'));
  if (!peers.length) out.push(ok('peer', f.vxlan.name, 'no other node holds a lease'));
  return out;
}

export function checkProbes(f: Facts): Finding[] {
  if (!f.vxlan) return [];
  const out: Finding[] = [];
  const mtu = envOf(f)?.mtu ?? f.vxlan.mtu;
  for (const p of expectedPeers(f)) {
    const r = f.probes[p.gateway];
    if (!r) continue;
    const obj = `peer ${p.subnet} VTEP ${p.gateway} (public ${p.publicIP})`;
    if (!r.small) {
      out.push(bad('fail', 'probe', obj, `does not answer over ${f.vxlan.name}: likely UDP ${f.port || 8472} to ${p.publicIP} dropped by a firewall (or its flaxd is down)`,
        `allow UDP ${f.port || 8472} between nodes (security groups, host firewall) and check the peer's flax doctor`));
    } else if (r.full === false) {
      out.push(bad('fail', 'probe', obj, `answers small packets but not ${mtu}-byte ones: the underlay path MTU is below ${mtu + 50} (MTU trouble)`,
        'lower the underlay\'s MTU mismatch or the overlay MTU (net-conf.json Backend MTU / the underlay interface\'s), then restart flaxd and the pods'));
    } else out.push(ok('probe', obj, `answers over ${f.vxlan.name}${r.full ? ` (at ${mtu} bytes too)` : ''}`));
  }
  return out;
}

export function checkBridge(f: Facts): Finding[] {
  const subnet = subnetOf(f);
  // the gateway: the subnet's first address (FLANNEL_SUBNET=10.244.1.1/24)
  const sn = subnet && `${formatIp(subnet.ip + 1n, subnet.v6)}/${subnet.prefixLen}`;
  const b = f.bridge;
  if (!b) return [ok('bridge', f.bridgeName, 'not created yet (the first pod ADD creates it)')];
  if (!sn) return [];
  const net = networkOf(f);
  const others = b.addrs.filter((a) => a !== sn);
  if (b.addrs.includes(sn) && !others.length) return [ok('bridge', b.name, `holds the gateway ${sn}`)];
  const stale = others.filter((a) => !net || netContains(net, parseIp(a.split('/')[0]!).n, false));
  if (!stale.length) {
    return b.addrs.includes(sn) ? [ok('bridge', b.name, `holds the gateway ${sn} (and ${others.join(', ')})`)]
      : [bad('warn', 'bridge', b.name, `does not hold the gateway ${sn} yet`, 'the next pod ADD adds it')];
  }
  const obj = `${b.name} ${stale.join(', ')}`;
  if (b.ports.length) {
    return [bad('fail', 'bridge', obj, `stale gateway (the subnet is now ${sn}); pods still attached: ${b.ports.join(', ')}: every ADD fails with "already has an IP address different from"`,
      `drain the node (remove those pods), then the next ADD replaces the address; or ip addr del ${stale[0]} dev ${b.name} once they are gone`)];
  }
  return [bad('fail', 'bridge', obj, `stale gateway (the subnet is now ${sn}); no pods attached`,
    `the next pod ADD (flax's bridge) replaces it; with the reference bridge: ip addr del ${stale[0]} dev ${b.name}`)];
}

export function checkPodMtu(f: Facts): Finding[] {
  const mtu = envOf(f)?.mtu ?? f.vxlan?.mtu;
  if (!mtu) return [];
  const out: Finding[] = [];
  for (const p of f.pods) {
    const obj = `${p.network}/${p.containerId.slice(0, 12)} ${p.ifName} (${p.netns})`;
    if (p.mtu === undefined) continue;
    if (p.mtu > mtu) out.push(bad('fail', 'pod-mtu', obj, `MTU ${p.mtu} above the overlay's ${mtu}: large packets to other nodes are dropped`, `recreate the pod (the conf's MTU comes from FLANNEL_MTU=${mtu}), or ip link set ${p.ifName} mtu ${mtu} in its netns`));
  }
  if (!out.length) out.push(ok('pod-mtu', `${f.pods.length} pod interface(s)`, `none above the overlay MTU ${mtu}`));
  return out;
}

export function checkForwarding(f: Facts): Finding[] {
  const out: Finding[] = [];
  const s = f.sysctl;
  out.push(s.ipForward === '1' ? ok('forwarding', 'net.ipv4.ip_forward', 'on')
    : bad('fail', 'forwarding', 'net.ipv4.ip_forward', `is ${s.ipForward ?? 'unreadable'}: the node does not route pod traffic`, 'sysctl -w net.ipv4.ip_forward=1 (and in /etc/sysctl.d/)'));
  out.push(s.brNetfilter ? ok('forwarding', 'br_netfilter', 'loaded')
    : bad('warn', 'forwarding', 'br_netfilter', '/proc/sys/net/bridge/bridge-nf-call-iptables does not exist: bridged pod traffic bypasses iptables (Services, policies)', 'modprobe br_netfilter (and list it in /etc/modules-load.d/)'));
  const rp = Math.max(Number(s.rpFilterAll ?? 0), Number(s.rpFilterDev ?? 0));
  const dev = f.vxlan?.name ?? f.vxlanName;
  out.push(rp === 1 ? bad('fail', 'forwarding', `net.ipv4.conf.${dev}.rp_filter`, `strict reverse-path filtering (all=${s.rpFilterAll}, ${dev}=${s.rpFilterDev}) drops overlay packets`, `sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.${dev}.rp_filter=2 (loose)`)
    : ok('forwarding', `net.ipv4.conf.${dev}.rp_filter`, `not strict (${rp})`));
  const net = networkOf(f);
  const fw = f.forward;
  if (net && fw) {
    const n = formatNet(net);
    if ('error' in fw) out.push(bad('warn', 'forwarding', 'iptables filter FORWARD', `cannot read: ${fw.error}`, ''));
    else if (fw.policy === 'ACCEPT') out.push(ok('forwarding', 'iptables filter FORWARD', 'policy ACCEPT'));
    else {
      const jump = fw.forwardRules.some((r) => /-j FLANNEL-FWD\b/.test(r));
      const src = fw.flannelFwd.some((r) => r.includes(`-s ${n}`) && /-j ACCEPT/.test(r));
      const dst = fw.flannelFwd.some((r) => r.includes(`-d ${n}`) && /-j ACCEPT/.test(r));
      out.push(jump && src && dst ? ok('forwarding', 'iptables filter FORWARD', `policy ${fw.policy}, FLANNEL-FWD accepts ${n}`)
        : bad('fail', 'forwarding', 'iptables filter FORWARD', `policy ${fw.policy} and ${jump ? `FLANNEL-FWD lacks ACCEPT ${!src ? `-s ${n}` : ''}${!src && !dst ? ' and ' : ''}${!dst ? `-d ${n}` : ''}` : 'no jump to FLANNEL-FWD'}: forwarded pod traffic is dropped`,
          'run flaxd with --iptables-forward-rules (the default; it re-adds them within --iptables-resync seconds), or iptables -P FORWARD ACCEPT'));
    }
  }
  return out;
}

export function checkConntrack(f: Facts): Finding[] {
  const c = f.conntrack;
  if (!c || !c.max) return [];
  const pct = Math.round((c.count / c.max) * 100);
  const obj = 'net.netfilter.nf_conntrack_count';
  if (pct >= 95) return [bad('fail', 'conntrack', obj, `${c.count} of ${c.max} (${pct}%): new connections are dropped ("nf_conntrack: table full")`, 'raise net.netfilter.nf_conntrack_max, or find what opens so many connections (conntrack -L)')];
  if (pct >= 80) return [bad('warn', 'conntrack', obj, `${c.count} of ${c.max} (${pct}%): near full`, 'raise net.netfilter.nf_conntrack_max')];
  return [ok('conntrack', obj, `${c.count} of ${c.max} (${pct}%)`)];
}

export function checkLeases(f: Facts): Finding[] {
  const leases = leasesOf(f);
  if (!leases) return f.leases && 'error' in f.leases ? [bad('warn', 'leases', f.leases.source, `cannot read: ${f.leases.error}`, 'check the store flags (--lease-dir, --etcd-endpoints …)')] : [];
  const out: Finding[] = [];
  for (let i = 0; i < leases.length; i++) {
    for (let j = i + 1; j < leases.length; j++) {
      const a = leases[i]!.subnet;
      const b = leases[j]!.subnet;
      if (a.v6 === b.v6 && (netContainsNet(a, b) || netContainsNet(b, a))) {
        out.push(bad('fail', 'leases', `${formatNet(a)} (${leases[i]!.attrs.publicIP}) and ${formatNet(b)} (${leases[j]!.attrs.publicIP})`,
          'overlap: two nodes route the same pod addresses', 'delete the newer lease from the store and restart that node\'s flaxd'));
      }
    }
  }
  if (!out.length) out.push(ok('leases', f.leases!.source, `${leases.length} lease(s), none overlapping`));
  return out;
}

/** Every check, in the order the table shows them. */
export const CHECKS: ReadonlyArray<(f: Facts) => Finding[]> = [
  checkAgent, checkSubnetEnv, checkVxlan, checkPeers, checkProbes, checkBridge, checkPodMtu, checkForwarding, checkConntrack, checkLeases,
];

export const runChecks = (f: Facts): Finding[] => CHECKS.flatMap((c) => c(f));
