/**
 * The backends by Backend.Type (flannel's backend registry): what each
 * needs before the lease (vxlan: its devices, whose MACs the lease
 * publishes), the lease attributes, the MTU for subnet.env, and the network
 * the loop reconciles once the subnets are known — one per enabled family
 * (EnableIPv4, EnableIPv6), reconciled one after the other:
 *   vxlan    flannel.<VNI> (BackendData) and flannel-v6.<VNI> (BackendV6Data,
 *            local = our IPv6 address); DirectRouting: on-link peers by direct routes
 *   host-gw  no device; `<subnet> via <public IP>` (and `<v6 subnet> via
 *            <public IPv6>`) per on-link peer
 * As flanneld: an IPv6-only lease publishes PublicIP "0.0.0.0" and no
 * BackendData. vxlan MTUs: flannel.<VNI> underlay (or Backend.MTU) − 50,
 * flannel-v6.<VNI> − 70 (the kernel's cap for an IPv6 outer header);
 * FLANNEL_MTU is flannel.<VNI>'s, as flanneld writes it, and in an
 * IPv6-only network flannel-v6's (flanneld writes − 50 there too, larger
 * than its device, leaving big pod packets to Packet Too Big).
 */
import { randomMac } from '../../pkg/ip';
import { type NetlinkHandle } from '../../pkg/netlink';
import { readSysctl } from '../../pkg/ns';
import { ConfigError, type NetConfig, parseVxlanConfig } from '../config';
import { type ExternalInterface } from './iface';
import { type Lease, type LeaseAttrs, type LeaseStore, parseVxlanBackendData, vxlanBackendData } from '../store/lease';
import { findOwnLease } from '../store/acquire';
import { type Logger } from '../log';
import { type ApplyResult, type PeerNetwork, type ReconcileResult } from './types';
import { type Prefix } from '../../pkg/ip';
import { DirectRoutes, HostGwNetwork } from './hostgw/network';
import { ensureVxlanDevice, VXLAN_OVERHEAD, VXLAN6_OVERHEAD, type VxlanDeviceWant } from './vxlan/device';
import { VxlanNetwork } from './vxlan/network';

export const BACKENDS = ['vxlan', 'host-gw'] as const;

export interface Backend {
  attrs: LeaseAttrs;
  /** FLANNEL_MTU */
  mtu: number;
  network(own: Lease): PeerNetwork;
}

export interface BackendParts {
  h: NetlinkHandle;
  config: NetConfig;
  ext: ExternalInterface;
  store: LeaseStore;
  log: Logger;
}

type Net = PeerNetwork;

/**
 * Reconciles (and applies store events to) each family's network in turn; a
 * peer present in both counts once (the first family's count), routes count
 * per family. An apply that one family cannot do (null) asks the loop for a
 * full reconcile.
 */
export function bothFamilies(nets: readonly Net[]): Net {
  if (nets.length === 1) return nets[0];
  const both: Net = {
    async reconcile(peers): Promise<ReconcileResult> {
      const out: ReconcileResult = { deviceCreated: false, peers: 0, routes: 0, repairs: 0, failures: 0 };
      for (const n of nets) {
        const r = await n.reconcile(peers);
        out.deviceCreated ||= r.deviceCreated;
        out.peers = Math.max(out.peers, r.peers);
        out.routes += r.routes;
        out.repairs += r.repairs;
        out.failures += r.failures;
      }
      return out;
    },
  };
  if (nets.every((n) => n.apply)) {
    both.apply = async (changes, current): Promise<ApplyResult | null> => {
      const rs: ApplyResult[] = [];
      for (const n of nets) {
        const r = await n.apply!(changes, current);
        if (!r) return null;
        rs.push(r);
      }
      return { peers: rs[0].peers, repairs: rs.reduce((x, r) => x + r.repairs, 0), failures: rs.reduce((x, r) => x + r.failures, 0), routes: rs.reduce((x, r) => x + r.routes, 0) };
    };
  }
  return both;
}

/** The families' networks: [IPv4 Network, IPv6Network] as enabled, with our lease's subnet of each. */
function families(config: NetConfig, own: Lease): Array<{ network: Prefix; subnet: Prefix }> {
  const out: Array<{ network: Prefix; subnet: Prefix }> = [];
  if (config.enableIPv4) out.push({ network: config.network as Prefix, subnet: own.subnet });
  if (config.enableIPv6) {
    if (!own.ipv6Subnet) throw new Error('IPv6 is enabled but our lease has no IPv6 subnet');
    out.push({ network: config.ipv6Network as Prefix, subnet: own.ipv6Subnet });
  }
  return out;
}

/** The lease attributes both backends share: PublicIP "0.0.0.0" when IPv4 is off (flannel's zero ip.IP4), PublicIPv6 when IPv6 is on. */
function baseAttrs(config: NetConfig, ext: ExternalInterface, backendType: string): LeaseAttrs {
  return { publicIP: config.enableIPv4 ? ext.publicIP : '0.0.0.0', publicIPv6: config.enableIPv6 ? ext.publicIPv6 ?? null : null, backendType };
}

/** Forwarding off for an enabled family is logged (flanneld, like flaxd, leaves the sysctls to the node). */
function warnForwarding(config: NetConfig, log: Logger): void {
  const check = (on: boolean, key: string) => {
    if (!on) return;
    try {
      if (readSysctl(null, key).trim() === '0') log.warn(`${key} is 0: pods on other nodes will not be reached until it is 1`);
    } catch { /* family disabled in the kernel: the device set-up says so */ }
  };
  check(config.enableIPv4, 'net.ipv4.ip_forward');
  check(config.enableIPv6, 'net.ipv6.conf.all.forwarding');
}

export async function setupBackend({ h, config, ext, store, log }: BackendParts): Promise<Backend> {
  warnForwarding(config, log);
  const extLink = { index: ext.link.index, name: ext.link.name };
  if (config.backendType === 'host-gw') {
    return {
      attrs: baseAttrs(config, ext, 'host-gw'),
      mtu: ext.link.mtu,
      network: (own) => bothFamilies(families(config, own).map((f) => new HostGwNetwork(h, extLink, f.network, log))),
    };
  }
  if (config.backendType !== 'vxlan') throw new ConfigError(`Backend.Type: backend ${JSON.stringify(config.backendType)} is not supported by flaxd yet (${BACKENDS.join(', ')})`);
  const vx = parseVxlanConfig(config.backend);
  // the MACs our lease already publishes, so a re-created device keeps them
  const attrs = baseAttrs(config, ext, 'vxlan');
  const prior = findOwnLease(await store.list(), config, attrs);
  const under = vx.mtu || ext.link.mtu;
  const device = async (v6: boolean): Promise<VxlanDeviceWant> => {
    const priorMac = prior && parseVxlanBackendData(v6 ? prior.attrs.backendV6Data : prior.attrs.backendData)?.vtepMAC;
    const want: VxlanDeviceWant = {
      name: `flannel${v6 ? '-v6' : ''}.${vx.vni}`, vni: vx.vni, port: vx.port, local: (v6 ? ext.ifaceV6Addr : ext.ifaceAddr) as string,
      srcLink: ext.link.index, mtu: under - (v6 ? VXLAN6_OVERHEAD : VXLAN_OVERHEAD), gbp: vx.gbp, learning: vx.learning, mac: priorMac ?? randomMac(),
    };
    const dev = await ensureVxlanDevice(h, want, log);
    log.info(`${want.name}: ${dev.created ? 'created' : 'reusing the existing device'} (mac ${dev.link.mac})`);
    want.mac = dev.link.mac;
    return want;
  };
  const dev4 = config.enableIPv4 ? await device(false) : undefined;
  const dev6 = config.enableIPv6 ? await device(true) : undefined;
  if (dev4) attrs.backendData = vxlanBackendData({ vni: vx.vni, vtepMAC: dev4.mac });
  if (dev6) attrs.backendV6Data = vxlanBackendData({ vni: vx.vni, vtepMAC: dev6.mac });
  return {
    attrs,
    // flanneld's FLANNEL_MTU (underlay − 50); IPv6-only: flannel-v6's (− 70), so pods never exceed the device
    mtu: (dev4 ?? dev6)!.mtu,
    network: (own) => bothFamilies(families(config, own).map((f) => new VxlanNetwork(h, (f.network.v6 ? dev6 : dev4)!, f.subnet, f.network, log,
      vx.directRouting ? new DirectRoutes(h, extLink, f.network, log) : undefined))),
  };
}
