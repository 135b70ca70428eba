/**
 * bridge configuration: the zod schema (every option of the reference
 * plugin), `loadBridgeConf` and the derived `ResolvedConf`. Everything that
 * can be rejected is rejected here, before the first side effect, with code
 * 7 (invalid network config) — the reference returns 999 for most of these.
 */
import * as z from 'zod/mini';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import { NetConfSchema, loadNetConf, confSchema } from '../../pkg/cni/conf';
import { parseCniArgs } from '../../pkg/cni/args';
import type { DNS, Result } from '../../pkg/cni/types';
import { type Prefix, parsePrefix } from '../../pkg/ip';

export const DEFAULT_BRIDGE = 'cni0';

const VlanTrunkSchema = z.object({
  minID: z.optional(z.number().check(z.int())),
  maxID: z.optional(z.number().check(z.int())),
  id: z.optional(z.number().check(z.int())),
});

export const BridgeConfSchema = confSchema(z.extend(NetConfSchema, {
  bridge: z.optional(z.string()),
  isGateway: z.optional(z.boolean()),
  isDefaultGateway: z.optional(z.boolean()),
  forceAddress: z.optional(z.boolean()),
  ipMasq: z.optional(z.boolean()),
  ipMasqBackend: z.optional(z.enum(['iptables', 'nftables'])),
  /** flax: with the nftables backend, also write the reference's empty iptables chain at every ADD (see README, "tombstone") */
  iptablesTombstone: z.optional(z.boolean()),
  mtu: z.optional(z.number().check(z.int(), z.minimum(0), z.maximum(65535))),
  hairpinMode: z.optional(z.boolean()),
  promiscMode: z.optional(z.boolean()),
  vlan: z.optional(z.number().check(z.int())),
  vlanTrunk: z.optional(z.array(VlanTrunkSchema)),
  preserveDefaultVlan: z.optional(z.boolean()),
  macspoofchk: z.optional(z.boolean()),
  enabledad: z.optional(z.boolean()),
  disableContainerInterface: z.optional(z.boolean()),
  portIsolation: z.optional(z.boolean()),
  args: z.optional(z.looseObject({ cni: z.optional(z.looseObject({ mac: z.optional(z.string()) })) })),
  runtimeConfig: z.optional(z.looseObject({ mac: z.optional(z.string()) })),
}));
export type BridgeConf = z.infer<typeof BridgeConfSchema>;

export interface ResolvedConf {
  raw: BridgeConf;
  cniVersion: string;
  name: string;
  brName: string;
  /** ipam.type, '' = L2 only */
  ipamType: string;
  isLayer3: boolean;
  isGW: boolean;
  isDefaultGW: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  /** undefined = the default (nftables when `nft` is installed, else iptables) */
  ipMasqBackend?: 'iptables' | 'nftables';
  /** nftables masquerading also writes the iptables tombstone at ADD (default false: `flax tombstones` does, at switch time) */
  iptablesTombstone: boolean;
  mtu?: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  vlan: number;
  /** sorted, deduplicated trunk VLAN ids */
  vlans: number[];
  preserveDefaultVlan: boolean;
  macspoofchk: boolean;
  enableDad: boolean;
  disableContainerInterface: boolean;
  portIsolation: boolean;
  /** container MAC after precedence (CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac) */
  mac?: string;
  dns?: DNS;
  prevResult?: Result;
  /**
   * ipam.routes destinations (not default routes): where a stale gateway
   * may lie. flannel's delegate routes every FLANNEL_NETWORK, so for it
   * these are the overlay Network(s) (the stale-bridge heal).
   */
  routeNets: Prefix[];
}

const invalid = (msg: string, details = '') => new CniError(ErrCode.InvalidNetworkConfig, msg, details);

/** The reference's trunk rules: ranges and single ids, 1..4094, deduplicated, sorted. */
export function parseVlanTrunk(trunk: z.infer<typeof VlanTrunkSchema>[]): number[] {
  const set = new Set<number>();
  for (const t of trunk) {
    if (t.minID !== undefined && t.maxID !== undefined) {
      if (t.minID <= 0 || t.minID > 4094) throw invalid('incorrect trunk minID parameter');
      if (t.maxID <= 0 || t.maxID > 4094) throw invalid('incorrect trunk maxID parameter');
      if (t.maxID < t.minID) throw invalid('minID is greater than maxID in trunk parameter');
      for (let v = t.minID; v <= t.maxID; v++) set.add(v);
    } else if (t.minID === undefined && t.maxID !== undefined) {
      throw invalid('minID and maxID should be configured simultaneously, minID is missing');
    } else if (t.minID !== undefined && t.maxID === undefined) {
      throw invalid('minID and maxID should be configured simultaneously, maxID is missing');
    }
    if (t.id !== undefined) {
      if (t.id <= 0 || t.id > 4094) throw invalid('incorrect trunk id parameter');
      set.add(t.id);
    }
  }
  return [...set].sort((a, b) => a - b);
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** Normalises a unicast Ethernet MAC; throws code 7 naming where it came from. */
export function validateMac(mac: string, from: string): string {
  if (!MAC_RE.test(mac)) throw invalid(`invalid MAC address "${mac.slice(0, 64)}" in ${from}`);
  const m = mac.toLowerCase();
  if (parseInt(m.slice(0, 2), 16) & 1) throw invalid(`MAC address ${m} in ${from} is a multicast address`);
  return m;
}

/** Same rules as CNI_IFNAME (the bridge is an interface of that name). */
function validateBridgeName(name: string): void {
  if (name === '' || name.length > 15 || name === '.' || name === '..' || /[/:\s]/.test(name)) {
    throw invalid(`invalid bridge name "${name.slice(0, 64)}"`, 'an interface name of 1-15 characters without /, : or whitespace');
  }
}

const dnsSet = (d: DNS | undefined): d is DNS =>
  !!d && (!!d.nameservers?.length || !!d.domain || !!d.search?.length || !!d.options?.length);

/** Decodes and validates stdin + CNI_ARGS into the resolved config. */
export function loadBridgeConf(stdin: string | Buffer, cniArgs: string): ResolvedConf {
  const c = loadNetConf(stdin, BridgeConfSchema);
  const brName = c.bridge ?? DEFAULT_BRIDGE;
  validateBridgeName(brName);
  const vlan = c.vlan ?? 0;
  if (vlan < 0 || vlan > 4094) throw invalid(`invalid VLAN ID ${vlan} (must be between 0 and 4094)`);
  const vlans = parseVlanTrunk(c.vlanTrunk ?? []);
  // the reference only supports access (untagged) or trunk (tagged) ports
  if (vlan > 0 && vlans.length > 0) throw invalid('cannot set vlan and vlanTrunk at the same time');
  const ipamType = typeof c.ipam?.type === 'string' ? c.ipam.type : '';
  const isLayer3 = ipamType !== '';
  if (isLayer3 && c.disableContainerInterface) throw invalid('cannot use IPAM when DisableContainerInterface flag is set');
  if (c.hairpinMode && c.promiscMode) throw invalid('cannot set hairpin mode and promiscuous mode at the same time');

  // MAC precedence: CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac
  let mac: string | undefined;
  const envMac = parseCniArgs(cniArgs).get('MAC');
  if (envMac) mac = validateMac(envMac, 'CNI_ARGS MAC');
  if (c.args?.cni?.mac) mac = validateMac(c.args.cni.mac, 'args.cni.mac');
  if (c.runtimeConfig?.mac) mac = validateMac(c.runtimeConfig.mac, 'runtimeConfig.mac');

  const isDefaultGW = c.isDefaultGateway ?? false;
  return {
    raw: c,
    cniVersion: c.cniVersion,
    name: c.name,
    brName,
    ipamType,
    isLayer3,
    isGW: (c.isGateway ?? false) || isDefaultGW,
    isDefaultGW,
    forceAddress: c.forceAddress ?? false,
    ipMasq: c.ipMasq ?? false,
    ipMasqBackend: c.ipMasqBackend,
    iptablesTombstone: c.iptablesTombstone ?? false,
    mtu: c.mtu || undefined,
    hairpinMode: c.hairpinMode ?? false,
    promiscMode: c.promiscMode ?? false,
    vlan,
    vlans,
    preserveDefaultVlan: c.preserveDefaultVlan ?? true,
    macspoofchk: c.macspoofchk ?? false,
    enableDad: c.enabledad ?? false,
    disableContainerInterface: c.disableContainerInterface ?? false,
    portIsolation: c.portIsolation ?? false,
    mac,
    dns: dnsSet(c.dns) ? c.dns : undefined,
    prevResult: c.prevResultParsed,
    routeNets: routeNets(c.ipam),
  };
}

/** ipam.routes' destinations with a prefix (malformed ones skipped: IPAM validates them). */
function routeNets(ipam: unknown): Prefix[] {
  const routes = (ipam as { routes?: unknown } | undefined)?.routes;
  if (!Array.isArray(routes)) return [];
  const out: Prefix[] = [];
  for (const r of routes) {
    const dst = (r as { dst?: unknown } | null)?.dst;
    if (typeof dst !== 'string') continue;
    try {
      const net = parsePrefix(dst);
      if (net.prefixLen > 0) out.push(net);
    } catch { /* not ours to refuse */ }
  }
  return out;
}
