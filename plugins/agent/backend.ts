/**
 * The backends by Backend.Type (flannel's backend registry): what each
 * needs before the lease (vxlan: its device, whose MAC the lease
 * publishes), the lease attributes, the MTU for subnet.env, and the network
 * the loop reconciles once the subnet is known.
 *   vxlan    flannel.<VNI>; DirectRouting: on-link peers by direct routes
 *   host-gw  no device; `<subnet> via <public IP>` per on-link peer
 */
import { randomMac } from '../pkg/ip';
import { type NetlinkHandle } from '../pkg/netlink';
import { ConfigError, type NetConfig, parseVxlanConfig } from './config';
import { type ExternalInterface } from './iface';
import { type Lease, type LeaseAttrs, type LeaseStore, parseVxlanBackendData, vxlanBackendData } from './lease';
import { type Logger } from './log';
import { type LoopParts } from './loop';
import { type IPNet } from './subnet';
import { DirectRoutes, HostGwNetwork } from './hostgw/network';
import { ensureVxlanDevice, VXLAN_OVERHEAD } from './vxlan/device';
import { VxlanNetwork } from './vxlan/network';

export const BACKENDS = ['vxlan', 'host-gw'] as const;

export interface Backend {
  attrs: LeaseAttrs;
  /** FLANNEL_MTU */
  mtu: number;
  network(own: Lease): LoopParts['net'];
}

export interface BackendParts {
  h: NetlinkHandle;
  config: NetConfig;
  ext: ExternalInterface;
  store: LeaseStore;
  log: Logger;
}

export async function setupBackend({ h, config, ext, store, log }: BackendParts): Promise<Backend> {
  const network = config.network as IPNet;
  const extLink = { index: ext.link.index, name: ext.link.name };
  if (config.backendType === 'host-gw') {
    return {
      attrs: { publicIP: ext.publicIP, publicIPv6: null, backendType: 'host-gw' },
      mtu: ext.link.mtu,
      network: () => new HostGwNetwork(h, extLink, network, log),
    };
  }
  if (config.backendType !== 'vxlan') throw new ConfigError(`Backend.Type: backend ${JSON.stringify(config.backendType)} is not supported by flaxd yet (${BACKENDS.join(', ')})`);
  const vx = parseVxlanConfig(config.backend);
  // the MAC our lease already publishes, so a re-created device keeps it
  const prior = (await store.list()).find((l) => l.attrs.publicIP === ext.publicIP);
  const priorMac = prior && parseVxlanBackendData(prior.attrs.backendData)?.vtepMAC;
  const mtu = (vx.mtu || ext.link.mtu) - VXLAN_OVERHEAD;
  const want = {
    name: `flannel.${vx.vni}`, vni: vx.vni, port: vx.port, local: ext.ifaceAddr, srcLink: ext.link.index,
    mtu, gbp: vx.gbp, learning: vx.learning, mac: priorMac ?? randomMac(),
  };
  const dev = await ensureVxlanDevice(h, want, log);
  log.info(`${want.name}: ${dev.created ? 'created' : 'reusing the existing device'} (mac ${dev.link.mac})`);
  want.mac = dev.link.mac;
  return {
    attrs: { publicIP: ext.publicIP, publicIPv6: null, backendType: 'vxlan', backendData: vxlanBackendData({ vni: vx.vni, vtepMAC: dev.link.mac }) },
    mtu,
    network: (own) => new VxlanNetwork(h, want, own.subnet, network, log, vx.directRouting ? new DirectRoutes(h, extLink, network, log) : undefined),
  };
}
