/**
 * `flax doctor`'s checks, pure: each is a function from the node's observed
 * facts (gathered by facts.ts: netlink, sysctls, iptables, the libcni cache,
 * subnet.env, the lease store) to findings. A finding names the exact object
 * (device, address, peer, file) so a person or a script can act on it.
 * No I/O here: every check is unit-tested from hand-written facts.
 */
import type { Lease } from '../../agent/store/lease';
import { type DeviceState, type VxlanPeer, describeAction, peersFromLeases, planVxlan } from '../../agent/backend/vxlan/plan';
import { nftChains, nftRepair, nftTableOf } from '../../agent/firewall/rules';
import type { Ruleset } from '../../pkg/nft/ruleset';
import { type Prefix, bigIntToIp, formatPrefix, parseNetwork, prefixContains, prefixContainsPrefix, toAddr } from '../../pkg/ip';
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
  /** net-conf.json's EnableNFTables: flaxd keeps its forward rules in nftables (table ip flannel-ipv4 / ip6 flannel-ipv6) */
  nftables?: boolean;
  /** the VXLAN device (name flannel.<VNI>), null when absent */
  vxlan: VxlanFacts | null;
  vxlanName: string;
  /** IPv6 (subnet.env has FLANNEL_IPV6_NETWORK): the device flannel-v6.<VNI>, null when absent */
  vxlan6?: VxlanFacts | null;
  vxlan6Name?: string;
  /** peer VTEP probes: gateway → answered (small packet) and answered at the overlay MTU */
  probes: Record<string, { small: boolean; full?: boolean }>;
  /** the pod bridge, null when absent */
  bridge: { name: string; addrs: string[]; ports: string[] } | null;
  bridgeName: string;
  /** pod interfaces of the libcni cache's attachments inside the Network */
  pods: Array<{ network: string; containerId: string; ifName: string; netns: string; mtu?: number; error?: string }>;
  sysctl: { ipForward?: string; ip6Forward?: string; brNetfilter: boolean; rpFilterAll?: string; rpFilterDev?: string };
  /** iptables filter FORWARD: policy and the rules of FORWARD and FLANNEL-FWD (-S lines); undefined: iptables not available */
  forward?: IptForward;
  /** the same from ip6tables (IPv6 networks) */
  forward6?: IptForward;
  /** nftables mode: `nft -j list table ip flannel-ipv4` (v4) and `ip6 flannel-ipv6` (v6), or why they could not be listed */
  nft?: { v4?: Ruleset | { error: string }; v6?: Ruleset | { error: string } };
  conntrack?: { count: number; max: number };
}
export type IptForward = { policy: string; forwardRules: string[]; flannelFwd: string[] } | { error: string };

const ok = (check: string, object: string, problem: string): Finding => ({ status: 'ok', check, object, problem, fix: '' });
const bad = (status: 'warn' | 'fail', check: string, object: string, problem: string, fix: string): Finding => ({ status, check, object, problem, fix });

const envOf = (f: Facts): SubnetEnv | undefined => ('env' in f.subnetEnv ? f.subnetEnv.env : undefined);
/** a subnet.env CIDR as its network ("10.244.1.1/24" → 10.244.1.0/24) */
const netOf = (s: string | undefined): Prefix | undefined => (s ? parseNetwork(formatPrefix(parseNetwork(s))) : undefined);
const networkOf = (f: Facts): Prefix | undefined => netOf(envOf(f)?.networks[0]);
/** our subnet (the network, not the gateway address) from subnet.env */
const subnetOf = (f: Facts): Prefix | undefined => netOf(envOf(f)?.subnet);
const leasesOf = (f: Facts): Lease[] | undefined => (f.leases && 'leases' in f.leases ? f.leases.leases : undefined);
/** our lease: the one whose subnet is subnet.env's (IPv6-only: whose IPv6 subnet is) */
export const ownLease = (f: Facts): Lease | undefined => {
  const sn = subnetOf(f);
  if (sn) return leasesOf(f)?.find((l) => formatPrefix(l.subnet) === formatPrefix(sn));
  const sn6 = netOf(envOf(f)?.ip6Subnet);
  return sn6 && leasesOf(f)?.find((l) => l.ipv6Subnet && formatPrefix(l.ipv6Subnet) === formatPrefix(sn6));
};

/**
 * One address family of the overlay: IPv4 (FLANNEL_NETWORK, flannel.<VNI>,
 * BackendData, PublicIP) or IPv6 (FLANNEL_IPV6_NETWORK, flannel-v6.<VNI>,
 * BackendV6Data, PublicIPv6). Without a readable subnet.env: IPv4, device only.
 */
export interface Family {
  v6: boolean;
  network?: Prefix;
  subnet?: Prefix;
  dev: VxlanFacts | null;
  devName: string;
  /** the device's MTU as flaxd sets it: FLANNEL_MTU; IPv6 beside IPv4: 20 less (underlay − 70) */
  mtu?: number;
}
export function families(f: Facts): Family[] {
  const env = envOf(f);
  if (!env) return [{ v6: false, dev: f.vxlan, devName: f.vxlanName }];
  const out: Family[] = [];
  if (env.networks[0]) out.push({ v6: false, network: networkOf(f), subnet: subnetOf(f), dev: f.vxlan, devName: f.vxlanName, mtu: env.mtu });
  if (env.ip6Networks[0]) {
    out.push({ v6: true, network: netOf(env.ip6Networks[0]), subnet: netOf(env.ip6Subnet), dev: f.vxlan6 ?? null, devName: f.vxlan6Name ?? 'flannel-v6.1',
      mtu: env.networks[0] ? env.mtu - 20 : env.mtu });
  }
  return out;
}
const vxlanData = (l: Lease, v6: boolean): { VNI?: number; VtepMAC?: string } => ((v6 ? l.attrs.backendV6Data : l.attrs.backendData) ?? {}) as { VNI?: number; VtepMAC?: string };
const publicOf = (l: Lease, v6: boolean): string | null => (v6 ? l.attrs.publicIPv6 : l.attrs.publicIP);

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
  const what = [env.subnet && `subnet ${env.subnet}`, env.ip6Subnet && `IPv6 subnet ${env.ip6Subnet}`].filter(Boolean).join(', ');
  if (!f.leases) return [ok('subnet.env', f.subnetFile, `${what}, MTU ${env.mtu} (no lease store given: not compared with the lease)`)];
  if ('error' in f.leases) return [bad('warn', 'subnet.env', f.subnetFile, `cannot compare with the lease: ${f.leases.source}: ${f.leases.error}`, 'give flaxd\'s store flags (--lease-dir, --etcd-endpoints …) so doctor can read the leases')];
  const own = ownLease(f);
  if (!own) {
    return [bad('fail', 'subnet.env', f.subnetFile, `${env.subnet ? `FLANNEL_SUBNET=${env.subnet}` : `FLANNEL_IPV6_SUBNET=${env.ip6Subnet}`} matches no lease in ${f.leases.source}: the file is stale (the lease expired or moved)`,
      'restart flaxd: it acquires a lease and rewrites the file; pods added meanwhile got addresses of a subnet the node no longer owns')];
  }
  const sn6 = netOf(env.ip6Subnet);
  if (env.subnet && sn6 && (!own.ipv6Subnet || formatPrefix(own.ipv6Subnet) !== formatPrefix(sn6))) {
    return [bad('fail', 'subnet.env', f.subnetFile, `FLANNEL_IPV6_SUBNET=${env.ip6Subnet}, our lease's IPv6 subnet is ${own.ipv6Subnet ? formatPrefix(own.ipv6Subnet) : 'none'}: the file is stale`,
      'restart flaxd: it rewrites the file from its lease')];
  }
  return [ok('subnet.env', f.subnetFile, `${what} ${env.subnet && sn6 ? 'are' : 'is'} our lease's (public IP ${[own.attrs.publicIP, own.attrs.publicIPv6].filter((x) => x && x !== '0.0.0.0').join(', ')}), MTU ${env.mtu}`)];
}

function checkDevice(f: Facts, fam: Family): Finding[] {
  const v = fam.dev;
  if (!v) {
    return [bad('fail', 'vxlan', fam.devName, `the VXLAN device does not exist: no ${fam.v6 ? 'IPv6 ' : ''}pod traffic leaves this node`,
      'restart flaxd (it creates the device); "Operation not supported" in its log means the kernel lacks the vxlan module (modprobe vxlan)')];
  }
  const out: Finding[] = [];
  if (v.kind !== 'vxlan') return [bad('fail', 'vxlan', v.name, `is a ${v.kind || 'device'}, not vxlan`, `delete it (ip link del ${v.name}) and restart flaxd`)];
  if (!v.up) out.push(bad('fail', 'vxlan', v.name, 'is down', `ip link set ${v.name} up (flaxd's next reconcile does it too)`));
  const own = ownLease(f);
  const want = own ? vxlanData(own, fam.v6) : undefined;
  if (want?.VNI !== undefined && v.vni !== want.VNI) out.push(bad('fail', 'vxlan', v.name, `VNI ${v.vni}, the lease says ${want.VNI}`, `delete ${v.name} and restart flaxd`));
  const port = f.port || 8472;
  if (v.port !== undefined && v.port !== port) out.push(bad('fail', 'vxlan', v.name, `UDP port ${v.port}, net-conf.json says ${port}`, `delete ${v.name} and restart flaxd`));
  const pub = own && publicOf(own, fam.v6);
  if (pub && v.local !== undefined && v.local !== pub) {
    out.push(bad('fail', 'vxlan', v.name, `local address ${v.local}, the lease's public IP${fam.v6 ? 'v6' : ''} is ${pub}: peers send to an address this device does not use`, `delete ${v.name} and restart flaxd (check --iface / --public-ip${fam.v6 ? 'v6' : ''})`));
  }
  if (own && want?.VtepMAC && v.mac !== want.VtepMAC) {
    out.push(bad('fail', 'vxlan', v.name, `MAC ${v.mac}, the lease publishes ${fam.v6 ? 'BackendV6Data' : ''}VtepMAC ${want.VtepMAC}: peers address frames to a MAC this device drops`, 'restart flaxd (it republishes its lease)'));
  }
  if (fam.mtu !== undefined && v.mtu !== fam.mtu) {
    out.push(bad('fail', 'vxlan', v.name, fam.mtu === envOf(f)!.mtu ? `MTU ${v.mtu}, subnet.env says FLANNEL_MTU=${fam.mtu}`
      : `MTU ${v.mtu}, expected ${fam.mtu} (FLANNEL_MTU=${envOf(f)!.mtu} less the 20 bytes IPv6 encapsulation takes more)`, 'restart flaxd (it sets the MTU from the underlay\'s)'));
  }
  if (!out.length) out.push(ok('vxlan', v.name, `up, VNI ${v.vni}, port ${v.port ?? port}, local ${v.local ?? '-'}, MTU ${v.mtu}`));
  return out;
}

export function checkVxlan(f: Facts): Finding[] {
  return families(f).flatMap((fam) => checkDevice(f, fam));
}

/** The peers the leases describe for a family (ours excluded), as flaxd's vxlan backend reads them. */
export function expectedPeers(f: Facts, fam: Family | undefined = families(f)[0]): VxlanPeer[] {
  const leases = leasesOf(f);
  if (!fam?.network || !leases) return [];
  const own = ownLease(f);
  return peersFromLeases(leases.filter((l) => l !== own), fam.network).peers;
}

export function checkPeers(f: Facts): Finding[] {
  if (!leasesOf(f)) return [];
  const out: Finding[] = [];
  for (const fam of families(f)) {
    const dev = fam.dev;
    if (!fam.network || !dev) continue;
    const peers = expectedPeers(f, fam);
    const plan = planVxlan(peers, dev.state, fam.network);
    const wrong = new Map(plan.peers.map((p) => [p.peer.subnet, p.actions]));
    for (const p of peers) {
      const obj = `peer ${p.subnet} (${p.publicIP})`;
      const acts = wrong.get(p.subnet);
      if (!acts) out.push(ok('peer', obj, `route, neighbour ${p.gateway} and FDB ${p.vtepMAC} → ${p.publicIP} on ${dev.name}`));
      else out.push(bad('fail', 'peer', obj, `missing or wrong on ${dev.name}: ${acts.map(describeAction).join('; ')}`, 'flaxd repairs it at its next reconcile; if it stays, see flaxd\'s log for this peer'));
    }
    for (const r of plan.removals) out.push(bad('warn', 'peer', `${dev.name}: ${describeAction(r).replace(/^delete /, '')}`, 'stale: no lease wants it', 'flaxd removes it at its next reconcile'));
    if (!peers.length) out.push(ok('peer', dev.name, 'no other node holds a lease'));
  }
  return out;
}

export function checkProbes(f: Facts): Finding[] {
  const out: Finding[] = [];
  for (const fam of families(f)) {
    const dev = fam.dev;
    if (!dev) continue;
    const mtu = fam.mtu ?? dev.mtu;
    for (const p of expectedPeers(f, fam)) {
      const r = f.probes[p.gateway];
      if (!r) continue;
      const obj = `peer ${p.subnet} VTEP ${p.gateway} (public ${p.publicIP})`;
      if (!r.small) {
        out.push(bad('fail', 'probe', obj, `does not answer over ${dev.name}: likely UDP ${f.port || 8472} to ${p.publicIP} dropped by a firewall (or its flaxd is down)`,
          `allow UDP ${f.port || 8472} between nodes (security groups, host firewall) and check the peer's flax doctor`));
      } else if (r.full === false) {
        out.push(bad('fail', 'probe', obj, `answers small packets but not ${mtu}-byte ones: the underlay path MTU is below ${mtu + (fam.v6 ? 70 : 50)} (MTU trouble)`,
          'lower the underlay\'s MTU mismatch or the overlay MTU (net-conf.json Backend MTU / the underlay interface\'s), then restart flaxd and the pods'));
      } else out.push(ok('probe', obj, `answers over ${dev.name}${r.full ? ` (at ${mtu} bytes too)` : ''}`));
    }
  }
  return out;
}

export function checkBridge(f: Facts): Finding[] {
  const subnet = subnetOf(f);
  // the gateway: the subnet's first address (FLANNEL_SUBNET=10.244.1.1/24)
  const sn = subnet && `${bigIntToIp(subnet.ip + 1n, subnet.v6)}/${subnet.prefixLen}`;
  const b = f.bridge;
  if (!b) return [ok('bridge', f.bridgeName, 'not created yet (the first pod ADD creates it)')];
  if (!sn) return [];
  const net = networkOf(f);
  const others = b.addrs.filter((a) => a !== sn);
  if (b.addrs.includes(sn) && !others.length) return [ok('bridge', b.name, `holds the gateway ${sn}`)];
  const stale = others.filter((a) => !net || prefixContains(net, toAddr(a.split('/')[0]!).n, false));
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

function checkIptForward(fw: IptForward | undefined, net: Prefix, v6: boolean, nftables: boolean | undefined): Finding[] {
  if (!fw) return [];
  const obj = `${v6 ? 'ip6tables' : 'iptables'} filter FORWARD`;
  const n = formatPrefix(net);
  if ('error' in fw) return [bad('warn', 'forwarding', obj, `cannot read: ${fw.error}`, '')];
  if (fw.policy === 'ACCEPT') return [ok('forwarding', obj, 'policy ACCEPT')];
  const jump = fw.forwardRules.some((r) => /-j FLANNEL-FWD\b/.test(r));
  const src = fw.flannelFwd.some((r) => r.includes(`-s ${n}`) && /-j ACCEPT/.test(r));
  const dst = fw.flannelFwd.some((r) => r.includes(`-d ${n}`) && /-j ACCEPT/.test(r));
  if (jump && src && dst) return [ok('forwarding', obj, `policy ${fw.policy}, FLANNEL-FWD accepts ${n}`)];
  const why = jump ? `FLANNEL-FWD lacks ACCEPT ${!src ? `-s ${n}` : ''}${!src && !dst ? ' and ' : ''}${!dst ? `-d ${n}` : ''}` : 'no jump to FLANNEL-FWD';
  if (nftables) {
    // nftables mode: flaxd accepts the Network in its own table, but a drop anywhere at the hook is final
    return [bad('fail', 'forwarding', obj, `policy ${fw.policy} (${why}): with EnableNFTables flaxd accepts the Network only in nftables, and this chain still drops forwarded pod traffic`,
      `${v6 ? 'ip6tables' : 'iptables'} -P FORWARD ACCEPT, or accept ${n} (-s and -d) in FORWARD`)];
  }
  return [bad('fail', 'forwarding', obj, `policy ${fw.policy} and ${why}: forwarded pod traffic is dropped`,
    'run flaxd with --iptables-forward-rules (the default; it re-adds them within --iptables-resync seconds), or iptables -P FORWARD ACCEPT')];
}

/** nftables mode: our forward chain (table ip flannel-ipv4 / ip6 flannel-ipv6) accepts the Network, as flaxd writes it. */
function checkNftForward(rs: Ruleset | { error: string } | undefined, net: Prefix, v6: boolean): Finding[] {
  const { family, table } = nftTableOf(v6);
  const obj = `nftables ${family} ${table} chain forward`;
  if (!rs) return [];
  if ('error' in rs) return [bad('warn', 'forwarding', obj, `cannot list: ${rs.error}`, '')];
  const n = formatPrefix(net);
  // only the forward chain: doctor does not know --ip-masq, so the masquerade chain is not judged here
  const want = nftChains({ network: n, podCidr: n, masq: false, forward: true, v6 });
  if (!nftRepair(want, rs).chains.length) return [ok('forwarding', obj, `accepts ${n} (saddr and daddr)`)];
  const has = rs.chains.some((c) => c.family === family && c.table === table && c.name === 'forward');
  return [bad('fail', 'forwarding', obj, `${has ? 'does not accept' : 'is missing, so nothing accepts'} ${n} (saddr and daddr): with a drop policy elsewhere forwarded pod traffic is dropped`,
    'run flaxd with --iptables-forward-rules (the default; it rebuilds the chain within --iptables-resync seconds)')];
}

export function checkForwarding(f: Facts): Finding[] {
  const out: Finding[] = [];
  const s = f.sysctl;
  const fams = families(f);
  if (fams.some((x) => !x.v6)) {
    out.push(s.ipForward === '1' ? ok('forwarding', 'net.ipv4.ip_forward', 'on')
      : bad('fail', 'forwarding', 'net.ipv4.ip_forward', `is ${s.ipForward ?? 'unreadable'}: the node does not route pod traffic`, 'sysctl -w net.ipv4.ip_forward=1 (and in /etc/sysctl.d/)'));
  }
  if (fams.some((x) => x.v6)) {
    out.push(s.ip6Forward === '1' ? ok('forwarding', 'net.ipv6.conf.all.forwarding', 'on')
      : bad('fail', 'forwarding', 'net.ipv6.conf.all.forwarding', `is ${s.ip6Forward ?? 'unreadable'}: the node does not route IPv6 pod traffic`, 'sysctl -w net.ipv6.conf.all.forwarding=1 (and in /etc/sysctl.d/)'));
  }
  if (!f.nftables) {
    out.push(s.brNetfilter ? ok('forwarding', 'br_netfilter', 'loaded')
      : bad('warn', 'forwarding', 'br_netfilter', '/proc/sys/net/bridge/bridge-nf-call-iptables does not exist: bridged pod traffic bypasses iptables (Services, policies)', 'modprobe br_netfilter (and list it in /etc/modules-load.d/)'));
  }
  if (fams.some((x) => !x.v6)) {
    const rp = Math.max(Number(s.rpFilterAll ?? 0), Number(s.rpFilterDev ?? 0));
    const dev = f.vxlan?.name ?? f.vxlanName;
    out.push(rp === 1 ? bad('fail', 'forwarding', `net.ipv4.conf.${dev}.rp_filter`, `strict reverse-path filtering (all=${s.rpFilterAll}, ${dev}=${s.rpFilterDev}) drops overlay packets`, `sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.${dev}.rp_filter=2 (loose)`)
      : ok('forwarding', `net.ipv4.conf.${dev}.rp_filter`, `not strict (${rp})`));
  }
  for (const fam of fams) {
    if (!fam.network) continue;
    out.push(...checkIptForward(fam.v6 ? f.forward6 : f.forward, fam.network, fam.v6, f.nftables));
    if (f.nftables) out.push(...checkNftForward(fam.v6 ? f.nft?.v6 : f.nft?.v4, fam.network, fam.v6));
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
      if (a.v6 === b.v6 && (prefixContainsPrefix(a, b) || prefixContainsPrefix(b, a))) {
        out.push(bad('fail', 'leases', `${formatPrefix(a)} (${leases[i]!.attrs.publicIP}) and ${formatPrefix(b)} (${leases[j]!.attrs.publicIP})`,
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
